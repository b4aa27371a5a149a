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
use crate::page::{Block, Page, Published, FLAG_IN_FULL};
use crate::segment::{Segment, SegmentKind, MAX_PAGES, SEGMENT_MAP};
use crate::size_class::bin_size;
use crate::stats::Snapshot;
use crate::util::sync::Ordering;
use core::ptr;

/// An area of memory: a segment of small or medium pages, or a huge block's segment.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AreaInfo {
    /// First byte of the area (its segment header).
    pub start: usize,
    /// Bytes mapped.
    pub size: usize,
    /// 0: small pages (64 KiB), 1: medium pages (512 KiB), 2: one huge block.
    pub kind: u32,
    /// Page slots in the area.
    pub slots: u32,
    /// Slots that hold a page.
    pub pages: u32,
}

/// A page (or the huge block of a huge area).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageInfo {
    /// First block.
    pub start: usize,
    /// Slot index in its area.
    pub index: u32,
    /// Size class (0 for a huge block).
    pub bin: u32,
    /// Bytes per block.
    pub block_size: usize,
    /// Blocks that fit in the page.
    pub reserved: u32,
    /// Blocks carved so far.
    pub capacity: u32,
    /// Blocks in use.
    pub used: u32,
    /// 1 when the page belongs to the calling thread's heap: `capacity` and `used` are exact
    /// (blocks freed by other threads and not yet collected count as free), and its blocks can
    /// be visited. 0 for other threads' pages: the counts are as of the page's last refill.
    pub exact: u32,
    /// 1 when the page is in its heap's full queue (exact pages only).
    pub full: u32,
}

