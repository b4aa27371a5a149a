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
use crate::page::{Block, Page, FLAG_HAS_ALIGNED, FLAG_IN_FULL, FLAG_SAMPLED};
use crate::page_life::{retire, unfull};
use crate::secure;
use crate::segment::{owner, Segment, SegmentKind, SEGMENT_MAP};
use crate::size_class::ALIGN;
use crate::thread_free::Pushed;
use crate::util::sync::{link_read, AtomicUsize, Ordering};

/// Frees `p`, called on the thread whose id is `tid`.
///
/// Every free of a pointer that is not live ends the process with a message naming it: the
/// segment map catches foreign pointers, the live bitmap interior, unaligned and double frees,
/// whatever the freed block holds.
///
/// # Safety
/// `tid` is the calling thread's id (or `owner::NO_THREAD`); `p` may be anything.
#[inline(always)]
pub unsafe fn free<S: Os>(arena: &Arena<S>, p: *mut u8, tid: usize) {
    // Null is not in the map (no segment is ever recorded in its first unit).
    if !SEGMENT_MAP.contains(p) {
        return free_invalid(p, arena);
    }
    // SAFETY: the map says a segment header is at the masked address.
    unsafe {
        let seg = Segment::of(p);
        let page = Segment::page_of(seg, p);
        if (*seg).thread_id.load(Ordering::Relaxed) == tid && (*page).flags() == 0 {
            return free_local(p, tid, seg, page, arena);
        }
        free_other(p, tid, seg, page, arena)
    }
}

/// The owner's fast path, for a page of ours with no flag (or none that concerns `p`).
///
/// # Safety
/// As for [`free`], with `seg` the registered segment of `p`, owned by the calling thread, and
/// `page` its page slot, with no flag set but `FLAG_SAMPLED` when `p` is not a sampled block.
#[inline(always)]
unsafe fn free_local<S: Os>(
    p: *mut u8,
    tid: usize,
    seg: *mut Segment,
    page: *mut Page,
    arena: &Arena<S>,
) {
    // SAFETY: per the contract the page is ours.
    unsafe {
        // Our page, not full, no interior pointers: `p` must be a live block's start. Every
        // path that is not the plain push below is a tail call, so this path needs no stack
        // frame.
        if p as usize & (ALIGN - 1) != 0 {
            return free_generic(p, tid, seg, page, arena);
        }
        let word = (*page).live_word(p as usize);
        let w = word.load(Ordering::Relaxed);
        let index = Page::live_index(p as usize);
        if !Page::live_test(w, index) {
            return free_generic(p, tid, seg, page, arena);
        }
        word.store(w & (!1usize).rotate_left(index), Ordering::Relaxed);
        (*page).push_local(p as *mut Block);
        if (*page).used.get() == 0 {
            retire_owned::<S>(page);
        }
    }
}

/// Frees `p` when the owner's fast path does not apply: another thread's page (or an abandoned
/// one) takes the short way to its `thread_free` list when the page needs nothing else (not
/// secure, not huge, and `p` not a sampled block: those send it on, as do an installed hook and
/// a pointer that is not live); so does a free on our own page whose only flag says it may hold
/// sampled blocks, of a block that is not one. Everything else goes to the generic path.
///
/// # Safety
/// As for [`free`], with `seg` the registered segment of `p` and `page` its page slot.
#[inline(never)]
unsafe fn free_other<S: Os>(
    p: *mut u8,
    tid: usize,
    seg: *mut Segment,
    page: *mut Page,
    arena: &Arena<S>,
) {
    // SAFETY: per the contract; another thread's page is only read here through its atomics
    // and its live bitmap bias (fixed when the segment was set up), and a live bit keeps the
    // page from being retired until the owner has collected our push.
    unsafe {
        let pg = &*page;
        let flags = pg.flags();
        let ours = (*seg).thread_id.load(Ordering::Relaxed) == tid;
        if FREE_HOOK.load(Ordering::Relaxed) == 0 {
            // A live `p` is a block's start: the one `may_be_sampled` asks about.
            if ours {
                if flags == FLAG_SAMPLED && !pg.may_be_sampled(p as usize) {
                    return free_local(p, tid, seg, page, arena);
                }
            } else if flags & !(FLAG_IN_FULL | FLAG_HAS_ALIGNED | FLAG_SAMPLED) == 0
                && pg.is_live(p as usize)
                && (flags & FLAG_SAMPLED == 0 || !pg.may_be_sampled(p as usize))
            {
                return free_remote(arena, pg, p);
            }
        }
        free_generic(p, tid, seg, page, arena)
    }
}

