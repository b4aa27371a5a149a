//! The life of a page in its heap — the malloc slow path: find a page of a size class with a
//! free block (collect its frees, carve more blocks, move full pages aside), take a fresh page
//! from an owned, reclaimed or new segment, give empty pages back to their segment, and move
//! pages that got room again out of the full queue. Also where a heap takes over an abandoned
//! segment (reclaim).
//!
//! Every function here is called by the heap's owning thread only.

use crate::heap::{Heap, LIVE_SAMPLE_BYTES};
use crate::os::Os;
use crate::page::{Page, FLAG_IN_FULL, FLAG_SECURE, FLAG_UNASSIGNED, FLAG_ZERO_FREED};
use crate::page_queue::PageQueue;
use crate::secure;
use crate::segment::{InOwnerList, Segment, SegmentKind};
use crate::size_class::{bin_is_small, bin_size};
use crate::thread_free::delayed;
use crate::util::list::List;
use crate::util::sync::Ordering;
use core::ptr;

/// A heap runs the arena's purge clock once every this many page refills.
const REFILLS_PER_TICK: u32 = 32;
/// Most abandoned segments with pending frees a heap reclaims per purge epoch.
const RECLAIMS_PER_EPOCH: usize = 16;

/// Collects a page's remote frees, ending the process if the list shows a double free. A page
/// flagged as holding sampled blocks loses the flag here once none is left: its sampled blocks
/// may all have been freed by other threads, which cannot clear it, and a stale hint would send
/// every later free of a reused address to the profile's table.
///
/// # Safety
/// The calling thread owns `page`.
pub(crate) unsafe fn collect<S: Os>(heap: *mut Heap<S>, page: *mut Page) {
    // SAFETY: the caller guarantees ownership of the page, and `heap` is valid.
    unsafe {
        match (*page).collect() {
            Err(block) => (*heap).arena.os.fatal(
                "free(): double free detected (block freed twice by other threads)",
                block,
            ),
            Ok(0) => {}
            Ok(_) => (*heap).arena.profile.unflag_if_none(&*page),
        }
    }
}

/// Makes a page's free list non-empty if it can: collects frees, else carves new blocks.
/// Counts the blocks made available as allocations and accounts the page's live blocks (see
/// `stats`).
///
/// # Safety
/// `page` belongs to `heap`, owned by the calling thread.
#[inline(always)]
pub(crate) unsafe fn refill<S: Os>(heap: *mut Heap<S>, page: *mut Page) {
    // SAFETY: the caller guarantees ownership. A shared reference: other threads may be
    // freeing into the page meanwhile (its fields are cells and atomics, see `page`).
    let page = unsafe { &*page };
    if !page.free.get().is_null() {
        return;
    }
    // SAFETY: we own the page and its `free` list is empty.
    let mut added = unsafe {
        collect(heap, ptr::from_ref(page).cast_mut());
        match page.take_local_free() {
            0 if page.capacity.get() < page.reserved.get() => page.extend(),
            n => n,
        }
    };
    // SAFETY: the heap is ours; `free` holds the `added` blocks just listed.
    unsafe {
        let rate = (*heap).arena.profile.rate();
        if rate != 0 && added != 0 {
            added = (*heap).sampler.charge(rate, page, added);
        }
    }
    // SAFETY: the caller's heap is valid and ours; no other reference to it is live.
    unsafe {
        let c = &(*heap).counters;
        c.add_allocations(page.bin.get() as usize, added as u64);
        c.add_live(
            page.used.get() as i64 - page.used_accounted.get() as i64,
            page.block_size.get(),
        );
        page.used_accounted.set(page.used.get());
        page.publish();
        if c.live_delta.get().unsigned_abs() >= LIVE_SAMPLE_BYTES {
            c.flush_live(&(*heap).arena.counters);
        }
        (*heap).refills = (*heap).refills.wrapping_add(1);
        if (*heap).refills % REFILLS_PER_TICK == 0 {
            purge_tick(heap);
        }
    }
    #[cfg(feature = "debug-full")]
    // SAFETY: the caller owns the page.
    unsafe {
        crate::validate::check_page(
            page,
            (*heap)
                .quarantine
                .count_in(page.start.get() as usize, page.end()),
        )
    };
}

