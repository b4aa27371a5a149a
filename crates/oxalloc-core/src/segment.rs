//! Segments: 4 MiB-aligned spans of memory that hold pages, with the page metadata in a header
//! at the start. Any pointer finds its segment by masking off the low 22 bits and its page by a
//! shift, so `free` needs no header in front of the block and no search.
//!
//! ```text
//!  segment (4 MiB, aligned)                                   kinds:
//!  +--------+-----------+-----------+-----+-----------+       small   64 pages of 64 KiB
//!  | header | page 0    | page 1    | ... | page n-1  |       medium   8 pages of 512 KiB
//!  +--------+-----------+-----------+-----+-----------+       huge     1 page, any size
//!   ^ Segment { thread_id, pages: [Page; 64], ... }
//! ```
//! Page 0 starts after the header; every other page starts at `segment + (i << page_shift)`.
//! A huge segment holds one block larger than `MEDIUM_MAX` and may span several 4 MiB units,
//! but its block always starts inside the first one.
//!
//! Invariants:
//! - `used_pages == |{ i : pages[i].assigned }|`;
//! - a segment is in the [`SegmentMap`] exactly while it is registered (from its set-up to its
//!   release; a huge segment also while its block is live);
//! - `thread_id` is one of the values of [`owner`]: the owning thread, [`owner::NONE`] for an
//!   abandoned segment (and a cached one), [`owner::HUGE_LIVE`] for a huge segment whose block is
//!   allocated;
//! - `in_heap_list` is set iff the segment is in its owner's list of segments with free slots.

use crate::os::OS_PAGE;
use crate::page::{live_word_offset, Page, LIVE_WORD_SHIFT};
use crate::purge_claim::PurgeSlots;
use crate::util::align::align_up;
use crate::util::list::{Linked, Links};
use crate::util::sync::{AtomicU8, AtomicUsize, Ordering};
use core::cell::Cell;
use core::ptr;

/// The values a segment's `thread_id` (and the thread id a free is made with) can take besides
/// a real thread's id. Real ids are addresses of thread control blocks, so none of these
/// collide with one.
pub mod owner {
    /// No thread owns the segment (abandoned, cached, or not set up yet).
    pub const NONE: usize = 0;
    /// A huge segment whose block is allocated (no thread owns huge blocks).
    pub const HUGE_LIVE: usize = 1;
    /// The id a thread without a heap frees with: it owns nothing.
    pub const NO_THREAD: usize = usize::MAX;
}

pub use crate::size_class::SEGMENT_SHIFT;
/// Size and alignment of a segment.
pub const SEGMENT_SIZE: usize = 1 << SEGMENT_SHIFT;
/// Mask that turns a pointer into its segment's address.
pub const SEGMENT_MASK: usize = SEGMENT_SIZE - 1;
/// log2 of the size of small pages.
pub const SMALL_PAGE_SHIFT: usize = 16;
/// log2 of the size of medium pages.
pub const MEDIUM_PAGE_SHIFT: usize = 19;
/// Page slots in a segment header (enough for small segments).
pub const MAX_PAGES: usize = SEGMENT_SIZE >> SMALL_PAGE_SHIFT;
/// Bytes taken by the header at the start of every segment (page metadata, then the live
/// bitmap: 44 KiB on 64-bit targets, most of it resident only as far as pages are in use).
pub const HEADER_SIZE: usize = align_up(core::mem::size_of::<Segment>(), OS_PAGE);
// The header leaves room for blocks in the first small page.
const _: () = assert!(HEADER_SIZE <= (1 << SMALL_PAGE_SHIFT) * 3 / 4);

/// Largest alignment a huge block can be given (its block must start in the first 4 MiB).
pub const MAX_ALIGN: usize = SEGMENT_SIZE / 2;

/// What a segment's pages hold.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum SegmentKind {
    /// 64 pages of 64 KiB for blocks up to `SMALL_MAX`.
    Small = 0,
    /// 8 pages of 512 KiB for blocks up to `MEDIUM_MAX`.
    Medium = 1,
    /// One block larger than `MEDIUM_MAX`.
    Huge = 2,
}

