//! Statistics: declared once (the `counters!` list generates the global atomics, the snapshot
//! struct and its text and JSON output), counted per thread without atomics on the hot paths and
//! merged into the global counters on slow paths and at thread exit.
//!
//! Allocation counts cost nothing on the fast path: when a page's free list is refilled, every
//! block put on it is counted as an allocation in advance, and blocks still on a free list when a
//! page is released (or when a snapshot is taken) are taken back off. Live bytes are exact in a
//! snapshot (the sum of `used` over all pages); the peak of live bytes is sampled when pages are
//! refilled, each time a thread's change since the last sample reaches `LIVE_SAMPLE_BYTES`
//! (256 KiB), so it is exact to within one page per size class plus 256 KiB per thread.

use crate::size_class::{bin_size, BIN_COUNT};
use crate::sync::{AtomicU64, Ordering};
use core::fmt::{self, Write};

macro_rules! counters {
    ($($name:ident: $doc:literal,)*) => {
        /// Process-wide counters (atomics, updated on slow paths only).
        pub struct GlobalCounters {
            $(#[doc = $doc] pub $name: AtomicU64,)*
            /// Allocations counted per size class (merged from heaps).
            pub bins: [AtomicU64; BIN_COUNT],
        }
        impl GlobalCounters {
            /// All zero.
            pub const fn new() -> Self {
                #[allow(clippy::declare_interior_mutable_const)]
                const Z: AtomicU64 = AtomicU64::new(0);
                GlobalCounters { $($name: Z,)* bins: [Z; BIN_COUNT] }
            }
        }
        /// A point-in-time copy of every statistic.
        #[derive(Clone, Copy, Debug)]
        pub struct Snapshot {
            $(#[doc = $doc] pub $name: u64,)*
            /// Allocations made, per size class (bin 0 holds huge blocks).
            pub bins: [u64; BIN_COUNT],
            /// Allocations made, all sizes.
            pub allocations: u64,
            /// Frees made, all sizes.
            pub frees: u64,
            /// Bytes in blocks handed out and not freed (block sizes, not requests).
            pub live_bytes: u64,
        }
        impl Default for Snapshot {
            fn default() -> Self {
                Snapshot { $($name: 0,)* bins: [0; BIN_COUNT], allocations: 0, frees: 0, live_bytes: 0 }
            }
        }
        impl Snapshot {
            /// Copies the global counters.
            pub fn from_counters(c: &GlobalCounters) -> Self {
                let mut s = Snapshot { $($name: c.$name.load(Ordering::Relaxed),)* ..Default::default() };
                for (dst, src) in s.bins.iter_mut().zip(c.bins.iter()) {
                    *dst = src.load(Ordering::Relaxed);
                }
                s
            }
            /// Writes the snapshot as one JSON object on one line, with the process id and its
            /// peak resident set size (which only the OS layer can measure).
            pub fn write_json(&self, out: &mut dyn Write, pid: u32, peak_rss_bytes: u64) -> fmt::Result {
                write!(out, "{{\"pid\":{pid},\"peak_rss_bytes\":{peak_rss_bytes},\"allocations\":{},\"frees\":{},\"live_bytes\":{}", self.allocations, self.frees, self.live_bytes)?;
                $(write!(out, concat!(",\"", stringify!($name), "\":{}"), self.$name)?;)*
                out.write_str(",\"bins\":[")?;
                let mut first = true;
                for (bin, &n) in self.bins.iter().enumerate() {
                    if n == 0 { continue; }
                    if !first { out.write_str(",")?; }
                    first = false;
                    write!(out, "[{},{}]", if bin == 0 { 0 } else { bin_size(bin) }, n)?;
                }
                out.write_str("]}\n")
            }
        }
    };
}

counters! {
    peak_live_bytes: "Highest live bytes seen (sampled at page refills and huge allocations).",
    live_estimate: "Live bytes as last sampled (wrapping two's complement).",
    mapped_bytes: "Bytes currently mapped from the memory source.",
    peak_mapped_bytes: "Highest mapped bytes.",
    segments: "Segments currently mapped.",
    huge_allocations: "Blocks larger than MEDIUM_MAX allocated.",
    huge_frees: "Blocks larger than MEDIUM_MAX freed.",
    huge_live_bytes: "Bytes in live huge blocks.",
    threads: "Thread heaps created.",
    abandoned: "Segments abandoned by exiting threads.",
    reclaimed: "Abandoned segments taken over by other threads.",
    purged_bytes: "Bytes given back to the OS while staying mapped.",
}

impl GlobalCounters {
    /// Adds to a gauge and raises its peak.
    pub fn gauge_add(value: &AtomicU64, peak: &AtomicU64, delta: u64) {
        let now = value
            .fetch_add(delta, Ordering::Relaxed)
            .wrapping_add(delta);
        if (now as i64) > 0 {
            peak.fetch_max(now, Ordering::Relaxed);
        }
    }

    /// Subtracts from a gauge.
    pub fn gauge_sub(value: &AtomicU64, delta: u64) {
        value.fetch_sub(delta, Ordering::Relaxed);
    }
}

impl Default for GlobalCounters {
    fn default() -> Self {
        Self::new()
    }
}

/// Per-heap counters, written only by the owning thread (plain load and store, no atomic
/// read-modify-write) and read by snapshots from any thread.
pub struct HeapCounters {
    /// Blocks counted as allocated per bin (see the module comment), wrapping.
    pub bins: [AtomicU64; BIN_COUNT],
    /// Live-byte change not yet added to the global estimate.
    pub live_delta: i64,
}

impl HeapCounters {
    /// All zero.
    pub const fn new() -> Self {
        #[allow(clippy::declare_interior_mutable_const)]
        const Z: AtomicU64 = AtomicU64::new(0);
        HeapCounters {
            bins: [Z; BIN_COUNT],
            live_delta: 0,
        }
    }

    /// Adds `n` (wrapping, so a negative amount is `n.wrapping_neg()`) allocations to `bin`.
    #[inline]
    pub fn add_allocations(&self, bin: usize, n: u64) {
        let c = &self.bins[bin];
        c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    /// Moves this heap's counts into the global counters.
    pub fn flush(&mut self, global: &GlobalCounters) {
        for (bin, n) in self.bins.iter().enumerate() {
            let v = n.swap(0, Ordering::Relaxed);
            if v != 0 {
                global.bins[bin].fetch_add(v, Ordering::Relaxed);
            }
        }
        self.flush_live(global);
    }

    /// Adds the live-byte change to the global estimate and samples the peak.
    #[cold]
    pub fn flush_live(&mut self, global: &GlobalCounters) {
        if self.live_delta != 0 {
            GlobalCounters::gauge_add(
                &global.live_estimate,
                &global.peak_live_bytes,
                self.live_delta as u64,
            );
            self.live_delta = 0;
        }
    }
}

impl Default for HeapCounters {
    fn default() -> Self {
        Self::new()
    }
}

/// A `fmt::Write` into a fixed buffer, for printing without allocating. Output past the end of
/// the buffer is dropped.
pub struct FixedBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> FixedBuf<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        FixedBuf {
            buf: [0; N],
            len: 0,
        }
    }
    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
    /// Forgets what was written.
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

impl<const N: usize> Default for FixedBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Write for FixedBuf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(N - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Writes `bytes` in a human unit (B, KiB, MiB, GiB).
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        if b < 1024 {
            write!(f, "{b} B")
        } else if b < 1024 * 1024 {
            write!(f, "{}.{} KiB", b / 1024, b % 1024 * 10 / 1024)
        } else if b < 1024 * 1024 * 1024 {
            write!(f, "{}.{} MiB", b >> 20, ((b & 0xfffff) * 10) >> 20)
        } else {
            write!(f, "{}.{} GiB", b >> 30, ((b & 0x3fff_ffff) * 10) >> 30)
        }
    }
}

impl Snapshot {
    /// Writes a short human-readable summary (several lines).
    pub fn write_text(&self, out: &mut dyn Write) -> fmt::Result {
        writeln!(
            out,
            "oxalloc: {} allocations, {} frees, {} live",
            self.allocations,
            self.frees,
            Bytes(self.live_bytes)
        )?;
        writeln!(
            out,
            "oxalloc: peak live {}, mapped {} (peak {}), {} segments, {} threads",
            Bytes(self.peak_live_bytes),
            Bytes(self.mapped_bytes),
            Bytes(self.peak_mapped_bytes),
            self.segments,
            self.threads
        )?;
        writeln!(
            out,
            "oxalloc: huge blocks {} allocated, {} freed; segments abandoned {}, reclaimed {}",
            self.huge_allocations, self.huge_frees, self.abandoned, self.reclaimed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_one_line_with_bins() {
        let mut s = Snapshot {
            allocations: 3,
            frees: 1,
            ..Default::default()
        };
        s.bins[1] = 2;
        s.bins[0] = 1;
        let mut buf = FixedBuf::<1024>::new();
        s.write_json(&mut buf, 42, 4096).unwrap();
        let text = core::str::from_utf8(buf.as_bytes()).unwrap();
        assert!(
            text.starts_with("{\"pid\":42,\"peak_rss_bytes\":4096,\"allocations\":3,\"frees\":1"),
            "{text}"
        );
        assert!(text.ends_with(",\"bins\":[[0,1],[16,2]]}\n"), "{text}");
        assert_eq!(text.matches('\n').count(), 1);
    }

    #[test]
    fn bytes_are_human() {
        let mut buf = FixedBuf::<64>::new();
        write!(buf, "{} {} {}", Bytes(12), Bytes(1536), Bytes(3 << 20)).unwrap();
        assert_eq!(buf.as_bytes(), b"12 B 1.5 KiB 3.0 MiB");
    }
}
