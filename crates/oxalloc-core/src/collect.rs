//! Giving memory back on demand (`malloc_trim`): the calling thread's heap collects what other
//! threads freed into its pages and releases every page that is free (the last page of a size
//! class too), reclaims every abandoned segment (so blocks freed after their thread exited
//! release their pages), purges the free page slots of its segments, and the arena unmaps its
//! cached spans.
//!
//! Other threads' heaps are not touched: only their owners may change them.

use crate::arena::Arena;
use crate::free::drain_delayed;
use crate::heap::Heap;
use crate::os::{Os, OS_PAGE};
use crate::page::FLAG_IN_FULL;
use crate::page_life::{collect as collect_page, reclaim, release_page, unfull};
use crate::page_queue::{PageQueue, FULL};
use crate::segment::{InOwnerList, Segment};
use crate::util::align::align_up;
use crate::util::list::List;
use crate::util::sync::Ordering;
use core::ptr::NonNull;

/// Gives back all the memory the calling thread can: see the module comment. Returns the bytes
/// released to the system (purged or unmapped).
///
/// # Safety
/// `heap`, if given, is the calling thread's heap.
pub unsafe fn collect<S: Os>(heap: Option<&mut Heap<S>>, arena: &Arena<S>) -> usize {
    let mut released = 0;
    if let Some(heap) = heap.filter(|h| !h.is_sentinel()) {
        // SAFETY: the caller owns the heap, its pages and its segments.
        unsafe {
            drain_delayed(heap);
            for q in 0..=FULL {
                let mut page = heap.pages.queues[q].first();
                while !page.is_null() {
                    let next = PageQueue::next(page);
                    collect_page(heap, page);
                    if (*page).all_free() {
                        heap.pages.remove(page);
                        release_page(heap, page);
                    } else if (*page).flags & FLAG_IN_FULL != 0 && !(*page).local_free.is_null() {
                        unfull(heap, page);
                    }
                    page = next;
                }
            }
            while let Some(seg) = arena.pop_abandoned() {
                reclaim(heap, seg);
            }
            for kind in 0..2 {
                let mut seg = heap.segments[kind].first();
                while !seg.is_null() {
                    released += purge_free_slots(arena, &mut *seg);
                    seg = List::<Segment, InOwnerList>::next(seg);
                }
            }
        }
    }
    released + arena.trim()
}

/// Purges the page slots of an owned segment that are free and have held blocks since the
/// segment's memory was last zeroed. Returns the bytes purged.
///
/// # Safety
/// The calling thread owns the segment.
unsafe fn purge_free_slots<S: Os>(arena: &Arena<S>, seg: &mut Segment) -> usize {
    let mut purged = 0;
    for i in 0..seg.page_count {
        let bit = 1u64 << i;
        if seg.pages[i].assigned || seg.used_since_zeroed & bit == 0 {
            continue;
        }
        let (start, end) = seg.page_area(i);
        let start = align_up(start as usize, OS_PAGE);
        if end <= start {
            continue;
        }
        // SAFETY: the slot is free and ours, inside the segment's live mapping.
        let zeroed = unsafe {
            arena
                .os
                .purge(NonNull::new_unchecked(start as *mut u8), end - start)
        };
        if zeroed {
            // The slot reads as zero again; the segment's `zeroed` says whether the rest did.
            seg.used_since_zeroed &= !bit;
        }
        arena
            .counters
            .purged_bytes
            .fetch_add((end - start) as u64, Ordering::Relaxed);
        purged += end - start;
    }
    purged
}
