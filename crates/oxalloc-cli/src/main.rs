//! The `oxalloc` command.
//!
//! - `oxalloc run [--] CMD ARGS...` runs a program with liboxalloc preloaded and, when it exits,
//!   prints a report: allocations, frees, peak live bytes, peak mapped bytes, peak RSS and a
//!   size-class histogram, summed over every process the program started; while it runs, the
//!   command samples live, mapped and resident bytes every 5 ms (`sample`), and each process
//!   writes heap maps at its peak and at exit (`heapmap`). `--report FILE.html` writes all of it
//!   as one self-contained HTML page (`html`).
//! - `oxalloc run` with no command runs a built-in demo workload, so it works anywhere.

mod demo;
mod heapmap;
mod html;
mod profile;
mod report;
mod sample;

use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

#[derive(Parser)]
#[command(
    name = "oxalloc",
    version,
    about = "Run programs on the oxalloc allocator and see how they use the heap"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a program with liboxalloc preloaded, then print a heap report.
    Run {
        /// Print the report as JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Also write the report as one self-contained HTML file (timelines, heap maps, call
        /// sites, flame graph, leaks). Turns sampled heap profiling on.
        #[arg(long, value_name = "FILE.html")]
        report: Option<PathBuf>,
        /// Write the heap profile's live blocks at exit as folded stacks (`root;...;leaf
        /// bytes`, for flame graph tools). Turns sampled heap profiling on.
        #[arg(long, value_name = "FILE")]
        folded: Option<PathBuf>,
        /// Write a flame graph SVG of the blocks live at exit. Turns sampled heap profiling on.
        #[arg(long, value_name = "FILE.svg")]
        flamegraph: Option<PathBuf>,
        /// Path of liboxalloc.so (default: next to this executable, or $OXALLOC_LIB).
        #[arg(long, value_name = "PATH")]
        lib: Option<PathBuf>,
        /// The program and its arguments; without one, the built-in demo workload runs.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "CMD"
        )]
        command: Vec<OsString>,
    },
    /// The built-in demo workload (what `oxalloc run` runs with no command).
    #[command(hide = true)]
    Demo,
}

fn find_library(explicit: Option<PathBuf>) -> Result<PathBuf, String> {
    let mut candidates = Vec::new();
    if let Some(p) = explicit {
        candidates.push(p);
    }
    if let Some(p) = std::env::var_os("OXALLOC_LIB") {
        candidates.push(PathBuf::from(p));
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            candidates.push(dir.join("liboxalloc.so"));
            candidates.push(dir.join("../lib/liboxalloc.so"));
        }
    }
    candidates
        .iter()
        .find(|p| p.is_file())
        .map(|p| p.canonicalize().unwrap_or_else(|_| p.clone()))
        .ok_or_else(|| {
            format!(
                "liboxalloc.so not found (looked at {}); build it with `cargo build --release` or pass --lib",
                candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            )
        })
}

/// The library's clock (`CLOCK_MONOTONIC_COARSE`) in milliseconds, as heap maps are stamped.
fn coarse_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-parameter.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// How often the timelines are sampled.
const SAMPLE_EVERY: std::time::Duration = std::time::Duration::from_millis(5);

/// What `oxalloc run` writes besides its report on stderr or stdout.
struct Outputs {
    json: bool,
    html: Option<PathBuf>,
    folded: Option<PathBuf>,
    flamegraph: Option<PathBuf>,
}

impl Outputs {
    /// Whether the program runs with the heap profiler: for any output that shows call sites,
    /// unless the environment says otherwise (`OXALLOC_PROFILE` is passed through as it is).
    fn profile(&self) -> bool {
        let asked = self.html.is_some() || self.folded.is_some() || self.flamegraph.is_some();
        match std::env::var("OXALLOC_PROFILE") {
            Ok(v) => !matches!(
                v.to_ascii_lowercase().as_str(),
                "0" | "no" | "off" | "false"
            ),
            Err(_) => asked,
        }
    }
}

