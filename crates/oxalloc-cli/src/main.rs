//! The `oxalloc` command.
//!
//! - `oxalloc run [--] CMD ARGS...` runs a program with liboxalloc preloaded and, when it exits,
//!   prints a report: allocations, frees, peak live bytes, peak mapped bytes, peak RSS and a
//!   size-class histogram, summed over every process the program started.
//! - `oxalloc run` with no command runs a built-in demo workload, so it works anywhere.

mod demo;
mod report;

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

fn run(json: bool, lib: Option<PathBuf>, mut command: Vec<OsString>) -> Result<ExitCode, String> {
    let lib = find_library(lib)?;
    let demo = command.is_empty();
    if demo {
        let me = std::env::current_exe().map_err(|e| e.to_string())?;
        command = vec![me.into_os_string(), "demo".into()];
    }
    let report_path = std::env::temp_dir().join(format!(
        "oxalloc-report-{}-{}.jsonl",
        std::process::id(),
        report::nanos()
    ));
    let mut preload = lib.as_os_str().to_os_string();
    if let Some(old) = std::env::var_os("LD_PRELOAD") {
        preload.push(":");
        preload.push(old);
    }
    let started = std::time::Instant::now();
    let status = Command::new(&command[0])
        .args(&command[1..])
        .env("LD_PRELOAD", &preload)
        .env("OXALLOC_REPORT_FILE", &report_path)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", command[0].to_string_lossy()))?;
    let wall = started.elapsed();
    let text = std::fs::read_to_string(&report_path).unwrap_or_default();
    let _ = std::fs::remove_file(&report_path);
    let shown: Vec<String> = if demo {
        vec!["(built-in demo workload)".into()]
    } else {
        command
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    };
    let r = report::Report::from_lines(
        &text,
        shown.join(" "),
        status.code(),
        wall,
        report::children_peak_rss(),
    );
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&r).map_err(|e| e.to_string())?
        );
    } else {
        eprint!("{}", r.to_text());
    }
    Ok(ExitCode::from(
        status.code().unwrap_or(128 + 6).clamp(0, 255) as u8,
    ))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Run { json, lib, command } => run(json, lib, command).unwrap_or_else(|e| {
            eprintln!("oxalloc: {e}");
            ExitCode::from(127)
        }),
        Cmd::Demo => {
            demo::run();
            ExitCode::SUCCESS
        }
    }
}
