//! # oxalloc
//!
//! A general-purpose memory allocator: thread-local heaps with a lock-free fast path, size
//! classes in pages carved from 4 MiB segments, lock-free cross-thread frees, huge blocks mapped
//! directly, statistics that cost nothing on the fast path, and detection of invalid and double
//! frees.
//!
//! Use it as Rust's global allocator:
//! ```no_run
//! #[global_allocator]
//! static GLOBAL: oxalloc::OxAlloc = oxalloc::OxAlloc;
//!
//! fn main() {
//!     let v: Vec<u64> = (0..1000).collect();
//!     let s = oxalloc::stats();
//!     println!("{} allocations, peak live {} bytes, {}", s.allocations, s.peak_live_bytes, v.len());
//! }
//! ```
//! Or allocate into a heap of your own and drop it whole ([`Heap`], an
//! `allocator_api2::alloc::Allocator`, as is [`OxAlloc`]):
//! ```
//! let heap = oxalloc::Heap::new().unwrap();
//! let mut names = allocator_api2::vec::Vec::new_in(&heap);
//! names.push("a block in the heap");
//! # drop(names);
//! ```
//! C and C++ programs use `liboxalloc.so` (preloaded or linked), built by `oxalloc-capi` on top
//! of the functions in this crate.
//!
//! This crate owns what needs the operating system's thread machinery: the thread-local heap
//! slot, thread exit, `fork()`, start-up options and the exit report. The policy lives in
//! `oxalloc-core` and the system calls for memory in `oxalloc-os`.
#![no_std]
#![cfg_attr(feature = "nightly", feature(allocator_api))]
#![warn(unsafe_op_in_unsafe_fn, missing_docs)]

#[cfg(test)]
extern crate std;

mod allocator;
pub mod first_class;
mod init;
mod purger;
pub mod thread;
pub mod valgrind;

pub use first_class::Heap;

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr;
use oxalloc_core::alloc as core_alloc;
use oxalloc_core::size_class::ALIGN;
pub use oxalloc_core::util::fmt::{Bytes, FixedBuf};
pub use oxalloc_core::{options, size_class, Arena, HeapRegistry, Snapshot};
use oxalloc_os::OsSource;
use thread::ThreadHeap;

pub use init::peak_rss_bytes;

/// The memory source of this process.
pub type Source = OsSource;

/// The process-wide memory layer.
pub static ARENA: Arena<Source> = Arena::new(OsSource::new());

/// The registry of the process's thread heaps.
pub static HEAPS: HeapRegistry<Source> = HeapRegistry::new();

/// The heap every thread starts with: it has no pages, so the first allocation takes the slow
/// path and binds a real heap.
pub struct SentinelHeap(pub UnsafeCell<ThreadHeap>);
// SAFETY: the sentinel is never written: every method that would change a heap first checks
// `is_sentinel()` and binds a real heap instead.
unsafe impl Sync for SentinelHeap {}

/// See [`SentinelHeap`].
pub static SENTINEL: SentinelHeap = SentinelHeap(UnsafeCell::new(oxalloc_core::Heap::sentinel(
    &ARENA,
    thread::bind_thread,
)));

/// Address of the sentinel heap.
#[inline(always)]
pub fn sentinel() -> *mut ThreadHeap {
    SENTINEL.0.get()
}

/// Allocates `size` bytes aligned to 16. Null when out of memory.
///
/// # Safety
/// Always safe to call; unsafe because it returns raw memory.
#[inline(always)]
pub unsafe fn malloc(size: usize) -> *mut u8 {
    // SAFETY: as for this function.
    unsafe {
        let p = malloc_fast(size);
        if !p.is_null() {
            return p;
        }
        malloc_slow(size)
    }
}

/// The malloc fast path alone: null when the slow path is needed (see [`malloc_slow`]).
///
/// # Safety
/// As for [`malloc`].
#[inline(always)]
pub unsafe fn malloc_fast(size: usize) -> *mut u8 {
    // SAFETY: as in `malloc`.
    unsafe { core_alloc::malloc_fast(thread::current(), size) }
}

/// The malloc slow path (binding the thread, refilling pages, huge blocks).
///
/// # Safety
/// As for [`malloc`].
#[inline(never)]
#[cold]
pub unsafe fn malloc_slow(size: usize) -> *mut u8 {
    let heap = thread::current();
    if heap == sentinel() {
        // SAFETY: as in `malloc`.
        return unsafe { malloc_unbound(size) };
    }
    // SAFETY: `heap` is this thread's bound heap.
    unsafe { core_alloc::malloc_slow(heap, size) }
}

