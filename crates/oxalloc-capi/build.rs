//! Gives liboxalloc.so its SONAME, `liboxalloc.so.<major version>`, so that programs linked
//! against it record that name and an installed `liboxalloc.so.0.1.0` can be upgraded in place
//! (scripts/install.sh installs the versioned file with the `.so.0` and `.so` links).

fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").expect("cargo sets the package version");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,liboxalloc.so.{major}");
    println!("cargo:rerun-if-changed=build.rs");
}
