//! Synchronisation primitives that never allocate: the only lock in the allocator is this spin
//! lock, and it guards slow, rare work (span cache, abandoned segments, registries).
//! Atomics are imported from here so the whole core uses one set (and a model checker could
//! swap them in one place).
//!
//! Targets without 64-bit atomics (such as `thumbv7em-none-eabi`) get an [`AtomicU64`] with the
//! same interface over a word-sized atomic: statistics counters then wrap at 2^32.

#[cfg(target_has_atomic = "64")]
pub use core::sync::atomic::AtomicU64;
pub use core::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU8, AtomicUsize, Ordering};
#[cfg(not(target_has_atomic = "64"))]
pub use narrow::AtomicU64;

/// Writes a free-list link into a freed block's first word (a plain store; the push that
/// publishes the block orders it).
///
/// # Safety
/// `block` is the address of a block whose first word the caller may write.
#[inline(always)]
pub unsafe fn link_write(block: usize, link: usize) {
    // SAFETY: per the contract.
    unsafe { *(block as *mut usize) = link };
}

/// Reads a free-list link from a block's first word.
///
/// # Safety
/// `block` is the address of a block on a list the caller has taken or may walk.
#[inline(always)]
pub unsafe fn link_read(block: usize) -> usize {
    // SAFETY: per the contract.
    unsafe { *(block as *const usize) }
}

/// What a thread does while it waits for another one (a CPU hint).
#[inline(always)]
pub fn spin_hint() {
    core::hint::spin_loop();
}

#[cfg(not(target_has_atomic = "64"))]
mod narrow {
    use core::sync::atomic::{AtomicUsize, Ordering};

    /// A counter with `AtomicU64`'s interface over a word-sized atomic (values wrap at the word
    /// size), for targets without 64-bit atomics.
    #[derive(Default)]
    pub struct AtomicU64(AtomicUsize);

    impl AtomicU64 {
        /// A new counter.
        pub const fn new(v: u64) -> Self {
            AtomicU64(AtomicUsize::new(v as usize))
        }
        /// Loads the value.
        pub fn load(&self, o: Ordering) -> u64 {
            self.0.load(o) as u64
        }
        /// Stores a value.
        pub fn store(&self, v: u64, o: Ordering) {
            self.0.store(v as usize, o)
        }
        /// Swaps in a value.
        pub fn swap(&self, v: u64, o: Ordering) -> u64 {
            self.0.swap(v as usize, o) as u64
        }
        /// Adds, returning the previous value.
        pub fn fetch_add(&self, v: u64, o: Ordering) -> u64 {
            self.0.fetch_add(v as usize, o) as u64
        }
        /// Subtracts, returning the previous value.
        pub fn fetch_sub(&self, v: u64, o: Ordering) -> u64 {
            self.0.fetch_sub(v as usize, o) as u64
        }
        /// Bitwise and, returning the previous value (the low word only: slot masks of the
        /// purge thread, which the front end never starts on these targets, need all 64 bits).
        pub fn fetch_and(&self, v: u64, o: Ordering) -> u64 {
            self.0.fetch_and(v as usize, o) as u64
        }
        /// Bitwise or, returning the previous value (the low word only, as `fetch_and`).
        pub fn fetch_or(&self, v: u64, o: Ordering) -> u64 {
            self.0.fetch_or(v as usize, o) as u64
        }
        /// Stores the maximum, returning the previous value.
        pub fn fetch_max(&self, v: u64, o: Ordering) -> u64 {
            self.0.fetch_max(v as usize, o) as u64
        }
        /// Stores `new` if the value is `current`.
        pub fn compare_exchange(
            &self,
            current: u64,
            new: u64,
            success: Ordering,
            failure: Ordering,
        ) -> Result<u64, u64> {
            self.0
                .compare_exchange(current as usize, new as usize, success, failure)
                .map(|v| v as u64)
                .map_err(|v| v as u64)
        }
    }
}

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};

/// Spins before a waiting thread gives its time slice away.
const SPINS_BEFORE_YIELD: u32 = 100;

/// How the OS layer yields the CPU (`sched_yield`), registered at start-up; a plain spin until
/// then. Stored as an address so that setting it needs no lock.
static YIELD: AtomicUsize = AtomicUsize::new(0);

/// Registers the function that yields the CPU to another thread (it must not allocate).
pub fn set_yield(f: fn()) {
    YIELD.store(f as usize, Ordering::Relaxed);
}

/// How the front end names the calling thread (a nonzero word unique among live threads, such
/// as its thread control block's address), registered at start-up; 1 until then.
static THREAD_ID: AtomicUsize = AtomicUsize::new(0);

