//! Page queues: a heap's pages of each size class in one queue per bin, plus one queue of full
//! pages, and the *direct table* that maps a small request size straight to the first page of
//! its bin's queue, which is all the malloc fast path reads.
//!
//! Invariants (checked by [`PageQueues::check`]):
//! - `direct[i]` is the first page of `queues[bin_of(16 * i)]`, or the static [`EMPTY_PAGE`]
//!   (always, for a secure heap);
//! - every page in `queues[b]` (`b < FULL`) has bin `b` and no `FLAG_IN_FULL`; every page in
//!   `queues[FULL]` has `FLAG_IN_FULL`; a page is in at most one queue.

use crate::page::{InQueue, Page, FLAG_IN_FULL};
use crate::size_class::{bin_size, ALIGN, BIN_COUNT, DIRECT_COUNT, DIRECT_MAX};
use crate::util::list::List;

/// A queue of pages (through `Page::queue`).
pub type PageQueue = List<Page, InQueue>;

/// Index of the queue of full pages.
pub const FULL: usize = BIN_COUNT;

/// A page that never has a free block: what the direct entries of empty queues point at, and
/// every entry of the sentinel heap. It is never written: its `free` is null, so every path
/// that would modify a page goes to the slow path first, which never modifies the empty page
/// (it may be shared as any page is: `Page` is `Sync`).
pub struct EmptyPage(pub Page);

/// The one empty page of the process.
pub static EMPTY_PAGE: EmptyPage = EmptyPage(Page::EMPTY);

/// Address of [`EMPTY_PAGE`].
#[inline(always)]
pub fn empty_page() -> *mut Page {
    &EMPTY_PAGE.0 as *const Page as *mut Page
}

/// The pages of one heap.
#[repr(C)]
pub struct PageQueues {
    /// First page of the queue serving each request size up to `DIRECT_MAX`, by `(size+15)/16`.
    pub direct: [*mut Page; DIRECT_COUNT],
    /// Page queues by bin; `queues[FULL]` holds the full pages.
    pub queues: [PageQueue; BIN_COUNT + 1],
    /// A secure heap's queues: the direct table stays on the empty page, so every `malloc`
    /// takes the slow path (where secure mode does its work).
    pub secure: bool,
}

impl PageQueues {
    /// No pages: every direct entry points at the empty page.
    pub const fn new() -> Self {
        PageQueues {
            direct: [&EMPTY_PAGE.0 as *const Page as *mut Page; DIRECT_COUNT],
            queues: [const { PageQueue::new() }; BIN_COUNT + 1],
            secure: false,
        }
    }

    /// Points the direct entries of `bin` at the first page of its queue.
    pub fn update_direct(&mut self, bin: usize) {
        let size = bin_size(bin);
        if bin == 0 || size > DIRECT_MAX {
            return;
        }
        let first = self.queues[bin].first();
        let page = if first.is_null() || self.secure {
            empty_page()
        } else {
            first
        };
        for slot in &mut self.direct[direct_range(bin)] {
            *slot = page;
        }
    }

    /// Adds a page at the front of its bin's queue (it becomes the page malloc uses).
    ///
    /// # Safety
    /// `page` is a valid page of this heap in no queue.
    pub unsafe fn push_front(&mut self, page: *mut Page) {
        // SAFETY: per the contract.
        unsafe {
            let bin = (*page).bin.get() as usize;
            self.queues[bin].push_front(page);
            self.update_direct(bin);
        }
    }

    /// Adds a page at the back of its bin's queue.
    ///
    /// # Safety
    /// As for [`PageQueues::push_front`].
    pub unsafe fn push_back(&mut self, page: *mut Page) {
        // SAFETY: per the contract.
        unsafe {
            let bin = (*page).bin.get() as usize;
            self.queues[bin].push_back(page);
            if self.queues[bin].first() == page {
                self.update_direct(bin);
            }
        }
    }

