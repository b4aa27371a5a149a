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
//! handler (then retry), the C++ runtime's `std::__throw_bad_alloc()` (which never returns), or
//! nothing (nothrow: return NULL). Every throwing call is made from the assembly frame, so an
//! exception passes only through frames that have unwind information and no landing pad, and
//! reaches the caller. The stubs are made global here; `build.rs` adds them to the dynamic symbol
//! table (rustc exports only the Rust items), and `tests/header.rs` checks that all are exported.
//!
//! **nothrow new** is, in the standard, the throwing one inside `try { ... } catch (...) {
//! return nullptr; }`, so a new_handler that throws makes it return NULL. The nothrow stubs call
//! the loop from a frame of their own, `oxalloc_cxx_new_nothrow`, whose unwind information has
//! what a C++ compiler gives such a `try`: a personality routine and a hand-written LSDA (GCC's
//! `.gcc_except_table` format, which both libstdc++'s and libc++abi's `__gxx_personality_v0`
//! read) with one call-site entry, the call to the loop, whose landing pad has one action, a
//! catch-all (type-table entry 0). The landing pad calls `__cxa_begin_catch(exception)` and
//! `__cxa_end_catch()`, which destroys the exception, and returns NULL. Anything else that throws
//! in that frame (the two calls of the landing pad) is outside the call-site table, so the
//! personality calls `std::terminate`, as for a `noexcept` function. The personality is a
//! trampoline of ours, `oxalloc_cxx_personality`, that jumps to the runtime's
//! `__gxx_personality_v0` (libstdc++'s or libc++abi's) as `on_failure` found it before calling
//! the handler, the only call that can throw into the frame; when none was found it answers
//! `_URC_CONTINUE_UNWIND` (a forced unwind from inside `malloc`, say). So liboxalloc has no
//! reference to a C++ symbol, weak or not, and loads in a C program as before. As with
//! libstdc++'s own nothrow `new` (the same `catch (...)`), a forced unwind (thread cancellation)
//! from inside the handler is caught too, and glibc then aborts ("exception not rethrown").
//!
//! **The C++ runtime** is looked up with `dlsym(RTLD_DEFAULT)` on the failure path only, since a
//! C program loads none. Both libstdc++ and LLVM's libc++ (with libc++abi) export
//! `std::get_new_handler()` and `std::__throw_bad_alloc()` under the same mangled names,
//! `_ZSt15get_new_handlerv` and `_ZSt17__throw_bad_allocv`: libc++ declares them "purposefully
//! not versioned", outside its `std::__1` namespace (`get_new_handler` in libc++abi,
//! `__throw_bad_alloc` in libc++; `nm -D` of Debian's libc++.so.1 and libc++abi.so.1 shows
//! them). So the lookup finds the definitions that the program's own calls (its
//! `std::set_new_handler`) bind to, of whichever runtime the program uses (the first in the
//! global scope when a process has both); `__gxx_personality_v0`, `__cxa_begin_catch` and
//! `__cxa_end_catch` are found the same way. A failed throwing `new` without a C++ runtime
//! aborts with a one-line message; a nothrow one returns NULL.

use crate::c_api;
use core::ffi::{c_void, CStr};
use core::sync::atomic::{AtomicPtr, Ordering};

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

/// The C++ runtime's functions that the nothrow frame's personality trampoline and landing pad
/// call (read by the assembly at these offsets: 0, 8, 16), stored by [`on_failure`] before it
/// hands a nothrow `new` a handler to call, on the thread that then calls the handler, which is
/// where the personality and the landing pad run. `personality` is null until all three were
/// found, and is stored last. Once set they keep their values in practice: another thread stores
/// the same (`dlsym(RTLD_DEFAULT)` keeps finding the first definition in the global scope, and a
/// library loaded later comes after it).
#[repr(C)]
struct Catch {
    /// `__gxx_personality_v0`.
    personality: AtomicPtr<c_void>,
    /// `void *__cxa_begin_catch(void *exception)`.
    begin_catch: AtomicPtr<c_void>,
    /// `void __cxa_end_catch()`.
    end_catch: AtomicPtr<c_void>,
}

static CATCH: Catch = Catch {
    personality: AtomicPtr::new(core::ptr::null_mut()),
    begin_catch: AtomicPtr::new(core::ptr::null_mut()),
    end_catch: AtomicPtr::new(core::ptr::null_mut()),
};

/// Finds the runtime's personality routine and catch functions for the nothrow frame; when one
/// is missing [`CATCH`] is left as it is (if never armed, an exception from the handler unwinds
/// through the frame to the caller).
fn arm_catch() {
    let (Some(personality), Some(begin), Some(end)) = (
        symbol(c"__gxx_personality_v0"),
        symbol(c"__cxa_begin_catch"),
        symbol(c"__cxa_end_catch"),
    ) else {
        return;
    };
    CATCH.begin_catch.store(begin, Ordering::Relaxed);
    CATCH.end_catch.store(end, Ordering::Relaxed);
    CATCH.personality.store(personality, Ordering::Release);
}

