//! The report `oxalloc run` prints: liboxalloc writes one JSON line per process at exit; this
//! sums them and draws the size-class histogram.
//!
//! The line's schema is the core's: its scalar fields are `Snapshot::FIELDS`, read into a
//! `Snapshot` by name, so a counter renamed in the core changes this code's build, and a line
//! that does not match the schema is reported, never dropped silently.

use oxalloc_core::size_class::{bin_of, bin_size, BIN_COUNT, MEDIUM_MAX};
use oxalloc_core::Snapshot;
use serde::Serialize;
use std::fmt::Write;
use std::time::Duration;

/// One process's line, as liboxalloc writes it (`Snapshot::write_json`).
#[derive(Debug)]
pub struct ProcessLine {
    pub pid: u32,
    pub peak_rss_bytes: u64,
    pub stats: Snapshot,
}

/// Parses one statistics line, checking it against the core's schema.
pub fn parse_line(line: &str) -> Result<ProcessLine, String> {
    let value: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let obj = value.as_object().ok_or("not a JSON object")?;
    let num = |k: &str| -> Result<u64, String> {
        obj.get(k)
            .and_then(|v| v.as_u64())
            .ok_or_else(|| format!("missing or non-numeric field `{k}`"))
    };
    let mut stats = Snapshot::default();
    for name in Snapshot::FIELDS {
        stats.set_field(name, num(name)?);
    }
    for key in obj.keys() {
        if !Snapshot::FIELDS.contains(&key.as_str())
            && !["pid", "peak_rss_bytes", "bins"].contains(&key.as_str())
        {
            return Err(format!(
                "unknown field `{key}` (library and command disagree)"
            ));
        }
    }
    let bins = obj
        .get("bins")
        .and_then(|b| b.as_array())
        .ok_or("missing field `bins`")?;
    for pair in bins {
        let (size, n) = match pair.as_array().map(|p| p.as_slice()) {
            Some([s, n]) => (s.as_u64(), n.as_u64()),
            _ => (None, None),
        };
        let (Some(size), Some(n)) = (size, n) else {
            return Err(format!("malformed bin {pair}"));
        };
        let bin = if size == 0 {
            0
        } else if size as usize <= MEDIUM_MAX {
            bin_of(size as usize)
        } else {
            BIN_COUNT
        };
        if bin >= BIN_COUNT || (bin != 0 && bin_size(bin) != size as usize) {
            return Err(format!("bin of {size} bytes is not a size class"));
        }
        stats.bins[bin] += n;
    }
    Ok(ProcessLine {
        pid: num("pid")? as u32,
        peak_rss_bytes: num("peak_rss_bytes")?,
        stats,
    })
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
    /// Live, mapped and resident bytes sampled every few milliseconds while the program ran.
    pub timeline: Vec<crate::sample::Sample>,
    /// Heap maps: per process (largest peak of mapped bytes first), the last dump at a peak of
    /// mapped bytes and the dump at exit.
    pub heap_maps: Vec<crate::heapmap::HeapMap>,
    /// Sampled heap profiling (call sites, flame graph, leaks by call site).
    pub profiling: Profiling,
}

/// The call-site data of the report (sampled heap profiling), when profiling was on.
#[derive(Serialize, Default)]
pub struct Profiling {
    pub enabled: bool,
    /// Why there is no data, when there is none.
    pub note: String,
    /// The sites, leaks and folded stacks (flattened into this object in the JSON).
    #[serde(flatten)]
    pub data: Option<crate::profile::Summary>,
}

impl Profiling {
    /// No profile: `oxalloc run` without `--report`, `--folded` or `--flamegraph`.
    pub fn not_enabled() -> Profiling {
        Profiling {
            enabled: false,
            note: "sampled heap profiling was off (it is on with --report, --folded or \
                   --flamegraph, or with OXALLOC_PROFILE=1)"
                .into(),
            data: None,
        }
    }

