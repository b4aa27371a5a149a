//! Sampled heap profiling: which allocations are sampled, and the table of sampled blocks that
//! are still live, each with the call stack that allocated it.
//!
//! ## Which allocations
//! Sample points fall on the bytes a heap hands out as a Poisson process of rate
//! `1 / OXALLOC_PROFILE_RATE` (the gaps between them are drawn from an exponential distribution,
//! as tcmalloc does). A block is sampled when a point falls inside it, so a block of `s` bytes is
//! sampled with probability `1 - exp(-s / rate)`: blocks much larger than the rate always are,
//! and dividing a sample's size by that probability gives an unbiased estimate of the bytes
//! behind it (the `oxalloc` command does so).
//!
//! ## Why the malloc fast path pays nothing
//! The fast path pops a page's `free` list and has one test (is the list empty?). Instead of a
//! byte countdown on every call, the sampler works on whole lists when the slow path hands a page
//! a new `free` list ([`Sampler::charge`], from `page_life::refill`): the list's blocks are laid
//! end to end on the heap's line of bytes, and when the next sample point falls inside block `j`,
//! the list is cut before `j`. Blocks `0..j` are popped by the fast path unsampled, block `j` is
//! set aside as *pending* for its size class, and the blocks after it go back on `local_free`
//! (to be charged when they come back). When the cut list runs dry, the slow path hands out the
//! pending block and records its stack. The list's length is known without walking it, so only a
//! cut walks the list, once per sample. Huge blocks are charged one by one on their slow path.
//! With profiling off, the only cost is one test per page refill and per huge block.
//!
//! ## How frees find samples
//! A page holding a live sampled block has `FLAG_SAMPLED` set, so its frees leave the owner's fast
//! path (which already requires `flags == 0`) for the generic path, which looks the block up in
//! the table, unless the page's sample hint (`Page::note_sample`: the page's one sampled block,
//! or a 63-bit filter of its sampled blocks) says the block is not sampled. The owner clears the flag when the page's last sample is freed (a remote free
//! leaves it set until the page is released: its frees only take the generic path meanwhile).
//!
//! ## The table
//! A fixed table of [`SLOTS`] samples, mapped from the source on first use, shared by all
//! threads without a lock: a slot is claimed by a compare-and-swap of its key (the block's
//! address), probing at most [`PROBES`] slots from the hash of the block's 64 KiB granule; a full
//! window drops the sample (counted). Hashing by granule keeps the samples of one small page
//! (a 64 KiB slot) in one window, so whether a page still holds one is a scan of a window, not
//! of the table. Readers (the dump) copy a slot and keep it only if its key and generation did
//! not change meanwhile.

use crate::os::{Os, OS_PAGE};
use crate::page::{Block, Page, FLAG_SAMPLED};
use crate::size_class::{ALIGN, BIN_COUNT};
use crate::util::align::align_up;
use crate::util::sync::{fence, AtomicUsize, Ordering};
use core::ptr;

/// Most frames kept per sample.
pub const FRAMES: usize = 32;
/// Samples the table holds at once (live sampled blocks).
pub const SLOTS: usize = 4096;
/// Slots probed from a block's hash.
pub const PROBES: usize = 32;
/// Blocks hash by their address shifted by this (64 KiB granules, the size of a small page).
const GRANULE_SHIFT: u32 = 16;
/// Default mean bytes between samples (`OXALLOC_PROFILE_RATE`).
pub const DEFAULT_RATE: usize = 512 * 1024;

/// Key of a free slot.
const EMPTY: usize = 0;
/// Key of a slot being written.
const BUSY: usize = 1;

/// One live sample, as copied out of the table.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Address of the sampled block.
    pub addr: usize,
    /// Bytes asked for.
    pub size: usize,
    /// Bytes of the block (its size class's size; the sampling unit).
    pub block_size: usize,
    /// Frames recorded, innermost first (return addresses).
    pub depth: usize,
    /// The frames.
    pub frames: [usize; FRAMES],
}

struct Slot {
    /// A sequence lock over the slot's fields: odd while a block resized in place rewrites
    /// its sizes, advanced by 2 by each write, so a reader that sees it odd or changed
    /// throws its copy away.
    generation: AtomicUsize,
    size: AtomicUsize,
    block_size: AtomicUsize,
    depth: AtomicUsize,
    frames: [AtomicUsize; FRAMES],
}