/// The purge clock of a heap and of the arena under it, run every [`REFILLS_PER_TICK`] page
/// refills: the arena purges cached spans past the delay, and once per purge epoch (the purge
/// delay) the heap purges the free page slots of its segments that stayed free for a whole
/// epoch. A slot freed and reused within the delay is never purged, so a workload that frees
/// and reallocates pays nothing.
///
/// # Safety
/// Called by the owning thread of the bound heap `heap`.
#[cold]
#[inline(never)]
pub(crate) unsafe fn purge_tick<S: Os>(heap: *mut Heap<S>) {
    // SAFETY: the caller owns the heap and so its segments.
    unsafe {
        let arena = (*heap).arena;
        arena.tick();
        if !(*heap).dirty_slots && !arena.has_abandoned() {
            return;
        }
        let now = arena.os.now_ms();
        if now < (*heap).next_purge_ms {
            return;
        }
        (*heap).next_purge_ms = now + crate::options::get(crate::options::Opt::PurgeDelay) as u64;
        // Segments of exited threads that got frees since: reclaimed, which releases their
        // empty pages (and the segment when nothing is left in it). Not by a first-class heap,
        // whose destroy frees every block of its pages (see `first_class`).
        let reclaims = if (*heap).is_first_class() {
            0
        } else {
            RECLAIMS_PER_EPOCH
        };
        for _ in 0..reclaims {
            let Some(seg) = arena.pop_abandoned_with_frees() else {
                break;
            };
            reclaim(heap, seg);
        }
        let mut dirty = false;
        for k in 0..2 {
            let mut seg = (*heap).segments[k].first();
            while !seg.is_null() {
                let due = (*seg).dirty_old;
                if due != 0 {
                    arena.purge_slots(seg, due);
                }
                (*seg).dirty_old = (*seg).dirty_new;
                (*seg).dirty_new = 0;
                dirty |= (*seg).dirty_old != 0;
                seg = List::<Segment, InOwnerList>::next(seg);
            }
        }
        (*heap).dirty_slots = dirty;
    }
}

/// Finds a page of `bin` with a free block, taking a fresh one if none has room. Returns null
/// when the system is out of memory.
///
/// # Safety
/// Called by the owning thread on a bound heap.
pub(crate) unsafe fn find_page<S: Os>(heap: *mut Heap<S>, bin: usize) -> *mut Page {
    // SAFETY: the caller's heap is valid and bound.
    let mut page = unsafe {
        debug_assert!(!(*heap).is_sentinel());
        (*heap).pages.queues[bin].first()
    };
    while !page.is_null() {
        // SAFETY: the heap is ours, and so are the pages in its queues.
        unsafe {
            let next = PageQueue::next(page);
            refill(heap, page);
            let announced = (*page).free.get().is_null();
            if announced {
                // Announce that remote frees must tell us, then look once more: a remote
                // free that landed before the announcement would otherwise go unseen.
                (*page).thread_free.set_state(delayed::USE_DELAYED);
                refill(heap, page);
            }
            if !(*page).free.get().is_null() {
                if announced {
                    (*page).thread_free.set_state(delayed::NORMAL);
                }
                if page != (*heap).pages.queues[bin].first() {
                    // Pages before it went to the full queue (or it was further back): it
                    // becomes the bin's first page, which the direct table points at.
                    (*heap).pages.remove(page);
                    (*heap).pages.push_front(page);
                }
                debug_full_check(heap);
                return page;
            }
            (*heap).pages.move_to_full(page);
            page = next;
        }
    }
    // SAFETY: called by the owner.
    let page = unsafe { fresh_page(heap, bin) };
    debug_full_check(heap);
    page
}

