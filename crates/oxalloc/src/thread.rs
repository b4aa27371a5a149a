//! Binding heaps to threads: the thread-local heap slot, thread ids, the thread-exit hook that
//! abandons a heap, and the `fork()` handlers.
//!
//! The slot is an *initial-exec* TLS variable defined in assembly, so reading it is one
//! `mov` from `%fs` and never calls `__tls_get_addr` (which may call malloc for dynamically
//! loaded libraries). Its initial value is the static sentinel heap, so a thread's first
//! `malloc` needs no "initialised?" test: it simply misses and lands in the slow path, which
//! calls `bind_thread`.

use crate::{Source, ARENA, HEAPS};
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use oxalloc_core::heap_life;
use oxalloc_core::Heap;

/// Heap type of this process.
pub type ThreadHeap = Heap<Source>;

#[cfg(target_arch = "x86_64")]
mod slot {
    use super::ThreadHeap;
    use core::arch::{asm, global_asm};

    global_asm!(
        ".pushsection .tdata.oxalloc_tls_heap,\"awT\",@progbits",
        ".p2align 3",
        ".globl oxalloc_tls_heap",
        ".hidden oxalloc_tls_heap",
        ".type oxalloc_tls_heap, @tls_object",
        ".size oxalloc_tls_heap, 8",
        "oxalloc_tls_heap:",
        ".quad {sentinel}",
        ".popsection",
        sentinel = sym crate::SENTINEL,
    );

    /// The calling thread's heap (the sentinel until the thread allocates).
    #[inline(always)]
    pub fn current() -> *mut ThreadHeap {
        let heap: *mut ThreadHeap;
        // SAFETY: reads this thread's copy of the TLS slot through its initial-exec offset.
        unsafe {
            asm!(
                "mov {h}, qword ptr [rip + oxalloc_tls_heap@GOTTPOFF]",
                "mov {h}, qword ptr fs:[{h}]",
                h = out(reg) heap,
                options(nostack, readonly, preserves_flags),
            )
        };
        heap
    }

    /// Sets the calling thread's heap.
    pub fn set(heap: *mut ThreadHeap) {
        // SAFETY: writes this thread's copy of the TLS slot.
        unsafe {
            asm!(
                "mov {t}, qword ptr [rip + oxalloc_tls_heap@GOTTPOFF]",
                "mov qword ptr fs:[{t}], {h}",
                t = out(reg) _,
                h = in(reg) heap,
                options(nostack, preserves_flags),
            )
        };
    }

    /// A word unique to the calling thread while it lives: its thread control block address.
    #[inline(always)]
    pub fn thread_id() -> usize {
        let tid: usize;
        // SAFETY: `%fs:0` holds the TCB's self-pointer on x86-64 Linux.
        unsafe {
            asm!("mov {}, qword ptr fs:[0]", out(reg) tid, options(nostack, readonly, preserves_flags, pure))
        };
        tid
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod slot {
    //! Portable fallback: the heap lives in a pthread key (slower, same semantics).
    use super::{ThreadHeap, KEY};
    use core::sync::atomic::Ordering;

    /// The calling thread's heap (the sentinel until the thread allocates).
    pub fn current() -> *mut ThreadHeap {
        // SAFETY: pthread_getspecific never allocates.
        let p =
            unsafe { libc::pthread_getspecific(KEY.load(Ordering::Acquire)) } as *mut ThreadHeap;
        if p.is_null() {
            crate::sentinel()
        } else {
            p
        }
    }

    /// Sets the calling thread's heap.
    pub fn set(heap: *mut ThreadHeap) {
        let v = if heap == crate::sentinel() {
            core::ptr::null_mut()
        } else {
            heap
        };
        // SAFETY: the key exists once the process is initialised.
        unsafe { libc::pthread_setspecific(KEY.load(Ordering::Acquire), v.cast()) };
    }

    /// A word unique to the calling thread while it lives.
    pub fn thread_id() -> usize {
        // SAFETY: pthread_self is always safe.
        unsafe { libc::pthread_self() as usize }
    }
}

pub use slot::{current, thread_id};

/// The pthread key whose destructor abandons a thread's heap at exit.
static KEY: AtomicU32 = AtomicU32::new(0);
static ATFORK_REGISTERED: AtomicBool = AtomicBool::new(false);

/// Creates the thread-exit key. Called once from process initialisation; never allocates.
pub(crate) fn create_exit_key() {
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: `key` is a valid out-parameter; the destructor has the right signature.
    if unsafe { libc::pthread_key_create(&mut key, Some(thread_exit)) } == 0 {
        KEY.store(key, Ordering::Release);
    }
}

/// Gives the calling thread a heap of its own. Reached from the sentinel's slow path.
pub(crate) unsafe fn bind_thread() -> *mut ThreadHeap {
    crate::init::process_init();
    let valgrind = crate::valgrind::active();
    if valgrind {
        // The sentinel's slow path binds again on every call in valgrind mode: keep one heap.
        let heap = keyed_heap();
        if !heap.is_null() {
            return heap;
        }
    }
    let id = if valgrind {
        crate::valgrind::owner_id()
    } else {
        thread_id()
    };
    let heap = heap_life::create(&HEAPS, &ARENA, bind_thread, id);
    if heap.is_null() {
        return heap;
    }
    if !valgrind {
        slot::set(heap);
    }
    // In valgrind mode the slot keeps the sentinel, so every malloc takes the slow path (see
    // `valgrind`); the key below is where the heap lives then.
    // From here on this thread can allocate, so the calls below may re-enter malloc safely.
    // SAFETY: the key was created by process_init; pthread_setspecific does not allocate for
    // the first 32 keys, and if it does, the allocation is served by the heap set above.
    unsafe { libc::pthread_setspecific(KEY.load(Ordering::Acquire), heap.cast()) };
    if !ATFORK_REGISTERED.swap(true, Ordering::AcqRel) {
        // SAFETY: the handlers are plain functions that never unwind.
        unsafe { libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child)) };
    }
    heap
}

