//! valgrind mode (`OXALLOC_VALGRIND=1`): every allocation and free is described to memcheck
//! with client requests, so that memcheck reports leaks, overflows and uses after free in a
//! program running on oxalloc as it does on glibc.
//!
//! ## Routing, at no cost to the fast path
//! The mode is decided once, at process start-up. When it is on, a thread's heap is never put in
//! the thread-local slot (it lives in the thread-exit key only), so the slot keeps the sentinel
//! and every `malloc` misses on the fast path and reaches [`malloc`] here from the slow path.
//! Heaps are created with the owner id `thread_id() | 1`, which no caller of `free` passes, so
//! every `free` misses the owner's fast path too and reaches the core's generic path, where the
//! free hook this mode installs (`free_hook`) takes it. With the mode off nothing of this runs:
//! the fast paths are the same instructions.
//!
//! ## A block in valgrind mode
//! ```text
//!  b (the core's block)      p = b + hdr (what the program gets)
//!  | link | tag |  (pad)  |  p .. p+size: the program's bytes  | redzone, >= 16 bytes |
//! ```
//! `hdr` is 16 bytes (up to the alignment, for aligned allocations). The first word is where the
//! core keeps its free-list link; the word before `p` (the tag) holds the size asked for and `hdr`;
//! everything but `p .. p+size` and the link is NOACCESS to memcheck, so reading or writing one
//! byte past the end, or before the start, is an invalid access; after a free the whole block is
//! NOACCESS (FREELIKE_BLOCK), so a use after free is one too. The allocator's own reads and writes
//! of its metadata inside blocks are bracketed: the tag is made DEFINED, read or written, and made
//! NOACCESS again; when a page's first block is handed out, the rest of the page (free blocks and
//! memory not carved yet) is made NOACCESS; the core's calls (which read and write free-list links,
//! also in blocks that were laid out differently when their page held another size class) run with
//! memcheck's error reporting disabled for the calling thread, and their results are described to
//! memcheck afterwards. `calloc`'s bytes are zeroed here and marked DEFINED; a `realloc` that fits
//! in the block is a RESIZEINPLACE_BLOCK.
//!
//! ## The client request
//! valgrind recognises a sequence of instructions that does nothing on a real CPU: on x86-64,
//! `rol rdi` by 3, 13, 61 and 51 (128 bits in all: `rdi` is unchanged), then `xchg rbx, rbx`,
//! with the address of six words (request, five arguments) in `rax`; it puts its answer in
//! `rdx`, which holds the default answer when the program runs natively. On other targets the
//! requests do nothing.

use crate::thread::{self, ThreadHeap};
use crate::ARENA;
use core::ptr;
use core::sync::atomic::{AtomicBool, Ordering};
use oxalloc_core::alloc as core_alloc;
use oxalloc_core::size_class::ALIGN;

/// Client request numbers (valgrind.h and memcheck.h).
mod request {
    /// The nesting depth of valgrind running this program (0 natively).
    pub const RUNNING_ON_VALGRIND: usize = 0x1001;
    /// `(addr, size, redzone, zeroed)`: a heap block now starts at `addr`.
    pub const MALLOCLIKE_BLOCK: usize = 0x1301;
    /// `(addr, redzone)`: the block at `addr` is freed.
    pub const FREELIKE_BLOCK: usize = 0x1302;
    /// `(addr, old size, new size, redzone)`: the block at `addr` changed size in place.
    pub const RESIZEINPLACE_BLOCK: usize = 0x130b;
    /// `(1 or -1)`: disables (or enables again) error reporting for the calling thread.
    pub const CHANGE_ERR_DISABLEMENT: usize = 0x1801;
    /// memcheck's requests start at `'M' << 24 | 'C' << 16`.
    const MEMCHECK: usize = (b'M' as usize) << 24 | (b'C' as usize) << 16;
    /// `(addr, len)`: neither readable nor writable.
    pub const MAKE_MEM_NOACCESS: usize = MEMCHECK;
    /// `(addr, len)`: writable, its contents undefined.
    pub const MAKE_MEM_UNDEFINED: usize = MEMCHECK + 1;
    /// `(addr, len)`: readable and writable, its contents defined.
    pub const MAKE_MEM_DEFINED: usize = MEMCHECK + 2;
}

