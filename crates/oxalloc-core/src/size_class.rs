//! Size classes ("bins"): which block size serves a request, and which kind of page holds it.
//!
//! Every block size is a multiple of 16, so every block is 16-byte aligned (glibc's guarantee on
//! x86-64). Requests up to 128 bytes are served in exact 16-byte steps; above that there are four
//! classes per power of two, so internal fragmentation stays under 25% (12.5% on average).
//!
//! ```text
//! bin   1..=8    16, 32, ..., 128            (16-byte steps)
//! bin   9..=12   160, 192, 224, 256          (4 per doubling from here on)
//! bin  13..=16   320, 384, 448, 512
//! ...
//! bin  48        131072 (128 KiB)            MEDIUM_MAX: larger requests are huge blocks
//! ```
//! Invariants (checked exhaustively in the tests):
//! `bin_size(bin_of(s)) >= s`, `bin_of(bin_size(b)) == b`, and `bin_size` is strictly increasing.

/// Minimum alignment and granularity of every block.
pub const ALIGN: usize = 16;
/// Largest block served from small pages (64 KiB pages, at least 8 blocks each).
pub const SMALL_MAX: usize = 8 * 1024;
/// Largest block served from medium pages (512 KiB pages, at least 4 blocks each).
pub const MEDIUM_MAX: usize = 128 * 1024;
/// Number of bins, counting the unused bin 0.
pub const BIN_COUNT: usize = 49;
/// log2 of the size (and alignment) of a segment, the 4 MiB unit pages are carved from (the
/// segment layout is in `segment`; pages need the unit to check their links).
pub const SEGMENT_SHIFT: usize = 22;
/// Requests up to this size index the heap's direct page table (`(size + 15) / 16`).
pub const DIRECT_MAX: usize = 1024;
/// Entries of the direct page table.
pub const DIRECT_COUNT: usize = DIRECT_MAX / ALIGN + 1;

/// The bin that serves `size` bytes. `size` must be at most [`MEDIUM_MAX`].
#[inline(always)]
pub const fn bin_of(size: usize) -> usize {
    debug_assert!(size <= MEDIUM_MAX);
    if size <= 128 {
        // 0 bytes is served like 1 byte: malloc(0) returns a unique block.
        let w = size.div_ceil(ALIGN);
        if w == 0 {
            1
        } else {
            w
        }
    } else {
        let w = (size - 1) >> 4; // >= 8
        let b = (usize::BITS - 1 - w.leading_zeros()) as usize; // >= 3
        (b << 2) + ((w >> (b - 2)) & 3) - 3
    }
}

/// Block size of every bin, computed at compile time from [`bin_of`].
const BIN_SIZES: [usize; BIN_COUNT] = {
    let mut sizes = [0usize; BIN_COUNT];
    let mut s = ALIGN;
    while s <= MEDIUM_MAX {
        // The largest size that maps to a bin is its block size.
        sizes[bin_of(s)] = s;
        s += ALIGN;
    }
    sizes
};

/// Block size of `bin`.
#[inline(always)]
pub const fn bin_size(bin: usize) -> usize {
    BIN_SIZES[bin]
}

/// Whether blocks of `bin` live in small (64 KiB) pages; otherwise in medium (512 KiB) pages.
#[inline]
pub const fn bin_is_small(bin: usize) -> bool {
    bin_size(bin) <= SMALL_MAX
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sizes the round trip checks: every size up to `MEDIUM_MAX`; under Miri (which
    /// interprets each step, and took about 50 s over all of them) every size up to 1 KiB and
    /// the three sizes at each class boundary. Sorted: consecutive sizes then still never skip
    /// a class, so "bins are dense" keeps its meaning.
    fn sizes() -> std::vec::Vec<usize> {
        if !cfg!(miri) {
            return (0..=MEDIUM_MAX).collect();
        }
        let mut v: std::vec::Vec<usize> = (0..=1024).collect();
        for b in 1..BIN_COUNT {
            let edge = bin_size(b);
            v.extend(
                [edge - 1, edge, edge + 1]
                    .into_iter()
                    .filter(|&s| s <= MEDIUM_MAX),
            );
        }
        v.sort_unstable();
        v.dedup();
        v
    }

    #[test]
    fn every_size_round_trips() {
        let mut prev_bin = 1;
        for s in sizes() {
            let b = bin_of(s);
            assert!((1..BIN_COUNT).contains(&b), "size {s} -> bin {b}");
            assert!(bin_size(b) >= s, "size {s} -> bin {b} of {}", bin_size(b));
            assert_eq!(bin_size(b) % ALIGN, 0);
            assert!(b == prev_bin || b == prev_bin + 1, "bins are dense: {s}");
            // The bin below is too small: the class is the tightest one.
            if b > 1 {
                assert!(bin_size(b - 1) < s.max(1), "size {s} fits bin {}", b - 1);
            }
            prev_bin = b;
        }
        assert_eq!(prev_bin, BIN_COUNT - 1);
        for b in 1..BIN_COUNT {
            assert_eq!(bin_of(bin_size(b)), b);
            if b > 1 {
                assert!(bin_size(b) > bin_size(b - 1));
                // At most 25% slack above the previous class.
                assert!(bin_size(b) - bin_size(b - 1) <= bin_size(b - 1) / 4 + ALIGN);
            }
        }
    }

    #[test]
    fn small_pages_hold_at_least_eight_blocks() {
        assert_eq!(bin_size(bin_of(SMALL_MAX)), SMALL_MAX);
        assert!(bin_is_small(bin_of(SMALL_MAX)));
        assert!(!bin_is_small(bin_of(SMALL_MAX + 1)));
    }
}
