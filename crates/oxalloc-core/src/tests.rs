//! Core tests on a fixed memory region: the allocator's policy exercised without the OS layer.
//!
//! SAFETY (for the `unsafe` calls below): each test drives one heap from one thread (or hands
//! blocks to other threads through channels, as the API allows), and passes the allocator only
//! pointers it returned, except where a test checks that a bad pointer is refused.

use crate::arena::Arena;
use crate::heap::{Heap, HeapRegistry};
use crate::region::FixedRegion;
use crate::segment::owner::NO_THREAD;
use crate::segment::{Segment, SEGMENT_SIZE};
use crate::util::sync::{AtomicUsize, Ordering};
use std::boxed::Box;
use std::vec::Vec;

/// The process-wide state of one test allocator: an arena over a fixed region and a registry.
struct G {
    arena: &'static Arena<FixedRegion>,
    heaps: &'static HeapRegistry<FixedRegion>,
    os: &'static FixedRegion,
}

impl G {
    unsafe fn free(&self, p: *mut u8, tid: usize) {
        // SAFETY: the test's contract (see the module comment).
        unsafe { crate::free::free(self.arena, p, tid) }
    }
    unsafe fn usable_size(&self, p: *const u8) -> usize {
        // SAFETY: as above.
        unsafe { crate::alloc::usable_size(self.arena, p) }
    }
    /// A snapshot from a thread that owns none of the heaps.
    fn snapshot(&self) -> crate::Snapshot {
        // SAFETY: no heap is walked as our own.
        unsafe { crate::visit::snapshot(self.arena, self.heaps, None) }
    }
    /// A snapshot that walks `own`, a heap the calling thread drives.
    fn snapshot_own(&self, own: H) -> crate::Snapshot {
        // SAFETY: the test drives `own` from this thread.
        unsafe { crate::visit::snapshot(self.arena, self.heaps, Some(own.0)) }
    }
    unsafe fn destroy_heap(&self, h: H) {
        // SAFETY: as above.
        unsafe { crate::heap_life::destroy(self.heaps, h.0) }
    }
    fn trim(&self) -> usize {
        self.arena.trim()
    }
}

/// A test's heap, kept as a raw pointer: each call makes its own short-lived `&mut` (as the
/// front end does from its thread-local slot), so the frees that reach the heap through a page's
/// heap pointer never overlap a reference the test holds.
#[derive(Clone, Copy)]
struct H(*mut Heap<FixedRegion>);

// SAFETY: tests hand a heap to another thread only to use it there alone.
unsafe impl Send for H {}

impl H {
    unsafe fn malloc(self, size: usize) -> *mut u8 {
        // SAFETY: the test's contract.
        unsafe { crate::alloc::malloc(self.0, size) }
    }
    unsafe fn malloc_zeroed(self, size: usize) -> *mut u8 {
        // SAFETY: as above.
        unsafe { crate::alloc::malloc_zeroed(self.0, size) }
    }
    unsafe fn malloc_aligned(self, size: usize, align: usize, zero: bool) -> *mut u8 {
        // SAFETY: as above.
        unsafe { crate::alloc::malloc_aligned(self.0, size, align, zero) }
    }
    unsafe fn realloc(self, p: *mut u8, size: usize) -> *mut u8 {
        // SAFETY: as above.
        unsafe { crate::alloc::realloc(self.0, p, size) }
    }
    fn validate(self) {
        // SAFETY: each test drives its heaps from the thread that uses them.
        unsafe { crate::validate::check_heap(&*self.0) }
    }
    fn thread_id(self) -> usize {
        // SAFETY: the heap is valid; its id is fixed at creation.
        unsafe { (*self.0).thread_id }
    }
}

fn test_clock() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
}

unsafe fn no_binding() -> *mut Heap<FixedRegion> {
    core::ptr::null_mut()
}

/// A fresh allocator over a region of `units` segments (leaked: tests are short-lived).
fn global(units: usize) -> G {
    global_with_clock(units, test_clock)
}

/// [`global`] with its own clock.
fn global_with_clock(units: usize, clock: fn() -> u64) -> G {
    let layout = std::alloc::Layout::from_size_align(units * SEGMENT_SIZE, SEGMENT_SIZE).unwrap();
    // SAFETY: non-zero size.
    let base = unsafe { std::alloc::alloc(layout) };
    assert!(!base.is_null());
    // SAFETY: the region is ours alone and never freed; the allocator does not know it reads
    // as zero, so it clears what it must.
    let region = unsafe { FixedRegion::new(base, units * SEGMENT_SIZE, false) }
        .with_clock_and_seed(clock, 0x9E37_79B9_7F4A_7C15u64 as usize);
    let arena: &'static Arena<FixedRegion> = Box::leak(Box::new(Arena::new(region)));
    G {
        arena,
        heaps: Box::leak(Box::new(HeapRegistry::new())),
        os: &arena.os,
    }
}