/// Issues a client request; returns `default` when not running on valgrind.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[inline(always)]
fn client_request(default: usize, req: usize, a1: usize, a2: usize, a3: usize, a4: usize) -> usize {
    let args: [usize; 6] = [req, a1, a2, a3, a4, 0];
    let result: usize;
    // SAFETY: natively the sequence changes nothing but the flags (the four rotations add up to
    // 128 bits, and `xchg rbx, rbx` swaps a register with itself); `rdi` is declared clobbered
    // all the same. Under valgrind the request reads the six words at `rax`, which live until
    // the asm returns, and writes its answer to `rdx`.
    unsafe {
        core::arch::asm!(
            "rol rdi, 3",
            "rol rdi, 13",
            "rol rdi, 61",
            "rol rdi, 51",
            "xchg rbx, rbx",
            in("rax") args.as_ptr(),
            inout("rdx") default => result,
            inout("rdi") 0usize => _,
            options(nostack),
        );
    }
    result
}

/// Issues a client request; without valgrind support on this target, returns `default`.
#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
#[inline(always)]
fn client_request(default: usize, _req: usize, _: usize, _: usize, _: usize, _: usize) -> usize {
    default
}

fn mark(req: usize, addr: *const u8, len: usize) {
    if len > 0 {
        client_request(0, req, addr as usize, len, 0, 0);
    }
}

/// Whether the program runs on valgrind (natively: false).
pub fn running_on_valgrind() -> bool {
    client_request(0, request::RUNNING_ON_VALGRIND, 0, 0, 0, 0) != 0
}

/// Whether valgrind mode is on (decided once, at process start-up).
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Whether valgrind mode is on.
#[inline(always)]
pub fn active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

/// Turns valgrind mode on: called once by process start-up, before any heap exists and after
/// the thread-exit key (where heaps live in this mode) is created. Only on x86-64 Linux, the
/// target the client request is written for (elsewhere the option has no effect).
pub(crate) fn activate() {
    if cfg!(all(target_arch = "x86_64", target_os = "linux")) {
        oxalloc_core::free::set_free_hook(free_hook);
        ACTIVE.store(true, Ordering::Release);
    }
}

/// The owner id of the calling thread's heap in valgrind mode: never what `free` is called with
/// (thread ids are thread control block addresses, which are aligned), so every free takes the
/// core's generic path and its hook.
pub(crate) fn owner_id() -> usize {
    thread::thread_id() | 1
}

/// Space between the core's block and the program's bytes (16, or the alignment asked for).
const HDR: usize = 16;
/// Bytes after the program's bytes that are always NOACCESS (at least; the rest of the block
/// is too).
const TAIL: usize = 16;
/// The redzone told to memcheck: the tag word before the block and as much after it.
const RZ: usize = 8;
/// The tag's low bits hold the size asked for (below 1 TiB); the high ones, the header size.
const SIZE_BITS: u32 = 40;

/// Runs `f` with memcheck's error reporting off for this thread: the core reads and writes its
/// free-list links in blocks whose memcheck state describes the program's use of them.
fn quietly<T>(f: impl FnOnce() -> T) -> T {
    client_request(0, request::CHANGE_ERR_DISABLEMENT, 1, 0, 0, 0);
    let r = f();
    client_request(0, request::CHANGE_ERR_DISABLEMENT, usize::MAX, 0, 0, 0);
    r
}

/// Runs `f` quietly (see [`quietly`]) when valgrind mode is on; for the front end's other calls
/// into the core (statistics, heap walk, trim, thread exit), which read free-list links.
pub(crate) fn quiet_if_active<T>(f: impl FnOnce() -> T) -> T {
    if active() {
        quietly(f)
    } else {
        f()
    }
}

