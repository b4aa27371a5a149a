//! glibc-compatible introspection: `mallinfo` and `mallinfo2` (glibc's structs, filled from
//! oxalloc's statistics), `malloc_stats` (glibc's text, then oxalloc's summary, on stderr),
//! `malloc_info` (glibc's XML layout), `mallopt` and `malloc_trim`; and oxalloc's own
//! statistics output (`ox_stats_json`, `ox_stats_print`).

use core::ffi::{c_char, c_int};
use core::fmt::Write;
use core::ptr;
use engine::{Bytes, FixedBuf, Snapshot};
use libc::EINVAL;
use oxalloc_os::sys::{set_errno, write_stderr};

/// glibc's `struct mallinfo` (`int` fields, saturated at `INT_MAX`); see [`Mallinfo2`] for what
/// each field holds.
#[repr(C)]
#[derive(Default)]
pub struct Mallinfo {
    /// Bytes mapped for small and medium blocks.
    pub arena: c_int,
    /// Segments mapped.
    pub ordblks: c_int,
    /// Unused (0).
    pub smblks: c_int,
    /// Live huge blocks.
    pub hblks: c_int,
    /// Bytes in live huge blocks.
    pub hblkhd: c_int,
    /// Peak bytes mapped.
    pub usmblks: c_int,
    /// Unused (0).
    pub fsmblks: c_int,
    /// Bytes in live blocks.
    pub uordblks: c_int,
    /// Bytes mapped but not in live blocks.
    pub fordblks: c_int,
    /// Unused (0).
    pub keepcost: c_int,
}

/// glibc's `struct mallinfo2` (`size_t` fields), `struct ox_mallinfo2` in `oxalloc.h`.
#[repr(C)]
#[derive(Default)]
pub struct Mallinfo2 {
    /// Bytes mapped for small and medium blocks.
    pub arena: usize,
    /// Segments mapped.
    pub ordblks: usize,
    /// Unused (0).
    pub smblks: usize,
    /// Live huge blocks.
    pub hblks: usize,
    /// Bytes in live huge blocks.
    pub hblkhd: usize,
    /// Peak bytes mapped.
    pub usmblks: usize,
    /// Unused (0).
    pub fsmblks: usize,
    /// Bytes in live blocks.
    pub uordblks: usize,
    /// Bytes mapped but not in live blocks.
    pub fordblks: usize,
    /// Unused (0).
    pub keepcost: usize,
}

/// `mallinfo2`: the statistics in glibc's struct.
pub unsafe fn mallinfo2() -> Mallinfo2 {
    let s = engine::stats();
    let huge_live = s.huge_live_bytes as usize;
    let mapped = s.mapped_bytes as usize;
    Mallinfo2 {
        arena: mapped.saturating_sub(huge_live),
        ordblks: s.segments as usize,
        hblks: (s.huge_allocations - s.huge_frees) as usize,
        hblkhd: huge_live,
        usmblks: s.peak_mapped_bytes as usize,
        uordblks: s.live_bytes as usize,
        fordblks: mapped.saturating_sub(s.live_bytes as usize),
        ..Default::default()
    }
}

/// `mallinfo`: [`mallinfo2`] with each field saturated to `int`.
pub unsafe fn mallinfo() -> Mallinfo {
    // SAFETY: always safe.
    let m = unsafe { mallinfo2() };
    let c = |v: usize| v.min(c_int::MAX as usize) as c_int;
    Mallinfo {
        arena: c(m.arena),
        ordblks: c(m.ordblks),
        hblks: c(m.hblks),
        hblkhd: c(m.hblkhd),
        usmblks: c(m.usmblks),
        uordblks: c(m.uordblks),
        fordblks: c(m.fordblks),
        ..Default::default()
    }
}

/// `malloc_trim`: gives cached memory back to the OS; 1 if any was released, else 0.
pub unsafe fn malloc_trim(_pad: usize) -> c_int {
    (engine::trim() > 0) as c_int
}

