//! Sampled heap profiles through `oxalloc run`: a C program with known allocation sites is
//! profiled with the right sites in the right proportions (within sampling error), its leak is
//! listed with its call site, and the folded stacks, flame graph and HTML sections show them;
//! python3 and gcc run with the profiler preloaded and give the same output as without it.
//!
//! Needs liboxalloc.so next to the `oxalloc` binary (`cargo build --workspace`), `cc` and
//! `python3`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn oxalloc() -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_oxalloc"));
    assert!(
        lib().is_file(),
        "{} is missing: build it first with cargo build --workspace",
        lib().display()
    );
    exe
}

fn lib() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_oxalloc"))
        .parent()
        .unwrap()
        .join("liboxalloc.so")
}

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("oxalloc-profile-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `tests/programs/sites.c`: `site_a` keeps 40000 blocks of 300 bytes, `site_b` 40000 of 100
/// (a third as many bytes), `leak_c` loses 2000 blocks of 1000 bytes, `churn` frees all it
/// allocates.
fn compile_sites(dir: &Path) -> PathBuf {
    let bin = dir.join("sites");
    let st = Command::new("cc")
        .args(["-O2", "-g", "-o"])
        .arg(&bin)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/programs/sites.c"
        ))
        .status()
        .expect("cc");
    assert!(st.success(), "cc failed");
    bin
}

fn run(args: &[&str], env: &[(&str, &str)], cmd: &[&str]) -> Output {
    let out = Command::new(oxalloc())
        .arg("run")
        .args(args)
        .arg("--")
        .args(cmd)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "oxalloc run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json_of(out: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let start = text.find('{').expect("JSON on stdout");
    serde_json::from_str(&text[start..]).unwrap()
}

fn site<'a>(sites: &'a serde_json::Value, f: &str) -> Option<&'a serde_json::Value> {
    sites
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["function"] == f)
}

