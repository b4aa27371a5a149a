//! Allocation: the malloc fast path, its slow path, and the calls built on them (zeroed,
//! aligned, realloc, usable size).
//!
//! The fast path is a table lookup and a pop, behind one test:
//! ```text
//! page  = (*heap).direct[(size + 15) / 16]     // the size class's current page
//! block = page.free                         // null => slow path (also for the sentinel heap)
//! next  = decode(block.next)                // must stay in the segment: else abort
//! page.free = next; live[block] = 1; page.used += 1
//! ```

use crate::arena::Arena;
use crate::free::{drain_delayed, free};
use crate::heap::Heap;
use crate::huge::{huge_alloc, huge_realloc};
use crate::os::{Os, OS_PAGE};
use crate::page::{CorruptLink, Page, FLAG_HAS_ALIGNED, FLAG_SAMPLED};
use crate::page_life::{find_page, refill};
use crate::profile::FRAMES;
use crate::secure::{self, TRAILER};
use crate::segment::{owner, Segment, SegmentKind, MAX_ALIGN, SEGMENT_MAP};
use crate::size_class::{bin_of, bin_size, ALIGN, DIRECT_MAX, MEDIUM_MAX};
use crate::util::align::align_up;
use crate::util::sync::Ordering;
use core::ptr;

/// Allocates `size` bytes, 16-byte aligned. Null when out of memory.
///
/// # Safety
/// Called by the thread this heap belongs to (or on the sentinel, by any thread).
#[inline(always)]
pub unsafe fn malloc<S: Os>(heap: *mut Heap<S>, size: usize) -> *mut u8 {
    // SAFETY: same caller contract.
    unsafe {
        let p = malloc_fast(heap, size);
        if !p.is_null() {
            return p;
        }
        malloc_slow(heap, size)
    }
}

/// The fast path alone: a block if the size class's current page has one, else null (the
/// caller then takes [`malloc_slow`]).
///
/// # Safety
/// As for [`malloc`].
#[inline(always)]
pub unsafe fn malloc_fast<S: Os>(heap: *mut Heap<S>, size: usize) -> *mut u8 {
    if size <= DIRECT_MAX {
        // SAFETY: `heap` is the caller's heap (or a sentinel), valid per the contract; direct
        // entries point at this heap's pages or at the empty page, whose `free` is null; a
        // non-null `free` means the page is ours to pop from.
        unsafe {
            let page = (*heap).pages.direct[size.div_ceil(ALIGN)];
            if !(*page).free.get().is_null() {
                return pop(heap, page);
            }
        }
    }
    ptr::null_mut()
}

/// The slow path's common case, kept small so it needs few registers: the current page of
/// the size class has blocks freed since it ran dry (or room to carve more). Everything else
/// goes on to `malloc_generic`.
#[cold]
#[inline(never)]
pub unsafe fn malloc_slow<S: Os>(heap: *mut Heap<S>, size: usize) -> *mut u8 {
    // SAFETY: the caller's heap is valid and ours.
    unsafe {
        if (*heap).secure != 0 {
            return malloc_secure(heap, size, ALIGN, false);
        }
        malloc_refill(heap, size)
    }
}

/// `malloc_slow` of default mode (and the block source of secure mode).
#[inline(always)]
unsafe fn malloc_refill<S: Os>(heap: *mut Heap<S>, size: usize) -> *mut u8 {
    // A sentinel heap has empty queues and no delayed frees, so it falls through too.
    // SAFETY: the caller's heap is valid and ours; pages in our queues are ours.
    unsafe {
        if (*heap).sampler.pending_count != 0 {
            let p = malloc_sampled(heap, size);
            if !p.is_null() {
                return p;
            }
        }
        if size <= MEDIUM_MAX && (*heap).delayed.is_empty() {
            let page = (*heap).pages.queues[bin_of(size)].first();
            if !page.is_null() {
                refill(heap, page);
                if !(*page).free.get().is_null() {
                    return pop(heap, page);
                }
            }
        }
        malloc_generic(heap, size)
    }
}

