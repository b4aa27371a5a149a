//! Core tests on a fixed memory region: the allocator's policy exercised without the OS layer.
//!
//! SAFETY (for the `unsafe` calls below): each test drives one heap from one thread (or hands
//! blocks to other threads through channels, as the API allows), and passes the allocator only
//! pointers it returned, except where a test checks that a bad pointer is refused.

use crate::free::NO_THREAD;
use crate::heap::Heap;
use crate::os::{Mapping, Os, OS_PAGE};
use crate::segment::{SEGMENT_SHIFT, SEGMENT_SIZE};
use crate::sync::{AtomicUsize, Ordering, SpinLock};
use crate::Global;
use core::ptr::NonNull;
use std::boxed::Box;
use std::vec::Vec;

/// A source that carves 4 MiB units out of one region taken at start, tracking them in a bitmap.
/// It counts the units in use so tests can see memory go back.
pub struct FixedRegion {
    base: usize,
    units: usize,
    used: SpinLock<u128>,
    pub in_use: AtomicUsize,
    pub purged: AtomicUsize,
}

impl FixedRegion {
    pub fn new(units: usize) -> Self {
        assert!(units <= 128);
        let layout =
            std::alloc::Layout::from_size_align(units * SEGMENT_SIZE, SEGMENT_SIZE).unwrap();
        // SAFETY: non-zero size.
        let base = unsafe { std::alloc::alloc(layout) } as usize;
        assert!(base != 0);
        FixedRegion {
            base,
            units,
            used: SpinLock::new(0),
            in_use: AtomicUsize::new(0),
            purged: AtomicUsize::new(0),
        }
    }
}

// SAFETY: units are handed out once until returned; the region is never freed.
unsafe impl Os for FixedRegion {
    fn map(&self, size: usize, align: usize) -> Option<Mapping> {
        assert!(align <= SEGMENT_SIZE);
        let n = size.div_ceil(SEGMENT_SIZE);
        let mut used = self.used.lock();
        let mask = if n == 128 {
            u128::MAX
        } else {
            (1u128 << n) - 1
        };
        for first in 0..=self.units.checked_sub(n)? {
            if *used & (mask << first) == 0 {
                *used |= mask << first;
                self.in_use.fetch_add(n, Ordering::Relaxed);
                let ptr = (self.base + (first << SEGMENT_SHIFT)) as *mut u8;
                // Reused memory is not zero: say so, and make it visibly dirty.
                // SAFETY: the units are ours now.
                unsafe { core::ptr::write_bytes(ptr, 0xAB, size.min(OS_PAGE)) };
                return Some(Mapping {
                    ptr: NonNull::new(ptr)?,
                    zeroed: false,
                });
            }
        }
        None
    }
    unsafe fn unmap(&self, ptr: NonNull<u8>, size: usize) {
        let n = size.div_ceil(SEGMENT_SIZE);
        let first = (ptr.as_ptr() as usize - self.base) >> SEGMENT_SHIFT;
        let mask = if n == 128 {
            u128::MAX
        } else {
            (1u128 << n) - 1
        };
        let mut used = self.used.lock();
        assert_eq!(
            *used & (mask << first),
            mask << first,
            "unmap of unmapped units"
        );
        *used &= !(mask << first);
        self.in_use.fetch_sub(n, Ordering::Relaxed);
    }
    unsafe fn purge(&self, _ptr: NonNull<u8>, size: usize) -> bool {
        self.purged.fetch_add(size, Ordering::Relaxed);
        false
    }
    fn random(&self) -> usize {
        0x9E37_79B9_7F4A_7C15
    }
    fn now_ms(&self) -> u64 {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_millis() as u64
    }
    fn fatal(&self, what: &str, ptr: usize) -> ! {
        panic!("{what}: {ptr:#x}");
    }
}

unsafe fn no_binding() -> *mut Heap<FixedRegion> {
    core::ptr::null_mut()
}

fn global(units: usize) -> &'static Global<FixedRegion> {
    Box::leak(Box::new(Global::new(FixedRegion::new(units), no_binding)))
}

