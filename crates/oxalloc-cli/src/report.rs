//! The report `oxalloc run` prints: liboxalloc writes one JSON line per process at exit; this
//! sums them and draws the size-class histogram.

use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::time::Duration;

/// One process's line, as liboxalloc writes it.
#[derive(Deserialize, Default)]
struct ProcessLine {
    pid: u32,
    peak_rss_bytes: u64,
    allocations: u64,
    frees: u64,
    peak_live_bytes: u64,
    peak_mapped_bytes: u64,
    huge_allocations: u64,
    threads: u64,
    bins: Vec<(u64, u64)>,
}

/// Per-process summary in the report.
#[derive(Serialize)]
pub struct Process {
    pub pid: u32,
    pub allocations: u64,
    pub peak_live_bytes: u64,
    pub peak_rss_bytes: u64,
}

/// The whole report.
#[derive(Serialize)]
pub struct Report {
    pub command: String,
    pub exit_code: Option<i32>,
    pub wall_seconds: f64,
    pub processes: Vec<Process>,
    pub allocations: u64,
    pub frees: u64,
    /// Largest peak of live bytes of any one process.
    pub peak_live_bytes: u64,
    /// Largest peak of mapped bytes of any one process.
    pub peak_mapped_bytes: u64,
    /// Largest peak RSS of the program's processes (from the kernel).
    pub peak_rss_bytes: u64,
    pub huge_allocations: u64,
    pub threads: u64,
    /// (block size in bytes, allocations); size 0 stands for huge blocks.
    pub size_classes: Vec<(u64, u64)>,
}

/// Nanoseconds since the epoch (for unique file names).
pub fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Peak RSS of the largest waited-for child process, in bytes.
pub fn children_peak_rss() -> u64 {
    // SAFETY: getrusage fills the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    u.ru_maxrss as u64 * 1024
}

impl Report {
    /// Sums the JSON lines of every process.
    pub fn from_lines(
        text: &str,
        command: String,
        exit_code: Option<i32>,
        wall: Duration,
        kernel_rss: u64,
    ) -> Report {
        let lines: Vec<ProcessLine> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let mut bins = std::collections::BTreeMap::<u64, u64>::new();
        for l in &lines {
            for &(size, n) in &l.bins {
                *bins.entry(size).or_default() += n;
            }
        }
        let max = |f: fn(&ProcessLine) -> u64| lines.iter().map(f).max().unwrap_or(0);
        let sum = |f: fn(&ProcessLine) -> u64| lines.iter().map(f).sum::<u64>();
        // Huge blocks (size 0) go last.
        let huge = bins.remove(&0);
        let mut size_classes: Vec<(u64, u64)> = bins.into_iter().collect();
        size_classes.extend(huge.map(|n| (0, n)));
        Report {
            command,
            exit_code,
            wall_seconds: wall.as_secs_f64(),
            processes: lines
                .iter()
                .map(|l| Process {
                    pid: l.pid,
                    allocations: l.allocations,
                    peak_live_bytes: l.peak_live_bytes,
                    peak_rss_bytes: l.peak_rss_bytes,
                })
                .collect(),
            allocations: sum(|l| l.allocations),
            frees: sum(|l| l.frees),
            peak_live_bytes: max(|l| l.peak_live_bytes),
            peak_mapped_bytes: max(|l| l.peak_mapped_bytes),
            peak_rss_bytes: max(|l| l.peak_rss_bytes).max(kernel_rss),
            huge_allocations: sum(|l| l.huge_allocations),
            threads: sum(|l| l.threads),
            size_classes,
        }
    }

