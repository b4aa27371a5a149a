//! The Allocator API: [`OxAlloc`] (the calling thread's heap) and [`Heap`] (a first-class heap)
//! implement `allocator_api2::alloc::Allocator`, which is `core::alloc::Allocator` itself with
//! the `nightly` feature (allocator-api2 then re-exports the standard trait).
//!
//! Zero-size layouts allocate nothing, as with the standard `Global`: `allocate` returns a
//! dangling pointer aligned to the layout and `deallocate` ignores it (allocator-api2's `Box`
//! deallocates zero-size values too, with such a pointer); growing one allocates. Alignments up
//! to 2 MiB are honoured; growing and shrinking go through `realloc` (in place when the block
//! has room), over-aligned blocks stay in place when they can and move otherwise.

use crate::first_class::Heap;
use crate::thread::{self, ThreadHeap};
use crate::OxAlloc;
use allocator_api2::alloc::{AllocError, Allocator};
use core::alloc::Layout;
use core::ptr::{self, NonNull};
use oxalloc_core::alloc as core_alloc;
use oxalloc_core::size_class::ALIGN;

/// Allocates `layout` from `heap` (the calling thread's heap or sentinel, or one of its
/// first-class heaps).
///
/// # Safety
/// `heap` is owned by the calling thread (or is its sentinel).
unsafe fn allocate(
    heap: *mut ThreadHeap,
    layout: Layout,
    zero: bool,
) -> Result<NonNull<[u8]>, AllocError> {
    if layout.size() == 0 {
        return Ok(NonNull::slice_from_raw_parts(dangling(layout), 0));
    }
    // SAFETY: per the contract; layout alignments are powers of two.
    let p = unsafe {
        match (layout.align() <= ALIGN, zero) {
            (true, false) => core_alloc::malloc(heap, layout.size()),
            (true, true) => core_alloc::malloc_zeroed(heap, layout.size()),
            (false, _) => core_alloc::malloc_aligned(heap, layout.size(), layout.align(), zero),
        }
    };
    NonNull::new(p)
        .map(|p| NonNull::slice_from_raw_parts(p, layout.size()))
        .ok_or(AllocError)
}

/// The non-null, aligned pointer that stands for a zero-size block (never dereferenced).
fn dangling(layout: Layout) -> NonNull<u8> {
    // SAFETY: an alignment is never zero.
    unsafe { NonNull::new_unchecked(ptr::without_provenance_mut(layout.align())) }
}

/// Frees `p`, allocated with `layout` (a zero-size one is no block).
///
/// # Safety
/// `p` was allocated with `layout` by one of these allocators and is not used again.
unsafe fn deallocate(p: NonNull<u8>, layout: Layout) {
    if layout.size() != 0 {
        // SAFETY: per the contract `p` is a live block.
        unsafe { crate::free(p.as_ptr()) }
    }
}

/// Resizes `p` (allocated with `old`) to `new`, zeroing the new tail if `zero`; a block that
/// moves is allocated from `heap`.
///
/// # Safety
/// As for [`allocate`]; `p` is a live block of this allocator with layout `old`, and
/// `new.align() == old.align()` or the caller accepts a move (Allocator's contract allows a
/// different alignment).
unsafe fn resize(
    heap: *mut ThreadHeap,
    p: NonNull<u8>,
    old: Layout,
    new: Layout,
    zero: bool,
) -> Result<NonNull<[u8]>, AllocError> {
    // SAFETY: (the whole body) per the contract; `p` is live, so its usable size is readable.
    unsafe {
        if old.size() == 0 || new.size() == 0 {
            let q = allocate(heap, new, zero)?;
            if old.size() != 0 {
                crate::free(p.as_ptr());
            }
            return Ok(q);
        }
        let q = if new.align() <= ALIGN && old.align() <= ALIGN {
            core_alloc::realloc(heap, p.as_ptr(), new.size())
        } else if p.as_ptr() as usize % new.align() == 0
            && crate::usable_size(p.as_ptr()) >= new.size()
        {
            p.as_ptr()
        } else {
            let q = allocate(heap, new, false)?.cast::<u8>().as_ptr();
            ptr::copy_nonoverlapping(p.as_ptr(), q, old.size().min(new.size()));
            crate::free(p.as_ptr());
            q
        };
        if q.is_null() {
            return Err(AllocError);
        }
        if zero && new.size() > old.size() {
            ptr::write_bytes(q.add(old.size()), 0, new.size() - old.size());
        }
        Ok(NonNull::slice_from_raw_parts(
            NonNull::new_unchecked(q),
            new.size(),
        ))
    }
}

// SAFETY: blocks stay valid until deallocated (the thread heap is never destroyed; its blocks
// outlive the thread); every block has at least the layout's size and alignment; `OxAlloc`
// holds no state, so all its values (and clones) are one allocator.
unsafe impl Allocator for OxAlloc {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: `current()` is this thread's heap or its sentinel.
        unsafe { allocate(thread::current(), layout, false) }
    }

    #[inline]
    fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: as above.
        unsafe { allocate(thread::current(), layout, true) }
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: Allocator's contract: `ptr` was allocated by this allocator with `layout`.
        unsafe { deallocate(ptr, layout) }
    }

    unsafe fn grow(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: Allocator's contract on `ptr` and the layouts; the heap is this thread's.
        unsafe { resize(thread::current(), ptr, old, new, false) }
    }

    unsafe fn grow_zeroed(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: as in `grow`.
        unsafe { resize(thread::current(), ptr, old, new, true) }
    }

    unsafe fn shrink(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: as in `grow`.
        unsafe { resize(thread::current(), ptr, old, new, false) }
    }
}

// SAFETY: blocks stay valid until deallocated or until the heap is dropped, which cannot happen
// while a collection borrows it (`&Heap` is the allocator collections hold); every block has at
// least the layout's size and alignment; `Heap` is not `Clone`, and being neither `Send` nor
// `Sync` it is only ever used on its own thread, as its raw functions require.
unsafe impl Allocator for Heap {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: the heap is this thread's (it cannot leave it).
        unsafe { allocate(self.as_raw(), layout, false) }
    }

    #[inline]
    fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: as above.
        unsafe { allocate(self.as_raw(), layout, true) }
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: Allocator's contract: `ptr` was allocated by this heap with `layout`.
        unsafe { deallocate(ptr, layout) }
    }

    unsafe fn grow(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: Allocator's contract on `ptr` and the layouts; the heap is this thread's.
        unsafe { resize(self.as_raw(), ptr, old, new, false) }
    }

    unsafe fn grow_zeroed(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: as in `grow`.
        unsafe { resize(self.as_raw(), ptr, old, new, true) }
    }

    unsafe fn shrink(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: as in `grow`.
        unsafe { resize(self.as_raw(), ptr, old, new, false) }
    }
}
