//! The misuse suite: one small C/C++ program per misuse (tests/misuse/, protocol in misuse.h),
//! each run with liboxalloc preloaded, by default and with `OXALLOC_SECURE=1`, and checked for
//! its exact outcome.
//!
//! [`CASES`] is the expectation table, one line per program. A misuse oxalloc catches today is
//! `Caught("<what>")`: the program must die of SIGABRT right after printing exactly
//! `oxalloc: <what>: 0x<pointer>` on stderr, where the pointer is one the program printed
//! (`PTR`, or `BLOCK` for the start of the block an interior pointer points into). The other
//! rows record today's real behaviour, so that a change in it fails the test: `NotYet` (runs to
//! the end, nothing reported). No misuse crashes the allocator any more: a crash inside
//! liboxalloc fails every row. When hardening lands, flip the row to `Caught(...)`.
//!
//! scripts/misuse-table.py runs the same programs under glibc, mimalloc and jemalloc too.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use Expect::{Caught, NotYet};

/// What a program does under oxalloc (in a release build; see [`DebugBuild`] for debug builds).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// Detected: SIGABRT after `oxalloc: <what>: <pointer>`, the pointer being one printed.
    Caught(&'static str),
    /// Not detected: the program runs to its end (exit 0), and oxalloc prints nothing.
    NotYet,
}

struct Case {
    program: &'static str,
    default: Expect,
    secure: Expect,
}

const fn case(program: &'static str, default: Expect, secure: Expect) -> Case {
    Case {
        program,
        default,
        secure,
    }
}

const DOUBLE: &str = "free(): double free detected";
const DOUBLE_REMOTE: &str = "free(): double free detected (block freed twice by other threads)";
const FOREIGN: &str = "free(): invalid pointer (not allocated by oxalloc, or already released)";
const INSIDE_HUGE: &str = "free(): invalid pointer (inside a huge block)";
const USABLE: &str = "malloc_usable_size(): invalid pointer";
const USABLE_LIVE: &str = "malloc_usable_size(): invalid pointer (not a live block)";
const INSIDE: &str = "free(): invalid pointer (inside a block)";
const NOT_LIVE: &str = "free(): invalid pointer (not a live block)";
const CORRUPT: &str = "malloc(): free list corrupted (write after free?)";
const SIZE: &str = "free_sized(): the size does not match the block";
const UNALLOCATED_SECURE: &str = "free(): double free detected | free(): invalid pointer (never \
     allocated) | free(): invalid pointer (not a \
     live block) | free(): invalid pointer (inside a block)";
const QUARANTINED: &str = "free(): write after free detected (a block in quarantine was written)";
const OVERFLOW: &str =
    "free(): heap overflow detected (the bytes past the block's size were overwritten)";

