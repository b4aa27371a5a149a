//! Huge blocks: requests above `MEDIUM_MAX` get a segment of their own, mapped for them (or
//! taken from the span cache) and given back to the span cache when they are freed, from any
//! thread. The segment header still sits at the start, so `free` finds it by masking like any
//! other block.
//!
//! Invariant: a huge segment's `thread_id` is [`owner::HUGE_LIVE`] while its block is
//! allocated, and the free that swaps it to [`owner::NONE`] is the only one that releases the
//! span. A second free of the same pointer is therefore caught while the span is unused (the
//! segment is no longer in the segment map: "invalid pointer"), or while two frees race; once
//! the span has been reused for a new huge block at the same address, a stale second free
//! frees the new block and is not detected.

use crate::arena::Arena;
use crate::os::{Os, RemapInto, OS_PAGE};
use crate::page::{live_word_offset, Page, FLAG_HUGE, FLAG_SECURE};
use crate::segment::{
    owner, Segment, SegmentKind, HEADER_SIZE, MAX_ALIGN, MAX_PAGES, SEGMENT_SIZE,
};
use crate::stats::GlobalCounters;
use crate::util::align::{align_up, checked_align_up};
use crate::util::sync::Ordering;
use core::ptr::{self, NonNull};

/// Rounds a huge mapping up to an eighth of its power of two (at most 12.5% more address
/// space; pages past the block are never touched, so they cost no memory). Spans of a few
/// sizes are what lets a freed huge block be reused by the next request of a similar size.
pub fn huge_span_size(total: usize) -> usize {
    let floor_pow2 = 1usize << (usize::BITS - 1 - total.max(1).leading_zeros());
    let step = (floor_pow2 / 8).max(OS_PAGE);

    align_up(total, step)
}

