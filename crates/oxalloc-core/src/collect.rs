//! Giving memory back on demand (`malloc_trim`): the calling thread's heap collects what other
//! threads freed into its pages and releases every page that is free (the last page of a size
//! class too), reclaims every abandoned segment (so blocks freed after their thread exited
//! release their pages), purges the free page slots of its segments, and the arena unmaps its
//! cached spans. Secure mode's quarantine is emptied first.
//!
//! Other threads' heaps are not touched: only their owners may change them.

use crate::arena::Arena;
use crate::free::{drain_delayed, flush_quarantine};
use crate::heap::Heap;
use crate::os::Os;
use crate::page::FLAG_IN_FULL;
use crate::page_life::{collect as collect_page, reclaim, release_page, unfull};
use crate::page_queue::{PageQueue, FULL};
use crate::segment::{InOwnerList, Segment};
use crate::util::list::List;

/// Gives back all the memory the calling thread can: see the module comment. Returns the bytes
/// released to the system (purged or unmapped).
///
/// # Safety
/// `heap`, if given, is the calling thread's heap.
pub unsafe fn collect<S: Os>(heap: Option<*mut Heap<S>>, arena: &Arena<S>) -> usize {
    let mut released = 0;
    // SAFETY: the caller's heap, if given, is valid.
    if let Some(heap) = heap.filter(|&h| unsafe { !(*h).is_sentinel() }) {
        // SAFETY: the caller owns the heap, its pages and its segments.
        unsafe {
            drain_delayed(heap);
            flush_quarantine(heap);
            for q in 0..=FULL {
                let mut page = (*heap).pages.queues[q].first();
                while !page.is_null() {
                    let next = PageQueue::next(page);
                    collect_page(heap, page);
                    if (*page).all_free() {
                        (*heap).pages.remove(page);
                        release_page(heap, page);
                    } else if (*page).flags() & FLAG_IN_FULL != 0
                        && !(*page).local_free.get().is_null()
                    {
                        unfull(heap, page);
                    }
                    page = next;
                }
            }
            while let Some(seg) = arena.pop_abandoned() {
                reclaim(heap, seg);
            }
            for kind in 0..2 {
                let mut seg = (*heap).segments[kind].first();
                while !seg.is_null() {
                    released += arena.purge_slots(seg, Segment::free_used_slots(seg));
                    seg = List::<Segment, InOwnerList>::next(seg);
                }
            }
        }
    }
    released + arena.trim()
}
