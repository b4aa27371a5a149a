//! One intrusive doubly linked list for every registry and queue of the allocator: page queues,
//! a heap's segments with free page slots, the registry of segments, the abandoned segments,
//! and the registry of heaps.
//!
//! The links live inside the elements (a [`Links`] field), so a list never allocates. An
//! element type may sit in several lists at once through several `Links` fields; the marker type
//! `K` of [`Linked<K>`] says which field a list uses.
//!
//! Invariants of a `List` (checked by [`List::check`]):
//! - `first` is null iff `last` is null iff `len == 0`;
//! - `first.prev` and `last.next` are null;
//! - following `next` from `first` reaches `last` in `len - 1` steps, and `prev` mirrors `next`.

use core::marker::PhantomData;
use core::ptr;

/// The links an element carries for one list.
#[repr(C)]
pub struct Links<T> {
    next: *mut T,
    prev: *mut T,
}

impl<T> Links<T> {
    /// Links of an element in no list.
    pub const UNLINKED: Links<T> = Links {
        next: ptr::null_mut(),
        prev: ptr::null_mut(),
    };
}

impl<T> Default for Links<T> {
    fn default() -> Self {
        Self::UNLINKED
    }
}

/// Elements that can be linked into a `List<Self, K>`.
///
/// # Safety
/// `links` must return a pointer to a `Links<Self>` field inside `*this`, the same field for
/// every call, and no other list kind may use that field.
pub unsafe trait Linked<K>: Sized {
    /// The links field of `this` used by lists of kind `K`.
    ///
    /// # Safety
    /// `this` points to a valid element.
    unsafe fn links(this: *mut Self) -> *mut Links<Self>;
}

/// An intrusive doubly linked list of `T`, through the links selected by `K`.
pub struct List<T: Linked<K>, K> {
    first: *mut T,
    last: *mut T,
    len: usize,
    kind: PhantomData<K>,
}

impl<T: Linked<K>, K> List<T, K> {
    /// An empty list.
    pub const fn new() -> Self {
        List {
            first: ptr::null_mut(),
            last: ptr::null_mut(),
            len: 0,
            kind: PhantomData,
        }
    }

    /// The first element, or null.
    #[inline(always)]
    pub fn first(&self) -> *mut T {
        self.first
    }

    /// The last element, or null.
    #[inline]
    pub fn last(&self) -> *mut T {
        self.last
    }

