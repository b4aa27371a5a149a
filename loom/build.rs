//! Compiles the modelled core file with `cfg(loom)`, which selects its non-`const` constructors.
fn main() {
    println!("cargo:rustc-check-cfg=cfg(loom)");
    println!("cargo:rustc-cfg=loom");
}