/// Everything else: binding the thread, huge sizes, delayed frees, moving on from full pages
/// and taking fresh ones.
#[inline(never)]
unsafe fn malloc_generic<S: Os>(heap: *mut Heap<S>, size: usize) -> *mut u8 {
    // SAFETY: the caller's heap is valid; the front end's binder returns a heap bound to this
    // thread, or null.
    unsafe {
        if (*heap).is_sentinel() {
            let heap = ((*heap).bind)();
            if heap.is_null() || (*heap).is_sentinel() {
                return ptr::null_mut();
            }
            return malloc(heap, size);
        }
    }
    if size > MEDIUM_MAX {
        // SAFETY: same caller contract.
        return unsafe { huge(heap, size, ALIGN, false) };
    }

    // SAFETY: we are the owner of this bound heap.
    unsafe {
        drain_delayed(heap);
        let page = find_page(heap, bin_of(size));
        if page.is_null() {
            return ptr::null_mut();
        }
        if (*heap).sampler.pending_count != 0 {
            // The refills of `find_page` may have cut a list right at its start.
            let p = malloc_sampled(heap, size);
            if !p.is_null() {
                return p;
            }
        }
        pop(heap, page)
    }
}

/// Pops a block of one of our pages whose `free` list is not empty; a corrupted link ends the
/// process.
///
/// # Safety
/// `page` belongs to `heap`, owned by the calling thread, and `free` is not empty.
#[inline(always)]
unsafe fn pop<S: Os>(heap: *mut Heap<S>, page: *mut Page) -> *mut u8 {
    // SAFETY: per the contract; the heap is valid (read only on a corrupted link).
    unsafe { (*page).pop_free(|bad| corrupt_link((*heap).arena, bad)) }
}

#[cold]
#[inline(never)]
fn corrupt_link<S: Os>(arena: &Arena<S>, bad: CorruptLink) -> ! {
    arena.os.fatal(
        "malloc(): free list corrupted (write after free?)",
        bad.block,
    )
}

/// Hands out a block the sampler set aside for `size`'s class (see `profile`), recording its
/// stack; null if there is none.
///
/// # Safety
/// The caller owns the bound heap `heap`.
#[cold]
#[inline(never)]
unsafe fn malloc_sampled<S: Os>(heap: *mut Heap<S>, size: usize) -> *mut u8 {
    if size > MEDIUM_MAX {
        return ptr::null_mut();
    }
    // SAFETY: pending blocks are blocks of our pages, counted as used (and live) and on no
    // free list.
    unsafe {
        let (b, zeroed) = (*heap).sampler.take_pending(bin_of(size));
        if b.is_null() {
            return b;
        }
        let page = Segment::page_of(Segment::of(b), b);
        debug_assert!((*page).bin.get() as usize == bin_of(size));
        if (*page).free_zeroed.get() && !zeroed {
            // `malloc_zeroed` trusts the page's flag, which speaks for its current `free` list,
            // not for a block set aside from an earlier one.
            ptr::write_bytes(b, 0, (*page).block_size.get());
        }
        debug_assert!(!zeroed || reads_zero(b, (*page).block_size.get()));
        (*page).note_sample(b as usize);
        record_sample(heap, b, size, (*page).block_size.get());
        b
    }
}

/// Records the stack of a sampled block (unless a sample is being recorded already on this
/// thread: the unwinder may allocate).
///
/// # Safety
/// The caller owns the bound heap `heap`; `block` is the start of the sampled block.
#[cold]
#[inline(never)]
unsafe fn record_sample<S: Os>(heap: *mut Heap<S>, block: *mut u8, size: usize, block_size: usize) {
    // SAFETY: the heap is ours; no reference into it is held across the unwinder, which may
    // allocate on this thread.
    unsafe {
        if (*heap).sampler.busy {
            return;
        }
        (*heap).sampler.busy = true;
        let arena = (*heap).arena;
        let mut frames = [0usize; FRAMES];
        let n = arena.os.backtrace(&mut frames).min(FRAMES);
        arena
            .profile
            .record(&arena.os, block as usize, size, block_size, &frames[..n]);
        (*heap).sampler.busy = false;
    }
}