/// The header at the start of every segment.
#[repr(C)]
pub struct Segment {
    /// Owning thread's id, or one of the [`owner`] values.
    pub thread_id: AtomicUsize,
    /// The page that holds each 64 KiB slot of the segment (a medium page holds eight, a
    /// huge one all): `free` finds a pointer's page with one load and no arithmetic on the
    /// page size. Set when the segment is set up; never changes.
    pub page_of_slot: [*mut Page; MAX_PAGES],
    /// log2 of the page size; pointer-to-page is `(p - segment) >> page_shift`.
    pub page_shift: usize,
    /// What the pages hold.
    pub kind: SegmentKind,
    /// Whether the memory came zeroed from the source (or a purge).
    pub zeroed: bool,
    /// Bit `i` set once page slot `i` has held blocks since the memory was zeroed.
    pub used_since_zeroed: u64,
    /// Free page slots whose memory is still resident, freed during the owner's current purge
    /// epoch (see `page_life::purge_tick`). Invariant: `dirty_new & dirty_old == 0`, and a set
    /// bit names a slot that is not assigned and has `used_since_zeroed` set.
    pub dirty_new: u64,
    /// Free, resident page slots that have waited out a whole purge epoch: purged at the next.
    pub dirty_old: u64,
    /// With the purge thread (`OXALLOC_PURGE_THREAD`): the free, resident page slots the owner
    /// has published for it, and those it holds (the claim protocol of `purge_claim`).
    pub purge: PurgeSlots,
    /// Set while the segment is in its heap's list of segments with free page slots.
    pub in_heap_list: bool,
    /// Secure mode: an inaccessible OS page follows the header, and page 0 starts after it.
    pub guard: bool,
    /// Page slots in this segment.
    pub page_count: usize,
    /// Page slots in use.
    pub used_pages: usize,
    /// Bytes mapped for this segment (written by the segment's user only).
    pub size: usize,
    /// `size` again, for heap walks from other threads (huge blocks change size in realloc).
    pub published_size: AtomicUsize,
    /// Links in the owning heap's list of segments with free page slots, or (abandoned) in the
    /// arena's list of abandoned segments.
    pub owner_links: Links<Segment>,
    /// Links in the arena's registry of all segments (statistics and heap walks).
    pub registry_links: Links<Segment>,
    /// Page metadata, `page_count` of them in use.
    pub pages: [Page; MAX_PAGES],
    /// The live bitmap: one bit per 16 bytes of the segment, set while a used block starts
    /// there (or `malloc` returned an aligned pointer there). Written by the owning thread,
    /// read by any (see [`Page::live_word`]); huge segments leave it untouched.
    pub live: [AtomicUsize; LIVE_WORDS],
}

/// Words of a segment's live bitmap.
pub const LIVE_WORDS: usize = SEGMENT_SIZE >> LIVE_WORD_SHIFT;

/// Marker of the lists through `Segment::owner_links`: a heap's segments with free slots, and
/// the arena's abandoned segments (a segment is in at most one of them).
pub struct InOwnerList;
/// Marker of the arena's registry of segments (`Segment::registry_links`).
pub struct InRegistry;

// SAFETY: each marker selects its own field.
unsafe impl Linked<InOwnerList> for Segment {
    unsafe fn links(this: *mut Self) -> *mut Links<Self> {
        // SAFETY: `this` is a valid segment per the contract.
        unsafe { ptr::addr_of_mut!((*this).owner_links) }
    }
}
// SAFETY: as above.
unsafe impl Linked<InRegistry> for Segment {
    unsafe fn links(this: *mut Self) -> *mut Links<Self> {
        // SAFETY: `this` is a valid segment per the contract.
        unsafe { ptr::addr_of_mut!((*this).registry_links) }
    }
}

impl Segment {
    /// The segment that contains `p` (meaningful only if [`SegmentMap::contains`] says so).
    #[inline(always)]
    pub fn of(p: *const u8) -> *mut Segment {
        (p as usize & !SEGMENT_MASK) as *mut Segment
    }