/// Takes a page slot from an owned, reclaimed or new segment and starts it for `bin`.
unsafe fn fresh_page<S: Os>(heap: *mut Heap<S>, bin: usize) -> *mut Page {
    let kind = if bin_is_small(bin) {
        SegmentKind::Small
    } else {
        SegmentKind::Medium
    };
    // SAFETY: called by the owner.
    let seg = unsafe { segment_with_free_slot(heap, kind) };
    if seg.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: `seg` is owned by this heap and has a free slot.
    unsafe {
        let index = Segment::find_free_page(seg).expect("segment in free list has a free slot");
        let (start, end) = Segment::page_area(seg, index);
        let page = Segment::page(seg, index);
        let key = (*heap).key ^ (page as usize).rotate_left(17);
        let zeroed = (*heap).arena.take_slot(seg, index);
        (*page).init(bin, bin_size(bin), start, end, key, zeroed);
        match (*heap).secure {
            secure::level::OFF => {}
            secure::level::ZERO => (*page).add_flags(FLAG_SECURE | FLAG_ZERO_FREED),
            _ => (*page).add_flags(FLAG_SECURE),
        }
        (*page).heap.store(heap as usize, Ordering::Release);
        (*seg).used_pages += 1;
        if (*seg).used_pages == (*seg).page_count {
            owned_segment_remove(heap, seg);
        }
        (*heap).pages.push_front(page);
        refill(heap, page);
        page
    }
}

/// An owned segment of `kind` with a free page slot: from our list, else an abandoned one,
/// else a new one. Null when out of memory.
unsafe fn segment_with_free_slot<S: Os>(heap: *mut Heap<S>, kind: SegmentKind) -> *mut Segment {
    let k = kind as usize;
    // SAFETY: the caller's heap is valid and ours; the abandoned list hands a segment to us
    // alone, and a new segment is ours.
    unsafe {
        if !(*heap).segments[k].is_empty() {
            return (*heap).segments[k].first();
        }
        // A first-class heap takes no abandoned segment: their live blocks are not its own.
        while let Some(seg) = (!(*heap).is_first_class())
            .then(|| (*heap).arena.pop_abandoned())
            .flatten()
        {
            reclaim(heap, seg);
            if !(*heap).segments[k].is_empty() {
                return (*heap).segments[k].first();
            }
        }
        let seg = (*heap).arena.alloc_segment(kind);
        if seg.is_null() {
            return seg;
        }
        (*seg).thread_id.store((*heap).thread_id, Ordering::Release);
        owned_segment_add(heap, seg);
        seg
    }
}

/// Adds an owned segment to the heap's list of segments with free slots.
///
/// # Safety
/// `seg` is owned by `heap` and not in the list.
pub(crate) unsafe fn owned_segment_add<S: Os>(heap: *mut Heap<S>, seg: *mut Segment) {
    // SAFETY: per the contract.
    unsafe {
        debug_assert!(!(*seg).in_heap_list);
        (*heap).segments[(*seg).kind as usize].push_front(seg);
        (*seg).in_heap_list = true;
    }
}

/// Removes an owned segment from the heap's list of segments with free slots, if it is there.
///
/// # Safety
/// `seg` is owned by `heap`.
pub(crate) unsafe fn owned_segment_remove<S: Os>(heap: *mut Heap<S>, seg: *mut Segment) {
    // SAFETY: per the contract; the flag says whether it is in the list.
    unsafe {
        if (*seg).in_heap_list {
            (*heap).segments[(*seg).kind as usize].remove(seg);
            (*seg).in_heap_list = false;
        }
    }
}

/// Gives a page slot back to its segment, and the segment back to the arena when it has no
/// page left. The page must be out of every queue.
///
/// # Safety
/// `page` belongs to `heap`, owned by the calling thread.
pub(crate) unsafe fn release_page<S: Os>(heap: *mut Heap<S>, page: *mut Page) {
    // SAFETY: the page is ours and unlinked; its segment is ours.
    unsafe {
        let p = &*page;
        // Blocks still on `free` were counted as allocations in advance: take them back.
        (*heap)
            .counters
            .add_allocations(p.bin.get() as usize, (p.free_len() as u64).wrapping_neg());
        (*heap)
            .counters
            .add_live(-(p.used_accounted.get() as i64), p.block_size.get());
        p.used_accounted.set(0);
        p.thread_free.set_state(delayed::NEVER);
        p.heap.store(0, Ordering::Release);
        p.assigned.set(false);
        p.set_flags(FLAG_UNASSIGNED);
        p.publish();
        let seg = Segment::of(page.cast());
        (*seg).used_pages -= 1;
        if (*seg).used_pages == 0 {
            owned_segment_remove(heap, seg);
            (*heap).arena.free_segment(seg);
            return;
        }
        (*heap)
            .arena
            .slot_freed(seg, Segment::slot_index(seg, page));
        (*heap).dirty_slots = true;
        if !(*seg).in_heap_list && (*seg).thread_id.load(Ordering::Relaxed) == (*heap).thread_id {
            owned_segment_add(heap, seg);
        }
    }
}

