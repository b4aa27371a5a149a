//! The timeline sampler: while the program runs, `oxalloc run` reads the shared sample file
//! every few milliseconds (the gauges each process of the program keeps there, see
//! `oxalloc_core::stats::sample`) and each process's resident set (`VmRSS` of
//! `/proc/PID/status`), and sums them into one point per tick.

use oxalloc_core::stats::sample::{
    EXITED, FILE_BYTES, HEADER_WORDS, LIVE, MAGIC, MAPPED, NEXT, PID, SLOTS, SLOT_WORDS,
};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// One point of the timelines, summed over the program's live processes.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Sample {
    /// Milliseconds since the program started.
    pub t_ms: f64,
    pub live_bytes: u64,
    pub mapped_bytes: u64,
    pub rss_bytes: u64,
    /// Processes that had published their gauges.
    pub processes: u32,
}

/// Creates the sample file: zeroes and the magic number.
pub fn create(path: &Path) -> std::io::Result<File> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    f.set_len(FILE_BYTES as u64)?;
    f.write_all_at(&MAGIC.to_le_bytes(), 0)?;
    Ok(f)
}

/// A slot as read from the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    pub pid: u32,
    pub live: u64,
    pub mapped: u64,
    pub exited: bool,
}

/// The slots of the file's bytes that are in use now: for each pid its newest slot (an `exec`
/// claims a new one under the same pid), without those that have exited.
pub fn current_slots(bytes: &[u8]) -> Vec<Slot> {
    let word = |i: usize| {
        bytes
            .get(i * 8..i * 8 + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
            .unwrap_or(0)
    };
    if word(0) != MAGIC {
        return Vec::new();
    }
    let claimed = (word(NEXT) as usize).min(SLOTS);
    let mut newest = BTreeMap::new();
    for n in 0..claimed {
        let base = HEADER_WORDS + n * SLOT_WORDS;
        let pid = word(base + PID) as u32;
        if pid == 0 {
            continue;
        }
        newest.insert(
            pid,
            Slot {
                pid,
                live: word(base + LIVE),
                mapped: word(base + MAPPED),
                exited: word(base + EXITED) != 0,
            },
        );
    }
    newest.into_values().filter(|s| !s.exited).collect()
}

/// `VmRSS` of a process in bytes; None when it is gone (or a zombie, which has no `VmRSS`).
pub fn rss_of(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vmrss(&text)
}

/// The `VmRSS:` line of a `/proc/PID/status` text, in bytes.
pub fn parse_vmrss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Reads the file and the processes once.
pub struct Sampler {
    file: File,
    buf: Vec<u8>,
}

impl Sampler {
    pub fn new(file: File) -> Sampler {
        Sampler {
            file,
            buf: vec![0; FILE_BYTES],
        }
    }

    /// One point; `child` is the program's first process (counted for RSS even before its
    /// library has started).
    pub fn sample(&mut self, t_ms: f64, child: u32) -> Sample {
        let n = self.file.read_at(&mut self.buf, 0).unwrap_or(0);
        let slots = current_slots(&self.buf[..n]);
        let mut s = Sample {
            t_ms,
            live_bytes: 0,
            mapped_bytes: 0,
            rss_bytes: 0,
            processes: 0,
        };
        let mut child_seen = false;
        for slot in &slots {
            // A process that is gone without exiting cleanly (killed, `_exit`) no longer counts.
            let Some(rss) = rss_of(slot.pid) else {
                continue;
            };
            child_seen |= slot.pid == child;
            s.live_bytes += slot.live;
            s.mapped_bytes += slot.mapped;
            s.rss_bytes += rss;
            s.processes += 1;
        }
        if !child_seen {
            s.rss_bytes += rss_of(child).unwrap_or(0);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(slots: &[(u64, u64, u64, u64)]) -> Vec<u8> {
        let mut words = vec![0u64; FILE_BYTES / 8];
        words[0] = MAGIC;
        words[NEXT] = slots.len() as u64;
        for (n, &(pid, live, mapped, exited)) in slots.iter().enumerate() {
            let b = HEADER_WORDS + n * SLOT_WORDS;
            (words[b + PID], words[b + LIVE]) = (pid, live);
            (words[b + MAPPED], words[b + EXITED]) = (mapped, exited);
        }
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn newest_slot_per_pid_and_no_exited_ones() {
        // pid 10 exec'd (two slots: the newest counts); pid 11 exited; pid 12 running.
        let bytes = file_with(&[(10, 1, 2, 0), (11, 5, 6, 1), (10, 3, 4, 0), (12, 7, 8, 0)]);
        let s = current_slots(&bytes);
        assert_eq!(
            s.iter()
                .map(|s| (s.pid, s.live, s.mapped))
                .collect::<Vec<_>>(),
            vec![(10, 3, 4), (12, 7, 8)]
        );
        assert!(current_slots(&bytes[8..]).is_empty(), "no magic, no slots");
    }

    #[test]
    fn reads_vmrss() {
        let status = "Name:\tx\nVmPeak:\t 100 kB\nVmRSS:\t    2048 kB\nThreads: 1\n";
        assert_eq!(parse_vmrss(status), Some(2 << 20));
        assert_eq!(parse_vmrss("Name: zombie\n"), None);
        assert!(rss_of(std::process::id()).unwrap() > 0);
    }

    #[test]
    fn sampler_sums_live_processes() {
        let dir = std::env::temp_dir().join(format!("oxalloc-sample-test-{}", std::process::id()));
        let f = create(&dir).unwrap();
        let me = std::process::id() as u64;
        f.write_all_at(&file_with(&[(me, 100, 200, 0)]), 0).unwrap();
        let mut s = Sampler::new(f);
        let p = s.sample(5.0, me as u32);
        let _ = std::fs::remove_file(&dir);
        assert_eq!((p.live_bytes, p.mapped_bytes, p.processes), (100, 200, 1));
        assert!(p.rss_bytes > 0);
    }
}