/// After a failed attempt: the function the loop calls before retrying (the installed
/// new_handler), or the one that throws `std::bad_alloc` (the loop calls it and never comes
/// back), or `None` for a nothrow `new` to return NULL. An invalid alignment fails at once: no
/// handler can make it valid. Before giving a nothrow `new` its handler, the nothrow frame's
/// catch is armed ([`arm_catch`]).
#[cold]
extern "C" fn on_failure(align: usize, kind: usize) -> Option<Handler> {
    let invalid = kind & ALIGNED != 0 && !align.is_power_of_two();
    let nothrow = kind & NOTHROW != 0;
    if !invalid {
        if let Some(handler) = new_handler(nothrow) {
            if nothrow {
                arm_catch();
            }
            return Some(handler);
        }
    }
    if nothrow {
        return None;
    }
    Some(throw_bad_alloc())
}

/// `std::get_new_handler()`, or `None` when none is installed (or, for a nothrow `new`, when
/// there is no C++ runtime to ask; a throwing one aborts then).
fn new_handler(nothrow: bool) -> Option<Handler> {
    let get = match symbol(c"_ZSt15get_new_handlerv") {
        Some(get) => get,
        None if nothrow => return None,
        None => no_runtime(),
    };
    // SAFETY: `std::get_new_handler` takes nothing and returns a `void (*)()` or null (an
    // `Option` of a function pointer has that representation); it is `noexcept`.
    let get = unsafe {
        core::mem::transmute::<*mut c_void, unsafe extern "C" fn() -> Option<Handler>>(get)
    };
    // SAFETY: as above.
    unsafe { get() }
}

/// `std::__throw_bad_alloc()`, the runtime's function that throws `std::bad_alloc`.
fn throw_bad_alloc() -> Handler {
    let Some(throw) = symbol(c"_ZSt17__throw_bad_allocv") else {
        no_runtime()
    };
    // SAFETY: `std::__throw_bad_alloc` takes nothing (and returns never).
    unsafe { core::mem::transmute::<*mut c_void, Handler>(throw) }
}

/// A symbol of the C++ runtime, found in the process's global scope, or `None`, as in a
/// program that is not C++.
fn symbol(name: &CStr) -> Option<*mut c_void> {
    // SAFETY: `name` is NUL-terminated; RTLD_DEFAULT searches the global scope.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!p.is_null()).then_some(p)
}

/// A throwing `new` failed and nothing can call a handler or throw: ends the process.
#[cold]
fn no_runtime() -> ! {
    oxalloc_os::sys::write_stderr(
        b"oxalloc: operator new failed and no C++ runtime (libstdc++, libc++) is loaded\n",
    );
    // SAFETY: abort never returns and does not allocate.
    unsafe { libc::abort() }
}

