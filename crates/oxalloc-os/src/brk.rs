//! The program break as a memory source: the tutorials' `sbrk` heap, kept at production
//! strength. Ranges are carved from the top of the break (grown in whole pages); returned ranges
//! go on a first-fit list of free spans kept sorted by address and coalesced with their
//! neighbours; when the top span is free the break moves back down. Each free span stores its
//! header (`size`, `next`) in its own first bytes, like the tutorials' block headers.
//!
//! The break is shared with anything else in the process that calls `sbrk`, so before growing or
//! shrinking it we check that it is where we left it; if not, we start a new run at the new
//! break and never shrink below someone else's memory.
//!
//! Invariants: free spans are disjoint, sorted, non-adjacent (adjacent ones are merged) and lie
//! in `[base, end)`; `end` is the break as we last set it.

use core::ptr::{self, NonNull};
use oxalloc_core::os::{Mapping, OS_PAGE};
use oxalloc_core::util::align::align_up;
use oxalloc_core::util::sync::SpinLock;

/// Header written at the start of a free span.
#[repr(C)]
struct FreeSpan {
    size: usize,
    next: *mut FreeSpan,
}

struct State {
    /// Lowest address we ever took from the break (0 before the first use).
    base: usize,
    /// The break as we last set it.
    end: usize,
    /// Free spans, sorted by address.
    free: *mut FreeSpan,
}

/// The program-break source.
pub struct Brk {
    state: SpinLock<State>,
}

// SAFETY: the raw pointers in `State` are only touched under the lock.
unsafe impl Send for State {}

fn current_break() -> usize {
    // SAFETY: sbrk(0) only reads the break.
    unsafe { libc::sbrk(0) as usize }
}

impl Brk {
    /// A new source; the break is not touched until the first mapping.
    pub const fn new() -> Self {
        Brk {
            state: SpinLock::new(State {
                base: 0,
                end: 0,
                free: ptr::null_mut(),
            }),
        }
    }

    /// Whether `p` lies in memory this source took from the break.
    pub fn owns(&self, p: *const u8) -> bool {
        let st = self.state.lock();
        st.base != 0 && (p as usize) >= st.base && (p as usize) < st.end
    }

    /// Carves `size` bytes aligned to `align`: first fit in the free spans, else by growing the
    /// break. `None` when the break cannot grow.
    pub fn map(&self, size: usize, align: usize) -> Option<Mapping> {
        let mut st = self.state.lock();
        // SAFETY: spans in the list are free memory inside our break, owned by this source.
        unsafe {
            let mut prev: *mut FreeSpan = ptr::null_mut();
            let mut span = st.free;
            while !span.is_null() {
                let (s, e, next) = (span as usize, span as usize + (*span).size, (*span).next);
                let a = align_up(s, align);
                if a.checked_add(size).is_some_and(|end| end <= e) {
                    if prev.is_null() {
                        st.free = next;
                    } else {
                        (*prev).next = next;
                    }
                    if a > s {
                        insert(&mut st, s, a - s);
                    }
                    if a + size < e {
                        insert(&mut st, a + size, e - (a + size));
                    }
                    return Some(Mapping {
                        ptr: NonNull::new(a as *mut u8)?,
                        zeroed: false,
                    });
                }
                prev = span;
                span = next;
            }
        }
        // Grow the break.
        let cur = current_break();
        if cur != st.end {
            // First use, or someone else moved the break: start a new run above it.
            if st.base == 0 {
                st.base = align_up(cur, OS_PAGE);
            }
            st.end = cur;
        }
        let start = align_up(st.end, align.max(OS_PAGE));
        let new_end = start.checked_add(size)?;
        // SAFETY: brk only moves the break; failure leaves it unchanged.
        if unsafe { libc::brk(new_end as *mut libc::c_void) } != 0 {
            return None;
        }
        let gap_start = align_up(st.end, OS_PAGE);
        if start > gap_start {
            // SAFETY: the gap is fresh memory between the old and the new break, owned by us.
            unsafe { insert(&mut st, gap_start, start - gap_start) };
        }
        st.end = new_end;
        Some(Mapping {
            ptr: NonNull::new(start as *mut u8)?,
            zeroed: true,
        })
    }