/// What a heap walk reports, in address order: each area, then each of its pages, then (when
/// asked, for the calling thread's pages) each live block of the page.
#[derive(Clone, Copy, Debug)]
pub enum Visit<'a> {
    /// An area.
    Area(&'a AreaInfo),
    /// A page of the area.
    Page(&'a AreaInfo, &'a PageInfo),
    /// A live block of the page: its address and size.
    Block(&'a PageInfo, *mut u8, usize),
}

/// What the walk copies of one segment while the registry is locked.
struct SegmentCopy {
    area: AreaInfo,
    pages: [PageInfo; MAX_PAGES],
    /// Whether each page belongs to the caller's heap.
    own: [bool; MAX_PAGES],
}

/// Walks every area and page of the allocator, and the live blocks of the calling thread's
/// pages if `blocks`, calling `f` for each; `f` returns false to stop. Returns true when the
/// walk went to the end. Nothing is allocated; the registry is locked only while one segment's
/// description is copied, so `f` may allocate and free (what it changes may or may not be seen
/// by the rest of the walk; the blocks of a page are those live when the walk reached it).
///
/// # Safety
/// `own`, if given, is the calling thread's heap.
pub unsafe fn heap_visit<S: Os>(
    arena: &Arena<S>,
    own: Option<*const Heap<S>>,
    blocks: bool,
    f: &mut dyn FnMut(Visit<'_>) -> bool,
) -> bool {
    let own = own.map_or(0, |h| h as usize);
    let mut last = 0usize;
    let mut copy = SegmentCopy {
        area: AreaInfo::default(),
        pages: [PageInfo::default(); MAX_PAGES],
        own: [false; MAX_PAGES],
    };
    while arena.with_segment_after(last, |seg| {
        // SAFETY: the registry lock keeps the segment mapped while this runs; only atomics and
        // fields fixed at the segment's set-up are read of pages other threads own.
        unsafe { copy_segment(seg, own, &mut copy) }
    }) {
        last = copy.area.start;
        if !f(Visit::Area(&copy.area)) {
            return false;
        }
        for i in 0..copy.area.slots as usize {
            let info = &copy.pages[i];
            if info.reserved == 0 {
                continue;
            }
            if !(blocks && copy.own[i]) {
                if !f(Visit::Page(&copy.area, info)) {
                    return false;
                }
                // A huge block belongs to no heap: it is reported to every walker.
                if blocks
                    && copy.area.kind == SegmentKind::Huge as u32
                    && info.used == 1
                    && !f(Visit::Block(info, info.start as *mut u8, info.block_size))
                {
                    return false;
                }
                continue;
            }
            // The caller's own page: only this thread releases it, but what `f` did so far may
            // have; check it is still there and ours before reading its lists.
            let mut free = [0u64; 64];
            // SAFETY: the segment map bit is set only while the segment is registered (mapped);
            // a page whose heap is ours is owned by the calling thread.
            let info = unsafe {
                let seg = copy.area.start as *const Segment;
                if !SEGMENT_MAP.contains(seg.cast()) {
                    continue;
                }
                let page = &(*seg).pages[i];
                if !page.assigned.get() || page.heap.load(Ordering::Relaxed) != own {
                    continue;
                }
                mark_free(page, &mut free);
                exact_info(page, i as u32)
            };
            if !f(Visit::Page(&copy.area, &info)) {
                return false;
            }
            for b in 0..info.capacity as usize {
                if free[b / 64] & 1 << (b % 64) == 0 {
                    let p = (info.start + b * info.block_size) as *mut u8;
                    if !f(Visit::Block(&info, p, info.block_size)) {
                        return false;
                    }
                }
            }
        }
    }
    true
}

/// Copies what a walk reports of a segment.
///
/// # Safety
/// The segment is registered and the registry is locked; `own` is the calling thread's heap.
unsafe fn copy_segment(seg: *const Segment, own: usize, copy: &mut SegmentCopy) {
    // Fields are read through the raw pointer, one at a time: other threads own the segment
    // and write its plain fields meanwhile, so a `&Segment` covering them would be a data race
    // (Miri reports it); the atomics and the fields fixed while the segment is registered are
    // what this reads. (A `&Page` would do: every field of a page is a cell or an atomic.)
    // SAFETY: per the contract the segment is mapped while the registry is locked.
    let (kind, page_count) = unsafe { ((*seg).kind, (*seg).page_count) };
    copy.area = AreaInfo {
        start: seg as usize,
        // SAFETY: as above.
        size: unsafe { (*seg).published_size.load(Ordering::Relaxed) },
        kind: kind as u32,
        slots: page_count as u32,
        pages: 0,
    };
    for i in 0..page_count {
        // SAFETY: as above; `i < page_count`.
        let page = unsafe { Segment::page(seg.cast_mut(), i) };
        // SAFETY: as above.
        let (word, heap) = unsafe {
            (
                (*page).published.load(Ordering::Relaxed),
                (*page).heap.load(Ordering::Relaxed),
            )
        };
        let published = Published::from_word(word);
        copy.own[i] = own != 0 && heap == own;
        if !published.assigned {
            copy.pages[i] = PageInfo::default();
            continue;
        }
        copy.area.pages += 1;
        copy.pages[i] = if copy.own[i] {
            // SAFETY: the page is the caller's.
            unsafe { exact_info(&*page, i as u32) }
        } else {
            // SAFETY: as above. A huge segment's `size` changes in realloc on the block's
            // user's thread, so its end comes from the published size, and its start from the
            // page (fixed while the segment is registered): `page_area` would read `size`.
            let (start, end) = unsafe {
                match kind {
                    SegmentKind::Huge => ((*page).start.get(), seg as usize + copy.area.size),
                    _ => Segment::page_area(seg, i),
                }
            };
            let block_size = match kind {
                SegmentKind::Huge => end - start as usize,
                _ => bin_size(published.bin as usize),
            };
            PageInfo {
                start: start as usize,
                index: i as u32,
                bin: published.bin as u32,
                block_size,
                reserved: ((end - start as usize) / block_size) as u32,
                capacity: published.capacity,
                used: published.used,
                exact: 0,
                full: 0,
            }
        };
    }
}

/// The exact description of one of the caller's pages.
///
/// # Safety
/// The calling thread owns the page.
unsafe fn exact_info(page: &Page, index: u32) -> PageInfo {
    // SAFETY: per the contract.
    let pending = unsafe { page.thread_free_len() };
    PageInfo {
        start: page.start.get() as usize,
        index,
        bin: page.bin.get() as u32,
        block_size: page.block_size.get(),
        reserved: page.reserved.get(),
        capacity: page.capacity.get(),
        used: page.used.get().saturating_sub(pending),
        exact: 1,
        full: (page.flags() & FLAG_IN_FULL != 0) as u32,
    }
}

/// Sets bit `i` of `free` for every block `i` of the page on a free list (any of the three).
///
/// # Safety
/// The calling thread owns the page.
unsafe fn mark_free(page: &Page, free: &mut [u64; 64]) {
    let mut mark = |b: usize| {
        if page.contains(b) {
            let i = (b - page.start.get() as usize) / page.block_size.get();
            free[i / 64] |= 1 << (i % 64);
        }
    };
    // SAFETY: the owner may walk its page's lists; every link is checked to stay in the page.
    unsafe {
        let bound = page.reserved.get() as usize + 1;
        for list in [page.free.get(), page.local_free.get()] {
            let mut b = list;
            let mut n = 0;
            while !b.is_null() && n < bound && page.contains(b as usize) {
                mark(b as usize);
                b = page.decode((*b).next_word());
                n += 1;
            }
        }
        let mut b = page.thread_free.head();
        let mut n = 0;
        while b != 0 && n < bound && page.contains(b) {
            mark(b);
            b = crate::util::sync::link_read(b);
            n += 1;
        }
    }
}

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
                if page.assigned.get() {
                    page_live(page, &mut s, &mut live_blocks);
                }
            }
        }
    });
    registry.for_each(|heap| {
        // SAFETY: live heaps stay valid while the registry lock is held. Of other threads'
        // heaps only the published atomics are read, through raw pointers to them (no
        // reference to the heap, which its owner may hold as `&mut`); `own` is walked only by
        // its owner (the contract).
        unsafe {
            let counters = ptr::addr_of!((*heap).counters);
            let bins = &*ptr::addr_of!((*counters).bins);
            for (dst, src) in s.bins.iter_mut().zip(bins.iter()) {
                *dst = dst.wrapping_add(src.load(Ordering::Relaxed));
            }
            if own == Some(heap as *const Heap<S>) {
                own_heap_live(&*heap, &mut s, &mut live_blocks);
            } else {
                let blocks = &*ptr::addr_of!((*counters).live_blocks);
                let bytes = &*ptr::addr_of!((*counters).live_bytes);
                live_blocks = live_blocks.wrapping_add(blocks.load(Ordering::Relaxed));
                s.live_bytes = s.live_bytes.wrapping_add(bytes.load(Ordering::Relaxed));
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
    let bin = page.bin.get() as usize;
    // SAFETY: per the contract.
    let (free, pending) = unsafe { (page.free_len(), page.thread_free_len()) };
    s.bins[bin] = s.bins[bin].wrapping_sub(free as u64);
    // Blocks freed by other threads count as used until collected; they are free really.
    let used = page.used.get().saturating_sub(pending) as u64;
    *live_blocks = live_blocks.wrapping_add(used);
    s.live_bytes = s
        .live_bytes
        .wrapping_add(used * page.block_size.get() as u64);
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
            let page = &*Segment::page_of(seg, b.cast());
            *live_blocks = live_blocks.wrapping_sub(1);
            s.live_bytes = s.live_bytes.wrapping_sub(page.block_size.get() as u64);
            b = *(b as *const usize) as *const Block;
            steps += 1;
        }
    }
}

/// The process-wide gauges, read without a lock (each a relaxed load of its atomic).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Live bytes: small and medium blocks as last sampled (each thread's change reaches the
    /// global estimate every `LIVE_SAMPLE_BYTES`), plus huge blocks exactly.
    pub live_bytes: u64,
    /// Bytes mapped from the memory source.
    pub mapped_bytes: u64,
    /// Highest live bytes seen.
    pub peak_live_bytes: u64,
    /// Highest mapped bytes seen.
    pub peak_mapped_bytes: u64,
    /// Segments mapped.
    pub segments: u64,
}