static NEXT_TID: AtomicUsize = AtomicUsize::new(0x1000);

/// Units in use once the heap pool has its first chunk.
const POOL_UNITS: usize = 1;

#[allow(clippy::mut_from_ref)]
fn heap(g: &'static Global<FixedRegion>) -> &'static mut Heap<FixedRegion> {
    let tid = NEXT_TID.fetch_add(16, Ordering::Relaxed);
    // SAFETY: create_heap returns a valid heap bound to `tid`, used by one thread in the tests.
    unsafe { &mut *g.create_heap(tid) }
}

fn fill(p: *mut u8, n: usize, tag: u8) {
    // SAFETY: callers pass blocks of at least `n` bytes.
    unsafe { core::ptr::write_bytes(p, tag, n) };
}

fn check(p: *const u8, n: usize, tag: u8) {
    // SAFETY: callers pass blocks of at least `n` bytes they filled.
    let s = unsafe { core::slice::from_raw_parts(p, n) };
    assert!(s.iter().all(|&b| b == tag), "block {p:p} lost its contents");
}

#[test]
fn malloc_free_many_sizes_reuses_memory() {
    let g = global(32);
    let h = heap(g);
    let sizes = [
        0usize, 1, 8, 16, 17, 100, 128, 129, 1000, 1024, 1025, 4000, 8192, 9000, 65536, 131072,
    ];
    for round in 0..3 {
        let mut blocks = Vec::new();
        for (i, &s) in sizes.iter().cycle().take(2000).enumerate() {
            let p = unsafe { h.malloc(s) };
            assert!(!p.is_null());
            assert_eq!(p as usize % 16, 0, "16-byte alignment");
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
            unsafe { g.free(p, h.thread_id) };
        }
        let s = g.snapshot();
        assert_eq!(s.live_bytes, 0, "round {round}");
        assert_eq!(s.allocations, 2000 * (round + 1));
        assert_eq!(s.frees, s.allocations);
    }
    unsafe { g.destroy_heap(h) };
    g.trim();
    assert_eq!(
        g.os.in_use.load(Ordering::Relaxed),
        POOL_UNITS,
        "every segment went back"
    );
}

#[test]
fn remote_frees_come_back_to_the_owner() {
    let g = global(16);
    let owner = heap(g);
    let tid = owner.thread_id;
    let ptrs: Vec<usize> = (0..10_000)
        .map(|_| unsafe { owner.malloc(48) } as usize)
        .collect();
    // Another thread frees everything; the owner's pages are full, so the delayed path runs.
    std::thread::scope(|s| {
        s.spawn(|| {
            for &p in &ptrs {
                unsafe { g.free(p as *mut u8, NO_THREAD) };
            }
        });
    });
    assert_eq!(g.snapshot().live_bytes, 0);
    // The owner reuses the same blocks instead of mapping more.
    let mapped = g.os.in_use.load(Ordering::Relaxed);
    let again: Vec<usize> = (0..10_000)
        .map(|_| unsafe { owner.malloc(48) } as usize)
        .collect();
    assert_eq!(g.os.in_use.load(Ordering::Relaxed), mapped);
    let old: std::collections::HashSet<usize> = ptrs.iter().copied().collect();
    let reused = again.iter().filter(|p| old.contains(p)).count();
    assert!(reused > 9_000, "only {reused} freed blocks were reused");
    for p in again {
        unsafe { g.free(p as *mut u8, tid) };
    }
    unsafe { g.destroy_heap(owner) };
    g.trim();
    assert_eq!(g.os.in_use.load(Ordering::Relaxed), POOL_UNITS);
}

#[test]
fn abandoned_segments_are_reclaimed() {
    let g = global(16);
    let first = heap(g);
    let kept: Vec<usize> = (0..5000)
        .map(|_| unsafe { first.malloc(200) } as usize)
        .collect();
    unsafe { g.destroy_heap(first) };
    let s = g.snapshot();
    assert_eq!(s.abandoned, 1);
    assert_eq!(s.live_bytes, 5000 * 224);
    // Frees after the owner is gone go through the remote path.
    for &p in &kept[..2500] {
        unsafe { g.free(p as *mut u8, NO_THREAD) };
    }
    let second = heap(g);
    let mapped = g.os.in_use.load(Ordering::Relaxed);
    let p = unsafe { second.malloc(200) };
    assert_eq!(g.snapshot().reclaimed, 1);
    assert_eq!(
        g.os.in_use.load(Ordering::Relaxed),
        mapped,
        "reused the abandoned segment"
    );
    unsafe { g.free(p, second.thread_id) };
    for &p in &kept[2500..] {
        unsafe { g.free(p as *mut u8, second.thread_id) };
    }
    unsafe { g.destroy_heap(second) };
    g.trim();
    assert_eq!(g.os.in_use.load(Ordering::Relaxed), POOL_UNITS);
}

#[test]
fn aligned_blocks_are_aligned_and_freeable() {
    let g = global(32);
    let h = heap(g);
    for align_log in 4..=21 {
        let align = 1usize << align_log;
        let mut blocks = Vec::new();
        for size in [1usize, 24, 100, 5000, 200_000] {
            let p = unsafe { h.malloc_aligned(size, align, align_log % 2 == 0) };
            assert!(!p.is_null(), "size {size} align {align}");
            assert_eq!(p as usize % align, 0);
            assert!(unsafe { g.usable_size(p) } >= size);
            fill(p, size, 7);
            blocks.push(p);
        }
        for p in blocks {
            unsafe { g.free(p, h.thread_id) };
        }
    }
    assert!(
        unsafe { h.malloc_aligned(16, 8 << 20, false) }.is_null(),
        "alignment beyond 2 MiB"
    );
    unsafe { g.destroy_heap(h) };
    g.trim();
    assert_eq!(g.os.in_use.load(Ordering::Relaxed), POOL_UNITS);
}

#[test]
fn huge_blocks_map_cache_and_unmap() {
    let g = global(16);
    let h = heap(g);
    let p = unsafe { h.malloc(10 << 20) };
    assert!(!p.is_null());
    assert_eq!(g.os.in_use.load(Ordering::Relaxed), POOL_UNITS + 3);
    fill(p, 10 << 20, 3);
    let q = unsafe { h.realloc(p, 6 << 20) };
    assert_eq!(q, p, "shrinking stays in place");
    check(q, 6 << 20, 3);
    let r = unsafe { h.realloc(q, 9 << 20) };
    assert_eq!(r, q, "growing back within the mapping stays in place");
    let z = unsafe { h.malloc_zeroed(300_000) };
    check(z, 300_000, 0);
    unsafe { g.free(z, h.thread_id) };
    unsafe { g.free(r, NO_THREAD) };
    // Freed huge blocks wait in the span cache, and are reused from it.
    let cached = g.os.in_use.load(Ordering::Relaxed);
    assert!(cached > POOL_UNITS);
    let again = unsafe { h.malloc(9 << 20) };
    assert_eq!(again, r, "the cached span is reused");
    assert_eq!(g.os.in_use.load(Ordering::Relaxed), cached);
    unsafe { g.free(again, NO_THREAD) };
    g.trim();
    assert_eq!(g.os.in_use.load(Ordering::Relaxed), POOL_UNITS);

    assert!(unsafe { h.malloc(usize::MAX) }.is_null());
    assert!(unsafe { h.malloc(usize::MAX / 2) }.is_null());
    unsafe { g.destroy_heap(h) };
}

#[test]
fn realloc_keeps_contents_across_classes() {
    let g = global(16);
    let h = heap(g);
    let mut p = unsafe { h.malloc(1) };
    fill(p, 1, 0x5A);
    let mut size = 1;
    while size < 1 << 20 {
        let next = size * 3 + 1;
        p = unsafe { h.realloc(p, next) };
        check(p, size, 0x5A);
        fill(p, next, 0x5A);
        size = next;
    }
    while size > 1 {
        size /= 5;
        p = unsafe { h.realloc(p, size) };
        check(p, size, 0x5A);
    }
    unsafe { g.free(p, h.thread_id) };
    unsafe { g.destroy_heap(h) };
    g.trim();
    assert_eq!(g.os.in_use.load(Ordering::Relaxed), POOL_UNITS);
}

#[test]
#[should_panic(expected = "double free")]
fn double_free_is_detected() {
    let g = global(4);
    let h = heap(g);
    let a = unsafe { h.malloc(32) };
    let _b = unsafe { h.malloc(32) };
    unsafe { g.free(a, h.thread_id) };
    unsafe { g.free(a, h.thread_id) };
}

#[test]
#[should_panic(expected = "invalid pointer")]
fn foreign_pointer_is_detected() {
    let g = global(4);
    let x = Box::new(5u64);
    unsafe { g.free(Box::into_raw(x).cast(), NO_THREAD) };
}

#[test]
#[should_panic(expected = "invalid pointer")]
fn interior_pointer_is_detected() {
    let g = global(4);
    let h = heap(g);
    let a = unsafe { h.malloc(64) };
    // Not the owner, so the generic path validates the pointer.
    unsafe { g.free(a.add(16), NO_THREAD) };
}

#[test]
fn many_threads_cross_free_without_losing_blocks() {
    let g = global(64);
    const THREADS: usize = 4;
    const ROUNDS: usize = 20;
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
                    for _ in 0..2000 {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        let size = (seed % 3000) as usize;
                        let p = unsafe { h.malloc(size) };
                        fill(p, size.min(64), size as u8);
                        mine.push((p as usize, size));
                    }
                    next.send(mine).unwrap();
                    let theirs = inbox.recv().unwrap();
                    for (p, size) in theirs {
                        check(p as *const u8, size.min(64), size as u8);
                        unsafe { g.free(p as *mut u8, h.thread_id) };
                    }
                }
                unsafe { g.destroy_heap(h) };
            });
        }
    });
    let s = g.snapshot();
    assert_eq!(s.live_bytes, 0);
    assert_eq!(s.allocations, (THREADS * ROUNDS * 2000) as u64);
}