    /// The profiles the program's processes wrote.
    pub fn from_profiles(profiles: &[crate::profile::RawProfile]) -> Profiling {
        if profiles.is_empty() {
            return Profiling {
                enabled: false,
                note: "no process wrote a heap profile (the program may have been killed, or \
                       ran with OXALLOC_PROFILE=0)"
                    .into(),
                data: None,
            };
        }
        Profiling {
            enabled: true,
            note: String::new(),
            data: Some(crate::profile::summarize(profiles, 20)),
        }
    }
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
    // SAFETY: `rusage` is plain data, for which all zeroes is a valid value.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct we pass.
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
        let mut lines = Vec::new();
        for l in text.lines().filter(|l| !l.trim().is_empty()) {
            match parse_line(l) {
                Ok(p) => lines.push(p),
                Err(e) => {
                    eprintln!("oxalloc: a statistics line does not match the schema ({e}): {l}")
                }
            }
        }
        let mut bins = std::collections::BTreeMap::<u64, u64>::new();
        for l in &lines {
            for (bin, &n) in l.stats.bins.iter().enumerate() {
                if n > 0 {
                    let size = if bin == 0 { 0 } else { bin_size(bin) as u64 };
                    *bins.entry(size).or_default() += n;
                }
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
                    allocations: l.stats.allocations,
                    peak_live_bytes: l.stats.peak_live_bytes,
                    peak_rss_bytes: l.peak_rss_bytes,
                })
                .collect(),
            allocations: sum(|l| l.stats.allocations),
            frees: sum(|l| l.stats.frees),
            peak_live_bytes: max(|l| l.stats.peak_live_bytes),
            peak_mapped_bytes: max(|l| l.stats.peak_mapped_bytes),
            peak_rss_bytes: max(|l| l.peak_rss_bytes).max(kernel_rss),
            huge_allocations: sum(|l| l.stats.huge_allocations),
            threads: sum(|l| l.stats.threads),
            size_classes,
            timeline: Vec::new(),
            heap_maps: Vec::new(),
            profiling: Profiling::not_enabled(),
        }
    }

    /// The heap map the text report draws: the first process's peak dump, else its exit dump.
    pub fn main_heap_map(&self) -> Option<&crate::heapmap::HeapMap> {
        let pid = self.heap_maps.first()?.pid;
        let of_pid = || self.heap_maps.iter().filter(move |m| m.pid == pid);
        of_pid()
            .find(|m| m.when == "peak")
            .or_else(|| of_pid().find(|m| m.when == "exit"))
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
        if self.timeline.len() > 1 {
            let max = |f: fn(&crate::sample::Sample) -> u64| {
                self.timeline.iter().map(f).max().unwrap_or(0)
            };
            let _ = writeln!(
                s,
                "timeline: {} samples; highest live {}, mapped {}, RSS {}",
                self.timeline.len(),
                human(max(|p| p.live_bytes)),
                human(max(|p| p.mapped_bytes)),
                human(max(|p| p.rss_bytes))
            );
        }
        if let Some(m) = self.main_heap_map() {
            s.push_str(&crate::heapmap::to_text(m, 16));
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

pub(crate) fn human(b: u64) -> String {
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
    use oxalloc_core::util::fmt::FixedBuf;

    /// A line as liboxalloc writes it, through the core's own writer.
    fn line(s: &Snapshot, pid: u32, rss: u64) -> String {
        let mut buf = FixedBuf::<8192>::new();
        s.write_json(&mut buf, pid, rss).unwrap();
        String::from_utf8(buf.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn library_and_command_agree_on_the_schema() {
        // Every field gets a distinct value; the command must read back exactly what the
        // library wrote. A counter added, renamed or dropped on one side only fails here.
        let mut s = Snapshot::default();
        for (i, name) in Snapshot::FIELDS.iter().enumerate() {
            s.set_field(name, 1000 + i as u64);
        }
        s.bins[0] = 7;
        s.bins[1] = 3;
        s.bins[oxalloc_core::size_class::BIN_COUNT - 1] = 2;
        let text = line(&s, 42, 4096);
        let p = parse_line(text.trim_end()).unwrap();
        assert_eq!((p.pid, p.peak_rss_bytes), (42, 4096));
        for name in Snapshot::FIELDS {
            assert_eq!(p.stats.field(name), s.field(name), "{name}");
        }
        assert_eq!(p.stats.bins, s.bins);
        let extra = text.trim_end().replacen('{', "{\"no_such_counter\":1,", 1);
        assert!(parse_line(&extra).unwrap_err().contains("no_such_counter"));
        let missing = text.replacen("\"threads\"", "\"thread_count\"", 1);
        assert!(parse_line(missing.trim_end()).is_err());
    }

    #[test]
    fn sums_processes_and_draws_bins() {
        let mut a = Snapshot::default();
        (a.allocations, a.frees, a.live_bytes, a.peak_live_bytes) = (10, 9, 16, 100);
        (a.peak_mapped_bytes, a.huge_allocations, a.threads) = (4194304, 1, 1);
        (a.bins[0], a.bins[1], a.bins[2]) = (1, 6, 3);
        let mut b = Snapshot::default();
        (b.allocations, b.frees, b.peak_live_bytes) = (5, 5, 300);
        (b.peak_mapped_bytes, b.threads, b.bins[1]) = (1000, 2, 5);
        let text = line(&a, 1, 1000) + &line(&b, 2, 5000);
        let r = Report::from_lines(
            &text,
            "prog".into(),
            Some(0),
            Duration::from_millis(1500),
            0,
        );
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