/// The heap this thread keyed for its exit (its heap, in valgrind mode too), or null.
pub(crate) fn keyed_heap() -> *mut ThreadHeap {
    // SAFETY: pthread_getspecific never allocates; an unset or not yet created key gives null.
    unsafe { libc::pthread_getspecific(KEY.load(Ordering::Acquire)) as *mut ThreadHeap }
}

/// Runs at thread exit (pthread key destructor): the thread's heap is abandoned and the slot
/// goes back to the sentinel, so a destructor that allocates later binds a fresh heap.
unsafe extern "C" fn thread_exit(value: *mut libc::c_void) {
    let heap = value as *mut ThreadHeap;
    if heap.is_null() || heap == crate::sentinel() {
        return;
    }
    slot::set(crate::sentinel());
    // SAFETY: the key's value is the heap this thread created and nothing uses it any more.
    crate::valgrind::quiet_if_active(|| unsafe { heap_life::destroy(&HEAPS, heap) });
}

/// Which of the allocator's locks `fork_prepare` took (bit 0: heap registry, bits 1-3: arena,
/// bit 4: program break), for `fork_parent`. Only the forking thread touches it between the two.
static FORK_TAKEN: AtomicU32 = AtomicU32::new(0);

extern "C" {
    /// glibc's lock of the list of all stdio streams (recursive; exported since glibc 2.2.5).
    fn _IO_list_lock();
    fn _IO_list_unlock();
    fn _IO_list_resetlock();
}

/// Before `fork()`: takes stdio's list lock first, in glibc's own order (its fork takes that
/// lock before its malloc locks, because stdio allocates under stream locks: a thread in
/// `getline` holds its stream's lock and may need ours, while `fflush(NULL)` holds the list lock
/// and waits for that stream), then the allocator's locks, skipping any the calling thread holds
/// already (a fork from a signal handler that interrupted this thread inside malloc).
extern "C" fn fork_prepare() {
    // SAFETY: the lock is recursive, so glibc's fork taking it again after us is fine.
    unsafe { _IO_list_lock() };
    let taken = HEAPS.lock_for_fork() as u32
        | ARENA.lock_for_fork() << 1
        | (ARENA.os.lock_for_fork() as u32) << 4;
    FORK_TAKEN.store(taken, Ordering::Relaxed);
}

extern "C" fn fork_parent() {
    let taken = FORK_TAKEN.load(Ordering::Relaxed);
    // SAFETY: fork_prepare took the locks named by `taken`, and the stdio list lock once more
    // than glibc's fork released.
    unsafe {
        ARENA.os.unlock_after_fork(taken & 16 != 0);
        ARENA.unlock_after_fork((taken >> 1) & 7);
        HEAPS.unlock_after_fork(taken & 1 != 0);
        _IO_list_unlock();
    }
}

extern "C" fn fork_child() {
    // SAFETY: the child has one thread: every lock a thread of the parent held is free to
    // release, so the child can allocate; the stdio list lock is reset as glibc's fork does
    // (when the parent had threads it has done so already, and a reset is idempotent).
    unsafe {
        ARENA.os.unlock_after_fork(true);
        ARENA.unlock_after_fork(u32::MAX);
        HEAPS.unlock_after_fork(true);
        _IO_list_resetlock();
    }
    crate::init::after_fork_child();
    crate::purger::after_fork_child();
}
