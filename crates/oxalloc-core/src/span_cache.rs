//! The span cache: freed segments and huge blocks kept mapped for reuse, and given back to the
//! OS on a decay schedule.
//!
//! A span enters the cache *dirty* (its pages still resident) and is reused as is if a request
//! of a fitting size comes soon; once it has been in the cache for `OXALLOC_PURGE_DELAY`
//! milliseconds it is purged (`MADV_DONTNEED`: the pages leave the resident set, the range stays
//! mapped and reads as zero). The cache holds at most `OXALLOC_SPAN_CACHE` spans and
//! [`CACHE_BYTES_MAX`] bytes; past that the oldest span is unmapped. Decay is applied whenever
//! the cache is used and, through `Arena::tick`, every few page refills of any heap, so a
//! program that keeps allocating in the pages it has still gets its freed spans purged; one
//! that stops allocating altogether keeps at most the bounds above until its next slow path or
//! `malloc_trim`, unless the purge thread runs (`OXALLOC_PURGE_THREAD`, which decays the cache
//! every purge delay through `Arena::background_purge`).
//!
//! Invariants: `len <= CACHE_MAX`; `bytes == sum(spans[..len].size)`; spans are sorted by
//! `freed_at` (oldest first), since they are appended as they are freed.

/// Most spans the cache can hold, whatever the option says.
pub const CACHE_MAX: usize = 256;
/// Most bytes the cache holds.
pub const CACHE_BYTES_MAX: usize = 256 << 20;
/// Spans larger than this are unmapped at once rather than cached.
pub const CACHE_SPAN_MAX: usize = 64 << 20;

/// A cached span.
#[derive(Clone, Copy, Debug)]
pub struct Span {
    /// Start (segment-aligned).
    pub ptr: usize,
    /// Bytes mapped.
    pub size: usize,
    /// When it was freed, in the source's milliseconds.
    pub freed_at: u64,
    /// Purged: its pages are not resident.
    pub purged: bool,
    /// Reads as zero (purged with a zeroing purge, or never touched).
    pub zeroed: bool,
}

const NONE: Span = Span {
    ptr: 0,
    size: 0,
    freed_at: 0,
    purged: false,
    zeroed: false,
};

/// The cache itself; the caller serialises access.
pub struct SpanCache {
    spans: [Span; CACHE_MAX],
    len: usize,
    bytes: usize,
    dirty: usize,
}

impl SpanCache {
    /// An empty cache.
    pub const fn new() -> Self {
        SpanCache {
            spans: [NONE; CACHE_MAX],
            len: 0,
            bytes: 0,
            dirty: 0,
        }
    }

    /// Spans held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the cache is empty.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes held.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn remove(&mut self, i: usize) -> Span {
        let s = self.spans[i];
        self.spans.copy_within(i + 1..self.len, i);
        self.len -= 1;
        self.bytes -= s.size;
        if !s.purged {
            self.dirty -= s.size;
        }
        s
    }

    /// Takes the best-fitting span with `min <= size <= max` (the smallest; among equals the
    /// most recently freed, whose pages are most likely still resident and in cache).
    pub fn take(&mut self, min: usize, max: usize) -> Option<Span> {
        let mut best: Option<usize> = None;
        for i in (0..self.len).rev() {
            let s = &self.spans[i];
            if s.size >= min && s.size <= max && best.is_none_or(|b| s.size < self.spans[b].size) {
                best = Some(i);
            }
        }
        best.map(|i| self.remove(i))
    }

    /// Adds a freed span (the caller checked it is at most [`CACHE_SPAN_MAX`]); returns the
    /// oldest span if the cache is now over `max_len` spans or [`CACHE_BYTES_MAX`] bytes: the
    /// caller unmaps it and calls [`SpanCache::evict_over`] until it returns `None`.
    pub fn insert(&mut self, span: Span, max_len: usize) -> Option<Span> {
        if self.len == CACHE_MAX {
            let old = self.remove(0);
            self.push(span);
            return Some(old);
        }
        self.push(span);
        self.evict_over(max_len)
    }

    fn push(&mut self, span: Span) {
        // Keep the spans ordered by `freed_at` (a purged span comes back in its old place).
        let at = self.spans[..self.len]
            .iter()
            .rposition(|s| s.freed_at <= span.freed_at)
            .map_or(0, |i| i + 1);
        self.spans.copy_within(at..self.len, at + 1);
        self.spans[at] = span;
        self.len += 1;
        self.bytes += span.size;
        if !span.purged {
            self.dirty += span.size;
        }
    }

    /// The oldest span, if the cache holds more than `max_len` spans or too many bytes.
    pub fn evict_over(&mut self, max_len: usize) -> Option<Span> {
        if self.len > 0 && (self.len > max_len.min(CACHE_MAX) || self.bytes > CACHE_BYTES_MAX) {
            Some(self.remove(0))
        } else {
            None
        }
    }

    /// Takes out the oldest span still dirty after `delay` milliseconds (or at once while more
    /// than `dirty_max` bytes are dirty). The caller purges its pages outside the lock
    /// (nobody can take the span meanwhile) and puts it back with [`SpanCache::insert`], marked
    /// purged.
    pub fn take_due(&mut self, now: u64, delay: u64, dirty_max: usize) -> Option<Span> {
        let over = self.dirty > dirty_max;
        let i = self.spans[..self.len].iter().position(|s| !s.purged)?;
        if !over && now.saturating_sub(self.spans[i].freed_at) < delay {
            return None;
        }
        Some(self.remove(i))
    }

    /// Bytes of dirty spans.
    pub fn dirty_bytes(&self) -> usize {
        self.dirty
    }

    /// Removes any span (for trimming everything).
    pub fn pop(&mut self) -> Option<Span> {
        if self.len == 0 {
            None
        } else {
            Some(self.remove(self.len - 1))
        }
    }
}

