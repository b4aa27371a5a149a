//! Pages: runs of equal-sized blocks of one size class, and the free lists inside them.
//!
//! A page (64 KiB for small classes, 512 KiB for medium ones; not an OS page) lives inside a
//! segment, whose header holds the `Page` struct. Blocks are handed out from `free`; the owning
//! thread pushes freed blocks on `local_free`; other threads push on the atomic `thread_free`.
//! The owner moves the latter two into `free` only when `free` runs dry (the "free list
//! sharding" of mimalloc), so the fast paths never touch a shared cache line.
//!
//! Invariants, with `|l|` the length of list `l` (checked by `validate` under `debug-full`):
//! - `used + |free| + |local_free| == capacity`, where a block on `thread_free` still counts as
//!   used until the owner collects it;
//! - `capacity <= reserved`; blocks `capacity..reserved` have never been touched;
//! - `flags == 0` iff the slot holds a page that is not in the full queue and holds no interior
//!   (aligned) pointers and no sampled block of the heap profile, which is what lets the owner's
//!   free take its fast path (a free slot has `FLAG_UNASSIGNED`);
//! - the live bitmap (one bit per 16-byte granule of the slot, see [`Page::live_word`]) has
//!   exactly one bit set per used block: at the block's start, or at the aligned pointer `malloc`
//!   returned inside it. A block on `thread_free` is still used, so its bit is still set; the
//!   owner clears it when it collects the block. A free slot's bits are all clear.
//! - every field but `thread_free`, `heap`, `flags`, `published` and `sample` (atomics) is
//!   written by the owning thread only (the page's heap, or the thread holding an abandoned
//!   segment it took off the list); other threads read only fields that are fixed while they
//!   may touch the page (see below).
//!
//! ## Sharing: no `&mut Page`
//! Other threads hold `&Page` at any time: a remote free of one of its blocks (it reads the
//! flags, the live bitmap, the block area and pushes on `thread_free`), and heap walks and
//! statistics (the published word). In Rust's model a reference's retag reads every byte of
//! the struct outside an `UnsafeCell`, and a `&mut Page` asserts that nobody else reads any of
//! it, so the owner never takes `&mut Page` once the segment is set up (page 0 of a huge
//! segment included), and every field is a `Cell` (owner-mutable words), an atomic (words
//! other threads read while the owner writes them) or, for the queue links that the intrusive
//! list writes through raw pointers, an `UnsafeCell`. A `&Page` then covers no byte that a
//! plain write changes, wherever it was taken. The owner's methods take `&self` and are
//! `unsafe` where they write (the contract: the caller owns the page); `Page: Sync` by that
//! protocol. Methods with loops read the fields they need into locals first: a `Cell` read
//! after a store through a block pointer is a fresh load (LLVM cannot tell the block from the
//! page's own words, which a `&mut self` used to promise it).
//!
//! Free-list links are stored encoded with the page's two random keys (`encode`), so no stored
//! word gives a key away; `malloc` checks every decoded link before it follows it, so a
//! use-after-free write cannot steer it to an arbitrary address. Frees check the live bitmap,
//! not the block, so whatever a freed block holds, freeing it again is caught.

use crate::secure;
use crate::size_class::{ALIGN, SEGMENT_SHIFT};
use crate::thread_free::{delayed, ThreadFree};
use crate::util::list::{Linked, Links};
use crate::util::sync::{link_read, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use core::cell::{Cell, UnsafeCell};
use core::ptr;

/// A free block: its first word links to the next free block (encoded, see [`Page::encode`]).
#[repr(C)]
pub struct Block {
    next: usize,
}

impl Block {
    /// The block's link word, as stored (encoded).
    #[inline]
    pub fn next_word(&self) -> usize {
        self.next
    }
}

/// `flags` bit: the page is in its heap's full queue.
pub const FLAG_IN_FULL: u8 = 1;
/// `flags` bit: `malloc` handed out interior pointers of this page (aligned allocation).
pub const FLAG_HAS_ALIGNED: u8 = 2;
/// `flags` bit: the slot holds no page (so a free into it leaves the fast path).
pub const FLAG_UNASSIGNED: u8 = 4;
/// `flags` bit: a page of a secure heap (see `secure`): its frees leave the fast path.
pub const FLAG_SECURE: u8 = 8;
/// `flags` bit, with `FLAG_SECURE`: freed blocks are zeroed rather than filled.
pub const FLAG_ZERO_FREED: u8 = 16;
/// `flags` bit: the page may hold a live sampled block of the heap profile (see `profile`).
pub const FLAG_SAMPLED: u8 = 32;
/// `flags` bit: the page of a huge segment (its frees take the generic path on every thread).
pub const FLAG_HUGE: u8 = 64;

/// log2 of the live bitmap's granule: every block starts on a multiple of 16 bytes.
pub const LIVE_GRANULE_SHIFT: usize = 4;
/// log2 of the bytes of memory one live bitmap word covers.
pub const LIVE_WORD_SHIFT: usize = LIVE_GRANULE_SHIFT + usize::BITS.trailing_zeros() as usize;

/// Byte offset of the live bitmap word of address `p` from the bitmap of the segment at 0:
/// a segment at `s` finds the word at `bitmap + live_word_offset(p) - live_word_offset(s)`.
#[inline(always)]
pub const fn live_word_offset(p: usize) -> usize {
    (p >> LIVE_WORD_SHIFT) * core::mem::size_of::<usize>()
}

/// Rotation of the link encoding.
const LINK_ROTATION: u32 = 23;

/// The free-list link is corrupted: `block`'s link decoded to `link`, outside its segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CorruptLink {
    /// The free block whose first word was overwritten.
    pub block: usize,
}

