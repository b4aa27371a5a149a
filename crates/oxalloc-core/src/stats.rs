//! Statistics: declared once (the `counters!` list generates the global atomics, the snapshot
//! struct, its field names, and its text and JSON output; the `oxalloc` command reads the JSON
//! through the same names), counted per thread without atomic read-modify-writes on the hot
//! paths and merged into the global counters at thread exit.
//!
//! Allocation counts cost nothing on the fast path: when a page's free list is refilled, every
//! block put on it is counted as an allocation in advance, and blocks still on a free list when a
//! page is released are taken back off. Each heap publishes its counts (allocations per bin,
//! live blocks and bytes as of its last refill or page release) in atomics that only it writes,
//! so any thread may read them. A snapshot (`visit::snapshot`) is exact for the calling thread's
//! own heap and for abandoned segments, which it walks; for other threads' heaps it uses what
//! they published, which lags by at most the blocks handed out or freed since their last refill
//! of each page. The peak of
//! live bytes is sampled when pages are refilled, each time a thread's change since the last
//! sample reaches `LIVE_SAMPLE_BYTES` (256 KiB).

use crate::size_class::{bin_size, BIN_COUNT};
use crate::util::fmt::Bytes;
use crate::util::sync::{AtomicU64, Ordering};
use core::cell::Cell;
use core::fmt::{self, Write};