static NEXT_TID: AtomicUsize = AtomicUsize::new(0x1000);

/// Units in use once the heap pool has its first chunk.
const POOL_UNITS: usize = 1;

fn heap(g: &G) -> H {
    let tid = NEXT_TID.fetch_add(16, Ordering::Relaxed);
    H(crate::heap_life::create(g.heaps, g.arena, no_binding, tid))
}

fn fill(p: *mut u8, n: usize, tag: u8) {
    // SAFETY: callers pass blocks of at least `n` bytes.
    unsafe { core::ptr::write_bytes(p, tag, n) };
}

fn check(p: *const u8, n: usize, tag: u8) {
    // Bytes are read through the raw pointer: a reference per byte would, under Miri, give
    // each byte a borrow-stack entry of its own and split the region's borrow tracking into
    // millions of ranges that every later access searches and copies (the aligned test ran
    // for over ten minutes that way).
    // SAFETY: callers pass blocks of at least `n` bytes they filled; every index is below `n`.
    let at = |i: usize| unsafe { p.add(i).read() } == tag;
    // Miri interprets every byte compared: there a sample (both ends and every 509th byte)
    // stands in for the whole block.
    let ok = if cfg!(miri) {
        (0..n.min(64)).all(at) && (n.saturating_sub(64)..n).all(at) && (0..n).step_by(509).all(at)
    } else {
        (0..n).all(at)
    };
    assert!(ok, "block {p:p} lost its contents");
}

/// `native` natively, `miri` under Miri: the tests keep their code paths under Miri (several
/// segments, abandoned segments, huge blocks, cross-thread frees) with fewer blocks, steps and
/// threads, so that all of them run in CI (Miri interprets each step, thousands of times
/// slower than native code).
const fn scaled(native: usize, miri: usize) -> usize {
    if cfg!(miri) {
        miri
    } else {
        native
    }
}

#[test]
fn malloc_free_many_sizes_reuses_memory() {
    let g = &global(32);
    let h = heap(g);
    let sizes = [
        0usize, 1, 8, 16, 17, 100, 128, 129, 1000, 1024, 1025, 4000, 8192, 9000, 65536, 131072,
    ];
    // Under Miri 64 blocks a round: four of each size, in segments of both kinds.
    let count = scaled(2000, 64);
    for round in 0..scaled(3, 2) {
        let mut blocks = Vec::new();
        for (i, &s) in sizes.iter().cycle().take(count).enumerate() {
            // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
            let p = unsafe { h.malloc(s) };
            assert!(!p.is_null());
            assert_eq!(p as usize % 16, 0, "16-byte alignment");
            // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
            assert!(unsafe { g.usable_size(p) } >= s);
            fill(p, s, i as u8);
            blocks.push((p, s, i as u8));
        }
        for &(p, s, tag) in &blocks {
            check(p, s, tag);
        }
        let mut sorted: Vec<_> = blocks
            .iter()
            .map(|&(p, s, _)| (p as usize, s.max(1)))
            .collect();
        sorted.sort();
        for w in sorted.windows(2) {
            assert!(w[0].0 + w[0].1 <= w[1].0, "blocks overlap");
        }
        for &(p, _, _) in &blocks {
            // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
            unsafe { g.free(p, h.thread_id()) };
        }
        let s = g.snapshot_own(h);
        assert_eq!(s.live_bytes, 0, "round {round}");
        assert_eq!(s.allocations, (count * (round + 1)) as u64);
        assert_eq!(s.frees, s.allocations);
    }
    // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
    unsafe { g.destroy_heap(h) };
    g.trim();
    assert_eq!(
        g.os.in_use.load(Ordering::Relaxed),
        POOL_UNITS,
        "every segment went back"
    );
}

#[test]
#[cfg_attr(target_family = "wasm", ignore = "wasm32 has no threads")]
fn remote_frees_come_back_to_the_owner() {
    let g = &global(16);
    let owner = heap(g);
    let tid = owner.thread_id();
    // Under Miri fewer, larger blocks: still several full pages (64 blocks of 1 KiB a page).
    let (n, size) = (scaled(10_000, 300), scaled(48, 1000));
    let ptrs: Vec<usize> = (0..n)
        // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
        .map(|_| unsafe { owner.malloc(size) } as usize)
        .collect();
    // Another thread frees everything; the owner's pages are full, so the delayed path runs.
    std::thread::scope(|s| {
        s.spawn(|| {
            for &p in &ptrs {
                // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
                unsafe { g.free(p as *mut u8, NO_THREAD) };
            }
        });
    });
    assert_eq!(g.snapshot_own(owner).live_bytes, 0);
    // The owner reuses the same blocks instead of mapping more.
    let mapped = g.os.in_use.load(Ordering::Relaxed);
    let again: Vec<usize> = (0..n)
        // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
        .map(|_| unsafe { owner.malloc(size) } as usize)
        .collect();
    assert_eq!(g.os.in_use.load(Ordering::Relaxed), mapped);
    // Every new block lies in a page the freed blocks were in (which blocks come back first
    // depends on the order pages are refilled: the small first page may be left for later).
    let pages = |v: &[usize]| {
        v.iter()
            .map(|p| p >> 16)
            .collect::<std::collections::HashSet<_>>()
    };
    let old = pages(&ptrs);
    assert!(
        pages(&again).is_subset(&old),
        "new blocks came from new pages"
    );
    for p in again {
        // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
        unsafe { g.free(p as *mut u8, tid) };
    }
    // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
    unsafe { g.destroy_heap(owner) };
    g.trim();
    assert_eq!(g.os.in_use.load(Ordering::Relaxed), POOL_UNITS);
}