#[cfg(test)]
impl Page {
    /// `pop_free` for tests: a corrupted link is `Err` (the list is left as it was).
    unsafe fn try_pop(&self) -> Result<*mut u8, CorruptLink> {
        extern crate std;
        let head = self.free.get();
        // SAFETY: per `pop_free`'s contract, which the tests keep.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe {
            self.pop_free(|bad| std::panic::panic_any(bad))
        }));
        r.map_err(|e| {
            assert_eq!(self.free.get(), head);
            *e.downcast::<CorruptLink>().unwrap()
        })
    }
}

/// Most bytes linked into `free` in one extension: carving lazily keeps fresh pages untouched
/// (and out of the resident set) until they are needed.
const EXTEND_BYTES: usize = 16 * 1024;

/// A page's metadata, stored in its segment's header. Cache-line aligned, so the fields the
/// fast paths touch (`free`, `used`, `flags`, the keys, `local_free`, `live_bias`, and
/// `sample` for frees on a page that holds a sample of the heap profile) share one line.
///
/// Every field is interior-mutable (see the module's "Sharing"): `Cell`s written by the owner
/// only, atomics for what other threads read while the owner writes it. Fields marked *fixed*
/// are written when the slot is set up ([`Page::init`], or the segment's set-up for
/// `live_bias`) and by huge realloc on its own segment, and stay as they are while any other
/// thread may read them (while a block of the page is live).
#[repr(C, align(64))]
pub struct Page {
    /// Blocks ready for `malloc` (encoded links).
    pub free: Cell<*mut Block>,
    /// Blocks handed out and not yet collected back.
    pub used: Cell<u32>,
    /// `FLAG_*` bits; zero on the owner's free fast path. Written by the owner only (`add_flags`,
    /// `remove_flags`, `set_flags`: a relaxed load and store, no read-modify-write), read by
    /// every thread's `free`, hence atomic.
    pub(crate) flags: AtomicU8,
    /// Size class of the blocks (fixed).
    pub bin: Cell<u8>,
    /// The slot holds a page of some heap (false: a free slot of its segment).
    pub assigned: Cell<bool>,
    /// Every block on `free` reads as zero but for its link word: they were carved from memory
    /// that came zeroed from the source and was never used (`malloc_zeroed` clears the link).
    pub free_zeroed: Cell<bool>,
    /// First key of the free-list link encoding (fixed).
    pub key: Cell<usize>,
    /// Blocks freed by the owning thread since the last collection (encoded links).
    pub local_free: Cell<*mut Block>,
    /// Second key of the free-list link encoding (fixed).
    pub key2: Cell<usize>,
    /// Address of the segment's live bitmap minus `live_word_offset(segment)`, so that the
    /// word of any address `p` of the segment is at `live_bias + live_word_offset(p)`. Set
    /// when the segment is set up; it stays when the slot changes pages (fixed).
    pub live_bias: Cell<usize>,
    /// With `FLAG_SAMPLED`: the one sampled block the page has had since the flag was set, or,
    /// once it has had several, a filter of them (bit 0 set: see [`sample_bit`]). Frees of
    /// blocks it rules out skip the profile's table (see `note_sample`). Written by the owner
    /// before it hands the block out, read by every thread's free
    /// (in the fast paths' cache line: a free on a flagged page reads it).
    pub(crate) sample: AtomicUsize,
    /// The page's memory came zeroed and no block was carved from it before.
    pub memory_zeroed: Cell<bool>,
    /// `used` when the heap last accounted this page's live bytes (see `stats`).
    pub used_accounted: Cell<u32>,
    /// Huge pages only: the size last asked for, which tells realloc's growth from shrinking.
    pub requested: Cell<usize>,
    /// Size of each block (fixed).
    pub block_size: Cell<usize>,
    /// First block (fixed).
    pub start: Cell<*mut u8>,
    /// Blocks freed by other threads (plain links) and the delayed-free state (`thread_free`).
    pub thread_free: ThreadFree,
    /// Address of the owning heap, 0 when abandoned.
    pub heap: AtomicUsize,
    /// Links in the heap's page queue (written by the owner through raw pointers, see
    /// [`Linked`]).
    pub queue: UnsafeCell<Links<Page>>,
    /// What heap walks from other threads may read of the page, written by the owner when the
    /// page is set up, refilled and released (see [`Page::publish`]).
    pub published: AtomicU64,
    /// Blocks carved so far.
    pub capacity: Cell<u32>,
    /// Blocks that fit in the page (fixed).
    pub reserved: Cell<u32>,
}

// The fields of the fast paths are in the page's first cache line.
const _: () = assert!(
    core::mem::offset_of!(Page, sample) + core::mem::size_of::<usize>() <= 64
        && core::mem::offset_of!(Page, live_bias) < 64
);