    /// The page that contains `p`, which lies in the segment `seg`. The pointer is derived from
    /// `seg` (not from a shared reference), so callers may write through it.
    ///
    /// # Safety
    /// `seg` is a valid segment and `p` lies in it.
    #[inline(always)]
    pub unsafe fn page_of(seg: *mut Segment, p: *const u8) -> *mut Page {
        let slot = (p as usize >> SMALL_PAGE_SHIFT) & (MAX_PAGES - 1);
        debug_assert!(
            (p as usize - seg as usize) < SEGMENT_SIZE,
            "{:p} is past the first 4 MiB of {:p}",
            p,
            seg
        );
        // SAFETY: per the contract the header is valid to read; `slot < MAX_PAGES`, and every
        // entry was set to one of the segment's pages when it was set up.
        unsafe {
            *ptr::addr_of!((*seg).page_of_slot)
                .cast::<*mut Page>()
                .add(slot)
        }
    }

    /// Page size for a kind.
    pub const fn page_shift_of(kind: SegmentKind) -> usize {
        match kind {
            SegmentKind::Small => SMALL_PAGE_SHIFT,
            SegmentKind::Medium => MEDIUM_PAGE_SHIFT,
            SegmentKind::Huge => usize::BITS as usize - 1,
        }
    }

    /// Writes a fresh header for a segment of `kind` and `size` bytes at `at`.
    ///
    /// # Safety
    /// `at` is the start of a writable, `SEGMENT_SIZE`-aligned range of `size` bytes.
    pub unsafe fn init(at: *mut u8, kind: SegmentKind, size: usize, zeroed: bool) -> *mut Segment {
        debug_assert!(at as usize & SEGMENT_MASK == 0);
        let seg = at.cast::<Segment>();
        let page_shift = Self::page_shift_of(kind);
        let page_count = match kind {
            SegmentKind::Huge => 1,
            _ => SEGMENT_SIZE >> page_shift,
        };
        // SAFETY: the caller hands us the range; the header fits in HEADER_SIZE bytes.
        unsafe {
            ptr::addr_of_mut!((*seg).thread_id).write(AtomicUsize::new(owner::NONE));
            ptr::addr_of_mut!((*seg).page_shift).write(page_shift);
            ptr::addr_of_mut!((*seg).kind).write(kind);
            ptr::addr_of_mut!((*seg).zeroed).write(zeroed);
            ptr::addr_of_mut!((*seg).used_since_zeroed).write(0);
            ptr::addr_of_mut!((*seg).dirty_new).write(0);
            ptr::addr_of_mut!((*seg).dirty_old).write(0);
            ptr::addr_of_mut!((*seg).purge).write(PurgeSlots::new());
            ptr::addr_of_mut!((*seg).in_heap_list).write(false);
            ptr::addr_of_mut!((*seg).guard).write(false);
            ptr::addr_of_mut!((*seg).page_count).write(page_count);
            ptr::addr_of_mut!((*seg).used_pages).write(0);
            ptr::addr_of_mut!((*seg).size).write(size);
            ptr::addr_of_mut!((*seg).published_size).write(AtomicUsize::new(size));
            ptr::addr_of_mut!((*seg).owner_links).write(Links::UNLINKED);
            ptr::addr_of_mut!((*seg).registry_links).write(Links::UNLINKED);
            let pages = ptr::addr_of_mut!((*seg).pages).cast::<Page>();
            // Every slot finds the segment's live bitmap through the same bias.
            let live = ptr::addr_of_mut!((*seg).live) as usize;
            let live_bias = live.wrapping_sub(live_word_offset(at as usize));
            for i in 0..page_count {
                pages.add(i).write(Page {
                    live_bias: Cell::new(live_bias),
                    ..Page::EMPTY
                });
            }
            let slots = ptr::addr_of_mut!((*seg).page_of_slot).cast::<*mut Page>();
            for slot in 0..MAX_PAGES {
                let index = match kind {
                    SegmentKind::Huge => 0,
                    _ => slot >> (page_shift - SMALL_PAGE_SHIFT),
                };
                slots.add(slot).write(pages.add(index));
            }
        }
        seg
    }

