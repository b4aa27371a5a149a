//! Process start-up and exit: reading the `OXALLOC_*` options without allocating, and printing
//! statistics (to stderr, and as a JSON line to `OXALLOC_REPORT_FILE`) when the process ends.
//!
//! Initialisation is lazy: the first `malloc` of the process (which may come from the dynamic
//! loader or another library's constructor, before ours runs) does it. A constructor in
//! `.init_array` reads the options again, in case the first call came before `environ` was set.
//!
//! Under `oxalloc run`, two more things happen here: the gauges are kept in the command's shared
//! sample file (`sample`, for the timelines) and heap maps are written at peaks and at exit
//! (`heapmap`). With `OXALLOC_PROFILE=1` the sampled heap profile is written at exit (and at
//! the peaks of heap maps) by `profile`.

mod heapmap;
pub(crate) mod profile;
mod sample;

pub(crate) use sample::after_fork_child;

use core::fmt::Write;
use core::sync::atomic::{AtomicU8, Ordering};
use oxalloc_core::options::{self, Opt};
use oxalloc_core::util::fmt::FixedBuf;
use oxalloc_core::util::sync::SpinLock;
use oxalloc_os::sys;

const UNINIT: u8 = 0;
const RUNNING: u8 = 1;
const READY: u8 = 2;
static STATE: AtomicU8 = AtomicU8::new(UNINIT);

/// Path given by `OXALLOC_REPORT_FILE`, copied at start-up (NUL-terminated; empty when unset).
static REPORT_FILE: SpinLock<[u8; 512]> = SpinLock::new([0; 512]);

/// Path given by `OXALLOC_SAMPLE_FILE`, as `REPORT_FILE`.
static SAMPLE_FILE: SpinLock<[u8; 512]> = SpinLock::new([0; 512]);

/// Copies `path` into `buf`, NUL-terminated (cut to fit).
fn copy_path(buf: &mut [u8; 512], path: &[u8]) {
    let n = path.len().min(buf.len() - 1);
    buf[..n].copy_from_slice(&path[..n]);
    buf[n] = 0;
}

extern "C" {
    static environ: *const *const libc::c_char;
}

/// Makes sure the process-wide state is ready. Never allocates; other threads arriving during
/// initialisation wait for it.
pub fn process_init() {
    if STATE.load(Ordering::Acquire) == READY {
        return;
    }
    if STATE
        .compare_exchange(UNINIT, RUNNING, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
    {
        read_options();
        oxalloc_core::util::sync::set_yield(sys::yield_now);
        oxalloc_core::util::sync::set_thread_id(crate::thread::thread_id);
        crate::thread::create_exit_key();
        if options::enabled(Opt::Valgrind) {
            crate::valgrind::activate();
        }
        STATE.store(READY, Ordering::Release);
    } else {
        while STATE.load(Ordering::Acquire) != READY {
            core::hint::spin_loop();
        }
    }
}

/// Applies every `OXALLOC_*` variable of the environment.
fn read_options() {
    // SAFETY: `environ` is libc's NULL-terminated array of NUL-terminated strings (or null very
    // early in start-up). Nothing here modifies it.
    unsafe {
        let mut entry = environ;
        if entry.is_null() {
            return;
        }
        while !(*entry).is_null() {
            let bytes = core::ffi::CStr::from_ptr(*entry).to_bytes();
            if let Some(path) = bytes.strip_prefix(b"OXALLOC_REPORT_FILE=") {
                copy_path(&mut REPORT_FILE.lock(), path);
            }
            if let Some(path) = bytes.strip_prefix(b"OXALLOC_SAMPLE_FILE=") {
                copy_path(&mut SAMPLE_FILE.lock(), path);
            }
            if let Some(path) = bytes.strip_prefix(b"OXALLOC_HEAPMAP_DIR=") {
                heapmap::set_dir(path);
            }
            if let Some(path) = bytes.strip_prefix(b"OXALLOC_PROFILE_FILE=") {
                profile::set_path(path);
            }
            if bytes.starts_with(b"OXALLOC_") && !options::set_from_env_entry(bytes) {
                let mut msg = FixedBuf::<256>::new();
                let shown = core::str::from_utf8(bytes).unwrap_or("(not UTF-8)");
                let _ = writeln!(msg, "oxalloc: ignoring unknown or malformed option {shown}");
                sys::write_stderr(msg.as_bytes());
            }
            entry = entry.add(1);
        }
    }
    crate::ARENA.set_secure(options::get(Opt::Secure));
    crate::purger::configure();
    if options::enabled(Opt::Verbose) {
        let mut msg = FixedBuf::<512>::new();
        let _ = write!(msg, "oxalloc: options:");
        for (i, desc) in options::TABLE.iter().enumerate() {
            // SAFETY: the table and the enum are generated together, so `i` is a valid `Opt`.
            let opt: Opt = unsafe { core::mem::transmute::<usize, Opt>(i) };
            let _ = write!(msg, " {}={}", desc.name, options::get(opt));
        }
        let _ = writeln!(msg);
        sys::write_stderr(msg.as_bytes());
    }
    if options::enabled(Opt::SampleFile) {
        let path = *SAMPLE_FILE.lock();
        sample::init(&path);
    }
    if options::enabled(Opt::Profile) {
        crate::ARENA
            .profile
            .set_rate(options::get(Opt::ProfileRate).max(1));
    }
}

extern "C" fn on_load() {
    process_init();
    read_options();
    crate::purger::constructed();
    if profile::enabled() {
        oxalloc_os::backtrace::warm_up();
    }
}

extern "C" fn on_exit() {
    if crate::ARENA.secure() != 0 {
        // SAFETY: `current()` is this thread's heap or the sentinel.
        unsafe { oxalloc_core::free::check_quarantine(crate::thread::current()) };
    }
    profile::at_exit();
    heapmap::at_exit();
    sample::exited();
    let show = options::enabled(Opt::ShowStats);
    let report = options::enabled(Opt::ReportFile) && REPORT_FILE.lock()[0] != 0;
    if !show && !report {
        return;
    }
    let s = crate::stats();
    if show {
        let mut buf = FixedBuf::<1024>::new();
        let _ = s.write_text(&mut buf);
        sys::write_stderr(buf.as_bytes());
    }
    if report {
        let mut buf = FixedBuf::<4096>::new();
        // SAFETY: getpid never fails.
        let pid = unsafe { libc::getpid() } as u32;
        let _ = s.write_json(&mut buf, pid, peak_rss_bytes());
        let path = REPORT_FILE.lock();
        // SAFETY: `path` is NUL-terminated; open does not allocate.
        let fd = unsafe {
            libc::open(
                path.as_ptr().cast(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND | libc::O_CLOEXEC,
                0o644,
            )
        };
        if fd >= 0 {
            sys::write_fd(fd, buf.as_bytes());
            // SAFETY: we opened it.
            unsafe { libc::close(fd) };
        }
    }
}

/// Peak resident set size of this process, in bytes.
pub fn peak_rss_bytes() -> u64 {
    // SAFETY: `usage` is a valid out-parameter.
    let mut usage: libc::rusage = unsafe { core::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    usage.ru_maxrss as u64 * 1024
}

#[used]
#[link_section = ".init_array"]
static ON_LOAD: extern "C" fn() = on_load;

#[used]
#[link_section = ".fini_array"]
static ON_EXIT: extern "C" fn() = on_exit;
