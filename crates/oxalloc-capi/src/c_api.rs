//! The C semantics of the malloc family on top of the `oxalloc` engine, following glibc:
//! argument checks, size overflow, `realloc(p, 0)`, alignment rules and `errno`.
//!
//! Every function here has the contract of the C function it implements (the pointers it is
//! given are null or blocks of this allocator, out-pointers are writable); they are exported by
//! [`crate::exports`].

use core::ffi::{c_int, c_void};
use core::ptr;
use libc::{EINVAL, ENOMEM};
use oxalloc_os::sys::set_errno;

const PTR_SIZE: usize = core::mem::size_of::<*const c_void>();

/// The page size `valloc` and `pvalloc` align to.
pub const PAGE: usize = 4096;

#[inline(always)]
fn enomem_if_null(p: *mut u8) -> *mut c_void {
    if p.is_null() {
        set_errno(ENOMEM);
    }
    p.cast()
}

/// `malloc`: a block of at least `size` bytes, 16-byte aligned; NULL with `ENOMEM` on failure.
#[inline(always)]
pub unsafe fn malloc(size: usize) -> *mut c_void {
    // SAFETY: malloc is always safe to call.
    let p = unsafe { engine::malloc_fast(size) };
    if !p.is_null() {
        return p.cast();
    }
    // SAFETY: as above.
    unsafe { malloc_slow(size) }
}

/// The slow path with C's error reporting, reached by a tail call so that the fast path needs
/// no stack frame.
#[cold]
#[inline(never)]
unsafe fn malloc_slow(size: usize) -> *mut c_void {
    // SAFETY: always safe to call.
    enomem_if_null(unsafe { engine::malloc_slow(size) })
}

/// `free`: releases `p` (NULL does nothing); never changes `errno`.
#[inline(always)]
pub unsafe fn free(p: *mut c_void) {
    // SAFETY: C's contract: `p` is null or from this allocator.
    unsafe { engine::free(p.cast()) }
}

/// `calloc`: `n * size` zeroed bytes; NULL with `ENOMEM` when the product overflows.
pub unsafe fn calloc(n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        // SAFETY: always safe to call.
        Some(total) => enomem_if_null(unsafe { engine::malloc_zeroed(total) }),
        None => enomem_if_null(ptr::null_mut()),
    }
}

/// `realloc`: resizes `p`, keeping its contents; `realloc(NULL, n)` is `malloc(n)`,
/// `realloc(p, 0)` frees `p` and returns NULL (as glibc does); on failure the old block stays
/// valid and `errno` is `ENOMEM`.
pub unsafe fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    if !p.is_null() && size == 0 {
        // SAFETY: `p` is a live block per C's contract.
        unsafe { engine::free(p.cast()) };
        return ptr::null_mut();
    }
    // SAFETY: per C's contract.
    enomem_if_null(unsafe { engine::realloc(p.cast(), size) })
}

/// `reallocarray`: `realloc(p, n * size)`, with NULL and `ENOMEM` when the product overflows
/// (the old block stays valid).
pub unsafe fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        // SAFETY: per C's contract.
        Some(total) => unsafe { realloc(p, total) },
        None => enomem_if_null(ptr::null_mut()),
    }
}

/// Aligned allocation shared by the memalign family; `align` is a power of two.
#[inline]
unsafe fn aligned(align: usize, size: usize) -> *mut c_void {
    // SAFETY: `align` is a power of two.
    enomem_if_null(unsafe { engine::malloc_aligned(size, align, false) })
}

/// `posix_memalign`: stores a block aligned to `align` in `*out` and returns 0; returns
/// `EINVAL` (leaving `*out` alone) when `align` is not a power of two multiple of
/// `sizeof(void *)`, `ENOMEM` when memory runs out. On failure `errno` is set to the returned
/// error.
pub unsafe fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    if !align.is_power_of_two() || align % PTR_SIZE != 0 {
        set_errno(EINVAL);
        return EINVAL;
    }
    // SAFETY: `align` is a power of two.
    let p = unsafe { aligned(align, size) };
    if p.is_null() {
        // `aligned` has set errno to ENOMEM.
        return ENOMEM;
    }
    // SAFETY: the caller passes a writable pointer slot.
    unsafe { *out = p };
    0
}

/// `aligned_alloc`: a block aligned to `align`; NULL with `EINVAL` when `align` is not a
/// power of two.
pub unsafe fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        set_errno(EINVAL);
        return ptr::null_mut();
    }
    // SAFETY: checked above.
    unsafe { aligned(align, size) }
}

/// `memalign`: like `aligned_alloc`, but an alignment that is not a power of two is rounded up
/// to one (as glibc does); NULL with `EINVAL` when no power of two is that large.
pub unsafe fn memalign(align: usize, size: usize) -> *mut c_void {
    if align > usize::MAX / 2 + 1 {
        set_errno(EINVAL);
        return ptr::null_mut();
    }
    let align = align.max(1).next_power_of_two();
    // SAFETY: a power of two.
    unsafe { aligned(align, size) }
}

/// `valloc`: a page-aligned block.
pub unsafe fn valloc(size: usize) -> *mut c_void {
    // SAFETY: a power of two.
    unsafe { aligned(PAGE, size) }
}

/// `pvalloc`: a page-aligned block of `size` rounded up to whole pages (at least one).
pub unsafe fn pvalloc(size: usize) -> *mut c_void {
    match size.checked_add(PAGE - 1) {
        // SAFETY: a power of two.
        Some(s) => unsafe { aligned(PAGE, (s & !(PAGE - 1)).max(PAGE)) },
        None => enomem_if_null(ptr::null_mut()),
    }
}

/// `malloc_usable_size`: the bytes usable in `p` (0 for NULL); aborts on a foreign pointer.
pub unsafe fn malloc_usable_size(p: *mut c_void) -> usize {
    // SAFETY: per C's contract; invalid pointers are reported.
    unsafe { engine::usable_size(p.cast()) }
}

/// C23's `free_sized`: `free`, after checking that `size` can be the size `p` was allocated
/// with (it must not exceed the block, nor be below half of it); aborts naming `p` otherwise.
pub unsafe fn free_sized(p: *mut c_void, size: usize) {
    // SAFETY: per C's contract; a pointer that is not live is reported by the check.
    unsafe {
        engine::check_free_size(p.cast(), size, true);
        engine::free(p.cast())
    }
}

/// C23's `free_aligned_sized`: `free`, after checking that `p` has the alignment and that
/// `size` fits the block (an aligned block may be larger than asked, so a smaller size passes).
pub unsafe fn free_aligned_sized(p: *mut c_void, align: usize, size: usize) {
    if !p.is_null() && (!align.is_power_of_two() || p as usize & (align - 1) != 0) {
        oxalloc_os::sys::fatal(
            "free_aligned_sized(): the alignment does not match the block",
            p as usize,
        );
    }
    // SAFETY: per C's contract; a pointer that is not live is reported by the check.
    unsafe {
        engine::check_free_size(p.cast(), size, false);
        engine::free(p.cast())
    }
}