/// Whether the background purge thread (`OXALLOC_PURGE_THREAD=1`) is running in this process:
/// it starts at the first segment or huge-block allocation after start-up (and again in a fork
/// child).
pub fn purge_thread_running() -> bool {
    purger::running()
}

/// The slow path of a thread whose slot holds the sentinel: its first allocation (which binds
/// it), or every allocation in valgrind mode (which leaves the sentinel in the slot).
#[inline(never)]
#[cold]
unsafe fn malloc_unbound(size: usize) -> *mut u8 {
    init::process_init();
    // SAFETY: valgrind mode is on when `active()`; otherwise the sentinel binds a heap.
    unsafe {
        if valgrind::active() {
            return valgrind::malloc(size);
        }
        core_alloc::malloc_slow(sentinel(), size)
    }
}

/// Frees a block from [`malloc`] and friends; null is ignored. Invalid and double frees that can
/// be detected end the process with a one-line message.
///
/// # Safety
/// `p` is null or a live block from this allocator.
#[inline(always)]
pub unsafe fn free(p: *mut u8) {
    // SAFETY: per the contract; the thread id is the caller's.
    unsafe { oxalloc_core::free::free(&ARENA, p, thread::thread_id()) }
}

/// Allocates `size` zeroed bytes (fresh memory from the OS is not cleared again).
///
/// # Safety
/// As for [`malloc`].
pub unsafe fn malloc_zeroed(size: usize) -> *mut u8 {
    // SAFETY: as in `malloc`.
    unsafe {
        if valgrind::active() {
            return valgrind::alloc(size, ALIGN, true);
        }
        core_alloc::malloc_zeroed(thread::current(), size)
    }
}

/// Allocates `size` bytes aligned to `align`, a power of two of at most 2 MiB; zeroed if
/// `zero`. Null when out of memory or when the alignment is larger.
///
/// # Safety
/// As for [`malloc`]; `align` is a power of two.
pub unsafe fn malloc_aligned(size: usize, align: usize, zero: bool) -> *mut u8 {
    // SAFETY: as in `malloc`.
    unsafe {
        if valgrind::active() {
            return valgrind::alloc(size, align, zero);
        }
        core_alloc::malloc_aligned(thread::current(), size, align, zero)
    }
}

/// Resizes a block, keeping its contents; in place when possible. Null on failure, with the
/// old block left valid.
///
/// # Safety
/// `p` is null or a live block from this allocator.
pub unsafe fn realloc(p: *mut u8, size: usize) -> *mut u8 {
    // SAFETY: as in `malloc`, and per the contract.
    unsafe {
        if valgrind::active() {
            return valgrind::realloc(p, size);
        }
        core_alloc::realloc(thread::current(), p, size)
    }
}

/// Bytes usable in the block at `p` (at least the size asked for, all writable).
///
/// # Safety
/// `p` is null or a live block from this allocator.
pub unsafe fn usable_size(p: *const u8) -> usize {
    // SAFETY: per the contract.
    unsafe {
        if valgrind::active() {
            return valgrind::usable_size(p);
        }
        core_alloc::usable_size(&ARENA, p)
    }
}

/// Checks the size a sized free was given (`free_sized`, C++ sized delete) against the block
/// at `p`, ending the process with a message naming `p` when the block cannot have been
/// allocated with it; `exact_class` is false for aligned allocations, whose block may be
/// larger than the size asked for (only an oversized `size` is caught then).
///
/// # Safety
/// `p` is null or a live block from this allocator.
pub unsafe fn check_free_size(p: *const u8, size: usize, exact_class: bool) {
    // SAFETY: per the contract.
    unsafe {
        if valgrind::active() {
            return valgrind::check_free_size(p, size, exact_class);
        }
        core_alloc::check_free_size(&ARENA, p, size, exact_class)
    }
}

/// A snapshot of the allocator's statistics: exact for the calling thread's heap and for the
/// memory of threads that have exited; other running threads' heaps count as of their last
/// slow path.
pub fn stats() -> Snapshot {
    let own = own_heap().map(|h| h as *const ThreadHeap);
    // SAFETY: `own` is the calling thread's heap.
    valgrind::quiet_if_active(|| unsafe { oxalloc_core::visit::snapshot(&ARENA, &HEAPS, own) })
}