/// The bit of `block` in a page's filter of sampled blocks (`Page::sample` with bit 0 set): one
/// of bits 1 to 63 (31 on 32-bit targets), by a multiplicative hash of the block's 16-byte
/// granule. With k samples in a page, a free of another block looks in the table with a chance
/// of about k in 63.
#[inline(always)]
pub const fn sample_bit(block: usize) -> usize {
    const SHIFT: u32 = 64 - usize::BITS.trailing_zeros();
    let h = (((block >> 4) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> SHIFT) as u32;
    // Bit 0 is the filter's tag.
    1usize << if h == 0 { 1 } else { h }
}

// SAFETY: the ownership protocol of the module's "Sharing": a page's `Cell`s and queue links are
// written by one thread at a time, its owner (the heap's thread, or the thread that took its
// abandoned segment off the arena's list, which hands it over with acquire/release); other
// threads touch only the atomics (`flags`, `thread_free`, `heap`, `published`, `sample`, the
// live bitmap) and read the fixed fields, which nobody writes while a block of the page is live.
// Page's methods that write a `Cell` are `unsafe` with "the caller owns the page" as their
// contract, and the crate's direct writes of its cells are all on the owner's paths.
unsafe impl Sync for Page {}

/// A page's published word, as heap walks from other threads read it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Published {
    /// The slot holds a page.
    pub assigned: bool,
    /// Size class (0 for a huge block).
    pub bin: u8,
    /// Blocks carved, as of the last refill.
    pub capacity: u32,
    /// Blocks in use, as of the last refill.
    pub used: u32,
}

impl Published {
    /// Unpacks a published word.
    pub fn from_word(w: u64) -> Self {
        Published {
            assigned: w & 1 != 0,
            bin: (w >> 8) as u8,
            capacity: (w >> 16) as u32 & 0xff_ffff,
            used: (w >> 40) as u32 & 0xff_ffff,
        }
    }
}

/// Marker of the page queues' list (`Page::queue`).
pub struct InQueue;

// SAFETY: `queue` is the one field page queues link through.
unsafe impl Linked<InQueue> for Page {
    #[inline(always)]
    unsafe fn links(this: *mut Self) -> *mut Links<Self> {
        // SAFETY: `this` points to a valid page per the contract. The links are inside an
        // `UnsafeCell`, so writes through the pointer are allowed while other threads hold
        // `&Page`.
        unsafe { UnsafeCell::raw_get(ptr::addr_of!((*this).queue)) }
    }
}

/// A page's two link keys, read once (loops keep them in registers).
#[derive(Clone, Copy)]
pub struct LinkKeys {
    key: usize,
    key2: usize,
}

impl LinkKeys {
    /// Encodes a link for storage in a free block: XOR with one key, a rotation, and the other
    /// key added, so that neither a link nor the end of a list (null) stores a key as it is.
    #[inline(always)]
    pub fn encode(self, next: *mut Block) -> usize {
        (next as usize ^ self.key)
            .rotate_left(LINK_ROTATION)
            .wrapping_add(self.key2)
    }

    /// Decodes a link read from a free block.
    #[inline(always)]
    pub fn decode(self, stored: usize) -> *mut Block {
        (stored.wrapping_sub(self.key2).rotate_right(LINK_ROTATION) ^ self.key) as *mut Block
    }
}

/// The live bitmap word that holds the bit of address `p`, for a page whose `live_bias` is
/// `bias` (see [`Page::live_word`]).
///
/// # Safety
/// `bias` is the `live_bias` of a page the caller can read, `p` an address of its segment,
/// and the reference is not kept past the caller's use of that page.
#[inline(always)]
unsafe fn live_word_at<'a>(bias: usize, p: usize) -> &'a AtomicUsize {
    debug_assert!(bias != 0, "no live bitmap for {:#x}", p);
    // SAFETY: `live_bias` was set up by the segment so that every address of the segment maps
    // to a word of its bitmap, which lives as long as the segment (and the page).
    unsafe { &*((bias.wrapping_add(live_word_offset(p))) as *const AtomicUsize) }
}

/// [`Page::clear_live`] with the page's `live_bias` already read.
///
/// # Safety
/// As for [`live_word_at`].
#[inline(always)]
unsafe fn clear_live_at(bias: usize, p: usize) -> bool {
    // SAFETY: per the contract.
    let word = unsafe { live_word_at(bias, p) };
    let w = word.load(Ordering::Relaxed);
    let index = Page::live_index(p);
    // `!1` rotated: the form that compiles to one `btr`.
    word.store(w & (!1usize).rotate_left(index), Ordering::Relaxed);
    Page::live_test(w, index)
}

impl Page {
    /// A page slot that holds nothing (copied into place, never shared).
    #[allow(clippy::declare_interior_mutable_const)]
    pub const EMPTY: Page = Page {
        free: Cell::new(ptr::null_mut()),
        used: Cell::new(0),
        flags: AtomicU8::new(FLAG_UNASSIGNED),
        bin: Cell::new(0),
        assigned: Cell::new(false),
        free_zeroed: Cell::new(false),
        memory_zeroed: Cell::new(false),
        key: Cell::new(0),
        local_free: Cell::new(ptr::null_mut()),
        key2: Cell::new(0),
        live_bias: Cell::new(0),
        capacity: Cell::new(0),
        reserved: Cell::new(0),
        used_accounted: Cell::new(0),
        requested: Cell::new(0),
        block_size: Cell::new(0),
        start: Cell::new(ptr::null_mut()),
        thread_free: ThreadFree::new(delayed::NEVER),
        heap: AtomicUsize::new(0),
        queue: UnsafeCell::new(Links::UNLINKED),
        published: AtomicU64::new(0),
        sample: AtomicUsize::new(0),
    };

    /// Publishes the page's state for heap walks from other threads (owner only; slow paths).
    #[inline]
    pub fn publish(&self) {
        let w = self.assigned.get() as u64
            | (self.bin.get() as u64) << 8
            | (self.capacity.get() as u64 & 0xff_ffff) << 16
            | (self.used.get() as u64 & 0xff_ffff) << 40;
        self.published.store(w, Ordering::Relaxed);
    }

    /// The `FLAG_*` bits (any thread).
    #[inline(always)]
    pub fn flags(&self) -> u8 {
        self.flags.load(Ordering::Relaxed)
    }