#[test]
fn abandoned_segments_are_reclaimed() {
    let g = &global(16);
    let first = heap(g);
    let n = scaled(5000, 300); // 300 blocks of 224 bytes fill more than one 64 KiB page
    let kept: Vec<usize> = (0..n)
        // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
        .map(|_| unsafe { first.malloc(200) } as usize)
        .collect();
    // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
    unsafe { g.destroy_heap(first) };
    let s = g.snapshot();
    assert_eq!(s.abandoned, 1);
    assert_eq!(s.live_bytes, n as u64 * 224);
    // Frees after the owner is gone go through the remote path.
    for &p in &kept[..n / 2] {
        // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
        unsafe { g.free(p as *mut u8, NO_THREAD) };
    }
    let second = heap(g);
    let mapped = g.os.in_use.load(Ordering::Relaxed);
    // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
    let p = unsafe { second.malloc(200) };
    assert_eq!(g.snapshot().reclaimed, 1);
    assert_eq!(
        g.os.in_use.load(Ordering::Relaxed),
        mapped,
        "reused the abandoned segment"
    );
    // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
    unsafe { g.free(p, second.thread_id()) };
    for &p in &kept[n / 2..] {
        // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
        unsafe { g.free(p as *mut u8, second.thread_id()) };
    }
    // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
    unsafe { g.destroy_heap(second) };
    g.trim();
    assert_eq!(g.os.in_use.load(Ordering::Relaxed), POOL_UNITS);
}

#[test]
fn aligned_blocks_are_aligned_and_freeable() {
    let g = &global(32);
    let h = heap(g);
    // Under Miri (where this test took four minutes with every alignment) a choice that still
    // covers each path: at most 16 bytes, natural size classes, one OS page, more than a page,
    // 64 KiB, and the huge ones up to the 2 MiB limit.
    let logs: &[u32] = if cfg!(miri) {
        &[4, 5, 8, 12, 13, 16, 20, 21]
    } else {
        &[
            4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
        ]
    };
    for &align_log in logs {
        let align = 1usize << align_log;
        let mut blocks = Vec::new();
        for size in [1usize, 24, 100, 5000, 200_000] {
            // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
            let p = unsafe { h.malloc_aligned(size, align, align_log % 2 == 0) };
            assert!(!p.is_null(), "size {size} align {align}");
            assert_eq!(p as usize % align, 0);
            // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
            assert!(unsafe { g.usable_size(p) } >= size);
            fill(p, size, 7);
            blocks.push(p);
        }
        for p in blocks {
            // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
            unsafe { g.free(p, h.thread_id()) };
        }
    }
    assert!(
        // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
        unsafe { h.malloc_aligned(16, 8 << 20, false) }.is_null(),
        "alignment beyond 2 MiB"
    );
    // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
    unsafe { g.destroy_heap(h) };
    g.trim();
    assert_eq!(g.os.in_use.load(Ordering::Relaxed), POOL_UNITS);
}

#[test]
fn huge_blocks_map_cache_and_unmap() {
    let g = &global(16);
    let h = heap(g);
    // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
    let p = unsafe { h.malloc(10 << 20) };
    assert!(!p.is_null());
    assert_eq!(g.os.in_use.load(Ordering::Relaxed), POOL_UNITS + 3);
    fill(p, 10 << 20, 3);
    // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
    let q = unsafe { h.realloc(p, 6 << 20) };
    assert_eq!(q, p, "shrinking stays in place");
    check(q, 6 << 20, 3);
    // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
    let r = unsafe { h.realloc(q, 9 << 20) };
    assert_eq!(r, q, "growing back within the mapping stays in place");
    // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
    let z = unsafe { h.malloc_zeroed(300_000) };
    check(z, 300_000, 0);
    // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
    unsafe { g.free(z, h.thread_id()) };
    // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
    unsafe { g.free(r, NO_THREAD) };
    // Freed huge blocks wait in the span cache, and are reused from it.
    let cached = g.os.in_use.load(Ordering::Relaxed);
    assert!(cached > POOL_UNITS);
    // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
    let again = unsafe { h.malloc(9 << 20) };
    assert_eq!(again, r, "the cached span is reused");
    assert_eq!(g.os.in_use.load(Ordering::Relaxed), cached);
    // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
    unsafe { g.free(again, NO_THREAD) };
    g.trim();
    assert_eq!(g.os.in_use.load(Ordering::Relaxed), POOL_UNITS);

    // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
    assert!(unsafe { h.malloc(usize::MAX) }.is_null());
    // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
    assert!(unsafe { h.malloc(usize::MAX / 2) }.is_null());
    // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
    unsafe { g.destroy_heap(h) };
}

