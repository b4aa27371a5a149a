//! The heap walk: visiting a heap's pages (exact, for the owning thread) and every registered
//! segment, and the statistics snapshot built on them. Validation (`validate`) walks a heap
//! through the same functions.
//!
//! What another thread may read: a heap's published counters (atomics only it writes), the
//! arena's counters, the registry links (under the registry locks), and the pages of abandoned
//! segments (under the arena's lock, which keeps reclaimers out). A live heap's pages and free
//! lists are read only by the heap's own thread.

use crate::arena::Arena;
use crate::heap::{Heap, HeapRegistry};
use crate::os::Os;
use crate::page::{Block, Page};
use crate::segment::{SegmentKind, SEGMENT_MAP};
use crate::stats::Snapshot;
use crate::util::sync::Ordering;

/// A snapshot of every statistic. Exact for `own` (the calling thread's heap) and for abandoned
/// segments, which are walked page by page; other live heaps contribute what they last published
/// (see `stats`). Exact overall when no other thread has a heap.
///
/// # Safety
/// `own`, if given, is a heap of `registry` owned by the calling thread.
pub unsafe fn snapshot<S: Os>(
    arena: &Arena<S>,
    registry: &HeapRegistry<S>,
    own: Option<*const Heap<S>>,
) -> Snapshot {
    let mut s = Snapshot::from_counters(&arena.counters);
    let mut live_blocks = 0u64;
    arena.for_each_abandoned(|seg| {
        // SAFETY: abandoned segments are stable under the arena's lock (see
        // `Arena::for_each_abandoned`), and nobody else reads or writes their pages' lists.
        unsafe {
            let seg = &*seg;
            for page in &seg.pages[..seg.page_count] {
                if page.assigned {
                    page_live(page, &mut s, &mut live_blocks);
                }
            }
        }
    });
    registry.for_each(|heap| {
        // SAFETY: live heaps stay valid while the registry lock is held; their counters are
        // atomics; `own` is walked only by its owner (the contract).
        unsafe {
            let h = &*heap;
            for (dst, src) in s.bins.iter_mut().zip(h.counters.bins.iter()) {
                *dst = dst.wrapping_add(src.load(Ordering::Relaxed));
            }
            if own == Some(heap as *const Heap<S>) {
                own_heap_live(h, &mut s, &mut live_blocks);
            } else {
                live_blocks =
                    live_blocks.wrapping_add(h.counters.live_blocks.load(Ordering::Relaxed));
                s.live_bytes = s
                    .live_bytes
                    .wrapping_add(h.counters.live_bytes.load(Ordering::Relaxed));
            }
        }
    });
    s.bins[0] = s.huge_allocations;
    s.live_bytes = s.live_bytes.wrapping_add(s.huge_live_bytes);
    s.allocations = s.bins.iter().fold(0u64, |a, &b| a.wrapping_add(b));
    s.frees = s
        .allocations
        .wrapping_sub(live_blocks)
        .wrapping_sub(s.huge_allocations - s.huge_frees);
    s.peak_live_bytes = s.peak_live_bytes.max(s.live_bytes);
    s.live_estimate = s.live_bytes;
    s
}

/// Adds a page's exact live blocks to a snapshot, and takes the blocks on its free list back out
/// of the allocation counts (they were counted in advance).
///
/// # Safety
/// Nobody but remote freers changes the page meanwhile, and the caller may read its lists.
unsafe fn page_live(page: &Page, s: &mut Snapshot, live_blocks: &mut u64) {
    let bin = page.bin as usize;
    // SAFETY: per the contract.
    let (free, pending) = unsafe { (page.free_len(), page.thread_free_len()) };
    s.bins[bin] = s.bins[bin].wrapping_sub(free as u64);
    // Blocks freed by other threads count as used until collected; they are free really.
    let used = page.used.saturating_sub(pending) as u64;
    *live_blocks = live_blocks.wrapping_add(used);
    s.live_bytes = s.live_bytes.wrapping_add(used * page.block_size as u64);
}

/// Adds the exact live blocks of the caller's own heap to a snapshot, and takes the blocks
/// still on its free lists back out of the allocation counts.
///
/// # Safety
/// The calling thread owns `heap`.
unsafe fn own_heap_live<S: Os>(heap: &Heap<S>, s: &mut Snapshot, live_blocks: &mut u64) {
    // SAFETY: the caller owns the heap and therefore its pages.
    unsafe {
        heap.for_each_page(|page| page_live(page, s, live_blocks));
        // Blocks on the delayed list are freed but still counted in their page's `used`. The
        // owner is the only thread that takes them off, and its acquire load sees the links.
        let mut b = heap.delayed.head() as *const Block;
        let mut steps = 0;
        while !b.is_null() && steps < 1 << 20 && SEGMENT_MAP.contains(b.cast()) {
            let seg = crate::segment::Segment::of(b.cast());
            if (*seg).kind == SegmentKind::Huge {
                break;
            }
            let page = &*(*seg).page_of(b.cast());
            *live_blocks = live_blocks.wrapping_sub(1);
            s.live_bytes = s.live_bytes.wrapping_sub(page.block_size as u64);
            b = *(b as *const usize) as *const Block;
            steps += 1;
        }
    }
}
