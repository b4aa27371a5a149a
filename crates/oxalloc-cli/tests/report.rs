//! `oxalloc run` on real programs: the HTML report (`--report`) is self-contained and has every
//! section, its timelines have samples and its heap maps a cell per page of the JSON report;
//! the JSON report carries the timeline and heap maps; the text report draws a heap map.
//!
//! Needs liboxalloc.so next to the `oxalloc` binary (`cargo build --workspace`), `cc` and
//! `python3`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn oxalloc() -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_oxalloc"));
    let lib = exe.parent().unwrap().join("liboxalloc.so");
    assert!(
        lib.is_file(),
        "{} is missing: build it first with cargo build --workspace",
        lib.display()
    );
    exe
}

fn out_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("oxalloc-cli-tests-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A C program that runs about 250 ms: it grows to ~40 MiB of small, medium and huge blocks
/// in steps, frees most of them, and exits with some still live. Prints nothing.
const PROGRAM: &str = r#"
#include <stdlib.h>
#include <string.h>
#include <time.h>
static void nap(long ms) { struct timespec t = {0, ms * 1000000L}; nanosleep(&t, 0); }
int main(void) {
    enum { N = 20000 };
    static void *keep[N];
    for (int step = 0; step < 10; step++) {
        for (int i = step * (N / 10); i < (step + 1) * (N / 10); i++) {
            size_t size = (i % 7 == 0) ? 8000 : (i % 3 == 0 ? 48 : 700);
            keep[i] = malloc(size);
            memset(keep[i], 1, size);
        }
        void *huge = malloc(3 << 20);
        memset(huge, 2, 3 << 20);
        free(huge);
        nap(20);
    }
    for (int i = 0; i < N; i++)
        if (i % 4 != 0) free(keep[i]);
    nap(40);
    return 0;
}
"#;

fn compile() -> PathBuf {
    // A file per call: tests run in parallel, and one writing the binary another is starting
    // makes the start fail (ETXTBSY).
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = out_dir();
    let src = dir.join(format!("grow-{n}.c"));
    let bin = dir.join(format!("grow-{n}"));
    std::fs::write(&src, PROGRAM).unwrap();
    let st = Command::new("cc")
        .args(["-O1", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .expect("cc");
    assert!(st.success(), "cc failed");
    bin
}

fn run(args: &[&str], cmd: &[&str]) -> Output {
    let out = Command::new(oxalloc())
        .arg("run")
        .args(args)
        .arg("--")
        .args(cmd)
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

/// Checks the page is self-contained: nothing loaded from elsewhere.
fn assert_self_contained(html: &str) {
    let lower = html.to_ascii_lowercase();
    for bad in [
        "src=\"http",
        "href=\"http",
        "src='http",
        "href='http",
        "<script src",
        "@import",
        "url(http",
        "<link ",
    ] {
        assert!(
            !lower.contains(bad),
            "the page loads something from elsewhere: {bad}"
        );
    }
    assert!(
        !lower.contains("http://") && !lower.contains("https://"),
        "an external address"
    );
}

/// The heap-map blocks of the page: (pid, when, data-pages, cells drawn as pages).
fn maps_in(html: &str) -> Vec<(u64, String, u64, u64)> {
    html.split("<details class=\"map\"")
        .skip(1)
        .map(|chunk| {
            let chunk = chunk.split("</details>").next().unwrap();
            let attr = |name: &str| {
                chunk
                    .split(&format!("{name}=\""))
                    .nth(1)
                    .and_then(|s| s.split('"').next())
                    .unwrap()
                    .to_string()
            };
            (
                attr("data-pid").parse().unwrap(),
                attr("data-when"),
                attr("data-pages").parse().unwrap(),
                chunk.matches("class=\"pg").count() as u64,
            )
        })
        .collect()
}

fn check_html_against_json(html: &str, json: &serde_json::Value) {
    assert_self_contained(html);
    for id in [
        "summary",
        "timelines",
        "heapmaps",
        "histogram",
        "fragmentation",
        "sites",
        "flamegraph",
        "leaks",
    ] {
        assert!(
            html.contains(&format!("id=\"{id}\"")),
            "section {id} missing"
        );
    }
    // --report turns the heap profiler on: the three profiling sections have its data.
    assert_eq!(json["profiling"]["enabled"], true, "{}", json["profiling"]);
    assert!(!html.contains("Profiling was not enabled"));
    assert!(html.contains("<svg class=\"flame\""));
    let timeline = json["timeline"].as_array().unwrap();
    assert!(timeline.len() > 1, "timeline of {} samples", timeline.len());
    let svg_points = html
        .split("data-series=\"live\"")
        .nth(1)
        .and_then(|s| s.split("points=\"").nth(1))
        .and_then(|s| s.split('"').next())
        .expect("the live-bytes polyline");
    assert_eq!(svg_points.split(' ').count(), timeline.len());
    let maps = maps_in(html);
    assert!(!maps.is_empty(), "no heap map drawn");
    let json_maps = json["heap_maps"].as_array().unwrap();
    for (pid, when, pages, cells) in maps {
        let m = json_maps
            .iter()
            .find(|m| m["pid"] == pid && m["when"] == when.as_str())
            .expect("the drawn map is in the JSON");
        let in_json: u64 = m["areas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["pages"].as_array().unwrap().len() as u64)
            .sum();
        assert_eq!(m["page_count"].as_u64().unwrap(), in_json);
        assert_eq!((pages, cells), (in_json, in_json), "pid {pid} at {when}");
    }
}

#[test]
fn html_report_of_a_c_program() {
    let bin = compile();
    let html_path = out_dir().join("c.html");
    let out = run(
        &["--json", "--report", html_path.to_str().unwrap()],
        &[bin.to_str().unwrap()],
    );
    let json = json_of(&out);
    let html = std::fs::read_to_string(&html_path).unwrap();
    check_html_against_json(&html, &json);
    // The program's heap: a peak map (mapped bytes grew past 8 MiB) and an exit map, both of it.
    let maps = json["heap_maps"].as_array().unwrap();
    let pid = json["processes"][0]["pid"].clone();
    for when in ["peak", "exit"] {
        let m = maps
            .iter()
            .find(|m| m["pid"] == pid && m["when"] == when)
            .unwrap_or_else(|| panic!("no {when} heap map"));
        assert!(m["complete"].as_bool().unwrap());
        assert!(m["page_count"].as_u64().unwrap() > 10);
    }
    let peak = maps.iter().find(|m| m["when"] == "peak").unwrap();
    assert!(peak["peak_mapped_bytes"].as_u64().unwrap() >= 8 << 20);
    // The timeline saw the heap grow.
    let live: Vec<u64> = json["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["live_bytes"].as_u64().unwrap())
        .collect();
    assert!(live.iter().max().unwrap() > &(10 << 20), "{live:?}");
}

#[test]
fn html_and_json_report_of_python() {
    let python = if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    let html_path = out_dir().join("py.html");
    let script = "import time\nt=time.time()\na=[]\nwhile time.time()-t<0.25:\n    a.append(bytearray(3000)); a.append(str(len(a))*50)\n    if len(a)>30000: del a[:15000]\n";
    let out = run(
        &["--json", "--report", html_path.to_str().unwrap()],
        &[python, "-c", script],
    );
    let json = json_of(&out);
    // New fields beside the old ones.
    for key in [
        "allocations",
        "peak_rss_bytes",
        "size_classes",
        "timeline",
        "heap_maps",
        "profiling",
    ] {
        assert!(json.get(key).is_some(), "{key}");
    }
    for key in ["rate", "sites_at_exit", "sites_at_peak", "leaks", "folded"] {
        assert!(json["profiling"].get(key).is_some(), "profiling {key}");
    }
    let s = &json["timeline"][1];
    for key in [
        "t_ms",
        "live_bytes",
        "mapped_bytes",
        "rss_bytes",
        "processes",
    ] {
        assert!(s.get(key).is_some(), "timeline {key}");
    }
    assert!(json["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["rss_bytes"].as_u64().unwrap() > 0));
    let m = &json["heap_maps"][0];
    for key in [
        "pid",
        "when",
        "t_ms",
        "areas",
        "classes",
        "page_count",
        "free_purged_bytes",
    ] {
        assert!(m.get(key).is_some(), "heap map {key}");
    }
    let html = std::fs::read_to_string(&html_path).unwrap();
    check_html_against_json(&html, &json);
}

#[test]
fn text_report_draws_a_terminal_heap_map() {
    let bin = compile();
    let out = run(&[], &[bin.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("heap map of pid"), "{text}");
    assert!(text.contains("timeline:"), "{text}");
    let row = text
        .lines()
        .find(|l| l.contains(" small ") && l.contains('|'))
        .expect("a segment row");
    assert_eq!(row.split('|').nth(1).unwrap().chars().count(), 64, "{row}");
}

/// The page rendered by a real headless browser. CI installs Chromium (`ensure_test_tools` in
/// `.ci/lib.sh`, which fails when it cannot); elsewhere the test is skipped, with a note, when
/// no Chromium is installed.
#[test]
fn html_report_renders_in_chromium_if_installed() {
    let Some(chromium) = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
    else {
        eprintln!("skipped: no chromium installed");
        return;
    };
    let bin = compile();
    let dir = out_dir();
    let html_path = dir.join("shot.html");
    run(
        &["--report", html_path.to_str().unwrap()],
        &[bin.to_str().unwrap()],
    );
    let png = dir.join("shot.png");
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1200,1800",
        ])
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html_path.display()))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("Uncaught"), "script error: {err}");
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 20_000,
        "screenshot of {size} bytes: the page did not render"
    );
}
