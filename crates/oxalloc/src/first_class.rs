//! First-class heaps for programs: the raw functions the C API exports as `ox_heap_*`, and
//! [`Heap`], the Rust type (an `allocator_api2` allocator, see `allocator`).
//!
//! A heap belongs to the thread that created it: only that thread allocates from it, deletes
//! or destroys it (each call checks, and ends the process with a message otherwise), while any
//! thread may free its blocks with `free`. When the thread exits, the heaps it still has are
//! deleted (their blocks stay valid). The core's `first_class` module owns the mechanism.

use crate::thread::{self, ThreadHeap};
use crate::{ARENA, HEAPS};
use core::marker::PhantomData;
use core::ptr::{self, NonNull};
use oxalloc_core::alloc as core_alloc;
use oxalloc_core::first_class as core_heap;
use oxalloc_core::os::Os;

/// A new heap owned by the calling thread; null when out of memory, and in valgrind mode
/// (`OXALLOC_VALGRIND=1`), whose blocks carry headers and redzones that heaps do not make.
pub fn new() -> *mut ThreadHeap {
    crate::init::process_init();
    if crate::valgrind::active() {
        return ptr::null_mut();
    }
    let mut own = thread::current();
    // SAFETY: `own` is this thread's heap slot; binding gives the thread a real heap.
    unsafe {
        if (*own).is_sentinel() {
            own = thread::bind_thread();
            if own.is_null() {
                return ptr::null_mut();
            }
        }
        core_heap::create(&HEAPS, own)
    }
}

/// Ends the process unless `heap` is a first-class heap of the calling thread.
#[inline]
fn check(heap: *mut ThreadHeap, what: &str) {
    // SAFETY: reading the owner and parent of a heap struct (which is never unmapped) races
    // with nothing: they change only when the owning thread creates or retires it.
    let ok = !heap.is_null()
        && unsafe { (*heap).owner() == thread::thread_id() && (*heap).is_first_class() };
    if !ok {
        ARENA.os.fatal(what, heap as usize);
    }
}

/// Deletes a heap: its blocks stay valid, to be freed later with `free` from any thread.
///
/// # Safety
/// `heap` came from [`new`] on this thread and is not used again.
pub unsafe fn delete(heap: *mut ThreadHeap) {
    check(heap, "ox_heap_delete(): not a live heap of this thread");
    // SAFETY: checked: a first-class heap of this thread.
    unsafe { core_heap::delete(&HEAPS, heap) }
}

/// Destroys a heap and every block allocated from it, at once; such blocks must not be used
/// or freed afterwards, on any thread.
///
/// # Safety
/// `heap` came from [`new`] on this thread and is not used again, nor are its blocks.
pub unsafe fn destroy(heap: *mut ThreadHeap) {
    check(heap, "ox_heap_destroy(): not a live heap of this thread");
    // SAFETY: checked: a first-class heap of this thread.
    unsafe { core_heap::destroy(&HEAPS, heap) }
}

/// `size` bytes from `heap`, 16-byte aligned; null when out of memory.
///
/// # Safety
/// `heap` is a live heap from [`new`] on this thread.
pub unsafe fn malloc(heap: *mut ThreadHeap, size: usize) -> *mut u8 {
    check(heap, "ox_heap_malloc(): not a live heap of this thread");
    // SAFETY: checked: the heap is this thread's.
    unsafe { core_alloc::malloc(heap, size) }
}

/// `size` zeroed bytes from `heap`; null when out of memory.
///
/// # Safety
/// As for [`malloc`].
pub unsafe fn malloc_zeroed(heap: *mut ThreadHeap, size: usize) -> *mut u8 {
    check(heap, "ox_heap_calloc(): not a live heap of this thread");
    // SAFETY: as in `malloc`.
    unsafe { core_alloc::malloc_zeroed(heap, size) }
}

