//! The C++ operators of liboxalloc (src/cxx.rs): tests/cxx/operators.cpp, compiled with g++ and
//! run preloaded and linked, must print exactly tests/cxx/operators.expected.

mod common;
use common::*;
use std::path::Path;

fn expect_output(what: &str, out: &std::process::Output) {
    let want = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cxx/operators.expected"),
    )
    .unwrap();
    let got = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && got == want,
        "{what} ({}):\n{got}\n{}\nexpected:\n{want}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn cxx_operators_preloaded() {
    let bin = compile_in("cxx", "operators.cpp", false);
    expect_output("operators.cpp preloaded", &run_preloaded(&bin, &[], &[]));
}

#[test]
fn cxx_operators_linked() {
    let bin = compile_in("cxx", "operators.cpp", true);
    let out = std::process::Command::new(&bin).output().unwrap();
    expect_output("operators.cpp linked", &out);
}
