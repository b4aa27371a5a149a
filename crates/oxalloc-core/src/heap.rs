//! Heaps: one per thread, owning pages of every size class and the segments they live in.
//!
//! A heap is touched without locks by its thread only. Other threads reach it in exactly one
//! way: a remote free of a block in a *full* page pushes that block on the heap's atomic
//! `delayed` list (see `free.rs`), so the owner learns that the page has room again.
//!
//! Invariants:
//! - `direct[i]` is the first page of `queues[bin_of(16 * i)]`, or the static empty page;
//! - every page in `queues[b]` (b < FULL) has bin `b`; pages in `queues[FULL]` have
//!   `FLAG_IN_FULL` set and delayed state `USE_DELAYED` (or `NORMAL` once notified);
//! - `segments[k]` lists exactly the owned segments of kind `k` with a free page slot.
//!
//! A thread's first heap is a static *sentinel* (`thread_id == 0`): its direct table points at
//! an empty page, so the first `malloc` falls into the slow path, which binds a real heap. The
//! fast path therefore never asks "is this thread initialised?".

use crate::global::Global;
use crate::os::Os;
use crate::page::{delayed, Block, Page, FLAG_IN_FULL};
use crate::page_queue::PageQueue;
use crate::segment::{Segment, SegmentKind};
use crate::size_class::{bin_is_small, bin_size, ALIGN, BIN_COUNT, DIRECT_COUNT, DIRECT_MAX};
use crate::stats::HeapCounters;
use crate::sync::{AtomicUsize, Ordering};
use core::ptr;

/// Index of the queue of full pages.
pub const FULL: usize = BIN_COUNT;

/// A heap adds its live-byte changes to the global estimate (and samples the peak) once they
/// reach this many bytes either way: the peak of live bytes is exact to within this per thread.
pub const LIVE_SAMPLE_BYTES: u64 = 256 * 1024;

/// A page that never has a free block: what the sentinel heap and empty queues point at.
pub struct EmptyPage(pub Page);
// SAFETY: the empty page is never written: its `free` is null, so every path that would modify a
// page goes to the slow path first, which never modifies the empty page.
unsafe impl Sync for EmptyPage {}

/// The one empty page of the process.
pub static EMPTY_PAGE: EmptyPage = EmptyPage(Page::EMPTY);

#[inline(always)]
fn empty_page() -> *mut Page {
    &EMPTY_PAGE.0 as *const Page as *mut Page
}

/// A thread's heap.
#[repr(C)]
pub struct Heap<S: Os + 'static> {
    /// First page of the queue serving each request size up to `DIRECT_MAX`, by `(size+15)/16`.
    pub direct: [*mut Page; DIRECT_COUNT],
    /// The owning thread's id; 0 for the sentinel.
    pub thread_id: usize,
    /// Page queues by bin; `queues[FULL]` holds the full pages.
    pub queues: [PageQueue; BIN_COUNT + 1],
    /// Blocks of full pages freed by other threads (plain links).
    pub delayed: AtomicUsize,
    /// The allocator this heap belongs to.
    pub global: &'static Global<S>,
    /// Random key mixed into page keys.
    pub key: usize,
    /// Owned segments with a free page slot, by kind (small, medium).
    pub segments: [*mut Segment; 2],
    /// Counters, flushed into the global ones on slow paths.
    pub counters: HeapCounters,
    /// Links in the global registry of live heaps (or the pool's free list).
    pub next_heap: *mut Heap<S>,
    /// Links in the global registry of live heaps.
    pub prev_heap: *mut Heap<S>,
}

