//! Secure mode (`OXALLOC_SECURE=1`, or `2` to zero freed blocks instead of filling them): the
//! checks that cost too much for everybody, on blocks of pages flagged [`FLAG_SECURE`].
//!
//! A secure heap never fills its direct table, so every `malloc` takes the slow path, and its
//! pages carry `FLAG_SECURE`, so every `free` takes the generic path: the default mode's fast
//! paths are the same instructions with or without this module.
//!
//! What a secure block looks like, `block_size` bytes from `block`:
//! ```text
//! block                    block + end           block_size - 8    block_size
//! | the program's bytes    | canary bytes ...    | end: u32 | tag: u32 |
//! ```
//! `end` is where the program's bytes stop (the size asked for, plus the offset of an aligned
//! pointer); `tag` is a keyed hash of the block's address and `end`. `free` checks the tag and
//! every canary byte (an overflow of one byte or more past the size is caught), then fills the
//! block but its first word (the free-list link) with [`FREED`] (or zeroes), and `malloc` checks
//! the fill when it hands the block out again (a write after free is caught at reuse). Freed
//! blocks wait in a small per-heap quarantine before they can be reused. Fresh blocks are filled
//! when their page carves them, and carved in a shuffled order.

use crate::page::{Page, FLAG_SECURE};

/// Bytes at the end of a secure block: `end` and `tag`.
pub const TRAILER: usize = 8;
/// What freed secure blocks are filled with (past their link word).
pub const FREED: u8 = 0xdf;
/// Blocks a heap's quarantine holds before the oldest is really freed.
pub const QUARANTINE: usize = 64;

/// `OXALLOC_SECURE` levels.
pub mod level {
    /// Default mode.
    pub const OFF: usize = 0;
    /// Secure mode, freed blocks filled with [`super::FREED`].
    pub const ON: usize = 1;
    /// Secure mode, freed blocks zeroed.
    pub const ZERO: usize = 2;
}

/// Freed blocks waiting before they are reused, oldest first out.
pub struct Quarantine {
    slots: [usize; QUARANTINE],
    next: usize,
}

impl Quarantine {
    /// An empty quarantine.
    pub const fn new() -> Self {
        Quarantine {
            slots: [0; QUARANTINE],
            next: 0,
        }
    }

    /// Puts `p` in; returns the pointer that waited longest, if the quarantine was full.
    pub fn push(&mut self, p: usize) -> Option<usize> {
        let old = core::mem::replace(&mut self.slots[self.next], p);
        self.next = (self.next + 1) % QUARANTINE;
        (old != 0).then_some(old)
    }

    /// Takes every pointer out (for a heap that is torn down or trimmed).
    pub fn drain(&mut self, mut f: impl FnMut(usize)) {
        for slot in &mut self.slots {
            let p = core::mem::replace(slot, 0);
            if p != 0 {
                f(p);
            }
        }
    }

    /// The waiting pointers.
    pub fn pointers(&self) -> impl Iterator<Item = usize> + '_ {
        self.slots.iter().copied().filter(|&p| p != 0)
    }

    /// How many of the waiting pointers lie in `[start, end)` (validation).
    pub fn count_in(&self, start: usize, end: usize) -> u32 {
        self.slots
            .iter()
            .filter(|&&p| p >= start && p < end)
            .count() as u32
    }
}

impl Default for Quarantine {
    fn default() -> Self {
        Self::new()
    }
}

/// The byte freed secure blocks hold at `level`.
#[inline]
pub fn fill_byte(level: usize) -> u8 {
    if level == level::ZERO {
        0
    } else {
        FREED
    }
}

/// The canary byte of a page: from its key, never zero or the fill byte.
#[inline]
fn canary(page: &Page) -> u8 {
    (page.key2.get() >> 24) as u8 | 0x81
}