/// The arena's gauges now: a few relaxed loads, no lock, nothing allocated (so it may run on any
/// slow path, for example from the gauge hook of `stats::set_gauge_hook`).
pub fn gauges<S: Os>(arena: &Arena<S>) -> Gauges {
    let c = &arena.counters;
    let live = c.live_estimate.load(Ordering::Relaxed) as i64;
    Gauges {
        live_bytes: (live.max(0) as u64).wrapping_add(c.huge_live_bytes.load(Ordering::Relaxed)),
        mapped_bytes: c.mapped_bytes.load(Ordering::Relaxed),
        peak_live_bytes: c.peak_live_bytes.load(Ordering::Relaxed),
        peak_mapped_bytes: c.peak_mapped_bytes.load(Ordering::Relaxed),
        segments: c.segments.load(Ordering::Relaxed),
    }
}

/// Bytes of one page slot of `area` (64 KiB or 512 KiB; a huge area is one slot). Slot `i`
/// covers `start + i * slot .. start + (i + 1) * slot`; slot 0 begins with the segment header.
pub fn slot_bytes(area: &AreaInfo) -> usize {
    match area.kind {
        0 => 1 << crate::segment::SMALL_PAGE_SHIFT,
        1 => 1 << crate::segment::MEDIUM_PAGE_SHIFT,
        _ => area.size,
    }
}