#[cold]
#[inline(never)]
fn free_invalid<S: Os>(p: *mut u8, arena: &Arena<S>) {
    if p.is_null() {
        return;
    }
    arena.os.fatal(
        "free(): invalid pointer (not allocated by oxalloc, or already released)",
        p as usize,
    )
}

/// Ends the process for a free of `p`, which is not live in `page`: a block start that is not
/// live was freed already (or, if the page carved it and never handed it out, is on its free
/// list all the same: both read as a double free); anything else is not a block at all.
#[cold]
#[inline(never)]
fn not_live<S: Os>(arena: &Arena<S>, page: &Page, p: *mut u8) -> ! {
    let what = if !page.assigned.get() || !page.contains(p as usize) {
        "free(): invalid pointer (not a live block)"
    } else if page.block_start(p as usize) as *mut u8 != p {
        "free(): invalid pointer (inside a block)"
    } else if (p as usize - page.start.get() as usize) / page.block_size.get()
        >= page.capacity.get() as usize
    {
        "free(): invalid pointer (never allocated)"
    } else {
        "free(): double free detected"
    };
    arena.os.fatal(what, p as usize)
}

/// Frees on any thread, for any kind of block; or, when a [`FreeHook`] is installed, hands `p`
/// to it.
#[cold]
#[inline(never)]
unsafe fn free_generic<S: Os>(
    p: *mut u8,
    tid: usize,
    seg: *mut Segment,
    page: *mut Page,
    arena: &Arena<S>,
) {
    let hook = FREE_HOOK.load(Ordering::Relaxed);
    if hook != 0 {
        // SAFETY: only `set_free_hook` stores a nonzero value, and it stores a `FreeHook`;
        // `p` is in a registered segment, as the hook's contract asks.
        return unsafe { core::mem::transmute::<usize, FreeHook>(hook)(p) };
    }
    // SAFETY: per the contract.
    unsafe { free_checked(arena, seg, page, p, tid) }
}

/// The generic path proper: validates `p`, then frees it as its owner or as another thread.
///
/// # Safety
/// As for [`free_generic`].
unsafe fn free_checked<S: Os>(
    arena: &Arena<S>,
    seg: *mut Segment,
    page: *mut Page,
    p: *mut u8,
    tid: usize,
) {
    // SAFETY: `seg` is a registered segment (checked by the caller) and `page` is one of its
    // page slots.
    unsafe {
        if (*page).flags() & FLAG_SAMPLED != 0 {
            free_sampled(arena, seg, page, p, tid);
        }
        if (*seg).kind == SegmentKind::Huge {
            let pg = &*page;
            let live = (*seg).thread_id.load(Ordering::Acquire) == owner::HUGE_LIVE;
            if secure::is_secure(pg) && p == pg.start.get() && live {
                check_seal(arena, pg, p, pg.requested.get(), false);
            }
            return huge_free(arena, seg, p);
        }
        let pg = &*page;
        if !pg.assigned.get() || !pg.contains(p as usize) || !pg.is_live(p as usize) {
            not_live(arena, pg, p);
        }
        let block = pg.block_of(p as usize);
        let owner = (*seg).thread_id.load(Ordering::Relaxed) == tid;
        if secure::is_secure(pg) {
            check_seal(arena, pg, block.cast(), pg.block_size.get(), !owner);
            secure::fill(block.cast(), pg.block_size.get(), pg.secure_level());
        }
        if owner {
            pg.clear_live(p as usize);
            let heap = pg.heap.load(Ordering::Relaxed) as *mut Heap<S>;
            if secure::is_secure(pg) {
                return quarantine(heap, block);
            }
            free_owned(heap, page, block);
        } else {
            free_remote(arena, pg, p);
        }
    }
}