/// glibc's `mallopt` parameter numbers (`<malloc.h>`).
mod m {
    use core::ffi::c_int;
    pub const MXFAST: c_int = 1;
    pub const TRIM_THRESHOLD: c_int = -1;
    pub const ARENA_MAX: c_int = -8;
}

/// `mallopt`. `M_TRIM_THRESHOLD` sets how many bytes of freed spans stay resident before the
/// oldest are purged without waiting for the purge delay (`OXALLOC_DIRTY_MAX`; 0 purges at once).
/// The other glibc parameters, `M_MXFAST` and `M_TOP_PAD` .. `M_ARENA_MAX` (-2 .. -8), are
/// accepted (1) and have no effect: blocks over 128 KiB always get a mapping of their own
/// (`M_MMAP_THRESHOLD`, `M_MMAP_MAX`), free pages are purged on a delay rather than by a top
/// pad, and each thread has its own heap, so there are no arenas to count (`M_ARENA_MAX`,
/// `M_ARENA_TEST`). Anything else, or a negative threshold, is refused (0).
pub unsafe fn mallopt(param: c_int, value: c_int) -> c_int {
    match param {
        m::TRIM_THRESHOLD if value >= 0 => {
            engine::options::set(engine::options::Opt::DirtyMax, value as usize);
            1
        }
        m::TRIM_THRESHOLD => 0,
        m::MXFAST => 1,
        _ => (m::ARENA_MAX..m::TRIM_THRESHOLD).contains(&param) as c_int,
    }
}

const PTHREAD_CANCEL_DISABLE: c_int = 1; // glibc's value (PTHREAD_CANCEL_ENABLE is 0)

extern "C" {
    // Not in the libc crate for Linux.
    fn pthread_setcancelstate(state: c_int, oldstate: *mut c_int) -> c_int;
}

/// Writes `bytes` to stderr with thread cancellation disabled, as glibc's `malloc_stats` does:
/// `write` is a cancellation point, and a thread cancelled there would unwind through
/// allocator frames that cannot unwind.
fn write_stderr_uncancellable(bytes: &[u8]) {
    let mut old: c_int = 0;
    // SAFETY: `old` is a valid out-pointer; the call has no other preconditions.
    let disabled = unsafe { pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &mut old) } == 0;
    write_stderr(bytes);
    if disabled {
        let mut ignored: c_int = 0;
        // SAFETY: as above; `old` is the state read by the first call.
        unsafe { pthread_setcancelstate(old, &mut ignored) };
    }
}

/// `malloc_stats`: glibc's summary ("Arena 0:", system and in-use bytes, mmap regions) followed
/// by oxalloc's own, on stderr.
pub unsafe fn malloc_stats() {
    let s = engine::stats();
    let mut buf = FixedBuf::<2048>::new();
    let _ = write_glibc_style(&mut buf, &s);
    let _ = s.write_text(&mut buf);
    write_stderr_uncancellable(buf.as_bytes());
}

fn write_glibc_style(out: &mut dyn Write, s: &Snapshot) -> core::fmt::Result {
    writeln!(out, "Arena 0:")?;
    writeln!(
        out,
        "system bytes     = {:>10}",
        s.mapped_bytes - s.huge_live_bytes.min(s.mapped_bytes)
    )?;
    writeln!(
        out,
        "in use bytes     = {:>10}",
        s.live_bytes - s.huge_live_bytes.min(s.live_bytes)
    )?;
    writeln!(out, "Total (incl. mmap):")?;
    writeln!(out, "system bytes     = {:>10}", s.mapped_bytes)?;
    writeln!(out, "in use bytes     = {:>10}", s.live_bytes)?;
    writeln!(
        out,
        "max mmap regions = {:>10}",
        s.huge_allocations - s.huge_frees
    )?;
    writeln!(out, "max mmap bytes   = {:>10}", s.peak_mapped_bytes)
}

