//! First-class heaps: heaps a program creates, allocates into, and drops whole
//! (`ox_heap_new`, `ox_heap_destroy`, `ox_heap_delete`; `oxalloc::Heap` in Rust).
//!
//! A first-class heap is an ordinary [`Heap`] from the registry's pool, bound to the thread that
//! creates it (its `thread_id` is that thread's), so everything the core does with heaps works
//! on it unchanged: the fast paths, page refills, remote frees (a block's page knows its heap,
//! whichever it is), statistics (the registry lists it), heap walks and the `debug-full`
//! validator. What is different:
//! - its `parent` is the creating thread's own heap, whose `children` list holds it: when the
//!   thread exits, its first-class heaps are deleted with it ([`delete_all`], from
//!   `heap_life::destroy`), so no segment keeps the id of a thread that is gone;
//! - it never reclaims an abandoned segment (`page_life`): every page it has holds only its own
//!   blocks, so [`destroy`] can free them all;
//! - its huge blocks carry its address in their page's `heap` (`alloc`), so [`destroy`] finds
//!   them and [`delete`] clears the tag.
//!
//! Invariants: `heap.parent` is non-null iff the heap is first-class, and then `heap` is in
//! `parent.children`, both owned by one thread; a first-class heap has no children.

use crate::free::{drain_delayed, flush_quarantine};
use crate::heap::{Heap, HeapRegistry};
use crate::heap_life::{abandon, return_pending};
use crate::huge::huge_release;
use crate::os::Os;
use crate::page::{Page, FLAG_SAMPLED};
use crate::page_life::{collect, release_page};
use crate::page_queue::{PageQueue, FULL};
use crate::segment::{Segment, SegmentKind};
use crate::thread_free::delayed;
use crate::util::sync::Ordering;
use core::ptr;

/// A new first-class heap for the thread owning `parent` (its bound heap); null when out of
/// memory.
///
/// # Safety
/// `parent` is a thread heap (not a sentinel, not first-class) of `registry`, owned by the
/// calling thread.
pub unsafe fn create<S: Os>(
    registry: &'static HeapRegistry<S>,
    parent: *mut Heap<S>,
) -> *mut Heap<S> {
    // SAFETY: per the contract the parent is ours; the new heap is ours alone.
    unsafe {
        debug_assert!(!(*parent).is_sentinel() && !(*parent).is_first_class());
        let heap = registry.create((*parent).arena, (*parent).bind, (*parent).thread_id);
        if heap.is_null() {
            return heap;
        }
        (*heap).parent = parent;
        (*parent).children.push_front(heap);
        heap
    }
}

/// Deletes a first-class heap: its blocks stay valid (its segments are abandoned, for other
/// heaps to reclaim, as at thread exit) and are freed later with `free`, from any thread.
///
/// # Safety
/// `heap` is a first-class heap of `registry` owned by the calling thread; it is not used again.
pub unsafe fn delete<S: Os>(registry: &HeapRegistry<S>, heap: *mut Heap<S>) {
    // SAFETY: per the contract.
    unsafe {
        unlink(heap);
        if (*heap).huge_blocks {
            untag_huge(heap);
        }
        abandon(heap);
        registry.retire(heap);
    }
}