/// Reads the tag before `p`: (size asked for, header size).
///
/// # Safety
/// `p` is a block handed out in valgrind mode.
unsafe fn read_tag(p: *mut u8) -> (usize, usize) {
    // SAFETY: per the contract the tag word precedes `p`, inside the core's block.
    unsafe {
        let tag = p.sub(8);
        mark(request::MAKE_MEM_DEFINED, tag, 8);
        let word = ptr::read(tag as *const usize);
        mark(request::MAKE_MEM_NOACCESS, tag, 8);
        (word & ((1 << SIZE_BITS) - 1), word >> SIZE_BITS)
    }
}

/// Writes the tag before `p`.
///
/// # Safety
/// `p` is `hdr` bytes into a core block, `hdr` at least 16.
unsafe fn write_tag(p: *mut u8, size: usize, hdr: usize) {
    debug_assert!(size < 1 << SIZE_BITS && (HDR..1 << (64 - SIZE_BITS)).contains(&hdr));
    // SAFETY: per the contract the word before `p` is in the block, after its link word.
    unsafe {
        let tag = p.sub(8);
        mark(request::MAKE_MEM_UNDEFINED, tag, 8);
        ptr::write(tag as *mut usize, size | hdr << SIZE_BITS);
        mark(request::MAKE_MEM_NOACCESS, tag, 8);
    }
}

/// The calling thread's heap in valgrind mode (bound on first use), or null.
fn heap() -> *mut ThreadHeap {
    let heap = thread::keyed_heap();
    if !heap.is_null() {
        return heap;
    }
    // SAFETY: binding is what the sentinel's slow path does; in valgrind mode it leaves the
    // slot alone and returns the heap it keyed.
    unsafe { thread::bind_thread() }
}

/// Allocates `size` bytes aligned to `align` (a power of two), zeroed if `zero`, and describes
/// the block to memcheck. Null when out of memory.
///
/// # Safety
/// Valgrind mode is on.
pub unsafe fn alloc(size: usize, align: usize, zero: bool) -> *mut u8 {
    // `p` is the first `align` boundary at least HDR bytes into the core's block, which is
    // 16-aligned: at most `max(align, HDR)` bytes in. (Not an aligned core block with `p` one
    // alignment in: for 2 MiB, that would put `p` past the first 4 MiB of a huge block's
    // segment, where a pointer no longer finds its segment.)
    let Some(total) = size
        .checked_add(align.max(HDR) + TAIL)
        .filter(|_| size < 1 << SIZE_BITS)
    else {
        return ptr::null_mut();
    };
    let heap = heap();
    if heap.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: `heap` is this thread's heap.
    let (b, usable) = quietly(|| unsafe {
        let b = core_alloc::malloc(heap, total);
        let usable = if b.is_null() {
            0
        } else {
            core_alloc::usable_size(&ARENA, b)
        };
        (b, usable)
    });
    if b.is_null() {
        return b;
    }
    debug_assert!(usable >= total);
    let hdr = (b as usize + HDR).next_multiple_of(align.max(HDR)) - b as usize;
    debug_assert!(hdr >= HDR && hdr <= align.max(HDR));
    // SAFETY: `b` is a block of `usable` bytes; `p` leaves `hdr` before it and TAIL after.
    unsafe {
        mark_fresh_page(b);
        let p = b.add(hdr);
        // Everything but the core's link word is NOACCESS until MALLOCLIKE opens the block.
        mark(request::MAKE_MEM_NOACCESS, b.add(8), usable - 8);
        write_tag(p, size, hdr);
        client_request(
            0,
            request::MALLOCLIKE_BLOCK,
            p as usize,
            size,
            RZ,
            zero as usize,
        );
        if zero {
            ptr::write_bytes(p, 0, size);
            mark(request::MAKE_MEM_DEFINED, p, size);
        }
        p
    }
}