/// Allocates a huge block of `size` bytes aligned to `align` (at most `MAX_ALIGN`); zeroed if
/// `zero`, without touching fresh memory. Null when out of memory.
#[cold]
#[inline(never)]
pub fn huge_alloc<S: Os>(arena: &Arena<S>, size: usize, align: usize, zero: bool) -> *mut u8 {
    if align > MAX_ALIGN {
        return ptr::null_mut();
    }
    arena.wake_purge_thread();
    let offset = align_up(HEADER_SIZE, align.max(OS_PAGE));
    let size = size.max(1);
    // Secure mode keeps an inaccessible OS page right after the block.
    let guard = if arena.secure() != 0 { OS_PAGE } else { 0 };
    let Some(total) = size
        .checked_add(offset + guard)
        .and_then(|t| checked_align_up(t, OS_PAGE))
    else {
        return ptr::null_mut();
    };
    if total > isize::MAX as usize {
        return ptr::null_mut();
    }
    let total = huge_span_size(total);
    // The smallest cached span that fits is taken whole; its slack lets realloc grow in
    // place.
    let (at, total, zeroed) = match arena.cache_take(total) {
        Some(span) => (span.ptr as *mut u8, span.size, span.zeroed),
        None => match arena.map(total) {
            Some(m) => (m.ptr.as_ptr(), total, m.zeroed),
            None => return ptr::null_mut(),
        },
    };
    // SAFETY: `at` is a segment-aligned mapping of `total` bytes that we own.
    let seg = unsafe { Segment::init(at, SegmentKind::Huge, total, zeroed) };
    // SAFETY: the segment is ours; its one page describes the block.
    unsafe {
        let page = &*Segment::page(seg, 0);
        let start = at.add(offset);
        page.init(0, total - offset, start, at as usize + total, 0, zeroed);
        page.capacity.set(1);
        page.used.set(1);
        page.requested.set(size);
        page.add_flags(FLAG_HUGE);
        page.publish();
        if guard != 0 {
            guard_huge(arena, at, total, start as usize + size);
            page.add_flags(FLAG_SECURE);
        }
        (*seg).used_pages = 1;
        (*seg).thread_id.store(owner::HUGE_LIVE, Ordering::Release);
    }
    if !arena.register(seg) {
        // SAFETY: the mapping is ours and unused.
        unsafe { arena.unmap(at, total) };
        return ptr::null_mut();
    }
    let c = &arena.counters;
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
pub unsafe fn huge_free<S: Os>(arena: &Arena<S>, seg: *mut Segment, p: *mut u8) {
    // SAFETY: per the contract the segment header is valid.
    unsafe {
        let page: &Page = &(*seg).pages[0];
        if p != page.start.get() {
            arena
                .os
                .fatal("free(): invalid pointer (inside a huge block)", p as usize);
        }
        if !claim(seg) {
            arena.os.fatal("free(): double free detected", p as usize);
        }
        huge_release(arena, seg);
    }
}

/// Gives a huge segment whose block was just freed (its `thread_id` swapped from
/// [`owner::HUGE_LIVE`] to [`owner::NONE`] by the caller) back to the span cache.
///
/// # Safety
/// `seg` is a registered huge segment, and the caller made the swap that frees it.
pub(crate) unsafe fn huge_release<S: Os>(arena: &Arena<S>, seg: *mut Segment) {
    // SAFETY: per the contract the segment is ours to release.
    unsafe {
        debug_assert_eq!((*seg).thread_id.load(Ordering::Relaxed), owner::NONE);
        let (size, usable) = ((*seg).size, (*seg).pages[0].block_size.get());
        arena.unregister(seg);
        let c = &arena.counters;
        c.huge_frees.fetch_add(1, Ordering::Relaxed);
        GlobalCounters::gauge_sub(&c.huge_live_bytes, usable as u64);
        arena.cache_put(seg.cast(), size);
    }
}

/// Secure mode: makes the span accessible again (a cached span may hold an old guard page
/// anywhere), then makes the OS page after the block's last byte inaccessible.
#[cold]
fn guard_huge<S: Os>(arena: &Arena<S>, at: *mut u8, total: usize, block_end: usize) {
    // SAFETY: the span is ours and the guard page lies inside it, past the block.
    unsafe {
        arena.os.protect(NonNull::new_unchecked(at), total, true);
        let guard = align_up(block_end, OS_PAGE);
        debug_assert!(guard + OS_PAGE <= at as usize + total);
        arena
            .os
            .protect(NonNull::new_unchecked(guard as *mut u8), OS_PAGE, false);
    }
}

/// Takes a live huge block for release: the one swap of its owner value that a free (or a
/// first-class heap's destroy) makes; false if the block was released already.
///
/// # Safety
/// `seg` is a registered huge segment.
pub(crate) unsafe fn claim(seg: *mut Segment) -> bool {
    // SAFETY: per the contract the header is valid; `thread_id` is atomic.
    unsafe {
        (*seg)
            .thread_id
            .compare_exchange(
                owner::HUGE_LIVE,
                owner::NONE,
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
    }
}

/// Where [`huge_move`] moves a block to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum MoveTo {
    /// The smallest cached span that holds the block, taken whole (as `huge_alloc` takes
    /// one); its old pages are discarded.
    CachedSpan,
    /// A new mapping.
    NewMapping,
}

/// Grows a huge block by moving its pages (no copy, no page faults) to `to`. Returns the
/// block's new address, or null if there is no such span or the source cannot move mappings.
///
/// # Safety
/// `seg` is the registered huge segment of a live block, and no other thread uses it.
pub unsafe fn huge_move<S: Os>(
    arena: &Arena<S>,
    seg: *mut Segment,
    new_size: usize,
    to: MoveTo,
) -> *mut u8 {
    // SAFETY: per the contract the segment header is valid and the block is ours.
    unsafe {
        let offset = (*seg).pages[0].start.get() as usize - seg as usize;
        let Some(total) = new_size
            .checked_add(offset)
            .and_then(|t| checked_align_up(t, OS_PAGE))
        else {
            return ptr::null_mut();
        };
        let old = (*seg).size;
        // Only ever called to grow.
        debug_assert!(total > old);
        let old_at = NonNull::new_unchecked(seg.cast::<u8>());
        let span = match to {
            MoveTo::CachedSpan => match arena.cache_take(total) {
                Some(span) => Some(span),
                None => return ptr::null_mut(),
            },
            MoveTo::NewMapping => None,
        };
        // The header moves with the pages: take the segment out of the map and registry
        // while its address changes.
        arena.unregister(seg);
        let moved = match span {
            Some(span) => {
                let dest = NonNull::new_unchecked(span.ptr as *mut u8);
                // Onto the whole span, so the block stays one mapping that `mremap` can grow
                // later.
                match arena.os.remap_into(old_at, old, dest, span.size) {
                    RemapInto::Moved => {
                        GlobalCounters::gauge_sub(&arena.counters.mapped_bytes, old as u64);
                        Some((dest, span.size))
                    }
                    RemapInto::Unsupported => {
                        // Back as it was, with its age and state.
                        arena.cache_insert(span);
                        None
                    }
                    RemapInto::Failed => {
                        // The destination may be partly unmapped already: give all of it back.
                        arena.unmap(dest.as_ptr(), span.size);
                        None
                    }
                }
            }
            None => {
                let moved = arena.os.remap_move(old_at, old, total, SEGMENT_SIZE);
                if moved.is_some() {
                    let c = &arena.counters;
                    GlobalCounters::gauge_add(
                        &c.mapped_bytes,
                        &c.peak_mapped_bytes,
                        (total - old) as u64,
                    );
                }
                moved.map(|at| (at, total))
            }
        };
        let Some((moved, total)) = moved else {
            arena.register(seg);
            return ptr::null_mut();
        };
        let nseg = moved.as_ptr().cast::<Segment>();
        (*nseg).size = total;
        (*nseg).published_size.store(total, Ordering::Relaxed);
        let page = &*Segment::page(nseg, 0);
        page.start.set(moved.as_ptr().add(offset));
        page.block_size.set(total - offset);
        // The header holds addresses into itself, which moved with it: the slot table (what
        // `Segment::page_of` reads) and the page's live-bitmap bias.
        let live = ptr::addr_of!((*nseg).live) as usize;
        page.live_bias
            .set(live.wrapping_sub(live_word_offset(nseg as usize)));
        let start = page.start.get();
        let page = Segment::page(nseg, 0);
        let slots = ptr::addr_of_mut!((*nseg).page_of_slot).cast::<*mut Page>();
        for slot in 0..MAX_PAGES {
            slots.add(slot).write(page);
        }
        arena.register(nseg);
        let c = &arena.counters;
        GlobalCounters::gauge_add(&c.huge_live_bytes, &c.peak_live_bytes, (total - old) as u64);
        start
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
pub unsafe fn huge_realloc<S: Os>(
    arena: &Arena<S>,
    seg: *mut Segment,
    usable: usize,
    new_size: usize,
) -> *mut u8 {
    // SAFETY: per the contract.
    unsafe {
        let page = &*Segment::page(seg, 0);
        let p = page.start.get();
        if new_size <= usable {
            // `requested` tells a real shrink from a block that was given slack.
            if new_size < page.requested.get() / 2 {
                let keep = align_up(p as usize + new_size, OS_PAGE);
                let end = seg as usize + (*seg).size;
                if end - keep >= 1 << 20 {
                    arena
                        .os
                        .purge(NonNull::new_unchecked(keep as *mut u8), end - keep);
                    arena
                        .counters
                        .purged_bytes
                        .fetch_add((end - keep) as u64, Ordering::Relaxed);
                }
            }
            page.requested.set(new_size);
            return p;
        }
        // Growing: half as much again as slack, so growth by small steps is O(log n) remaps.
        // A cached span that holds it comes first: growing in place would fault in as many
        // new pages while the span's stay resident until they are purged.
        let target = new_size.max(usable.saturating_add(usable / 2));
        let mut moved = huge_move(arena, seg, target, MoveTo::CachedSpan);
        if moved.is_null() {
            if huge_resize_in_place(arena, seg, target)
                || huge_resize_in_place(arena, seg, new_size)
            {
                (*seg).pages[0].requested.set(new_size);
                return p;
            }
            moved = huge_move(arena, seg, target, MoveTo::NewMapping);
        }
        if !moved.is_null() {
            (*Segment::of(moved)).pages[0].requested.set(new_size);
        }
        moved
    }
}

/// Resizes a huge block in place if the source can grow or shrink its mapping where it is.
///
/// # Safety
/// `seg` is the registered huge segment of a live block.
pub unsafe fn huge_resize_in_place<S: Os>(
    arena: &Arena<S>,
    seg: *mut Segment,
    new_size: usize,
) -> bool {
    // SAFETY: per the contract the segment header is valid and the block is ours.
    unsafe {
        let page = &*Segment::page(seg, 0);
        let offset = page.start.get() as usize - seg as usize;
        let Some(total) = new_size
            .checked_add(offset)
            .and_then(|t| checked_align_up(t, OS_PAGE))
        else {
            return false;
        };
        let old = (*seg).size;
        if total == old {
            return true;
        }
        if !arena
            .os
            .remap_in_place(NonNull::new_unchecked(seg.cast()), old, total)
        {
            return false;
        }
        (*seg).size = total;
        (*seg).published_size.store(total, Ordering::Relaxed);
        let c = &arena.counters;
        if total > old {
            GlobalCounters::gauge_add(&c.mapped_bytes, &c.peak_mapped_bytes, (total - old) as u64);
            GlobalCounters::gauge_add(&c.huge_live_bytes, &c.peak_live_bytes, (total - old) as u64);
        } else {
            GlobalCounters::gauge_sub(&c.mapped_bytes, (old - total) as u64);
            GlobalCounters::gauge_sub(&c.huge_live_bytes, (old - total) as u64);
        }
        page.block_size.set(total - offset);
        page.reserved.set(1);
        true
    }
}
