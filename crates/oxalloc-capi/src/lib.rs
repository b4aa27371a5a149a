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
//! multiple of `sizeof(void *)`; `free` never changes `errno`.
#![no_std]
#![allow(clippy::missing_safety_doc)]

use core::ffi::{c_char, c_int, c_void};
use core::fmt::Write;
use core::ptr;
use engine::{Bytes, FixedBuf, Snapshot};
use libc::{EINVAL, ENOMEM};

#[cfg(not(test))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    let msg = b"oxalloc: internal error (panic)\n";
    // SAFETY: write(2) with a valid buffer; abort never returns.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
        libc::abort()
    }
}

/// The library is built with `panic = "abort"`, so nothing ever unwinds; the precompiled `core`
/// still references the personality routine, which must therefore exist.
#[cfg(not(test))]
#[no_mangle]
extern "C" fn rust_eh_personality() {}

const PTR_SIZE: usize = core::mem::size_of::<*const c_void>();
const PAGE: usize = 4096;

#[inline(always)]
fn set_errno(e: c_int) {
    // SAFETY: __errno_location returns this thread's errno.
    unsafe { *libc::__errno_location() = e };
}

#[inline(always)]
fn errno() -> c_int {
    // SAFETY: as above.
    unsafe { *libc::__errno_location() }
}

#[inline(always)]
fn enomem_if_null(p: *mut u8) -> *mut c_void {
    if p.is_null() {
        set_errno(ENOMEM);
    }
    p.cast()
}

// ---- implementations --------------------------------------------------------------------------

#[inline(always)]
unsafe fn imp_malloc(size: usize) -> *mut c_void {
    // SAFETY: malloc is always safe to call.
    let p = unsafe { engine::malloc_fast(size) };
    if !p.is_null() {
        return p.cast();
    }
    // SAFETY: as above.
    unsafe { malloc_slow_c(size) }
}

/// The slow path with C's error reporting, reached by a tail call so that the fast path needs
/// no stack frame.
#[cold]
#[inline(never)]
unsafe fn malloc_slow_c(size: usize) -> *mut c_void {
    // SAFETY: always safe to call.
    enomem_if_null(unsafe { engine::malloc_slow(size) })
}

#[inline(always)]
unsafe fn imp_free(p: *mut c_void) {
    // SAFETY: C's contract: `p` is null or from this allocator.
    unsafe { engine::free(p.cast()) }
}

unsafe fn imp_calloc(n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        // SAFETY: always safe to call.
        Some(total) => enomem_if_null(unsafe { engine::malloc_zeroed(total) }),
        None => enomem_if_null(ptr::null_mut()),
    }
}

unsafe fn imp_realloc(p: *mut c_void, size: usize) -> *mut c_void {
    if !p.is_null() && size == 0 {
        // glibc: realloc(p, 0) frees p and returns NULL.
        // SAFETY: `p` is a live block per C's contract.
        unsafe { engine::free(p.cast()) };
        return ptr::null_mut();
    }
    // SAFETY: per C's contract.
    enomem_if_null(unsafe { engine::realloc(p.cast(), size) })
}

unsafe fn imp_reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        // SAFETY: per C's contract.
        Some(total) => unsafe { imp_realloc(p, total) },
        None => enomem_if_null(ptr::null_mut()),
    }
}

/// Aligned allocation shared by the memalign family; `align` is a power of two.
#[inline]
unsafe fn aligned(align: usize, size: usize) -> *mut c_void {
    // SAFETY: `align` is a power of two.
    enomem_if_null(unsafe { engine::malloc_aligned(size, align, false) })
}

unsafe fn imp_posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    if !align.is_power_of_two() || align % PTR_SIZE != 0 {
        return EINVAL;
    }
    let saved = errno();
    // SAFETY: `align` is a power of two.
    let p = unsafe { aligned(align, size) };
    set_errno(saved);
    if p.is_null() {
        return ENOMEM;
    }
    // SAFETY: the caller passes a writable pointer slot.
    unsafe { *out = p };
    0
}