#[test]
fn c_program_sites_proportions_and_leak() {
    let dir = out_dir("c");
    let bin = compile_sites(&dir);
    let (html, folded, svg) = (dir.join("r.html"), dir.join("f.txt"), dir.join("f.svg"));
    // One sample per 16 KiB: about 770 samples of site_a and 270 of site_b live at exit, so
    // the ratio of their estimates is 3 with a relative standard deviation of 7%.
    let out = run(
        &[
            "--json",
            "--report",
            html.to_str().unwrap(),
            "--folded",
            folded.to_str().unwrap(),
            "--flamegraph",
            svg.to_str().unwrap(),
        ],
        &[("OXALLOC_PROFILE_RATE", "16384")],
        &[bin.to_str().unwrap()],
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("sum 120000\n"));
    let json = json_of(&out);
    let p = &json["profiling"];
    assert_eq!(p["enabled"], true, "{p}");
    assert_eq!(p["rate"], 16384);
    assert_eq!(p["samples_dropped"], 0);
    let sites = &p["sites_at_exit"];
    let a = site(sites, "site_a")
        .expect("site_a among the sites")
        .clone();
    let b = site(sites, "site_b")
        .expect("site_b among the sites")
        .clone();
    assert!(
        site(sites, "churn").is_none(),
        "churn frees all it allocates: {sites}"
    );
    let (ab, bb) = (a["bytes"].as_f64().unwrap(), b["bytes"].as_f64().unwrap());
    let ratio = ab / bb;
    assert!(
        (2.25..3.75).contains(&ratio),
        "site_a/site_b = {ratio} ({ab} / {bb})"
    );
    // Unbiased: the estimates are near the true bytes asked for (12 MB and 4 MB; 4% and 6%
    // relative standard deviation).
    assert!((ab / 12e6 - 1.0).abs() < 0.2, "site_a {ab}");
    assert!((bb / 4e6 - 1.0).abs() < 0.3, "site_b {bb}");
    let blocks = a["blocks"].as_f64().unwrap();
    assert!(
        (blocks / 40000.0 - 1.0).abs() < 0.2,
        "site_a blocks {blocks}"
    );
    // The line of the call, from the debug information.
    assert!(
        a["location"].as_str().unwrap_or("").starts_with("sites.c:"),
        "{a}"
    );
    // The leak, with its call site and caller.
    let leak = site(&p["leaks"], "leak_c").expect("leak_c among the leaks");
    assert_eq!(leak["callers"][0], "main", "{leak}");
    let lb = leak["bytes"].as_f64().unwrap();
    assert!((lb / 2e6 - 1.0).abs() < 0.4, "leak_c {lb}");
    // Folded stacks: root first, the sites as leaves under main.
    let folded = std::fs::read_to_string(&folded).unwrap();
    let line = |leaf: &str| {
        folded
            .lines()
            .find(|l| {
                l.split(' ')
                    .next()
                    .unwrap()
                    .ends_with(&format!("main;{leaf}"))
            })
            .unwrap_or_else(|| panic!("no stack ending main;{leaf} in\n{folded}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse::<f64>()
            .unwrap()
    };
    assert!((line("site_a") - ab).abs() <= 1.0);
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.starts_with("<?xml") && svg.contains("site_a") && svg.contains("leak_c"));
    // The HTML sections.
    let html = std::fs::read_to_string(&html).unwrap();
    assert!(!html.contains("Profiling was not enabled"));
    assert!(!html.to_ascii_lowercase().contains("<script"));
    for id in ["sites", "flamegraph", "leaks"] {
        let section = html
            .split(&format!("<section id=\"{id}\""))
            .nth(1)
            .unwrap_or_else(|| panic!("section {id}"))
            .split("</section>")
            .next()
            .unwrap();
        let want = if id == "leaks" { "leak_c" } else { "site_a" };
        assert!(section.contains(want), "section {id} lacks {want}");
    }
    assert!(html.contains("<svg class=\"flame\""));
}

#[test]
fn text_report_lists_the_top_sites() {
    let dir = out_dir("text");
    let bin = compile_sites(&dir);
    let out = run(
        &["--folded", dir.join("f").to_str().unwrap()],
        &[],
        &[bin.to_str().unwrap()],
    );
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("heap profile: "), "{text}");
    let first = text
        .lines()
        .skip_while(|l| !l.starts_with("heap profile: "))
        .nth(1)
        .unwrap();
    assert!(first.contains("site_a"), "{text}");
}

#[test]
fn without_an_output_that_needs_it_profiling_is_off() {
    let dir = out_dir("off");
    let bin = compile_sites(&dir);
    let json = json_of(&run(&["--json"], &[], &[bin.to_str().unwrap()]));
    assert_eq!(json["profiling"]["enabled"], false);
    // And OXALLOC_PROFILE=0 wins over --report.
    let html = dir.join("r.html");
    let json = json_of(&run(
        &["--json", "--report", html.to_str().unwrap()],
        &[("OXALLOC_PROFILE", "0")],
        &[bin.to_str().unwrap()],
    ));
    assert_eq!(json["profiling"]["enabled"], false);
}

/// Runs `cmd` plainly and with the profiler preloaded (a sample every 4 KiB, to exercise it);
/// returns both outputs and the profile files written.
fn plain_and_profiled(name: &str, cmd: &[&str], cwd: &Path) -> (Output, Output, Vec<String>) {
    let plain = Command::new(cmd[0])
        .args(&cmd[1..])
        .current_dir(cwd)
        .output()
        .unwrap();
    let profiles = out_dir(&format!("{name}-profiles"));
    let profiled = Command::new(cmd[0])
        .args(&cmd[1..])
        .current_dir(cwd)
        .env("LD_PRELOAD", lib())
        .env("OXALLOC_PROFILE", "1")
        .env("OXALLOC_PROFILE_RATE", "4096")
        .env("OXALLOC_PROFILE_FILE", profiles.join("p.%p"))
        .output()
        .unwrap();
    let files = std::fs::read_dir(&profiles)
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    (plain, profiled, files)
}

fn assert_profiles(files: &[String]) {
    assert!(!files.is_empty(), "no profile written");
    for f in files {
        assert!(f.starts_with("oxalloc-profile 1\n"), "{f}");
        assert!(f.contains("\nmaps\n"));
        let taken: u64 = f
            .lines()
            .find_map(|l| l.strip_prefix("taken "))
            .unwrap()
            .parse()
            .unwrap();
        assert!(taken > 0, "no sample taken");
    }
}

