//! Alignment arithmetic on addresses and sizes.

/// Rounds `x` up to a multiple of `to`, which must be a power of two. `x + to - 1` must not
/// overflow (callers round sizes they have bounded).
#[inline(always)]
pub const fn align_up(x: usize, to: usize) -> usize {
    debug_assert!(to.is_power_of_two());
    (x + to - 1) & !(to - 1)
}

/// `x` rounded up to a multiple of `to` (a power of two), or `None` if that overflows.
#[inline]
pub const fn checked_align_up(x: usize, to: usize) -> Option<usize> {
    match x.checked_add(to - 1) {
        Some(y) => Some(y & !(to - 1)),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_both_ways() {
        assert_eq!(align_up(0, 16), 0);
        assert_eq!(align_up(1, 16), 16);
        assert_eq!(align_up(16, 16), 16);
        assert_eq!(checked_align_up(usize::MAX, 16), None);
        assert_eq!(checked_align_up(17, 16), Some(32));
    }
}