    /// Replaces the `FLAG_*` bits. Only the page's owner (or whoever initialises the slot)
    /// writes them, so a load and a store, not a read-modify-write, keep every bit.
    #[inline(always)]
    pub fn set_flags(&self, flags: u8) {
        self.flags.store(flags, Ordering::Relaxed);
    }

    /// Sets `bits` (owner only, see `set_flags`).
    #[inline(always)]
    pub fn add_flags(&self, bits: u8) {
        self.set_flags(self.flags() | bits);
    }

    /// Clears `bits` (owner only, see `set_flags`).
    #[inline(always)]
    pub fn remove_flags(&self, bits: u8) {
        self.set_flags(self.flags() & !bits);
    }

    /// Marks the page as holding the sampled block `block` (owner, before the block is handed
    /// out): the page's first sample since the flag was set is remembered exactly; a second
    /// one turns the hint into a filter of the blocks sampled since (the filter keeps bits of
    /// samples already freed until the flag is cleared: they only cost a look in the table).
    #[inline]
    pub fn note_sample(&self, block: usize) {
        debug_assert!(block % 16 == 0, "blocks start on 16-byte granules");
        let hint = self.sample.load(Ordering::Relaxed);
        let hint = if self.flags() & FLAG_SAMPLED == 0 || hint == block {
            block
        } else if hint & 1 != 0 {
            hint | sample_bit(block)
        } else {
            1 | sample_bit(hint) | sample_bit(block)
        };
        self.sample.store(hint, Ordering::Relaxed);
        self.add_flags(FLAG_SAMPLED);
    }

    /// With `FLAG_SAMPLED` set: whether `block` may be a sampled block (false: it is not, and
    /// its free need not look in the table). Any thread.
    #[inline]
    pub fn may_be_sampled(&self, block: usize) -> bool {
        let hint = self.sample.load(Ordering::Relaxed);
        hint == block || (hint & 1 != 0 && hint & sample_bit(block) != 0)
    }

    /// The page's link keys.
    #[inline(always)]
    pub fn keys(&self) -> LinkKeys {
        LinkKeys {
            key: self.key.get(),
            key2: self.key2.get(),
        }
    }

    /// Encodes a link for storage in a free block (see [`LinkKeys::encode`]).
    #[inline(always)]
    pub fn encode(&self, next: *mut Block) -> usize {
        self.keys().encode(next)
    }

    /// Decodes a link read from a free block.
    #[inline(always)]
    pub fn decode(&self, stored: usize) -> *mut Block {
        self.keys().decode(stored)
    }

    /// The live bitmap word that holds the bit of address `p` (any address of the segment).
    #[inline(always)]
    pub fn live_word(&self, p: usize) -> &AtomicUsize {
        // SAFETY: our own `live_bias`; the word lives as long as the page.
        unsafe { live_word_at(self.live_bias.get(), p) }
    }

    /// The index of address `p`'s bit in its live bitmap word.
    #[inline(always)]
    pub fn live_index(p: usize) -> u32 {
        ((p >> LIVE_GRANULE_SHIFT) & (usize::BITS as usize - 1)) as u32
    }

    /// The bit of address `p` in its live bitmap word.
    #[inline(always)]
    pub fn live_bit(p: usize) -> usize {
        1usize << Self::live_index(p)
    }

    /// Whether bit `index` of live word `w` is set (written so that it compiles to a bit test).
    #[inline(always)]
    pub fn live_test(w: usize, index: u32) -> bool {
        (w >> index) & 1 != 0
    }

    /// Whether `p` is a live pointer of this page (a used block's start, or the aligned pointer
    /// `malloc` returned inside it). Any thread may ask; only the owner's answer is exact.
    #[inline(always)]
    pub fn is_live(&self, p: usize) -> bool {
        p & (ALIGN - 1) == 0 && self.live_word(p).load(Ordering::Relaxed) & Self::live_bit(p) != 0
    }

    /// Records `p` as live (owner only).
    #[inline(always)]
    pub fn mark_live(&self, p: usize) {
        let word = self.live_word(p);
        let w = word.load(Ordering::Relaxed);
        debug_assert!(w & Self::live_bit(p) == 0, "{:#x} is live already", p);
        word.store(w | Self::live_bit(p), Ordering::Relaxed);
    }

    /// Clears `p`'s live bit (owner only); false if it was not set: `p` is not live.
    #[inline(always)]
    pub fn clear_live(&self, p: usize) -> bool {
        // SAFETY: our own `live_bias`; the word is not kept.
        unsafe { clear_live_at(self.live_bias.get(), p) }
    }

    /// Number of live bits in the page's block area (validation and tests).
    pub fn live_count(&self) -> u32 {
        // A word at a time, masked to the granules of `[start, end)`.
        let (start, end) = (self.start.get() as usize, self.end());
        let bias = self.live_bias.get();
        let word_bytes = 1usize << LIVE_WORD_SHIFT;
        let mut n = 0;
        let mut w = start & !(word_bytes - 1);
        while w < end {
            // SAFETY: our own `live_bias`; the word is not kept.
            let mut bits = unsafe { live_word_at(bias, w) }.load(Ordering::Relaxed);
            if start > w {
                bits &= !0usize << ((start - w) >> LIVE_GRANULE_SHIFT);
            }
            if end < w + word_bytes {
                bits &= !(!0usize << ((end - w) >> LIVE_GRANULE_SHIFT));
            }
            n += bits.count_ones();
            w += word_bytes;
        }
        n
    }

