//! Call stacks for sampled heap profiles: the return addresses of the calling thread.
//!
//! The choice: DWARF unwinding through the `.eh_frame` tables every x86-64 object carries, not
//! a frame-pointer walk. Debian and most distributions build programs and libraries (python3,
//! gcc, libc) without frame pointers, and so is oxalloc's own release build, so a frame-pointer
//! walk would stop after a frame or two, or follow a register that holds something else.
//! - On x86-64, the crate's `unwinder` module walks the stack with a table of unwind rules per
//!   return address, filled from the CFI the first time an address is seen (a cached frame
//!   costs a few dozen instructions instead of libgcc's thousand).
//! - Elsewhere, libgcc's `_Unwind_Backtrace` does the walk.
//!
//! Both find an address's FDE with libgcc (`libgcc_s.so.1`, a dependency of the library, so
//! nothing is loaded with `dlopen` on first use, as glibc's `backtrace()` would do). What that
//! costs and risks, inside `malloc`:
//! - libgcc 12 and later on glibc 2.35 and later find the unwind table with `_dl_find_object`,
//!   which takes no lock and does not allocate; older pairs use `dl_iterate_phdr`, whose loader
//!   lock is recursive, so a `malloc` called by the loader with the lock held does not deadlock
//!   either, and oxalloc holds none of its own locks here;
//! - its first call fills caches: [`warm_up`] makes it at start-up, outside `malloc`;
//! - should it allocate anyway (objects registered with `__register_frame_info`), the nested
//!   `malloc` is served normally: the sampler records no sample while one is being recorded.
//!
//! A sample costs one walk, once per `OXALLOC_PROFILE_RATE` bytes.

// On x86-64 the tests' reference walk.
#[cfg(all(
    target_os = "linux",
    target_env = "gnu",
    any(test, not(target_arch = "x86_64"))
))]
mod libgcc {
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

    /// Where the trace callback writes.
    struct Frames<'a> {
        out: &'a mut [usize],
        n: usize,
    }

    extern "C" fn trace(ctx: *mut Context, arg: *mut c_void) -> c_int {
        // SAFETY: `arg` is the `Frames` that `walk` passed, alive for the whole unwind, and
        // `ctx` is the unwinder's context for this frame.
        unsafe {
            let frames = &mut *(arg as *mut Frames<'_>);
            if frames.n >= frames.out.len() {
                return STOP;
            }
            let ip = _Unwind_GetIP(ctx);
            if ip == 0 {
                return STOP;
            }
            frames.out[frames.n] = ip;
            frames.n += 1;
        }
        CONTINUE
    }

    /// libgcc's walk: an address in this function, then return addresses.
    #[inline(never)]
    pub fn walk(out: &mut [usize]) -> usize {
        let mut frames = Frames { out, n: 0 };
        // SAFETY: the callback only writes into `frames`, which outlives the call.
        unsafe {
            _Unwind_Backtrace(trace, (&mut frames as *mut Frames<'_>).cast());
        }
        frames.n
    }
}

/// Fills `out` with the calling thread's return addresses, innermost first (the first is an
/// address in the unwinder); returns how many. Zero where no unwinder is available.
#[inline(never)]
pub fn backtrace(out: &mut [usize]) -> usize {
    #[cfg(all(target_os = "linux", target_env = "gnu", target_arch = "x86_64"))]
    return crate::unwinder::walk(out);
    #[cfg(all(target_os = "linux", target_env = "gnu", not(target_arch = "x86_64")))]
    return libgcc::walk(out);
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = out;
        0
    }
}

/// Unwinds once, so that the unwinder's first-use work happens here (at start-up, outside
/// `malloc`) rather than in the first sampled allocation.
pub fn warm_up() {
    let mut frames = [0usize; 8];
    backtrace(&mut frames);
}

#[cfg(all(test, target_os = "linux", target_env = "gnu", target_arch = "x86_64"))]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// Both walks from one frame: ours and libgcc's. Their first two entries differ (an address
    /// in each walker, and the return address of each call); from the third on they are the
    /// callers of this function and must agree.
    #[inline(never)]
    fn both(depth: usize) -> ([usize; 64], usize, [usize; 64], usize) {
        let mut ours = [0usize; 64];
        let mut theirs = [0usize; 64];
        let n = backtrace(&mut ours);
        let m = libgcc::walk(&mut theirs);
        let _ = core::hint::black_box(depth);
        (ours, n, theirs, m)
    }

    fn assert_agree((ours, n, theirs, m): ([usize; 64], usize, [usize; 64], usize)) {
        assert!(n > 3, "our walk stopped after {n} frames");
        assert_eq!(&ours[2..n], &theirs[2..m], "the callers of the walk differ");
    }

    /// Recursion with frames of different sizes (some with a large local array).
    #[inline(never)]
    fn deep(depth: usize, out: &mut Vec<([usize; 64], usize, [usize; 64], usize)>) {
        if depth == 0 {
            out.push(both(depth));
            return;
        }
        if depth % 3 == 0 {
            let mut big = [0u8; 5000];
            core::hint::black_box(&mut big);
            deep(depth - 1, out);
            core::hint::black_box(&big);
        } else {
            deep(depth - 1, out);
        }
        core::hint::black_box(depth);
    }

    #[test]
    fn walks_as_libgcc_does_through_rust_frames() {
        let mut out = Vec::new();
        deep(12, &mut out);
        // The second walk finds every rule in the table.
        deep(12, &mut out);
        for w in out {
            assert_agree(w);
        }
    }

    static mut FROM_QSORT: Option<([usize; 64], usize, [usize; 64], usize)> = None;

    extern "C" fn compare(a: *const core::ffi::c_void, b: *const core::ffi::c_void) -> i32 {
        // SAFETY: qsort passes two elements of the array of i32 below; the test is one thread.
        unsafe {
            let (a, b) = (*(a as *const i32), *(b as *const i32));
            if (*core::ptr::addr_of!(FROM_QSORT)).is_none() {
                *core::ptr::addr_of_mut!(FROM_QSORT) = Some(both(0));
            }
            a.cmp(&b) as i32
        }
    }

    #[test]
    fn walks_as_libgcc_does_through_libc_frames() {
        let mut v: Vec<i32> = (0..100).rev().collect();
        // SAFETY: qsort sorts the array in place with the comparator above.
        unsafe {
            libc::qsort(v.as_mut_ptr().cast(), v.len(), 4, Some(compare));
            let w = (*core::ptr::addr_of!(FROM_QSORT)).expect("the comparator ran");
            assert_agree(w);
        }
        assert!(v.windows(2).all(|p| p[0] <= p[1]));
    }

    #[test]
    fn walks_on_other_threads() {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                std::thread::spawn(move || {
                    let mut out = Vec::new();
                    deep(4 + i, &mut out);
                    out
                })
            })
            .collect();
        for h in handles {
            for w in h.join().unwrap() {
                assert_agree(w);
            }
        }
    }
}
