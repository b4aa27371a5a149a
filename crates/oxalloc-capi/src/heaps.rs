//! First-class heaps for C (`ox_heap_*` in `oxalloc.h`), with the C semantics of the malloc
//! family they mirror: NULL with `ENOMEM` when memory runs out or a size overflows,
//! `ox_heap_realloc(h, p, 0)` frees `p` and returns NULL (as `realloc` does), an alignment
//! that is not a power of two is `EINVAL`. A heap is used from the thread that created it
//! (anything else ends the process with a message); its blocks are freed with `free` from any
//! thread. The mechanism is the `oxalloc` crate's `first_class`.

use core::ffi::c_void;
use core::ptr;
use engine::first_class as heap;
use engine::thread::ThreadHeap;
use libc::{EINVAL, ENOMEM};
use oxalloc_os::sys::set_errno;

fn enomem_if_null(p: *mut u8) -> *mut c_void {
    if p.is_null() {
        set_errno(ENOMEM);
    }
    p.cast()
}

/// `ox_heap_new`: a new heap owned by the calling thread; NULL with `ENOMEM` on failure.
pub unsafe fn heap_new() -> *mut c_void {
    enomem_if_null(heap::new().cast())
}

/// `ox_heap_delete`: deletes the heap; its blocks stay valid until freed. NULL does nothing.
pub unsafe fn heap_delete(h: *mut c_void) {
    if !h.is_null() {
        // SAFETY: C's contract: a live heap of this thread, not used again.
        unsafe { heap::delete(h.cast::<ThreadHeap>()) }
    }
}

/// `ox_heap_destroy`: frees the heap and every block allocated from it. NULL does nothing.
pub unsafe fn heap_destroy(h: *mut c_void) {
    if !h.is_null() {
        // SAFETY: C's contract: a live heap of this thread, not used again, nor its blocks.
        unsafe { heap::destroy(h.cast::<ThreadHeap>()) }
    }
}

/// `ox_heap_malloc`: `size` bytes from the heap, 16-byte aligned.
pub unsafe fn heap_malloc(h: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: C's contract (the heap is checked).
    enomem_if_null(unsafe { heap::malloc(h.cast(), size) })
}

/// `ox_heap_calloc`: `n * size` zeroed bytes from the heap; NULL with `ENOMEM` on overflow.
pub unsafe fn heap_calloc(h: *mut c_void, n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        // SAFETY: C's contract (the heap is checked).
        Some(total) => enomem_if_null(unsafe { heap::malloc_zeroed(h.cast(), total) }),
        None => enomem_if_null(ptr::null_mut()),
    }
}

/// `ox_heap_realloc`: resizes `p` (a block of any heap); a block that moves is allocated from
/// the heap. `(h, NULL, n)` is `ox_heap_malloc(h, n)`; `(h, p, 0)` frees `p` and returns NULL.
pub unsafe fn heap_realloc(h: *mut c_void, p: *mut c_void, size: usize) -> *mut c_void {
    if !p.is_null() && size == 0 {
        // SAFETY: `p` is a live block per C's contract.
        unsafe { engine::free(p.cast()) };
        return ptr::null_mut();
    }
    // SAFETY: C's contract (the heap is checked).
    enomem_if_null(unsafe { heap::realloc(h.cast(), p.cast(), size) })
}

/// `ox_heap_aligned_alloc`: a block of the heap aligned to `align`; NULL with `EINVAL` when
/// `align` is not a power of two.
pub unsafe fn heap_aligned_alloc(h: *mut c_void, align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        set_errno(EINVAL);
        return ptr::null_mut();
    }
    // SAFETY: C's contract (the heap is checked); `align` is a power of two.
    enomem_if_null(unsafe { heap::malloc_aligned(h.cast(), size, align, false) })
}
