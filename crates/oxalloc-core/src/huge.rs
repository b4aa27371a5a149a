//! Huge blocks: requests above `MEDIUM_MAX` get a segment of their own, mapped for them (or
//! taken from the span cache) and cached again when they are freed, from any thread. The
//! segment header still sits at the start, so `free` finds it by masking like any other block.
//!
//! Invariant: a huge segment's `thread_id` is [`HUGE_LIVE`] while its block is allocated; the
//! free that swaps it to 0 is the only one that unmaps (a second free is a detected double free).

use crate::global::Global;
use crate::os::{Os, OS_PAGE};
use crate::page::Page;
use crate::segment::{Segment, SegmentKind, HEADER_SIZE, MAX_ALIGN, SEGMENT_SIZE};
use crate::size_class::align_up;
use crate::stats::GlobalCounters;
use crate::sync::Ordering;
use core::ptr::{self, NonNull};

/// `thread_id` of a huge segment whose block is live (no thread owns huge blocks).
pub const HUGE_LIVE: usize = 1;

/// Rounds a huge mapping up to an eighth of its power of two (at most 12.5% more address
/// space; pages past the block are never touched, so they cost no memory). Spans of a few
/// sizes are what lets a freed huge block be reused by the next request of a similar size.
pub fn huge_span_size(total: usize) -> usize {
    let floor_pow2 = 1usize << (usize::BITS - 1 - total.max(1).leading_zeros());
    let step = (floor_pow2 / 8).max(OS_PAGE);

    align_up(total, step)
}