    /// Number of elements.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the list has no elements.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.first.is_null()
    }

    /// The element after `e` (null at the end).
    ///
    /// # Safety
    /// `e` is in this list.
    #[inline]
    pub unsafe fn next(e: *mut T) -> *mut T {
        // SAFETY: per the contract `e` is a valid element, so its links are readable.
        unsafe { (*T::links(e)).next }
    }

    /// Adds `e` at the front.
    ///
    /// # Safety
    /// `e` is valid, in no list of kind `K`, and stays valid while it is in this one.
    pub unsafe fn push_front(&mut self, e: *mut T) {
        // SAFETY: `e` and every member are valid elements (contract and list invariant).
        unsafe {
            let l = T::links(e);
            debug_assert!((*l).next.is_null() && (*l).prev.is_null() && self.first != e);
            (*l).next = self.first;
            (*l).prev = ptr::null_mut();
            if self.first.is_null() {
                self.last = e;
            } else {
                (*T::links(self.first)).prev = e;
            }
        }
        self.first = e;
        self.len += 1;
    }

    /// Adds `e` at the back.
    ///
    /// # Safety
    /// As for [`List::push_front`].
    pub unsafe fn push_back(&mut self, e: *mut T) {
        // SAFETY: as in `push_front`.
        unsafe {
            let l = T::links(e);
            debug_assert!((*l).next.is_null() && (*l).prev.is_null() && self.first != e);
            (*l).prev = self.last;
            (*l).next = ptr::null_mut();
            if self.last.is_null() {
                self.first = e;
            } else {
                (*T::links(self.last)).next = e;
            }
        }
        self.last = e;
        self.len += 1;
    }

    /// Unlinks `e`.
    ///
    /// # Safety
    /// `e` is in this list.
    pub unsafe fn remove(&mut self, e: *mut T) {
        // SAFETY: `e` and its neighbours are members of this list, hence valid.
        unsafe {
            let l = T::links(e);
            let (prev, next) = ((*l).prev, (*l).next);
            if prev.is_null() {
                debug_assert!(self.first == e, "element not in this list");
                self.first = next;
            } else {
                (*T::links(prev)).next = next;
            }
            if next.is_null() {
                debug_assert!(self.last == e, "element not in this list");
                self.last = prev;
            } else {
                (*T::links(next)).prev = prev;
            }
            (*l).next = ptr::null_mut();
            (*l).prev = ptr::null_mut();
        }
        self.len -= 1;
    }

    /// Removes and returns the first element, or null.
    pub fn pop_front(&mut self) -> *mut T {
        let e = self.first;
        if !e.is_null() {
            // SAFETY: `e` is the first member.
            unsafe { self.remove(e) };
        }
        e
    }

    /// Checks the list's invariants (walks it), panicking with the first one broken.
    pub fn check(&self) {
        assert_eq!(
            self.first.is_null(),
            self.last.is_null(),
            "first/last disagree"
        );
        assert_eq!(self.first.is_null(), self.len == 0, "length disagrees");
        let mut prev: *mut T = ptr::null_mut();
        let mut e = self.first;
        let mut n = 0;
        while !e.is_null() {
            assert!(n < self.len, "list is longer than its length (a cycle?)");
            // SAFETY: members are valid elements.
            let l = unsafe { &*T::links(e) };
            assert!(l.prev == prev, "prev link of element {n} is wrong");
            prev = e;
            e = l.next;
            n += 1;
        }
        assert!(prev == self.last, "last is not the tail");
        assert_eq!(n, self.len, "length disagrees with the links");
    }
}

impl<T: Linked<K>, K> Default for List<T, K> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    struct Node {
        a: Links<Node>,
        b: Links<Node>,
    }
    struct A;
    struct B;
    // SAFETY: each kind uses its own field.
    unsafe impl Linked<A> for Node {
        unsafe fn links(this: *mut Self) -> *mut Links<Self> {
            // SAFETY: `this` is valid per the contract.
            unsafe { ptr::addr_of_mut!((*this).a) }
        }
    }
    // SAFETY: as above.
    unsafe impl Linked<B> for Node {
        unsafe fn links(this: *mut Self) -> *mut Links<Self> {
            // SAFETY: `this` is valid per the contract.
            unsafe { ptr::addr_of_mut!((*this).b) }
        }
    }

    #[test]
    fn two_lists_through_one_element() {
        let mut nodes: Vec<Node> = (0..4)
            .map(|_| Node {
                a: Links::UNLINKED,
                b: Links::UNLINKED,
            })
            .collect();
        let p: Vec<*mut Node> = nodes.iter_mut().map(|n| n as *mut Node).collect();
        let mut la: List<Node, A> = List::new();
        let mut lb: List<Node, B> = List::new();
        // SAFETY: the nodes outlive the lists and are linked once per kind.
        unsafe {
            for &n in &p {
                la.push_back(n);
                lb.push_front(n);
            }
            la.check();
            lb.check();
            assert_eq!((la.first(), la.last()), (p[0], p[3]));
            assert_eq!((lb.first(), lb.last()), (p[3], p[0]));
            la.remove(p[1]);
            assert_eq!(List::<Node, A>::next(p[0]), p[2]);
            la.check();
            assert_eq!(lb.len(), 4, "the other list is untouched");
            assert_eq!(la.pop_front(), p[0]);
            la.remove(p[3]);
            la.remove(p[2]);
            assert!(la.is_empty());
            la.check();
            lb.check();
        }
    }
}