/// Charges a huge block to the sampler and records it if a sample point falls in it.
#[cold]
#[inline(never)]
unsafe fn sample_huge<S: Os>(heap: *mut Heap<S>, rate: usize, p: *mut u8, size: usize) {
    // SAFETY: `p` is a live huge block just allocated by this thread, so its page is ours.
    unsafe {
        let page = ptr::addr_of_mut!((*Segment::of(p)).pages[0]);
        let block_size = (*page).block_size.get();
        if (*heap).sampler.charge_block(rate, block_size) {
            let start = (*page).block_start(p as usize);
            (*page).note_sample(start as usize);
            record_sample(heap, start.cast(), size, block_size);
        }
    }
}

/// A huge block. Huge blocks have no owning heap, but a thread's first allocation binds it
/// anyway: binding is what runs process start-up (options, such as the memory source)
/// before anything is mapped. A first-class heap tags its huge blocks (their page's `heap`),
/// so that destroying it frees them (`first_class`).
unsafe fn huge<S: Os>(heap: *mut Heap<S>, size: usize, align: usize, zero: bool) -> *mut u8 {
    // SAFETY: the caller's heap is valid; the front end's binder returns a heap bound to this
    // thread, or null.
    unsafe {
        let mut heap = heap;
        if (*heap).is_sentinel() {
            heap = ((*heap).bind)();
            if heap.is_null() {
                return ptr::null_mut();
            }
        }
        let p = huge_alloc((*heap).arena, size, align, zero);
        let rate = (*heap).arena.profile.rate();
        if rate != 0 && !p.is_null() && !(*heap).is_sentinel() {
            sample_huge(heap, rate, p, size);
        }
        if !p.is_null() && (*heap).is_first_class() {
            tag_huge(heap, p);
        }
        p
    }
}

/// Marks a fresh huge block as allocated by the first-class heap `heap`.
#[cold]
unsafe fn tag_huge<S: Os>(heap: *mut Heap<S>, p: *mut u8) {
    // SAFETY: `p` is a huge block just allocated by this thread: nobody else knows it yet.
    unsafe {
        let seg = Segment::of(p);
        (*seg).pages[0].heap.store(heap as usize, Ordering::Release);
        (*heap).huge_blocks = true;
    }
}

/// Secure mode's allocation of every kind: `size` bytes (aligned to `align`, zeroed if
/// `zero`) in a block with room for the trailer, checked to hold the fill of a freed block,
/// then sealed (see `secure`). Null when out of memory.
///
/// # Safety
/// As for [`malloc`], on a secure heap.
#[cold]
#[inline(never)]
unsafe fn malloc_secure<S: Os>(
    heap: *mut Heap<S>,
    size: usize,
    align: usize,
    zero: bool,
) -> *mut u8 {
    let Some(sealed) = size.checked_add(TRAILER) else {
        return ptr::null_mut();
    };
    // SAFETY: (the whole body) the caller's heap is valid and ours; a block we get is ours.
    unsafe {
        // Small alignments are natural; larger ones take the padded or the huge way.
        let natural = sealed.max(align);
        let (p, padded) = if align <= ALIGN
            || (align <= OS_PAGE && natural <= MEDIUM_MAX && bin_size(bin_of(natural)) % align == 0)
        {
            (malloc_refill(heap, natural), natural)
        } else {
            match sealed.checked_add(align - ALIGN) {
                Some(padded) if padded <= MEDIUM_MAX => (malloc_refill(heap, padded), padded),
                _ => (huge(heap, sealed, align, false), sealed),
            }
        };
        if p.is_null() {
            return p;
        }
        let seg = Segment::of(p);
        let page = Segment::page_of(seg, p);
        let huge_block = (*seg).kind == SegmentKind::Huge;
        let len = sealed_len(&*page, huge_block);
        if !huge_block && secure::check_fill(p, len, (*page).secure_level()).is_err() {
            (*heap).arena.os.fatal(
                "malloc(): write after free detected (a freed block was written)",
                p as usize,
            );
        }
        let aligned = align_up(p as usize, align) as *mut u8;
        debug_assert!(aligned as usize + size + TRAILER <= p as usize + padded.max(len));
        if aligned != p {
            (*page).add_flags(FLAG_HAS_ALIGNED);
            (*page).clear_live(p as usize);
            (*page).mark_live(aligned as usize);
        }
        secure::seal(&*page, p, len, aligned as usize - p as usize + size);
        if zero {
            ptr::write_bytes(aligned, 0, size);
        }
        aligned
    }
}