/// Destroys a first-class heap: every block it holds is freed at once (its pages go back to
/// their segments and its segments to the arena's span cache; its huge blocks to the span
/// cache), whether or not the program freed them. A block of the heap still held anywhere
/// becomes invalid: using or freeing it afterwards is undefined behaviour, and so is a free of
/// one of its blocks by another thread while the destroy runs.
///
/// # Safety
/// `heap` is a first-class heap of `registry` owned by the calling thread; it is not used again,
/// nor are its blocks.
pub unsafe fn destroy<S: Os>(registry: &HeapRegistry<S>, heap: *mut Heap<S>) {
    // SAFETY: per the contract every page in the queues, and every segment, is ours.
    unsafe {
        unlink(heap);
        return_pending(heap);
        if (*heap).huge_blocks {
            free_huge(heap);
        }
        // 1. No remote free may reach the heap's delayed list once it is gone (waits out a
        //    notification under way); what was sent is dropped with the pages.
        for q in 0..=FULL {
            let mut page = (*heap).pages.queues[q].first();
            while !page.is_null() {
                (*page).thread_free.set_state(delayed::NEVER);
                page = PageQueue::next(page);
            }
        }
        drain_delayed(heap);
        // Secure mode: blocks waiting in the quarantine are checked and freed, as at thread
        // exit.
        flush_quarantine(heap);
        // 2. Every page goes back to its segment, used blocks and all; a segment whose last
        //    page goes returns to the arena.
        for q in 0..=FULL {
            loop {
                let page = (*heap).pages.queues[q].first();
                if page.is_null() {
                    break;
                }
                (*heap).pages.remove(page);
                collect(heap, page);
                // The blocks still in use die with the page: their live bits go, as a free
                // slot's must (see `page`).
                if (*page).flags() & FLAG_SAMPLED != 0 {
                    forget_samples(heap, page);
                }
                let seg = Segment::of(page.cast());
                let (start, end) = Segment::page_area(seg, Segment::slot_index(seg, page));
                (*page).clear_live_range(start as usize, end);
                release_page(heap, page);
            }
        }
        debug_assert!((*heap).segments.iter().all(|s| s.is_empty()));
        (*heap).counters.flush(&(*heap).arena.counters);
        registry.retire(heap);
    }
}

/// Drops the profile's samples of the blocks of a page that is destroyed with them.
///
/// # Safety
/// The calling thread owns `heap` and its `page`.
unsafe fn forget_samples<S: Os>(heap: *mut Heap<S>, page: *mut Page) {
    // SAFETY: per the contract; block starts are computed, not read.
    unsafe {
        let (start, size) = ((*page).start.get() as usize, (*page).block_size.get());
        for b in 0..(*page).capacity.get() as usize {
            (*heap).arena.profile.release(start + b * size);
        }
    }
}

/// Deletes every first-class heap of a thread heap (at thread exit).
///
/// # Safety
/// The calling thread owns `parent` and its children, which are not used again.
pub unsafe fn delete_all<S: Os>(registry: &HeapRegistry<S>, parent: *mut Heap<S>) {
    loop {
        // SAFETY: per the contract.
        let child = unsafe { (*parent).children.first() };
        if child.is_null() {
            return;
        }
        // SAFETY: a child is a first-class heap of the calling thread.
        unsafe { delete(registry, child) };
    }
}

/// Takes the heap out of its parent's list.
unsafe fn unlink<S: Os>(heap: *mut Heap<S>) {
    // SAFETY: the caller owns the heap and its parent.
    unsafe {
        let parent = (*heap).parent;
        debug_assert!(!parent.is_null(), "not a first-class heap");
        (*parent).children.remove(heap);
        (*heap).parent = ptr::null_mut();
    }
}

/// Whether `seg` is a live huge block tagged with `heap`. Called under the registry lock.
unsafe fn is_tagged<S: Os>(seg: *mut Segment, heap: *mut Heap<S>) -> bool {
    // SAFETY: the segment is registered (the lock keeps it so), so its header is readable; a
    // live huge segment's header is written only by the thread that frees or resizes it.
    unsafe {
        (*seg).kind == SegmentKind::Huge
            && (*seg).pages[0].heap.load(Ordering::Acquire) == heap as usize
    }
}

