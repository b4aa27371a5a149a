//! Call stacks for sampled heap profiles: the return addresses of the calling thread.
//!
//! The choice: DWARF unwinding through libgcc's `_Unwind_Backtrace`, not a frame-pointer walk.
//! Debian and most distributions build programs and libraries (python3, gcc, libc) without frame
//! pointers, and so is oxalloc's own release build, so a frame-pointer walk would stop after a
//! frame or two, or follow a register that holds something else. The unwinder reads the
//! `.eh_frame` tables every x86-64 object carries. What it costs and risks, inside `malloc`:
//! - it finds each frame's unwind table with glibc's `_dl_find_object` (libgcc 12 and later on
//!   glibc 2.35 and later), which takes no lock and does not allocate; older pairs use
//!   `dl_iterate_phdr`, whose loader lock is recursive, so a `malloc` called by the loader with
//!   the lock held does not deadlock either, and oxalloc holds none of its own locks here;
//! - libgcc is linked (`libgcc_s.so.1`, a dependency of the library), so nothing is loaded with
//!   `dlopen` on first use, as glibc's `backtrace()` would do;
//! - its first call fills caches: [`warm_up`] makes it at start-up, outside `malloc`;
//! - should it allocate anyway (objects registered with `__register_frame_info`), the nested
//!   `malloc` is served normally: the sampler records no sample while one is being recorded.
//!
//! A sample costs one unwind (a few microseconds), once per `OXALLOC_PROFILE_RATE` bytes.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod unwind {
    use core::ffi::{c_int, c_void};

    /// libgcc's opaque unwind context.
    #[repr(C)]
    pub struct Context {
        _private: [u8; 0],
    }

    /// `_URC_NO_REASON`: go on unwinding.
    pub const CONTINUE: c_int = 0;
    /// `_URC_NORMAL_STOP`: stop here.
    pub const STOP: c_int = 4;

    pub type Trace = extern "C" fn(*mut Context, *mut c_void) -> c_int;

    #[link(name = "gcc_s")]
    extern "C" {
        pub fn _Unwind_Backtrace(trace: Trace, arg: *mut c_void) -> c_int;
        pub fn _Unwind_GetIP(ctx: *mut Context) -> usize;
    }
}

/// Where the trace callback writes.
struct Frames<'a> {
    out: &'a mut [usize],
    n: usize,
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
extern "C" fn trace(ctx: *mut unwind::Context, arg: *mut core::ffi::c_void) -> core::ffi::c_int {
    // SAFETY: `arg` is the `Frames` that `backtrace` passed, alive for the whole unwind, and
    // `ctx` is the unwinder's context for this frame.
    unsafe {
        let frames = &mut *(arg as *mut Frames<'_>);
        if frames.n >= frames.out.len() {
            return unwind::STOP;
        }
        let ip = unwind::_Unwind_GetIP(ctx);
        if ip == 0 {
            return unwind::STOP;
        }
        frames.out[frames.n] = ip;
        frames.n += 1;
    }
    unwind::CONTINUE
}

/// Fills `out` with the calling thread's return addresses, innermost first; returns how many.
/// Zero where no unwinder is available.
#[inline(never)]
pub fn backtrace(out: &mut [usize]) -> usize {
    let mut frames = Frames { out, n: 0 };
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: the callback only writes into `frames`, which outlives the call.
    unsafe {
        unwind::_Unwind_Backtrace(trace, (&mut frames as *mut Frames<'_>).cast());
    }
    frames.n
}

/// Unwinds once, so that the unwinder's first-use work happens here (at start-up, outside
/// `malloc`) rather than in the first sampled allocation.
pub fn warm_up() {
    let mut frames = [0usize; 8];
    backtrace(&mut frames);
}