    /// Clears the live bits of `[from, to)` (whole words: the range is a page slot's area,
    /// and no other page's bits share a word with it).
    pub fn clear_live_range(&self, from: usize, to: usize) {
        let bias = self.live_bias.get();
        let mut p = from & !((1 << LIVE_WORD_SHIFT) - 1);
        while p < to {
            // SAFETY: our own `live_bias`; the word is not kept.
            unsafe { live_word_at(bias, p) }.store(0, Ordering::Relaxed);
            p += 1 << LIVE_WORD_SHIFT;
        }
    }

    /// Pops a block from `free`; the caller checked that `free` is not empty. The link is
    /// checked before it becomes the list's head: a link that leaves the block's segment (a
    /// write after free) calls `corrupt` with the block, which must not return (it ends the
    /// process).
    ///
    /// # Safety
    /// `self.free` is non-null and the page is owned by the calling thread.
    #[inline(always)]
    pub unsafe fn pop_free<F: FnOnce(CorruptLink)>(&self, corrupt: F) -> *mut u8 {
        let block = self.free.get();
        debug_assert!(!block.is_null());
        debug_assert!(
            self.contains(block as usize),
            "free list left page {:p}: {:p}",
            self,
            block
        );
        // SAFETY: `block` is on this page's free list (its link was checked when it became the
        // head), so it is a free block of this page and its first word is an encoded link
        // written by this page, or whatever a write after free left there.
        let next = self.decode(unsafe { (*block).next });
        if (next as usize ^ block as usize) >> SEGMENT_SHIFT != 0 {
            // SAFETY: per the contract.
            return unsafe { self.pop_last(block, next, corrupt) };
        }
        self.free.set(next);
        self.mark_live(block as usize);
        self.used.set(self.used.get() + 1);
        block.cast()
    }

    /// The rest of a pop whose link leaves the block's segment: the end of the list (null), or
    /// a corrupted link. Cold and apart, so the pop's check is one test and one branch.
    ///
    /// # Safety
    /// As for `pop_free`, with `block` the head of `free` and `next` its decoded link.
    #[cold]
    #[inline(never)]
    unsafe fn pop_last<F: FnOnce(CorruptLink)>(
        &self,
        block: *mut Block,
        next: *mut Block,
        corrupt: F,
    ) -> *mut u8 {
        if !next.is_null() {
            corrupt(CorruptLink {
                block: block as usize,
            });
            unreachable!("the corrupt-link handler returned");
        }
        self.free.set(next);
        self.mark_live(block as usize);
        self.used.set(self.used.get() + 1);
        block.cast()
    }

    /// Pushes a block freed by the owner on `local_free`.
    ///
    /// # Safety
    /// `block` is the start of a block of this page that is in use, and the caller owns the page.
    #[inline(always)]
    pub unsafe fn push_local(&self, block: *mut Block) {
        debug_assert!(self.used.get() > 0);
        let link = self.encode(self.local_free.get());
        // SAFETY: the block belongs to this page and is no longer used by the program.
        unsafe { (*block).next = link };
        self.local_free.set(block);
        self.used.set(self.used.get() - 1);
    }

    /// End of the page's block area.
    #[inline]
    pub fn end(&self) -> usize {
        self.start.get() as usize + self.reserved.get() as usize * self.block_size.get()
    }

    /// Whether `addr` lies in the page's block area.
    #[inline]
    pub fn contains(&self, addr: usize) -> bool {
        addr >= self.start.get() as usize && addr < self.end()
    }

    /// Start of the block containing `addr` (which must be inside the page).
    #[inline]
    pub fn block_start(&self, addr: usize) -> *mut Block {
        debug_assert!(self.contains(addr));
        let (start, block_size) = (self.start.get() as usize, self.block_size.get());
        let offset = addr - start;
        (start + offset - offset % block_size) as *mut Block
    }

    /// The block a live pointer of this page belongs to: itself, unless the page has handed
    /// out aligned pointers inside blocks.
    #[inline]
    pub fn block_of(&self, p: usize) -> *mut Block {
        if self.flags() & FLAG_HAS_ALIGNED != 0 {
            self.block_start(p)
        } else {
            p as *mut Block
        }
    }

    /// Sets the page up for blocks of `bin` between `start` and `end`; `zeroed` says the memory
    /// reads as zero. Every field but `live_bias` is written (one at a time: other threads may
    /// be reading the slot's atomics, and a heap walk its published word).
    ///
    /// # Safety
    /// The calling thread owns the slot, which holds no page, and no block of it is live.
    pub unsafe fn init(
        &self,
        bin: usize,
        block_size: usize,
        start: *mut u8,
        end: usize,
        key: usize,
        zeroed: bool,
    ) {
        debug_assert!(!self.assigned.get());
        debug_assert!(block_size % ALIGN == 0 || bin == 0);
        let reserved = (end - start as usize) / block_size;
        debug_assert!(reserved >= 1, "page too small for its block size");
        self.free.set(ptr::null_mut());
        self.used.set(0);
        self.set_flags(0);
        self.bin.set(bin as u8);
        self.assigned.set(true);
        self.free_zeroed.set(false);
        self.key.set(key);
        self.local_free.set(ptr::null_mut());
        self.key2.set(mix(key));
        self.capacity.set(0);
        self.reserved.set(reserved as u32);
        self.memory_zeroed.set(zeroed);
        self.used_accounted.set(0);
        self.requested.set(0);
        self.block_size.set(block_size);
        self.start.set(start);
        self.thread_free.reset(delayed::NORMAL);
        self.heap.store(0, Ordering::Relaxed);
        // SAFETY: the owner is the only writer of the links, and the page is in no queue.
        unsafe { self.queue.get().write(Links::UNLINKED) };
        self.published.store(0, Ordering::Relaxed);
        self.sample.store(0, Ordering::Relaxed);
        // A huge block (bin 0) has no live bits: its segment's bitmap is never used.
        if bin != 0 {
            if !zeroed {
                // Earlier pages of the slot cleared their bits as their blocks were freed, but
                // a segment reused without a purge may hold anything in its header.
                self.clear_live_range(start as usize, end);
            }
            // Every granule of the page is read: left to native test runs, Miri takes minutes.
            debug_assert!(
                cfg!(miri) || self.live_count() == 0,
                "page {:p}: stale live bits",
                self
            );
        }
    }

