//! Gives liboxalloc.so its SONAME, `liboxalloc.so.<major version>`, so that programs linked
//! against it record that name and an installed `liboxalloc.so.0.1.0` can be upgraded in place
//! (scripts/install.sh installs the versioned file with the `.so.0` and `.so` links).
//!
//! And exports the C++ `operator new`s of `src/cxx.rs` (with the `override` feature, on x86-64
//! Linux): they are assembly, which rustc's version script, listing only Rust items, would hide,
//! so a second version script lists them (the linker merges the two). That needs a rustc whose
//! own version script has a named version node: Rust 1.85's is anonymous, and GNU ld refuses to
//! combine an anonymous node with any other, so with an older rustc than the one tested (1.95)
//! the C++ operators are left out (cfg `oxalloc_cxx` unset) and libstdc++'s own are used.

/// The oldest Rust 1.x with which the C++ operators were built and tested.
const CXX_MIN_RUSTC_MINOR: u32 = 95;

/// The minor version of the rustc cargo builds with (`rustc 1.95.0 (...)` gives 95).
fn rustc_minor() -> Option<u32> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    text.split_whitespace()
        .nth(1)?
        .split('.')
        .nth(1)?
        .parse()
        .ok()
}

/// The `operator new`s `src/cxx.rs` defines in assembly.
const CXX_NEW: [&str; 8] = [
    "_Znwm",
    "_Znam",
    "_ZnwmRKSt9nothrow_t",
    "_ZnamRKSt9nothrow_t",
    "_ZnwmSt11align_val_t",
    "_ZnamSt11align_val_t",
    "_ZnwmSt11align_val_tRKSt9nothrow_t",
    "_ZnamSt11align_val_tRKSt9nothrow_t",
];

fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").expect("cargo sets the package version");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,liboxalloc.so.{major}");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    println!("cargo:rustc-check-cfg=cfg(oxalloc_cxx)");
    if std::env::var_os("CARGO_FEATURE_OVERRIDE").is_some()
        && var("CARGO_CFG_TARGET_ARCH") == "x86_64"
        && var("CARGO_CFG_TARGET_OS") == "linux"
        && rustc_minor().is_some_and(|m| m >= CXX_MIN_RUSTC_MINOR)
    {
        println!("cargo:rustc-cfg=oxalloc_cxx");
        let out = std::path::PathBuf::from(var("OUT_DIR")).join("cxx-new.map");
        let script = format!("{{ global: {}; }};\n", CXX_NEW.join("; "));
        std::fs::write(&out, script).expect("writing the version script");
        println!(
            "cargo:rustc-cdylib-link-arg=-Wl,--version-script={}",
            out.display()
        );
    }
    println!("cargo:rerun-if-changed=build.rs");
}