#[test]
fn python_with_the_profiler_gives_the_same_output() {
    let dir = out_dir("py");
    let script = "import json, re\nd = {str(i): [i] * (i % 50) for i in range(30000)}\ns = json.dumps(d)\nprint(len(s), len(re.findall(r'\\d+', s)), sum(len(v) for v in json.loads(s).values()))\n";
    // The real interpreter, not a wrapper script (pyenv's shim is a bash script).
    let python = if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    let (plain, profiled, files) = plain_and_profiled("py", &[python, "-c", script], &dir);
    assert!(plain.status.success());
    assert_eq!(plain.status.code(), profiled.status.code());
    assert_eq!(
        String::from_utf8_lossy(&plain.stdout),
        String::from_utf8_lossy(&profiled.stdout)
    );
    assert!(
        profiled.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&profiled.stderr)
    );
    assert_profiles(&files);
    // Symbolised through oxalloc run: the interpreter's own functions among the sites.
    let json = json_of(&run(
        &["--json", "--folded", dir.join("f").to_str().unwrap()],
        &[("OXALLOC_PROFILE_RATE", "8192")],
        &[python, "-c", script],
    ));
    let sites = json["profiling"]["sites_at_exit"]
        .as_array()
        .unwrap()
        .clone();
    assert!(!sites.is_empty());
    assert!(
        sites.iter().any(|s| {
            let f = s["function"].as_str().unwrap();
            s["object"].as_str().unwrap().contains("python") && !f.starts_with("0x")
        }),
        "{sites:?}"
    );
}

#[test]
fn gcc_with_the_profiler_gives_the_same_object() {
    let dir = out_dir("gcc");
    let src = dir.join("c.c");
    let mut text = String::from("#include <stdio.h>\n");
    for i in 0..300 {
        text += &format!("int f{i}(int x) {{ int s = 0; for (int i = 0; i < x; i++) s += i * {i} ^ (s >> 3); return s; }}\n");
    }
    text += "int main(void) { printf(\"%d\\n\", f7(10) + f299(3)); return 0; }\n";
    std::fs::write(&src, text).unwrap();
    let (plain, profiled, files) =
        plain_and_profiled("gcc", &["gcc", "-O2", "-S", "c.c", "-o", "-"], &dir);
    assert!(
        plain.status.success(),
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );
    assert!(
        profiled.status.success(),
        "{}",
        String::from_utf8_lossy(&profiled.stderr)
    );
    assert!(plain.stdout.len() > 10_000);
    assert_eq!(plain.stdout, profiled.stdout, "the assembly differs");
    // gcc and cc1 each wrote a profile.
    assert_profiles(&files);
    assert!(files.len() >= 2, "{} profiles", files.len());
}

#[test]
fn samples_follow_huge_blocks_that_realloc_moves() {
    let dir = out_dir("huge");
    let bin = dir.join("huge_realloc");
    let st = Command::new("cc")
        .args(["-O1", "-o"])
        .arg(&bin)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/programs/huge_realloc.c"
        ))
        .status()
        .expect("cc");
    assert!(st.success());
    let (plain, profiled, files) = plain_and_profiled("huge", &[bin.to_str().unwrap()], &dir);
    assert!(
        plain.status.success() && profiled.status.success(),
        "{profiled:?}"
    );
    assert_profiles(&files);
    // 20 blocks of 2 MiB (each sampled: far above the rate), grown to 64 MiB, shrunk to
    // 200 KiB; 10 freed. The 10 live ones are sampled with their last size.
    let sizes: Vec<&str> = files[0]
        .lines()
        .filter_map(|l| l.strip_prefix("sample "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    let huge: Vec<&str> = sizes
        .iter()
        .copied()
        .filter(|s| s.parse::<u64>().unwrap() > 128 * 1024)
        .collect();
    assert_eq!(huge, vec!["204800"; 10], "{sizes:?}");
}
