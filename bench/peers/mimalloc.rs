// The exports of both mimalloc peers (included by mimalloc2/src/lib.rs and mimalloc3/src/lib.rs):
// the names mimalloc's own `MI_MALLOC_OVERRIDE` build defines on Linux (alloc-override.c),
// forwarded to mimalloc's `mi_` functions: the C and glibc entry points, the C23 sized frees,
// and the C++ operators new/delete by their mangled names.

use libmimalloc_sys as _; // links the static libmimalloc

extern "C" {
    fn mi_malloc(size: usize) -> Ptr;
    fn mi_calloc(count: usize, size: usize) -> Ptr;
    fn mi_realloc(p: Ptr, size: usize) -> Ptr;
    fn mi_reallocarray(p: Ptr, count: usize, size: usize) -> Ptr;
    fn mi_free(p: Ptr);
    fn mi_free_size(p: Ptr, size: usize);
    fn mi_free_size_aligned(p: Ptr, size: usize, align: usize);
    fn mi_free_aligned(p: Ptr, align: usize);
    fn mi_posix_memalign(out: *mut Ptr, align: usize, size: usize) -> Int;
    fn mi_aligned_alloc(align: usize, size: usize) -> Ptr;
    fn mi_memalign(align: usize, size: usize) -> Ptr;
    fn mi_valloc(size: usize) -> Ptr;
    fn mi_pvalloc(size: usize) -> Ptr;
    fn mi_usable_size(p: Ptr) -> usize;
    fn mi_new(size: usize) -> Ptr;
    fn mi_new_nothrow(size: usize) -> Ptr;
    fn mi_new_aligned(size: usize, align: usize) -> Ptr;
    fn mi_new_aligned_nothrow(size: usize, align: usize) -> Ptr;
}

unsafe fn free_aligned_sized(p: Ptr, align: usize, size: usize) {
    unsafe { mi_free_size_aligned(p, size, align) }
}
unsafe fn new_nothrow(size: usize, _tag: Ptr) -> Ptr {
    unsafe { mi_new_nothrow(size) }
}
unsafe fn new_aligned_nothrow(size: usize, align: usize, _tag: Ptr) -> Ptr {
    unsafe { mi_new_aligned_nothrow(size, align) }
}
unsafe fn free_nothrow(p: Ptr, _tag: Ptr) {
    unsafe { mi_free(p) }
}
unsafe fn free_aligned_nothrow(p: Ptr, align: usize, _tag: Ptr) {
    unsafe { mi_free_aligned(p, align) }
}
unsafe fn free_sized_aligned_cxx(p: Ptr, size: usize, align: usize) {
    unsafe { mi_free_size_aligned(p, size, align) }
}

forward! {
    "malloc" => mi_malloc(size: usize) -> Ptr;
    "__libc_malloc" => mi_malloc(size: usize) -> Ptr;
    "calloc" => mi_calloc(n: usize, size: usize) -> Ptr;
    "__libc_calloc" => mi_calloc(n: usize, size: usize) -> Ptr;
    "realloc" => mi_realloc(p: Ptr, size: usize) -> Ptr;
    "__libc_realloc" => mi_realloc(p: Ptr, size: usize) -> Ptr;
    "reallocarray" => mi_reallocarray(p: Ptr, n: usize, size: usize) -> Ptr;
    "free" => mi_free(p: Ptr) -> ();
    "__libc_free" => mi_free(p: Ptr) -> ();
    "cfree" => mi_free(p: Ptr) -> ();
    "__libc_cfree" => mi_free(p: Ptr) -> ();
    "free_sized" => mi_free_size(p: Ptr, size: usize) -> ();
    "free_aligned_sized" => free_aligned_sized(p: Ptr, align: usize, size: usize) -> ();
    "posix_memalign" => mi_posix_memalign(out: *mut Ptr, align: usize, size: usize) -> Int;
    "__posix_memalign" => mi_posix_memalign(out: *mut Ptr, align: usize, size: usize) -> Int;
    "aligned_alloc" => mi_aligned_alloc(align: usize, size: usize) -> Ptr;
    "memalign" => mi_memalign(align: usize, size: usize) -> Ptr;
    "__libc_memalign" => mi_memalign(align: usize, size: usize) -> Ptr;
    "valloc" => mi_valloc(size: usize) -> Ptr;
    "__libc_valloc" => mi_valloc(size: usize) -> Ptr;
    "pvalloc" => mi_pvalloc(size: usize) -> Ptr;
    "__libc_pvalloc" => mi_pvalloc(size: usize) -> Ptr;
    "malloc_usable_size" => mi_usable_size(p: Ptr) -> usize;
    // C++ (64-bit mangling), as in mimalloc's alloc-override.c
    "_Znwm" => mi_new(size: usize) -> Ptr;
    "_Znam" => mi_new(size: usize) -> Ptr;
    "_ZnwmRKSt9nothrow_t" => new_nothrow(size: usize, tag: Ptr) -> Ptr;
    "_ZnamRKSt9nothrow_t" => new_nothrow(size: usize, tag: Ptr) -> Ptr;
    "_ZnwmSt11align_val_t" => mi_new_aligned(size: usize, align: usize) -> Ptr;
    "_ZnamSt11align_val_t" => mi_new_aligned(size: usize, align: usize) -> Ptr;
    "_ZnwmSt11align_val_tRKSt9nothrow_t" => new_aligned_nothrow(size: usize, align: usize, tag: Ptr) -> Ptr;
    "_ZnamSt11align_val_tRKSt9nothrow_t" => new_aligned_nothrow(size: usize, align: usize, tag: Ptr) -> Ptr;
    "_ZdlPv" => mi_free(p: Ptr) -> ();
    "_ZdaPv" => mi_free(p: Ptr) -> ();
    "_ZdlPvm" => mi_free_size(p: Ptr, size: usize) -> ();
    "_ZdaPvm" => mi_free_size(p: Ptr, size: usize) -> ();
    "_ZdlPvSt11align_val_t" => mi_free_aligned(p: Ptr, align: usize) -> ();
    "_ZdaPvSt11align_val_t" => mi_free_aligned(p: Ptr, align: usize) -> ();
    "_ZdlPvmSt11align_val_t" => free_sized_aligned_cxx(p: Ptr, size: usize, align: usize) -> ();
    "_ZdaPvmSt11align_val_t" => free_sized_aligned_cxx(p: Ptr, size: usize, align: usize) -> ();
    "_ZdlPvRKSt9nothrow_t" => free_nothrow(p: Ptr, tag: Ptr) -> ();
    "_ZdaPvRKSt9nothrow_t" => free_nothrow(p: Ptr, tag: Ptr) -> ();
    "_ZdlPvSt11align_val_tRKSt9nothrow_t" => free_aligned_nothrow(p: Ptr, align: usize, tag: Ptr) -> ();
    "_ZdaPvSt11align_val_tRKSt9nothrow_t" => free_aligned_nothrow(p: Ptr, align: usize, tag: Ptr) -> ();
}
