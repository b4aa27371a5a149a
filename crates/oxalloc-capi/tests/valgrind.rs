//! valgrind mode: tests/c/valgrind.c, which has a known leak, a write one byte past a block, a read
//! just before one, a read of page memory never handed out and a read after free, runs under
//! memcheck on oxalloc with `OXALLOC_VALGRIND=1`, linked and preloaded, with the commands the
//! README gives; memcheck must report exactly those five, in the program's functions, and the
//! program must have been served by oxalloc. A last test shows why the README's command differs
//! from the issue's: with `somalloc=liboxalloc.so.0` (and with valgrind's default) memcheck
//! replaces oxalloc's malloc with its own. And without valgrind, the C test programs pass in
//! valgrind mode (the client requests are no-ops).
//!
//! The memcheck tests are skipped, saying so, when valgrind is not installed (unless `CI_REQUIRE_VALGRIND` is set,
//! as `.ci/tests.sh` does, which installs it).

mod common;
use common::*;
use std::process::{Command, Output};
use std::sync::OnceLock;

/// Whether valgrind can run; false (after a message) when it is missing and not required.
fn have_valgrind() -> bool {
    let ok = Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI_REQUIRE_VALGRIND").is_none(),
            "valgrind is required (CI_REQUIRE_VALGRIND is set) but does not run"
        );
        eprintln!("SKIPPED: valgrind is not installed (apt-get install valgrind)");
    }
    ok
}

/// The memcheck options the README gives: `nouserintercepts` keeps valgrind from replacing
/// the malloc of the first library that defines one (oxalloc's) with its own.
const MEMCHECK: [&str; 3] = [
    "--tool=memcheck",
    "--soname-synonyms=somalloc=nouserintercepts",
    "--leak-check=full",
];

/// The program, compiled once (linked to liboxalloc, or not) for the tests running in parallel.
fn program(linked: bool) -> &'static std::path::Path {
    static BINS: [OnceLock<std::path::PathBuf>; 2] = [OnceLock::new(), OnceLock::new()];
    BINS[linked as usize].get_or_init(|| compile("valgrind.c", linked))
}

fn valgrind(args: &[&str], preload: bool) -> Output {
    let mut cmd = Command::new("valgrind");
    cmd.args(args).env("OXALLOC_VALGRIND", "1");
    if preload {
        cmd.args(["--trace-children=yes", "env"])
            .arg(format!("LD_PRELOAD={}", lib().display()))
            .arg(program(false));
    } else {
        cmd.arg(program(true));
    }
    cmd.output().expect("running valgrind")
}

/// memcheck's error records: the blocks of `==PID==` lines between blank ones.
fn records(stderr: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    for line in stderr.lines() {
        let body = line.split_once("== ").map_or(line, |(_, b)| b);
        if body.trim().is_empty() {
            out.push(String::new());
        } else {
            let last = out.last_mut().unwrap();
            last.push_str(body);
            last.push('\n');
        }
    }
    out.retain(|r| !r.is_empty());
    out
}

/// The one record that starts with `head`, failing with the whole output if there is not
/// exactly one.
fn record(all: &[String], head: &str, stderr: &str) -> String {
    let found: Vec<&String> = all.iter().filter(|r| r.starts_with(head)).collect();
    assert_eq!(found.len(), 1, "one record '{head}' expected:\n{stderr}");
    found[0].clone()
}

fn check_known_errors(what: &str, out: &Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("oxalloc in use"),
        "{what}: the program did not run on oxalloc ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let all = records(&stderr);
    let write = record(&all, "Invalid write of size 1", &stderr);
    assert!(
        write.contains(": overflow_by_one (valgrind.c:")
            && write.contains("0 bytes after a block of size 24 alloc'd"),
        "{what}: the overflow by one is not reported in overflow_by_one:\n{write}"
    );
    let before = record(&all, "Invalid read of size 4", &stderr);
    assert!(
        before.contains(": read_before_start (valgrind.c:")
            && before.contains("4 bytes before a block of size 32 alloc'd"),
        "{what}: the read before the block is not reported in read_before_start:\n{before}"
    );
    let fresh = record(&all, "Invalid read of size 8", &stderr);
    assert!(
        fresh.contains(": read_fresh_memory (valgrind.c:"),
        "{what}: the read of memory never handed out is not reported in read_fresh_memory:\n{fresh}"
    );
    let read = record(&all, "Invalid read of size 1", &stderr);
    assert!(
        read.contains(": read_after_free (valgrind.c:")
            && read.contains("0 bytes inside a block of size 40 free'd"),
        "{what}: the read after free is not reported in read_after_free:\n{read}"
    );
    let leak = record(&all, "77 bytes in 1 blocks are definitely lost", &stderr);
    assert!(
        leak.contains(": leak_some (valgrind.c:"),
        "{what}: the leak is not traced to leak_some:\n{leak}"
    );
    // Nothing else: the clean work (calloc, realloc in place and moved, aligned and huge
    // blocks, another thread) and oxalloc's own metadata raise no error (with
    // --leak-check=full the leak is the fifth error).
    assert!(
        stderr.contains("definitely lost: 77 bytes in 1 blocks")
            && stderr.contains("ERROR SUMMARY: 5 errors from 5 contexts"),
        "{what}: other errors than the known ones:\n{stderr}"
    );
}

#[test]
fn memcheck_reports_known_errors_linked() {
    if !have_valgrind() {
        return;
    }
    check_known_errors("linked", &valgrind(&MEMCHECK, false));
}

#[test]
fn memcheck_reports_known_errors_preloaded() {
    if !have_valgrind() {
        return;
    }
    check_known_errors("preloaded", &valgrind(&MEMCHECK, true));
}

#[test]
fn somalloc_synonym_replaces_oxalloc() {
    if !have_valgrind() {
        return;
    }
    for args in [&["--soname-synonyms=somalloc=liboxalloc.so.0"][..], &[][..]] {
        let out = valgrind(args, false);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("oxalloc NOT in use"),
            "valgrind {args:?} was expected to replace oxalloc's malloc:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Not under valgrind the client requests do nothing, and valgrind mode keeps the C semantics:
/// the API checks, the C++ operators, start-up allocation and the threaded stress test pass
/// with `OXALLOC_VALGRIND=1` natively.
#[test]
fn valgrind_mode_natively_keeps_the_c_semantics() {
    let vg = [("OXALLOC_VALGRIND", "1")];
    let cases: [(&str, &[&str]); 4] = [
        ("api.c", &[]),
        ("cxx.cpp", &[]),
        ("early.c", &[]),
        ("stress.c", &["4", "6", "1"]),
    ];
    for (source, args) in cases {
        let bin = compile(source, false);
        assert_passed(
            &format!("{source} with OXALLOC_VALGRIND=1"),
            &run_preloaded(&bin, args, &vg),
        );
    }
}
