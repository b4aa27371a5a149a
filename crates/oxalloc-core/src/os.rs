//! The memory-source interface: the one narrow door between the core and the operating system.
//!
//! The core never makes a system call itself; it asks an [`Os`] for page-aligned ranges and hands
//! them back. Implementations live in `oxalloc-os` (mmap, the program break) and in the core's
//! tests (a fixed region). Every method must work while the allocator is in the middle of an
//! operation, so none of them may allocate or call back into the allocator.

use core::ptr::NonNull;

/// Size of an operating-system page as the core assumes it (x86-64 and aarch64 with 4 KiB pages).
pub const OS_PAGE: usize = 4096;

/// A range handed out by [`Os::map`].
#[derive(Clone, Copy, Debug)]
pub struct Mapping {
    /// Start of the range, aligned as requested.
    pub ptr: NonNull<u8>,
    /// Whether every byte of the range is known to read as zero (fresh anonymous memory).
    pub zeroed: bool,
}

/// What [`Os::remap_into`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemapInto {
    /// The pages moved; the old range is gone.
    Moved,
    /// The source cannot move these ranges; both are untouched.
    Unsupported,
    /// The kernel refused: the old range is untouched, the destination may be unmapped.
    Failed,
}

/// Where memory comes from.
///
/// # Safety
/// Implementations must return ranges that are readable and writable, aligned as asked, disjoint
/// from every other live range, and must never allocate through the allocator that uses them.
pub unsafe trait Os: Sync {
    /// Maps `size` bytes aligned to `align`. Both are multiples of [`OS_PAGE`] and `align` is a
    /// power of two. Returns `None` when the system has no memory left.
    fn map(&self, size: usize, align: usize) -> Option<Mapping>;

    /// Returns a range obtained from [`Os::map`] with the same `size`.
    ///
    /// # Safety
    /// `ptr..ptr+size` was mapped by this source and nothing uses it any more.
    unsafe fn unmap(&self, ptr: NonNull<u8>, size: usize);

    /// Gives the physical pages of a range back to the system while keeping the range usable.
    /// Returns true if the range now reads as zero (as after `MADV_DONTNEED` on anonymous
    /// memory), false if its contents are unspecified. `ptr` and `size` are multiples of
    /// [`OS_PAGE`].
    ///
    /// # Safety
    /// The range is part of a live mapping and holds nothing that is still needed.
    unsafe fn purge(&self, ptr: NonNull<u8>, size: usize) -> bool;

    /// Makes `size` bytes at `ptr` inaccessible (`accessible` false: a guard page) or readable
    /// and writable again. Returns false when the source cannot (the default: a fixed region).
    ///
    /// # Safety
    /// The range is part of a live mapping of this source, OS-page aligned, and (when made
    /// inaccessible) holds nothing anybody will touch.
    unsafe fn protect(&self, _ptr: NonNull<u8>, _size: usize, _accessible: bool) -> bool {
        false
    }

    /// Tries to grow or shrink a mapping in place to `new_size` without moving it.
    ///
    /// # Safety
    /// `ptr..ptr+old_size` was mapped by this source.
    unsafe fn remap_in_place(&self, _ptr: NonNull<u8>, _old_size: usize, _new_size: usize) -> bool {
        false
    }

    /// Moves a mapping to a new `align`-aligned address of `new_size` bytes without copying its
    /// pages (`mremap` with `MREMAP_FIXED`). Returns the new address, or `None` if the source
    /// cannot; the old range is gone on success and untouched on failure.
    ///
    /// # Safety
    /// `ptr..ptr+old_size` was mapped by this source and nothing else refers into it.
    unsafe fn remap_move(
        &self,
        _ptr: NonNull<u8>,
        _old_size: usize,
        _new_size: usize,
        _align: usize,
    ) -> Option<NonNull<u8>> {
        None
    }

    /// Moves a mapping's pages onto `dest..dest+new_size`, part of another mapping of this
    /// source that nothing uses (its contents are discarded), without copying them (`mremap`
    /// with `MREMAP_FIXED`). The default cannot.
    ///
    /// # Safety
    /// `ptr..ptr+old_size` was mapped by this source and nothing else refers into it;
    /// `dest..dest+new_size` is OS-page aligned, unused and ours.
    unsafe fn remap_into(
        &self,
        _ptr: NonNull<u8>,
        _old_size: usize,
        _dest: NonNull<u8>,
        _new_size: usize,
    ) -> RemapInto {
        RemapInto::Unsupported
    }

    /// A monotonic clock in milliseconds, cheap to read (for the purge delay).
    fn now_ms(&self) -> u64;

    /// A random word for hardening keys; need not be cryptographic, must not allocate.
    fn random(&self) -> usize;

    /// Reports a fatal heap error naming `ptr` in one line, then ends the process.
    fn fatal(&self, what: &str, ptr: usize) -> !;

    /// Fills `frames` with the calling thread's return addresses, innermost first, and returns
    /// how many it wrote (for sampled heap profiles, see `profile`). Must not take a lock that a
    /// `malloc` caller may hold; may allocate only if a nested `malloc` is harmless (the sampler
    /// does not sample while it records). The default records nothing.
    fn backtrace(&self, _frames: &mut [usize]) -> usize {
        0
    }
}