/// Frees the heap's huge blocks: each is claimed under the registry lock (the swap a free
/// makes), then released outside it, a batch at a time.
unsafe fn free_huge<S: Os>(heap: *mut Heap<S>) {
    const BATCH: usize = 32;
    // SAFETY: the caller owns the heap.
    let arena = unsafe { (*heap).arena };
    loop {
        let mut claimed = [ptr::null_mut::<Segment>(); BATCH];
        let mut n = 0;
        arena.for_each_segment(|seg| {
            if n == BATCH {
                return;
            }
            // SAFETY: see `is_tagged`; the swap (the one a free makes) makes the block ours to
            // release.
            let ours = unsafe { is_tagged(seg, heap) && crate::huge::claim(seg) };
            if ours {
                claimed[n] = seg;
                n += 1;
            }
        });
        for &seg in &claimed[..n] {
            // SAFETY: we made the swap that frees the block; its header stays ours till then.
            unsafe {
                let page = &(*seg).pages[0];
                if page.flags() & FLAG_SAMPLED != 0 {
                    arena.profile.release(page.start.get() as usize);
                }
                huge_release(arena, seg);
            }
        }
        if n < BATCH {
            return;
        }
    }
}

/// Clears the heap's tag from its huge blocks, which stay allocated (freed later with `free`).
unsafe fn untag_huge<S: Os>(heap: *mut Heap<S>) {
    // SAFETY: the caller owns the heap.
    let arena = unsafe { (*heap).arena };
    arena.for_each_segment(|seg| {
        // SAFETY: see `is_tagged`; the swap only clears our own tag, which nothing else writes.
        unsafe {
            if (*seg).kind == SegmentKind::Huge {
                let _ = (*seg).pages[0].heap.compare_exchange(
                    heap as usize,
                    0,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                );
            }
        }
    });
}

#[cfg(test)]
mod tests {
    //! The life of first-class heaps on a fixed region. SAFETY (for the `unsafe` calls below):
    //! each heap is driven by the thread that created it, and only pointers the allocator
    //! returned are passed to it.
    use super::*;
    use crate::alloc::{malloc, malloc_aligned, malloc_zeroed, realloc};
    use crate::arena::Arena;
    use crate::free::free;
    use crate::heap_life;
    use crate::region::FixedRegion;
    use crate::segment::SEGMENT_SIZE;
    use crate::util::sync::AtomicUsize;
    use std::boxed::Box;
    use std::vec::Vec;

    type A = Arena<FixedRegion>;
    type R = HeapRegistry<FixedRegion>;
    type HeapPtr = *mut Heap<FixedRegion>;

    unsafe fn no_binding() -> HeapPtr {
        ptr::null_mut()
    }

    fn clock() -> u64 {
        0
    }

    fn setup(units: usize) -> (&'static A, &'static R) {
        let layout =
            std::alloc::Layout::from_size_align(units * SEGMENT_SIZE, SEGMENT_SIZE).unwrap();
        // SAFETY: non-zero size.
        let base = unsafe { std::alloc::alloc(layout) };
        assert!(!base.is_null());
        // SAFETY: the region is ours alone and never freed.
        let region = unsafe { FixedRegion::new(base, units * SEGMENT_SIZE, false) }
            .with_clock_and_seed(clock, 0x5151);
        (
            Box::leak(Box::new(Arena::new(region))),
            Box::leak(Box::new(HeapRegistry::new())),
        )
    }

    static NEXT_TID: AtomicUsize = AtomicUsize::new(0x7000);

    fn thread_heap(a: &'static A, r: &'static R) -> HeapPtr {
        let tid = NEXT_TID.fetch_add(16, Ordering::Relaxed);
        heap_life::create(r, a, no_binding, tid)
    }

    fn tid(h: HeapPtr) -> usize {
        // SAFETY: the heap is valid; its id is fixed at creation.
        unsafe { (*h).thread_id }
    }

    fn validate(h: HeapPtr) {
        // SAFETY: the test drives `h` from this thread.
        unsafe { crate::validate::check_heap(&*h) }
    }

    fn segments(a: &A) -> usize {
        a.counters.segments.load(Ordering::Relaxed) as usize
    }