/// Registers the function that names the calling thread for lock ownership (it must not
/// allocate, and must return nonzero).
pub fn set_thread_id(f: fn() -> usize) {
    THREAD_ID.store(f as usize, Ordering::Relaxed);
}

/// The calling thread's id for lock ownership.
fn current_id() -> usize {
    let f = THREAD_ID.load(Ordering::Relaxed);
    if f == 0 {
        1
    } else {
        // SAFETY: only `set_thread_id` stores a non-zero value, and it stores a `fn() -> usize`.
        let f: fn() -> usize = unsafe { core::mem::transmute::<usize, fn() -> usize>(f) };
        f()
    }
}

/// Gives the CPU to another thread (the registered `sched_yield`, or a spin hint before it is
/// registered), for a thread that waits on another one.
pub fn yield_now() {
    let f = YIELD.load(Ordering::Relaxed);
    if f == 0 {
        core::hint::spin_loop();
    } else {
        // SAFETY: only `set_yield` stores a non-zero value, and it stores a `fn()`.
        let f: fn() = unsafe { core::mem::transmute::<usize, fn()>(f) };
        f();
    }
}

/// A test-and-test-and-set spin lock holding a `T`, which knows the thread holding it.
///
/// Invariant: `owner` is the id of the thread holding the lock (see [`set_thread_id`]), or 0
/// while it is free; it is nonzero exactly while one [`SpinGuard`] exists, or while the lock is
/// held for `fork()` ([`SpinLock::lock_for_fork`] until [`SpinLock::force_unlock`]).
pub struct SpinLock<T> {
    owner: AtomicUsize,
    value: UnsafeCell<T>,
}

// SAFETY: the lock serialises all access to `value`.
unsafe impl<T: Send> Sync for SpinLock<T> {}
// SAFETY: moving the lock moves the value; no thread holds a reference across the move.
unsafe impl<T: Send> Send for SpinLock<T> {}

impl<T> SpinLock<T> {
    /// A new, unlocked lock.
    pub const fn new(value: T) -> Self {
        SpinLock {
            owner: AtomicUsize::new(0),
            value: UnsafeCell::new(value),
        }
    }

    /// Takes the lock, spinning (and yielding the CPU hint) while another thread holds it.
    #[inline]
    pub fn lock(&self) -> SpinGuard<'_, T> {
        let me = current_id();
        let mut spins = 0u32;
        loop {
            if self
                .owner
                .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return SpinGuard { lock: self };
            }
            while self.owner.load(Ordering::Relaxed) != 0 {
                spins += 1;
                if spins < SPINS_BEFORE_YIELD {
                    core::hint::spin_loop();
                } else {
                    // The holder may have been preempted (more threads than cores): let it run.
                    yield_now();
                }
            }
        }
    }

    /// Takes the lock if it is free, without waiting.
    #[inline]
    pub fn try_lock(&self) -> Option<SpinGuard<'_, T>> {
        self.owner
            .compare_exchange(0, current_id(), Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| SpinGuard { lock: self })
    }

    /// Takes the lock for `fork()` and leaves it held with no guard, so the child never sees a
    /// half-done update; pair with [`SpinLock::force_unlock`]. Returns false, taking nothing,
    /// when the calling thread holds the lock already: `fork()` was called from a signal
    /// handler that interrupted this thread inside the lock, and waiting would never end (the
    /// interrupted code releases it when the handler returns, in the parent and in the child).
    pub fn lock_for_fork(&self) -> bool {
        if self.owner.load(Ordering::Relaxed) == current_id() {
            return false;
        }
        core::mem::forget(self.lock());
        true
    }

    /// Releases a lock held for `fork()`, or (in the child, which has one thread) a lock some
    /// thread of the parent held when it forked.
    ///
    /// # Safety
    /// The caller took the lock with `lock_for_fork`, or is the only thread of a child process.
    pub unsafe fn force_unlock(&self) {
        self.owner.store(0, Ordering::Release);
    }
}

/// Access to the value of a held [`SpinLock`].
pub struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while the lock is held, so access is exclusive.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only reference.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.owner.store(0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(target_family = "wasm", ignore = "wasm32 has no threads")]
    fn lock_serialises_increments() {
        static COUNTER: SpinLock<u64> = SpinLock::new(0);
        // Miri interprets each step: there 300 increments a thread still interleave.
        let n = if cfg!(miri) { 300 } else { 10_000 };
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..n {
                        *COUNTER.lock() += 1;
                    }
                });
            }
        });
        assert_eq!(*COUNTER.lock(), 4 * n);
    }
}
