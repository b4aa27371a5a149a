//! Freeing: the owner's fast path (a push on the page's local list), the generic path (full
//! pages, aligned pointers, huge blocks, validation) and remote frees from other threads.
//!
//! A remote free never takes a lock: it pushes the block on the page's atomic `thread_free`
//! list. Only when the page is full (so its owner is not looking at it) does the first remote
//! free also push the block on the owning heap's `delayed` list, which the owner drains on its
//! next slow path. The `FREEING` state makes the owner wait for that push before it can tear
//! the heap down.

use crate::arena::Arena;
use crate::heap::Heap;
use crate::huge::huge_free;
use crate::os::Os;
use crate::page::{Block, Page, FLAG_HAS_ALIGNED, FLAG_IN_FULL};
use crate::page_life::{retire, unfull};
use crate::segment::{Segment, SegmentKind, SEGMENT_MAP};
use crate::thread_free::Pushed;
use crate::util::sync::{link_read, Ordering};

/// Frees `p`, called on the thread whose id is `tid`.
///
/// # Safety
/// `p` is null or a pointer this allocator returned; `tid` is the calling thread's id (or
/// `owner::NO_THREAD`).
#[inline(always)]
pub unsafe fn free<S: Os>(arena: &Arena<S>, p: *mut u8, tid: usize) {
    if p.is_null() {
        return;
    }
    if !SEGMENT_MAP.contains(p) {
        return free_invalid(arena, p);
    }
    // SAFETY: the map says a segment header is at the masked address.
    unsafe {
        let seg = Segment::of(p);
        let page = Segment::page_of(seg, p);
        if (*seg).thread_id.load(Ordering::Relaxed) == tid && (*page).flags == 0 {
            // Our page, not full, no interior pointers: `p` is a block start. Every path
            // that is not the plain push below is a tail call, so this path needs no
            // stack frame.
            let block = p as *mut Block;
            debug_assert!(
                (p as usize - (*page).start as usize) % (*page).block_size == 0,
                "interior pointer {:p}",
                p
            );
            if looks_free(&*page, block, (*seg).page_shift) {
                return free_local_checked(arena, page, block);
            }
            (*page).push_local(block);
            if (*page).used == 0 {
                return retire_owned::<S>(page);
            }
            return;
        }
        free_generic(arena, seg, page, p, tid)
    }
}

/// The owner frees a block whose first word looks like a free-list link: confirm it is not
/// on a free list (a double free), then free it.
#[cold]
#[inline(never)]
unsafe fn free_local_checked<S: Os>(arena: &Arena<S>, page: *mut Page, block: *mut Block) {
    // SAFETY: the caller owns the page and `block` is one of its blocks.
    unsafe {
        check_double_free(arena, page, block);
        let heap = (*page).heap.load(Ordering::Relaxed) as *mut Heap<S>;
        free_owned(heap, page, block);
    }
}

#[cold]
#[inline(never)]
fn free_invalid<S: Os>(arena: &Arena<S>, p: *mut u8) {
    arena.os.fatal(
        "free(): invalid pointer (not allocated by oxalloc, or already released)",
        p as usize,
    )
}

/// Confirms a suspected double free by searching the page's free lists.
#[cold]
#[inline(never)]
unsafe fn check_double_free<S: Os>(arena: &Arena<S>, page: *mut Page, block: *mut Block) {
    // SAFETY: the caller owns the page.
    if unsafe { (*page).is_on_free_list(block) } {
        arena
            .os
            .fatal("free(): double free detected", block as usize);
    }
}

/// Frees on any thread, for any kind of block.
#[cold]
#[inline(never)]
unsafe fn free_generic<S: Os>(
    arena: &Arena<S>,
    seg: *mut Segment,
    page: *mut Page,
    p: *mut u8,
    tid: usize,
) {
    // SAFETY: `seg` is a registered segment (checked by the caller) and `page` is one of its
    // page slots.
    unsafe {
        if (*seg).kind == SegmentKind::Huge {
            return huge_free(arena, seg, p);
        }
        let pg = &*page;
        if !pg.assigned || !pg.contains(p as usize) {
            arena
                .os
                .fatal("free(): invalid pointer (not a live block)", p as usize);
        }
        let block = pg.block_start(p as usize);
        if block as *mut u8 != p && pg.flags & FLAG_HAS_ALIGNED == 0 {
            arena
                .os
                .fatal("free(): invalid pointer (inside a block)", p as usize);
        }
        if (*seg).thread_id.load(Ordering::Relaxed) == tid {
            if looks_free(pg, block, (*seg).page_shift) {
                check_double_free(arena, page, block);
            }
            let heap = pg.heap.load(Ordering::Relaxed) as *mut Heap<S>;
            free_owned(heap, page, block);
        } else {
            free_remote(arena, pg, block);
        }
    }
}