pub use oxalloc_core::visit::{AreaInfo, PageInfo, Visit};

/// Walks the whole heap in address order: every area (a segment, or a huge block's segment),
/// every page of it, and, if `blocks`, every live block of the calling thread's pages (and
/// every huge block), calling `f` for each until it returns false. Returns true when the walk
/// went to the end.
///
/// Pages of the calling thread are described exactly; other threads' pages as of their last
/// refill (`PageInfo::exact` tells which). Nothing is allocated by the walk, and no lock is held
/// while `f` runs, so `f` may allocate (what it changes may or may not be seen by the rest of
/// the walk).
///
/// ```
/// let v: Vec<u32> = (0..1000).collect();
/// let mut live = 0;
/// oxalloc::heap_visit(true, |visit| {
///     if let oxalloc::Visit::Block(_, _, size) = visit {
///         live += size;
///     }
///     true
/// });
/// # let _ = (v, live);
/// ```
pub fn heap_visit(blocks: bool, mut f: impl FnMut(Visit<'_>) -> bool) -> bool {
    let own = own_heap().map(|h| h as *const ThreadHeap);
    // SAFETY: `own` is the calling thread's heap.
    valgrind::quiet_if_active(|| unsafe {
        oxalloc_core::visit::heap_visit(&ARENA, own, blocks, &mut f)
    })
}

/// Gives memory back to the OS now (`malloc_trim`): the calling thread's heap collects the
/// blocks other threads freed into its pages and releases every free page, segments abandoned by
/// exited threads are reclaimed (releasing what was freed in them since), the free page slots of
/// the thread's segments are purged, and cached spans are unmapped. Returns the bytes released.
pub fn trim() -> usize {
    let own = own_heap();
    // SAFETY: `own` is the calling thread's heap.
    valgrind::quiet_if_active(|| unsafe { oxalloc_core::collect::collect(own, &ARENA) })
}

/// The calling thread's heap if it has one: the slot's, or in valgrind mode (where the slot
/// keeps the sentinel) the one keyed for thread exit.
fn own_heap() -> Option<*mut ThreadHeap> {
    let own = thread::current();
    if own != sentinel() {
        return Some(own);
    }
    if valgrind::active() {
        let keyed = thread::keyed_heap();
        return (!keyed.is_null()).then_some(keyed);
    }
    None
}

/// Writes the sampled heap profile now (see the README's profiling section): the live samples
/// with their raw stacks and the process's mappings, to `path`, or with `None` to the file of
/// `OXALLOC_PROFILE_FILE` (default `oxalloc-profile.<pid>.txt`). Returns false if profiling is
/// off (`OXALLOC_PROFILE=1` turns it on) or the file cannot be written. Allocates nothing.
pub fn profile_dump(path: Option<&core::ffi::CStr>) -> bool {
    init::process_init();
    if !init::profile::enabled() {
        return false;
    }
    match path {
        Some(p) => init::profile::dump_to(p.to_bytes_with_nul(), "request"),
        None => init::profile::dump_configured("request", ""),
    }
}

/// oxalloc as Rust's global allocator.
pub struct OxAlloc;

// SAFETY: every method forwards to the allocator, which returns blocks of at least the layout's
// size and alignment (alignments above 2 MiB fail with null, which GlobalAlloc allows).
unsafe impl GlobalAlloc for OxAlloc {
    #[inline(always)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: layout alignments are powers of two.
        unsafe {
            if layout.align() <= ALIGN {
                malloc(layout.size())
            } else {
                malloc_aligned(layout.size(), layout.align(), false)
            }
        }
    }

    #[inline(always)]
    unsafe fn dealloc(&self, p: *mut u8, _layout: Layout) {
        // SAFETY: GlobalAlloc's contract: `p` came from this allocator.
        unsafe { free(p) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        unsafe {
            if layout.align() <= ALIGN {
                malloc_zeroed(layout.size())
            } else {
                malloc_aligned(layout.size(), layout.align(), true)
            }
        }
    }

    #[inline]
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: GlobalAlloc's contract: `p` is live with `layout`.
        unsafe {
            if layout.align() <= ALIGN {
                return realloc(p, new_size);
            }
            // Over-aligned: grow in place if the block already has room, else move.
            if usable_size(p) >= new_size {
                return p;
            }
            let q = malloc_aligned(new_size, layout.align(), false);
            if !q.is_null() {
                ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
                free(p);
            }
            q
        }
    }
}