unsafe fn imp_aligned_alloc(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        set_errno(EINVAL);
        return ptr::null_mut();
    }
    // SAFETY: checked above.
    unsafe { aligned(align, size) }
}

unsafe fn imp_memalign(align: usize, size: usize) -> *mut c_void {
    // glibc rounds an alignment that is not a power of two up to one.
    if align > usize::MAX / 2 + 1 {
        set_errno(EINVAL);
        return ptr::null_mut();
    }
    let align = align.max(1).next_power_of_two();
    // SAFETY: a power of two.
    unsafe { aligned(align, size) }
}

unsafe fn imp_valloc(size: usize) -> *mut c_void {
    // SAFETY: a power of two.
    unsafe { aligned(PAGE, size) }
}

unsafe fn imp_pvalloc(size: usize) -> *mut c_void {
    match size.checked_add(PAGE - 1) {
        // SAFETY: a power of two.
        Some(s) => unsafe { aligned(PAGE, (s & !(PAGE - 1)).max(PAGE)) },
        None => enomem_if_null(ptr::null_mut()),
    }
}

unsafe fn imp_malloc_usable_size(p: *mut c_void) -> usize {
    // SAFETY: per C's contract; invalid pointers are reported.
    unsafe { engine::usable_size(p.cast()) }
}

unsafe fn imp_free_sized(p: *mut c_void, _size: usize) {
    // SAFETY: per C's contract.
    unsafe { engine::free(p.cast()) }
}

unsafe fn imp_free_aligned_sized(p: *mut c_void, _align: usize, _size: usize) {
    // SAFETY: per C's contract.
    unsafe { engine::free(p.cast()) }
}

unsafe fn imp_malloc_trim(_pad: usize) -> c_int {
    (engine::trim() > 0) as c_int
}

/// glibc's `struct mallinfo` (int fields).
#[repr(C)]
#[derive(Default)]
pub struct Mallinfo {
    pub arena: c_int,
    pub ordblks: c_int,
    pub smblks: c_int,
    pub hblks: c_int,
    pub hblkhd: c_int,
    pub usmblks: c_int,
    pub fsmblks: c_int,
    pub uordblks: c_int,
    pub fordblks: c_int,
    pub keepcost: c_int,
}

/// glibc's `struct mallinfo2` (size_t fields).
#[repr(C)]
#[derive(Default)]
pub struct Mallinfo2 {
    pub arena: usize,
    pub ordblks: usize,
    pub smblks: usize,
    pub hblks: usize,
    pub hblkhd: usize,
    pub usmblks: usize,
    pub fsmblks: usize,
    pub uordblks: usize,
    pub fordblks: usize,
    pub keepcost: usize,
}

unsafe fn imp_mallinfo2() -> Mallinfo2 {
    let s = engine::stats();
    let huge_live = s.huge_live_bytes as usize;
    let mapped = s.mapped_bytes as usize;
    Mallinfo2 {
        arena: mapped.saturating_sub(huge_live),
        ordblks: s.segments as usize,
        hblks: (s.huge_allocations - s.huge_frees) as usize,
        hblkhd: huge_live,
        usmblks: s.peak_mapped_bytes as usize,
        uordblks: s.live_bytes as usize,
        fordblks: mapped.saturating_sub(s.live_bytes as usize),
        ..Default::default()
    }
}

unsafe fn imp_mallinfo() -> Mallinfo {
    // SAFETY: always safe.
    let m = unsafe { imp_mallinfo2() };
    let c = |v: usize| v.min(c_int::MAX as usize) as c_int;
    Mallinfo {
        arena: c(m.arena),
        ordblks: c(m.ordblks),
        hblks: c(m.hblks),
        hblkhd: c(m.hblkhd),
        usmblks: c(m.usmblks),
        uordblks: c(m.uordblks),
        fordblks: c(m.fordblks),
        ..Default::default()
    }
}

unsafe fn imp_malloc_stats() {
    let s = engine::stats();
    let mut buf = FixedBuf::<2048>::new();
    let _ = write_glibc_style(&mut buf, &s);
    let _ = s.write_text(&mut buf);
    // SAFETY: write(2) with a valid buffer.
    unsafe { libc::write(2, buf.as_bytes().as_ptr().cast(), buf.as_bytes().len()) };
}

