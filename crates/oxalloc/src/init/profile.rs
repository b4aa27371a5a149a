//! Writing the sampled heap profile (`OXALLOC_PROFILE=1`): the live samples of the arena's
//! table, with their raw return addresses, and the process's mappings (`/proc/self/maps`) so
//! that the `oxalloc` command can symbolise them later.
//!
//! The file (`OXALLOC_PROFILE_FILE`, `%p` replaced by the process id; by default
//! `oxalloc-profile.%p.txt` in the current directory) is written at exit, on request
//! ([`crate::profile_dump`]), and under `oxalloc run` also as `<file>.peak` each time a heap map
//! of the peak is written. Its format, one record a line:
//! ```text
//! oxalloc-profile 1
//! pid 1234
//! when exit                          (exit, peak or request)
//! rate 524288                        mean bytes between samples
//! taken 120                          samples taken since start-up
//! dropped 0                          samples the table had no room for
//! sample SIZE BLOCK_SIZE ADDR FRAME...   hexadecimal ADDR and frames, innermost first
//! maps
//! ...the text of /proc/self/maps...
//! ```
//! Nothing here allocates: fixed buffers, `open`/`read`/`write`.

use crate::ARENA;
use core::fmt::Write;
use oxalloc_core::util::fmt::FixedBuf;
use oxalloc_core::util::sync::SpinLock;
use oxalloc_os::sys;

/// The path of `OXALLOC_PROFILE_FILE` (NUL-terminated; empty when unset).
static PATH: SpinLock<[u8; 512]> = SpinLock::new([0; 512]);

/// The default file name, in the current directory.
const DEFAULT: &[u8] = b"oxalloc-profile.%p.txt";

/// Sets the path (the value of `OXALLOC_PROFILE_FILE`).
pub(super) fn set_path(path: &[u8]) {
    let mut p = PATH.lock();
    let n = path.len().min(p.len() - 1);
    p[..n].copy_from_slice(&path[..n]);
    p[n] = 0;
}

/// Whether profiling is on.
pub fn enabled() -> bool {
    ARENA.profile.rate() != 0
}

/// `template` with `%p` replaced by the process id, then `suffix`, NUL-terminated; `None` if
/// it does not fit.
fn expand(template: &[u8], suffix: &str) -> Option<FixedBuf<600>> {
    // SAFETY: getpid never fails.
    let pid = unsafe { libc::getpid() } as u32;
    let mut out = FixedBuf::<600>::new();
    let mut rest = template;
    while !rest.is_empty() {
        if rest.starts_with(b"%p") {
            write!(out, "{pid}").ok()?;
            rest = &rest[2..];
        } else {
            let n = rest
                .iter()
                .position(|&b| b == b'%')
                .map_or(rest.len(), |i| i.max(1));
            out.write_str(core::str::from_utf8(&rest[..n]).ok()?).ok()?;
            rest = &rest[n..];
        }
    }
    write!(out, "{suffix}\0").ok()?;
    (out.as_bytes().last() == Some(&0)).then_some(out)
}

/// Writes the profile to the configured file (with `suffix` after its name), as `when`.
pub(crate) fn dump_configured(when: &str, suffix: &str) -> bool {
    let template = *PATH.lock();
    let n = template.iter().position(|&b| b == 0).unwrap_or(0);
    let template = if n == 0 { DEFAULT } else { &template[..n] };
    match expand(template, suffix) {
        Some(path) => dump_to(path.as_bytes(), when),
        None => false,
    }
}

/// Writes the profile to `path` (NUL-terminated). Returns false if it cannot be written.
pub(crate) fn dump_to(path: &[u8], when: &str) -> bool {
    debug_assert_eq!(path.last(), Some(&0));
    // SAFETY: `path` is NUL-terminated.
    let fd = unsafe {
        libc::open(
            path.as_ptr().cast(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
            0o644,
        )
    };
    if fd < 0 {
        return false;
    }
    let mut buf = FixedBuf::<8192>::new();
    // SAFETY: getpid never fails.
    let pid = unsafe { libc::getpid() } as u32;
    let p = &ARENA.profile;
    let _ = write!(
        buf,
        "oxalloc-profile 1\npid {pid}\nwhen {when}\nrate {}\ntaken {}\ndropped {}\n",
        p.rate(),
        p.taken(),
        p.dropped()
    );
    p.for_each(|s| {
        if buf.as_bytes().len() > 8192 - 1024 {
            sys::write_fd(fd, buf.as_bytes());
            buf.clear();
        }
        let _ = write!(buf, "sample {} {} {:x}", s.size, s.block_size, s.addr);
        for f in &s.frames[..s.depth] {
            let _ = write!(buf, " {f:x}");
        }
        let _ = writeln!(buf);
    });
    let _ = writeln!(buf, "maps");
    sys::write_fd(fd, buf.as_bytes());
    copy_maps(fd);
    // SAFETY: we opened it.
    unsafe { libc::close(fd) };
    true
}

/// Copies `/proc/self/maps` to `fd`.
fn copy_maps(fd: i32) {
    // SAFETY: a NUL-terminated literal path.
    let maps = unsafe {
        libc::open(
            c"/proc/self/maps".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if maps < 0 {
        return;
    }
    let mut chunk = [0u8; 4096];
    loop {
        // SAFETY: `chunk` is a writable buffer of its length.
        let n = unsafe { libc::read(maps, chunk.as_mut_ptr().cast(), chunk.len()) };
        if n <= 0 {
            break;
        }
        sys::write_fd(fd, &chunk[..n as usize]);
    }
    // SAFETY: we opened it.
    unsafe { libc::close(maps) };
}

/// At exit: the live samples, which are the blocks still live at exit (leaks, or memory the
/// program leaves to the OS).
pub(super) fn at_exit() {
    if enabled() {
        dump_configured("exit", "");
    }
}

/// When a heap map of the peak is written (`oxalloc run`): the samples live at that moment.
pub(super) fn at_peak() {
    if enabled() {
        dump_configured("peak", ".peak");
    }
}