    // The methods below take the segment as a raw pointer and touch only the fields they
    // name: a `&Segment` or `&mut Segment` would cover the whole header, whose registry links
    // other threads write under the arena's lock and whose atomics (`thread_id`, each page's
    // `thread_free`) other threads use at any time; Miri reports the owner's reference as a
    // data race with them.

    /// The byte range `[start, end)` that page `index` may fill with blocks.
    ///
    /// # Safety
    /// `this` is a valid segment.
    pub unsafe fn page_area(this: *const Segment, index: usize) -> (*mut u8, usize) {
        let base = this as usize;
        // SAFETY: per the contract; these fields are fixed while the segment is mapped (`size`
        // changes only on its user's thread, by huge realloc).
        let (shift, kind, size, guard) = unsafe {
            (
                (*this).page_shift,
                (*this).kind,
                (*this).size,
                (*this).guard,
            )
        };
        let start = if index == 0 {
            base + HEADER_SIZE + if guard { OS_PAGE } else { 0 }
        } else {
            base + (index << shift)
        };
        let end = match kind {
            SegmentKind::Huge => base + size,
            _ => base + ((index + 1) << shift),
        };
        (start as *mut u8, end)
    }

    /// Marks page slot `index` as used and says whether its memory still reads as zero. A
    /// slot waiting to be purged is reused as it is (no purge, no fault).
    ///
    /// # Safety
    /// `this` is a valid segment owned by the calling thread.
    pub unsafe fn take_slot_zeroed(this: *mut Segment, index: usize) -> bool {
        let bit = 1u64 << index;
        // SAFETY: per the contract; the slot fields are the owner's.
        unsafe {
            let zeroed = (*this).zeroed && (*this).used_since_zeroed & bit == 0;
            (*this).used_since_zeroed |= bit;
            (*this).dirty_new &= !bit;
            (*this).dirty_old &= !bit;
            zeroed
        }
    }

    /// Records that page slot `index` was just freed with its memory resident: it is purged
    /// once it has stayed free for a whole purge epoch.
    ///
    /// # Safety
    /// `this` is a valid segment owned by the calling thread.
    pub unsafe fn slot_freed(this: *mut Segment, index: usize) {
        let bit = 1u64 << index;
        // SAFETY: per the contract; the slot fields are the owner's.
        unsafe {
            debug_assert!(!(*Segment::page(this, index)).assigned.get());
            if (*this).used_since_zeroed & bit != 0 {
                (*this).dirty_new |= bit;
                (*this).dirty_old &= !bit;
            }
        }
    }

    /// The free page slots that have held blocks since the memory was last zeroed.
    ///
    /// # Safety
    /// `this` is a valid segment owned by the calling thread.
    pub unsafe fn free_used_slots(this: *mut Segment) -> u64 {
        // SAFETY: per the contract; indices stay below `page_count`.
        unsafe {
            (0..(*this).page_count)
                .filter(|&i| !(*Segment::page(this, i)).assigned.get())
                .fold(0, |m, i| m | 1 << i)
                & (*this).used_since_zeroed
        }
    }

    /// The metadata of page slot `index` (below `page_count`), derived from `this`.
    ///
    /// # Safety
    /// `this` is a valid segment and `index < MAX_PAGES`.
    #[inline(always)]
    pub unsafe fn page(this: *mut Segment, index: usize) -> *mut Page {
        debug_assert!(index < MAX_PAGES);
        // SAFETY: per the contract the index is inside the array.
        unsafe { ptr::addr_of_mut!((*this).pages).cast::<Page>().add(index) }
    }

    /// Index of the page slot whose metadata is at `page`.
    ///
    /// # Safety
    /// `this` is a valid segment and `page` one of its page slots.
    pub unsafe fn slot_index(this: *mut Segment, page: *const Page) -> usize {
        // SAFETY: per the contract.
        let first = unsafe { Segment::page(this, 0) };
        let i = (page as usize - first as usize) / core::mem::size_of::<Page>();
        // SAFETY: as above.
        debug_assert!(i < unsafe { (*this).page_count } && ptr::eq(first.wrapping_add(i), page));
        i
    }