/// Frees a block of a page another thread owns (or nobody owns, when abandoned): the
/// `thread_free` protocol.
unsafe fn free_remote<S: Os>(arena: &Arena<S>, page: &Page, block: *mut Block) {
    // SAFETY: the block is being freed by us; its first word is ours to link with.
    match unsafe { page.thread_free.push(block as usize) } {
        Ok(Pushed::Listed) => {}
        Ok(Pushed::Notify) => {
            // SAFETY: in state FREEING the owner cannot tear its heap down (it waits for us),
            // and a page is only ever put in USE_DELAYED by a live owning heap.
            unsafe {
                let heap = page.heap.load(Ordering::Acquire) as *const Heap<S>;
                debug_assert!(!heap.is_null());
                (*heap).delayed.push(block as usize);
            }
            page.thread_free.end_notify();
        }
        Err(head) => arena.os.fatal(
            "free(): double free detected (block freed twice by other threads)",
            head,
        ),
    }
}

/// Whether a block's first word decodes to a link inside its own page (or to null): what a
/// block on a free list holds, and rarely anything else.
#[inline(always)]
fn looks_free(page: &Page, block: *mut Block, page_shift: usize) -> bool {
    // SAFETY: `block` is a block of `page` that the caller is freeing, so it is readable.
    let link = page.decode(unsafe { *(block as *const usize) }) as usize;
    // `link == 0`: the end of a list; same 2^page_shift window: a link into this page.
    link == 0 || (link ^ block as usize).wrapping_shr(page_shift as u32) == 0
}

#[cold]
#[inline(never)]
unsafe fn retire_owned<S: Os + 'static>(page: *mut Page) {
    // SAFETY: the caller owns the page, so its heap pointer is our live heap.
    unsafe {
        let heap = (*page).heap.load(Ordering::Relaxed) as *mut Heap<S>;
        retire(heap, page);
    }
}

/// Frees a block of one of our pages, on the owning thread, handling full pages and retiring
/// empty ones. `block` is the block's start.
///
/// # Safety
/// `page` belongs to `heap`, owned by the calling thread, and `block` is one of its used blocks.
pub(crate) unsafe fn free_owned<S: Os>(heap: *mut Heap<S>, page: *mut Page, block: *mut Block) {
    // SAFETY: per the contract.
    unsafe {
        (*page).push_local(block);
        if (*page).flags & FLAG_IN_FULL != 0 {
            unfull(heap, page);
        }
        if (*page).all_free() {
            retire(heap, page);
        }
    }
}

/// Frees the blocks other threads handed the heap through its delayed list.
///
/// # Safety
/// Called by the thread owning `heap`.
#[inline]
pub(crate) unsafe fn drain_delayed<S: Os>(heap: *mut Heap<S>) {
    // SAFETY: same contract; the heap is valid.
    unsafe {
        if !(*heap).delayed.is_empty() {
            drain_delayed_list(heap)
        }
    }
}

#[cold]
#[inline(never)]
unsafe fn drain_delayed_list<S: Os>(heap: *mut Heap<S>) {
    // SAFETY: the caller's heap is valid.
    let mut block = unsafe { (*heap).delayed.take_all() } as *mut Block;
    while !block.is_null() {
        // SAFETY: blocks on the delayed list are used blocks of our pages, pushed with plain
        // links by `free_remote`; after the take the list is ours alone.
        unsafe {
            let next = link_read(block as usize) as *mut Block;
            let seg = Segment::of(block.cast());
            let page = Segment::page_of(seg, block.cast());
            free_owned(heap, page, block);
            block = next;
        }
    }
}