#[test]
fn a_segment_leaves_a_cached_huge_span_to_huge_blocks() {
    let g = &global(16);
    let h = heap(g);
    let seg_of = |p: *mut u8| p as usize & !(SEGMENT_SIZE - 1);
    // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
    let big = unsafe { h.malloc(14 << 20) };
    assert!(!big.is_null());
    assert_eq!(g.os.in_use.load(Ordering::Relaxed), POOL_UNITS + 4);
    // SAFETY: as above.
    unsafe { g.free(big, NO_THREAD) };
    // The heap's first small page needs a segment: one of its own, not the cached span.
    // SAFETY: as above.
    let small = unsafe { h.malloc(64) };
    assert_ne!(seg_of(small), seg_of(big));
    // SAFETY: the segment is registered and holds `small`, a live block.
    let seg_size = unsafe { (*(seg_of(small) as *const Segment)).size };
    assert_eq!(seg_size, SEGMENT_SIZE);
    assert_eq!(g.os.in_use.load(Ordering::Relaxed), POOL_UNITS + 5);
    // The next huge block reuses the span, without a new mapping.
    // SAFETY: as above.
    let again = unsafe { h.malloc(10 << 20) };
    assert_eq!(again, big);
    assert_eq!(g.os.in_use.load(Ordering::Relaxed), POOL_UNITS + 5);
    // SAFETY: as above.
    unsafe {
        g.free(again, NO_THREAD);
        g.free(small, h.thread_id());
        g.destroy_heap(h);
    }
    g.trim();
    assert_eq!(g.os.in_use.load(Ordering::Relaxed), POOL_UNITS);
}

#[test]
fn realloc_keeps_contents_across_classes() {
    let g = &global(16);
    let h = heap(g);
    // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
    let mut p = unsafe { h.malloc(1) };
    fill(p, 1, 0x5A);
    let mut size = 1;
    while size < 1 << 20 {
        let next = size * 3 + 1;
        // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
        p = unsafe { h.realloc(p, next) };
        check(p, size, 0x5A);
        fill(p, next, 0x5A);
        size = next;
    }
    while size > 1 {
        size /= 5;
        // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
        p = unsafe { h.realloc(p, size) };
        check(p, size, 0x5A);
    }
    // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
    unsafe { g.free(p, h.thread_id()) };
    // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
    unsafe { g.destroy_heap(h) };
    g.trim();
    assert_eq!(g.os.in_use.load(Ordering::Relaxed), POOL_UNITS);
}

#[test]
#[should_panic(expected = "double free")]
fn double_free_is_detected() {
    let g = &global(4);
    let h = heap(g);
    // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
    let a = unsafe { h.malloc(32) };
    // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
    let _b = unsafe { h.malloc(32) };
    // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
    unsafe { g.free(a, h.thread_id()) };
    // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
    unsafe { g.free(a, h.thread_id()) };
}

#[test]
#[should_panic(expected = "invalid pointer")]
fn foreign_pointer_is_detected() {
    let g = &global(4);
    let x = Box::new(5u64);
    // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
    unsafe { g.free(Box::into_raw(x).cast(), NO_THREAD) };
}

#[test]
#[should_panic(expected = "invalid pointer")]
fn interior_pointer_is_detected() {
    let g = &global(4);
    let h = heap(g);
    // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
    let a = unsafe { h.malloc(64) };
    // Not the owner, so the generic path validates the pointer.
    // SAFETY: an interior pointer, which the allocator must refuse.
    unsafe { g.free(a.add(16), NO_THREAD) };
}

#[test]
#[cfg_attr(target_family = "wasm", ignore = "wasm32 has no threads")]
fn many_threads_cross_free_without_losing_blocks() {
    let g = &global(64);
    const THREADS: usize = scaled(4, 3);
    const ROUNDS: usize = scaled(20, 2);
    const BLOCKS: usize = scaled(2000, 60);
    let (tx, rx): (Vec<_>, Vec<_>) = (0..THREADS)
        .map(|_| std::sync::mpsc::channel::<Vec<(usize, usize)>>())
        .unzip();
    let mut rx: Vec<_> = rx.into_iter().map(Some).collect();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let next = tx[(t + 1) % THREADS].clone();
            let inbox = rx[t].take().unwrap();
            s.spawn(move || {
                let h = heap(g);
                let mut seed = t as u64 + 1;
                for _ in 0..ROUNDS {
                    let mut mine = Vec::new();
                    for _ in 0..BLOCKS {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        let size = (seed % 3000) as usize;
                        // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
                        let p = unsafe { h.malloc(size) };
                        fill(p, size.min(64), size as u8);
                        mine.push((p as usize, size));
                    }
                    next.send(mine).unwrap();
                    let theirs = inbox.recv().unwrap();
                    for (p, size) in theirs {
                        check(p as *const u8, size.min(64), size as u8);
                        // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
                        unsafe { g.free(p as *mut u8, h.thread_id()) };
                    }
                }
                // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
                unsafe { g.destroy_heap(h) };
            });
        }
    });
    let s = g.snapshot();
    assert_eq!(s.live_bytes, 0);
    assert_eq!(s.allocations, (THREADS * ROUNDS * BLOCKS) as u64);
}

