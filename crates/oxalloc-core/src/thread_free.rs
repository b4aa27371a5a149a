//! The cross-thread free protocol: how a thread frees a block of a page another thread owns,
//! without a lock, and how the owner learns of it.
//!
//! A remote free pushes the block on the page's [`ThreadFree`] list (one compare-and-swap).
//! The owner takes the whole list when its page's own free lists run dry. A *full* page is not
//! looked at by its owner, so the owner first announces it with the state
//! [`delayed::USE_DELAYED`]; the next remote free then moves the state to
//! [`delayed::FREEING`], pushes the block on the owning heap's [`DelayedList`] instead, and ends
//! with [`ThreadFree::end_notify`] (state back to [`delayed::NORMAL`]); the owner drains that
//! list on its next slow path. While a notification is under way (`FREEING`) the owner waits
//! before changing the state, so it can never tear its heap down under a remote thread that is
//! pushing on the heap's list ([`delayed::NEVER`] is set at teardown, after which remote frees
//! only push on the page).
//!
//! States live in the low bits of the list head (blocks are 16-byte aligned). Links are plain
//! words written into the freed blocks before the push that publishes them (release), read by
//! the owner after the take (acquire). This file uses only `crate::util::sync`, so the loom
//! model in `loom/` compiles this very file against loom's atomics and checks it.

use crate::util::sync::{link_write, spin_hint, AtomicUsize, Ordering};

/// Delayed-free states, in the low bits of a page's [`ThreadFree`] word.
pub mod delayed {
    /// Remote frees push on the page's list.
    pub const NORMAL: usize = 0;
    /// The page is full: the next remote free must tell the owning heap.
    pub const USE_DELAYED: usize = 1;
    /// A remote thread is pushing on the owning heap's delayed list right now.
    pub const FREEING: usize = 2;
    /// The page has no heap (abandoned) or its heap is being torn down.
    pub const NEVER: usize = 3;
    /// Mask of the state bits.
    pub const MASK: usize = 3;
}

/// What a remote free did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Pushed {
    /// The block is on the page's list.
    Listed,
    /// The page asked to be told: the state is now `FREEING`; the caller must push the block on
    /// the owning heap's [`DelayedList`] and then call [`ThreadFree::end_notify`].
    Notify,
}

/// A page's list of blocks freed by other threads, with the delayed-free state.
#[repr(transparent)]
pub struct ThreadFree(AtomicUsize);

impl ThreadFree {
    /// An empty list in `state`.
    #[cfg(not(loom))]
    pub const fn new(state: usize) -> Self {
        ThreadFree(AtomicUsize::new(state))
    }

    /// An empty list in `state` (loom's atomics cannot be made in a `const fn`).
    #[cfg(loom)]
    pub fn new(state: usize) -> Self {
        ThreadFree(AtomicUsize::new(state))
    }

    /// The first block of the list (0 when empty), with acquire ordering so the links of every
    /// block on it can be read.
    #[inline]
    pub fn head(&self) -> usize {
        self.0.load(Ordering::Acquire) & !delayed::MASK
    }

    /// Whether the list is empty (a hint: another thread may push right after).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.load(Ordering::Relaxed) & !delayed::MASK == 0
    }

    /// The current state.
    #[inline]
    pub fn state(&self) -> usize {
        self.0.load(Ordering::Relaxed) & delayed::MASK
    }

    /// A remote free of `block`. `Err(block)` when `block` is already at the head of the list
    /// (freed twice by other threads, back to back).
    ///
    /// # Safety
    /// `block` is a block of this page that the calling thread frees: its first word is ours
    /// to write until the push publishes it.
    pub unsafe fn push(&self, block: usize) -> Result<Pushed, usize> {
        let mut tf = self.0.load(Ordering::Relaxed);
        loop {
            let state = tf & delayed::MASK;
            let head = tf & !delayed::MASK;
            let (new, pushed) = if state == delayed::USE_DELAYED {
                (head | delayed::FREEING, Pushed::Notify)
            } else {
                if head == block {
                    return Err(block);
                }
                // SAFETY: per the contract the block's first word is ours until published.
                unsafe { link_write(block, head) };
                (block | state, Pushed::Listed)
            };
            match self
                .0
                .compare_exchange_weak(tf, new, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return Ok(pushed),
                Err(now) => tf = now,
            }
        }
    }

    /// Ends a notification: state `FREEING` back to `NORMAL`.
    pub fn end_notify(&self) {
        let mut tf = self.0.load(Ordering::Relaxed);
        loop {
            debug_assert_eq!(tf & delayed::MASK, delayed::FREEING);
            let new = (tf & !delayed::MASK) | delayed::NORMAL;
            match self
                .0
                .compare_exchange_weak(tf, new, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(now) => tf = now,
            }
        }
    }

    /// Empties the list and sets `state`: for a page slot being set up, which no other thread
    /// pushes on (none of its blocks is live).
    pub fn reset(&self, state: usize) {
        debug_assert!(state & !delayed::MASK == 0);
        self.0.store(state, Ordering::Relaxed);
    }

    /// Takes the whole list, keeping the state (owner only). Returns its first block, or 0.
    pub fn take_all(&self) -> usize {
        let mut tf = self.0.load(Ordering::Relaxed);
        loop {
            if tf & !delayed::MASK == 0 {
                return 0;
            }
            match self.0.compare_exchange_weak(
                tf,
                tf & delayed::MASK,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return tf & !delayed::MASK,
                Err(now) => tf = now,
            }
        }
    }

    /// Sets the state (owner only), waiting out a remote thread that is mid-notification.
    pub fn set_state(&self, state: usize) {
        let mut tf = self.0.load(Ordering::Relaxed);
        loop {
            if tf & delayed::MASK == delayed::FREEING {
                spin_hint();
                tf = self.0.load(Ordering::Acquire);
                continue;
            }
            if tf & delayed::MASK == state {
                return;
            }
            let new = (tf & !delayed::MASK) | state;
            match self
                .0
                .compare_exchange_weak(tf, new, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(now) => tf = now,
            }
        }
    }
}

/// A heap's list of blocks of its full pages freed by other threads (plain links).
#[repr(transparent)]
pub struct DelayedList(AtomicUsize);

impl DelayedList {
    /// An empty list.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        DelayedList(AtomicUsize::new(0))
    }

    /// An empty list (loom's atomics cannot be made in a `const fn`).
    #[cfg(loom)]
    pub fn new() -> Self {
        DelayedList(AtomicUsize::new(0))
    }

    /// Whether the list is empty (a hint).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.load(Ordering::Relaxed) == 0
    }

    /// The first block (0 when empty), with acquire ordering so every link can be read.
    pub fn head(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }

    /// Pushes a block (a remote thread in state `FREEING` of the block's page).
    ///
    /// # Safety
    /// As for [`ThreadFree::push`].
    pub unsafe fn push(&self, block: usize) {
        let mut head = self.0.load(Ordering::Relaxed);
        loop {
            // SAFETY: per the contract.
            unsafe { link_write(block, head) };
            match self
                .0
                .compare_exchange_weak(head, block, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(now) => head = now,
            }
        }
    }

    /// Takes the whole list (owner only). Returns its first block, or 0.
    pub fn take_all(&self) -> usize {
        self.0.swap(0, Ordering::Acquire)
    }
}

impl Default for DelayedList {
    fn default() -> Self {
        Self::new()
    }
}