impl Slot {
    /// Opens a write of the slot's fields by its one writer: the generation turns odd, and a
    /// release fence orders that before the field stores that follow, so a reader
    /// ([`Profiler::copy`]) that sees any new field sees the change. Returns the generation
    /// to pass to [`Slot::end_write`].
    fn begin_write(&self) -> usize {
        let generation = self.generation.load(Ordering::Relaxed);
        debug_assert!(
            generation % 2 == 0,
            "a slot's generation is odd outside a write"
        );
        self.generation
            .store(generation.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        generation
    }

    /// Closes the write opened by [`Slot::begin_write`]: the generation is even again, two
    /// past where it was, stored with release after the fields.
    fn end_write(&self, generation: usize) {
        self.generation
            .store(generation.wrapping_add(2), Ordering::Release);
    }
}

/// The mapped table: keys apart from the rest, so a probe reads few cache lines.
struct Table {
    keys: [AtomicUsize; SLOTS],
    slots: [Slot; SLOTS],
}

/// The mapped table, reached one key or slot at a time: a reference to the whole table would
/// make Miri retag every one of its atomics (over a megabyte of them) at each use.
#[derive(Clone, Copy)]
struct TablePtr(*const Table);

impl TablePtr {
    /// Key `k` (`k < SLOTS`).
    fn key(self, k: usize) -> &'static AtomicUsize {
        debug_assert!(k < SLOTS);
        // SAFETY: the table is a zeroed mapping that is never unmapped, and `k` is in range.
        unsafe { &*ptr::addr_of!((*self.0).keys[k]) }
    }

    /// Slot `k` (`k < SLOTS`).
    fn slot(self, k: usize) -> &'static Slot {
        debug_assert!(k < SLOTS);
        // SAFETY: as for `key`.
        unsafe { &*ptr::addr_of!((*self.0).slots[k]) }
    }
}

/// The process-wide profiler state (one per arena).
pub struct Profiler {
    /// Mean bytes between samples; 0: profiling off.
    rate: AtomicUsize,
    /// Address of the [`Table`] mapping, 0 until the first sample.
    table: AtomicUsize,
    /// Samples in the table now.
    live: AtomicUsize,
    /// Samples taken since start-up.
    taken: AtomicUsize,
    /// Samples not recorded because the table's window was full (or it could not be mapped).
    dropped: AtomicUsize,
}

impl Default for Profiler {
    fn default() -> Self {
        Self::new()
    }
}