    /// Small, medium and huge blocks (fewer under Miri), filled with `tag`.
    fn fill_heap(h: HeapPtr, tag: u8) -> Vec<(*mut u8, usize)> {
        let sizes: &[usize] = if cfg!(miri) {
            &[24, 3000]
        } else {
            &[0, 24, 100, 3000, 20_000, 100_000]
        };
        let count = if cfg!(miri) { 6 } else { 300 };
        // Two huge blocks: each takes a segment of its own.
        let sizes = sizes
            .iter()
            .cycle()
            .take(count)
            .chain(&[200_000, 5_000_000]);
        let mut out = Vec::new();
        for (i, &s) in sizes.enumerate() {
            // SAFETY: see the module comment.
            let p = unsafe { malloc(h, s) };
            assert!(!p.is_null());
            let n = s.min(64);
            // SAFETY: the block has at least `s >= n` bytes.
            unsafe { ptr::write_bytes(p, tag ^ i as u8, n) };
            out.push((p, n));
        }
        out
    }

    fn check(blocks: &[(*mut u8, usize)], tag: u8) {
        for (i, &(p, n)) in blocks.iter().enumerate() {
            // SAFETY: the blocks are live and were filled with `n` bytes.
            let s = unsafe { core::slice::from_raw_parts(p, n) };
            assert!(
                s.iter().all(|&b| b == tag ^ i as u8),
                "block {p:p} lost its contents"
            );
        }
    }

    #[test]
    fn destroy_frees_every_block_and_segment() {
        let (a, r) = setup(16);
        let t = thread_heap(a, r);
        let before = segments(a);
        let rounds = if cfg!(miri) { 3 } else { 200 };
        let mut in_use = 0;
        for round in 0..rounds {
            // SAFETY: `t` is this thread's heap.
            let h = unsafe { create(r, t) };
            assert!(!h.is_null());
            let blocks = fill_heap(h, round as u8);
            check(&blocks, round as u8);
            validate(h);
            assert!(segments(a) > before);
            // SAFETY: `h` is ours; its blocks are not used again.
            unsafe { destroy(r, h) };
            assert_eq!(
                segments(a),
                before,
                "round {round}: a segment outlived its heap"
            );
            let used = a.os.in_use.load(Ordering::Relaxed);
            if round == 1 {
                in_use = used;
            } else if round > 1 {
                assert_eq!(used, in_use, "round {round}: the region grows");
            }
        }
        // SAFETY: no heap is walked as ours.
        let s = unsafe { crate::visit::snapshot(a, r, None) };
        assert_eq!(s.live_bytes, 0, "destroyed blocks still counted live");
        assert_eq!(s.allocations, s.frees);
        validate(t);
    }

    #[test]
    fn delete_keeps_blocks_valid_until_freed() {
        let (a, r) = setup(16);
        let t = thread_heap(a, r);
        let before = segments(a);
        // SAFETY: `t` is this thread's heap.
        let h = unsafe { create(r, t) };
        let blocks = fill_heap(h, 7);
        // SAFETY: `h` is ours and not used again; its blocks stay valid.
        unsafe { delete(r, h) };
        check(&blocks, 7);
        // A new heap (maybe in the same slot) must not take the deleted heap's blocks.
        // SAFETY: as above.
        let h2 = unsafe { create(r, t) };
        let more = fill_heap(h2, 9);
        // SAFETY: as above.
        unsafe { destroy(r, h2) };
        check(&blocks, 7);
        let _ = more;
        // The blocks are freed later, by the thread heap's thread.
        for &(p, _) in &blocks {
            // SAFETY: live blocks of the deleted heap.
            unsafe { free(a, p, tid(t)) };
        }
        // The thread heap reclaims what was abandoned and releases it.
        // SAFETY: `t` is ours.
        unsafe { crate::collect::collect(Some(t), a) };
        assert_eq!(segments(a), before);
        validate(t);
    }