/// `malloc_info`: the statistics as glibc's XML on `fp`; `options` must be 0 (else -1 with
/// `EINVAL`); -1 if the stream refuses the write.
pub unsafe fn malloc_info(options: c_int, fp: *mut libc::FILE) -> c_int {
    if options != 0 {
        set_errno(EINVAL);
        return -1;
    }
    let s = engine::stats();
    let mut buf = FixedBuf::<8192>::new();
    let _ = write_xml(&mut buf, &s);
    let bytes = buf.as_bytes();
    // SAFETY: `fp` is the caller's open stream; fwrite may allocate, which is fine here (we
    // hold no lock).
    let n = unsafe { libc::fwrite(bytes.as_ptr().cast(), 1, bytes.len(), fp) };
    if n == bytes.len() {
        0
    } else {
        -1
    }
}

fn write_xml(buf: &mut dyn Write, s: &Snapshot) -> core::fmt::Result {
    writeln!(
        buf,
        "<malloc version=\"oxalloc-{}\">",
        env!("CARGO_PKG_VERSION")
    )?;
    writeln!(buf, "<heap nr=\"0\">\n<sizes>")?;
    let mut prev = 0;
    for (bin, &n) in s.bins.iter().enumerate().skip(1) {
        let size = engine::size_class::bin_size(bin);
        if n > 0 {
            writeln!(
                buf,
                "<size from=\"{}\" to=\"{}\" total=\"{}\" count=\"{}\"/>",
                prev + 1,
                size,
                n * size as u64,
                n
            )?;
        }
        prev = size;
    }
    writeln!(
        buf,
        "<unsorted from=\"{}\" to=\"-1\" total=\"{}\" count=\"{}\"/>",
        prev + 1,
        s.huge_live_bytes,
        s.huge_allocations
    )?;
    writeln!(buf, "</sizes>")?;
    writeln!(
        buf,
        "<total type=\"mmap\" count=\"{}\" size=\"{}\"/>",
        s.huge_allocations - s.huge_frees,
        s.huge_live_bytes
    )?;
    writeln!(
        buf,
        "<system type=\"current\" size=\"{}\"/>",
        s.mapped_bytes
    )?;
    writeln!(
        buf,
        "<system type=\"max\" size=\"{}\"/>",
        s.peak_mapped_bytes
    )?;
    writeln!(buf, "<aspace type=\"total\" size=\"{}\"/>", s.mapped_bytes)?;
    writeln!(buf, "</heap>\n</malloc>")
}

/// `ox_stats_json`: writes the statistics as one JSON line into `buf` (NUL-terminated,
/// truncated to `len`; nothing is written when `buf` is NULL or `len` is 0); returns the length
/// of the full line.
pub unsafe fn stats_json(buf: *mut c_char, len: usize) -> usize {
    let mut out = FixedBuf::<4096>::new();
    let s = engine::stats();
    // SAFETY: getpid never fails.
    let pid = unsafe { libc::getpid() } as u32;
    let _ = s.write_json(&mut out, pid, engine::peak_rss_bytes());
    let bytes = out.as_bytes();
    if !buf.is_null() && len > 0 {
        let n = bytes.len().min(len - 1);
        // SAFETY: the caller passes `len` writable bytes.
        unsafe {
            ptr::copy_nonoverlapping(bytes.as_ptr(), buf.cast(), n);
            *buf.add(n) = 0;
        }
    }
    bytes.len()
}

/// `ox_stats_print`: a human-readable summary of the statistics on stderr.
pub unsafe fn stats_print() {
    let s = engine::stats();
    let mut buf = FixedBuf::<1024>::new();
    let _ = s.write_text(&mut buf);
    let _ = writeln!(buf, "oxalloc: peak RSS {}", Bytes(engine::peak_rss_bytes()));
    write_stderr_uncancellable(buf.as_bytes());
}