/// One exported `operator new`: its arguments are `(size)`, `(size, const nothrow_t &)`,
/// `(size, align_val_t)` or `(size, align_val_t, const nothrow_t &)`; it sets `rsi` to the
/// alignment (0 when there is none: `$align` clears it) and `rdx` to its `kind` (the
/// [`NOTHROW`] | [`ALIGNED`] bits, a literal here), then jumps to `$to`, the loop or the nothrow
/// frame, whose frame becomes the operator's own (a tail call: nothing to unwind in the stub).
macro_rules! new_stub {
    ($name:literal, $align:literal, $kind:literal, $to:literal) => {
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
            "jmp ",
            $to,
            "\n",
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
//
// The nothrow frame, `oxalloc_cxx_new_nothrow(size, align, kind)`: calls the loop inside a
// catch-all (see the module's documentation). Its CIE names the personality trampoline directly
// (encoding 0x1b, DW_EH_PE_pcrel | DW_EH_PE_sdata4: a local function, so no indirect cell and no
// dynamic relocation) and its FDE the LSDA (0x1b too). At the landing pad the unwinder has
// restored the frame as it was at the call (rsp 16-byte aligned, CFA at rsp + 16) and put the
// `_Unwind_Exception *` in rax (and the handler switch value, 1, in rdx).
//
// The LSDA (`.gcc_except_table`), field by field, as the personality routines parse it:
//   LPStart encoding 0xff (omitted: landing pads are offsets from the function's start);
//   TType encoding 0x03 (DW_EH_PE_udata4), then the uleb128 offset from the end of that field
//     to the end of the type table;
//   call-site encoding 0x01 (DW_EH_PE_uleb128), then the uleb128 length of the call-site table;
//   one call site: start and length of the `call` (offsets from the function's start), landing
//     pad offset, action 1 (the first action record, counted from 1; 0 would mean none);
//   the action record: type filter 1 (sleb128: the first type-table entry, counting back from the
//     table's end), next record 0 (none);
//   the type table: entry 1, a 4-byte 0: a null type, which catches everything.
//
// The personality trampoline, `oxalloc_cxx_personality(version, actions, class, exception,
// context)`: a tail jump to [`CATCH`]'s personality, arguments untouched; 8
// (`_URC_CONTINUE_UNWIND`) when there is none.
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
    // The handler, or the thrower: an exception unwinds from here to the caller (or, for the
    // nothrow variants, to the nothrow frame).
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
    //
    ".p2align 4",
    ".type oxalloc_cxx_new_nothrow,@function",
    "oxalloc_cxx_new_nothrow:",
    ".cfi_startproc",
    ".cfi_personality 0x1b, oxalloc_cxx_personality",
    ".cfi_lsda 0x1b, .Loxalloc_cxx_lsda",
    "push rax",
    ".cfi_def_cfa_offset 16",
    ".Loxalloc_cxx_try:",
    "call oxalloc_cxx_new_loop",
    ".Loxalloc_cxx_try_end:",
    "pop rcx",
    ".cfi_def_cfa_offset 8",
    "ret",
    ".Loxalloc_cxx_catch:",
    ".cfi_def_cfa_offset 16",
    "mov rdi, rax",
    "mov rax, qword ptr [rip + {catch}@GOTPCREL]",
    "call qword ptr [rax + 8]",
    "mov rax, qword ptr [rip + {catch}@GOTPCREL]",
    "call qword ptr [rax + 16]",
    "xor eax, eax",
    "pop rcx",
    ".cfi_def_cfa_offset 8",
    "ret",
    ".cfi_endproc",
    ".size oxalloc_cxx_new_nothrow, .-oxalloc_cxx_new_nothrow",
    //
    ".p2align 4",
    ".type oxalloc_cxx_personality,@function",
    "oxalloc_cxx_personality:",
    ".cfi_startproc",
    "mov rax, qword ptr [rip + {catch}@GOTPCREL]",
    "mov rax, qword ptr [rax]",
    "test rax, rax",
    "jz 4f",
    "jmp rax",
    "4:",
    "mov eax, 8",
    "ret",
    ".cfi_endproc",
    ".size oxalloc_cxx_personality, .-oxalloc_cxx_personality",
    //
    new_stub!("_Znwm", "xor esi, esi", 0, "oxalloc_cxx_new_loop"),
    new_stub!("_Znam", "xor esi, esi", 0, "oxalloc_cxx_new_loop"),
    new_stub!("_ZnwmRKSt9nothrow_t", "xor esi, esi", 1, "oxalloc_cxx_new_nothrow"),
    new_stub!("_ZnamRKSt9nothrow_t", "xor esi, esi", 1, "oxalloc_cxx_new_nothrow"),
    new_stub!("_ZnwmSt11align_val_t", "", 2, "oxalloc_cxx_new_loop"),
    new_stub!("_ZnamSt11align_val_t", "", 2, "oxalloc_cxx_new_loop"),
    new_stub!("_ZnwmSt11align_val_tRKSt9nothrow_t", "", 3, "oxalloc_cxx_new_nothrow"),
    new_stub!("_ZnamSt11align_val_tRKSt9nothrow_t", "", 3, "oxalloc_cxx_new_nothrow"),
    ".popsection",
    //
    ".pushsection .gcc_except_table.oxalloc_cxx_new,\"a\",@progbits",
    ".p2align 2",
    ".Loxalloc_cxx_lsda:",
    ".byte 0xff",
    ".byte 0x03",
    ".uleb128 .Loxalloc_cxx_types - .Loxalloc_cxx_types_offset",
    ".Loxalloc_cxx_types_offset:",
    ".byte 0x01",
    ".uleb128 .Loxalloc_cxx_sites_end - .Loxalloc_cxx_sites",
    ".Loxalloc_cxx_sites:",
    ".uleb128 .Loxalloc_cxx_try - oxalloc_cxx_new_nothrow",
    ".uleb128 .Loxalloc_cxx_try_end - .Loxalloc_cxx_try",
    ".uleb128 .Loxalloc_cxx_catch - oxalloc_cxx_new_nothrow",
    ".uleb128 1",
    ".Loxalloc_cxx_sites_end:",
    ".sleb128 1",
    ".sleb128 0",
    ".long 0",
    ".Loxalloc_cxx_types:",
    ".popsection",
    try_new = sym try_new,
    on_failure = sym on_failure,
    catch = sym CATCH,
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