macro_rules! counters {
    ($($name:ident: $doc:literal,)*) => {
        /// Process-wide counters (atomics, updated on slow paths only).
        pub(crate) struct GlobalCounters {
            $(#[doc = $doc] pub $name: AtomicU64,)*
            /// Allocations counted per size class (merged from heaps).
            pub bins: [AtomicU64; BIN_COUNT],
        }
        impl GlobalCounters {
            /// All zero.
            pub const fn new() -> Self {
                GlobalCounters {
                    $($name: AtomicU64::new(0),)*
                    bins: [const { AtomicU64::new(0) }; BIN_COUNT],
                }
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
            /// Names of the scalar fields, as the JSON line spells them (`bins` comes apart).
            pub const FIELDS: &'static [&'static str] =
                &["allocations", "frees", "live_bytes", $(stringify!($name),)*];
            /// The scalar field called `name`.
            pub fn field(&self, name: &str) -> Option<u64> {
                match name {
                    "allocations" => Some(self.allocations),
                    "frees" => Some(self.frees),
                    "live_bytes" => Some(self.live_bytes),
                    $(stringify!($name) => Some(self.$name),)*
                    _ => None,
                }
            }
            /// Sets the scalar field called `name`; false if there is none.
            pub fn set_field(&mut self, name: &str, value: u64) -> bool {
                let slot = match name {
                    "allocations" => &mut self.allocations,
                    "frees" => &mut self.frees,
                    "live_bytes" => &mut self.live_bytes,
                    $(stringify!($name) => &mut self.$name,)*
                    _ => return false,
                };
                *slot = value;
                true
            }
            /// Copies the global counters.
            pub(crate) fn from_counters(c: &GlobalCounters) -> Self {
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
    background_purged_bytes: "Bytes of free page slots the purge thread purged (counted in purged_bytes too).",
    purge_waits: "Times an owner found a page slot it wanted in the purge thread's hands and waited for its purge.",
}

/// The gauge hook (a `fn()` as an address; 0 when none): called after every change of a gauge
/// (live, mapped, huge live bytes). The front end sets it under `oxalloc run` to copy the gauges
/// into the mapping the `oxalloc` command samples (see `oxalloc`'s `init::sample`).
static GAUGE_HOOK: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Sets the function called after every gauge change (see `GlobalCounters::gauge_add`). It
/// runs on slow paths, with none of the arena's locks held, and must not allocate.
pub fn set_gauge_hook(hook: fn()) {
    GAUGE_HOOK.store(hook as usize, core::sync::atomic::Ordering::Release);
}

#[inline]
fn gauge_changed() {
    let hook = GAUGE_HOOK.load(core::sync::atomic::Ordering::Acquire);
    if hook != 0 {
        // SAFETY: the only nonzero value ever stored is a `fn()` (`set_gauge_hook`).
        let hook: fn() = unsafe { core::mem::transmute::<usize, fn()>(hook) };
        hook();
    }
}

impl GlobalCounters {
    /// Adds to a gauge and raises its peak, then calls the gauge hook if one is set. Gauges
    /// change on slow paths only, never with the arena's locks held (the hook may walk the
    /// heap, which takes them).
    pub fn gauge_add(value: &AtomicU64, peak: &AtomicU64, delta: u64) {
        let now = value
            .fetch_add(delta, Ordering::Relaxed)
            .wrapping_add(delta);
        if (now as i64) > 0 {
            peak.fetch_max(now, Ordering::Relaxed);
        }
        gauge_changed();
    }

    /// Subtracts from a gauge, then calls the gauge hook if one is set.
    pub fn gauge_sub(value: &AtomicU64, delta: u64) {
        value.fetch_sub(delta, Ordering::Relaxed);
        gauge_changed();
    }
}

/// The layout of the sample file that `oxalloc run` creates (`OXALLOC_SAMPLE_FILE`) and every
/// process of the program maps shared: a header of [`sample::HEADER_WORDS`] little-endian `u64`
/// words, then [`sample::SLOTS`] slots of [`sample::SLOT_WORDS`] words. A process claims a
/// slot at start-up (and again in a forked child) by incrementing the header's `NEXT` word,
/// then keeps its gauges there; the command reads the file every few milliseconds.
pub mod sample {
    /// Header word 0: the magic number, written by the command.
    pub const MAGIC: u64 = u64::from_le_bytes(*b"OXSAMPL1");
    /// Header word 1: the number of slots claimed so far (may exceed [`SLOTS`]).
    pub const NEXT: usize = 1;
    /// Words in the header.
    pub const HEADER_WORDS: usize = 8;
    /// Slots in the file.
    pub const SLOTS: usize = 512;
    /// Words per slot.
    pub const SLOT_WORDS: usize = 8;
    /// Slot word: the process id (written last when claiming, 0 while unclaimed).
    pub const PID: usize = 0;
    /// Slot word: updates so far.
    pub const SEQ: usize = 1;
    /// Slot word: live bytes (small and medium as last sampled, plus huge blocks).
    pub const LIVE: usize = 2;
    /// Slot word: mapped bytes.
    pub const MAPPED: usize = 3;
    /// Slot word: peak live bytes.
    pub const PEAK_LIVE: usize = 4;
    /// Slot word: peak mapped bytes.
    pub const PEAK_MAPPED: usize = 5;
    /// Slot word: segments mapped.
    pub const SEGMENTS: usize = 6;
    /// Slot word: 1 once the process has exited (through `exit`, not `_exit` or a signal).
    pub const EXITED: usize = 7;
    /// Size of the file in bytes.
    pub const FILE_BYTES: usize = (HEADER_WORDS + SLOTS * SLOT_WORDS) * 8;
}

impl Default for GlobalCounters {
    fn default() -> Self {
        Self::new()
    }
}

/// Per-heap counters, written only by the owning thread (a relaxed load and store of its own
/// values, no atomic read-modify-write) and readable by any thread.
///
/// The owner updates them through `&self` only: snapshots on other threads load the atomics
/// while the owner runs, and a `&mut HeapCounters` would assert exclusive access to those bytes
/// (under Miri, its retag is a write that races with the other thread's atomic load). So
/// `live_delta`, which only the owner touches, is a `Cell`.
pub(crate) struct HeapCounters {
    /// Blocks counted as allocated per bin (see the module comment), wrapping.
    pub bins: [AtomicU64; BIN_COUNT],
    /// Blocks in use in this heap's pages, as of each page's last accounting (wrapping).
    pub live_blocks: AtomicU64,
    /// Bytes of those blocks (wrapping).
    pub live_bytes: AtomicU64,
    /// Live-byte change not yet added to the global estimate (owner only).
    pub live_delta: Cell<i64>,
}

/// Adds `n` (wrapping) to a counter that only the calling thread writes.
#[inline]
fn owner_add(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

impl HeapCounters {
    /// All zero.
    pub const fn new() -> Self {
        HeapCounters {
            bins: [const { AtomicU64::new(0) }; BIN_COUNT],
            live_blocks: AtomicU64::new(0),
            live_bytes: AtomicU64::new(0),
            live_delta: Cell::new(0),
        }
    }

    /// Adds `n` (wrapping, so a negative amount is `n.wrapping_neg()`) allocations to `bin`.
    #[inline]
    pub fn add_allocations(&self, bin: usize, n: u64) {
        owner_add(&self.bins[bin], n);
    }

    /// Accounts a change of `blocks` blocks of `block_size` bytes in use (negative: freed).
    #[inline]
    pub fn add_live(&self, blocks: i64, block_size: usize) {
        let bytes = blocks * block_size as i64;
        owner_add(&self.live_blocks, blocks as u64);
        owner_add(&self.live_bytes, bytes as u64);
        self.live_delta.set(self.live_delta.get() + bytes);
    }

    /// Takes `blocks` blocks of `block_size` bytes that are in use and already in the global
    /// estimate (an abandoned page's accounted blocks, on reclaim) into this heap's live
    /// counts, without changing the estimate.
    pub fn adopt_live(&self, blocks: u32, block_size: usize) {
        owner_add(&self.live_blocks, blocks as u64);
        owner_add(&self.live_bytes, blocks as u64 * block_size as u64);
    }

    /// Moves this heap's allocation counts into the global counters (at teardown). Its live
    /// counts are dropped: the blocks still in use are in abandoned segments, which snapshots
    /// walk.
    pub fn flush(&self, global: &GlobalCounters) {
        for (bin, n) in self.bins.iter().enumerate() {
            let v = n.swap(0, Ordering::Relaxed);
            if v != 0 {
                global.bins[bin].fetch_add(v, Ordering::Relaxed);
            }
        }
        self.live_blocks.store(0, Ordering::Relaxed);
        self.live_bytes.store(0, Ordering::Relaxed);
        self.flush_live(global);
    }

    /// Adds the live-byte change to the global estimate and samples the peak.
    #[cold]
    pub fn flush_live(&self, global: &GlobalCounters) {
        let delta = self.live_delta.replace(0);
        if delta != 0 {
            GlobalCounters::gauge_add(&global.live_estimate, &global.peak_live_bytes, delta as u64);
        }
    }
}

impl Default for HeapCounters {
    fn default() -> Self {
        Self::new()
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
    use crate::util::fmt::FixedBuf;

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
    fn fields_round_trip_by_name() {
        let mut s = Snapshot::default();
        for (i, name) in Snapshot::FIELDS.iter().enumerate() {
            assert!(s.set_field(name, i as u64 + 1), "{name}");
        }
        for (i, name) in Snapshot::FIELDS.iter().enumerate() {
            assert_eq!(s.field(name), Some(i as u64 + 1), "{name}");
        }
        assert!(!s.set_field("no_such_counter", 1));
        assert_eq!(s.field("bins"), None);
    }
}
