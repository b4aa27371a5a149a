//! scripts/install.sh, run as the README says into a staging DESTDIR (with the library and the
//! command these tests were built with, BUILD_DIR): the versioned library and its links, the
//! header, oxalloc.pc and the `oxalloc` command are in place, and a C program compiled with
//! `pkg-config --cflags --libs oxalloc` against the staged tree links to `liboxalloc.so.0` and
//! runs on oxalloc.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

/// The prefix the files are installed for (it does not exist: DESTDIR stages them).
const PREFIX: &str = "/opt/oxalloc-install-test";

fn ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn install_into_destdir_and_build_with_pkg_config() {
    let _fresh = lib(); // fails clearly if the library is missing or stale
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let destdir = out_dir().join("install-destdir");
    let _ = std::fs::remove_dir_all(&destdir);
    ok(Command::new(root.join("scripts/install.sh"))
        .env("PREFIX", PREFIX)
        .env("DESTDIR", &destdir)
        .env("BUILD_DIR", lib_dir()));

    let staged = destdir.join(PREFIX.trim_start_matches('/'));
    let lib = staged.join("lib");
    let version = env!("CARGO_PKG_VERSION");
    let link = |name: &str| std::fs::read_link(lib.join(name)).unwrap();
    assert!(lib.join(format!("liboxalloc.so.{version}")).is_file());
    assert_eq!(link("liboxalloc.so"), Path::new(&soname()));
    assert_eq!(
        link(&soname()),
        Path::new(&format!("liboxalloc.so.{version}"))
    );
    assert!(lib.join("liboxalloc.a").is_file());
    assert!(staged.join("include/oxalloc.h").is_file());
    let dynamic = ok(Command::new("readelf")
        .arg("-d")
        .arg(lib.join("liboxalloc.so")));
    assert!(dynamic.contains(&format!("Library soname: [{}]", soname())));

    // oxalloc.pc names the prefix, not the staging directory.
    let pc = std::fs::read_to_string(lib.join("pkgconfig/oxalloc.pc")).unwrap();
    assert!(
        pc.contains(&format!("prefix={PREFIX}\n")) && pc.contains(&format!("Version: {version}")),
        "{pc}"
    );
    // pkg-config with the staged tree as its sysroot, as a packager would build against it.
    let flags = ok(Command::new("pkg-config")
        .args(["--cflags", "--libs", "oxalloc"])
        .env("PKG_CONFIG_PATH", lib.join("pkgconfig"))
        .env("PKG_CONFIG_SYSROOT_DIR", &destdir));
    assert!(flags.contains("-loxalloc"), "{flags}");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/installed.c");
    let bin = out_dir().join("installed");
    ok(Command::new("cc")
        .arg(&src)
        .arg("-o")
        .arg(&bin)
        .args(flags.split_whitespace()));
    let needed = ok(Command::new("readelf").arg("-d").arg(&bin));
    assert!(
        needed.contains(&format!("Shared library: [{}]", soname())),
        "{needed}"
    );
    // PREFIX does not exist: the loader finds the library in the staged tree.
    let out = ok(Command::new(&bin).env("LD_LIBRARY_PATH", &lib));
    assert!(out.contains("installed oxalloc in use"), "{out}");

    let help = ok(Command::new(staged.join("bin/oxalloc")).arg("--help"));
    assert!(help.contains("run"), "{help}");
}