fn write_glibc_style(out: &mut dyn Write, s: &Snapshot) -> core::fmt::Result {
    writeln!(out, "Arena 0:")?;
    writeln!(
        out,
        "system bytes     = {:>10}",
        s.mapped_bytes - s.huge_live_bytes.min(s.mapped_bytes)
    )?;
    writeln!(
        out,
        "in use bytes     = {:>10}",
        s.live_bytes - s.huge_live_bytes.min(s.live_bytes)
    )?;
    writeln!(out, "Total (incl. mmap):")?;
    writeln!(out, "system bytes     = {:>10}", s.mapped_bytes)?;
    writeln!(out, "in use bytes     = {:>10}", s.live_bytes)?;
    writeln!(
        out,
        "max mmap regions = {:>10}",
        s.huge_allocations - s.huge_frees
    )?;
    writeln!(out, "max mmap bytes   = {:>10}", s.peak_mapped_bytes)
}

unsafe fn imp_malloc_info(options: c_int, fp: *mut libc::FILE) -> c_int {
    if options != 0 {
        set_errno(EINVAL);
        return -1;
    }
    let s = engine::stats();
    let mut buf = FixedBuf::<8192>::new();
    let _ = (|| -> core::fmt::Result {
        writeln!(
            buf,
            "<malloc version=\"oxalloc-{}\">",
            env!("CARGO_PKG_VERSION")
        )?;
        writeln!(buf, "<heap nr=\"0\">\n<sizes>")?;
        let mut prev = 0;
        for (bin, &n) in s.bins.iter().enumerate().skip(1) {
            let size = engine::size_class::bin_size(bin);
            if n > 0 {
                writeln!(
                    buf,
                    "<size from=\"{}\" to=\"{}\" total=\"{}\" count=\"{}\"/>",
                    prev + 1,
                    size,
                    n * size as u64,
                    n
                )?;
            }
            prev = size;
        }
        writeln!(
            buf,
            "<unsorted from=\"{}\" to=\"-1\" total=\"{}\" count=\"{}\"/>",
            prev + 1,
            s.huge_live_bytes,
            s.huge_allocations
        )?;
        writeln!(buf, "</sizes>")?;
        writeln!(
            buf,
            "<total type=\"mmap\" count=\"{}\" size=\"{}\"/>",
            s.huge_allocations - s.huge_frees,
            s.huge_live_bytes
        )?;
        writeln!(
            buf,
            "<system type=\"current\" size=\"{}\"/>",
            s.mapped_bytes
        )?;
        writeln!(
            buf,
            "<system type=\"max\" size=\"{}\"/>",
            s.peak_mapped_bytes
        )?;
        writeln!(buf, "<aspace type=\"total\" size=\"{}\"/>", s.mapped_bytes)?;
        writeln!(buf, "</heap>\n</malloc>")
    })();
    let bytes = buf.as_bytes();
    // SAFETY: `fp` is the caller's open stream; fwrite may allocate, which is fine here (we
    // hold no lock).
    let n = unsafe { libc::fwrite(bytes.as_ptr().cast(), 1, bytes.len(), fp) };
    if n == bytes.len() {
        0
    } else {
        -1
    }
}

unsafe fn imp_mallopt(param: c_int, _value: c_int) -> c_int {
    // glibc's M_MXFAST (1) and M_TRIM_THRESHOLD .. M_ARENA_MAX (-1 .. -8) are accepted; oxalloc
    // tunes itself through OXALLOC_* options instead.
    (param == 1 || (-8..=-1).contains(&param)) as c_int
}

// ---- exports ----------------------------------------------------------------------------------