#[test]
fn random_replacement_keeps_the_heap_consistent() {
    // Many pages per size class and frees spread over all of them: pages go to the full queue
    // and come back, and the direct table must follow the queue heads (when it did not, every
    // malloc of the class took the slow path).
    let g = &global(32);
    let h = heap(g);
    // Under Miri fewer slots and steps, and larger blocks (1-5 KiB, 12 to 64 a page), so that
    // pages still fill up and come back from the full queue.
    let mut slots = std::vec![core::ptr::null_mut::<u8>(); scaled(4000, 300)];
    let mut seed = 7u64;
    let every = scaled(10_000, 1000);
    let (least, spread) = (scaled(16, 1024), scaled(1009, 4096));
    for step in 0..scaled(400_000, 3000) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let k = (seed % slots.len() as u64) as usize;
        // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
        unsafe { g.free(slots[k], h.thread_id()) };
        let size = least + ((seed >> 20) % spread as u64) as usize;
        // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
        slots[k] = unsafe { h.malloc(size) };
        fill(slots[k], size.min(16), 1);
        if step % every == 0 {
            h.validate();
        }
    }
    h.validate();
    for p in slots {
        // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
        unsafe { g.free(p, h.thread_id()) };
    }
    // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
    unsafe { g.destroy_heap(h) };
}

#[test]
fn huge_spans_come_in_a_few_sizes() {
    use crate::huge::huge_span_size;
    assert_eq!(huge_span_size(300 * 1024), 320 * 1024); // steps of 32 KiB between 256 and 512 KiB
    assert_eq!(huge_span_size(290 * 1024), 320 * 1024);
    assert_eq!(huge_span_size(256 * 1024), 256 * 1024);
    for t in (4096..64 << 20).step_by(4096 * 37) {
        let s = huge_span_size(t);
        assert!(
            s >= t && s - t <= t / 8 + 4096 && s % 4096 == 0,
            "{t} -> {s}"
        );
    }
}

#[test]
#[cfg_attr(target_family = "wasm", ignore = "wasm32 has no threads")]
fn snapshots_while_another_thread_allocates() {
    // A snapshot walks other threads' free lists while they change under it (statistics are
    // approximate then); it must never follow a link out of the page it is walking.
    let g = &global(32);
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let h = heap(g);
            let mut slots = std::vec![core::ptr::null_mut::<u8>(); scaled(3000, 100)];
            let mut seed = 11u64;
            for _ in 0..scaled(300_000, 600) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let k = (seed % slots.len() as u64) as usize;
                // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
                unsafe { g.free(slots[k], h.thread_id()) };
                let size = 16 + ((seed >> 20) % 1009) as usize;
                // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
                slots[k] = unsafe { h.malloc(size) };
                // Overwrite the block's first word, as programs do, with something that is not a
                // link of this page.
                // SAFETY: the block was just allocated with at least 8 bytes.
                unsafe { *(slots[k] as *mut u64) = seed | 0xFFFF_0000_0000_0000 };
            }
            for p in slots {
                // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
                unsafe { g.free(p, h.thread_id()) };
            }
            stop.store(true, Ordering::Release);
            // SAFETY: see the module comment: one heap per thread, and only pointers the allocator returned (except where a test checks that a bad pointer is refused).
            unsafe { g.destroy_heap(h) };
        });
        let mut snapshots = 0;
        while !stop.load(Ordering::Acquire) {
            let _ = g.snapshot();
            snapshots += 1;
        }
        assert!(snapshots > 0);
    });
}