#[rustfmt::skip]
const CASES: &[Case] = &[
    //    program                    default               OXALLOC_SECURE=1
    case("df_small",               Caught(DOUBLE),        Caught(DOUBLE)),
    case("df_medium",              Caught(DOUBLE),        Caught(DOUBLE)),
    // A huge block is unmapped (or cached) when freed, so the second free finds no block.
    case("df_large_256k",          Caught(FOREIGN),       Caught(FOREIGN)),
    case("df_large_8m",            Caught(FOREIGN),       Caught(FOREIGN)),
    case("df_delayed",             Caught(DOUBLE),        Caught(DOUBLE)),
    // The live bitmap, not the block, says whether a block is free.
    case("df_written_after_free",  Caught(DOUBLE),        Caught(DOUBLE)),
    case("df_written_before_free", Caught(DOUBLE),        Caught(DOUBLE)),
    case("df_two_threads",         Caught(DOUBLE_REMOTE), Caught(DOUBLE_REMOTE)),
    // The other thread finds the block's live bit clear.
    case("df_owner_then_thread",   Caught(DOUBLE),        Caught(DOUBLE)),
    case("if_stack",               Caught(FOREIGN),       Caught(FOREIGN)),
    case("if_interior_16",         Caught(INSIDE),        Caught(INSIDE)),
    case("if_interior_8",          Caught(INSIDE),        Caught(INSIDE)),
    case("if_interior_large",      Caught(INSIDE_HUGE),   Caught(INSIDE_HUGE)),
    case("if_mmap",                Caught(FOREIGN),       Caught(FOREIGN)),
    // A never-allocated block that is on the page's free list: reported as a double free. In
    // secure mode blocks are 80 bytes and carved in a shuffled order, so the pointer may also
    // fall past the page, or inside a block.
    case("if_unallocated",         Caught(DOUBLE),        Caught(UNALLOCATED_SECURE)),
    // A pointer into a page slot of the segment that is not in use.
    case("if_heap_gap",            Caught(NOT_LIVE),      Caught(NOT_LIVE)),
    case("if_garbage",             Caught(FOREIGN),       Caught(FOREIGN)),
    // The segment map range-checks the address, so bits 48..63 cannot alias a segment.
    case("if_garbage_alias",       Caught(FOREIGN),       Caught(FOREIGN)),
    // Secure mode: the block is still in the quarantine at exit, which checks it.
    case("uaf_write_small",        NotYet,                Caught(QUARANTINED)),
    case("uaf_write_large",        NotYet,                NotYet),
    // Secure mode: the block waits in the quarantine, which only frees make move, and this
    // program frees nothing more: the block never comes back, and the check at exit finds it.
    case("uaf_write_reuse",        Caught(CORRUPT),       Caught(QUARANTINED)),
    // Default mode: the overwritten link is caught when the block heads the free list again;
    // secure mode: the overwritten fill is caught when the block leaves the quarantine.
    case("uaf_write_churn",        Caught(CORRUPT),       Caught(QUARANTINED)),
    case("uaf_read_small",         NotYet,                NotYet),
    case("overflow_1_small",       NotYet,                Caught(OVERFLOW)),
    case("overflow_8_small",       NotYet,                Caught(OVERFLOW)),
    case("overflow_1_large",       NotYet,                Caught(OVERFLOW)),
    case("overflow_8_large",       NotYet,                Caught(OVERFLOW)),
    // The write to the zero-size block lands on its canary; the read goes unseen.
    case("zero_size",              NotYet,                Caught(OVERFLOW)),
    case("free_sized_wrong",       Caught(SIZE),          Caught(SIZE)),
    case("cxx_sized_delete",       Caught(SIZE),          Caught(SIZE)),
    // The alignment given (64) divides the block's (256): nothing tells them apart.
    case("cxx_aligned_delete",     NotYet,                NotYet),
    case("us_stack",               Caught(USABLE),        Caught(USABLE)),
    case("us_interior",            Caught(USABLE_LIVE),   Caught(USABLE_LIVE)),
];

/// How long one program may run.
const TIMEOUT: Duration = Duration::from_secs(60);

/// stderr lines that are not about the misuse: the signal handler's report, and the notice for
/// OXALLOC_SECURE while oxalloc does not know that option.
fn is_noise(line: &str) -> bool {
    line.starts_with("FAULT in ")
        || line.starts_with("oxalloc: ignoring unknown or malformed option")
}

fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/misuse")
}

/// The compiled programs, by name (compiled once, for both tests).
fn programs() -> &'static Vec<(String, PathBuf)> {
    static BINS: OnceLock<Vec<(String, PathBuf)>> = OnceLock::new();
    BINS.get_or_init(|| {
        let out = common::out_dir().join("misuse");
        std::fs::create_dir_all(&out).unwrap();
        let mut sources: Vec<PathBuf> = std::fs::read_dir(source_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "c" || e == "cpp"))
            .collect();
        sources.sort();
        sources
            .iter()
            .map(|src| {
                let name = src.file_stem().unwrap().to_str().unwrap().to_string();
                let exe = out.join(&name);
                compile(src, &exe);
                (name, exe)
            })
            .collect()
    })
}