/// The heap-map dump that a process writes (under `oxalloc run`, at exit and at peaks of mapped
/// bytes) and the `oxalloc` command reads: one JSON object per line, written without allocating.
///
/// - header: `{"heapmap":"exit","pid":P,"t_ms":T,"live_bytes":L,"mapped_bytes":M,"peak_mapped_bytes":Q}`
/// - area: `{"a":[start,size,kind,slots,pages,slot_bytes],"res":[r0,r1,...]}` where `r<i>` is
///   the number of resident 4 KiB pages of slot `i` (from `mincore`; empty when unknown);
/// - page: `{"p":[index,bin,block_size,reserved,capacity,used,exact,full]}`, after its area;
/// - end: `{"end":N}` with N the number of pages written, so a cut-off dump is recognised.
pub mod dump {
    use super::{AreaInfo, Gauges, PageInfo};
    use core::fmt::{self, Write};

    /// Writes the header line.
    pub fn header(out: &mut dyn Write, when: &str, pid: u32, t_ms: u64, g: &Gauges) -> fmt::Result {
        writeln!(
            out,
            "{{\"heapmap\":\"{when}\",\"pid\":{pid},\"t_ms\":{t_ms},\"live_bytes\":{},\"mapped_bytes\":{},\"peak_mapped_bytes\":{}}}",
            g.live_bytes, g.mapped_bytes, g.peak_mapped_bytes
        )
    }

    /// Writes an area line; `resident` holds the resident OS pages of each slot.
    pub fn area(out: &mut dyn Write, a: &AreaInfo, resident: &[u32]) -> fmt::Result {
        write!(
            out,
            "{{\"a\":[{},{},{},{},{},{}],\"res\":[",
            a.start,
            a.size,
            a.kind,
            a.slots,
            a.pages,
            super::slot_bytes(a)
        )?;
        for (i, r) in resident.iter().enumerate() {
            if i > 0 {
                out.write_str(",")?;
            }
            write!(out, "{r}")?;
        }
        out.write_str("]}\n")
    }

    /// Writes a page line.
    pub fn page(out: &mut dyn Write, p: &PageInfo) -> fmt::Result {
        writeln!(
            out,
            "{{\"p\":[{},{},{},{},{},{},{},{}]}}",
            p.index, p.bin, p.block_size, p.reserved, p.capacity, p.used, p.exact, p.full
        )
    }

    /// Writes the end line.
    pub fn end(out: &mut dyn Write, pages: u64) -> fmt::Result {
        writeln!(out, "{{\"end\":{pages}}}")
    }
}