/// How many bytes of a secure block the seal covers: the block, or for a huge block the size
/// it was allocated with (its mapping may be much larger).
#[inline]
fn sealed_len(page: &Page, huge: bool) -> usize {
    if huge {
        page.requested.get()
    } else {
        page.block_size.get()
    }
}

/// The calling thread's real heap: `heap`, or for the sentinel the heap the front end binds
/// (null when out of memory). The calls that do not start on `malloc`'s fast path bind first,
/// so they see the heap's mode.
///
/// # Safety
/// As for [`malloc`].
#[inline]
unsafe fn bound<S: Os>(heap: *mut Heap<S>) -> *mut Heap<S> {
    // SAFETY: the caller's heap is valid; the binder returns a bound heap or null.
    unsafe {
        if (*heap).is_sentinel() {
            bind_sentinel(heap)
        } else {
            heap
        }
    }
}

#[cold]
#[inline(never)]
unsafe fn bind_sentinel<S: Os>(heap: *mut Heap<S>) -> *mut Heap<S> {
    // SAFETY: as for `bound`.
    unsafe {
        let h = ((*heap).bind)();
        if h.is_null() || (*h).is_sentinel() {
            ptr::null_mut()
        } else {
            h
        }
    }
}

/// Allocates `size` zeroed bytes.
///
/// # Safety
/// As for [`malloc`].
pub unsafe fn malloc_zeroed<S: Os>(heap: *mut Heap<S>, size: usize) -> *mut u8 {
    // SAFETY: same caller contract.
    let heap = unsafe { bound(heap) };
    if heap.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: the heap is valid.
    if unsafe { (*heap).secure } != 0 {
        // SAFETY: same caller contract.
        return unsafe { malloc_secure(heap, size, ALIGN, true) };
    }
    if size > MEDIUM_MAX {
        // SAFETY: same caller contract.
        return unsafe { huge(heap, size, ALIGN, true) };
    }
    // SAFETY: same caller contract.
    let p = unsafe { malloc(heap, size) };
    if !p.is_null() {
        // SAFETY: `p` is a block of one of our pages (huge sizes were handled above), and has
        // at least `size` writable bytes. A block popped from a list of never-used zeroed
        // blocks needs no memset: the page says so about its current `free` list.
        unsafe {
            let page = Segment::page_of(Segment::of(p), p);
            if !(*page).free_zeroed.get() {
                ptr::write_bytes(p, 0, size);
            } else if size != 0 {
                // The block never held data, but it held its free-list link.
                ptr::write_bytes(p, 0, size.min(core::mem::size_of::<usize>()));
            }
            debug_assert!(
                reads_zero(p, size),
                "block {:p} of {} bytes not zeroed",
                p,
                size
            );
        }
    }
    p
}

/// Whether the `n` bytes at `p` read as zero (a debug check of `malloc_zeroed`). Bytes are read
/// through the raw pointer, one at a time: no reference per byte, which under Miri would give
/// each byte a borrow-stack entry of its own (splitting the region's borrow tracking into
/// millions of ranges, each later access a search and a copy of them). Under Miri, which
/// interprets every read, both ends and every 509th byte stand in for the block.
///
/// # Safety
/// `p` has at least `n` readable bytes.
unsafe fn reads_zero(p: *const u8, n: usize) -> bool {
    // SAFETY: every index is below `n`, per the contract.
    let at = |i: usize| unsafe { p.add(i).read() } == 0;
    if cfg!(miri) {
        (0..n.min(64)).all(at) && (n.saturating_sub(64)..n).all(at) && (0..n).step_by(509).all(at)
    } else {
        (0..n).all(at)
    }
}