    /// The bytes of the page slots in `mask` as runs of adjacent slots, OS-page aligned (the
    /// first slot's area starts after the header): what purging `mask` gives back.
    ///
    /// # Safety
    /// `this` is a valid segment and `mask` names slots below its `page_count`.
    pub unsafe fn slot_runs(this: *const Segment, mut mask: u64, mut f: impl FnMut(usize, usize)) {
        while mask != 0 {
            let first = mask.trailing_zeros() as usize;
            let len = (!(mask >> first)).trailing_zeros() as usize;
            // SAFETY: per the contract.
            let (start, end) = unsafe {
                (
                    Segment::page_area(this, first).0,
                    Segment::page_area(this, first + len - 1).1,
                )
            };
            let start = align_up(start as usize, OS_PAGE);
            if end > start {
                f(start, end - start);
            }
            mask &= !(((1u128 << (first + len)) - 1) as u64);
        }
    }

    /// A free page slot, if any.
    ///
    /// # Safety
    /// `this` is a valid segment owned by the calling thread.
    pub unsafe fn find_free_page(this: *mut Segment) -> Option<usize> {
        // SAFETY: per the contract; indices stay below `page_count`.
        unsafe {
            if (*this).used_pages == (*this).page_count {
                return None;
            }
            (0..(*this).page_count).find(|&i| !(*Segment::page(this, i)).assigned.get())
        }
    }
}

/// One byte per 4 MiB of the address space (47 bits of user space on x86-64, 48 on other
/// 64-bit targets, all of it on 32-bit ones): non-zero while a segment starts there. This is
/// how `free` tells oxalloc's pointers from foreign ones with one range check and one load,
/// before reading any header. It lives in `.bss` (32 MiB of address space on x86-64); a page
/// of it is only touched where segments are, 4096 segments (16 GiB) per page.
///
/// The map holds a pointer to its bytes (in a static of their own) rather than the bytes
/// themselves, and reaches one byte at a time through it, never through a reference to the
/// whole array: Miri walks every atomic of a reference it retags, at each call that takes one
/// (with the 2^16 bytes of the map under Miri, each `contains` took a tenth of a second while
/// it passed `&MapUnits` to a method; with the 2^20 words of an earlier map, 2000 `contains`
/// did not finish in five minutes). The pointer lives in an immutable static, so native code
/// folds it away.
pub struct SegmentMap {
    units: *const MapUnits,
}

// SAFETY: the pointer is to a static of atomics, shared by every thread.
unsafe impl Sync for SegmentMap {}

/// The bytes of a [`SegmentMap`].
pub struct MapUnits([AtomicU8; SegmentMap::UNITS]);

impl MapUnits {
    /// All clear (lives in `.bss`; untouched pages cost no memory).
    pub const fn new() -> Self {
        MapUnits([const { AtomicU8::new(0) }; SegmentMap::UNITS])
    }
}

impl Default for MapUnits {
    fn default() -> Self {
        Self::new()
    }
}

impl SegmentMap {
    const ADDRESS_BITS: usize = if usize::BITS < 48 {
        usize::BITS as usize
    } else if cfg!(miri) {
        // Miri interprets the map's initialisation byte by byte (minutes for 32 MiB), and
        // places its allocations low.
        38
    } else if cfg!(target_arch = "x86_64") {
        47
    } else {
        48
    };
    const UNITS: usize = 1 << (Self::ADDRESS_BITS - SEGMENT_SHIFT);

    /// A map over `units` (all clear for an empty map).
    pub const fn over(units: &'static MapUnits) -> Self {
        SegmentMap { units }
    }

