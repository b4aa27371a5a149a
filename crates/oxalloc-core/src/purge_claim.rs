//! The claim protocol between a segment's owner and the background purge thread over the
//! segment's free page slots: [`PurgeSlots`], three atomics per segment.
//!
//! The owner publishes a free slot whose memory is resident ([`PurgeSlots::publish`]); the purge
//! thread, once the slots have waited a purge delay, claims what is published
//! ([`PurgeSlots::claim`]), purges it outside every lock and gives it back
//! ([`PurgeSlots::done`]); the owner takes slots back to reuse them, to purge them itself or to
//! release the segment ([`PurgeSlots::withdraw`]), waiting for those the purge thread holds. The
//! property: the owner never touches a slot's memory while the purge thread purges it, and
//! neither loses a slot. One atomic read-modify-write of `ready` decides every race for a slot;
//! `busy` tells the loser when the winner is done.
//!
//! This file uses nothing but `crate::util::sync`, so the loom model (`loom/`) compiles it as is
//! against loom's atomics (`loom/tests/purge_claim.rs`).

use crate::util::sync::{spin_hint, yield_now, AtomicU64, Ordering};

/// A segment's published free page slots (bit `i`: slot `i`), as the owner and the purge thread
/// share them.
pub struct PurgeSlots {
    /// Free, resident page slots the owner has published for the purge thread. Set by the
    /// owner when a slot is freed; cleared by whoever claims the slot first, with one atomic
    /// read-modify-write: the owner taking the slot again (or purging it itself, or releasing
    /// the segment), or the purge thread claiming it.
    ready: AtomicU64,
    /// Slots the purge thread holds: set (before it clears them from `ready`) while it claims
    /// and purges them, cleared once their purge is done. An owner that finds a slot gone from
    /// `ready` waits for its bit here to clear before it touches the slot, and a segment is not
    /// released while any bit is set. Invariant: a bit the purge thread won from `ready` stays
    /// set here until the slot's memory is purged.
    busy: AtomicU64,
    /// When a slot was last published (the source's milliseconds): the purge thread claims the
    /// segment's published slots once this is a purge delay old.
    since: AtomicU64,
}

impl Default for PurgeSlots {
    fn default() -> Self {
        Self::new()
    }
}

impl PurgeSlots {
    /// Nothing published, nothing held.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        PurgeSlots {
            ready: AtomicU64::new(0),
            busy: AtomicU64::new(0),
            since: AtomicU64::new(0),
        }
    }

    /// Nothing published, nothing held (loom's atomics have no `const` constructor).
    #[cfg(loom)]
    pub fn new() -> Self {
        PurgeSlots {
            ready: AtomicU64::new(0),
            busy: AtomicU64::new(0),
            since: AtomicU64::new(0),
        }
    }

    /// Whether any slot is published (the purge thread's first look at a segment).
    pub fn any_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) != 0
    }

    /// When a slot was last published.
    pub fn since(&self) -> u64 {
        self.since.load(Ordering::Relaxed)
    }

    /// The slots the purge thread holds now (tests, and release's check).
    pub fn busy(&self) -> u64 {
        self.busy.load(Ordering::Acquire)
    }

    /// The owner publishes free slot `index`, whose memory is resident, stamped with `now`.
    pub fn publish(&self, index: usize, now: u64) {
        debug_assert!(index < 64);
        // The stamp first: the purge thread reads it after it sees the bit (Acquire).
        self.since.store(now, Ordering::Relaxed);
        self.ready.fetch_or(1 << index, Ordering::Release);
    }

    /// The owner takes back the published slots in `mask` that the purge thread has not
    /// claimed: returns them (they are the owner's to purge or reuse), and whether it had to
    /// wait. A slot of `mask` that the purge thread claimed is not returned; with `wait`, this
    /// returns only once its purge is done, so the owner may reuse its memory (or release the
    /// segment).
    pub fn withdraw(&self, mask: u64, wait: bool) -> (u64, bool) {
        let prev = self.ready.fetch_and(!mask, Ordering::AcqRel);
        if wait && !prev & mask != 0 {
            // Some slot was not ours to take back: claimed by the purge thread, or never
            // published. Either way its busy bit, if set, clears once the purge is done (the
            // purge thread sets it before its claim, which our read-modify-write above
            // follows, so this load sees it).
            let mut spins = 0u32;
            while self.busy.load(Ordering::Acquire) & mask != 0 {
                spins += 1;
                if spins < 64 {
                    spin_hint();
                } else {
                    yield_now();
                }
            }
            return (prev & mask, spins != 0);
        }
        (prev & mask, false)
    }

    /// The purge thread claims the published slots: sets them busy, then takes them from
    /// `ready`. Returns the slots won, which it purges and then gives back with
    /// [`PurgeSlots::done`]; bits it did not win are not left busy.
    pub fn claim(&self) -> u64 {
        let want = self.ready.load(Ordering::Acquire);
        if want == 0 {
            return 0;
        }
        self.busy.fetch_or(want, Ordering::SeqCst);
        let won = self.ready.fetch_and(!want, Ordering::SeqCst) & want;
        if won != want {
            self.busy.fetch_and(!(want & !won), Ordering::Release);
        }
        won
    }

    /// The purge thread ends its hold on the slots of `mask`, which it claimed and purged.
    pub fn done(&self, mask: u64) {
        debug_assert!(self.busy.load(Ordering::Relaxed) & mask == mask);
        self.busy.fetch_and(!mask, Ordering::Release);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(target_family = "wasm", ignore = "wasm32 has no threads")]
    fn claims_and_withdrawals_exclude_each_other() {
        let s = PurgeSlots::new();
        s.publish(1, 10);
        s.publish(2, 11);
        assert_eq!(s.since(), 11);
        // The purge thread wins both published slots, and holds them.
        assert_eq!(s.claim(), 0b110);
        assert_eq!(s.busy(), 0b110);
        assert_eq!(s.claim(), 0, "nothing left to claim");
        // A slot never published: the owner gets nothing back and does not wait.
        assert_eq!(s.withdraw(1 << 3, true), (0, false));
        // The owner takes a published slot back before the purge thread: it wins.
        s.publish(4, 12);
        assert_eq!(s.withdraw(1 << 4, true), (1 << 4, false));
        assert_eq!(s.claim(), 0);
        // The owner's own purge takes back only what the purge thread has not claimed.
        s.publish(5, 13);
        assert_eq!(s.withdraw(0b10_0110, false), (1 << 5, false));
        // An owner wanting slot 1, which the purge thread holds, waits for its purge to end.
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|t| {
            let owner = t.spawn(|| {
                let r = s.withdraw(1 << 1, true);
                assert!(
                    done.load(Ordering::Acquire),
                    "took the slot during its purge"
                );
                r
            });
            std::thread::sleep(std::time::Duration::from_millis(20));
            done.store(true, Ordering::Release);
            s.done(0b110);
            assert_eq!(owner.join().unwrap(), (0, true));
        });
        assert_eq!(s.busy(), 0);
    }
}