/// Compiles one program without optimisation, so that every misuse happens as written.
fn compile(src: &Path, exe: &Path) {
    let cxx = src.extension().is_some_and(|e| e == "cpp");
    let mut cmd = Command::new(if cxx { "c++" } else { "cc" });
    if cxx {
        cmd.args([
            "-std=c++17",
            "-fsized-deallocation",
            "-Wno-mismatched-new-delete",
        ]);
    } else {
        cmd.arg("-std=gnu11");
    }
    cmd.args(["-O0", "-g", "-Wall", "-pthread"])
        .args([
            "-Wno-use-after-free",
            "-Wno-free-nonheap-object",
            "-Wno-array-bounds",
            "-Wno-stringop-overflow",
            "-Wno-unused-result",
            "-Wno-maybe-uninitialized",
        ])
        .arg("-I")
        .arg(source_dir())
        .arg(src)
        .arg("-o")
        .arg(exe)
        .arg("-ldl");
    let st = cmd
        .status()
        .expect("a C compiler (cc, c++) is needed: see .ci/run");
    assert!(st.success(), "compiling {} failed", src.display());
}

struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Values after `key ` on stdout lines (the PTR / BLOCK protocol of misuse.h).
    fn marked(&self, key: &str) -> Vec<String> {
        self.stdout
            .lines()
            .filter_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(' ')))
            .map(|v| v.trim().to_ascii_lowercase())
            .collect()
    }

    /// The first stderr line about the misuse.
    fn message(&self) -> Option<&str> {
        self.stderr
            .lines()
            .find(|l| !l.trim().is_empty() && !is_noise(l))
    }

    fn fault(&self) -> Option<&str> {
        self.stderr.lines().find(|l| l.starts_with("FAULT in "))
    }

    /// One line for the summary: what happened.
    fn describe(&self) -> String {
        let what = match (self.status.code(), self.status.signal()) {
            (Some(c), _) => format!("exit {c}"),
            (None, Some(s)) => format!("signal {s}"),
            _ => "?".into(),
        };
        let msg = self.message().or(self.fault()).unwrap_or("");
        format!("{what}: {msg}")
    }
}

