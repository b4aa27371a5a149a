//! snmalloc, preloadable: `LD_PRELOAD=.../libpeer_snmalloc.so program`. Exports the names
//! snmalloc's own libsnmallocshim.so defines for C (override/malloc.cc), plus glibc's
//! `__libc_*` entry points, forwarded to the `sn_` functions of snmalloc-sys's `libc-api` build.
//! C++ operators new/delete are left to libstdc++, which calls malloc/free.
#![no_std]
#![allow(clippy::missing_safety_doc)]

include!("../../common.rs");

use snmalloc_sys as _; // links the static snmalloc shim

extern "C" {
    fn sn_malloc(size: usize) -> Ptr;
    fn sn_calloc(count: usize, size: usize) -> Ptr;
    fn sn_realloc(p: Ptr, size: usize) -> Ptr;
    fn sn_reallocarray(p: Ptr, count: usize, size: usize) -> Ptr;
    fn sn_free(p: Ptr);
    fn sn_free_sized(p: Ptr, size: usize);
    fn sn_free_aligned_sized(p: Ptr, align: usize, size: usize);
    fn sn_posix_memalign(out: *mut Ptr, align: usize, size: usize) -> Int;
    fn sn_aligned_alloc(align: usize, size: usize) -> Ptr;
    fn sn_memalign(align: usize, size: usize) -> Ptr;
    fn sn_valloc(size: usize) -> Ptr;
    fn sn_pvalloc(size: usize) -> Ptr;
    fn sn_malloc_usable_size(p: Ptr) -> usize;
}

forward! {
    "malloc" => sn_malloc(size: usize) -> Ptr;
    "__libc_malloc" => sn_malloc(size: usize) -> Ptr;
    "calloc" => sn_calloc(n: usize, size: usize) -> Ptr;
    "__libc_calloc" => sn_calloc(n: usize, size: usize) -> Ptr;
    "realloc" => sn_realloc(p: Ptr, size: usize) -> Ptr;
    "__libc_realloc" => sn_realloc(p: Ptr, size: usize) -> Ptr;
    "reallocarray" => sn_reallocarray(p: Ptr, n: usize, size: usize) -> Ptr;
    "free" => sn_free(p: Ptr) -> ();
    "__libc_free" => sn_free(p: Ptr) -> ();
    "cfree" => sn_free(p: Ptr) -> ();
    "__libc_cfree" => sn_free(p: Ptr) -> ();
    "free_sized" => sn_free_sized(p: Ptr, size: usize) -> ();
    "free_aligned_sized" => sn_free_aligned_sized(p: Ptr, align: usize, size: usize) -> ();
    "posix_memalign" => sn_posix_memalign(out: *mut Ptr, align: usize, size: usize) -> Int;
    "__posix_memalign" => sn_posix_memalign(out: *mut Ptr, align: usize, size: usize) -> Int;
    "aligned_alloc" => sn_aligned_alloc(align: usize, size: usize) -> Ptr;
    "memalign" => sn_memalign(align: usize, size: usize) -> Ptr;
    "__libc_memalign" => sn_memalign(align: usize, size: usize) -> Ptr;
    "valloc" => sn_valloc(size: usize) -> Ptr;
    "__libc_valloc" => sn_valloc(size: usize) -> Ptr;
    "pvalloc" => sn_pvalloc(size: usize) -> Ptr;
    "__libc_pvalloc" => sn_pvalloc(size: usize) -> Ptr;
    "malloc_usable_size" => sn_malloc_usable_size(p: Ptr) -> usize;
}