impl<S: Os + 'static> Global<S> {
    /// Allocates a huge block of `size` bytes aligned to `align` (at most `MAX_ALIGN`); zeroed if
    /// `zero`, without touching fresh memory. Null when out of memory.
    #[cold]
    #[inline(never)]
    pub fn huge_alloc(&self, size: usize, align: usize, zero: bool) -> *mut u8 {
        if align > MAX_ALIGN {
            return ptr::null_mut();
        }
        let offset = align_up(HEADER_SIZE, align.max(OS_PAGE));
        let size = size.max(1);
        let Some(total) = size
            .checked_add(offset + OS_PAGE - 1)
            .map(|t| t & !(OS_PAGE - 1))
        else {
            return ptr::null_mut();
        };
        if total > isize::MAX as usize {
            return ptr::null_mut();
        }
        let total = huge_span_size(total);
        // The smallest cached span that fits is taken whole; its slack lets realloc grow in
        // place.
        let (at, total, zeroed) = match self.cache_take(total) {
            Some(span) => (span.ptr as *mut u8, span.size, span.zeroed),
            None => match self.map_segment_memory(total) {
                Some(m) => (m.ptr.as_ptr(), total, m.zeroed),
                None => return ptr::null_mut(),
            },
        };
        // SAFETY: `at` is a segment-aligned mapping of `total` bytes that we own.
        let seg = unsafe { Segment::init(at, SegmentKind::Huge, total, zeroed) };
        // SAFETY: the segment is ours; its one page describes the block.
        unsafe {
            let page = &mut (*seg).pages[0];
            let start = at.add(offset);
            page.init(0, total - offset, start, at as usize + total, 0, zeroed);
            page.capacity = 1;
            page.used = 1;
            page.requested = size;
            (*seg).used_pages = 1;
            (*seg).thread_id.store(HUGE_LIVE, Ordering::Release);
        }
        if !self.register_segment(seg) {
            // SAFETY: the mapping is ours and unused.
            unsafe { self.unmap_segment_memory(at, total) };
            return ptr::null_mut();
        }
        let c = &self.counters;
        c.huge_allocations.fetch_add(1, Ordering::Relaxed);
        GlobalCounters::gauge_add(
            &c.huge_live_bytes,
            &c.peak_live_bytes,
            (total - offset) as u64,
        );
        // SAFETY: as above.
        let block = unsafe { at.add(offset) };
        if zero && !zeroed {
            // SAFETY: the block is `total - offset >= size` writable bytes.
            unsafe { ptr::write_bytes(block, 0, size) };
        }
        block
    }

    /// Frees a huge block; `p` must be the pointer `huge_alloc` returned.
    ///
    /// # Safety
    /// `seg` is a registered huge segment containing `p`.
    #[cold]
    #[inline(never)]
    pub unsafe fn huge_free(&self, seg: *mut Segment, p: *mut u8) {
        // SAFETY: per the contract the segment header is valid.
        unsafe {
            let page: &Page = &(*seg).pages[0];
            if p != page.start {
                self.os
                    .fatal("free(): invalid pointer (inside a huge block)", p as usize);
            }
            if (*seg)
                .thread_id
                .compare_exchange(HUGE_LIVE, 0, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                self.os.fatal("free(): double free detected", p as usize);
            }
            let (size, usable) = ((*seg).size, page.block_size);
            self.unregister_segment(seg);
            let c = &self.counters;
            c.huge_frees.fetch_add(1, Ordering::Relaxed);
            GlobalCounters::gauge_sub(&c.huge_live_bytes, usable as u64);
            self.cache_put(seg.cast(), size);
        }
    }

    /// Grows a huge block by moving its pages to a new, larger mapping (no copy, no page
    /// faults). Returns the block's new address, or null if the source cannot move mappings.
    ///
    /// # Safety
    /// `seg` is the registered huge segment of a live block, and no other thread uses it.
    pub unsafe fn huge_move(&self, seg: *mut Segment, new_size: usize) -> *mut u8 {
        // SAFETY: per the contract the segment header is valid and the block is ours.
        unsafe {
            let offset = (*seg).pages[0].start as usize - seg as usize;
            let Some(total) = new_size
                .checked_add(offset + OS_PAGE - 1)
                .map(|t| t & !(OS_PAGE - 1))
            else {
                return ptr::null_mut();
            };
            let old = (*seg).size;
            // The header moves with the pages: take the segment out of the map and registry
            // while its address changes.
            self.unregister_segment(seg);
            let Some(moved) =
                self.os
                    .remap_move(NonNull::new_unchecked(seg.cast()), old, total, SEGMENT_SIZE)
            else {
                self.register_segment(seg);
                return ptr::null_mut();
            };
            let nseg = moved.as_ptr().cast::<Segment>();
            (*nseg).size = total;
            let page = &mut (*nseg).pages[0];
            page.start = moved.as_ptr().add(offset);
            page.block_size = total - offset;
            self.register_segment(nseg);
            let c = &self.counters;
            GlobalCounters::gauge_add(&c.mapped_bytes, &c.peak_mapped_bytes, (total - old) as u64);
            GlobalCounters::gauge_add(&c.huge_live_bytes, &c.peak_live_bytes, (total - old) as u64);
            page.start
        }
    }

    /// Resizes a huge block for realloc without copying: in place when it fits (giving the
    /// pages of a much smaller tail back to the OS but keeping the address space, so a buffer
    /// that grows again does so in place), else by growing the mapping where it is or moving its
    /// pages. Returns the block's address, or null when the caller must allocate and copy.
    ///
    /// # Safety
    /// `seg` is the registered huge segment of the live block, `usable` its usable size, and no
    /// other thread uses the block.
    pub unsafe fn huge_realloc(
        &self,
        seg: *mut Segment,
        usable: usize,
        new_size: usize,
    ) -> *mut u8 {
        // SAFETY: per the contract.
        unsafe {
            let page = &mut (*seg).pages[0];
            let p = page.start;
            if new_size <= usable {
                // `requested` tells a real shrink from a block that was given slack.
                if new_size < page.requested / 2 {
                    let keep = align_up(p as usize + new_size, OS_PAGE);
                    let end = seg as usize + (*seg).size;
                    if end - keep >= 1 << 20 {
                        self.os
                            .purge(NonNull::new_unchecked(keep as *mut u8), end - keep);
                        self.counters
                            .purged_bytes
                            .fetch_add((end - keep) as u64, Ordering::Relaxed);
                    }
                }
                page.requested = new_size;
                return p;
            }
            // Growing: half as much again as slack, so growth by small steps is O(log n) remaps.
            let target = new_size.max(usable.saturating_add(usable / 2));
            if self.huge_resize_in_place(seg, target) || self.huge_resize_in_place(seg, new_size) {
                (*seg).pages[0].requested = new_size;
                return p;
            }
            let moved = self.huge_move(seg, target);
            if !moved.is_null() {
                (*Segment::of(moved)).pages[0].requested = new_size;
            }
            moved
        }
    }

    /// Resizes a huge block in place if the source can grow or shrink its mapping where it is.
    ///
    /// # Safety
    /// `seg` is the registered huge segment of a live block.
    pub unsafe fn huge_resize_in_place(&self, seg: *mut Segment, new_size: usize) -> bool {
        // SAFETY: per the contract the segment header is valid and the block is ours.
        unsafe {
            let page = &mut (*seg).pages[0];
            let offset = page.start as usize - seg as usize;
            let Some(total) = new_size
                .checked_add(offset + OS_PAGE - 1)
                .map(|t| t & !(OS_PAGE - 1))
            else {
                return false;
            };
            let old = (*seg).size;
            if total == old {
                return true;
            }
            if !self
                .os
                .remap_in_place(NonNull::new_unchecked(seg.cast()), old, total)
            {
                return false;
            }
            (*seg).size = total;
            let c = &self.counters;
            if total > old {
                GlobalCounters::gauge_add(
                    &c.mapped_bytes,
                    &c.peak_mapped_bytes,
                    (total - old) as u64,
                );
                GlobalCounters::gauge_add(
                    &c.huge_live_bytes,
                    &c.peak_live_bytes,
                    (total - old) as u64,
                );
            } else {
                GlobalCounters::gauge_sub(&c.mapped_bytes, (old - total) as u64);
                GlobalCounters::gauge_sub(&c.huge_live_bytes, (old - total) as u64);
            }
            page.block_size = total - offset;
            page.reserved = 1;
            true
        }
    }
}