    /// The report as text for a terminal.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let exit = self
            .exit_code
            .map(|c| c.to_string())
            .unwrap_or_else(|| "signal".into());
        let _ = writeln!(s, "\n== oxalloc report: {} ==", self.command);
        let _ = writeln!(
            s,
            "exit {exit}, {:.2} s, {} process(es), {} thread heap(s)",
            self.wall_seconds,
            self.processes.len(),
            self.threads
        );
        if self.processes.is_empty() {
            let _ = writeln!(s, "no statistics were written: the program may not use malloc, or ran statically linked");
            return s;
        }
        let _ = writeln!(s, "  allocations      {:>14}", group(self.allocations));
        let _ = writeln!(s, "  frees            {:>14}", group(self.frees));
        let _ = writeln!(s, "  peak live        {:>14}", human(self.peak_live_bytes));
        let _ = writeln!(
            s,
            "  peak mapped      {:>14}",
            human(self.peak_mapped_bytes)
        );
        let _ = writeln!(s, "  peak RSS         {:>14}", human(self.peak_rss_bytes));
        let _ = writeln!(s, "  huge blocks      {:>14}", group(self.huge_allocations));
        let total: u64 = self.size_classes.iter().map(|&(_, n)| n).sum();
        if total > 0 {
            let _ = writeln!(s, "size classes (allocations per block size):");
            let top = self
                .size_classes
                .iter()
                .map(|&(_, n)| n)
                .max()
                .unwrap_or(1)
                .max(1);
            for &(size, n) in &self.size_classes {
                if n * 1000 < total {
                    continue; // under 0.1%
                }
                let bar = "█".repeat((n * 40).div_ceil(top) as usize);
                let label = if size == 0 {
                    "huge".to_string()
                } else {
                    human(size)
                };
                let _ = writeln!(
                    s,
                    "  {label:>10} {bar:<40} {:>12} {:>5.1}%",
                    group(n),
                    n as f64 * 100.0 / total as f64
                );
            }
            let hidden = self
                .size_classes
                .iter()
                .filter(|&&(_, n)| n * 1000 < total)
                .count();
            if hidden > 0 {
                let _ = writeln!(s, "  ({hidden} size classes under 0.1% not shown)");
            }
        }
        if self.processes.len() > 1 {
            let _ = writeln!(s, "processes:");
            for p in &self.processes {
                let _ = writeln!(
                    s,
                    "  pid {:>8}: {:>12} allocations, peak live {:>10}, peak RSS {:>10}",
                    p.pid,
                    group(p.allocations),
                    human(p.peak_live_bytes),
                    human(p.peak_rss_bytes)
                );
            }
        }
        s
    }
}

fn group(n: u64) -> String {
    let d = n.to_string();
    let mut out = String::new();
    for (i, c) in d.chars().enumerate() {
        if i > 0 && (d.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn human(b: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_processes_and_draws_bins() {
        let text = concat!(
            "{\"pid\":1,\"peak_rss_bytes\":1000,\"allocations\":10,\"frees\":9,\"live_bytes\":16,\"peak_live_bytes\":100,\"peak_mapped_bytes\":4194304,\"huge_allocations\":1,\"threads\":1,\"bins\":[[0,1],[16,6],[32,3]]}\n",
            "{\"pid\":2,\"peak_rss_bytes\":5000,\"allocations\":5,\"frees\":5,\"live_bytes\":0,\"peak_live_bytes\":300,\"peak_mapped_bytes\":1000,\"huge_allocations\":0,\"threads\":2,\"bins\":[[16,5]]}\n",
            "not json\n"
        );
        let r = Report::from_lines(text, "prog".into(), Some(0), Duration::from_millis(1500), 0);
        assert_eq!(r.processes.len(), 2);
        assert_eq!((r.allocations, r.frees, r.threads), (15, 14, 3));
        assert_eq!(
            (r.peak_live_bytes, r.peak_rss_bytes, r.peak_mapped_bytes),
            (300, 5000, 4194304)
        );
        assert_eq!(r.size_classes, vec![(16, 11), (32, 3), (0, 1)]);
        let t = r.to_text();
        assert!(
            t.contains("allocations")
                && t.contains("16 B")
                && t.contains("huge")
                && t.contains("4.0 MiB"),
            "{t}"
        );
        assert_eq!(group(1234567), "1,234,567");
    }
}
