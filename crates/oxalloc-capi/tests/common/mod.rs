//! Helpers shared by the tests that run programs against liboxalloc.so.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Directory holding liboxalloc.so for the profile these tests were built with, or the one
/// `TEST_LIBOXALLOC_DIR` names (CI runs the debug-built tests against the release library
/// that way, without building them again; not an `OXALLOC_` name, which the library would
/// warn about in every program the tests run).
pub fn lib_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TEST_LIBOXALLOC_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> -> target/<profile>
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// Path of liboxalloc.so, checked to be newer than every Rust source of the workspace
/// (`cargo test` does not build the cdylib, so a stale library would be tested silently).
pub fn lib() -> PathBuf {
    let p = lib_dir().join("liboxalloc.so");
    let hint = "build it first: cargo build --workspace (add --release for release tests)";
    let built = std::fs::metadata(&p)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| panic!("{} is missing: {hint}", p.display()));
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    if let Some(newer) = newest_source(crates).filter(|(t, _)| *t > built) {
        panic!(
            "{} is older than {}: {hint}",
            p.display(),
            newer.1.display()
        );
    }
    p
}

/// The most recently modified `.rs` file under `dir` (tests and build output excluded).
fn newest_source(dir: &Path) -> Option<(std::time::SystemTime, PathBuf)> {
    let mut newest: Option<(std::time::SystemTime, PathBuf)> = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let candidate = if path.is_dir() {
            if path
                .file_name()
                .is_some_and(|n| n == "tests" || n == "target")
            {
                continue;
            }
            newest_source(&path)
        } else if path.extension().is_some_and(|e| e == "rs") {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .map(|t| (t, path))
        } else {
            None
        };
        if let Some(c) = candidate {
            if newest.as_ref().is_none_or(|n| c.0 > n.0) {
                newest = Some(c);
            }
        }
    }
    newest
}

/// The SONAME liboxalloc.so carries (see build.rs), which linked programs look for.
pub fn soname() -> String {
    format!("liboxalloc.so.{}", env!("CARGO_PKG_VERSION_MAJOR"))
}

