//! The background purge thread (`OXALLOC_PURGE_THREAD=1`), as jemalloc's `background_thread`:
//! one thread that wakes every purge delay and gives back what has waited it out
//! ([`oxalloc_core::Arena::background_purge`]): cached spans, and the free page slots that the
//! owners of live and abandoned segments published for it. Without it, purging runs on the
//! program's slow paths, so a program that frees and then sleeps keeps its memory resident.
//!
//! Abandoned segments (of threads that exited) that other threads have freed blocks into since
//! are reclaimed into the thread's own heap and abandoned again at once
//! ([`heap_life::recycle_abandoned`]), which releases their pages that became empty.
//!
//! Starting it: lazily, when the arena is about to allocate a segment or a huge block (its
//! start hook, [`poll`]: no heap is in the middle of an update there and no arena lock is
//! held, and the malloc paths are not touched), once the library's constructor has run (not
//! during the loader's and other libraries' early calls). `pthread_create` itself allocates (the new
//! thread's TLS vector, with `calloc`): those calls re-enter malloc, find the state `STARTING`
//! and go on as any other allocation; only the thread that won the state's exchange creates.
//! The new thread is created with every signal blocked (so no signal handler, and no `fork()`
//! from one, ever runs on it), a small stack and detached; it never allocates.
//!
//! `fork()`: the child has no purge thread. The atfork handlers take the arena's purge lock
//! (which the thread holds from its claim of slots to the end of their purge), so no claim is
//! in flight in the child, and the child's state goes back to `IDLE`: its next segment or huge
//! allocation starts a thread of its own (never the atfork handler: a fork from a signal
//! handler may have interrupted this thread's heap mid-update, and `pthread_create` allocates). At thread exit nothing is needed (the purge thread never exits;
//! owners that exit publish their segments' free slots as they abandon them); at process exit
//! the thread dies with the process (it holds no lock across anything but its own short steps).

use crate::thread::thread_id;
use crate::{ARENA, HEAPS};
use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use oxalloc_core::heap_life;
use oxalloc_core::options::{self, Opt};

/// The option is off (or the thread cannot run on this target).
const OFF: u8 = 0;
/// Wanted and not started: the next segment or huge-block allocation starts it.
const IDLE: u8 = 1;
/// A thread is creating it.
const STARTING: u8 = 2;
/// Running.
const RUNNING: u8 = 3;
/// `pthread_create` failed: not retried (purging stays on the slow paths).
const FAILED: u8 = 4;

static STATE: AtomicU8 = AtomicU8::new(OFF);

/// Set once the library's constructor has run: from then on libc is initialised and
/// `pthread_create` may be called.
static CONSTRUCTED: AtomicBool = AtomicBool::new(false);

/// Stack of the purge thread: it runs no program code, only the arena's purge.
const STACK: usize = 64 * 1024;

/// Shortest sleep between two purges (with an `OXALLOC_PURGE_DELAY` of 0 the owners purge on
/// the spot, so the thread finds little to do).
const MIN_SLEEP_MS: u64 = 1;

/// Applies `OXALLOC_PURGE_THREAD` (start-up, after the options are read; idempotent).
pub(crate) fn configure() {
    if options::enabled(Opt::PurgeThread) && ARENA.enable_purge_thread() {
        ARENA.set_purge_start_hook(poll);
        let _ = STATE.compare_exchange(OFF, IDLE, Ordering::Relaxed, Ordering::Relaxed);
    }
}

/// The library's constructor ran: the thread may be started from now on.
pub(crate) fn constructed() {
    CONSTRUCTED.store(true, Ordering::Release);
}

/// Starts the purge thread if it is wanted and not started: the arena's start hook, called
/// before each segment or huge-block allocation while the option is on.
pub(crate) fn poll() {
    if STATE.load(Ordering::Relaxed) == IDLE {
        start();
    }
}

/// Whether the purge thread is running (tests, statistics).
pub fn running() -> bool {
    STATE.load(Ordering::Acquire) == RUNNING
}

#[cold]
#[inline(never)]
fn start() {
    if !CONSTRUCTED.load(Ordering::Acquire)
        || STATE
            .compare_exchange(IDLE, STARTING, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    // SAFETY: plain libc calls on local, initialised out-parameters; `run` has the signature
    // pthread_create expects and never unwinds. The signal mask is restored before returning.
    let ok = unsafe {
        let mut all: libc::sigset_t = core::mem::zeroed();
        let mut old: libc::sigset_t = core::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let mut attr: libc::pthread_attr_t = core::mem::zeroed();
        libc::pthread_attr_init(&mut attr);
        libc::pthread_attr_setstacksize(&mut attr, STACK.max(libc::PTHREAD_STACK_MIN));
        libc::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
        let mut tid: libc::pthread_t = core::mem::zeroed();
        let rc = libc::pthread_create(&mut tid, &attr, run, core::ptr::null_mut());
        libc::pthread_attr_destroy(&mut attr);
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, core::ptr::null_mut());
        rc == 0
    };
    // A fork in between (from a signal handler) has reset the child's state to IDLE; in this
    // process the exchange still finds STARTING.
    let _ = STATE.compare_exchange(
        STARTING,
        if ok { RUNNING } else { FAILED },
        Ordering::AcqRel,
        Ordering::Relaxed,
    );
}

/// Most abandoned segments one wake of the purge thread recycles.
const RECYCLES_PER_WAKE: usize = 64;

/// The purge thread: sleeps a purge delay, purges, forever.
extern "C" fn run(_: *mut libc::c_void) -> *mut libc::c_void {
    // SAFETY: naming the calling thread writes its `comm` with prctl; the name fits in 16 bytes.
    unsafe { libc::pthread_setname_np(libc::pthread_self(), c"oxalloc-purge".as_ptr()) };
    // A heap of its own, never bound to its TLS slot (the thread allocates nothing): abandoned
    // segments are reclaimed into it and abandoned again, which releases what other threads
    // freed in them after their owner exited (null when out of memory: that part is skipped).
    let heap = heap_life::create(&HEAPS, &ARENA, crate::thread::bind_thread, thread_id());
    loop {
        let ms = (options::get(Opt::PurgeDelay) as u64).max(MIN_SLEEP_MS);
        let ts = libc::timespec {
            tv_sec: (ms / 1000) as libc::time_t,
            tv_nsec: ((ms % 1000) * 1_000_000) as libc::c_long,
        };
        // SAFETY: `ts` is a valid timespec; every signal is blocked, so no EINTR to handle.
        unsafe { libc::nanosleep(&ts, core::ptr::null_mut()) };
        ARENA.background_purge();
        if !heap.is_null() {
            // SAFETY: the heap is this thread's, empty between passes and used for nothing else.
            unsafe { heap_life::recycle_abandoned(heap, RECYCLES_PER_WAKE) };
        }
    }
}

/// In a fork child: there is no purge thread; the next segment or huge-block allocation starts
/// one (a child that only frees and sleeps gets none).
pub(crate) fn after_fork_child() {
    let s = STATE.load(Ordering::Relaxed);
    if s == STARTING || s == RUNNING {
        STATE.store(IDLE, Ordering::Relaxed);
    }
}