    #[test]
    #[cfg_attr(target_family = "wasm", ignore = "wasm32 has no threads")]
    fn blocks_freed_from_another_thread() {
        let (a, r) = setup(16);
        let t = thread_heap(a, r);
        // SAFETY: `t` is this thread's heap.
        let h = unsafe { create(r, t) };
        let n = if cfg!(miri) { 40 } else { 5000 };
        // Enough 48-byte blocks to fill pages, so some become full and take the delayed path.
        let blocks: Vec<usize> = (0..n)
            // SAFETY: see the module comment.
            .map(|_| unsafe { malloc(h, 48) } as usize)
            .collect();
        let other = NEXT_TID.fetch_add(16, Ordering::Relaxed);
        std::thread::spawn(move || {
            for &p in &blocks {
                // SAFETY: live blocks, freed once, by a thread that owns no heap.
                unsafe { free(a, p as *mut u8, other) };
            }
        })
        .join()
        .unwrap();
        // The heap collects them and allocates them again.
        for _ in 0..n {
            // SAFETY: see the module comment.
            assert!(!unsafe { malloc(h, 48) }.is_null());
        }
        validate(h);
        // SAFETY: `h` is ours, walked exactly.
        let live = unsafe { crate::visit::snapshot(a, r, Some(h)) }.live_bytes;
        assert_eq!(live, 48 * n as u64);
        // SAFETY: `h` is ours.
        unsafe { destroy(r, h) };
        // SAFETY: as above.
        assert_eq!(unsafe { crate::visit::snapshot(a, r, None) }.live_bytes, 0);
    }

    #[test]
    fn calloc_realloc_aligned_in_a_heap() {
        let (a, r) = setup(16);
        let t = thread_heap(a, r);
        // SAFETY: `t` is this thread's heap; the blocks are used as the allocator allows.
        unsafe {
            let h = create(r, t);
            let z = malloc_zeroed(h, 1000);
            assert!(core::slice::from_raw_parts(z, 1000).iter().all(|&b| b == 0));
            let al = malloc_aligned(h, 100, 4096, false);
            assert_eq!(al as usize % 4096, 0);
            let mut p = malloc(h, 10);
            p.write(42);
            for size in [100, 5000, 300_000, 50] {
                p = realloc(h, p, size);
                assert_eq!(*p, 42);
            }
            validate(h);
            destroy(r, h);
            assert_eq!(segments(a), 0);
        }
    }

    #[test]
    fn thread_exit_deletes_first_class_heaps() {
        let (a, r) = setup(16);
        let t = thread_heap(a, r);
        // SAFETY: `t` is this thread's heap.
        let h = unsafe { create(r, t) };
        let blocks = fill_heap(h, 3);
        // SAFETY: the thread heap goes, and its first-class heap with it.
        unsafe { heap_life::destroy(r, t) };
        check(&blocks, 3);
        let t2 = thread_heap(a, r);
        for &(p, _) in &blocks {
            // SAFETY: live blocks of the deleted heap, freed by another thread's heap.
            unsafe { free(a, p, tid(t2)) };
        }
        // SAFETY: `t2` is ours.
        unsafe { crate::collect::collect(Some(t2), a) };
        assert_eq!(segments(a), 0);
    }

    #[test]
    fn first_class_heaps_do_not_reclaim_abandoned_segments() {
        let (a, r) = setup(16);
        let t = thread_heap(a, r);
        // SAFETY: `t` is this thread's heap; its block is kept after it exits.
        let kept = unsafe {
            let p = malloc(t, 64);
            p.write(5);
            heap_life::destroy(r, t);
            p
        };
        assert!(a.has_abandoned());
        let t2 = thread_heap(a, r);
        // SAFETY: `t2` is ours.
        unsafe {
            let h = create(r, t2);
            assert!(!malloc(h, 64).is_null());
            destroy(r, h);
            assert!(
                a.has_abandoned(),
                "a first-class heap took an abandoned segment"
            );
            assert_eq!(*kept, 5);
            free(a, kept, tid(t2));
        }
    }
}