#[test]
fn random_replacement_keeps_the_heap_consistent() {
    // Many pages per size class and frees spread over all of them: pages go to the full queue
    // and come back, and the direct table must follow the queue heads (when it did not, every
    // malloc of the class took the slow path).
    let g = global(32);
    let h = heap(g);
    let mut slots = std::vec![core::ptr::null_mut::<u8>(); 4000];
    let mut seed = 7u64;
    for step in 0..400_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let k = (seed % slots.len() as u64) as usize;
        unsafe { g.free(slots[k], h.thread_id) };
        let size = 16 + ((seed >> 20) % 1009) as usize;
        slots[k] = unsafe { h.malloc(size) };
        fill(slots[k], size.min(16), 1);
        if step % 10_000 == 0 {
            h.validate();
        }
    }
    h.validate();
    for p in slots {
        unsafe { g.free(p, h.thread_id) };
    }
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
fn snapshots_while_another_thread_allocates() {
    // A snapshot walks other threads' free lists while they change under it (statistics are
    // approximate then); it must never follow a link out of the page it is walking.
    let g = global(32);
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let h = heap(g);
            let mut slots = std::vec![core::ptr::null_mut::<u8>(); 3000];
            let mut seed = 11u64;
            for _ in 0..300_000 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let k = (seed % slots.len() as u64) as usize;
                unsafe { g.free(slots[k], h.thread_id) };
                let size = 16 + ((seed >> 20) % 1009) as usize;
                slots[k] = unsafe { h.malloc(size) };
                // Overwrite the block's first word, as programs do, with something that is not a
                // link of this page.
                unsafe { *(slots[k] as *mut u64) = seed | 0xFFFF_0000_0000_0000 };
            }
            for p in slots {
                unsafe { g.free(p, h.thread_id) };
            }
            stop.store(true, Ordering::Release);
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
