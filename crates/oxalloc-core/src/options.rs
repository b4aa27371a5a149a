//! The options table: every `OXALLOC_*` setting, its default and its meaning, in one place.
//! Values are read from the environment at start-up by the front end, which hands each
//! `NAME=value` entry to [`set_from_env_entry`]; parsing never allocates.

use crate::util::sync::{AtomicUsize, Ordering};

/// One option: its variable name (without `OXALLOC_`), default and description.
pub struct OptionDesc {
    /// Variable name after the `OXALLOC_` prefix.
    pub name: &'static str,
    /// Default value.
    pub default: usize,
    /// Accepted words and their values, for options that are not numbers or booleans.
    pub words: &'static [(&'static str, usize)],
    /// One line of documentation (the README's options table is checked against these by
    /// `crates/oxalloc/tests/readme.rs`).
    pub doc: &'static str,
}

macro_rules! options {
    ($($id:ident = $name:literal, $default:expr, $words:expr, $doc:literal;)*) => {
        /// Identifiers of the options.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(usize)]
        pub enum Opt { $(#[doc = $doc] $id,)* }
        /// The table, indexed by [`Opt`].
        pub const TABLE: &[OptionDesc] = &[
            $(OptionDesc { name: $name, default: $default, words: $words, doc: $doc },)*
        ];
        #[allow(clippy::declare_interior_mutable_const)]
        static VALUES: [AtomicUsize; TABLE.len()] = [$(AtomicUsize::new($default),)*];
    };
}

/// Marks an option whose value is a path: the table records only whether it is set, and the
/// front end keeps the text.
pub const PATH: &[(&str, usize)] = &[("<path>", 1)];

/// `OXALLOC_SOURCE` values.
pub mod source {
    /// Anonymous `mmap`.
    pub const MMAP: usize = 0;
    /// The program break (`brk`/`sbrk`), falling back to mmap when it cannot grow.
    pub const BRK: usize = 1;
}

/// `OXALLOC_PURGE` values.
pub mod purge {
    /// `MADV_DONTNEED`: the pages leave the resident set at once and read as zero afterwards.
    pub const DONTNEED: usize = 0;
    /// `MADV_FREE`: the kernel takes the pages when it needs memory; until then they stay
    /// resident (and counted in RSS), and reusing them costs no page fault.
    pub const FREE: usize = 1;
}

/// `OXALLOC_THP` values.
pub mod thp {
    /// Whatever the kernel's `transparent_hugepage/enabled` says.
    pub const SYSTEM: usize = 0;
    /// `MADV_HUGEPAGE` on every segment.
    pub const ALWAYS: usize = 1;
    /// `MADV_NOHUGEPAGE` on every segment.
    pub const NEVER: usize = 2;
}

options! {
    Source = "SOURCE", source::MMAP, &[("mmap", source::MMAP), ("brk", source::BRK), ("sbrk", source::BRK)],
        "where memory comes from: `mmap`, or `brk` (the program break, grown in whole pages and shrunk when its top is free)";
    ShowStats = "SHOW_STATS", 0, &[],
        "print a statistics summary to stderr when the process exits";
    Verbose = "VERBOSE", 0, &[],
        "print diagnostics (options in force, memory-source fallbacks) to stderr";
    SpanCache = "SPAN_CACHE", 256, &[],
        "freed segments and huge blocks (up to 64 MiB each, 256 MiB in all) kept mapped for reuse before they are unmapped; 0 unmaps at once";
    PurgeDelay = "PURGE_DELAY", 50, &[],
        "milliseconds freed memory (cached spans, free pages of live segments) stays resident before it is given back to the OS";
    Purge = "PURGE", purge::DONTNEED, &[("dontneed", purge::DONTNEED), ("free", purge::FREE)],
        "how memory is given back: `dontneed` (`MADV_DONTNEED`, RSS falls at once) or `free` (`MADV_FREE`, the kernel takes the pages only under memory pressure, so RSS stays up until then)";
    PurgeThread = "PURGE_THREAD", 0, &[],
        "a background thread that wakes every purge delay and gives back what waited it out (cached spans, free pages of every segment, whichever thread owns it), so memory returns while the program sleeps or only takes fast paths; started at the first segment allocation";
    DirtyMax = "DIRTY_MAX", 128 << 20, &[],
        "bytes of freed spans the span cache keeps resident; past it the oldest are purged without waiting (`mallopt(M_TRIM_THRESHOLD, n)` sets it)";
    Thp = "THP", thp::SYSTEM, &[("system", thp::SYSTEM), ("always", thp::ALWAYS), ("never", thp::NEVER)],
        "transparent huge pages for segments: `system` (the kernel's setting), `always` (`MADV_HUGEPAGE`), `never` (`MADV_NOHUGEPAGE`)";
    Secure = "SECURE", 0, &[("0", 0), ("1", 1), ("2", 2)],
        "secure mode: `1` adds guard pages, shuffled free lists, canaries after every block (overflows caught at free), freed blocks filled and checked at reuse, and a quarantine of 64 freed blocks per thread; `2` the same, with freed blocks zeroed";
    ReportFile = "REPORT_FILE", 0, PATH,
        "append one JSON line of statistics per process at exit to this file (`oxalloc run` sets it); the value here is 1 when set";
    SampleFile = "SAMPLE_FILE", 0, PATH,
        "a file of gauges (live, mapped bytes) each process maps shared and keeps up to date, for the timelines of `oxalloc run` (which creates it and sets this)";
    HeapmapDir = "HEAPMAP_DIR", 0, PATH,
        "a directory where each process writes its heap map at exit and when its peak of mapped bytes grows by 20% (`oxalloc run` sets it)";
    Valgrind = "VALGRIND", 0, &[],
        "describe every allocation and free to valgrind's memcheck with client requests, so it reports leaks, overflows and uses after free (read once at start-up; blocks get redzones, and every malloc and free takes the slow path)";
    Profile = "PROFILE", 0, &[],
        "sampled heap profiling: record the call stack of one allocation per `OXALLOC_PROFILE_RATE` bytes on average and write the live samples to `OXALLOC_PROFILE_FILE` at exit (`oxalloc run --report` turns it on)";
    ProfileRate = "PROFILE_RATE", 512 * 1024, &[],
        "mean bytes allocated between two samples of the heap profile";
    ProfileFile = "PROFILE_FILE", 0, PATH,
        "where the heap profile is written, `%p` standing for the process id (default `oxalloc-profile.%p.txt`); `oxalloc run` sets it";
}

/// Current value of an option.
#[inline]
pub fn get(opt: Opt) -> usize {
    VALUES[opt as usize].load(Ordering::Relaxed)
}

/// Whether a boolean option is on.
#[inline]
pub fn enabled(opt: Opt) -> bool {
    get(opt) != 0
}

/// Overrides an option (tests and programmatic configuration).
pub fn set(opt: Opt, value: usize) {
    VALUES[opt as usize].store(value, Ordering::Relaxed);
}

fn parse_value(desc: &OptionDesc, value: &[u8]) -> Option<usize> {
    if core::ptr::eq(desc.words, PATH) {
        return Some(!value.is_empty() as usize);
    }
    for (word, v) in desc.words {
        if value.eq_ignore_ascii_case(word.as_bytes()) {
            return Some(*v);
        }
    }
    match value {
        b"" => return None,
        _ if value.eq_ignore_ascii_case(b"true")
            || value.eq_ignore_ascii_case(b"on")
            || value.eq_ignore_ascii_case(b"yes") =>
        {
            return Some(1)
        }
        _ if value.eq_ignore_ascii_case(b"false")
            || value.eq_ignore_ascii_case(b"off")
            || value.eq_ignore_ascii_case(b"no") =>
        {
            return Some(0)
        }
        _ => {}
    }
    let mut n: usize = 0;
    for &c in value {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add((c - b'0') as usize)?;
    }
    Some(n)
}

/// Applies one environment entry (`NAME=value`). Returns false for a recognised `OXALLOC_` name
/// with a value that does not parse, and for unknown `OXALLOC_` names; true otherwise.
pub fn set_from_env_entry(entry: &[u8]) -> bool {
    let Some(rest) = entry.strip_prefix(b"OXALLOC_") else {
        return true;
    };
    let Some(eq) = rest.iter().position(|&c| c == b'=') else {
        return true;
    };
    let (name, value) = (&rest[..eq], &rest[eq + 1..]);
    for (i, desc) in TABLE.iter().enumerate() {
        if name == desc.name.as_bytes() {
            return match parse_value(desc, value) {
                Some(v) => {
                    VALUES[i].store(v, Ordering::Relaxed);
                    true
                }
                None => false,
            };
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_words_numbers_and_booleans() {
        assert!(set_from_env_entry(b"OXALLOC_SOURCE=brk"));
        assert_eq!(get(Opt::Source), source::BRK);
        assert!(set_from_env_entry(b"OXALLOC_SOURCE=MMAP"));
        assert_eq!(get(Opt::Source), source::MMAP);
        assert!(set_from_env_entry(b"OXALLOC_SHOW_STATS=3"));
        assert_eq!(get(Opt::ShowStats), 3);
        assert!(set_from_env_entry(b"OXALLOC_VERBOSE=yes"));
        assert!(enabled(Opt::Verbose));
        assert!(!set_from_env_entry(b"OXALLOC_SHOW_STATS=lots"));
        assert_eq!(get(Opt::ShowStats), 3);
        assert!(!set_from_env_entry(b"OXALLOC_NO_SUCH=1"));
        assert!(set_from_env_entry(b"PATH=/bin"));
        assert!(set_from_env_entry(b"OXALLOC_REPORT_FILE=/tmp/x.jsonl"));
        assert!(enabled(Opt::ReportFile));
        set(Opt::ShowStats, 0);
        set(Opt::Verbose, 0);
        set(Opt::ReportFile, 0);
    }
}
