//! Programs nobody on the team wrote, run with liboxalloc preloaded; their output must be what
//! it is without oxalloc. `.ci/run` installs them; a missing one fails the test.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn programs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs")
}

/// Runs `cmd` twice, without and with oxalloc, and returns both outputs.
fn both(make: impl Fn() -> Command) -> (Output, Output) {
    let plain = make()
        .output()
        .unwrap_or_else(|e| panic!("{:?}: {e} (install it: see .ci/run)", make().get_program()));
    let mut ox = make();
    ox.env("LD_PRELOAD", lib())
        .env("OXALLOC_REPORT_FILE", out_dir().join("real-programs.jsonl"));
    let with = ox.output().unwrap();
    (plain, with)
}

fn assert_same(what: &str, (plain, with): (Output, Output)) {
    assert!(
        plain.status.success(),
        "{what} fails even without oxalloc: {}",
        String::from_utf8_lossy(&plain.stderr)
    );
    assert!(
        with.status.success(),
        "{what} failed under oxalloc ({}): {}",
        with.status,
        String::from_utf8_lossy(&with.stderr)
    );
    assert!(!plain.stdout.is_empty(), "{what} printed nothing");
    assert_eq!(
        String::from_utf8_lossy(&plain.stdout),
        String::from_utf8_lossy(&with.stdout),
        "{what}: output differs under oxalloc"
    );
}

#[test]
fn python3_workload() {
    let script = programs_dir().join("workload.py");
    assert_same(
        "python3",
        both(|| {
            let mut c = Command::new("python3");
            c.arg(&script);
            c
        }),
    );
    // The same on the program break.
    let (plain, mut with) = both(|| {
        let mut c = Command::new("python3");
        c.arg(&script).env("OXALLOC_SOURCE", "brk");
        c
    });
    with.stderr.clear();
    assert_same("python3 on brk", (plain, with));
    // And in secure mode.
    assert_same(
        "python3 in secure mode",
        both(|| {
            let mut c = Command::new("python3");
            c.arg(&script).env("OXALLOC_SECURE", "1");
            c
        }),
    );
}

#[test]
fn gcc_compiles_a_program() {
    let dir = out_dir().join("gcc");
    std::fs::create_dir_all(&dir).unwrap();
    let src = programs_dir().join("compile_me.c");
    // The assembly gcc writes must be identical, and so must the program it builds.
    for (tag, preload) in [("plain", false), ("ox", true)] {
        let mut c = Command::new("gcc");
        c.args(["-O2", "-S", "-o"])
            .arg(dir.join(format!("{tag}.s")))
            .arg(&src);
        let mut b = Command::new("gcc");
        b.args(["-O2", "-o"]).arg(dir.join(tag)).arg(&src);
        if preload {
            c.env("LD_PRELOAD", lib());
            b.env("LD_PRELOAD", lib());
        }
        assert!(
            c.status().expect("gcc is needed: see .ci/run").success(),
            "gcc -S ({tag})"
        );
        assert!(b.status().unwrap().success(), "gcc ({tag})");
    }
    let plain_s = std::fs::read_to_string(dir.join("plain.s")).unwrap();
    let ox_s = std::fs::read_to_string(dir.join("ox.s")).unwrap();
    assert_eq!(plain_s, ox_s, "gcc wrote different assembly under oxalloc");
    let run = |tag: &str| Command::new(dir.join(tag)).output().unwrap().stdout;
    assert_eq!(run("plain"), run("ox"));
}

#[test]
fn git_on_a_scratch_repository() {
    for tag in ["plain", "ox"] {
        let repo = out_dir().join(format!("git-{tag}"));
        let _ = std::fs::remove_dir_all(&repo);
        std::fs::create_dir_all(&repo).unwrap();
        for i in 0..300 {
            std::fs::write(
                repo.join(format!("file{i:03}.txt")),
                format!("line {i}\n").repeat(i % 40 + 1),
            )
            .unwrap();
        }
    }
    let git = |tag: &str, args: &[&str]| {
        let mut c = Command::new("git");
        c.current_dir(out_dir().join(format!("git-{tag}")))
            .args([
                "-c",
                "user.name=oxalloc",
                "-c",
                "user.email=ox@example.invalid",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
            .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z");
        if tag == "ox" {
            c.env("LD_PRELOAD", lib());
        }
        let out = c.output().expect("git is needed: see .ci/run");
        assert!(
            out.status.success(),
            "git {args:?} ({tag}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let script: &[&[&str]] = &[
        &["init", "-q", "."],
        &["add", "."],
        &["commit", "-qm", "first"],
        &["mv", "file001.txt", "renamed.txt"],
        &["rm", "-q", "file002.txt"],
        &["commit", "-qam", "second"],
        &["log", "--stat", "--format=%H %s"],
        &["diff", "HEAD~1", "--stat"],
        &["gc", "-q"],
        &["fsck", "--no-progress"],
        &["ls-files"],
    ];
    for args in script {
        assert_eq!(
            String::from_utf8_lossy(&git("plain", args)),
            String::from_utf8_lossy(&git("ox", args)),
            "git {args:?}"
        );
    }
}

#[test]
fn sqlite3_on_100k_rows() {
    let sql = "create table t(id integer primary key, k text, v real);
        with recursive c(x) as (select 1 union all select x + 1 from c where x < 100000)
          insert into t select x, printf('key%06d', (x * 7919) % 100000), x * 0.5 from c;
        create index t_k on t(k);
        select count(*), sum(v), min(k), max(k) from t;
        select substr(k, 1, 5), count(*), avg(v) from t group by 1 order by 1 limit 5;
        select k from t where k between 'key04000' and 'key04005' order by k;
        delete from t where id % 3 = 0;
        vacuum;
        select count(*) from t;";
    for tag in ["plain", "ox", "secure"] {
        let _ = std::fs::remove_file(out_dir().join(format!("{tag}.db")));
    }
    let run = |tag: &str| {
        let mut c = Command::new("sqlite3");
        c.arg(out_dir().join(format!("{tag}.db"))).arg(sql);
        if tag != "plain" {
            c.env("LD_PRELOAD", lib());
        }
        if tag == "secure" {
            c.env("OXALLOC_SECURE", "1");
        }
        c.output().expect("sqlite3 is needed: see .ci/run")
    };
    let plain = run("plain");
    assert_same("sqlite3", (plain.clone(), run("ox")));
    assert_same("sqlite3 in secure mode", (plain, run("secure")));
}
