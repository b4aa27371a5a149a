//! Heap maps for `oxalloc run`: each process writes its heap walk to
//! `$OXALLOC_HEAPMAP_DIR/exit-<pid>.jsonl` at exit and to `peak-<pid>.jsonl` (rewritten) each
//! time its peak of mapped bytes has grown by a fifth since the last dump (from 8 MiB on), in
//! the format of `oxalloc_core::visit::dump`, with the residency of every page slot from
//! `mincore`.
//!
//! The peak dump runs from the gauge hook, on the slow path of the thread whose allocation
//! raised the peak, with none of the allocator's locks held; it allocates nothing (a fixed
//! buffer on the stack, `open`/`write`/`mincore`) and walks every page through what its heap
//! published (`own = None`), so it never reads a page's lists in the middle of a slow path. So
//! its counts are as of each page's last refill; the exit dump is exact for the exiting thread.
//! The last peak dump is within 20% of the true peak of mapped bytes.

use crate::ARENA;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use oxalloc_core::util::fmt::FixedBuf;
use oxalloc_core::util::sync::SpinLock;
use oxalloc_core::visit::{self, dump, Gauges, Visit};
use oxalloc_os::sys;

/// The directory (NUL-terminated; empty when unset).
static DIR: SpinLock<[u8; 512]> = SpinLock::new([0; 512]);
static ENABLED: AtomicBool = AtomicBool::new(false);
/// Peak of mapped bytes at which the next peak dump is due.
static NEXT_PEAK: AtomicU64 = AtomicU64::new(8 << 20);
/// Set while a dump is written: a dump that would start meanwhile is skipped.
static BUSY: AtomicBool = AtomicBool::new(false);

/// Sets the directory (the value of `OXALLOC_HEAPMAP_DIR`).
pub(super) fn set_dir(path: &[u8]) {
    let mut dir = DIR.lock();
    let n = path.len().min(dir.len() - 1);
    dir[..n].copy_from_slice(&path[..n]);
    dir[n] = 0;
    ENABLED.store(n > 0, Ordering::Release);
}

/// From the gauge hook: a peak dump when the peak of mapped bytes is due.
pub(super) fn on_gauges(g: &Gauges) {
    if !ENABLED.load(Ordering::Relaxed) || g.peak_mapped_bytes < NEXT_PEAK.load(Ordering::Relaxed) {
        return;
    }
    if BUSY.swap(true, Ordering::Acquire) {
        return;
    }
    NEXT_PEAK.store(
        g.peak_mapped_bytes + g.peak_mapped_bytes / 5,
        Ordering::Relaxed,
    );
    // SAFETY: with `own = None` no page's lists are read, only what heaps published.
    write_dump("peak", g, |f| unsafe {
        visit::heap_visit(&ARENA, None, false, f)
    });
    super::profile::at_peak();
    BUSY.store(false, Ordering::Release);
}

/// At exit: the exact walk of the exiting thread's heap (and what others published).
pub(super) fn at_exit() {
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    while BUSY.swap(true, Ordering::Acquire) {
        sys::yield_now();
    }
    let g = visit::gauges(&ARENA);
    write_dump("exit", &g, |f| crate::heap_visit(false, f));
    BUSY.store(false, Ordering::Release);
}

/// A `fmt::Write` to a file through a fixed buffer, flushed when it fills (at line ends).
struct FdWriter {
    fd: i32,
    buf: FixedBuf<8192>,
}

impl FdWriter {
    fn flush(&mut self) {
        sys::write_fd(self.fd, self.buf.as_bytes());
        self.buf.clear();
    }
    /// Writes one line (all of `f`'s output), flushing first if it might not fit.
    fn line(&mut self, f: impl FnOnce(&mut dyn Write) -> fmt::Result) {
        if self.buf.as_bytes().len() > 8192 - 1024 {
            self.flush();
        }
        let _ = f(&mut self.buf);
    }
}

fn write_dump(
    when: &str,
    g: &Gauges,
    walk: impl FnOnce(&mut dyn FnMut(Visit<'_>) -> bool) -> bool,
) {
    // SAFETY: getpid never fails.
    let pid = unsafe { libc::getpid() } as u32;
    let mut path = FixedBuf::<600>::new();
    {
        let dir = DIR.lock();
        let n = dir.iter().position(|&b| b == 0).unwrap_or(0);
        let _ = path.write_str(core::str::from_utf8(&dir[..n]).unwrap_or(""));
    }
    let _ = write!(path, "/{when}-{pid}.jsonl\0");
    // SAFETY: `path` is NUL-terminated (a path too long for the buffer loses its NUL and
    // fails to open below, as the last byte is checked).
    let fd = unsafe {
        if path.as_bytes().last() != Some(&0) {
            return;
        }
        libc::open(
            path.as_bytes().as_ptr().cast(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
            0o644,
        )
    };
    if fd < 0 {
        return;
    }
    let mut out = FdWriter {
        fd,
        buf: FixedBuf::new(),
    };
    out.line(|w| dump::header(w, when, pid, sys::now_ms(), g));
    let mut pages = 0u64;
    walk(&mut |v| {
        match v {
            Visit::Area(a) => {
                let mut resident = [0u32; 64];
                let slot = visit::slot_bytes(a).max(4096);
                let slots = (a.size.div_ceil(slot)).clamp(1, 64);
                let known = oxalloc_os::mmap::for_each_resident(a.start, a.size, |i, r| {
                    if r {
                        resident[((i * 4096) / slot).min(slots - 1)] += 1;
                    }
                });
                let shown = if known { slots } else { 0 };
                out.line(|w| dump::area(w, a, &resident[..shown]));
            }
            Visit::Page(_, p) => {
                pages += 1;
                out.line(|w| dump::page(w, p));
            }
            Visit::Block(..) => {}
        }
        true
    });
    out.line(|w| dump::end(w, pages));
    out.flush();
    // SAFETY: we opened it.
    unsafe { libc::close(fd) };
}