fn run(exe: &Path, secure: bool) -> Run {
    let mut cmd = Command::new(exe);
    cmd.env("LD_PRELOAD", common::lib())
        .env_remove("OXALLOC_SECURE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if secure {
        cmd.env("OXALLOC_SECURE", "1");
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("running {}: {e}", exe.display()));
    // The programs print a few lines only, so the pipes cannot fill up while we wait.
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().unwrap();
    Run {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Checks a run against its expectation; `Err` says how it differs.
fn check(run: &Run, expect: Expect) -> Result<(), String> {
    let sig = run.status.signal();
    match expect {
        Caught(what) => {
            if sig != Some(libc::SIGABRT) {
                return Err(format!(
                    "expected SIGABRT after `oxalloc: {what}: <pointer>`"
                ));
            }
            let pointers: Vec<String> = [run.marked("PTR"), run.marked("BLOCK")].concat();
            if pointers.is_empty() {
                return Err("the program printed no PTR line".into());
            }
            let line = run.message().unwrap_or("").to_ascii_lowercase();
            // `what` may list messages that are all right, separated by " | ".
            let wanted: Vec<String> = what
                .split(" | ")
                .flat_map(|w| pointers.iter().map(move |p| format!("oxalloc: {w}: {p}")))
                .map(|m| m.to_ascii_lowercase())
                .collect();
            if wanted.contains(&line) {
                Ok(())
            } else {
                Err(format!("expected the message to be one of {wanted:?}"))
            }
        }
        NotYet => {
            let clean = run.status.code() == Some(0)
                && run.stdout.lines().any(|l| l == "SURVIVED")
                && !run
                    .stderr
                    .lines()
                    .any(|l| l.starts_with("oxalloc:") && !is_noise(l));
            if clean {
                Ok(())
            } else {
                Err("expected the program to run to its end (exit 0, SURVIVED, no message)".into())
            }
        }
    }
}

/// Runs every program in one mode and fails with a list of every row that no longer holds.
fn run_mode(secure: bool) {
    let mode = if secure {
        "OXALLOC_SECURE=1"
    } else {
        "default"
    };
    let mut failures = Vec::new();
    let mut caught = 0;
    for (name, exe) in programs() {
        let Some(case) = CASES.iter().find(|c| c.program == name) else {
            failures.push(format!("{name}: no row in CASES"));
            continue;
        };
        let expect = if secure { case.secure } else { case.default };
        let r = run(exe, secure);
        let verdict = check(&r, expect);
        println!(
            "{mode:>16} {name:<24} {:<40} {}",
            format!("{expect:?}"),
            if verdict.is_ok() { "ok" } else { "MISMATCH" }
        );
        match verdict {
            Ok(()) => caught += matches!(expect, Caught(_)) as usize,
            Err(why) => failures.push(format!(
                "{name} ({mode}): {why}\n  got {}\n  stdout: {:?}\n  stderr: {:?}",
                r.describe(),
                r.stdout,
                r.stderr
            )),
        }
    }
    println!("{mode}: {caught} of {} misuses caught", programs().len());
    assert!(
        failures.is_empty(),
        "{} misuse program(s) did not behave as CASES says (update the row if the change is \
         intended):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn misuse_default() {
    run_mode(false);
}

#[test]
fn misuse_secure_mode() {
    run_mode(true);
}

#[test]
fn every_program_has_one_row() {
    let names: Vec<&str> = programs().iter().map(|(n, _)| n.as_str()).collect();
    for c in CASES {
        assert!(
            names.contains(&c.program),
            "row {} has no program",
            c.program
        );
        assert_eq!(
            CASES.iter().filter(|d| d.program == c.program).count(),
            1,
            "{} has two rows",
            c.program
        );
    }
    for n in &names {
        assert!(CASES.iter().any(|c| c.program == *n), "{n} has no row");
    }
}

/// The cells of the first table of RESULTS.md (the summary), without its header rows.
fn results_rows() -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(source_dir().join("RESULTS.md")).unwrap();
    text.lines()
        .skip_while(|l| !l.starts_with("| misuse | program"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

/// The README's misuse table is RESULTS.md's summary, first word of each outcome, and the
/// oxalloc columns of RESULTS.md say what `CASES` expects.
#[test]
fn readme_table_is_the_measured_one() {
    let first = |c: &str| {
        c.split(' ')
            .next()
            .unwrap_or("")
            .trim_end_matches(':')
            .to_string()
    };
    let rows = results_rows();
    let mut expected = vec![
        "| program | glibc | mimalloc | jemalloc | oxalloc | oxalloc secure |".to_string(),
        "|---|---|---|---|---|---|".to_string(),
    ];
    for r in &rows {
        let cells: Vec<String> = if r[0].starts_with("**caught") {
            std::iter::once("**caught**".to_string())
                .chain(r[2..7].iter().cloned())
                .collect()
        } else {
            std::iter::once(r[1].clone())
                .chain(r[2..7].iter().map(|c| first(c)))
                .collect()
        };
        expected.push(format!("| {} |", cells.join(" | ")));
    }
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let block: Vec<&str> = readme
        .lines()
        .skip_while(|l| *l != "<!-- misuse:begin -->")
        .skip(1)
        .take_while(|l| *l != "<!-- misuse:end -->")
        .collect();
    assert_eq!(
        block, expected,
        "README's misuse table differs from RESULTS.md"
    );
    for r in rows.iter().filter(|r| !r[0].starts_with("**caught")) {
        let program = r[1].trim_matches('`');
        let case = CASES
            .iter()
            .find(|c| c.program == program)
            .unwrap_or_else(|| panic!("{program}: in RESULTS.md, not in CASES"));
        for (cell, expect) in [(&r[5], case.default), (&r[6], case.secure)] {
            let want = match expect {
                Caught(_) => "caught",
                NotYet => "silent",
            };
            assert_eq!(
                first(cell),
                want,
                "{program}: RESULTS.md says {cell}, CASES {expect:?}"
            );
        }
    }
}