/// Called when a local free leaves `page` with no used block. Keeps the page if it is the only
/// one of its class (so a malloc/free loop does not map and unmap), else releases it.
///
/// # Safety
/// `page` belongs to `heap`, owned by the calling thread.
pub(crate) unsafe fn retire<S: Os>(heap: *mut Heap<S>, page: *mut Page) {
    // SAFETY: the page is ours.
    unsafe {
        let bin = (*page).bin.get() as usize;
        let in_full = (*page).flags() & FLAG_IN_FULL != 0;
        let q = &(*heap).pages.queues[bin];
        if !in_full && q.first() == page && q.last() == page {
            return;
        }
        (*heap).pages.remove(page);
        release_page(heap, page);
    }
    debug_full_check(heap);
}

/// Moves a page that got a free block out of the full queue, back into its class.
///
/// # Safety
/// `page` belongs to `heap` and is in its full queue.
pub(crate) unsafe fn unfull<S: Os>(heap: *mut Heap<S>, page: *mut Page) {
    // SAFETY: the page is ours and in the full queue.
    unsafe {
        (*heap).pages.move_from_full(page);
        (*page).thread_free.set_state(delayed::NORMAL);
    }
}

/// Adopts an abandoned segment: its pages join our queues, empty ones are released.
///
/// # Safety
/// The arena's abandoned list handed `seg` to the calling thread, which owns `heap`.
pub(crate) unsafe fn reclaim<S: Os>(heap: *mut Heap<S>, seg: *mut Segment) {
    // SAFETY: the segment was handed to us by the abandoned list, so nobody else owns it.
    unsafe {
        (*seg).thread_id.store((*heap).thread_id, Ordering::Release);
        (*seg).in_heap_list = false;
        let me = heap as usize;
        // Keep the segment alive while its pages are released one by one.
        let pages = (*seg).page_count;
        let mut used_pages = (*seg).used_pages;
        if used_pages < pages {
            owned_segment_add(heap, seg);
        }
        for i in 0..pages {
            let page = Segment::page(seg, i);
            if !(*page).assigned.get() {
                continue;
            }
            // The page's blocks in use were no heap's while abandoned: from now on they are
            // ours. Those its last owner accounted are in the global estimate already, so only
            // what changed since (frees collected here) moves it.
            (*heap)
                .counters
                .adopt_live((*page).used_accounted.get(), (*page).block_size.get());
            (*page).heap.store(me, Ordering::Release);
            (*page).thread_free.set_state(delayed::NORMAL);
            collect(heap, page);
            (*page).remove_flags(FLAG_IN_FULL);
            if (*page).all_free() {
                used_pages -= 1;
                release_page(heap, page);
                if used_pages == 0 {
                    break; // the segment itself was released
                }
            } else {
                (*heap).counters.add_live(
                    (*page).used.get() as i64 - (*page).used_accounted.get() as i64,
                    (*page).block_size.get(),
                );
                (*page).used_accounted.set((*page).used.get());
                (*heap).pages.push_back(page);
            }
        }
        // Once its last page went, the segment is the span cache's: another thread may have
        // reused or unmapped it already, so it is not read again.
        if used_pages != 0 && (*seg).dirty_new | (*seg).dirty_old != 0 {
            (*heap).dirty_slots = true;
        }
        (*heap)
            .arena
            .counters
            .reclaimed
            .fetch_add(1, Ordering::Relaxed);
    }
    debug_full_check(heap);
}

/// Validates the whole heap after a slow-path step (the `debug-full` feature); nothing otherwise.
/// Only ever called by the heap's owner, from this module's functions.
#[inline(always)]
fn debug_full_check<S: Os>(_heap: *mut Heap<S>) {
    #[cfg(feature = "debug-full")]
    // SAFETY: every caller in this module runs on the heap's owning thread, and holds no
    // reference into the heap across the call.
    unsafe {
        crate::validate::check_heap(&*_heap)
    };
}
