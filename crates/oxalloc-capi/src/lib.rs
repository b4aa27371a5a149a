//! liboxalloc: the C allocation API on oxalloc, with glibc's semantics.
//!
//! Every function exists twice: as `ox_<name>` (always, declared in `include/oxalloc.h`) and,
//! with the default `override` feature, under its standard name (plus glibc's `__libc_*`
//! entry points), so that preloading or linking the library replaces the system allocator and
//! no pointer ever crosses between two allocators.
//!
//! Semantics follow glibc's documentation: 16-byte alignment; `malloc(0)` returns a unique
//! pointer; overflowing sizes return NULL with `errno = ENOMEM`; `realloc` failures leave the old
//! block valid; `posix_memalign` returns `EINVAL` for alignments that are not a power of two
//! multiple of `sizeof(void *)` and sets `errno` to the error it returns; `free` never changes
//! `errno`.
//!
//! Modules:
//! - [`c_api`]: the C semantics of the malloc family (argument checks, overflow, `errno`);
//! - [`glibc`]: glibc-compatible introspection (`mallinfo`, `mallinfo2`, `malloc_stats`,
//!   `malloc_info`, `mallopt`, `malloc_trim`) and oxalloc's own statistics output;
//! - [`visit`]: the heap walk (`ox_heap_visit`);
//! - [`profile`]: the sampled heap profile written on request (`ox_profile_dump`);
//! - [`heaps`]: first-class heaps (`ox_heap_new`, `ox_heap_malloc`, ..., `ox_heap_destroy`);
//! - `cxx` (x86-64 Linux, `override` feature): the replaceable C++ `operator new` and
//!   `operator delete`, under their mangled names;
//! - [`exports`]: the exported symbols, `ox_*` always and the standard names under the
//!   `override` feature.
//!
//! The library's SONAME is `liboxalloc.so.<major>` (set by `build.rs`).
#![no_std]
#![warn(missing_docs)]
#![allow(clippy::missing_safety_doc)]

pub mod c_api;
#[cfg(oxalloc_cxx)]
pub mod cxx;
pub mod exports;
pub mod glibc;
pub mod heaps;
pub mod profile;
pub mod visit;

/// Rust allocations inside the library go to oxalloc itself. The library makes none, but the
/// `alloc` crate is linked in when a dependency enables it (allocator-api2's `alloc` feature,
/// which the `oxalloc` crate's tests turn on in a workspace build), and it needs an allocator.
#[cfg(not(test))]
#[global_allocator]
static GLOBAL: engine::OxAlloc = engine::OxAlloc;

#[cfg(not(test))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    oxalloc_os::sys::write_stderr(b"oxalloc: internal error (panic)\n");
    // SAFETY: abort never returns and does not allocate.
    unsafe { libc::abort() }
}

/// The library is built with `panic = "abort"`, so nothing ever unwinds; the precompiled `core`
/// still references the personality routine, which must therefore exist.
#[cfg(not(test))]
#[no_mangle]
extern "C" fn rust_eh_personality() {}