/// The tag of a block's trailer.
#[inline]
fn tag(page: &Page, block: usize, end: usize) -> u32 {
    let mut x = (block ^ page.key2.get().rotate_left(29)) as u64 ^ ((end as u64) << 32);
    x = (x ^ (x >> 31)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (x ^ (x >> 29)) as u32
}

/// Whether `page` holds secure blocks.
#[inline]
pub fn is_secure(page: &Page) -> bool {
    page.flags() & FLAG_SECURE != 0
}

/// Seals a block handed out for `end` bytes: canary bytes up to the trailer, then the trailer.
///
/// # Safety
/// `block` is a used block of `page` (or the huge block `page` describes), `block_size` bytes
/// long, and `end + TRAILER <= block_size`.
pub unsafe fn seal(page: &Page, block: *mut u8, block_size: usize, end: usize) {
    debug_assert!(end + TRAILER <= block_size);
    // SAFETY: per the contract the range lies inside the block.
    unsafe {
        core::ptr::write_bytes(block.add(end), canary(page), block_size - TRAILER - end);
        let trailer = block.add(block_size - TRAILER);
        (trailer as *mut u32).write_unaligned(end as u32);
        (trailer.add(4) as *mut u32).write_unaligned(tag(page, block as usize, end));
    }
}

/// The seal of a block was overwritten: its trailer or a canary byte (an overflow).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overwritten;

/// Checks a sealed block that is being freed; returns where the program's bytes end, or
/// `Err` when the trailer or a canary byte was overwritten (an overflow).
///
/// # Safety
/// As for [`seal`].
pub unsafe fn check(page: &Page, block: *mut u8, block_size: usize) -> Result<usize, Overwritten> {
    // SAFETY: per the contract the trailer and the canary lie inside the block.
    unsafe {
        let trailer = block.add(block_size - TRAILER);
        let end = (trailer as *const u32).read_unaligned() as usize;
        let t = (trailer.add(4) as *const u32).read_unaligned();
        if end + TRAILER > block_size || t != tag(page, block as usize, end) {
            return Err(Overwritten);
        }
        if !all_bytes(block.add(end), block_size - TRAILER - end, canary(page)) {
            return Err(Overwritten);
        }
        Ok(end)
    }
}

/// Where the program's bytes of a sealed, live block end (its usable size from `block`).
///
/// # Safety
/// As for [`seal`], on a block that was sealed.
pub unsafe fn sealed_end(block: *const u8, block_size: usize) -> usize {
    // SAFETY: per the contract the trailer lies inside the block.
    unsafe { (block.add(block_size - TRAILER) as *const u32).read_unaligned() as usize }
}

/// Fills a freed block past its link word.
///
/// # Safety
/// `block` is a block of `block_size` bytes that nobody uses.
pub unsafe fn fill(block: *mut u8, block_size: usize, level: usize) {
    const LINK: usize = core::mem::size_of::<usize>();
    // SAFETY: per the contract.
    unsafe { core::ptr::write_bytes(block.add(LINK), fill_byte(level), block_size - LINK) };
}

/// Whether a block being handed out still holds the fill past its link word; `Err` names the
/// first byte that changed (a write after free).
///
/// # Safety
/// As for [`fill`].
pub unsafe fn check_fill(block: *const u8, block_size: usize, level: usize) -> Result<(), usize> {
    const LINK: usize = core::mem::size_of::<usize>();
    let b = fill_byte(level);
    // SAFETY: per the contract.
    if unsafe { all_bytes(block.add(LINK), block_size - LINK, b) } {
        return Ok(());
    }
    // SAFETY: as above.
    let bytes = unsafe { core::slice::from_raw_parts(block.add(LINK), block_size - LINK) };
    Err(block as usize + LINK + bytes.iter().position(|&x| x != b).unwrap_or(0))
}

/// Whether the `n` bytes at `p` all equal `b` (a word at a time).
///
/// # Safety
/// The bytes are readable.
unsafe fn all_bytes(p: *const u8, n: usize, b: u8) -> bool {
    const W: usize = core::mem::size_of::<u64>();
    let word = u64::from_ne_bytes([b; W]);
    let mut i = 0;
    // SAFETY: every read lies in `p..p+n`, per the contract.
    unsafe {
        while i + W <= n {
            if (p.add(i) as *const u64).read_unaligned() != word {
                return false;
            }
            i += W;
        }
        while i < n {
            if *p.add(i) != b {
                return false;
            }
            i += 1;
        }
    }
    true
}

/// The order a secure page carves `n` blocks in: block `(first + i * stride) % n` is the
/// `i`-th, with the stride coprime to `n` (so every block comes once), both drawn from `seed`.
pub fn carve_order(n: usize, seed: usize) -> (usize, usize) {
    if n <= 1 {
        return (0, 1);
    }
    let first = seed % n;
    let mut stride = ((seed >> 20) % n) | 1;
    while gcd(stride, n) != 1 {
        stride += 2;
        if stride >= n {
            stride = 1;
        }
    }
    (first, stride)
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carve_order_visits_every_block_once() {
        for n in [1, 2, 3, 7, 64, 100, 341, 1024] {
            for seed in [0, 1, 12345, usize::MAX, 0xdead_beef] {
                let (first, stride) = carve_order(n, seed);
                let mut seen = std::vec![false; n];
                for i in 0..n {
                    let b = (first + i * stride) % n;
                    assert!(!seen[b], "n {n} seed {seed}: block {b} twice");
                    seen[b] = true;
                }
            }
        }
    }

    #[test]
    fn quarantine_hands_back_the_oldest() {
        let mut q = Quarantine::new();
        for p in 1..=QUARANTINE {
            assert_eq!(q.push(p * 16), None);
        }
        assert_eq!(q.push(9999 * 16), Some(16));
        assert_eq!(q.count_in(16, 64), 2, "32 and 48 wait; 16 left");
        let mut n = 0;
        q.drain(|_| n += 1);
        assert_eq!(n, QUARANTINE);
        assert_eq!(q.push(16), None);
    }

    #[test]
    fn seal_catches_overflows_of_one_byte() {
        let page = Page::EMPTY;
        page.key2.set(0x9abc_def0);
        let mut block = [0u8; 64];
        let p = block.as_mut_ptr();
        // SAFETY: the block is a local array of 64 bytes.
        unsafe {
            seal(&page, p, 64, 24);
            assert_eq!(check(&page, p, 64), Ok(24));
            assert_eq!(sealed_end(p, 64), 24);
            *p.add(24) ^= 1;
            assert_eq!(
                check(&page, p, 64),
                Err(Overwritten),
                "one byte past the size"
            );
            seal(&page, p, 64, 56);
            *p.add(56) = 0;
            assert_eq!(check(&page, p, 64), Err(Overwritten), "the trailer itself");
            fill(p, 64, level::ON);
            assert_eq!(check_fill(p, 64, level::ON), Ok(()));
            *p.add(40) = 1;
            assert_eq!(check_fill(p, 64, level::ON), Err(p as usize + 40));
        }
    }
}