/// First slot of the window of the granule `granule`.
fn window(granule: usize) -> usize {
    ((granule as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) as usize % SLOTS
}

fn hash(addr: usize) -> usize {
    window(addr >> GRANULE_SHIFT)
}

impl Profiler {
    /// Profiling off, nothing mapped.
    pub const fn new() -> Self {
        Profiler {
            rate: AtomicUsize::new(0),
            table: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
            taken: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
        }
    }

    /// Mean bytes between samples, 0 when profiling is off.
    #[inline(always)]
    pub fn rate(&self) -> usize {
        self.rate.load(Ordering::Relaxed)
    }

    /// Turns profiling on with mean `rate` bytes between samples (0 turns it off).
    pub fn set_rate(&self, rate: usize) {
        self.rate.store(rate, Ordering::Relaxed);
    }

    /// Samples in the table now.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// Samples taken since start-up.
    pub fn taken(&self) -> usize {
        self.taken.load(Ordering::Relaxed)
    }

    /// Samples dropped because the table was full where they hashed.
    pub fn dropped(&self) -> usize {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The table, once mapped: a non-zero address is a mapping of a zeroed `Table` that is
    /// never unmapped (all-zero atomics are valid values).
    fn table(&self) -> Option<TablePtr> {
        let t = self.table.load(Ordering::Acquire);
        (t != 0).then_some(TablePtr(t as *const Table))
    }

    fn table_or_map<S: Os>(&self, os: &S) -> Option<TablePtr> {
        if let Some(t) = self.table() {
            return Some(t);
        }
        let size = align_up(core::mem::size_of::<Table>(), OS_PAGE);
        let m = os.map(size, OS_PAGE)?;
        if !m.zeroed {
            // SAFETY: the mapping is ours, `size` bytes long and writable.
            unsafe { ptr::write_bytes(m.ptr.as_ptr(), 0, size) };
        }
        let addr = m.ptr.as_ptr() as usize;
        match self
            .table
            .compare_exchange(0, addr, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {}
            // SAFETY: we mapped it and nobody else saw it.
            Err(_) => unsafe { os.unmap(m.ptr, size) },
        }
        self.table()
    }

    /// Records a sampled block with its stack. Returns false when it was dropped.
    pub fn record<S: Os>(
        &self,
        os: &S,
        addr: usize,
        size: usize,
        block_size: usize,
        frames: &[usize],
    ) -> bool {
        debug_assert!(addr > BUSY);
        self.taken.fetch_add(1, Ordering::Relaxed);
        let Some(t) = self.table_or_map(os) else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        let h = hash(addr);
        for i in 0..PROBES {
            let k = (h + i) % SLOTS;
            if t.key(k)
                .compare_exchange(EMPTY, BUSY, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            let s = t.slot(k);
            // The busy key makes this thread the slot's only writer, and readers skip it
            // until the key is published; the write still moves the generation, for a
            // reader that copied the slot's previous sample.
            let generation = s.begin_write();
            s.size.store(size, Ordering::Relaxed);
            s.block_size.store(block_size, Ordering::Relaxed);
            let depth = frames.len().min(FRAMES);
            s.depth.store(depth, Ordering::Relaxed);
            for (f, &v) in s.frames.iter().zip(&frames[..depth]) {
                f.store(v, Ordering::Relaxed);
            }
            s.end_write(generation);
            t.key(k).store(addr, Ordering::Release);
            self.live.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        self.dropped.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// The table and the slot of the sample of the block at `addr`, if it has one.
    fn slot_of(&self, addr: usize) -> Option<(TablePtr, usize)> {
        let t = self.table()?;
        let h = hash(addr);
        (0..PROBES)
            .map(|i| (h + i) % SLOTS)
            .find(|&k| t.key(k).load(Ordering::Relaxed) == addr)
            .map(|k| (t, k))
    }

    /// Removes the sample of the block at `addr`, if there is one; returns whether there was.
    pub fn release(&self, addr: usize) -> bool {
        let released = self.slot_of(addr).is_some_and(|(t, k)| {
            t.key(k)
                .compare_exchange(addr, EMPTY, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        });
        if released {
            self.live.fetch_sub(1, Ordering::Relaxed);
        }
        released
    }

    /// A sampled block moved from `old` to `new` (a huge block moved by realloc) and has `size`
    /// bytes now.
    /// A block resized in place (a huge block grown within its mapping, or by `mremap` at the
    /// same address: a string builder makes one such call per append) keeps its slot, and its
    /// sizes are rewritten under the slot's sequence lock, with plain stores.
    pub fn moved<S: Os>(&self, os: &S, old: usize, new: usize, size: usize, block_size: usize) {
        if old == new {
            return self.resized(old, size, block_size);
        }
        let Some(s) = self.find(old) else {
            return;
        };
        if self.release(old) {
            self.taken.fetch_sub(1, Ordering::Relaxed);
            self.record(os, new, size, block_size, &s.frames[..s.depth]);
        }
    }

    /// The owner of a live block is the only thread that writes its slot (the slot is
    /// claimed by `record` and emptied by `release`, which a free or realloc of that block
    /// does), so the write needs no locked instruction, only the slot's sequence lock.
    fn resized(&self, addr: usize, size: usize, block_size: usize) {
        let Some((t, k)) = self.slot_of(addr) else {
            return;
        };
        let s = t.slot(k);
        let generation = s.begin_write();
        s.size.store(size, Ordering::Relaxed);
        s.block_size.store(block_size, Ordering::Relaxed);
        s.end_write(generation);
    }

    /// Clears `page`'s `FLAG_SAMPLED` if no live sample lies in it any more (the owner, after
    /// a sampled block of the page was freed: by itself, or by other threads, whose frees it
    /// has just collected). Only the owner adds samples to its pages, so none appears meanwhile.
    ///
    /// # Safety
    /// The calling thread owns `page`.
    pub unsafe fn unflag_if_none(&self, page: &Page) {
        if page.flags() & FLAG_SAMPLED != 0 && !self.any_in(page.start.get() as usize, page.end()) {
            page.remove_flags(FLAG_SAMPLED);
        }
    }

    /// [`Profiler::unflag_if_none`] after the owner released the sample of `block`, a block
    /// of `page`: when the page's hint is that one block (not a filter), it was the page's
    /// only sample since the flag was set, so the flag goes without a look in the table.
    ///
    /// # Safety
    /// As for [`Profiler::unflag_if_none`].
    pub unsafe fn unflag_after_release(&self, page: &Page, block: usize) {
        if page.sample.load(Ordering::Relaxed) == block {
            page.remove_flags(FLAG_SAMPLED);
        } else {
            // SAFETY: per the contract.
            unsafe { self.unflag_if_none(page) }
        }
    }

    /// Whether a live sample lies in `start..end` (called when a sampled block is freed by its
    /// page's owner, to clear the page's flag): scans the windows of the range's granules (one
    /// for a small page, eight for a medium one), or the whole table for a longer range.
    pub fn any_in(&self, start: usize, end: usize) -> bool {
        let Some(t) = self.table() else {
            return false;
        };
        let inside = |k: &AtomicUsize| {
            let k = k.load(Ordering::Relaxed);
            k >= start && k < end
        };
        if end <= start {
            return false;
        }
        let (first, last) = (start >> GRANULE_SHIFT, (end - 1) >> GRANULE_SHIFT);
        if last - first >= 16 {
            return (0..SLOTS).any(|k| inside(t.key(k)));
        }
        (first..=last).any(|g| {
            let h = window(g);
            (0..PROBES).any(|i| inside(t.key((h + i) % SLOTS)))
        })
    }

    /// The sample of the block at `addr`, if it has one.
    pub fn find(&self, addr: usize) -> Option<Sample> {
        let (t, k) = self.slot_of(addr)?;
        Self::copy(t, k)
    }

    /// A consistent copy of slot `k`, or `None` if it is empty or changed while read.
    fn copy(t: TablePtr, k: usize) -> Option<Sample> {
        let key = t.key(k).load(Ordering::Acquire);
        if key <= BUSY {
            return None;
        }
        let s = t.slot(k);
        let generation = s.generation.load(Ordering::Acquire);
        if generation % 2 != 0 {
            return None;
        }
        let mut out = Sample {
            addr: key,
            size: s.size.load(Ordering::Relaxed),
            block_size: s.block_size.load(Ordering::Relaxed),
            depth: s.depth.load(Ordering::Relaxed).min(FRAMES),
            frames: [0; FRAMES],
        };
        for (o, f) in out.frames.iter_mut().zip(&s.frames[..out.depth]) {
            *o = f.load(Ordering::Relaxed);
        }
        // The sequence lock's read side: the fields were read before this fence, so if any of
        // them came from a write that began after `generation` was read, the loads below see
        // that write's odd or later generation.
        fence(Ordering::Acquire);
        let same = t.key(k).load(Ordering::Relaxed) == key
            && s.generation.load(Ordering::Relaxed) == generation;
        same.then_some(out)
    }

    /// Calls `f` with a copy of every live sample (without allocating; samples added or
    /// removed meanwhile may or may not be seen).
    pub fn for_each(&self, mut f: impl FnMut(&Sample)) {
        let Some(t) = self.table() else {
            return;
        };
        for k in 0..SLOTS {
            if let Some(s) = Self::copy(t, k) {
                f(&s);
            }
        }
    }
}

/// A heap's sampler: the distance to the next sample point and the blocks set aside for the
/// slow path to hand out sampled. Owned by the heap's thread.
///
/// Invariant: a pending block is one of its page's blocks counted in `used` and live in its
/// bitmap but on none of its free lists; `pending_count` is the number of blocks on all
/// `pending` stacks.
pub struct Sampler {
    /// Bytes from the end of the last charged block to the next sample point.
    next: usize,
    /// Whether `next` was drawn.
    started: bool,
    /// Set while the stack of a sample is being recorded (the unwinder might allocate).
    pub busy: bool,
    /// xorshift64* state.
    rng: u64,
    /// Pending blocks per size class, linked through their first word (plain addresses).
    pending: [*mut Block; BIN_COUNT],
    /// Blocks on the `pending` stacks.
    pub pending_count: u32,
}

impl Default for Sampler {
    fn default() -> Self {
        Self::new()
    }
}

/// Natural logarithm of `x > 0`, without `std`: `x = m * 2^e` with `m` in `[sqrt(1/2),
/// sqrt(2))`, and `ln m = 2 atanh((m - 1) / (m + 1))` from its series (error below 1e-9).
pub fn ln(x: f64) -> f64 {
    debug_assert!(x > 0.0);
    let bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52));
    if m > core::f64::consts::SQRT_2 {
        m /= 2.0;
        e += 1;
    }
    let z = (m - 1.0) / (m + 1.0);
    let z2 = z * z;
    let series = z
        * (2.0
            + z2 * (2.0 / 3.0
                + z2 * (2.0 / 5.0 + z2 * (2.0 / 7.0 + z2 * (2.0 / 9.0 + z2 * (2.0 / 11.0))))));
    series + e as f64 * core::f64::consts::LN_2
}

impl Sampler {
    /// A sampler that has drawn nothing yet.
    pub const fn new() -> Self {
        Sampler {
            next: 0,
            started: false,
            busy: false,
            rng: 0,
            pending: [ptr::null_mut(); BIN_COUNT],
            pending_count: 0,
        }
    }

    /// Seeds the generator (any value; a zero seed is replaced).
    pub fn seed(&mut self, seed: u64) {
        self.rng = if seed == 0 {
            0x2545_f491_4f6c_dd1d
        } else {
            seed
        };
    }

    fn uniform(&mut self) -> f64 {
        if self.rng == 0 {
            self.seed(0);
        }
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        let r = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
        // In (0, 1]: never zero, so its logarithm is finite.
        ((r >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Draws the distance to the next sample point: exponential with mean `rate`.
    pub fn draw(&mut self, rate: usize) -> usize {
        let d = -ln(self.uniform()) * rate as f64;
        if d >= usize::MAX as f64 {
            usize::MAX
        } else {
            d as usize
        }
    }

    fn start(&mut self, rate: usize) {
        if !self.started {
            self.started = true;
            self.next = self.draw(rate);
        }
    }

    /// Charges `bytes` handed out one block at a time (a huge block); true if it is sampled.
    pub fn charge_block(&mut self, rate: usize, bytes: usize) -> bool {
        self.start(rate);
        if self.next < bytes {
            self.next = self.draw(rate);
            true
        } else {
            self.next -= bytes;
            false
        }
    }

    /// Charges a page's new `free` list of `n` blocks (just made by a refill, with `local_free`
    /// empty). If a sample point falls in it, cuts the list as the module comment says and
    /// returns how many blocks remain charged (the ones left on `free` and the pending one);
    /// else returns `n`.
    ///
    /// Inline: a refill is charged on every page refill while profiling, and no sample point
    /// falls in almost all of them; the cut is a cold function's (`Sampler::cut`).
    ///
    /// # Safety
    /// The calling thread owns `page`, whose `free` list holds exactly `n` blocks.
    #[inline(always)]
    pub unsafe fn charge(&mut self, rate: usize, page: &Page, n: u32) -> u32 {
        let total = (n as usize).saturating_mul(page.block_size.get());
        if self.started && self.next >= total {
            self.next -= total;
            return n;
        }
        // SAFETY: as for this function.
        unsafe { self.cut(rate, page, n, total) }
    }

    /// [`Sampler::charge`] when the sampler has not started or a sample point falls in the
    /// list of `n` blocks, `total` bytes.
    ///
    /// # Safety
    /// As for [`Sampler::charge`].
    #[cold]
    #[inline(never)]
    unsafe fn cut(&mut self, rate: usize, page: &Page, n: u32, total: usize) -> u32 {
        self.start(rate);
        let bs = page.block_size.get();
        if self.next >= total {
            self.next -= total;
            return n;
        }
        let j = self.next / bs;
        self.next = self.draw(rate);
        debug_assert!(j < n as usize);
        // SAFETY: the caller owns the page; the walk follows `j < n` links of its `free` list.
        unsafe {
            let mut prev: *mut Block = ptr::null_mut();
            let mut b = page.free.get();
            for _ in 0..j {
                prev = b;
                b = page.decode((*b).next_word());
            }
            debug_assert!(!b.is_null() && page.contains(b as usize));
            let rest = page.decode((*b).next_word());
            if prev.is_null() {
                page.free.set(ptr::null_mut());
            } else {
                crate::util::sync::link_write(prev as usize, page.encode(ptr::null_mut()));
            }
            if !rest.is_null() {
                // Put the rest on `local_free`, in front of what it holds (nothing, after a
                // refill; walk to the rest's end otherwise).
                if !page.local_free.get().is_null() {
                    let mut tail = rest;
                    loop {
                        let next = page.decode((*tail).next_word());
                        if next.is_null() {
                            break;
                        }
                        tail = next;
                    }
                    crate::util::sync::link_write(
                        tail as usize,
                        page.encode(page.local_free.get()),
                    );
                }
                page.local_free.set(rest);
            }
            // The pending block counts as used (and live, in the page's bitmap) from now on.
            page.used.set(page.used.get() + 1);
            page.mark_live(b as usize);
            // Bit 0 of the link (blocks are 16-byte aligned) says whether the block reads
            // zero but for this word: it was cut from a list of never-used zeroed blocks.
            let bin = page.bin.get() as usize;
            let zeroed = page.free_zeroed.get() as usize;
            crate::util::sync::link_write(b as usize, self.pending[bin] as usize | zeroed);
            self.pending[bin] = b;
            self.pending_count += 1;
        }
        j as u32 + 1
    }

    /// Takes a pending block of `bin`, if there is one (null if not), with its first word
    /// cleared, and whether the whole block reads zero (it was cut from a list of never-used
    /// zeroed blocks).
    pub fn take_pending(&mut self, bin: usize) -> (*mut u8, bool) {
        let b = self.pending[bin];
        if b.is_null() {
            return (ptr::null_mut(), false);
        }
        // SAFETY: pending blocks are set aside by `cut`, linked through their first word,
        // whose bit 0 is the block's zeroed mark.
        let word = unsafe { crate::util::sync::link_read(b as usize) };
        debug_assert!(
            word & (ALIGN - 2) == 0,
            "pending links are 16-byte aligned but for the mark"
        );
        self.pending[bin] = (word & !1) as *mut Block;
        // SAFETY: as above; the block is ours to hand out.
        unsafe { crate::util::sync::link_write(b as usize, 0) };
        self.pending_count -= 1;
        (b.cast(), word & 1 != 0)
    }

    /// Takes any pending block (at heap teardown, to give them back to their pages).
    pub fn take_any_pending(&mut self) -> *mut u8 {
        (0..BIN_COUNT)
            .map(|bin| self.take_pending(bin).0)
            .find(|b| !b.is_null())
            .unwrap_or(ptr::null_mut())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::Mapping;
    use core::ptr::NonNull;
    use std::boxed::Box;

    /// A source over the test process's own allocator (tables only; never freed).
    struct TestOs;

    // SAFETY: each mapping is a fresh zeroed allocation of its own.
    unsafe impl Os for TestOs {
        fn map(&self, size: usize, align: usize) -> Option<Mapping> {
            let layout = std::alloc::Layout::from_size_align(size, align).ok()?;
            // SAFETY: the layout has a non-zero size.
            let ptr = NonNull::new(unsafe { std::alloc::alloc_zeroed(layout) })?;
            Some(Mapping { ptr, zeroed: true })
        }
        unsafe fn unmap(&self, _ptr: NonNull<u8>, _size: usize) {}
        unsafe fn purge(&self, _ptr: NonNull<u8>, _size: usize) -> bool {
            false
        }
        fn now_ms(&self) -> u64 {
            0
        }
        fn random(&self) -> usize {
            4
        }
        fn fatal(&self, what: &str, ptr: usize) -> ! {
            panic!("{what} {ptr:#x}")
        }
    }

    #[test]
    fn ln_is_accurate() {
        for &x in &[
            1e-12, 1e-6, 0.001, 0.3, 0.5, 0.70, 0.72, 0.9, 1.0, 1.5, 2.0, 10.0, 1e9,
        ] {
            let want = std::primitive::f64::ln(x);
            assert!(
                (ln(x) - want).abs() < 1e-9 * want.abs().max(1.0),
                "ln({x}) = {} not {want}",
                ln(x)
            );
        }
    }

    #[test]
    fn mean_interval_matches_the_rate() {
        let mut s = Sampler::new();
        s.seed(12345);
        let rate = 512 * 1024;
        // Under Miri (which interprets every draw) 4000 draws, with bounds of 5 standard errors.
        let n = if cfg!(miri) { 4000 } else { 200_000 };
        let sum: f64 = (0..n).map(|_| s.draw(rate) as f64).sum();
        let mean = sum / n as f64;
        // The standard error of the mean of exponentials is rate / sqrt(n) (0.22% here).
        let se = 1.0 / (n as f64).sqrt();
        assert!(
            (mean / rate as f64 - 1.0).abs() < (5.0 * se).max(0.01),
            "mean {mean} for rate {rate}"
        );
        // Exponential: about 1/e of the gaps exceed the mean.
        let over = (0..n).filter(|_| s.draw(rate) > rate).count() as f64 / n as f64;
        let se = (0.37 * 0.63f64).sqrt() * se;
        assert!(
            (over - (-1.0f64).exp()).abs() < (5.0 * se).max(0.01),
            "{over}"
        );
    }

    #[test]
    fn blocks_are_sampled_with_the_right_probability() {
        // A block of s bytes is sampled with probability 1 - exp(-s/rate).
        let rate = 4096;
        for &size in &[16usize, 1024, 4096, 65536] {
            let mut s = Sampler::new();
            s.seed(size as u64);
            // Under Miri 2000 blocks a size (the bound follows n).
            let n = if cfg!(miri) { 2000 } else { 100_000 };
            let hits = (0..n).filter(|_| s.charge_block(rate, size)).count() as f64;
            let p = 1.0 - (-(size as f64) / rate as f64).exp();
            let sd = (p * (1.0 - p) / n as f64).sqrt();
            assert!(
                (hits / n as f64 - p).abs() < 5.0 * sd + 1e-3,
                "size {size}: {} vs {p}",
                hits / n as f64
            );
        }
    }

    #[repr(align(65536))]
    struct Area([u8; 65536]);

    #[test]
    fn charge_cuts_the_list_at_the_sample() {
        let mut area = Box::new(Area([0; 65536]));
        let start = area.0.as_mut_ptr();
        let bitmap: std::vec::Vec<AtomicUsize> = (0..128).map(|_| AtomicUsize::new(0)).collect();
        let page = Page {
            live_bias: core::cell::Cell::new(
                (bitmap.as_ptr() as usize)
                    .wrapping_sub(crate::page::live_word_offset(start as usize)),
            ),
            ..Page::EMPTY
        };
        // SAFETY: the page is the test's alone.
        // The area is zeroed, as fresh memory is: the pending blocks carry the zeroed mark.
        unsafe { page.init(3, 64, start, start as usize + 65536, 0x9876_5431, true) };
        let mut s = Sampler::new();
        s.seed(7);
        let rate = 64 * 100; // a sample every 100 blocks on average
        let mut handed = 0usize;
        let mut sampled = 0usize;
        let mut marked = 0usize;
        // SAFETY: the test owns the page and its area and follows the free-list protocol.
        unsafe {
            for _ in 0..200 {
                if page.free.get().is_null()
                    && page.local_free.get().is_null()
                    && page.capacity.get() == page.reserved.get()
                {
                    break;
                }
                let n = match page.take_local_free() {
                    0 => page.extend(),
                    n => n,
                };
                let before = page.used.get();
                let kept = s.charge(rate, &page, n);
                assert!(kept <= n);
                let on_free = page.free_len();
                if kept < n || page.used.get() > before {
                    assert_eq!(on_free, kept - 1, "the pending block is not on free");
                    assert_eq!(page.local_free_len(), n - kept);
                }
                while !page.free.get().is_null() {
                    page.pop_free(|_| panic!("corrupt link"));
                    handed += 1;
                }
                while s.pending_count > 0 {
                    let (b, zeroed) = s.take_pending(3);
                    assert!(!b.is_null() && page.contains(b as usize));
                    let bytes = core::slice::from_raw_parts(b, page.block_size.get());
                    // The test writes no block, so every block reads zero; the mark is on
                    // those cut from an extended list (a list refilled from `local_free` has
                    // lost the page's zeroed flag, so its cuts are not marked).
                    assert!(bytes.iter().all(|&x| x == 0));
                    marked += zeroed as usize;
                    sampled += 1;
                    handed += 1;
                }
                assert_eq!(page.used.get() as usize, handed);
                assert_eq!(
                    page.live_count(),
                    page.used.get(),
                    "one live bit per used block"
                );
                assert_eq!(page.used.get() + page.local_free_len(), page.capacity.get());
            }
        }
        assert_eq!(handed, 1024);
        // 1024 blocks, one sample per 100 on average: about 10.
        assert!((3..=25).contains(&sampled), "{sampled} samples");
        assert!(marked >= 1, "no pending block was marked zeroed");
    }

    #[test]
    fn table_records_finds_and_releases() {
        let region = &TestOs;
        let p = Profiler::new();
        assert!(p.find(0x1000).is_none());
        let at = |i: usize| 0x100_0000 + i * 4096;
        for i in 0..100usize {
            assert!(p.record(region, at(i), 48, 64, &[i, i + 1, i + 2]));
        }
        assert_eq!(p.live(), 100);
        let s = p.find(at(5)).unwrap();
        assert_eq!((s.addr, s.size, s.block_size, s.depth), (at(5), 48, 64, 3));
        assert_eq!(&s.frames[..3], &[5, 6, 7]);
        assert!(p.any_in(at(0), at(0) + 64));
        assert!(p.release(at(0)));
        assert!(!p.release(at(0)));
        assert!(!p.any_in(at(0), at(0) + 64));
        assert!(
            p.any_in(at(0), at(0) + 65536),
            "its neighbours in the granule"
        );
        let mut n = 0;
        p.for_each(|_| n += 1);
        assert_eq!(n, 99);
        p.moved(region, at(1), 0x200_0000, 4096, 4096);
        assert_eq!(p.find(0x200_0000).unwrap().frames[0], 1);
        assert!(p.find(at(1)).is_none());
        assert_eq!((p.live(), p.taken(), p.dropped()), (99, 100, 0));
        // Resized in place: the same slot, the new sizes, the stack kept.
        p.moved(region, at(2), at(2), 9000, 12288);
        let s = p.find(at(2)).unwrap();
        assert_eq!((s.size, s.block_size, s.depth), (9000, 12288, 3));
        assert_eq!(&s.frames[..3], &[2, 3, 4]);
        assert_eq!((p.live(), p.taken(), p.dropped()), (99, 100, 0));
        // One granule holds at most a window of samples; more are dropped and counted.
        let q = Profiler::new();
        let recorded = (0..PROBES + 5)
            .filter(|&i| q.record(region, 0x300_0000 + i * 64, 64, 64, &[]))
            .count();
        assert_eq!(recorded, PROBES);
        assert_eq!(q.dropped(), 5);
    }

    /// The owner resizes a sampled block in place, over and over, while another thread copies
    /// the table: every copy it keeps holds sizes from one write (here `block_size` is always
    /// `size + 7`), never one field of one write and one of the next.
    #[test]
    #[cfg_attr(target_family = "wasm", ignore = "wasm32 has no threads")]
    fn copies_never_mix_two_in_place_resizes() {
        let p = Profiler::new();
        let addr = 0x100_0000;
        assert!(p.record(&TestOs, addr, 1, 8, &[1, 2]));
        let rounds = if cfg!(miri) { 50 } else { 200_000 };
        let done = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for n in 1..=rounds {
                    p.moved(&TestOs, addr, addr, n, n + 7);
                }
                done.store(1, Ordering::Release);
            });
            // `find` copies the one slot (`for_each` copies all of them, too slow under Miri).
            // Under Miri the copies are counted too: its scheduler may run this loop for a long
            // time before the writer's next step.
            let (mut last, mut copies) = (0, 0);
            while done.load(Ordering::Acquire) == 0 && (!cfg!(miri) || copies < 200) {
                copies += 1;
                if let Some(s) = p.find(addr) {
                    assert_eq!(s.block_size, s.size + 7, "a torn copy: {s:?}");
                    assert!(s.size >= last, "sizes only grow: {} after {last}", s.size);
                    assert_eq!(&s.frames[..s.depth], &[1, 2]);
                    last = s.size;
                }
            }
        });
        assert_eq!(p.find(addr).unwrap().size, rounds);
    }
}