    /// Links up to [`EXTEND_BYTES`] of never-used blocks into `free`; returns how many.
    ///
    /// # Safety
    /// The caller owns the page, `free` is empty and `capacity < reserved`.
    #[inline(never)]
    pub unsafe fn extend(&self) -> u32 {
        let (capacity, block_size) = (self.capacity.get(), self.block_size.get());
        debug_assert!(self.free.get().is_null());
        debug_assert!(capacity < self.reserved.get());
        let room = self.reserved.get() - capacity;
        let want = (EXTEND_BYTES / block_size).max(1) as u32;
        let n = room.min(want);
        let first = self.start.get() as usize + capacity as usize * block_size;
        if self.flags() & FLAG_SECURE != 0 {
            // SAFETY: per the contract.
            return unsafe { self.extend_secure(first, n) };
        }
        let keys = self.keys();
        for i in 0..n as usize {
            let block = (first + i * block_size) as *mut Block;
            let next = if i + 1 < n as usize {
                (first + (i + 1) * block_size) as *mut Block
            } else {
                ptr::null_mut()
            };
            // SAFETY: the block lies in `capacity..reserved`, inside the page and unused.
            unsafe { (*block).next = keys.encode(next) };
        }
        self.free.set(first as *mut Block);
        self.free_zeroed.set(self.memory_zeroed.get());
        self.capacity.set(capacity + n);
        n
    }

    /// `extend` for a secure page: the `n` blocks from `first` are filled as freed blocks are
    /// and linked in a shuffled order.
    ///
    /// # Safety
    /// As for `extend`.
    #[cold]
    unsafe fn extend_secure(&self, first: usize, n: u32) -> u32 {
        let n = n as usize;
        let level = self.secure_level();
        let (block_size, capacity, keys) =
            (self.block_size.get(), self.capacity.get(), self.keys());
        // SAFETY: the blocks lie in `capacity..reserved`, inside the page and unused.
        unsafe {
            core::ptr::write_bytes(first as *mut u8, secure::fill_byte(level), n * block_size)
        };
        let (start, stride) = secure::carve_order(n, self.key2.get() ^ capacity as usize);
        let block_at = |i: usize| (first + (start + i * stride) % n * block_size) as *mut Block;
        for i in 0..n {
            let next = if i + 1 < n {
                block_at(i + 1)
            } else {
                ptr::null_mut()
            };
            // SAFETY: as above.
            unsafe { (*block_at(i)).next = keys.encode(next) };
        }
        self.free.set(block_at(0));
        self.free_zeroed.set(false);
        self.capacity.set(capacity + n as u32);
        n as u32
    }

    /// The `OXALLOC_SECURE` level of a secure page (see [`secure::level`]).
    pub fn secure_level(&self) -> usize {
        if self.flags() & FLAG_ZERO_FREED != 0 {
            secure::level::ZERO
        } else {
            secure::level::ON
        }
    }

    /// Moves blocks freed by other threads onto `local_free`. Returns the number of blocks collected from other threads, or the address
    /// of a block that was on the list more often than the page has used blocks (a double free
    /// by other threads).
    ///
    /// # Safety
    /// The caller owns the page.
    pub unsafe fn collect(&self) -> Result<u32, usize> {
        let mut freed = self.thread_free.take_all();
        if freed == 0 {
            return Ok(0);
        }
        // Loop invariants, read once: the block area, whether pointers may be interior, the
        // keys, the live bitmap. `left` counts the used blocks not collected yet.
        let (start, block_size) = (self.start.get() as usize, self.block_size.get());
        let area = self.end() - start;
        let aligned = self.flags() & FLAG_HAS_ALIGNED != 0;
        let (keys, bias) = (self.keys(), self.live_bias.get());
        let mut left = self.used.get();
        let mut local = self.local_free.get();
        while freed != 0 {
            // A remote free pushes the pointer the program freed: a block's start, or the
            // aligned pointer inside it. Its live bit goes now; one that is clear was freed
            // twice (by the owner and another thread, or by two others at once). One unsigned
            // comparison of the offset checks both ends of the block area.
            let offset = freed.wrapping_sub(start);
            let live = left != 0 && offset < area && {
                // SAFETY: our own `live_bias`, and `freed` lies in the page.
                unsafe { clear_live_at(bias, freed) }
            };
            if !live {
                self.local_free.set(local);
                self.used.set(left);
                return Err(freed);
            }
            // SAFETY: pointers on `thread_free` lie in blocks of this page; their first word is
            // a plain link written by a remote free before it published them. We took the
            // list, so it is ours alone now.
            let next = unsafe { link_read(freed) };
            let block = if aligned {
                (freed - offset % block_size) as *mut Block
            } else {
                freed as *mut Block
            };
            // SAFETY: the block is ours and free.
            unsafe { (*block).next = keys.encode(local) };
            local = block;
            left -= 1;
            freed = next;
        }
        self.local_free.set(local);
        let collected = self.used.get() - left;
        self.used.set(left);
        Ok(collected)
    }

