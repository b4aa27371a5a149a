//! A memory source over one fixed region of memory, for targets without an operating system
//! (embedded, `wasm32-unknown-unknown`) and for the core's own tests: the region is cut into
//! 4 MiB units, handed out in runs of whole units and tracked in a bitmap.
//!
//! It makes no system call. Its clock is a function the user supplies (a region source has no
//! clock of its own; without one, purge delays never elapse and purging happens only when the
//! span cache holds too many dirty bytes); its purge only counts bytes (the memory cannot be
//! given back to anyone); its random words come from a seed mixed with a counter; a fatal error
//! panics (in `no_std`, the program's panic handler decides what that does).
//!
//! Invariant: bit `i` of `used` is set iff unit `i` is part of a live mapping.

use crate::os::{Mapping, Os};
use crate::segment::{SEGMENT_SHIFT, SEGMENT_SIZE};
use crate::util::sync::{AtomicUsize, Ordering, SpinLock};
use core::ptr::NonNull;

/// Most units a region can have (the width of the bitmap).
pub const MAX_UNITS: usize = 128;

/// The fixed-region source.
pub struct FixedRegion {
    base: usize,
    units: usize,
    zeroed: bool,
    used: SpinLock<(u128, u128)>,
    clock: fn() -> u64,
    seed: AtomicUsize,
    /// Units currently mapped.
    pub in_use: AtomicUsize,
    /// Bytes purged so far.
    pub purged: AtomicUsize,
}

fn no_clock() -> u64 {
    0
}

impl FixedRegion {
    /// A source over `len` bytes at `base` (whole 4 MiB units, at most [`MAX_UNITS`]; a tail
    /// shorter than a unit is not used). `zeroed` says the region reads as zero at the start.
    ///
    /// # Safety
    /// `base` is aligned to 4 MiB, the region is readable and writable, and nothing else uses
    /// it for as long as the source lives.
    pub unsafe fn new(base: *mut u8, len: usize, zeroed: bool) -> Self {
        let units = len >> SEGMENT_SHIFT;
        FixedRegion {
            base: base as usize,
            units: if units > MAX_UNITS { MAX_UNITS } else { units },
            zeroed,
            used: SpinLock::new((0, 0)),
            clock: no_clock,
            seed: AtomicUsize::new(0x9E37_79B9),
            in_use: AtomicUsize::new(0),
            purged: AtomicUsize::new(0),
        }
    }

    /// Sets the clock (milliseconds, monotonic) and the seed of random words.
    pub fn with_clock_and_seed(mut self, clock: fn() -> u64, seed: usize) -> Self {
        self.clock = clock;
        self.seed = AtomicUsize::new(seed);
        self
    }

    /// Units in the region.
    pub fn units(&self) -> usize {
        self.units
    }

    fn mask(n: usize, first: usize) -> u128 {
        let m = if n == 128 {
            u128::MAX
        } else {
            (1u128 << n) - 1
        };
        m << first
    }
}

// SAFETY: units are handed out to one mapping at a time (the bitmap, under its lock), inside a
// region the constructor's caller gave us alone; nothing here allocates.
unsafe impl Os for FixedRegion {
    fn map(&self, size: usize, align: usize) -> Option<Mapping> {
        if align > SEGMENT_SIZE || size == 0 {
            return None;
        }
        let n = size.div_ceil(SEGMENT_SIZE);
        let mut used = self.used.lock();
        for first in 0..=self.units.checked_sub(n)? {
            let m = Self::mask(n, first);
            if used.0 & m == 0 {
                let fresh = used.1 & m == 0;
                used.0 |= m;
                used.1 |= m;
                self.in_use.fetch_add(n, Ordering::Relaxed);
                return Some(Mapping {
                    ptr: NonNull::new((self.base + (first << SEGMENT_SHIFT)) as *mut u8)?,
                    zeroed: self.zeroed && fresh,
                });
            }
        }
        None
    }

    unsafe fn unmap(&self, ptr: NonNull<u8>, size: usize) {
        let n = size.div_ceil(SEGMENT_SIZE);
        let first = (ptr.as_ptr() as usize - self.base) >> SEGMENT_SHIFT;
        let m = Self::mask(n, first);
        let mut used = self.used.lock();
        if used.0 & m != m {
            drop(used);
            self.fatal(
                "unmap of memory the region did not hand out",
                ptr.as_ptr() as usize,
            );
        }
        used.0 &= !m;
        self.in_use.fetch_sub(n, Ordering::Relaxed);
    }

    unsafe fn purge(&self, _ptr: NonNull<u8>, size: usize) -> bool {
        self.purged.fetch_add(size, Ordering::Relaxed);
        false
    }

    fn random(&self) -> usize {
        let mut x = self.seed.fetch_add(0x9E37_79B9, Ordering::Relaxed) as u64;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (x ^ (x >> 31)) as usize
    }

    fn now_ms(&self) -> u64 {
        (self.clock)()
    }

    fn fatal(&self, what: &str, ptr: usize) -> ! {
        panic!("oxalloc: {what}: {ptr:#x}");
    }
}
