//! The life of a heap: created from the registry's pool when a thread first allocates (the front
//! end's `bind` hook calls [`create`] and stores the heap in thread-local storage), and torn down
//! at thread exit ([`destroy`]): what is free goes back to the segments, segments that still hold
//! live blocks are abandoned for other threads to reclaim, and the struct returns to the pool.
//! Heaps a program creates itself are `first_class`, built on the same two steps.

use crate::arena::Arena;
use crate::first_class;
use crate::free::{drain_delayed, flush_quarantine};
use crate::heap::{BindFn, Heap, HeapRegistry};
use crate::os::Os;
use crate::page_life::{collect, owned_segment_remove, reclaim, release_page};
use crate::page_queue::{PageQueue, FULL};
use crate::segment::{owner, InOwnerList, Segment};
use crate::thread_free::delayed;
use crate::util::list::List;
use crate::util::sync::Ordering;

/// A new heap for the thread `thread_id`, or null when out of memory.
pub fn create<S: Os>(
    registry: &'static HeapRegistry<S>,
    arena: &'static Arena<S>,
    bind: BindFn<S>,
    thread_id: usize,
) -> *mut Heap<S> {
    debug_assert!(thread_id != owner::NONE && thread_id != owner::HUGE_LIVE);
    registry.create(arena, bind, thread_id)
}

/// Tears a heap down and returns its struct to the pool. The thread's first-class heaps go
/// first (deleted: their blocks stay valid; see `first_class`).
///
/// # Safety
/// `heap` came from [`create`] with this registry, belongs to the calling thread, and is not
/// used again, nor are its first-class heaps.
pub unsafe fn destroy<S: Os>(registry: &HeapRegistry<S>, heap: *mut Heap<S>) {
    // SAFETY: per the contract, the heap is ours to tear down and then to retire.
    unsafe {
        debug_assert!(!(*heap).is_first_class());
        first_class::delete_all(registry, heap);
        abandon(heap);
        registry.retire(heap);
    }
}

/// Frees what is free, and hands segments that still hold live blocks to the arena's abandoned
/// list. The heap's counters go to the global ones.
///
/// # Safety
/// Called once, by the owning thread, after which the heap is not used.
pub(crate) unsafe fn abandon<S: Os>(heap: *mut Heap<S>) {
    // SAFETY: we own every page in our queues.
    unsafe {
        // 0. Blocks the profile's sampler set aside go back to their pages.
        return_pending(heap);
        // 1. No remote thread may touch this heap once we are gone.
        for q in 0..=FULL {
            let mut page = (*heap).pages.queues[q].first();
            while !page.is_null() {
                (*page).thread_free.set_state(delayed::NEVER);
                page = PageQueue::next(page);
            }
        }
        drain_delayed(heap);
        flush_quarantine(heap);
        // 2. Collect every page; release the empty ones, abandon the rest. Segments are
        //    published only at the end: a reclaiming thread must not see pages that are
        //    still linked in our queues.
        let mut chain: List<Segment, InOwnerList> = List::new();
        for q in 0..=FULL {
            loop {
                let page = (*heap).pages.queues[q].first();
                if page.is_null() {
                    break;
                }
                (*heap).pages.remove(page);
                collect(heap, page);
                (*page).thread_free.set_state(delayed::NEVER);
                if (*page).all_free() {
                    release_page(heap, page);
                    continue;
                }
                (*page).heap.store(0, Ordering::Release);
                let seg = Segment::of(page.cast());
                if (*seg).thread_id.load(Ordering::Relaxed) != owner::NONE {
                    owned_segment_remove(heap, seg);
                    (*seg).thread_id.store(owner::NONE, Ordering::Release);
                    chain.push_front(seg);
                }
            }
        }
        loop {
            let seg = chain.pop_front();
            if seg.is_null() {
                break;
            }
            (*heap).arena.push_abandoned(seg);
        }
        debug_assert!((*heap).segments.iter().all(|s| s.is_empty()));
        (*heap).counters.flush(&(*heap).arena.counters);
    }
}

/// Gives the blocks the profile's sampler set aside back to their pages (as if allocated and
/// freed, so the allocation they were counted as is taken back).
///
/// # Safety
/// Called by the owning thread of `heap`.
pub(crate) unsafe fn return_pending<S: Os>(heap: *mut Heap<S>) {
    // SAFETY: pending blocks are used blocks of our pages.
    unsafe {
        loop {
            let b = (*heap).sampler.take_any_pending();
            if b.is_null() {
                break;
            }
            let page = Segment::page_of(Segment::of(b), b);
            (*page).clear_live(b as usize);
            (*page).push_local(b.cast());
            (*heap)
                .counters
                .add_allocations((*page).bin.get() as usize, 1u64.wrapping_neg());
        }
    }
}

/// The purge thread's pass over abandoned segments: takes up to `max` of them that other
/// threads have freed blocks into since they were abandoned, reclaims them into `heap` (which
/// collects those frees and releases the pages that became empty, and the segment when nothing
/// is left in it), then abandons what is left again at once, so the segments stay available to
/// the next thread that needs one. Returns how many were taken (each counts as reclaimed and
/// abandoned once more in the statistics).
///
/// # Safety
/// `heap` came from [`create`], belongs to the calling thread, holds no page and is used for
/// nothing else (it is left empty again, and may be passed here again).
pub unsafe fn recycle_abandoned<S: Os>(heap: *mut Heap<S>, max: usize) -> usize {
    let mut n = 0;
    // SAFETY: per the contract, the heap is ours; the abandoned list hands each segment to us.
    unsafe {
        debug_assert!((*heap).pages.queues.iter().all(|q| q.first().is_null()));
        while n < max {
            let Some(seg) = (*heap).arena.pop_abandoned_with_frees() else {
                break;
            };
            reclaim(heap, seg);
            n += 1;
        }
        if n != 0 {
            abandon(heap);
        }
    }
    n
}