    /// Unlinks a page from whichever queue holds it.
    ///
    /// # Safety
    /// `page` is in one of this heap's queues.
    pub unsafe fn remove(&mut self, page: *mut Page) {
        // SAFETY: per the contract.
        unsafe {
            if (*page).flags() & FLAG_IN_FULL != 0 {
                self.queues[FULL].remove(page);
            } else {
                let bin = (*page).bin.get() as usize;
                let was_first = self.queues[bin].first() == page;
                self.queues[bin].remove(page);
                if was_first {
                    self.update_direct(bin);
                }
            }
        }
    }

    /// Moves a page of its bin's queue to the full queue.
    ///
    /// # Safety
    /// `page` is in its bin's queue.
    pub unsafe fn move_to_full(&mut self, page: *mut Page) {
        // SAFETY: per the contract.
        unsafe {
            self.remove(page);
            (*page).add_flags(FLAG_IN_FULL);
            self.queues[FULL].push_back(page);
        }
    }

    /// Moves a page out of the full queue to the back of its bin's queue.
    ///
    /// # Safety
    /// `page` is in the full queue.
    pub unsafe fn move_from_full(&mut self, page: *mut Page) {
        // SAFETY: per the contract.
        unsafe {
            debug_assert!((*page).flags() & FLAG_IN_FULL != 0);
            self.queues[FULL].remove(page);
            (*page).remove_flags(FLAG_IN_FULL);
            self.push_back(page);
        }
    }

    /// Checks the invariants above and each queue's links, panicking with the first one broken.
    pub fn check(&self) {
        for bin in 1..BIN_COUNT {
            let q = &self.queues[bin];
            q.check();
            if bin_size(bin) <= DIRECT_MAX {
                let expect = if q.is_empty() || self.secure {
                    empty_page()
                } else {
                    q.first()
                };
                for i in direct_range(bin) {
                    let d = self.direct[i];
                    assert!(
                        d == expect,
                        "direct[{i}] is {d:p}, but the first page of bin {bin} is {expect:p}"
                    );
                }
            }
            let mut page = q.first();
            while !page.is_null() {
                // SAFETY: queue members are valid pages of this heap.
                let p = unsafe { &*page };
                assert_eq!(
                    p.bin.get() as usize,
                    bin,
                    "page {page:p} in the wrong queue"
                );
                assert_eq!(
                    p.flags() & FLAG_IN_FULL,
                    0,
                    "page {page:p} marked full in a bin queue"
                );
                // SAFETY: `page` is in this queue.
                page = unsafe { PageQueue::next(page) };
            }
        }
        let full = &self.queues[FULL];
        full.check();
        let mut page = full.first();
        while !page.is_null() {
            // SAFETY: as above.
            let p = unsafe { &*page };
            assert!(
                p.flags() & FLAG_IN_FULL != 0,
                "page {page:p} in the full queue is not marked full"
            );
            // SAFETY: `page` is in the full queue.
            page = unsafe { PageQueue::next(page) };
        }
    }
}

impl Default for PageQueues {
    fn default() -> Self {
        Self::new()
    }
}

/// The direct-table entries that map to `bin` (a bin of at most `DIRECT_MAX` bytes).
fn direct_range(bin: usize) -> core::ops::RangeInclusive<usize> {
    let low = if bin == 1 {
        0
    } else {
        bin_size(bin - 1) / ALIGN + 1
    };
    low..=bin_size(bin) / ALIGN
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::boxed::Box;

    #[test]
    fn queues_keep_the_direct_table_current() {
        let mut q = Box::new(PageQueues::new());
        let mut pages = [Page::EMPTY, Page::EMPTY, Page::EMPTY];
        for p in &pages {
            p.bin.set(2);
        }
        let [a, b, c] = pages.each_mut().map(|p| p as *mut Page);
        // SAFETY: the pages outlive the queues and are linked once.
        unsafe {
            q.push_back(a);
            q.push_back(b);
            q.push_front(c);
            assert_eq!(q.direct[2], c);
            q.check();
            q.move_to_full(c);
            assert_eq!(q.direct[2], a, "the next page serves the bin");
            q.check();
            q.move_from_full(c);
            assert_eq!(q.queues[2].last(), c);
            q.remove(a);
            q.remove(b);
            q.remove(c);
            assert_eq!(q.direct[2], empty_page());
            q.check();
        }
    }
}