/// Secure mode: ends the process if the seal of the block being freed was overwritten. A
/// block that holds the fill of a freed block instead was freed already, by another thread
/// whose free is still on its way to the owner (`remote`: so is this one): a double free.
///
/// # Safety
/// `block` is a used block of `page`, `len` bytes long.
#[cold]
unsafe fn check_seal<S: Os>(
    arena: &Arena<S>,
    page: &Page,
    block: *mut u8,
    len: usize,
    remote: bool,
) {
    // SAFETY: per the contract.
    if unsafe { secure::check(page, block, len) }.is_err() {
        // SAFETY: as above.
        let freed = unsafe { secure::check_fill(block, len, page.secure_level()) }.is_ok();
        let what = match (freed, remote) {
            (true, true) => "free(): double free detected (block freed twice by other threads)",
            (true, false) => "free(): double free detected",
            _ => {
                "free(): heap overflow detected (the bytes past the block's size were overwritten)"
            }
        };
        arena.os.fatal(what, block as usize);
    }
}

/// Secure mode: the owner's freed block waits in the heap's quarantine; the one that waited
/// longest is freed for real.
///
/// # Safety
/// `block` is a block of one of `heap`'s pages whose live bit is already clear; the calling
/// thread owns the heap.
unsafe fn quarantine<S: Os>(heap: *mut Heap<S>, block: *mut Block) {
    // SAFETY: per the contract; quarantined blocks are blocks of our pages that nobody uses.
    unsafe {
        if let Some(old) = (*heap).quarantine.push(block as usize) {
            release_quarantined(heap, old);
        }
    }
}

/// Secure mode: frees every block waiting in the heap's quarantine (thread exit, trim).
///
/// # Safety
/// The calling thread owns `heap`.
pub(crate) unsafe fn flush_quarantine<S: Os>(heap: *mut Heap<S>) {
    // SAFETY: per the contract; see `quarantine`.
    unsafe {
        let mut q = core::mem::take(&mut (*heap).quarantine);
        q.drain(|old| release_quarantined(heap, old));
    }
}

/// Secure mode, at process exit: checks that no block waiting in the calling thread's
/// quarantine was written after it was freed (the process ends with a message if one was),
/// without freeing them.
///
/// # Safety
/// `heap` is the calling thread's heap (or a sentinel, which has none).
pub unsafe fn check_quarantine<S: Os>(heap: *mut Heap<S>) {
    // SAFETY: per the contract the heap and its quarantined blocks are ours.
    unsafe {
        if (*heap).is_sentinel() {
            return;
        }
        let q = &(*heap).quarantine;
        for old in q.pointers() {
            let page = Segment::page_of(Segment::of(old as *const u8), old as *const u8);
            if secure::check_fill(
                old as *const u8,
                (*page).block_size.get(),
                (*page).secure_level(),
            )
            .is_err()
            {
                (*heap).arena.os.fatal(
                    "free(): write after free detected (a block in quarantine was written)",
                    old,
                );
            }
        }
    }
}

/// Frees a block that leaves the quarantine, after checking that nothing wrote to it while
/// it waited (a write after free).
///
/// # Safety
/// As for `quarantine`, for a block that was in the quarantine.
unsafe fn release_quarantined<S: Os>(heap: *mut Heap<S>, old: usize) {
    // SAFETY: per the contract.
    unsafe {
        let page = Segment::page_of(Segment::of(old as *const u8), old as *const u8);
        if secure::check_fill(
            old as *const u8,
            (*page).block_size.get(),
            (*page).secure_level(),
        )
        .is_err()
        {
            (*heap).arena.os.fatal(
                "free(): write after free detected (a block in quarantine was written)",
                old,
            );
        }
        free_owned(heap, page, old as *mut Block);
    }
}