impl<S: Os + 'static> Heap<S> {
    /// The sentinel heap of threads that have not allocated yet.
    pub const fn sentinel(global: &'static Global<S>) -> Self {
        Heap {
            direct: [&EMPTY_PAGE.0 as *const Page as *mut Page; DIRECT_COUNT],
            thread_id: 0,
            queues: [PageQueue::EMPTY; BIN_COUNT + 1],
            delayed: AtomicUsize::new(0),
            global,
            key: 0,
            segments: [ptr::null_mut(); 2],
            counters: HeapCounters::new(),
            next_heap: ptr::null_mut(),
            prev_heap: ptr::null_mut(),
        }
    }

    /// Whether this is a sentinel (unbound) heap.
    #[inline(always)]
    pub fn is_sentinel(&self) -> bool {
        self.thread_id == 0
    }

    /// Points the direct entries of `bin` at the first page of its queue.
    pub(crate) fn update_direct(&mut self, bin: usize) {
        let size = bin_size(bin);
        if bin == 0 || size > DIRECT_MAX {
            return;
        }
        let first = self.queues[bin].first;
        let page = if first.is_null() { empty_page() } else { first };
        let low = if bin == 1 {
            0
        } else {
            bin_size(bin - 1) / ALIGN + 1
        };
        for slot in &mut self.direct[low..=size / ALIGN] {
            *slot = page;
        }
    }

    /// Collects a page's remote frees, ending the process if the list shows a double free.
    ///
    /// # Safety
    /// `page` is owned by this heap.
    pub(crate) unsafe fn collect(&self, page: *mut Page) {
        // SAFETY: the caller guarantees ownership.
        if let Err(block) = unsafe { (*page).collect() } {
            self.global.os.fatal(
                "free(): double free detected (block freed twice by other threads)",
                block,
            );
        }
    }

    /// Makes a page's free list non-empty if it can: collects frees, else carves new blocks.
    /// Counts the blocks made available as allocations (see `stats`).
    ///
    /// # Safety
    /// `page` is owned by this heap.
    #[inline(always)]
    pub(crate) unsafe fn refill(&mut self, page: *mut Page) {
        // SAFETY: the caller guarantees ownership, so we have exclusive access to the page.
        let page = unsafe { &mut *page };
        if !page.free.is_null() {
            return;
        }
        // SAFETY: we own the page and its `free` list is empty.
        let added = unsafe {
            self.collect(page);
            match page.take_local_free() {
                0 if page.capacity < page.reserved => page.extend(),
                n => n,
            }
        };
        let c = &mut self.counters;
        c.add_allocations(page.bin as usize, added as u64);
        c.live_delta += (page.used as i64 - page.used_accounted as i64) * page.block_size as i64;
        page.used_accounted = page.used;
        if c.live_delta.unsigned_abs() >= LIVE_SAMPLE_BYTES {
            c.flush_live(&self.global.counters);
        }
    }

    /// Finds a page of `bin` with a free block, taking a fresh one if none has room.
    /// Returns null when the system is out of memory.
    ///
    /// # Safety
    /// Called by the owning thread on a bound heap.
    pub(crate) unsafe fn find_page(&mut self, bin: usize) -> *mut Page {
        debug_assert!(!self.is_sentinel());
        let mut page = self.queues[bin].first;
        let mut moved_to_full = false;
        while !page.is_null() {
            // SAFETY: pages in our queues are ours.

            unsafe {
                let next = (*page).next;
                self.refill(page);
                let announced = (*page).free.is_null();
                if announced {
                    // Announce that remote frees must tell us, then look once more: a remote
                    // free that landed before the announcement would otherwise go unseen.
                    (*page).set_delayed(delayed::USE_DELAYED);
                    self.refill(page);
                }
                if !(*page).free.is_null() {
                    if announced {
                        (*page).set_delayed(delayed::NORMAL);
                    }
                    if page != self.queues[bin].first {
                        self.queues[bin].remove(page);
                        self.queues[bin].push_front(page);
                        self.update_direct(bin);
                    } else if moved_to_full {
                        // The pages before it went to the full queue: the direct table still
                        // points at the first of them, and every malloc would take the slow path.
                        self.update_direct(bin);
                    }
                    return page;
                }
                moved_to_full = true;
                self.queues[bin].remove(page);
                (*page).flags |= FLAG_IN_FULL;
                self.queues[FULL].push_back(page);
                page = next;
            }
        }
        self.update_direct(bin);
        // SAFETY: called by the owner.
        unsafe { self.fresh_page(bin) }
    }

    /// Takes a page slot from an owned, reclaimed or new segment and starts it for `bin`.
    unsafe fn fresh_page(&mut self, bin: usize) -> *mut Page {
        let kind = if bin_is_small(bin) {
            SegmentKind::Small
        } else {
            SegmentKind::Medium
        };
        // SAFETY: called by the owner.
        let seg = unsafe { self.segment_with_free_slot(kind) };
        if seg.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: `seg` is owned by this heap and has a free slot.
        unsafe {
            let index = (*seg)
                .find_free_page()
                .expect("segment in free list has a free slot");
            let (start, end) = (*seg).page_area(index);
            let page = &mut (*seg).pages[index] as *mut Page;
            let key = self.key ^ (page as usize).rotate_left(17);
            let fresh = (*seg).take_fresh(index);
            (*page).init(bin, bin_size(bin), start, end, key, fresh);
            (*page)
                .heap
                .store(self as *mut Self as usize, Ordering::Release);
            (*seg).used_pages += 1;
            if (*seg).used_pages == (*seg).page_count {
                self.segment_list_remove(seg);
            }
            self.queues[bin].push_front(page);
            self.update_direct(bin);
            self.refill(page);
            page
        }
    }

    /// An owned segment of `kind` with a free page slot: from our list, else an abandoned one,
    /// else a new one. Null when out of memory.
    unsafe fn segment_with_free_slot(&mut self, kind: SegmentKind) -> *mut Segment {
        let k = kind as usize;
        if !self.segments[k].is_null() {
            return self.segments[k];
        }
        // SAFETY: called by the owner.
        while let Some(seg) = self.global.pop_abandoned() {
            // SAFETY: the abandoned list hands the segment to us alone.
            unsafe { self.reclaim(seg) };
            if !self.segments[k].is_null() {
                return self.segments[k];
            }
        }
        let seg = self.global.alloc_segment(kind);
        if seg.is_null() {
            return seg;
        }
        // SAFETY: the segment is new and ours.
        unsafe {
            (*seg).thread_id.store(self.thread_id, Ordering::Release);
            self.segment_list_push(seg);
        }
        seg
    }

    /// Adds an owned segment to the list of segments with free slots.
    unsafe fn segment_list_push(&mut self, seg: *mut Segment) {
        // SAFETY: `seg` is owned by this heap and not in the list.
        unsafe {
            debug_assert!(!(*seg).in_heap_list);
            let k = (*seg).kind as usize;
            let head = self.segments[k];
            (*seg).heap_prev = ptr::null_mut();
            (*seg).heap_next = head;
            if !head.is_null() {
                (*head).heap_prev = seg;
            }
            self.segments[k] = seg;
            (*seg).in_heap_list = true;
        }
    }

    /// Removes an owned segment from the list of segments with free slots, if it is there.
    unsafe fn segment_list_remove(&mut self, seg: *mut Segment) {
        // SAFETY: `seg` and its neighbours are owned segments of this heap.
        unsafe {
            if !(*seg).in_heap_list {
                return;
            }
            let (prev, next) = ((*seg).heap_prev, (*seg).heap_next);
            if prev.is_null() {
                self.segments[(*seg).kind as usize] = next;
            } else {
                (*prev).heap_next = next;
            }
            if !next.is_null() {
                (*next).heap_prev = prev;
            }
            (*seg).heap_next = ptr::null_mut();
            (*seg).heap_prev = ptr::null_mut();
            (*seg).in_heap_list = false;
        }
    }

    /// Gives a page slot back to its segment, and the segment back to the global layer when it
    /// has no page left. The page must be out of every queue.
    pub(crate) unsafe fn release_page(&mut self, page: *mut Page) {
        // SAFETY: the page is ours and unlinked; its segment is ours.
        unsafe {
            let p = &mut *page;
            debug_assert!(p.next.is_null() && p.prev.is_null());
            // Blocks still on `free` were counted as allocations in advance: take them back.
            self.counters
                .add_allocations(p.bin as usize, (p.free_len() as u64).wrapping_neg());
            self.counters.live_delta -= p.used_accounted as i64 * p.block_size as i64;
            p.set_delayed(delayed::NEVER);
            p.heap.store(0, Ordering::Release);
            p.in_use = false;
            p.flags = 0;
            let seg = Segment::of(page.cast());
            (*seg).used_pages -= 1;
            if (*seg).used_pages == 0 {
                self.segment_list_remove(seg);
                self.global.free_segment(seg);
            } else if !(*seg).in_heap_list
                && (*seg).thread_id.load(Ordering::Relaxed) == self.thread_id
            {
                self.segment_list_push(seg);
            }
        }
    }

    /// Called when a local free leaves `page` with no used block. Keeps the page if it is the
    /// only one of its class (so a malloc/free loop does not map and unmap), else releases it.
    pub(crate) unsafe fn page_retire(&mut self, page: *mut Page) {
        // SAFETY: the page is ours.
        unsafe {
            let bin = (*page).bin as usize;
            let in_full = (*page).flags & FLAG_IN_FULL != 0;
            if !in_full && self.queues[bin].first == page && (*page).next.is_null() {
                return;
            }
            let queue = if in_full { FULL } else { bin };
            self.queues[queue].remove(page);
            if queue == bin {
                self.update_direct(bin);
            }
            self.release_page(page);
        }
    }

    /// Moves a page that got a free block out of the full queue, back into its class.
    pub(crate) unsafe fn page_unfull(&mut self, page: *mut Page) {
        // SAFETY: the page is ours and in the full queue.
        unsafe {
            debug_assert!((*page).flags & FLAG_IN_FULL != 0);
            let bin = (*page).bin as usize;
            self.queues[FULL].remove(page);
            (*page).flags &= !FLAG_IN_FULL;
            (*page).set_delayed(delayed::NORMAL);
            self.queues[bin].push_back(page);
            if self.queues[bin].first == page {
                self.update_direct(bin);
            }
        }
    }

    /// Frees a block of one of our pages, on the owning thread, handling full pages and retiring
    /// empty ones. `block` is the block's start.
    pub(crate) unsafe fn free_owned(&mut self, page: *mut Page, block: *mut Block) {
        // SAFETY: the page is ours and `block` is one of its used blocks.
        unsafe {
            (*page).push_local(block);
            if (*page).flags & FLAG_IN_FULL != 0 {
                self.page_unfull(page);
            }
            if (*page).is_unused() {
                self.page_retire(page);
            }
        }
    }

    /// Frees the blocks other threads handed us through the delayed list.
    #[inline]
    pub(crate) unsafe fn drain_delayed(&mut self) {
        if self.delayed.load(Ordering::Relaxed) != 0 {
            // SAFETY: same contract.
            unsafe { self.drain_delayed_list() }
        }
    }

    #[cold]
    #[inline(never)]
    unsafe fn drain_delayed_list(&mut self) {
        let mut block = self.delayed.swap(0, Ordering::Acquire) as *mut Block;
        while !block.is_null() {
            // SAFETY: blocks on the delayed list are used blocks of our pages, pushed with plain
            // links by `free_remote`; after the swap the list is ours alone.
            unsafe {
                let next = *(block as *const usize) as *mut Block;
                let seg = Segment::of(block.cast());
                let page = (*seg).page_of(block.cast());
                self.free_owned(page, block);
                block = next;
            }
        }
    }

    /// Adopts an abandoned segment: its pages join our queues, empty ones are released.
    unsafe fn reclaim(&mut self, seg: *mut Segment) {
        // SAFETY: the segment was handed to us by the abandoned list, so nobody else owns it.
        unsafe {
            (*seg).thread_id.store(self.thread_id, Ordering::Release);
            (*seg).in_heap_list = false;
            let me = self as *mut Self as usize;
            // Keep the segment alive while its pages are released one by one.
            let pages = (*seg).page_count;
            let mut used_pages = (*seg).used_pages;
            if used_pages < pages {
                self.segment_list_push(seg);
            }
            for i in 0..pages {
                let page = &mut (*seg).pages[i] as *mut Page;
                if !(*page).in_use {
                    continue;
                }
                (*page).heap.store(me, Ordering::Release);
                (*page).set_delayed(delayed::NORMAL);
                self.collect(page);
                (*page).flags &= !FLAG_IN_FULL;
                if (*page).is_unused() {
                    used_pages -= 1;
                    self.release_page(page);
                    if used_pages == 0 {
                        break; // the segment itself was released
                    }
                } else {
                    let bin = (*page).bin as usize;
                    self.queues[bin].push_back(page);
                    self.update_direct(bin);
                }
            }
            self.global
                .counters
                .reclaimed
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Checks the heap's invariants (expensive: walks every queue), panicking with the first one
    /// broken. For tests and debugging.
    pub fn validate(&self) {
        for bin in 1..BIN_COUNT {
            let first = self.queues[bin].first;
            if bin_size(bin) <= DIRECT_MAX {
                let expect = if first.is_null() { empty_page() } else { first };
                let low = if bin == 1 {
                    0
                } else {
                    bin_size(bin - 1) / ALIGN + 1
                };
                for (i, &d) in self
                    .direct
                    .iter()
                    .enumerate()
                    .take(bin_size(bin) / ALIGN + 1)
                    .skip(low)
                {
                    assert!(
                        d == expect,
                        "direct[{i}] is {d:p}, but the first page of bin {bin} is {expect:p}"
                    );
                }
            }
            let mut page = first;
            let mut prev = ptr::null_mut();
            while !page.is_null() {
                // SAFETY: queue members are valid pages of this heap.
                let p = unsafe { &*page };
                assert_eq!(p.bin as usize, bin, "page {page:p} in the wrong queue");
                assert_eq!(
                    p.flags & FLAG_IN_FULL,
                    0,
                    "page {page:p} marked full in a bin queue"
                );
                assert!(
                    p.prev == prev && p.in_use && p.capacity <= p.reserved && p.used <= p.capacity
                );
                prev = page;
                page = p.next;
            }
            assert!(
                self.queues[bin].last == prev,
                "bin {bin}: last is not the tail"
            );
        }
        let mut page = self.queues[FULL].first;
        while !page.is_null() {
            // SAFETY: as above.
            let p = unsafe { &*page };
            assert!(
                p.flags & FLAG_IN_FULL != 0,
                "page {page:p} in the full queue is not marked full"
            );
            page = p.next;
        }
    }

    /// Tears the heap down at thread exit: frees what is free, and hands segments that still hold
    /// live blocks to the abandoned list for other threads to reclaim.
    ///
    /// # Safety
    /// Called once, by the owning thread, after which the heap is not used.
    pub unsafe fn abandon(&mut self) {
        // SAFETY: we own every page in our queues.
        unsafe {
            // 1. No remote thread may touch this heap once we are gone.
            for q in 0..=FULL {
                let mut page = self.queues[q].first;
                while !page.is_null() {
                    (*page).set_delayed(delayed::NEVER);
                    page = (*page).next;
                }
            }
            self.drain_delayed();
            // 2. Collect every page; release the empty ones, abandon the rest. Segments are
            //    published only at the end: a reclaiming thread must not see pages that are
            //    still linked in our queues.
            let mut chain: *mut Segment = ptr::null_mut();
            for q in 0..=FULL {
                while !self.queues[q].first.is_null() {
                    let page = self.queues[q].first;
                    self.queues[q].remove(page);
                    self.collect(page);
                    (*page).set_delayed(delayed::NEVER);
                    if (*page).is_unused() {
                        self.release_page(page);
                        continue;
                    }
                    (*page).heap.store(0, Ordering::Release);
                    let seg = Segment::of(page.cast());
                    if (*seg).thread_id.load(Ordering::Relaxed) != 0 {
                        self.segment_list_remove(seg);
                        (*seg).thread_id.store(0, Ordering::Release);
                        (*seg).abandoned_next = chain;
                        chain = seg;
                    }
                }
                if q < FULL {
                    self.update_direct(q);
                }
            }
            while !chain.is_null() {
                let next = (*chain).abandoned_next;
                self.global.push_abandoned(chain);
                chain = next;
            }
            debug_assert!(self.segments.iter().all(|s| s.is_null()));
            self.counters.flush(&self.global.counters);
        }
    }
}