    /// Moves `local_free` onto an empty `free`; returns how many blocks `free` now holds.
    ///
    /// # Safety
    /// The caller owns the page.
    pub unsafe fn take_local_free(&self) -> u32 {
        debug_assert!(self.free.get().is_null());
        let local = self.local_free.get();
        if local.is_null() {
            return 0;
        }
        self.free.set(local);
        self.local_free.set(ptr::null_mut());
        self.free_zeroed.set(false);
        // Every carved block is used, on `free`, or (until now) on `local_free`.
        let n = self.capacity.get() - self.used.get();
        if self.flags() & FLAG_SECURE != 0 {
            // SAFETY: the caller owns the page, and `free` holds the `n` blocks.
            unsafe { self.rotate_free(n) };
        }
        n
    }

    /// Secure pages: starts `free` at a pseudo-random block of its `n` (the list rotated), so
    /// the order blocks come back in is not the order they were freed in. A link that leaves
    /// the page stops the walk and leaves the list as it is (the pop reports it).
    ///
    /// # Safety
    /// The caller owns the page and `free` holds `n` blocks.
    #[cold]
    unsafe fn rotate_free(&self, n: u32) {
        if n < 2 {
            return;
        }
        let (free, keys) = (self.free.get(), self.keys());
        let k = (mix(self.key2.get() ^ self.used.get() as usize ^ (free as usize).rotate_left(32))
            % (n as usize - 1)) as u32
            + 1;
        // SAFETY: list members are free blocks of this page; every link is checked to stay in
        // the page before it is followed.
        unsafe {
            let mut cut = free;
            for _ in 1..k {
                let next = keys.decode((*cut).next);
                if !self.contains(next as usize) {
                    return;
                }
                cut = next;
            }
            let mut last = cut;
            loop {
                let next = keys.decode((*last).next);
                if next.is_null() {
                    break;
                }
                if !self.contains(next as usize) {
                    return;
                }
                last = next;
            }
            let new_head = keys.decode((*cut).next);
            if new_head.is_null() {
                return;
            }
            (*last).next = keys.encode(free);
            (*cut).next = keys.encode(ptr::null_mut());
            self.free.set(new_head);
        }
    }

    /// Number of blocks on `free` (walks the list; slow paths, statistics of the owner's own
    /// heap, and validation). Every link is checked to stay inside the page before it is
    /// followed, so a corrupted list is miscounted, never followed out of the page.
    ///
    /// # Safety
    /// The caller owns the page.
    pub unsafe fn free_len(&self) -> u32 {
        // SAFETY: the caller owns the page, so nobody changes `free` meanwhile.
        unsafe { self.list_len(self.free.get()) }
    }

    /// Number of blocks on `local_free` (owner only; see [`Page::free_len`]).
    ///
    /// # Safety
    /// The caller owns the page.
    pub unsafe fn local_free_len(&self) -> u32 {
        // SAFETY: as in `free_len`.
        unsafe { self.list_len(self.local_free.get()) }
    }

    /// Number of blocks on `thread_free` (owner only: the owner is the only thread that takes
    /// blocks off it, and its acquire load sees every link the pushers wrote before theirs).
    ///
    /// # Safety
    /// The caller owns the page.
    pub unsafe fn thread_free_len(&self) -> u32 {
        let mut n = 0;
        let reserved = self.reserved.get();
        let mut b = self.thread_free.head() as *mut Block;
        while !b.is_null() && n <= reserved && self.contains(b as usize) {
            n += 1;
            // SAFETY: blocks on `thread_free` are free blocks of this page with plain links.
            b = unsafe { link_read(b as usize) } as *mut Block;
        }
        n
    }

    /// Length of an encoded list of this page, bounded by the page's size.
    unsafe fn list_len(&self, mut b: *mut Block) -> u32 {
        let mut n = 0;
        let (reserved, keys) = (self.reserved.get(), self.keys());
        while !b.is_null() && n <= reserved && self.contains(b as usize) {
            n += 1;
            // SAFETY: `b` lies inside this page's block area, which the owner may read.
            b = keys.decode(unsafe { (*b).next });
        }
        n
    }

    /// Whether no block of the page is in use (blocks on `thread_free` count as in use until
    /// collected).
    #[inline]
    pub fn all_free(&self) -> bool {
        self.used.get() == 0
    }
}

