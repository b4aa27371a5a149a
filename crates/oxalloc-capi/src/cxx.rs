//! The replaceable C++ allocation operators: every `operator new` / `operator delete` that
//! libstdc++ exports (plain, array, nothrow, sized, `std::align_val_t`, in every combination),
//! under their Itanium-mangled names, with the standard's semantics.
//!
//! **delete**: Rust functions exported by [`crate::exports`]: unsized deletes are `free`, sized
//! deletes are `free_sized`, aligned sized deletes `free_aligned_sized` (so they check what those
//! check, today nothing more than `free`).
//!
//! **new**: a failed allocation must call the `std::new_handler` and retry, or throw
//! `std::bad_alloc`, and a handler may throw too. A C++ exception may not unwind through a Rust
//! frame: the library is built with `panic = "abort"`, under which every Rust function, even an
//! `extern "C-unwind"` one, is `nounwind` and aborts when an exception reaches it. So the new
//! operators are assembly (x86-64 only, `global_asm!`, with unwind tables), and all of them share
//! one loop, `oxalloc_cxx_new_loop`: allocate through a Rust function that returns NULL on failure
//! (`try_new`), and on failure ask another (`on_failure`) what to call: the installed
//! handler (then retry), libstdc++'s `std::__throw_bad_alloc()` (which never returns), or nothing
//! (nothrow: return NULL). Every throwing call is made from the assembly frame, so an exception
//! passes only through frames that have unwind information and no landing pad, and reaches the
//! caller. The stubs are made global here; `build.rs` adds them to the dynamic symbol table
//! (rustc exports only the Rust items), and `tests/header.rs` checks that all are exported.
//!
//! libstdc++'s symbols are looked up with `dlsym(RTLD_DEFAULT)` on the failure path only, since a
//! C program loads no C++ runtime; a failed `new` without libstdc++ aborts with a one-line
//! message.
//!
//! Limitation: the standard's nothrow `new` behaves as a throwing `new` inside `try { } catch
//! (...) { return nullptr; }`. Without C++ here nothing can catch, so a new_handler that throws
//! from a nothrow `new` propagates its exception to the caller (as mimalloc's C build does);
//! with no handler, or a handler that returns, nothrow `new` returns NULL as it should.

use crate::c_api;
use core::ffi::{c_void, CStr};

/// [`try_new`]'s and [`on_failure`]'s `kind`: the nothrow variants.
const NOTHROW: usize = 1;
/// [`try_new`]'s and [`on_failure`]'s `kind`: the `std::align_val_t` variants.
const ALIGNED: usize = 2;

/// One allocation attempt: `malloc(size)`, or `aligned_alloc(align, size)` for the aligned
/// variants (NULL, with `EINVAL`, when `align` is not a power of two); NULL on failure.
/// `malloc(0)` returns a unique block, so `new(0)` does too.
extern "C" fn try_new(size: usize, align: usize, kind: usize) -> *mut c_void {
    if kind & ALIGNED != 0 {
        // SAFETY: always safe to call; a bad alignment is refused.
        unsafe { c_api::aligned_alloc(align, size) }
    } else {
        // SAFETY: always safe to call.
        unsafe { c_api::malloc(size) }
    }
}

/// A function taking and returning nothing, with C++'s calling convention for `void f()`
/// (which is C's): a `std::new_handler`, or `std::__throw_bad_alloc`.
type Handler = unsafe extern "C" fn();

/// After a failed attempt: the function the loop calls before retrying (the installed
/// new_handler), or the one that throws `std::bad_alloc` (the loop calls it and never comes
/// back), or `None` for a nothrow `new` to return NULL. An invalid alignment fails at once: no
/// handler can make it valid.
#[cold]
extern "C" fn on_failure(align: usize, kind: usize) -> Option<Handler> {
    let invalid = kind & ALIGNED != 0 && !align.is_power_of_two();
    if !invalid {
        if let Some(handler) = new_handler() {
            return Some(handler);
        }
    }
    if kind & NOTHROW != 0 {
        return None;
    }
    Some(throw_bad_alloc())
}

/// `std::get_new_handler()`, or `None` when none is installed.
fn new_handler() -> Option<Handler> {
    let get = lookup(c"_ZSt15get_new_handlerv");
    // SAFETY: `std::get_new_handler` takes nothing and returns a `void (*)()` or null (an
    // `Option` of a function pointer has that representation); it is `noexcept`.
    let get = unsafe {
        core::mem::transmute::<*mut c_void, unsafe extern "C" fn() -> Option<Handler>>(get)
    };
    // SAFETY: as above.
    unsafe { get() }
}

/// `std::__throw_bad_alloc()`, libstdc++'s function that throws `std::bad_alloc`.
fn throw_bad_alloc() -> Handler {
    let throw = lookup(c"_ZSt17__throw_bad_allocv");
    // SAFETY: `std::__throw_bad_alloc` takes nothing (and returns never).
    unsafe { core::mem::transmute::<*mut c_void, Handler>(throw) }
}

/// A symbol of the C++ runtime, found in the process's global scope; aborts when it is missing,
/// as it is in a program that is not C++ (then nothing could call the handler or catch).
fn lookup(name: &CStr) -> *mut c_void {
    // SAFETY: `name` is NUL-terminated; RTLD_DEFAULT searches the global scope.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    if p.is_null() {
        oxalloc_os::sys::write_stderr(
            b"oxalloc: operator new failed and no C++ runtime (libstdc++) is loaded\n",
        );
        // SAFETY: abort never returns and does not allocate.
        unsafe { libc::abort() }
    }
    p
}