#[test]
fn heap_walk_is_exact_for_the_owner() {
    use crate::visit::{heap_visit, Visit};
    let g = &global(16);
    let h = heap(g);
    let mut live = std::collections::BTreeMap::new();
    let mut freed = Vec::new();
    let n = scaled(300, 120);
    for i in 0..n {
        let size = [24usize, 1000, 9000][i % 3];
        // SAFETY: see the module comment.
        let p = unsafe { h.malloc(size) };
        if i % 4 == 0 {
            freed.push(p);
        } else {
            // SAFETY: as above.
            live.insert(p as usize, unsafe { g.usable_size(p) });
        }
    }
    let huge: Vec<*mut u8> = (0..3)
        // SAFETY: as above.
        .map(|i| unsafe { h.malloc(300_000 + i * 100_000) })
        .collect();
    for &p in &huge {
        // SAFETY: as above.
        live.insert(p as usize, unsafe { g.usable_size(p) });
    }
    for p in freed {
        // SAFETY: as above.
        unsafe { g.free(p, h.thread_id()) };
    }
    let (mut areas, mut huge_areas, mut used, mut seen) =
        (0, 0, 0u64, std::collections::BTreeMap::new());
    let mut last_area = 0;
    // SAFETY: `h` is driven by this thread.
    let done = unsafe {
        heap_visit(g.arena, Some(h.0), true, &mut |v| {
            match v {
                Visit::Area(a) => {
                    assert!(a.start > last_area, "areas in address order");
                    last_area = a.start;
                    areas += 1;
                    huge_areas += (a.kind == 2) as usize;
                }
                Visit::Page(_, p) => {
                    if p.exact == 1 {
                        used += p.used as u64;
                    }
                }
                Visit::Block(_, b, size) => {
                    seen.insert(b as usize, size);
                }
            }
            true
        })
    };
    assert!(done);
    assert_eq!(huge_areas, 3);
    assert!(
        areas >= 5,
        "segments of two kinds and three huge blocks: {areas}"
    );
    assert_eq!(
        used,
        (n - n / 4) as u64,
        "the owner's pages count exactly its live blocks"
    );
    assert_eq!(seen, live, "every live block once, with its usable size");
    // Stopping early.
    let mut calls = 0;
    // SAFETY: as above.
    let done = unsafe {
        heap_visit(g.arena, Some(h.0), true, &mut |_| {
            calls += 1;
            calls < 3
        })
    };
    assert!(!done && calls == 3);
}

/// The clock of `free_pages_of_a_live_segment_are_purged_after_the_delay` (tests run in
/// parallel, so each test that moves a clock by hand has its own).
static MANUAL_NOW: crate::util::sync::AtomicU64 = crate::util::sync::AtomicU64::new(0);

fn manual_clock() -> u64 {
    MANUAL_NOW.load(Ordering::Relaxed)
}

/// The clock of `frees_into_abandoned_segments_are_released_by_the_purge_clock`.
static ABANDON_NOW: crate::util::sync::AtomicU64 = crate::util::sync::AtomicU64::new(0);

fn abandon_clock() -> u64 {
    ABANDON_NOW.load(Ordering::Relaxed)
}

/// Enough page refills of one small size class to run the purge clock (every 32 refills).
/// Under Miri fewer rounds of fewer, larger blocks (2 KiB: 8 to a refill, 5 refills a round).
fn churn(h: H, g: &G) {
    let (size, blocks) = (scaled(16, 2048), scaled(200, 40));
    for _ in 0..scaled(80, 16) {
        // SAFETY: see the module comment.
        let ps: Vec<*mut u8> = (0..blocks).map(|_| unsafe { h.malloc(size) }).collect();
        for p in ps {
            // SAFETY: see the module comment.
            unsafe { g.free(p, h.thread_id()) };
        }
    }
}

#[test]
fn free_pages_of_a_live_segment_are_purged_after_the_delay() {
    let g = &global_with_clock(16, manual_clock);
    let h = heap(g);
    let purged = || g.os.purged.load(Ordering::Relaxed);
    churn(h, g);
    // Sixteen (under Miri six) 64 KiB pages of 1 KiB blocks; one block keeps the segment alive.
    let pages = scaled(16, 6);
    // SAFETY: see the module comment.
    let blocks: Vec<*mut u8> = (0..64 * pages).map(|_| unsafe { h.malloc(1000) }).collect();
    for &p in &blocks[1..] {
        // SAFETY: see the module comment.
        unsafe { g.free(p, h.thread_id()) };
    }
    let before = purged();
    let delay = crate::options::get(crate::options::Opt::PurgeDelay) as u64;
    MANUAL_NOW.store(1000, Ordering::Relaxed);
    churn(h, g); // an epoch starts: the freed pages begin to wait
    MANUAL_NOW.store(1000 + delay / 2, Ordering::Relaxed);
    churn(h, g);
    assert_eq!(purged(), before, "purged before the delay");
    MANUAL_NOW.store(1000 + delay * 2, Ordering::Relaxed);
    churn(h, g);
    let after = purged();
    assert!(
        after - before >= (pages - 2) * 64 * 1024,
        "only {} bytes purged",
        after - before
    );
    // Freed and taken again within the delay: never purged.
    // SAFETY: see the module comment.
    let again: Vec<*mut u8> = (0..64 * pages).map(|_| unsafe { h.malloc(1000) }).collect();
    for &p in &again {
        // SAFETY: see the module comment.
        unsafe { g.free(p, h.thread_id()) };
    }
    MANUAL_NOW.store(1000 + delay * 3, Ordering::Relaxed);
    churn(h, g);
    // SAFETY: see the module comment.
    let reused: Vec<*mut u8> = (0..64 * pages).map(|_| unsafe { h.malloc(1000) }).collect();
    MANUAL_NOW.store(1000 + delay * 5, Ordering::Relaxed);
    churn(h, g);
    assert_eq!(purged(), after, "a reused page slot was purged");
    for p in reused.into_iter().chain([blocks[0]]) {
        // SAFETY: see the module comment.
        unsafe { g.free(p, h.thread_id()) };
    }
    // SAFETY: see the module comment.
    unsafe { g.destroy_heap(h) };
}