/// A free on a page that may hold sampled blocks of the heap profile: forgets the block's sample
/// if it has one; the owner clears the page's flag once no sample is left in it.
#[cold]
#[inline(never)]
unsafe fn free_sampled<S: Os>(
    arena: &Arena<S>,
    seg: *mut Segment,
    page: *mut Page,
    p: *mut u8,
    tid: usize,
) {
    // SAFETY: `page` is a page slot of the registered segment `seg`; only its owner writes it.
    unsafe {
        let pg = &*page;
        let block = if pg.assigned.get() && pg.contains(p as usize) {
            pg.block_start(p as usize) as usize
        } else {
            p as usize
        };
        let huge = (*seg).kind == SegmentKind::Huge;
        // A huge block's page may have moved with realloc, leaving the hint behind: huge blocks
        // always look in the table.
        if !huge && !pg.may_be_sampled(block) {
            return;
        }
        if arena.profile.release(block) && !huge && (*seg).thread_id.load(Ordering::Relaxed) == tid
        {
            arena.profile.unflag_after_release(pg, block);
        }
    }
}

/// Frees a live pointer `p` of a page another thread owns (or nobody owns, when abandoned):
/// the `thread_free` protocol. The pointer itself is pushed (the owner clears its live bit when
/// it collects it).
unsafe fn free_remote<S: Os>(arena: &Arena<S>, page: &Page, p: *mut u8) {
    // SAFETY: the block is being freed by us; its word at `p` is ours to link with.
    match unsafe { page.thread_free.push(p as usize) } {
        Ok(Pushed::Listed) => {}
        Ok(Pushed::Notify) => {
            // SAFETY: in state FREEING the owner cannot tear its heap down (it waits for us),
            // and a page is only ever put in USE_DELAYED by a live owning heap.
            unsafe {
                let heap = page.heap.load(Ordering::Acquire) as *const Heap<S>;
                debug_assert!(!heap.is_null());
                (*heap).delayed.push(p as usize);
            }
            page.thread_free.end_notify();
        }
        Err(head) => arena.os.fatal(
            "free(): double free detected (block freed twice by other threads)",
            head,
        ),
    }
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
/// empty ones. `block` is the block's start, and its live bit is already clear.
///
/// # Safety
/// `page` belongs to `heap`, owned by the calling thread, and `block` is one of its used blocks.
pub(crate) unsafe fn free_owned<S: Os>(heap: *mut Heap<S>, page: *mut Page, block: *mut Block) {
    // SAFETY: per the contract.
    unsafe {
        (*page).push_local(block);
        if (*page).flags() & FLAG_IN_FULL != 0 {
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
    let mut freed = unsafe { (*heap).delayed.take_all() };
    while freed != 0 {
        // SAFETY: pointers on the delayed list are live pointers of our pages, pushed with plain
        // links by `free_remote`; after the take the list is ours alone.
        unsafe {
            let next = link_read(freed);
            let seg = Segment::of(freed as *const u8);
            let page = Segment::page_of(seg, freed as *const u8);
            if !(*page).clear_live(freed) {
                (*heap).arena.os.fatal(
                    "free(): double free detected (block freed twice by other threads)",
                    freed,
                );
            }
            free_owned(heap, page, (*page).block_of(freed));
            freed = next;
        }
    }
}

/// A function that takes over every free reaching the generic path (the front end's valgrind
/// mode, which makes all frees miss the owner's fast path). It is given a pointer into a
/// registered segment, and frees the block itself with [`free_unhooked`].
pub type FreeHook = unsafe fn(*mut u8);

/// The installed [`FreeHook`] as an address (0: none), so that installing it needs no lock.
static FREE_HOOK: AtomicUsize = AtomicUsize::new(0);

/// Installs the free hook, before any block is freed (it is never removed). Costs nothing on
/// the owner's fast path: only the generic path reads it.
pub fn set_free_hook(hook: FreeHook) {
    FREE_HOOK.store(hook as usize, Ordering::Relaxed);
}

/// [`free`] without the hook, always on the generic path (validation, then the owner's or
/// another thread's free): what a free hook calls.
///
/// # Safety
/// As for [`free`].
pub unsafe fn free_unhooked<S: Os>(arena: &Arena<S>, p: *mut u8, tid: usize) {
    // Null is not in the map; `free_invalid` returns for it.
    if !SEGMENT_MAP.contains(p) {
        return free_invalid(p, arena);
    }
    // SAFETY: the map says a segment header is at the masked address.
    unsafe {
        let seg = Segment::of(p);
        free_checked(arena, seg, Segment::page_of(seg, p), p, tid)
    }
}