/// One exported `operator new`: its arguments are `(size)`, `(size, const nothrow_t &)`,
/// `(size, align_val_t)` or `(size, align_val_t, const nothrow_t &)`; it sets `rsi` to the
/// alignment (0 when there is none: `$align` clears it) and `rdx` to its `kind` (the
/// [`NOTHROW`] | [`ALIGNED`] bits, a literal here), then jumps to the loop, whose frame
/// becomes the operator's own (a tail call: nothing to unwind in the stub).
macro_rules! new_stub {
    ($name:literal, $align:literal, $kind:literal) => {
        concat!(
            ".globl ",
            $name,
            "\n",
            ".type ",
            $name,
            ",@function\n",
            ".p2align 4\n",
            $name,
            ":\n",
            ".cfi_startproc\n",
            $align,
            "\n",
            "mov edx, ",
            $kind,
            "\n",
            "jmp oxalloc_cxx_new_loop\n",
            ".cfi_endproc\n",
            ".size ",
            $name,
            ", .-",
            $name,
        )
    };
}

// The new loop, `oxalloc_cxx_new_loop(size, align, kind)` in registers `rdi`, `rsi`, `rdx`:
// [`try_new`] until it returns a block; after each failure, [`on_failure`] names a function to
// call (a handler, which may throw, or the thrower) or none (return NULL). The three
// arguments live in callee-saved registers across the calls; three pushes keep the stack
// 16-byte aligned at each call. Local to the object: the stubs jump to it.
core::arch::global_asm!(
    ".pushsection .text.oxalloc_cxx_new,\"ax\",@progbits",
    ".p2align 4",
    ".type oxalloc_cxx_new_loop,@function",
    "oxalloc_cxx_new_loop:",
    ".cfi_startproc",
    "push rbx",
    ".cfi_def_cfa_offset 16",
    ".cfi_offset rbx, -16",
    "push r12",
    ".cfi_def_cfa_offset 24",
    ".cfi_offset r12, -24",
    "push r13",
    ".cfi_def_cfa_offset 32",
    ".cfi_offset r13, -32",
    "mov rbx, rdi",
    "mov r12, rsi",
    "mov r13, rdx",
    "2:",
    "mov rdi, rbx",
    "mov rsi, r12",
    "mov rdx, r13",
    "call {try_new}@PLT",
    "test rax, rax",
    "jnz 3f",
    "mov rdi, r12",
    "mov rsi, r13",
    "call {on_failure}@PLT",
    "test rax, rax",
    "jz 3f",
    // The handler, or the thrower: an exception unwinds from here to the caller.
    "call rax",
    "jmp 2b",
    "3:",
    "pop r13",
    ".cfi_def_cfa_offset 24",
    "pop r12",
    ".cfi_def_cfa_offset 16",
    "pop rbx",
    ".cfi_def_cfa_offset 8",
    "ret",
    ".cfi_endproc",
    ".size oxalloc_cxx_new_loop, .-oxalloc_cxx_new_loop",
    new_stub!("_Znwm", "xor esi, esi", 0),
    new_stub!("_Znam", "xor esi, esi", 0),
    new_stub!("_ZnwmRKSt9nothrow_t", "xor esi, esi", 1),
    new_stub!("_ZnamRKSt9nothrow_t", "xor esi, esi", 1),
    new_stub!("_ZnwmSt11align_val_t", "", 2),
    new_stub!("_ZnamSt11align_val_t", "", 2),
    new_stub!("_ZnwmSt11align_val_tRKSt9nothrow_t", "", 3),
    new_stub!("_ZnamSt11align_val_tRKSt9nothrow_t", "", 3),
    ".popsection",
    try_new = sym try_new,
    on_failure = sym on_failure,
);

/// `operator delete(void *)`, `operator delete[](void *)`: `free`.
pub unsafe fn delete(p: *mut c_void) {
    // SAFETY: C++'s contract: `p` is null or from `operator new`.
    unsafe { c_api::free(p) }
}

/// `operator delete(void *, size_t)` and `[]`: `free_sized` (the size `new` was given).
pub unsafe fn delete_sized(p: *mut c_void, size: usize) {
    // SAFETY: as for `delete`.
    unsafe { c_api::free_sized(p, size) }
}

/// `operator delete(void *, const nothrow_t &)` and `[]`: `free`.
pub unsafe fn delete_nothrow(p: *mut c_void, _nothrow: *const c_void) {
    // SAFETY: as for `delete`.
    unsafe { c_api::free(p) }
}

/// `operator delete(void *, align_val_t)` and `[]`: `free` (the block knows its alignment).
pub unsafe fn delete_aligned(p: *mut c_void, _align: usize) {
    // SAFETY: as for `delete`.
    unsafe { c_api::free(p) }
}

/// `operator delete(void *, size_t, align_val_t)` and `[]`: `free_aligned_sized`.
pub unsafe fn delete_aligned_sized(p: *mut c_void, size: usize, align: usize) {
    // SAFETY: as for `delete`.
    unsafe { c_api::free_aligned_sized(p, align, size) }
}

/// `operator delete(void *, align_val_t, const nothrow_t &)` and `[]`: `free`.
pub unsafe fn delete_aligned_nothrow(p: *mut c_void, _align: usize, _nothrow: *const c_void) {
    // SAFETY: as for `delete`.
    unsafe { c_api::free(p) }
}