    /// The byte of `unit`, if the map covers it: a place projection through the pointer, with
    /// no reference to the whole array.
    #[inline(always)]
    fn get(&self, unit: usize) -> Option<&'static AtomicU8> {
        if unit < Self::UNITS {
            // SAFETY: `units` points to a `MapUnits` in a static (see `over`), and `unit` is
            // in range.
            Some(unsafe { &*ptr::addr_of!((*self.units).0[unit]) })
        } else {
            None
        }
    }

    /// Whether a segment starts at the segment address of `p`.
    #[inline(always)]
    pub fn contains(&self, p: *const u8) -> bool {
        // Range-checked, not masked: a garbage pointer whose low bits name a segment (a
        // corrupted top byte) must not alias onto it, or `free` would read a header through a
        // non-canonical address.
        match self.get(p as usize >> SEGMENT_SHIFT) {
            Some(u) => u.load(Ordering::Relaxed) != 0,
            None => false,
        }
    }

    /// Records a segment; returns false if its address is outside the map.
    pub fn insert(&self, segment: *mut Segment) -> bool {
        match self.get(segment as usize >> SEGMENT_SHIFT) {
            // Unit 0 is never a segment's: `free` finds null there (`contains(null)` is false,
            // so its fast path needs no test of its own for null).
            Some(u) if segment as usize >> SEGMENT_SHIFT != 0 => {
                u.store(1, Ordering::Release);
                true
            }
            _ => false,
        }
    }

    /// Forgets a segment.
    pub fn remove(&self, segment: *mut Segment) {
        if let Some(u) = self.get(segment as usize >> SEGMENT_SHIFT) {
            u.store(0, Ordering::Release);
        }
    }
}

/// The bytes of [`SEGMENT_MAP`].
static SEGMENT_UNITS: MapUnits = MapUnits::new();

/// The process-wide map: segment addresses are unique in a process, whichever heap owns them.
pub static SEGMENT_MAP: SegmentMap = SegmentMap::over(&SEGMENT_UNITS);

#[cfg(test)]
mod tests {
    use super::*;

    /// A small segment set up in memory of the test's own (4 MiB, aligned), freed on drop.
    struct TestSegment(*mut Segment);

    impl TestSegment {
        fn new() -> Self {
            let layout = std::alloc::Layout::from_size_align(SEGMENT_SIZE, SEGMENT_SIZE).unwrap();
            // SAFETY: the layout is not zero-sized; the memory is ours until drop.
            unsafe {
                let at = std::alloc::alloc_zeroed(layout);
                assert!(!at.is_null());
                TestSegment(Segment::init(at, SegmentKind::Small, SEGMENT_SIZE, true))
            }
        }

        /// The segment (a method, so closures capture the whole `TestSegment`, which is
        /// `Sync`).
        fn seg(&self) -> *mut Segment {
            self.0
        }
    }

    impl Drop for TestSegment {
        fn drop(&mut self) {
            let layout = std::alloc::Layout::from_size_align(SEGMENT_SIZE, SEGMENT_SIZE).unwrap();
            // SAFETY: allocated in `new` with this layout.
            unsafe { std::alloc::dealloc(self.0.cast(), layout) };
        }
    }

    // SAFETY: the test segment is shared between the test's threads only through its atomics.
    unsafe impl Send for TestSegment {}
    // SAFETY: as above.
    unsafe impl Sync for TestSegment {}

    #[test]
    fn a_segment_set_up_again_has_nothing_published_or_held() {
        let t = TestSegment::new();
        // SAFETY: the segment is valid and ours; set up again in the same memory, as the span
        // cache's reuse does.
        unsafe {
            (*t.seg()).purge.publish(3, 7);
            assert_eq!((*t.seg()).purge.claim(), 1 << 3);
            let again = Segment::init(t.seg().cast(), SegmentKind::Small, SEGMENT_SIZE, false);
            assert!(!(*again).purge.any_ready());
            assert_eq!((*again).purge.busy(), 0);
        }
    }

    #[test]
    fn map_tracks_segments() {
        static UNITS: MapUnits = MapUnits::new();
        static MAP: SegmentMap = SegmentMap::over(&UNITS);
        let map = &MAP;
        let seg = (7 * SEGMENT_SIZE) as *mut Segment;
        assert!(!map.contains(seg.cast()));
        assert!(map.insert(seg));
        assert!(map.contains((7 * SEGMENT_SIZE + 12345) as *const u8));
        assert!(!map.contains((8 * SEGMENT_SIZE) as *const u8));
        map.remove(seg);
        assert!(!map.contains(seg.cast()));
        assert!(!map.contains(usize::MAX as *const u8));
    }
}