/// A directory holding `liboxalloc.so.<major>`, a link to [`lib`], for the run-time path of
/// linked programs: they ask for the library by its SONAME, which the build directory lacks.
pub fn soname_dir() -> PathBuf {
    let target = lib(); // fails early, and clearly, if the library is missing or stale
    let d = out_dir().join("lib");
    std::fs::create_dir_all(&d).unwrap();
    let link = d.join(soname());
    // Tests run in parallel: make the link under a unique name, then rename it into place.
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = d.join(format!(".{}.{}.{n}", soname(), std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&target, &tmp).unwrap();
    std::fs::rename(&tmp, &link).unwrap();
    d
}

/// Where compiled test programs go.
pub fn out_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("oxalloc-c-tests");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Compiles a C or C++ source from tests/c into an executable; `link` adds liboxalloc itself.
pub fn compile(source: &str, link: bool) -> PathBuf {
    compile_in("c", source, link)
}

/// [`compile`] for a source in another directory of tests/ (`dir`).
pub fn compile_in(dir: &str, source: &str, link: bool) -> PathBuf {
    build(dir, source, link, Runtime::Default)
}

/// [`compile_in`] for a C++ source built with clang++ against LLVM's libc++
/// (`-stdlib=libc++`, Debian's clang, libc++-dev and libc++abi-dev); the program is named
/// `<stem>-libcxx`. See [`have_libcxx`].
pub fn compile_libcxx(dir: &str, source: &str, link: bool) -> PathBuf {
    build(dir, source, link, Runtime::Libcxx)
}

/// [`compile_in`] for a C++ source built with g++ (libstdc++'s headers) and linked with libc++
/// and libc++abi too, ahead of libstdc++, so that the process has both runtimes and the one
/// found first is LLVM's; the program is named `<stem>-both`.
pub fn compile_both_runtimes(dir: &str, source: &str, link: bool) -> PathBuf {
    build(dir, source, link, Runtime::Both)
}

/// The C++ runtime [`build`] compiles and links with.
#[derive(Clone, Copy, PartialEq)]
enum Runtime {
    /// cc or c++ (g++, libstdc++).
    Default,
    /// clang++ -stdlib=libc++.
    Libcxx,
    /// g++, with libc++ and libc++abi loaded before libstdc++.
    Both,
}

/// Whether clang++ builds and runs a program with libc++; false (after a message) when it does
/// not and `CI_REQUIRE_LIBCXX` is unset (`.ci/tests.sh` sets it, having installed them), else a
/// failure.
pub fn have_libcxx() -> bool {
    // Probed once per test process (the tests run in parallel and would share the probe's file).
    static WORKS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *WORKS.get_or_init(libcxx_works);
    if !ok {
        assert!(
            std::env::var_os("CI_REQUIRE_LIBCXX").is_none(),
            "clang++ with libc++ is required (CI_REQUIRE_LIBCXX is set) but does not build and run a program"
        );
        eprintln!("SKIPPED: clang++ -stdlib=libc++ does not work (apt-get install clang libc++-dev libc++abi-dev)");
    }
    ok
}

/// Whether clang++ builds and runs a small program with libc++.
fn libcxx_works() -> bool {
    let dir = out_dir();
    let src = dir.join(format!("libcxx-probe-{}.cpp", std::process::id()));
    let exe = src.with_extension("");
    std::fs::write(&src, "#include <new>\n#include <string>\nint main() { return std::string(\"ok\").size() != 2; }\n").unwrap();
    let ok = Command::new("clang++")
        .arg("-stdlib=libc++")
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .output()
        .is_ok_and(|o| o.status.success())
        && Command::new(&exe).status().is_ok_and(|s| s.success());
    let _ = std::fs::remove_file(&src);
    let _ = std::fs::remove_file(&exe);
    ok
}

fn build(dir: &str, source: &str, link: bool, runtime: Runtime) -> PathBuf {
    let libcxx = runtime == Runtime::Libcxx;
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(dir)
        .join(source);
    let file_stem = Path::new(source).file_stem().unwrap().to_str().unwrap();
    let stem = match runtime {
        Runtime::Default => file_stem.to_string(),
        Runtime::Libcxx => format!("{file_stem}-libcxx"),
        Runtime::Both => format!("{file_stem}-both"),
    };
    let out = out_dir().join(if link {
        format!("{stem}-linked")
    } else {
        stem.to_string()
    });
    // Tests run in parallel and several compile the same program: each writes its own file
    // and renames it into place, so none starts a binary another is still writing (ETXTBSY).
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = out.with_extension(format!("tmp{}-{n}", std::process::id()));
    let cxx = source.ends_with(".cpp");
    let mut cmd = Command::new(match (cxx, libcxx) {
        (true, true) => "clang++",
        (true, false) => "c++",
        (false, _) => "cc",
    });
    if libcxx {
        // clang knows not some of gcc's warnings, and warns about the tests' bad alignment.
        cmd.args([
            "-stdlib=libc++",
            "-Wno-unknown-warning-option",
            "-Wno-non-power-of-two-alignment",
        ]);
    }
    cmd.arg(if cxx { "-std=c++17" } else { "-std=gnu11" })
        .args(["-O1", "-g", "-Wall", "-pthread"])
        // The tests pass impossible sizes and use freed pointers on purpose.
        .args([
            "-Wno-alloc-size-larger-than",
            "-Wno-use-after-free",
            "-Wno-deprecated-declarations",
            "-I",
        ])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("include"))
        .arg(&src)
        .arg("-o")
        .arg(&tmp);
    if link {
        cmd.arg(format!("-L{}", lib_dir().display()))
            .arg("-loxalloc")
            .arg(format!("-Wl,-rpath,{}", soname_dir().display()));
    } else {
        // The prefixed API is looked up in the preloaded library at run time.
        cmd.arg("-DOX_DYNAMIC");
    }
    if runtime == Runtime::Both {
        // Before g++'s own -lstdc++, kept although the program calls neither directly.
        cmd.args(["-Wl,--no-as-needed", "-lc++", "-lc++abi", "-Wl,--as-needed"]);
    }
    cmd.arg("-ldl");
    let st = cmd
        .status()
        .expect("a C compiler (cc, c++) is needed: see .ci/run");
    assert!(st.success(), "compiling {source} failed");
    std::fs::rename(&tmp, &out).expect("moving the compiled program into place");
    out
}

/// Runs a program with liboxalloc preloaded.
pub fn run_preloaded(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin);
    cmd.args(args).env("LD_PRELOAD", lib());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()))
}

/// Asserts a test program passed, showing its output if not.
pub fn assert_passed(what: &str, out: &Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains(" 0 failed"),
        "{what} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}
