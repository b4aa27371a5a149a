//! C and C++ programs compiled here and run against liboxalloc: API conformance (preloaded and
//! linked), multi-threaded stress with cross-thread frees, thread churn and fork, allocation in
//! constructors/dlsym/TLS destructors, dlopen (dynamic TLS), C++, and misuse detection.

mod common;
use common::*;
use std::os::unix::process::ExitStatusExt;

#[test]
fn api_preloaded() {
    let bin = compile("api.c", false);
    assert_passed("api.c preloaded", &run_preloaded(&bin, &[], &[]));
}

#[test]
fn api_linked() {
    let bin = compile("api.c", true);
    let out = std::process::Command::new(&bin).output().unwrap();
    assert_passed("api.c linked", &out);
}

#[test]
fn api_on_the_program_break() {
    let bin = compile("api.c", false);
    assert_passed(
        "api.c with OXALLOC_SOURCE=brk",
        &run_preloaded(&bin, &[], &[("OXALLOC_SOURCE", "brk")]),
    );
}

#[test]
fn stress_threads_cross_frees_churn_and_fork() {
    let bin = compile("stress.c", false);
    for seed in ["1", "2"] {
        assert_passed("stress.c", &run_preloaded(&bin, &["4", "6", seed], &[]));
    }
    assert_passed(
        "stress.c on brk",
        &run_preloaded(&bin, &["3", "3", "3"], &[("OXALLOC_SOURCE", "brk")]),
    );
}

/// Heap addresses change from run to run (the first mmap hint is random), so ASLR covers the
/// heap too.
#[test]
fn heap_addresses_differ_between_runs() {
    let bin = compile("heap_address.c", false);
    let runs: Vec<String> = (0..4)
        .map(|_| {
            let out = run_preloaded(&bin, &[], &[]);
            assert!(out.status.success(), "heap_address.c: {out:?}");
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        })
        .collect();
    let distinct: std::collections::HashSet<&String> = runs.iter().collect();
    assert_eq!(
        distinct.len(),
        runs.len(),
        "the same heap addresses in two runs: {runs:?}"
    );
}

/// Secure mode puts a guard page after each segment's metadata and after each huge block;
/// default mode none.
#[test]
fn secure_mode_has_guard_pages() {
    let bin = compile("guard_pages.c", false);
    let run = |env: &[(&str, &str)]| {
        let out = run_preloaded(&bin, &[], env);
        assert!(out.status.success(), "guard_pages.c: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(run(&[]), "SEGMENT 0 HUGE 0");
    assert_eq!(run(&[("OXALLOC_SECURE", "1")]), "SEGMENT 1 HUGE 1");
}

#[test]
fn early_startup_dlsym_and_thread_destructors() {
    let bin = compile("early.c", false);
    assert_passed("early.c", &run_preloaded(&bin, &[], &[]));
}

#[test]
fn loaded_with_dlopen() {
    let bin = compile("dlopen.c", true);
    let out = std::process::Command::new(&bin)
        .arg(lib())
        .output()
        .unwrap();
    assert_passed("dlopen.c", &out);
}

#[test]
fn cxx_new_delete_and_bad_alloc() {
    let bin = compile("cxx.cpp", false);
    assert_passed("cxx.cpp", &run_preloaded(&bin, &[], &[]));
}

#[test]
fn statistics_at_exit() {
    let bin = compile("early.c", false);
    let report = out_dir().join("report.jsonl");
    let _ = std::fs::remove_file(&report);
    let out = run_preloaded(
        &bin,
        &[],
        &[
            ("OXALLOC_SHOW_STATS", "1"),
            ("OXALLOC_REPORT_FILE", report.to_str().unwrap()),
        ],
    );
    assert_passed("early.c with statistics", &out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("oxalloc: ") && stderr.contains(" allocations, "),
        "{stderr}"
    );
    let line = std::fs::read_to_string(&report).unwrap();
    assert_eq!(line.lines().count(), 1);
    assert!(
        line.contains("\"allocations\":") && line.contains("\"peak_rss_bytes\":"),
        "{line}"
    );
}

fn expect_abort(case: &str, message: &str) {
    let bin = compile("wrong.c", false);
    let out = run_preloaded(&bin, &[case], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "{case}: not aborted\n{stdout}\n{stderr}"
    );
    assert!(!stdout.contains("not detected"));
    let pointer = stdout
        .lines()
        .find_map(|l| l.strip_prefix("pointer "))
        .expect("pointer printed");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("oxalloc: "))
        .unwrap_or_else(|| panic!("{case}: no message\n{stderr}"));
    assert!(line.contains(message), "{case}: {line}");
    assert!(
        line.ends_with(pointer),
        "{case}: message names {pointer}: {line}"
    );
}

#[test]
fn double_free_aborts() {
    expect_abort("double-free", "double free detected");
}

#[test]
fn double_free_of_huge_block_aborts() {
    expect_abort("double-free-huge", "invalid pointer");
}

#[test]
fn double_free_from_other_threads_aborts() {
    expect_abort("double-free-remote", "double free detected");
}

#[test]
fn stack_pointer_free_aborts() {
    expect_abort("stack-pointer", "invalid pointer");
}

#[test]
fn interior_pointer_free_aborts() {
    expect_abort("interior-pointer", "invalid pointer");
}

#[test]
fn usable_size_of_foreign_pointer_aborts() {
    expect_abort("usable-size-foreign", "invalid pointer");
}