macro_rules! export {
    ($imp:ident $args:tt -> $r:ty; [$($ox:ident),+] [$($sys:ident),*]) => {
        $( export_fn! { $ox, $imp, $args, $r } )+
        $( #[cfg(feature = "override")] export_fn! { $sys, $imp, $args, $r } )*
    };
}

macro_rules! export_fn {
    ($name:ident, $imp:ident, ($($a:ident : $t:ty),*), $r:ty) => {
        #[no_mangle]
        pub unsafe extern "C" fn $name($($a: $t),*) -> $r {
            // SAFETY: the C caller upholds the function's documented contract.
            unsafe { $imp($($a),*) }
        }
    };
}

export!(imp_malloc(size: usize) -> *mut c_void; [ox_malloc] [malloc, __libc_malloc]);
export!(imp_free(p: *mut c_void) -> (); [ox_free] [free, __libc_free, cfree]);
export!(imp_calloc(n: usize, size: usize) -> *mut c_void; [ox_calloc] [calloc, __libc_calloc]);
export!(imp_realloc(p: *mut c_void, size: usize) -> *mut c_void; [ox_realloc] [realloc, __libc_realloc]);
export!(imp_reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void; [ox_reallocarray] [reallocarray]);
export!(imp_posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int; [ox_posix_memalign] [posix_memalign]);
export!(imp_aligned_alloc(align: usize, size: usize) -> *mut c_void; [ox_aligned_alloc] [aligned_alloc]);
export!(imp_memalign(align: usize, size: usize) -> *mut c_void; [ox_memalign] [memalign, __libc_memalign]);
export!(imp_valloc(size: usize) -> *mut c_void; [ox_valloc] [valloc, __libc_valloc]);
export!(imp_pvalloc(size: usize) -> *mut c_void; [ox_pvalloc] [pvalloc, __libc_pvalloc]);
export!(imp_malloc_usable_size(p: *mut c_void) -> usize; [ox_malloc_usable_size] [malloc_usable_size]);
export!(imp_free_sized(p: *mut c_void, size: usize) -> (); [ox_free_sized] [free_sized]);
export!(imp_free_aligned_sized(p: *mut c_void, align: usize, size: usize) -> (); [ox_free_aligned_sized] [free_aligned_sized]);
export!(imp_malloc_trim(pad: usize) -> c_int; [ox_malloc_trim] [malloc_trim]);
export!(imp_mallinfo() -> Mallinfo; [ox_mallinfo] [mallinfo]);
export!(imp_mallinfo2() -> Mallinfo2; [ox_mallinfo2] [mallinfo2]);
export!(imp_malloc_stats() -> (); [ox_malloc_stats] [malloc_stats]);
export!(imp_malloc_info(options: c_int, fp: *mut libc::FILE) -> c_int; [ox_malloc_info] [malloc_info]);
export!(imp_mallopt(param: c_int, value: c_int) -> c_int; [ox_mallopt] [mallopt]);

/// Writes the statistics as one JSON line into `buf` (NUL-terminated, truncated to `len`);
/// returns the length of the full line.
#[no_mangle]
pub unsafe extern "C" fn ox_stats_json(buf: *mut c_char, len: usize) -> usize {
    let mut out = FixedBuf::<4096>::new();
    let s = engine::stats();
    // SAFETY: getpid never fails.
    let pid = unsafe { libc::getpid() } as u32;
    let _ = s.write_json(&mut out, pid, engine::peak_rss_bytes());
    let bytes = out.as_bytes();
    if !buf.is_null() && len > 0 {
        let n = bytes.len().min(len - 1);
        // SAFETY: the caller passes `len` writable bytes.
        unsafe {
            ptr::copy_nonoverlapping(bytes.as_ptr(), buf.cast(), n);
            *buf.add(n) = 0;
        }
    }
    bytes.len()
}

/// Prints a human-readable summary of the statistics to stderr.
#[no_mangle]
pub unsafe extern "C" fn ox_stats_print() {
    let s = engine::stats();
    let mut buf = FixedBuf::<1024>::new();
    let _ = s.write_text(&mut buf);
    let _ = writeln!(buf, "oxalloc: peak RSS {}", Bytes(engine::peak_rss_bytes()));
    // SAFETY: write(2) with a valid buffer.
    unsafe { libc::write(2, buf.as_bytes().as_ptr().cast(), buf.as_bytes().len()) };
}