impl Default for SpanCache {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl SpanCache {
        fn pop_oldest_for_test(&mut self) -> Span {
            self.remove(0)
        }
    }

    /// The dirty limit the tests use (the option's default).
    const DIRTY: usize = 128 << 20;

    fn span(ptr: usize, size: usize, at: u64) -> Span {
        Span {
            ptr,
            size,
            freed_at: at,
            purged: false,
            zeroed: false,
        }
    }

    #[test]
    fn best_fit_within_bounds() {
        let mut c = SpanCache::new();
        assert!(c.insert(span(1 << 22, 8 << 20, 0), 8).is_none());
        assert!(c.insert(span(2 << 22, 4 << 20, 1), 8).is_none());
        assert!(c.insert(span(3 << 22, 6 << 20, 2), 8).is_none());
        assert_eq!(c.bytes(), 18 << 20);
        assert_eq!(c.take(5 << 20, 9 << 20).unwrap().size, 6 << 20);
        assert!(c.take(9 << 20, 12 << 20).is_none());
        assert_eq!(c.take(1, usize::MAX).unwrap().size, 4 << 20);
        assert_eq!(c.len(), 1);
        assert_eq!(c.bytes(), 8 << 20);
    }

    #[test]
    fn evicts_the_oldest_and_decays_in_order() {
        let mut c = SpanCache::new();
        for i in 0..3 {
            assert!(c
                .insert(span((i + 1) << 22, 4 << 20, i as u64 * 10), 3)
                .is_none());
        }
        let old = c.insert(span(9 << 22, 4 << 20, 30), 3).unwrap();
        assert_eq!(old.ptr, 1 << 22);
        assert!(c.evict_over(3).is_none());
        // At time 25 with a delay of 10, only the span freed at 10 is due.
        let mut due = c.take_due(25, 10, DIRTY).unwrap();
        assert_eq!(due.ptr, 2 << 22);
        assert!(
            c.take_due(25, 10, DIRTY).is_none(),
            "the span freed at 20 is too young"
        );
        due.purged = true;
        assert!(c.insert(due, 3).is_none());
        assert_eq!(
            c.pop_oldest_for_test().ptr,
            2 << 22,
            "a purged span goes back in its place"
        );
        assert_eq!(c.take_due(100, 10, DIRTY).map(|s| s.ptr), Some(3 << 22));
        assert_eq!(c.take_due(100, 10, DIRTY).map(|s| s.ptr), Some(9 << 22));
        assert!(c.take_due(100, 10, DIRTY).is_none());
        while c.pop().is_some() {}
        assert!(c.is_empty() && c.bytes() == 0 && c.dirty_bytes() == 0);
    }

    #[test]
    fn too_many_dirty_bytes_purge_at_once() {
        let mut c = SpanCache::new();
        for i in 0..9 {
            assert!(c.insert(span((i + 1) << 26, 16 << 20, 0), 16).is_none());
        }
        assert_eq!(c.dirty_bytes(), 144 << 20);
        assert_eq!(c.take_due(0, 1000, DIRTY).map(|s| s.ptr), Some(1 << 26));
        assert_eq!(c.dirty_bytes(), DIRTY);
        assert!(c.take_due(0, 1000, DIRTY).is_none(), "back under the limit");
    }
}