    /// Takes a range back: purges it, adds it to the free spans, and lowers the break if the top
    /// of the break is now free.
    ///
    /// # Safety
    /// The range came from [`Brk::map`] and is unused.
    pub unsafe fn unmap(&self, ptr: NonNull<u8>, size: usize) {
        let start = ptr.as_ptr() as usize;
        // SAFETY: the range is ours and unused; purging keeps it mapped.
        unsafe { libc::madvise(start as *mut libc::c_void, size, libc::MADV_DONTNEED) };
        let mut st = self.state.lock();
        // SAFETY: as above.
        unsafe { insert(&mut st, start, size) };
        // Shrink the break while the last span reaches it and the break is still ours.
        // SAFETY: list members are valid spans.
        unsafe {
            let mut prev: *mut FreeSpan = ptr::null_mut();
            let mut last = st.free;
            while !last.is_null() && !(*last).next.is_null() {
                prev = last;
                last = (*last).next;
            }
            if last.is_null() || last as usize + (*last).size != st.end || current_break() != st.end
            {
                return;
            }
            let new_end = last as usize;
            if libc::brk(new_end as *mut libc::c_void) != 0 {
                return;
            }
            if prev.is_null() {
                st.free = ptr::null_mut();
            } else {
                (*prev).next = ptr::null_mut();
            }
            st.end = new_end;
        }
    }

    /// Takes the lock for `fork()` unless the calling thread holds it already; returns
    /// whether it took it.
    pub fn lock_for_fork(&self) -> bool {
        self.state.lock_for_fork()
    }

    /// Releases the lock after `fork()` if `taken` (in the child: always).
    ///
    /// # Safety
    /// In the parent, `taken` came from [`Brk::lock_for_fork`] before this fork; in the child,
    /// no other thread exists.
    pub unsafe fn unlock_after_fork(&self, taken: bool) {
        if taken {
            // SAFETY: per the contract.
            unsafe { self.state.force_unlock() };
        }
    }

    /// The current top of our break and the bytes on the free list (for tests and reports).
    pub fn usage(&self) -> (usize, usize) {
        let st = self.state.lock();
        let mut free = 0;
        let mut span = st.free;
        while !span.is_null() {
            // SAFETY: list members are valid spans.
            unsafe {
                free += (*span).size;
                span = (*span).next;
            }
        }
        (st.end, free)
    }
}

impl Default for Brk {
    fn default() -> Self {
        Self::new()
    }
}

/// Inserts `[start, start+size)` into the sorted free list, merging with adjacent spans.
///
/// # Safety
/// The range is free memory owned by the source, at least 16 bytes, disjoint from the list.
unsafe fn insert(st: &mut State, start: usize, size: usize) {
    debug_assert!(size >= core::mem::size_of::<FreeSpan>());
    // SAFETY: list members are valid spans; `start` is writable memory we own.
    unsafe {
        let mut prev: *mut FreeSpan = ptr::null_mut();
        let mut next = st.free;
        while !next.is_null() && (next as usize) < start {
            prev = next;
            next = (*next).next;
        }
        debug_assert!(
            prev.is_null() || prev as usize + (*prev).size <= start,
            "overlapping free span"
        );
        let mut span = start as *mut FreeSpan;
        if !prev.is_null() && prev as usize + (*prev).size == start {
            (*prev).size += size;
            span = prev;
        } else {
            span.write(FreeSpan { size, next });
            if prev.is_null() {
                st.free = span;
            } else {
                (*prev).next = span;
            }
        }
        if !next.is_null() && span as usize + (*span).size == next as usize {
            (*span).size += (*next).size;
            (*span).next = (*next).next;
        }
    }
}