/// When `b` is the only block of its page in use (a fresh page, or one that was emptied), all
/// the page's other blocks are free or not carved yet: makes the whole page NOACCESS (the
/// caller then opens `b`'s bytes), so that memory never handed out is not addressable either.
///
/// # Safety
/// `b` is a block the calling thread's heap just handed out.
unsafe fn mark_fresh_page(b: *mut u8) {
    // SAFETY: per the contract.
    if let Some((start, len)) = unsafe { core_alloc::sole_block_page(b) } {
        mark(request::MAKE_MEM_NOACCESS, start, len);
    }
}

/// `malloc` in valgrind mode.
///
/// # Safety
/// Valgrind mode is on.
pub unsafe fn malloc(size: usize) -> *mut u8 {
    // SAFETY: per the contract.
    unsafe { alloc(size, ALIGN, false) }
}

/// The core's free hook in valgrind mode: every `free` of a block reaches it (see the module
/// comment). Describes the free to memcheck, then frees the core's block.
///
/// # Safety
/// `p` is in an oxalloc segment (the core checked), and should be a live block handed out in
/// valgrind mode; what is not is reported by memcheck and then by the core.
unsafe fn free_hook(p: *mut u8) {
    // SAFETY: per the contract, the tag precedes `p`; the core validates the block start.
    unsafe {
        let (_, hdr) = read_tag(p);
        client_request(0, request::FREELIKE_BLOCK, p as usize, RZ, 0, 0);
        let b = p.wrapping_sub(hdr);
        quietly(|| oxalloc_core::free::free_unhooked(&ARENA, b, owner_id()));
    }
}

/// Bytes usable at `p` in valgrind mode: exactly the size asked for (a pointer that is not a
/// live block ends the process, as outside valgrind mode).
///
/// # Safety
/// `p` is null or a live block handed out in valgrind mode.
pub unsafe fn usable_size(p: *const u8) -> usize {
    if p.is_null() {
        return 0;
    }
    // SAFETY: per the contract; the core checks the block start is live (ending the process
    // otherwise, as it does outside valgrind mode).
    unsafe {
        let (size, hdr) = read_tag(p as *mut u8);
        quietly(|| core_alloc::usable_size(&ARENA, p.wrapping_sub(hdr)));
        size
    }
}

/// [`crate::check_free_size`] in valgrind mode: the same rule as the core's, against the size
/// asked for (which the tag holds) instead of the block's.
///
/// # Safety
/// `p` is null or a live block handed out in valgrind mode.
pub unsafe fn check_free_size(p: *const u8, size: usize, exact_class: bool) {
    // SAFETY: per the contract (`usable_size` ends the process for a block that is not live).
    let asked = unsafe { usable_size(p) };
    if p.is_null() {
        return;
    }
    let too_small = exact_class && size < (asked / 2).saturating_sub(ALIGN);
    if size > asked || too_small {
        use oxalloc_core::Os;
        ARENA.os.fatal(
            "free_sized(): the size does not match the block",
            p as usize,
        );
    }
}

/// `realloc` in valgrind mode: in place (RESIZEINPLACE_BLOCK) when the block has room, else a
/// new block, a copy and a free.
///
/// # Safety
/// Valgrind mode is on; `p` is null or a live block handed out in valgrind mode.
pub unsafe fn realloc(p: *mut u8, size: usize) -> *mut u8 {
    // SAFETY: (the whole body) per the contract.
    unsafe {
        if p.is_null() {
            return malloc(size);
        }
        let (old, hdr) = read_tag(p);
        let b = p.sub(hdr);
        let usable = quietly(|| core_alloc::usable_size(&ARENA, b));
        if size
            .checked_add(hdr + TAIL)
            .is_some_and(|need| need <= usable)
        {
            client_request(0, request::RESIZEINPLACE_BLOCK, p as usize, old, size, RZ);
            // Whatever memcheck did with the redzone, all past the new end is NOACCESS.
            mark(request::MAKE_MEM_NOACCESS, p.add(size), usable - hdr - size);
            write_tag(p, size, hdr);
            return p;
        }
        let q = alloc(size, ALIGN, false);
        if q.is_null() {
            return q;
        }
        ptr::copy_nonoverlapping(p, q, old.min(size));
        crate::free(p);
        q
    }
}
