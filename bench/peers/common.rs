// Shared by every peer crate (included with `include!`): the `no_std` boilerplate and the macro
// that exports a C entry point as a plain jump to the peer's own function. The peers' static
// libraries are built without their `override` option, because a Rust cdylib exports only the
// symbols Rust defines (its version script hides everything else): so the standard names are
// defined here, each forwarding to the allocator's prefixed function, exactly as oxalloc's own
// liboxalloc.so does. With LTO each wrapper compiles to a single `jmp`.

use core::ffi::{c_int, c_void};

// The allocator's C code calls libc (mmap, pthread_*, ...): record the dependency.
#[link(name = "c")]
extern "C" {}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    extern "C" {
        fn abort() -> !;
    }
    // SAFETY: abort(3) never returns.
    unsafe { abort() }
}

/// Built with `panic = "abort"`: nothing unwinds, but the precompiled `core` still references
/// the personality routine.
#[no_mangle]
extern "C" fn rust_eh_personality() {}

/// `forward! { "exported name" => target(args) -> ret; ... }`
macro_rules! forward {
    ($($export:literal => $target:ident ($($a:ident : $t:ty),*) -> $r:ty;)*) => {
        $(
            const _: () = {
                #[export_name = $export]
                pub unsafe extern "C" fn f($($a: $t),*) -> $r {
                    // SAFETY: the C caller upholds the function's contract.
                    unsafe { $target($($a),*) }
                }
            };
        )*
    };
}

#[allow(dead_code)]
type Ptr = *mut c_void;
#[allow(dead_code)]
type Int = c_int;