fn run(out: Outputs, lib: Option<PathBuf>, mut command: Vec<OsString>) -> Result<ExitCode, String> {
    let json = out.json;
    let html_path = out.html.clone();
    let lib = find_library(lib)?;
    let demo = command.is_empty();
    if demo {
        let me = std::env::current_exe().map_err(|e| e.to_string())?;
        command = vec![me.into_os_string(), "demo".into()];
    }
    let work = std::env::temp_dir().join(format!(
        "oxalloc-run-{}-{}",
        std::process::id(),
        report::nanos()
    ));
    let maps_dir = work.join("heapmaps");
    std::fs::create_dir_all(&maps_dir).map_err(|e| format!("{}: {e}", maps_dir.display()))?;
    let report_path = work.join("report.jsonl");
    let profile_dir = work.join("profiles");
    let profiling = out.profile();
    if profiling {
        std::fs::create_dir_all(&profile_dir)
            .map_err(|e| format!("{}: {e}", profile_dir.display()))?;
    }
    let sample_path = work.join("samples");
    let sample_file =
        sample::create(&sample_path).map_err(|e| format!("{}: {e}", sample_path.display()))?;
    let mut preload = lib.as_os_str().to_os_string();
    if let Some(old) = std::env::var_os("LD_PRELOAD") {
        preload.push(":");
        preload.push(old);
    }
    let start_ms = coarse_ms();
    let started = std::time::Instant::now();
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..])
        .env("LD_PRELOAD", &preload)
        .env("OXALLOC_REPORT_FILE", &report_path)
        .env("OXALLOC_SAMPLE_FILE", &sample_path)
        .env("OXALLOC_HEAPMAP_DIR", &maps_dir);
    if profiling {
        cmd.env("OXALLOC_PROFILE", "1")
            .env("OXALLOC_PROFILE_FILE", profile_dir.join("profile-%p"));
    }
    let spawned = cmd.spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&work);
            return Err(format!("cannot run {}: {e}", command[0].to_string_lossy()));
        }
    };
    let mut sampler = sample::Sampler::new(sample_file);
    let mut timeline = Vec::new();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => return Err(format!("waiting for the program: {e}")),
        }
        let t = started.elapsed().as_secs_f64() * 1000.0;
        timeline.push(sampler.sample(t, child.id()));
        std::thread::sleep(SAMPLE_EVERY);
    };
    let wall = started.elapsed();
    let text = std::fs::read_to_string(&report_path).unwrap_or_default();
    let heap_maps = heapmap::read_dir(&maps_dir, start_ms);
    let profiles = if profiling {
        profile::read_dir(&profile_dir)
    } else {
        Vec::new()
    };
    let _ = std::fs::remove_dir_all(&work);
    let shown: Vec<String> = if demo {
        vec!["(built-in demo workload)".into()]
    } else {
        command
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    };
    let mut r = report::Report::from_lines(
        &text,
        shown.join(" "),
        status.code(),
        wall,
        report::children_peak_rss(),
    );
    r.timeline = timeline;
    r.heap_maps = heap_maps;
    if profiling {
        r.profiling = report::Profiling::from_profiles(&profiles);
    }
    let folded = r
        .profiling
        .data
        .as_ref()
        .map(|d| d.folded.clone())
        .unwrap_or_default();
    if let Some(path) = &out.folded {
        let mut text = folded.join("\n");
        text.push('\n');
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if let Some(path) = &out.flamegraph {
        let svg = profile::flamegraph_svg(&folded, "Live heap at exit (estimated bytes)")?;
        std::fs::write(path, svg).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if let Some(path) = &html_path {
        std::fs::write(path, html::render(&r)).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&r).map_err(|e| e.to_string())?
        );
    } else {
        eprint!("{}", r.to_text());
        if let Some(d) = &r.profiling.data {
            eprint!("{}", d.to_text(5));
        }
        if let Some(path) = &html_path {
            eprintln!("HTML report: {}", path.display());
        }
    }
    Ok(ExitCode::from(
        status.code().unwrap_or(128 + 6).clamp(0, 255) as u8,
    ))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Run {
            json,
            report,
            folded,
            flamegraph,
            lib,
            command,
        } => run(
            Outputs {
                json,
                html: report,
                folded,
                flamegraph,
            },
            lib,
            command,
        )
        .unwrap_or_else(|e| {
            eprintln!("oxalloc: {e}");
            ExitCode::from(127)
        }),
        Cmd::Demo => {
            demo::run();
            ExitCode::SUCCESS
        }
    }
}
