//! Thin wrappers over the system calls the sources and the front end share: error output,
//! aborting with a message, random words.

use core::fmt::Write;
use oxalloc_core::util::fmt::FixedBuf;

/// Writes all of `msg` to standard error, retrying short writes; errors are ignored.
pub fn write_stderr(msg: &[u8]) {
    write_fd(2, msg);
}

/// Writes all of `msg` to `fd`, retrying short writes; errors are ignored.
pub fn write_fd(fd: i32, mut msg: &[u8]) {
    while !msg.is_empty() {
        // SAFETY: `msg` is a valid readable buffer of the given length.
        let n = unsafe { libc::write(fd, msg.as_ptr().cast(), msg.len()) };
        if n <= 0 {
            if n < 0 && errno() == libc::EINTR {
                continue;
            }
            return;
        }
        msg = &msg[n as usize..];
    }
}

/// Restores `errno` when dropped: system calls on `free`'s paths must not change it.
pub struct ErrnoGuard(i32);

impl ErrnoGuard {
    /// Saves the current `errno`.
    pub fn new() -> Self {
        ErrnoGuard(errno())
    }
}

impl Default for ErrnoGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for ErrnoGuard {
    fn drop(&mut self) {
        set_errno(self.0);
    }
}

/// The calling thread's `errno`.
pub fn errno() -> i32 {
    // SAFETY: `__errno_location` returns the calling thread's errno slot.
    unsafe { *libc::__errno_location() }
}

/// Sets the calling thread's `errno`.
pub fn set_errno(value: i32) {
    // SAFETY: as in `errno`.
    unsafe { *libc::__errno_location() = value };
}

/// Prints `oxalloc: <what>: <ptr>` on one line and aborts the process.
pub fn fatal(what: &str, ptr: usize) -> ! {
    let mut buf = FixedBuf::<256>::new();
    let _ = writeln!(buf, "oxalloc: {what}: {ptr:#x}");
    write_stderr(buf.as_bytes());
    // SAFETY: abort never returns and does not allocate.
    unsafe { libc::abort() }
}

/// Gives the CPU to another thread (`sched_yield`); used by spin locks whose holder may have
/// been preempted.
pub fn yield_now() {
    // SAFETY: sched_yield has no preconditions and does not allocate.
    unsafe { libc::sched_yield() };
}

/// Milliseconds of a coarse monotonic clock (read from the vDSO, no system call).
pub fn now_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// A random word from the kernel, or a mix of the clock and an address when that fails.
pub fn random_word() -> usize {
    let mut word = 0usize;
    // SAFETY: the buffer is a valid, writable usize; GRND_NONBLOCK never blocks.
    let n = unsafe {
        libc::syscall(
            libc::SYS_getrandom,
            &mut word as *mut usize,
            core::mem::size_of::<usize>(),
            libc::GRND_NONBLOCK,
        )
    };
    if n == core::mem::size_of::<usize>() as libc::c_long {
        return word;
    }
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let mut x = (ts.tv_nsec as usize) ^ ((ts.tv_sec as usize) << 32) ^ (&ts as *const _ as usize);
    // splitmix64 finaliser
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d049bb133111eb);
    x ^ (x >> 31)
}