#[test]
fn frees_into_abandoned_segments_are_released_by_the_purge_clock() {
    let g = &global_with_clock(16, abandon_clock);
    let busy = heap(g);
    churn(busy, g); // has a segment of its own, so it never needs the abandoned one
    let gone = heap(g);
    // SAFETY: see the module comment.
    let blocks: Vec<usize> = (0..scaled(5000, 400))
        .map(|_| unsafe { gone.malloc(200) } as usize)
        .collect();
    // SAFETY: see the module comment.
    unsafe { g.destroy_heap(gone) };
    for &p in &blocks {
        // SAFETY: see the module comment.
        unsafe { g.free(p as *mut u8, NO_THREAD) };
    }
    let s = g.snapshot();
    assert_eq!((s.abandoned, s.reclaimed), (1, 0));
    let segments = s.segments;
    ABANDON_NOW.fetch_add(10_000, Ordering::Relaxed);
    churn(busy, g); // no trim, no segment wanted: only the purge clock
    let s = g.snapshot();
    assert_eq!(
        s.reclaimed, 1,
        "the purge clock did not reclaim the segment"
    );
    assert_eq!(
        s.segments,
        segments - 1,
        "the emptied segment was not released"
    );
    // SAFETY: see the module comment.
    unsafe { g.destroy_heap(busy) };
}

/// A fresh allocator in secure mode (see `secure`).
fn secure_global(units: usize) -> G {
    let g = global(units);
    g.arena.set_secure(crate::secure::level::ON);
    g
}

#[test]
fn secure_mode_seals_fills_and_gives_everything_back() {
    let g = &secure_global(16);
    let h = heap(g);
    let tid = h.thread_id();
    let mut blocks = Vec::new();
    for (i, size) in [0usize, 1, 24, 100, 1000, 5000, 40_000, 300_000]
        .iter()
        .enumerate()
    {
        // SAFETY: see the module comment.
        unsafe {
            let p = h.malloc(*size);
            assert!(!p.is_null());
            assert_eq!(g.usable_size(p), *size, "usable size is the size asked for");
            fill(p, *size, i as u8);
            let z = h.malloc_zeroed(*size);
            check(z, *size, 0);
            let a = h.malloc_aligned(*size, 256, false);
            assert_eq!(a as usize % 256, 0);
            assert_eq!(g.usable_size(a), *size);
            fill(a, *size, 0x5a);
            blocks.extend([(p, *size, i as u8), (z, *size, 0), (a, *size, 0x5a)]);
        }
    }
    h.validate();
    for &(p, size, tag) in &blocks {
        check(p, size, tag);
        // SAFETY: see the module comment.
        unsafe { g.free(p, tid) };
    }
    h.validate();
    // Realloc always moves, keeping the contents.
    // SAFETY: see the module comment.
    unsafe {
        let p = h.malloc(40);
        fill(p, 40, 7);
        let q = h.realloc(p, 30);
        assert_ne!(p, q);
        check(q, 30, 7);
        let r = h.realloc(q, 3000);
        check(r, 30, 7);
        g.free(r, tid);
        g.destroy_heap(h);
    }
    g.trim();
    assert_eq!(
        g.os.in_use.load(Ordering::Relaxed),
        POOL_UNITS,
        "the quarantine was flushed"
    );
}

#[test]
#[should_panic(expected = "heap overflow detected")]
fn secure_mode_catches_a_one_byte_overflow() {
    let g = &secure_global(4);
    let h = heap(g);
    // SAFETY: see the module comment; the overflow is the point of the test.
    unsafe {
        let p = h.malloc(24);
        *p.add(24) = 1;
        g.free(p, h.thread_id());
    }
}

#[test]
#[should_panic(expected = "write after free detected")]
fn secure_mode_catches_a_write_to_a_quarantined_block() {
    let g = &secure_global(4);
    let h = heap(g);
    // SAFETY: see the module comment; the write after free is the point of the test.
    unsafe {
        let p = h.malloc(48);
        g.free(p, h.thread_id());
        *p.add(20) = 1;
        for _ in 0..crate::secure::QUARANTINE {
            let q = h.malloc(48);
            g.free(q, h.thread_id());
        }
    }
}

