//! The whole-heap validator: every invariant that can be checked by walking a heap, panicking
//! (a test) or ending the process (under the `debug-full` feature, after every slow-path step)
//! with the first one broken.
//!
//! Checked: each page's equation `used + |free| + |local_free| == capacity` (a block on
//! `thread_free` counts as used until collected) and bounds; that the live bitmap has one bit
//! per used block (`live_count == used`); the page queues' links and the
//! direct table (`PageQueues::check`); the heap's lists of segments with free slots (links, and
//! that each is owned by the heap and has a free slot); every queued page belongs to the heap;
//! a first-class heap is in its parent's list of children, shares its thread, and has none.

use crate::heap::Heap;
use crate::os::Os;
use crate::page::Page;
use crate::segment::Segment;
use crate::util::list::List;
use crate::util::sync::Ordering;

/// Checks one page's equation and bounds; `quarantined` of its used blocks wait in secure
/// mode's quarantine (freed, so not live).
///
/// # Safety
/// The calling thread owns the page.
pub unsafe fn check_page(page: &Page, quarantined: u32) {
    assert!(
        page.assigned.get(),
        "page {:p} in a queue is not assigned",
        page
    );
    assert!(
        page.capacity.get() <= page.reserved.get() && page.used.get() <= page.capacity.get(),
        "page {:p}: used {} capacity {} reserved {}",
        page,
        page.used.get(),
        page.capacity.get(),
        page.reserved.get()
    );
    // SAFETY: the caller owns the page.
    let (free, local) = unsafe { (page.free_len(), page.local_free_len()) };
    assert_eq!(
        page.used.get() + free + local,
        page.capacity.get(),
        "page {:p}: used {} + free {} + local_free {} != capacity {}",
        page,
        page.used.get(),
        free,
        local,
        page.capacity.get()
    );
    assert_eq!(
        page.live_count() + quarantined,
        page.used.get(),
        "page {:p}: live bits {} + quarantined {} != used {}",
        page,
        page.live_count(),
        quarantined,
        page.used.get()
    );
}

/// Checks every invariant of `heap` listed in the module comment.
///
/// # Safety
/// The calling thread owns `heap`.
pub unsafe fn check_heap<S: Os>(heap: &Heap<S>) {
    if heap.is_sentinel() {
        return;
    }
    heap.pages.check();
    let me = heap as *const Heap<S> as usize;
    // SAFETY: the caller owns the heap and its pages.
    unsafe {
        heap.for_each_page(|page| {
            assert_eq!(
                page.heap.load(Ordering::Relaxed),
                me,
                "page {:p} in the queues of another heap",
                page
            );
            check_page(
                page,
                heap.quarantine
                    .count_in(page.start.get() as usize, page.end()),
            );
        });
    }
    for list in &heap.segments {
        list.check();
        let mut seg = list.first();
        while !seg.is_null() {
            // SAFETY: listed segments are owned by this heap. Fields are read through the raw
            // pointer: a `&Segment` would cover its registry links, which other threads write
            // (under the registry lock) as they register and release segments.
            let (in_heap_list, thread_id, used_pages, page_count) = unsafe {
                (
                    (*seg).in_heap_list,
                    (*seg).thread_id.load(Ordering::Relaxed),
                    (*seg).used_pages,
                    (*seg).page_count,
                )
            };
            assert!(in_heap_list, "segment {seg:p} listed without its flag");
            assert_eq!(thread_id, heap.thread_id);
            assert!(
                used_pages < page_count,
                "full segment {seg:p} in the free-slot list"
            );
            let assigned = (0..page_count)
                // SAFETY: as above; `i < page_count`.
                .filter(|&i| unsafe { (*Segment::page(seg, i)).assigned.get() })
                .count();
            assert_eq!(assigned, used_pages, "segment {seg:p} miscounts its pages");
            // SAFETY: `seg` is in this list.
            seg = unsafe { List::<Segment, crate::segment::InOwnerList>::next(seg) };
        }
    }
    heap.children.check();
    if heap.is_first_class() {
        assert!(
            heap.children.is_empty(),
            "first-class heap {me:#x} has children"
        );
        // SAFETY: the parent is the calling thread's heap too, and outlives its children.
        let parent = unsafe { &*heap.parent };
        assert_eq!(
            parent.thread_id, heap.thread_id,
            "heap {me:#x} left its thread"
        );
        let mut child = parent.children.first();
        while !child.is_null() && child as usize != me {
            // SAFETY: `child` is in the parent's list.
            child = unsafe { List::<Heap<S>, crate::heap::InChildren>::next(child) };
        }
        assert!(
            !child.is_null(),
            "heap {me:#x} missing from its parent's children"
        );
    }
}
