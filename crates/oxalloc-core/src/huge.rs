//! Huge blocks: requests above `MEDIUM_MAX` get a segment of their own, mapped for them and
//! unmapped when they are freed, from any thread. The segment header still sits at the start,
//! so `free` finds it by masking like any other block.
//!
//! Invariant: a huge segment's `thread_id` is [`HUGE_LIVE`] while its block is allocated; the
//! free that swaps it to 0 is the only one that unmaps (a second free is a detected double free).

use crate::global::Global;
use crate::os::{Os, OS_PAGE};
use crate::page::Page;
use crate::segment::{Segment, SegmentKind, HEADER_SIZE, MAX_ALIGN};
use crate::size_class::align_up;
use crate::stats::GlobalCounters;
use crate::sync::Ordering;
use core::ptr::{self, NonNull};

/// `thread_id` of a huge segment whose block is live (no thread owns huge blocks).
pub const HUGE_LIVE: usize = 1;

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
        let Some(m) = self.map_segment_memory(total) else {
            return ptr::null_mut();
        };
        let at = m.ptr.as_ptr();
        // SAFETY: `at` is a fresh, segment-aligned mapping of `total` bytes.
        let seg = unsafe { Segment::init(at, SegmentKind::Huge, total, m.zeroed) };
        // SAFETY: the segment is ours; its one page describes the block.
        unsafe {
            let page = &mut (*seg).pages[0];
            let start = at.add(offset);
            page.init(0, total - offset, start, at as usize + total, 0, m.zeroed);
            page.capacity = 1;
            page.used = 1;
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
        if zero && !m.zeroed {
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
            self.unmap_segment_memory(seg.cast(), size);
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
