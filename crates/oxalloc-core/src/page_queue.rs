//! Page queues: a heap keeps one doubly linked queue of pages per size class, plus one queue of
//! full pages. The first page of a small class's queue is also cached in the heap's direct table,
//! which is what the malloc fast path reads.
//!
//! Invariant: a page is in at most one queue; `first.prev` and `last.next` are null.

use crate::page::Page;
use core::ptr;

/// An intrusive queue of pages linked through `Page::next` / `Page::prev`.
#[repr(C)]
pub struct PageQueue {
    /// Head of the queue: the page the heap allocates from.
    pub first: *mut Page,
    /// Tail of the queue.
    pub last: *mut Page,
}

impl PageQueue {
    /// An empty queue.
    pub const EMPTY: PageQueue = PageQueue {
        first: ptr::null_mut(),
        last: ptr::null_mut(),
    };

    /// Whether the queue has no pages.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.first.is_null()
    }

    /// Adds `page` at the head.
    ///
    /// # Safety
    /// `page` is valid and in no queue.
    pub unsafe fn push_front(&mut self, page: *mut Page) {
        // SAFETY: the caller guarantees `page` is valid; queue members are valid pages.
        unsafe {
            debug_assert!((*page).next.is_null() && (*page).prev.is_null());
            (*page).next = self.first;
            (*page).prev = ptr::null_mut();
            if self.first.is_null() {
                self.last = page;
            } else {
                (*self.first).prev = page;
            }
        }
        self.first = page;
    }

    /// Adds `page` at the tail.
    ///
    /// # Safety
    /// `page` is valid and in no queue.
    pub unsafe fn push_back(&mut self, page: *mut Page) {
        // SAFETY: as in `push_front`.
        unsafe {
            debug_assert!((*page).next.is_null() && (*page).prev.is_null());
            (*page).prev = self.last;
            (*page).next = ptr::null_mut();
            if self.last.is_null() {
                self.first = page;
            } else {
                (*self.last).next = page;
            }
        }
        self.last = page;
    }

    /// Unlinks `page`.
    ///
    /// # Safety
    /// `page` is in this queue.
    pub unsafe fn remove(&mut self, page: *mut Page) {
        // SAFETY: `page` and its neighbours are members of this queue, hence valid.
        unsafe {
            let (prev, next) = ((*page).prev, (*page).next);
            if prev.is_null() {
                debug_assert!(self.first == page);
                self.first = next;
            } else {
                (*prev).next = next;
            }
            if next.is_null() {
                debug_assert!(self.last == page);
                self.last = prev;
            } else {
                (*next).prev = prev;
            }
            (*page).next = ptr::null_mut();
            (*page).prev = ptr::null_mut();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_remove_keeps_links() {
        let mut pages = [Page::EMPTY, Page::EMPTY, Page::EMPTY];
        let [a, b, c] = pages.each_mut().map(|p| p as *mut Page);
        let mut q = PageQueue::EMPTY;
        unsafe {
            q.push_back(a);
            q.push_back(b);
            q.push_front(c);
            assert_eq!((q.first, q.last), (c, b));
            q.remove(a);
            assert_eq!((*c).next, b);
            assert_eq!((*b).prev, c);
            q.remove(c);
            q.remove(b);
        }
        assert!(q.is_empty() && q.last.is_null());
    }
}
