//! The C++ operators of liboxalloc (src/cxx.rs): tests/cxx/operators.cpp, compiled with g++
//! (libstdc++) and with clang++ -stdlib=libc++ (LLVM's libc++, libc++abi and libunwind), run
//! preloaded and linked, must print exactly tests/cxx/operators.expected: new_handler,
//! bad_alloc, nothrow new (also with a new_handler that throws, and one that frees memory and
//! returns), sized and aligned deletes, containers under threads.
//!
//! The libc++ tests are skipped, saying so, when clang++ cannot build with libc++ (unless
//! `CI_REQUIRE_LIBCXX` is set, as `.ci/tests.sh` does, which installs them).
//!
//! The g++ build also runs in a process that has libc++ and libc++abi ahead of libstdc++.
//!
//! And a C program (tests/cxx/no_cxx.c), with no C++ runtime in the process, loads and runs
//! with the library, preloaded and linked, and the library needs no C++ library or symbol.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

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

/// The program's C++ runtime libraries, from `ldd`: to check that a build uses the one meant.
fn runtimes(bin: &Path) -> String {
    let out = Command::new("ldd").arg(bin).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("libstdc++") || l.contains("libc++"))
        .map(|l| l.trim().split(' ').next().unwrap_or("").to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn cxx_operators_preloaded() {
    let bin = compile_in("cxx", "operators.cpp", false);
    expect_output("operators.cpp preloaded", &run_preloaded(&bin, &[], &[]));
}

#[test]
fn cxx_operators_linked() {
    let bin = compile_in("cxx", "operators.cpp", true);
    let out = Command::new(&bin).output().unwrap();
    expect_output("operators.cpp linked", &out);
}

#[test]
fn cxx_operators_libcxx_preloaded() {
    if !have_libcxx() {
        return;
    }
    let bin = compile_libcxx("cxx", "operators.cpp", false);
    let libs = runtimes(&bin);
    assert!(
        libs.contains("libc++.so") && !libs.contains("libstdc++"),
        "{} should use libc++ only, uses: {libs}",
        bin.display()
    );
    expect_output(
        "operators.cpp with libc++, preloaded",
        &run_preloaded(&bin, &[], &[]),
    );
}

#[test]
fn cxx_operators_libcxx_linked() {
    if !have_libcxx() {
        return;
    }
    let bin = compile_libcxx("cxx", "operators.cpp", true);
    let libs = runtimes(&bin);
    assert!(
        libs.contains("libc++.so") && !libs.contains("libstdc++"),
        "{} should use libc++ only, uses: {libs}",
        bin.display()
    );
    let out = Command::new(&bin).output().unwrap();
    expect_output("operators.cpp with libc++, linked", &out);
}

/// A g++ program in a process with both runtimes, LLVM's first in the global scope: where both
/// define a name (`std::set_new_handler`, `std::get_new_handler`), the program's calls and the
/// operators' lookups (src/cxx.rs) find the same definition, the first.
#[test]
fn cxx_operators_both_runtimes() {
    if !have_libcxx() {
        return;
    }
    for link in [false, true] {
        let bin = compile_both_runtimes("cxx", "operators.cpp", link);
        let libs = runtimes(&bin);
        let (llvm, gnu) = (libs.find("libc++abi.so"), libs.find("libstdc++"));
        assert!(
            llvm.zip(gnu).is_some_and(|(l, g)| l < g),
            "{} should load libc++abi before libstdc++, loads: {libs}",
            bin.display()
        );
        let out = if link {
            Command::new(&bin).output().unwrap()
        } else {
            run_preloaded(&bin, &[], &[])
        };
        expect_output(
            &format!("operators.cpp with both runtimes, linked {link}"),
            &out,
        );
    }
}

#[test]
fn c_program_without_cxx_runtime() {
    for link in [false, true] {
        let bin = compile_in("cxx", "no_cxx.c", link);
        let out = if link {
            Command::new(&bin).output().unwrap()
        } else {
            run_preloaded(&bin, &[], &[])
        };
        assert_passed(
            &format!("no_cxx.c {}", if link { "linked" } else { "preloaded" }),
            &out,
        );
    }
}

/// The `__cxa_` functions that glibc defines.
const GLIBC_CXA: [&str; 3] = ["__cxa_finalize", "__cxa_atexit", "__cxa_thread_atexit_impl"];

#[test]
fn library_needs_no_cxx_runtime() {
    let lib = lib();
    let dynamic = Command::new("readelf")
        .arg("-d")
        .arg(&lib)
        .output()
        .unwrap();
    let dynamic = String::from_utf8_lossy(&dynamic.stdout);
    assert!(
        !dynamic.contains("libstdc++") && !dynamic.contains("libc++"),
        "liboxalloc.so needs a C++ library:\n{dynamic}"
    );
    let nm = Command::new("nm")
        .args(["-D", "--undefined-only"])
        .arg(&lib)
        .output()
        .unwrap();
    let undefined = String::from_utf8_lossy(&nm.stdout);
    let cxx: Vec<&str> = undefined
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter(|s| s.starts_with("_Z") || s.starts_with("__cxa_") || s.starts_with("__gxx"))
        // glibc's, not the C++ runtime's.
        .filter(|s| !GLIBC_CXA.contains(s))
        .collect();
    assert!(
        cxx.is_empty(),
        "liboxalloc.so refers to C++ symbols: {cxx:?}"
    );
}
