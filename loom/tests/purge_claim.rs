//! Model checks of the purge thread's claim protocol on a segment's free page slots
//! (`crates/oxalloc-core/src/purge_claim.rs`). Run with `bash .ci/loom.sh`.
//!
//! Each slot's memory is a `loom::cell::UnsafeCell`: the owner writes it when it reuses the slot
//! or releases the segment, the purge thread when it purges it. loom fails a model when two such
//! accesses are not ordered by the protocol (the owner touching a slot the purge thread is
//! purging), and the tests check that every published slot is decided once: taken back by the
//! owner or purged by the purge thread, never both, never neither.

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicU64, Ordering};
use loom::sync::Arc;
use loom::thread;
use oxalloc_loom::purge_claim::PurgeSlots;

const SLOTS: usize = 2;

/// A segment: its claim state and its slots' memory.
struct Segment {
    purge: PurgeSlots,
    memory: [UnsafeCell<u64>; SLOTS],
    /// Slots the purge thread won, over the whole run.
    purged: AtomicU64,
    /// How many slots it won, counting a slot won twice twice.
    wins: AtomicU64,
}

fn segment() -> Arc<Segment> {
    Arc::new(Segment {
        purge: PurgeSlots::new(),
        memory: [UnsafeCell::new(0), UnsafeCell::new(0)],
        purged: AtomicU64::new(0),
        wins: AtomicU64::new(0),
    })
}

/// Touches the memory of the slots in `mask` (a reuse, a release, or a purge).
fn touch(s: &Segment, mask: u64, value: u64) {
    for (i, m) in s.memory.iter().enumerate() {
        if mask & (1 << i) != 0 {
            // SAFETY: loom checks that no other thread accesses the cell meanwhile.
            m.with_mut(|p| unsafe { *p = value });
        }
    }
}

/// The purge thread: `rounds` claims, each purged and given back.
fn purge_thread(s: Arc<Segment>, rounds: usize) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        for _ in 0..rounds {
            let won = s.purge.claim();
            if won != 0 {
                touch(&s, won, 0xdead);
                s.purged.fetch_or(won, Ordering::Relaxed);
                s.wins.fetch_add(won.count_ones() as u64, Ordering::Relaxed);
                s.purge.done(won);
            }
        }
    })
}

#[test]
fn owner_reuse_and_release_never_meet_a_purge() {
    loom::model(|| {
        let s = segment();
        // Both slots freed and published.
        s.purge.publish(0, 1);
        s.purge.publish(1, 2);
        let purger = purge_thread(s.clone(), 1);
        // The owner takes slot 0 back for a new page (waiting if the purge thread holds it),
        // then releases the segment (all slots, waiting for any purge in flight).
        let (got0, _) = s.purge.withdraw(1 << 0, true);
        touch(&s, 1 << 0, 1);
        // (The purge thread may still set and clear busy bits of slots it then does not win:
        // the header outlives that because the real claim runs under the registry lock, which
        // releasing the segment takes; the slots' memory is what the model guards.)
        let (got_all, _) = s.purge.withdraw(0b11, true);
        touch(&s, 0b11, 2);
        purger.join().unwrap();
        let owner = got0 | got_all;
        let purged = s.purged.load(Ordering::Relaxed);
        assert_eq!(owner & purged, 0, "a slot decided twice");
        assert_eq!(owner | purged, 0b11, "a published slot lost");
        assert_eq!(s.purge.busy(), 0);
    });
}

#[test]
fn a_slot_published_again_after_reuse_is_claimed_once_per_publication() {
    loom::model(|| {
        let s = segment();
        s.purge.publish(0, 1);
        let purger = purge_thread(s.clone(), 2);
        // Reused and freed again while the purge thread works.
        let (first, _) = s.purge.withdraw(1 << 0, true);
        touch(&s, 1 << 0, 1);
        s.purge.publish(0, 2);
        let (second, _) = s.purge.withdraw(1 << 0, true);
        touch(&s, 1 << 0, 2);
        purger.join().unwrap();
        // Each publication went to exactly one side: the owner got it back, or the purge thread
        // purged it (then the owner's withdraw waited and got nothing).
        let owner = (first != 0) as u64 + (second != 0) as u64;
        assert_eq!(
            owner + s.wins.load(Ordering::Relaxed),
            2,
            "a publication lost or taken twice"
        );
        assert_eq!(s.purge.busy(), 0);
    });
}