/// Allocates `size` bytes aligned to `align` (a power of two), zeroed if `zero`. Null when
/// out of memory or when `align` exceeds what a segment can give (2 MiB).
///
/// # Safety
/// As for [`malloc`].
pub unsafe fn malloc_aligned<S: Os>(
    heap: *mut Heap<S>,
    size: usize,
    align: usize,
    zero: bool,
) -> *mut u8 {
    debug_assert!(align.is_power_of_two());
    // SAFETY: (the whole body) the same caller contract as `malloc`.
    unsafe {
        let heap = bound(heap);
        if heap.is_null() {
            return ptr::null_mut();
        }
        if (*heap).secure != 0 {
            if align > MAX_ALIGN {
                return ptr::null_mut();
            }
            return malloc_secure(heap, size, align, zero);
        }
        if align <= ALIGN {
            return if zero {
                malloc_zeroed(heap, size)
            } else {
                malloc(heap, size)
            };
        }
        // Classes whose block size is a multiple of `align` are aligned already: every page
        // starts on an OS page boundary.
        let natural = size.max(align);
        if align <= OS_PAGE && natural <= MEDIUM_MAX && bin_size(bin_of(natural)) % align == 0 {
            return if zero {
                malloc_zeroed(heap, natural)
            } else {
                malloc(heap, natural)
            };
        }
        let padded = match size.checked_add(align - ALIGN) {
            Some(p) if p <= MEDIUM_MAX => p,
            _ => return huge(heap, size, align, zero),
        };
        let p = malloc(heap, padded);
        if p.is_null() {
            return p;
        }
        let aligned = align_up(p as usize, align) as *mut u8;
        if aligned != p {
            // The live bit moves to the pointer the program gets, which is what it frees.
            let page = Segment::page_of(Segment::of(p), p);
            (*page).add_flags(FLAG_HAS_ALIGNED);
            (*page).clear_live(p as usize);
            (*page).mark_live(aligned as usize);
        }
        debug_assert!(aligned as usize + size <= p as usize + padded);
        if zero {
            ptr::write_bytes(aligned, 0, size);
        }
        aligned
    }
}

/// Resizes a block, in place when it can; on failure returns null and leaves `p` valid.
///
/// # Safety
/// As for [`malloc`]; `p` is null or a live block from this allocator.
pub unsafe fn realloc<S: Os>(heap: *mut Heap<S>, p: *mut u8, new_size: usize) -> *mut u8 {
    // SAFETY: (the whole body) the same caller contract; `usable_size` validates `p`.
    unsafe {
        if p.is_null() {
            return malloc(heap, new_size);
        }
        let heap = bound(heap);
        if heap.is_null() {
            return ptr::null_mut();
        }
        let usable = usable_size((*heap).arena, p);
        let seg = Segment::of(p);
        if (*heap).secure != 0 {
            // Secure mode always moves: the seal covers the old size, and a moved block
            // leaves the old one to the checks of free.
            let q = malloc(heap, new_size);
            if !q.is_null() {
                ptr::copy_nonoverlapping(p, q, usable.min(new_size));
                free((*heap).arena, p, (*heap).thread_id);
            }
            return q;
        }
        if (*seg).kind == SegmentKind::Huge && new_size > MEDIUM_MAX {
            let q = huge_realloc((*heap).arena, seg, usable, new_size);
            if !q.is_null() {
                // A huge segment's one page (not `page_of`: a moved segment's slot table still
                // points into its old place until it is set up again).
                let page = ptr::addr_of_mut!((*Segment::of(q)).pages[0]);
                if (*page).flags() & FLAG_SAMPLED != 0 {
                    // Moved or resized in place: the sample follows, with its new size.
                    let arena = (*heap).arena;
                    let (old, new) = (p as usize, (*page).block_start(q as usize) as usize);
                    let old = old - (q as usize - new);
                    arena
                        .profile
                        .moved(&arena.os, old, new, new_size, (*page).block_size.get());
                }
                return q;
            }
        } else if new_size <= usable && new_size >= usable / 2 {
            return p;
        }
        // A block that becomes huge gets half as much again as slack, so a buffer grown a
        // little at a time is moved O(log n) times, not once per OS page.
        let target = if new_size > usable && new_size > MEDIUM_MAX {
            new_size.max(usable.saturating_add(usable / 2))
        } else {
            new_size
        };
        let mut q = malloc(heap, target);

        if q.is_null() && target != new_size {
            q = malloc(heap, new_size);
        }
        if q.is_null() {
            return q;
        }

        ptr::copy_nonoverlapping(p, q, usable.min(new_size));
        let tid = if (*heap).is_sentinel() {
            owner::NO_THREAD
        } else {
            (*heap).thread_id
        };
        free((*heap).arena, p, tid);
        q
    }
}