/// `size` bytes from `heap` aligned to `align` (a power of two up to 2 MiB), zeroed if `zero`;
/// null when out of memory or for a larger alignment.
///
/// # Safety
/// As for [`malloc`]; `align` is a power of two.
pub unsafe fn malloc_aligned(
    heap: *mut ThreadHeap,
    size: usize,
    align: usize,
    zero: bool,
) -> *mut u8 {
    check(
        heap,
        "ox_heap_aligned_alloc(): not a live heap of this thread",
    );
    // SAFETY: as in `malloc`.
    unsafe { core_alloc::malloc_aligned(heap, size, align, zero) }
}

/// Resizes a block (of any heap); a block that moves is allocated from `heap`. Null on
/// failure, with `p` left valid.
///
/// # Safety
/// As for [`malloc`]; `p` is null or a live block from this allocator.
pub unsafe fn realloc(heap: *mut ThreadHeap, p: *mut u8, size: usize) -> *mut u8 {
    check(heap, "ox_heap_realloc(): not a live heap of this thread");
    // SAFETY: as in `malloc`, and per the contract.
    unsafe { core_alloc::realloc(heap, p, size) }
}

/// A heap of the calling thread, for Rust: allocate from it through
/// [`allocator_api2::alloc::Allocator`] (so `allocator_api2::vec::Vec::new_in(&heap)` works on
/// stable Rust; with the `nightly` feature the same trait is `core::alloc::Allocator`, for
/// `std`'s collections), and drop it to free everything it holds at once.
///
/// ```
/// use allocator_api2::{boxed::Box, vec::Vec};
///
/// let heap = oxalloc::Heap::new().expect("out of memory");
/// let mut v = Vec::new_in(&heap);
/// v.extend(0..1000u32);
/// let b = Box::new_in([7u8; 100], &heap);
/// assert_eq!(v.iter().sum::<u32>(), 499_500);
/// assert_eq!(b[99], 7);
/// drop((v, b));
/// drop(heap); // frees every block still in the heap
/// ```
///
/// The blocks are ordinary oxalloc blocks: any thread may free them (a `Vec<T, &Heap>` cannot
/// leave the heap's thread, but a raw pointer can be freed with [`crate::free`]). Dropping the
/// heap *destroys* it: every block still allocated from it is freed, which borrowing makes
/// safe, since a collection in the heap holds a `&Heap`; [`Heap::delete`] instead keeps the
/// blocks valid (for raw pointers that outlive it). A heap is not `Send`: it belongs to the
/// thread that created it, and if that thread ends with the heap still alive (leaked), the
/// allocator deletes it at thread exit.
///
/// ```compile_fail
/// let heap = oxalloc::Heap::new().unwrap();
/// std::thread::spawn(move || drop(heap)); // error: `Heap` cannot be sent between threads
/// ```
pub struct Heap {
    raw: NonNull<ThreadHeap>,
    /// Not `Send` nor `Sync`: only the creating thread may allocate from the heap.
    _thread: PhantomData<*mut ()>,
}

impl Heap {
    /// A new heap owned by the calling thread; `None` when out of memory, and in valgrind mode
    /// (`OXALLOC_VALGRIND=1`), which has no first-class heaps.
    pub fn new() -> Option<Heap> {
        NonNull::new(new()).map(|raw| Heap {
            raw,
            _thread: PhantomData,
        })
    }

    /// The raw heap (what the C API calls `ox_heap_t *`).
    pub fn as_raw(&self) -> *mut ThreadHeap {
        self.raw.as_ptr()
    }

    /// Deletes the heap, leaving its blocks valid: each is freed later with [`crate::free`]
    /// (from any thread). Blocks whose collection borrowed the heap are gone already.
    pub fn delete(self) {
        let raw = self.raw.as_ptr();
        core::mem::forget(self);
        // SAFETY: the heap is ours and not used again.
        unsafe { delete(raw) }
    }

    /// Destroys the heap, freeing every block still allocated from it (the same as dropping
    /// it).
    pub fn destroy(self) {
        drop(self)
    }
}

impl Drop for Heap {
    fn drop(&mut self) {
        // SAFETY: the heap is ours (it is not `Send`), and nothing borrows it any more, so
        // none of its blocks is reachable from safe code.
        unsafe { destroy(self.raw.as_ptr()) }
    }
}

impl core::fmt::Debug for Heap {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("Heap").field(&self.raw).finish()
    }
}
