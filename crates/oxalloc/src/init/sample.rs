//! Timelines for `oxalloc run`: the process's gauges kept in a file mapped shared.
//!
//! The command creates the file (`OXALLOC_SAMPLE_FILE`, laid out as `oxalloc_core::stats::sample`
//! says) and reads it every few milliseconds while the program runs, so the program gets no
//! extra thread. At start-up (from `process_init`, before the first allocation is served, with
//! `open` and `mmap` only) the library maps it `MAP_SHARED` and claims a slot; a forked child
//! claims a slot of its own (`after_fork_child`), an `exec`ed image claims a new one at its own
//! start-up (the command keeps the newest slot of each pid).
//!
//! The design is the simplest that is correct: the arena's gauges are atomics already, updated
//! on slow paths only (`GlobalCounters::gauge_add` and `gauge_sub`: a thread's live bytes every
//! 256 KiB of change, mapped bytes at every mapping and unmapping), so the mapping is a *copy*,
//! refreshed by the gauge hook (`stats::set_gauge_hook`) right after each change: a few relaxed
//! loads and stores, no lock, nothing allocated, nothing on the fast path. Two threads changing
//! gauges at once may store their copies in either order, so the file can lag the arena by one
//! change until the next; each word is one aligned 8-byte store, never torn.

use crate::ARENA;
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use oxalloc_core::stats::sample::{
    EXITED, FILE_BYTES, HEADER_WORDS, LIVE, MAGIC, MAPPED, NEXT, PEAK_LIVE, PEAK_MAPPED, PID,
    SEGMENTS, SEQ, SLOTS, SLOT_WORDS,
};

/// The mapped file (null when not sampling).
static BASE: AtomicPtr<AtomicU64> = AtomicPtr::new(core::ptr::null_mut());
/// This process's slot in it (null when none).
static SLOT: AtomicPtr<AtomicU64> = AtomicPtr::new(core::ptr::null_mut());

/// Maps the sample file at `path` (NUL-terminated) and starts publishing; does nothing if it is
/// already mapped or the file is not a sample file.
pub(super) fn init(path: &[u8]) {
    if !BASE.load(Ordering::Acquire).is_null() || !path.contains(&0) {
        return;
    }
    // SAFETY: `path` is NUL-terminated; open and mmap do not allocate. The mapping is of a
    // file of FILE_BYTES bytes (checked by fstat), so every word we touch is inside it.
    let base = unsafe {
        let fd = libc::open(path.as_ptr().cast(), libc::O_RDWR | libc::O_CLOEXEC);
        if fd < 0 {
            return;
        }
        let mut st: libc::stat = core::mem::zeroed();
        let big_enough = libc::fstat(fd, &mut st) == 0 && st.st_size as usize >= FILE_BYTES;
        let p = if big_enough {
            libc::mmap(
                core::ptr::null_mut(),
                FILE_BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        } else {
            libc::MAP_FAILED
        };
        libc::close(fd);
        if p == libc::MAP_FAILED {
            return;
        }
        let base = p.cast::<AtomicU64>();
        if (*base).load(Ordering::Relaxed) != MAGIC {
            libc::munmap(p, FILE_BYTES);
            return;
        }
        base
    };
    if BASE
        .compare_exchange(
            core::ptr::null_mut(),
            base,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_err()
    {
        // SAFETY: we mapped it just now and nobody else saw it.
        unsafe { libc::munmap(base.cast(), FILE_BYTES) };
        return;
    }
    claim();
    oxalloc_core::stats::set_gauge_hook(publish);
}

/// Word `i` of the mapping.
///
/// # Safety
/// `base` is the mapping and `i` is below `FILE_BYTES / 8`.
unsafe fn word<'a>(base: *mut AtomicU64, i: usize) -> &'a AtomicU64 {
    // SAFETY: per the contract; the mapping lives until the process ends.
    unsafe { &*base.add(i) }
}

/// Claims a fresh slot for this process (at start-up, and in a forked child, which must not
/// write its parent's).
fn claim() {
    let base = BASE.load(Ordering::Acquire);
    if base.is_null() {
        return;
    }
    SLOT.store(core::ptr::null_mut(), Ordering::Release);
    // SAFETY: NEXT is a header word.
    let n = unsafe { word(base, NEXT) }.fetch_add(1, Ordering::AcqRel) as usize;
    if n >= SLOTS {
        return;
    }
    // SAFETY: slot `n` is inside the file; only this process writes it from now on.
    unsafe {
        let slot = base.add(HEADER_WORDS + n * SLOT_WORDS);
        for i in 1..SLOT_WORDS {
            word(slot, i).store(0, Ordering::Relaxed);
        }
        word(slot, PID).store(libc::getpid() as u64, Ordering::Release);
        SLOT.store(slot, Ordering::Release);
    }
    publish();
}

/// The gauge hook: copies the arena's gauges into this process's slot, then lets the heap map
/// see whether the peak grew enough for a dump.
fn publish() {
    let slot = SLOT.load(Ordering::Acquire);
    if slot.is_null() {
        return;
    }
    let g = oxalloc_core::visit::gauges(&ARENA);
    // SAFETY: `slot` is this process's slot of the mapping (SLOT_WORDS words).
    unsafe {
        word(slot, LIVE).store(g.live_bytes, Ordering::Relaxed);
        word(slot, MAPPED).store(g.mapped_bytes, Ordering::Relaxed);
        word(slot, PEAK_LIVE).store(g.peak_live_bytes, Ordering::Relaxed);
        word(slot, PEAK_MAPPED).store(g.peak_mapped_bytes, Ordering::Relaxed);
        word(slot, SEGMENTS).store(g.segments, Ordering::Relaxed);
        word(slot, SEQ).fetch_add(1, Ordering::Release);
    }
    super::heapmap::on_gauges(&g);
}

/// In a forked child: a slot of its own.
pub(crate) fn after_fork_child() {
    claim();
}

/// At exit: a last copy, and the slot marked as finished.
pub(super) fn exited() {
    publish();
    let slot = SLOT.load(Ordering::Acquire);
    if !slot.is_null() {
        // SAFETY: as in `publish`.
        unsafe { word(slot, EXITED).store(1, Ordering::Release) };
    }
}