/// Bytes usable in the block at `p` (at least what was asked, all writable). Ends the
/// process if `p` is not a live pointer this allocator handed out.
///
/// # Safety
/// `p` is null or a live pointer from this allocator.
pub unsafe fn usable_size<S: Os>(arena: &Arena<S>, p: *const u8) -> usize {
    if p.is_null() {
        return 0;
    }
    if !SEGMENT_MAP.contains(p) {
        arena
            .os
            .fatal("malloc_usable_size(): invalid pointer", p as usize);
    }
    // SAFETY: the map says a segment starts at the masked address, so its header is valid.
    unsafe {
        let seg = Segment::of(p);
        let page = &*Segment::page_of(seg, p);
        let huge_block = (*seg).kind == SegmentKind::Huge;
        if huge_block {
            if !page.assigned.get() || !page.contains(p as usize) {
                arena
                    .os
                    .fatal("malloc_usable_size(): invalid pointer", p as usize);
            }
        } else if !page.assigned.get() || !page.contains(p as usize) || !page.is_live(p as usize) {
            arena.os.fatal(
                "malloc_usable_size(): invalid pointer (not a live block)",
                p as usize,
            );
        }
        let block = if huge_block {
            page.start.get() as usize
        } else {
            page.block_of(p as usize) as usize
        };
        if secure::is_secure(page) {
            // The program's bytes only: the canary and the trailer follow them.
            return block + secure::sealed_end(block as *const u8, sealed_len(page, huge_block))
                - p as usize;
        }
        block + page.block_size.get() - p as usize
    }
}

/// Checks the size a sized free (`free_sized`, C++ sized delete) was given against the block at
/// `p`, and ends the process if the block cannot have been allocated with that size: larger
/// than the block, or (`exact_class`: the block came from plain `malloc`) below half of it,
/// which no allocation or in-place `realloc` of the block can have asked for.
///
/// # Safety
/// As for [`usable_size`].
pub unsafe fn check_free_size<S: Os>(
    arena: &Arena<S>,
    p: *const u8,
    size: usize,
    exact_class: bool,
) {
    // SAFETY: per the contract; `usable_size` ends the process for a pointer that is not live.
    let usable = unsafe { usable_size(arena, p) };
    if p.is_null() {
        return;
    }
    // SAFETY: `usable_size` checked that `p` is a live pointer of a registered segment.
    let huge = unsafe { (*Segment::of(p)).kind == SegmentKind::Huge };
    let too_small = exact_class && !huge && size < (usable / 2).saturating_sub(ALIGN);
    if size > usable || too_small {
        arena.os.fatal(
            "free_sized(): the size does not match the block",
            p as usize,
        );
    }
}

/// The page memory (start, length) around `p`, a block the calling thread's heap just handed
/// out, when it is the only block of its page in use: every other block of the page is then
/// free or not carved yet. None for huge blocks and for pages with other blocks in use. (The
/// front end's valgrind mode makes such memory NOACCESS.)
///
/// # Safety
/// `p` is a live block of the calling thread's heap.
pub unsafe fn sole_block_page(p: *const u8) -> Option<(*mut u8, usize)> {
    // SAFETY: per the contract `p` is in a live segment, and its page slot is ours to read.
    unsafe {
        let seg = Segment::of(p);
        if (*seg).kind == SegmentKind::Huge {
            return None;
        }
        let page = &*Segment::page_of(seg, p);
        (page.used.get() == 1).then(|| {
            (
                page.start.get(),
                page.reserved.get() as usize * page.block_size.get(),
            )
        })
    }
}
