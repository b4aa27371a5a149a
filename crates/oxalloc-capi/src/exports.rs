//! The exported symbols: every function of [`crate::c_api`] and [`crate::glibc`] as `ox_<name>`
//! (always, declared in `include/oxalloc.h`) and, with the `override` feature (the default),
//! under its standard name and glibc's internal `__libc_*` aliases.
//!
//! The C++ `operator delete`s are exported here too, under their mangled names only (they are no
//! C API, so they have no `ox_` name and are not in `oxalloc.h`); the `operator new`s are
//! assembly stubs defined in `crate::cxx` and exported by `build.rs`.
//!
//! `tests/header.rs` checks that the `ox_*` symbols of liboxalloc.so are exactly the functions
//! `oxalloc.h` declares, and that every C++ operator is exported.

use crate::glibc::{Mallinfo, Mallinfo2};
use crate::{c_api, glibc, heaps, profile, visit};
use core::ffi::{c_char, c_int, c_void};
use visit::VisitFn;

/// Exports `$m::$f` under each `ox_` name and, with the `override` feature, each standard name.
macro_rules! export {
    ($m:ident::$f:ident $args:tt -> $r:ty; [$($ox:ident),*] [$($sys:ident),*]) => {
        $( export_fn! { $ox, $m, $f, $args, $r } )*
        $( #[cfg(feature = "override")] export_fn! { $sys, $m, $f, $args, $r } )*
    };
}

macro_rules! export_fn {
    ($name:ident, $m:ident, $f:ident, ($($a:ident : $t:ty),*), $r:ty) => {
        #[doc = concat!(
            "The exported `", stringify!($name), "`: [`", stringify!($m), "::", stringify!($f),
            "`](crate::", stringify!($m), "::", stringify!($f), ")."
        )]
        #[no_mangle]
        pub unsafe extern "C" fn $name($($a: $t),*) -> $r {
            // SAFETY: the C caller upholds the function's documented contract.
            unsafe { $m::$f($($a),*) }
        }
    };
}

export!(c_api::malloc(size: usize) -> *mut c_void; [ox_malloc] [malloc, __libc_malloc]);
export!(c_api::free(p: *mut c_void) -> (); [ox_free] [free, __libc_free, cfree]);
export!(c_api::calloc(n: usize, size: usize) -> *mut c_void; [ox_calloc] [calloc, __libc_calloc]);
export!(c_api::realloc(p: *mut c_void, size: usize) -> *mut c_void; [ox_realloc] [realloc, __libc_realloc]);
export!(c_api::reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void; [ox_reallocarray] [reallocarray]);
export!(c_api::posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int; [ox_posix_memalign] [posix_memalign]);
export!(c_api::aligned_alloc(align: usize, size: usize) -> *mut c_void; [ox_aligned_alloc] [aligned_alloc]);
export!(c_api::memalign(align: usize, size: usize) -> *mut c_void; [ox_memalign] [memalign, __libc_memalign]);
export!(c_api::valloc(size: usize) -> *mut c_void; [ox_valloc] [valloc, __libc_valloc]);
export!(c_api::pvalloc(size: usize) -> *mut c_void; [ox_pvalloc] [pvalloc, __libc_pvalloc]);
export!(c_api::malloc_usable_size(p: *mut c_void) -> usize; [ox_malloc_usable_size] [malloc_usable_size]);
export!(c_api::free_sized(p: *mut c_void, size: usize) -> (); [ox_free_sized] [free_sized]);
export!(c_api::free_aligned_sized(p: *mut c_void, align: usize, size: usize) -> (); [ox_free_aligned_sized] [free_aligned_sized]);
export!(glibc::malloc_trim(pad: usize) -> c_int; [ox_malloc_trim] [malloc_trim]);
export!(glibc::mallinfo() -> Mallinfo; [ox_mallinfo] [mallinfo]);
export!(glibc::mallinfo2() -> Mallinfo2; [ox_mallinfo2] [mallinfo2]);
export!(glibc::malloc_stats() -> (); [ox_malloc_stats] [malloc_stats]);
export!(glibc::malloc_info(options: c_int, fp: *mut libc::FILE) -> c_int; [ox_malloc_info] [malloc_info]);
export!(glibc::mallopt(param: c_int, value: c_int) -> c_int; [ox_mallopt] [mallopt]);
export!(glibc::stats_json(buf: *mut c_char, len: usize) -> usize; [ox_stats_json] []);
export!(glibc::stats_print() -> (); [ox_stats_print] []);
export!(visit::heap_visit(flags: c_int, visit: Option<VisitFn>, arg: *mut c_void) -> c_int; [ox_heap_visit] []);
export!(profile::profile_dump(path: *const c_char) -> c_int; [ox_profile_dump] []);

// First-class heaps: `ox_` names only.
export!(heaps::heap_new() -> *mut c_void; [ox_heap_new] []);
export!(heaps::heap_delete(heap: *mut c_void) -> (); [ox_heap_delete] []);
export!(heaps::heap_destroy(heap: *mut c_void) -> (); [ox_heap_destroy] []);
export!(heaps::heap_malloc(heap: *mut c_void, size: usize) -> *mut c_void; [ox_heap_malloc] []);
export!(heaps::heap_calloc(heap: *mut c_void, n: usize, size: usize) -> *mut c_void; [ox_heap_calloc] []);
export!(heaps::heap_realloc(heap: *mut c_void, p: *mut c_void, size: usize) -> *mut c_void; [ox_heap_realloc] []);
export!(heaps::heap_aligned_alloc(heap: *mut c_void, align: usize, size: usize) -> *mut c_void; [ox_heap_aligned_alloc] []);

// C++'s operator delete, in libstdc++'s list (`nm -D libstdc++.so.6`): plain and array, each
// unsized, sized, nothrow, aligned, aligned sized and aligned nothrow.
#[cfg(oxalloc_cxx)]
#[allow(non_snake_case)] // the mangled names
mod cxx_delete {
    use super::*;
    use crate::cxx;
    export!(cxx::delete(p: *mut c_void) -> (); [] [_ZdlPv, _ZdaPv]);
    export!(cxx::delete_sized(p: *mut c_void, size: usize) -> (); [] [_ZdlPvm, _ZdaPvm]);
    export!(cxx::delete_nothrow(p: *mut c_void, nothrow: *const c_void) -> (); [] [_ZdlPvRKSt9nothrow_t, _ZdaPvRKSt9nothrow_t]);
    export!(cxx::delete_aligned(p: *mut c_void, align: usize) -> (); [] [_ZdlPvSt11align_val_t, _ZdaPvSt11align_val_t]);
    export!(cxx::delete_aligned_sized(p: *mut c_void, size: usize, align: usize) -> (); [] [_ZdlPvmSt11align_val_t, _ZdaPvmSt11align_val_t]);
    export!(cxx::delete_aligned_nothrow(p: *mut c_void, align: usize, nothrow: *const c_void) -> (); [] [_ZdlPvSt11align_val_tRKSt9nothrow_t, _ZdaPvSt11align_val_tRKSt9nothrow_t]);
}