#[test]
#[should_panic(expected = "double free detected")]
fn a_double_free_is_caught_whatever_the_block_holds() {
    let g = &global(4);
    let h = heap(g);
    // SAFETY: see the module comment; the double free is the point of the test.
    unsafe {
        let p = h.malloc(32);
        let _keep = h.malloc(32);
        g.free(p, h.thread_id());
        // A write after free that makes the block look like any live block.
        core::ptr::write_bytes(p, 0x41, 32);
        g.free(p, h.thread_id());
    }
}

#[test]
#[should_panic(expected = "free list corrupted")]
fn a_corrupted_link_is_caught_before_malloc_follows_it() {
    let g = &global(4);
    let h = heap(g);
    // SAFETY: see the module comment; the write after free is the point of the test.
    unsafe {
        let p = h.malloc(32);
        g.free(p, h.thread_id());
        *(p as *mut usize) = 44;
        for _ in 0..10_000 {
            h.malloc(32);
        }
    }
}

/// Blocks left by heaps that are gone, freed by another thread and reclaimed by a new heap,
/// leave the live-byte estimate (and its peak) where the blocks in use put it: a reclaim takes
/// over the accounting its last owner made, without counting the blocks again.
#[test]
fn reclaimed_pages_keep_the_live_estimate_exact() {
    let g = &global(32);
    let (n, size) = (scaled(20_000, 2_000), 64);
    let round_bytes = (n * size) as u64;
    for round in 0..8 {
        let h = heap(g);
        let ptrs: Vec<usize> = (0..n)
            // SAFETY: see the module comment.
            .map(|_| unsafe { h.malloc(size) } as usize)
            .collect();
        // SAFETY: the heap is gone: its segments are abandoned with the blocks still live.
        unsafe { g.destroy_heap(h) };
        for &p in &ptrs {
            // SAFETY: see the module comment (a free under another thread's id).
            unsafe { g.free(p as *mut u8, NO_THREAD) };
        }
        let other = heap(g);
        // SAFETY: `other` is driven by this thread; collecting reclaims every abandoned segment.
        unsafe { crate::collect::collect(Some(other.0), g.arena) };
        // SAFETY: as above.
        unsafe { g.destroy_heap(other) };
        let gauges = crate::visit::gauges(g.arena);
        assert!(
            gauges.live_bytes < round_bytes / 8,
            "round {round}: {gauges:?}"
        );
        assert!(
            gauges.peak_live_bytes <= 2 * round_bytes,
            "round {round}: {gauges:?}"
        );
    }
}

#[test]
fn freeing_a_pages_last_sample_clears_its_flag() {
    use crate::page::FLAG_SAMPLED;
    use std::collections::BTreeMap;
    let g = global(8);
    // About one sample per page of 1 KiB blocks (64 KiB pages); under Miri, which is slow
    // here, four in one page.
    g.arena.profile.set_rate(scaled(64 * 1024, 16 * 1024));
    let h = heap(&g);
    let tid = h.thread_id();
    let blocks: Vec<*mut u8> = (0..scaled(4096, 64))
        // SAFETY: the test's contract (see the module comment).
        .map(|_| unsafe { h.malloc(1024) })
        .collect();
    // SAFETY: called with blocks of the heap's pages, whose segments are registered.
    let page_of = |p: *mut u8| unsafe { Segment::page_of(Segment::of(p), p) };
    // The sampled blocks of each page.
    let mut sampled: BTreeMap<usize, Vec<*mut u8>> = BTreeMap::new();
    for &p in &blocks {
        assert!(!p.is_null());
        if g.arena.profile.find(p as usize).is_some() {
            sampled.entry(page_of(p) as usize).or_default().push(p);
        }
    }
    assert!(
        sampled.len() >= scaled(8, 1),
        "{} pages hold samples",
        sampled.len()
    );
    let (mut single, mut several) = (0, 0);
    for (&page, samples) in &sampled {
        let page = page as *const crate::page::Page;
        // SAFETY: the page is one of the heap's, which this thread drives.
        let flags = || unsafe { (*page).flags() } & FLAG_SAMPLED;
        assert_ne!(flags(), 0, "a page holding a sample is flagged");
        if samples.len() == 1 {
            single += 1;
        } else {
            several += 1;
        }
        for (i, &p) in samples.iter().enumerate() {
            // SAFETY: `p` is live, ours.
            unsafe { g.free(p, tid) };
            assert!(g.arena.profile.find(p as usize).is_none());
            let last = i + 1 == samples.len();
            assert_eq!(
                flags() == 0,
                last,
                "the flag goes with the page's last sample"
            );
        }
    }
    // Under Miri the one page cannot show both kinds.
    assert!(
        cfg!(miri) || (single > 0 && several > 0),
        "{single} pages with one sample, {several} with more"
    );
    let freed: std::collections::BTreeSet<*mut u8> = sampled.into_values().flatten().collect();
    for p in blocks {
        if !freed.contains(&p) {
            // SAFETY: as above.
            unsafe { g.free(p, tid) };
        }
    }
    assert_eq!(g.arena.profile.live(), 0);
    h.validate();
}