/// The second link key, drawn from the first (a bijective mix, so distinct pages keep distinct
/// pairs).
fn mix(key: usize) -> usize {
    let mut x = key as u64;
    x = (x ^ (x >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    x = (x ^ (x >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    (x ^ (x >> 33)) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::boxed::Box;

    #[repr(align(65536))]
    struct Area([u8; 65536]);

    /// A page over a boxed 64 KiB area, with a live bitmap of its own.
    fn test_page(area: &mut Area, bitmap: &[AtomicUsize]) -> Page {
        let start = area.0.as_mut_ptr();
        assert!(bitmap.len() * core::mem::size_of::<usize>() >= live_word_offset(65536));
        let page = Page {
            live_bias: Cell::new(
                (bitmap.as_ptr() as usize).wrapping_sub(live_word_offset(start as usize)),
            ),
            ..Page::EMPTY
        };
        // SAFETY: the page is the test's alone.
        unsafe { page.init(2, 32, start, start as usize + 65536, 0x1234_5678, false) };
        page
    }

    #[test]
    fn the_sample_hint_names_the_one_sampled_block() {
        let mut area = Box::new(Area([0; 65536]));
        let bitmap: std::vec::Vec<AtomicUsize> = (0..128).map(|_| AtomicUsize::new(0)).collect();
        let page = test_page(&mut area, &bitmap);
        let (a, b) = (page.start.get() as usize, page.start.get() as usize + 32);
        page.note_sample(a);
        assert!(page.flags() & FLAG_SAMPLED != 0);
        assert!(
            page.may_be_sampled(a),
            "the sampled block looks in the table"
        );
        assert!(!page.may_be_sampled(b), "another block does not");
        page.note_sample(a);
        assert!(
            !page.may_be_sampled(b),
            "the same block again keeps the hint"
        );
        page.note_sample(b);
        assert!(
            page.may_be_sampled(a) && page.may_be_sampled(b),
            "two samples: both look in the table"
        );
        let all = 65536 / 32 - 2;
        let others = (2..2 + all)
            .map(|i| page.start.get() as usize + i * 32)
            .filter(|&c| page.may_be_sampled(c))
            .count();
        assert!(
            others * 63 <= all * 2 * 3,
            "{others} of {all} other blocks look in the table (expected about 2 in 63)"
        );
        page.remove_flags(FLAG_SAMPLED);
        page.note_sample(b);
        assert!(!page.may_be_sampled(a), "a new flag starts a new hint");
    }

    #[test]
    fn extend_pop_free_and_collect() {
        let mut area = Box::new(Area([0; 65536]));
        let bitmap: std::vec::Vec<AtomicUsize> = (0..128).map(|_| AtomicUsize::new(0)).collect();
        let start = area.0.as_mut_ptr();
        let page = test_page(&mut area, &bitmap);
        assert_eq!(page.reserved.get(), 2048);
        // SAFETY: the test owns the page and its area, and follows the free-list protocol.
        unsafe {
            let n = page.extend();
            assert_eq!(n, 512);
            let a = page.try_pop().unwrap();
            let b = page.try_pop().unwrap();
            assert_eq!(a, start);
            assert_eq!(b as usize, start as usize + 32);
            assert_eq!(page.used.get(), 2);
            assert!(page.is_live(a as usize) && page.is_live(b as usize));
            assert!(!page.is_live(a as usize + 16), "interior granule");
            assert!(!page.is_live(a as usize + 8), "unaligned");
            assert_eq!(page.live_count(), 2);
            assert!(page.clear_live(a as usize));
            assert!(
                !page.clear_live(a as usize),
                "a second clear reports the double free"
            );
            page.push_local(a.cast());
            assert_eq!(page.local_free_len(), 1);
            // A remote free: the owner clears the live bit when it collects the block.
            assert_eq!(
                page.thread_free.push(b as usize),
                Ok(crate::thread_free::Pushed::Listed)
            );
            assert!(page.is_live(b as usize));
            assert_eq!(page.collect(), Ok(1));
            assert!(!page.is_live(b as usize));
            assert_eq!(page.live_count(), 0);
            assert_eq!(page.used.get(), 0);
            assert_eq!(page.free_len(), 512 - 2);
            // Drain `free`, then the local list comes back as the allocation list.
            while !page.free.get().is_null() {
                page.try_pop().unwrap();
            }
            assert_eq!(page.take_local_free(), 2);
            assert_eq!(
                page.free.get() as *mut u8,
                b,
                "the collected remote free is first"
            );
            assert_eq!(page.block_start(b as usize + 17) as usize, b as usize);
        }
    }

    #[test]
    #[cfg_attr(
        target_family = "wasm",
        ignore = "catches a panic, and wasm32 builds abort on panic"
    )]
    fn no_stored_link_is_a_key_and_corrupt_links_are_caught() {
        let mut area = Box::new(Area([0; 65536]));
        let bitmap: std::vec::Vec<AtomicUsize> = (0..128).map(|_| AtomicUsize::new(0)).collect();
        let page = test_page(&mut area, &bitmap);
        // SAFETY: the test owns the page and its area.
        unsafe {
            page.extend();
            let words: std::vec::Vec<usize> = (0..512)
                .map(|i| *(page.start.get().add(i * 32) as *const usize))
                .collect();
            assert!(!words.contains(&page.key.get()) && !words.contains(&page.key2.get()));
            assert_eq!(page.decode(words[511]), ptr::null_mut(), "the list's end");
            assert_eq!(
                page.decode(page.encode(page.start.get().cast())),
                page.start.get().cast()
            );
            // A write after free into the head block: the pop that would follow it fails.
            let head = page.free.get();
            *(head as *mut usize) = 44;
            assert_eq!(
                page.try_pop(),
                Err(CorruptLink {
                    block: head as usize
                })
            );
            assert_eq!(page.free.get(), head, "the list is left as it was");
        }
    }

    #[test]
    fn delayed_state_keeps_the_list() {
        let mut block = [0usize; 2];
        let page = Page::EMPTY;
        page.thread_free.set_state(delayed::NORMAL);
        // SAFETY: `block` is ours to link.
        unsafe { page.thread_free.push(block.as_mut_ptr() as usize).unwrap() };
        page.thread_free.set_state(delayed::USE_DELAYED);
        assert_eq!(page.thread_free.head(), block.as_mut_ptr() as usize);
        assert_eq!(page.thread_free.state(), delayed::USE_DELAYED);
        page.thread_free.set_state(delayed::NEVER);
        assert_eq!(page.thread_free.head(), block.as_mut_ptr() as usize);
        assert_eq!(page.thread_free.take_all(), block.as_mut_ptr() as usize);
        assert_eq!(page.thread_free.state(), delayed::NEVER);
    }
}
