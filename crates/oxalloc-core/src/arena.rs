//! The arena: the process-wide memory layer under the thread heaps. It owns the memory source,
//! the span cache (with its purge schedule), the registry of segments that statistics and heap
//! walks read, and the list of abandoned segments; it is where a segment's life begins
//! (acquired from the cache or the source, set up, registered) and ends (unregistered, cached,
//! purged, unmapped).
//!
//! Everything here is reached from slow paths only (and from the purge thread, through
//! [`Arena::background_purge`]), behind spin locks that never allocate and under which no
//! system call is made: `cache` (the span cache) and `segments` (registry and abandoned list);
//! and `purging`, which the purge thread holds while it claims and purges a batch of page slots
//! (system calls included), taken before `segments` and only with `segments.try_lock`, so that
//! `fork()` (which takes it first) never waits on a thread that waits on it.
//!
//! Invariants:
//! - a segment is in `registry` and in the segment map from `Arena::alloc_segment` (or huge
//!   set-up) until `Arena::free_segment` (or huge free);
//! - a segment is in `abandoned` iff its `thread_id` is `owner::NONE` and it is registered;
//! - with the purge thread: a slot in a segment's `purge.busy` belongs to the purge thread, which
//!   purges it and clears the bit while holding `purging`; `free_segment` waits for every bit to
//!   clear before it unregisters the segment;
//! - `counters.mapped_bytes` is the sum of the sizes of the mappings the arena holds (live
//!   segments, huge blocks and cached spans).

use crate::options::{self, Opt};
use crate::os::{Mapping, Os, OS_PAGE};
use crate::profile::Profiler;
use crate::segment::{
    owner, InOwnerList, InRegistry, Segment, SegmentKind, HEADER_SIZE, SEGMENT_MAP, SEGMENT_SIZE,
};
use crate::span_cache::{Span, SpanCache, CACHE_SPAN_MAX};
use crate::stats::GlobalCounters;
use crate::util::list::List;
use crate::util::sync::{AtomicBool, AtomicU64, AtomicUsize, Ordering, SpinLock};
use core::ptr::{self, NonNull};

/// Most abandoned segments one [`Arena::pop_abandoned_with_frees`] looks at (under the lock).
const ABANDONED_SCAN: usize = 64;
/// Most segments the purge thread claims slots of in one pass over the registry (it purges
/// them outside the registry lock, then passes again).
const PURGE_BATCH: usize = 32;

/// The registry of segments and the abandoned ones, under one lock.
pub(crate) struct SegmentLists {
    registry: List<Segment, InRegistry>,
    abandoned: List<Segment, InOwnerList>,
}

// SAFETY: the lists hold segments whose ownership the lock hands over; no thread-bound data.
unsafe impl Send for SegmentLists {}

/// The process-wide memory layer, generic over where memory comes from.
pub struct Arena<S: Os + 'static> {
    /// The memory source.
    pub os: S,
    /// Process-wide counters.
    pub(crate) counters: GlobalCounters,
    /// The process secret that keys derive from (0 until first asked for).
    secret: AtomicUsize,
    cache: SpinLock<SpanCache>,
    segments: SpinLock<SegmentLists>,
    /// Whether the span cache holds dirty spans, mirrored out of its lock so the purge clock
    /// can be checked without taking it.
    cache_dirty: AtomicUsize,
    /// When [`Arena::tick`] next looks at the cache (milliseconds of the source's clock).
    next_decay_ms: AtomicU64,
    /// Segments in the abandoned list, mirrored out of its lock for the purge clock.
    abandoned_now: AtomicUsize,
    /// The `OXALLOC_SECURE` level heaps and huge blocks are made with (see `secure`).
    secure: AtomicUsize,
    /// The heap profile's settings and its table of live samples.
    pub profile: Profiler,
    /// Whether owners publish their free page slots for the purge thread
    /// ([`Arena::enable_purge_thread`]); never turned off.
    purge_thread: AtomicBool,
    /// A slot was published since the purge thread last passed over the registry, or it saw
    /// published slots that were not due yet: its next pass has work.
    purge_pending: AtomicBool,
    /// Held by the purge thread from its claim of a batch of slots to the end of their purge
    /// (so `fork()`, which takes it, never leaves a child with slots claimed by a thread it does
    /// not have). Taken before `segments`.
    purging: SpinLock<()>,
    /// The front end's start of the purge thread (a `fn()` as an address; 0 when none).
    purge_start_hook: AtomicUsize,
}

// SAFETY: all mutable state is behind spin locks or atomics; raw pointers in it refer to
// segments whose ownership the locks hand over.
unsafe impl<S: Os + 'static> Sync for Arena<S> {}
// SAFETY: as above.
unsafe impl<S: Os + 'static> Send for Arena<S> {}

impl<S: Os + 'static> Arena<S> {
    /// A new arena over `os`; nothing is mapped until asked.
    pub const fn new(os: S) -> Self {
        Arena {
            os,
            counters: GlobalCounters::new(),
            secret: AtomicUsize::new(0),
            cache: SpinLock::new(SpanCache::new()),
            segments: SpinLock::new(SegmentLists {
                registry: List::new(),
                abandoned: List::new(),
            }),
            cache_dirty: AtomicUsize::new(0),
            next_decay_ms: AtomicU64::new(0),
            abandoned_now: AtomicUsize::new(0),
            secure: AtomicUsize::new(0),
            profile: Profiler::new(),
            purge_thread: AtomicBool::new(false),
            purge_pending: AtomicBool::new(false),
            purging: SpinLock::new(()),
            purge_start_hook: AtomicUsize::new(0),
        }
    }

    /// Turns on the publication of free page slots for a purge thread, which the front end
    /// runs and which calls [`Arena::background_purge`]. For good: once a slot may be in the
    /// purge thread's hands, every owner must take it back through the claim protocol. (Turned
    /// on late, it is safe too: slots freed before are simply not published.) Refused (false)
    /// on targets without 64-bit atomics, whose slot masks would not hold 64 slots.
    pub fn enable_purge_thread(&self) -> bool {
        if !cfg!(target_has_atomic = "64") {
            return false;
        }
        self.purge_thread.store(true, Ordering::Relaxed);
        true
    }

    /// Sets the function the arena calls when it is about to allocate a segment or a huge
    /// block while free slots are published (see [`Arena::enable_purge_thread`]): the front
    /// end's start of its purge thread. It is called where no heap is in the middle of an
    /// update and no lock of the arena is held, so it may allocate (re-entering malloc); it
    /// must not fail or unwind.
    pub fn set_purge_start_hook(&self, hook: fn()) {
        self.purge_start_hook
            .store(hook as usize, Ordering::Release);
    }

    /// Calls the purge thread's start hook, if free slots are published and a hook is set (a
    /// relaxed load and a test otherwise; only on segment and huge-block allocation).
    #[inline]
    pub(crate) fn wake_purge_thread(&self) {
        if !self.purge_thread() {
            return;
        }
        let hook = self.purge_start_hook.load(Ordering::Acquire);
        if hook != 0 {
            // SAFETY: only `set_purge_start_hook` stores a non-zero value, and it stores a
            // `fn()`.
            let hook: fn() = unsafe { core::mem::transmute::<usize, fn()>(hook) };
            hook();
        }
    }

    /// Whether free page slots are published for a purge thread.
    #[inline]
    pub fn purge_thread(&self) -> bool {
        self.purge_thread.load(Ordering::Relaxed)
    }

    /// Sets the `OXALLOC_SECURE` level (see `secure::level`) for heaps created from now on and
    /// for huge blocks; the front end does it at start-up, before the first heap.
    pub fn set_secure(&self, level: usize) {
        self.secure.store(level, Ordering::Relaxed);
    }

    /// The `OXALLOC_SECURE` level.
    #[inline]
    pub fn secure(&self) -> usize {
        self.secure.load(Ordering::Relaxed)
    }

    /// The purge clock, called from heaps' slow paths every few page refills: when the span
    /// cache holds dirty spans and the clock has moved on, purges those that waited out the
    /// purge delay. So purging follows the program's time even when it only allocates in pages
    /// it already has, and costs a clock read at most once per call and a lock only when
    /// something may be due.
    pub(crate) fn tick(&self) {
        if self.cache_dirty.load(Ordering::Relaxed) == 0 {
            return;
        }
        let now = self.os.now_ms();
        let next = self.next_decay_ms.load(Ordering::Relaxed);
        if now < next
            || self
                .next_decay_ms
                .compare_exchange(
                    next,
                    now + 1 + options::get(Opt::PurgeDelay) as u64 / 4,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            return;
        }
        self.decay();
    }

    /// The process secret (one random word from the source, drawn on first use; never zero).
    pub fn secret(&self) -> usize {
        let s = self.secret.load(Ordering::Relaxed);
        if s != 0 {
            return s;
        }
        let new = self.os.random() | 1;
        match self
            .secret
            .compare_exchange(0, new, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => new,
            Err(won) => won,
        }
    }

    /// Maps `size` bytes aligned to a segment and counts them.
    pub(crate) fn map(&self, size: usize) -> Option<Mapping> {
        let m = self.os.map(size, SEGMENT_SIZE)?;
        let c = &self.counters;
        GlobalCounters::gauge_add(&c.mapped_bytes, &c.peak_mapped_bytes, size as u64);
        Some(m)
    }

    /// Returns mapped memory to the source and uncounts it.
    ///
    /// # Safety
    /// `at..at+size` is a mapping from [`Arena::map`] that nothing uses.
    pub(crate) unsafe fn unmap(&self, at: *mut u8, size: usize) {
        // SAFETY: per the contract.
        unsafe { self.os.unmap(NonNull::new_unchecked(at), size) };
        GlobalCounters::gauge_sub(&self.counters.mapped_bytes, size as u64);
    }

    /// Registers a freshly set-up segment in the segment map and the registry. False (and
    /// nothing registered) if its address is outside the map.
    pub(crate) fn register(&self, seg: *mut Segment) -> bool {
        if !SEGMENT_MAP.insert(seg) {
            return false;
        }
        // SAFETY: `seg` is a valid segment in no registry.
        unsafe { self.segments.lock().registry.push_front(seg) };
        self.counters.segments.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Removes a segment from the segment map and the registry.
    pub(crate) fn unregister(&self, seg: *mut Segment) {
        SEGMENT_MAP.remove(seg);
        // SAFETY: `seg` is registered.
        unsafe { self.segments.lock().registry.remove(seg) };
        self.counters.segments.fetch_sub(1, Ordering::Relaxed);
    }

    /// Calls `f` on every registered segment, under the registry lock (so none is released
    /// meanwhile). `f` must not allocate nor call back into the arena.
    pub fn for_each_segment(&self, mut f: impl FnMut(*mut Segment)) {
        let lists = self.segments.lock();
        let mut seg = lists.registry.first();
        while !seg.is_null() {
            f(seg);
            // SAFETY: `seg` is registered; the lock keeps the registry unchanged.
            seg = unsafe { List::<Segment, InRegistry>::next(seg) };
        }
    }

    /// Calls `f`, under the registry lock (so the segment stays registered and mapped during
    /// the call), on the registered segment with the lowest address above `after`; returns
    /// whether there was one. Heap walks step through the segments with it, taking the lock
    /// once per segment, so what they call between steps may allocate.
    pub fn with_segment_after(&self, after: usize, f: impl FnOnce(*mut Segment)) -> bool {
        let lists = self.segments.lock();
        let mut best: *mut Segment = ptr::null_mut();
        let mut seg = lists.registry.first();
        while !seg.is_null() {
            if seg as usize > after && (best.is_null() || seg < best) {
                best = seg;
            }
            // SAFETY: `seg` is registered; the lock keeps the registry unchanged.
            seg = unsafe { List::<Segment, InRegistry>::next(seg) };
        }
        if best.is_null() {
            return false;
        }
        f(best);
        true
    }

    /// Calls `f` on every abandoned segment, under the lock that reclaiming takes, so nobody
    /// changes them meanwhile except for remote frees (atomic pushes on `thread_free`). The
    /// thread that abandoned a segment wrote its pages before releasing this lock, so `f` may
    /// read them. `f` must not allocate nor call back into the arena.
    pub fn for_each_abandoned(&self, mut f: impl FnMut(*mut Segment)) {
        let lists = self.segments.lock();
        let mut seg = lists.abandoned.first();
        while !seg.is_null() {
            f(seg);
            // SAFETY: `seg` is in the abandoned list, which the lock keeps unchanged.
            seg = unsafe { List::<Segment, InOwnerList>::next(seg) };
        }
    }

    /// Takes the smallest cached span of at least `min` bytes for a huge block, after letting
    /// the cache decay. A larger span is taken whole: its slack lets the block grow in place,
    /// its dirty pages (at most the cache's dirty limit) are reused rather than faulted in
    /// anew, and a purged span costs address space only.
    pub(crate) fn cache_take(&self, min: usize) -> Option<Span> {
        self.cache_take_with(|cache| cache.take(min, usize::MAX))
    }

    /// Takes a span of exactly one segment from the cache (a freed segment, or a huge block's
    /// of that size), after letting the cache decay. A segment never takes a larger span:
    /// the tail past its pages would stay mapped, and resident if dirty, for the segment's
    /// life, while the next huge block of that size maps a new span (spans are not cut, as
    /// cut spans never grow back together).
    fn cache_take_segment(&self) -> Option<Span> {
        self.cache_take_with(|cache| cache.take(SEGMENT_SIZE, SEGMENT_SIZE))
    }

    fn cache_take_with(&self, take: impl FnOnce(&mut SpanCache) -> Option<Span>) -> Option<Span> {
        let mut cache = self.cache.lock();
        let span = take(&mut cache);
        self.cache_dirty
            .store(cache.dirty_bytes(), Ordering::Relaxed);
        drop(cache);
        self.decay();
        span
    }

    /// Gives a span back: cached for reuse (dirty, purged later), or unmapped if it is too large
    /// or the cache is disabled. No system call is made while the cache is locked.
    ///
    /// # Safety
    /// The span is a mapping of `size` bytes from [`Arena::map`] that nothing uses.
    pub(crate) unsafe fn cache_put(&self, ptr: *mut u8, size: usize) {
        let limit = options::get(Opt::SpanCache);
        if size > CACHE_SPAN_MAX || limit == 0 {
            // SAFETY: per the contract.
            return unsafe { self.unmap(ptr, size) };
        }
        let span = Span {
            ptr: ptr as usize,
            size,
            freed_at: self.os.now_ms(),
            purged: false,
            zeroed: false,
        };
        // SAFETY: the span is ours and unused.
        unsafe { self.cache_insert(span) };
        self.decay();
    }

    /// Inserts a span, unmapping (outside the lock) whatever the cache's limits push out.
    ///
    /// # Safety
    /// The span is a mapping from [`Arena::map`] that nothing uses, in no cache.
    pub(crate) unsafe fn cache_insert(&self, span: Span) {
        let limit = options::get(Opt::SpanCache);
        let mut cache = self.cache.lock();
        let mut evicted = cache.insert(span, limit);
        self.cache_dirty
            .store(cache.dirty_bytes(), Ordering::Relaxed);
        drop(cache);
        while let Some(old) = evicted {
            // SAFETY: evicted spans are unused mappings, out of the cache.
            unsafe { self.unmap(old.ptr as *mut u8, old.size) };
            let mut cache = self.cache.lock();
            evicted = cache.evict_over(limit);
            self.cache_dirty
                .store(cache.dirty_bytes(), Ordering::Relaxed);
        }
    }

    /// Purges the cached spans that have waited out the purge delay (or while too many bytes are
    /// dirty). Each is taken out of the cache for its `madvise`, so no thread can reuse it
    /// meanwhile and the lock is not held across the system call.
    fn decay(&self) {
        let now = self.os.now_ms();
        let delay = options::get(Opt::PurgeDelay) as u64;
        loop {
            let mut cache = self.cache.lock();
            let due = cache.take_due(now, delay, options::get(Opt::DirtyMax));
            self.cache_dirty
                .store(cache.dirty_bytes(), Ordering::Relaxed);
            drop(cache);
            let Some(mut span) = due else {
                break;
            };
            // SAFETY: the span is out of the cache and unused; purging keeps it mapped.
            span.zeroed = unsafe {
                self.os
                    .purge(NonNull::new_unchecked(span.ptr as *mut u8), span.size)
            };
            span.purged = true;
            self.counters
                .purged_bytes
                .fetch_add(span.size as u64, Ordering::Relaxed);
            // SAFETY: as above.
            unsafe { self.cache_insert(span) };
        }
    }

    /// A new segment of `kind` (small or medium), from the cache or the source, set up and
    /// registered, owned by nobody yet. Null when out of memory.
    pub(crate) fn alloc_segment(&self, kind: SegmentKind) -> *mut Segment {
        debug_assert!(kind != SegmentKind::Huge);
        // Before anything: the caller (a heap's fresh page) has no update under way.
        self.wake_purge_thread();
        let (at, size, zeroed) = match self.cache_take_segment() {
            Some(span) => (span.ptr as *mut u8, span.size, span.zeroed),
            None => match self.map(SEGMENT_SIZE) {
                Some(m) => (m.ptr.as_ptr(), SEGMENT_SIZE, m.zeroed),
                None => return ptr::null_mut(),
            },
        };
        // SAFETY: `at` is a segment-aligned range of at least SEGMENT_SIZE bytes that we own.
        let seg = unsafe { Segment::init(at, kind, size, zeroed) };
        if self.secure() != 0 {
            // SAFETY: the range is ours; the guard page lies between the header and page 0.
            unsafe { self.guard_segment(seg, at, size) };
        }
        if !self.register(seg) {
            // SAFETY: the mapping is ours and unused.
            unsafe { self.unmap(at, size) };
            return ptr::null_mut();
        }
        seg
    }

    /// Secure mode: makes the span `at..at+size` accessible again (a cached span may hold an
    /// old guard page anywhere) and puts a guard page after the header of `seg`, a small or
    /// medium segment set up there.
    ///
    /// # Safety
    /// The span is ours, and `seg` was just set up at `at`.
    #[cold]
    unsafe fn guard_segment(&self, seg: *mut Segment, at: *mut u8, size: usize) {
        // SAFETY: per the contract.
        unsafe {
            let at = NonNull::new_unchecked(at);
            self.os.protect(at, size, true);
            let guard = NonNull::new_unchecked(at.as_ptr().add(HEADER_SIZE));
            (*seg).guard = self.os.protect(guard, OS_PAGE, false);
        }
    }

    /// Takes back a small or medium segment with no page in use, into the span cache.
    ///
    /// # Safety
    /// The caller owns `seg`, a registered segment with no page in use, in no owner list.
    pub(crate) unsafe fn free_segment(&self, seg: *mut Segment) {
        // SAFETY: the caller owns `seg`, which holds no live block.
        unsafe {
            debug_assert_eq!((*seg).used_pages, 0);
            debug_assert!((*seg).kind != SegmentKind::Huge);
            let size = (*seg).size;
            if self.purge_thread() {
                // No slot may stay published, nor be in the purge thread's hands, once the
                // segment leaves the registry.
                self.withdraw(seg, !0);
            }
            self.unregister(seg);
            self.cache_put(seg.cast(), size);
        }
    }

    /// Purges the free page slots of `seg` named by `mask`, each run of adjacent slots with one
    /// call, and clears them from the segment's dirty masks (and from `used_since_zeroed` when
    /// the purge zeroes). Returns the bytes purged.
    ///
    /// # Safety
    /// The calling thread owns `seg` (its heap's, or taken off the abandoned list), and every
    /// slot in `mask` is free.
    pub(crate) unsafe fn purge_slots(&self, seg: *mut Segment, all: u64) -> usize {
        let mut purged = 0;
        let mut zeroed = true;
        // SAFETY: the caller owns the segment, so its plain fields are ours; other threads
        // only read its pages' atomics, and the slots are free, inside the segment's mapping.
        unsafe {
            // With a purge thread, the slots it claimed are its to purge (or purged already).
            let mask = if self.purge_thread() {
                (*seg).purge.withdraw(all, false).0
            } else {
                all
            };
            debug_assert!((0..(*seg).page_count)
                .all(|i| mask & (1 << i) == 0 || !(*seg).pages[i].assigned.get()));
            Segment::slot_runs(seg, mask, |start, len| {
                zeroed &= self.os.purge(NonNull::new_unchecked(start as *mut u8), len);
                purged += len;
            });
            (*seg).dirty_new &= !all;
            (*seg).dirty_old &= !all;
            if zeroed {
                (*seg).used_since_zeroed &= !mask;
            }
        }
        self.counters
            .purged_bytes
            .fetch_add(purged as u64, Ordering::Relaxed);
        purged
    }

    /// Records that page slot `index` of `seg` was just freed, its memory resident (see
    /// `Segment::slot_freed`), and publishes it for the purge thread if there is one.
    ///
    /// # Safety
    /// The calling thread owns `seg`, and slot `index` was just freed.
    pub(crate) unsafe fn slot_freed(&self, seg: *mut Segment, index: usize) {
        // SAFETY: per the contract.
        unsafe {
            Segment::slot_freed(seg, index);
            if self.purge_thread() && (*seg).used_since_zeroed & (1 << index) != 0 {
                (*seg).purge.publish(index, self.os.now_ms());
                self.purge_pending.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Takes the slots of `mask` back from the purge thread, waiting for those it holds, and
    /// counts the waits.
    ///
    /// # Safety
    /// The calling thread owns `seg`.
    unsafe fn withdraw(&self, seg: *mut Segment, mask: u64) {
        // SAFETY: per the contract.
        if unsafe { (*seg).purge.withdraw(mask, true) }.1 {
            self.counters.purge_waits.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Takes free page slot `index` of `seg` for a new page: back from the purge thread first
    /// (waiting for its purge if it claimed the slot), then as `Segment::take_slot_zeroed`.
    /// Returns whether the slot's memory reads as zero.
    ///
    /// # Safety
    /// The calling thread owns `seg`, and slot `index` is free.
    pub(crate) unsafe fn take_slot(&self, seg: *mut Segment, index: usize) -> bool {
        // SAFETY: per the contract.
        unsafe {
            if self.purge_thread() {
                self.withdraw(seg, 1 << index);
            }
            Segment::take_slot_zeroed(seg, index)
        }
    }

    /// The purge thread's work, every purge delay: purges the cached spans that have waited out
    /// the delay, and the free page slots that every segment's owner published (see
    /// `purge_claim::PurgeSlots`) and that have stayed free for a whole delay, in segments of any
    /// thread, live or abandoned. Claims are made under the registry lock, a batch at a time,
    /// and purged outside it. Returns the bytes of page slots purged. Never allocates.
    pub fn background_purge(&self) -> usize {
        self.decay();
        if !self.purge_thread() || !self.purge_pending.swap(false, Ordering::Relaxed) {
            return 0;
        }
        let delay = options::get(Opt::PurgeDelay) as u64;
        let now = self.os.now_ms();
        let mut purged = 0;
        let mut not_due = false;
        loop {
            // Never wait for `segments` while holding `purging`: the thread that holds it may
            // have been interrupted by a signal handler that forks, whose atfork handler waits
            // for `purging`. Let go of both and try again a few times, then at the next wake.
            let mut tries = 0;
            let held = loop {
                let hold = self.purging.lock();
                if let Some(lists) = self.segments.try_lock() {
                    break Some((hold, lists));
                }
                drop(hold);
                tries += 1;
                if tries == 16 {
                    break None;
                }
                crate::util::sync::yield_now();
            };
            let Some((hold, lists)) = held else {
                not_due = true;
                break;
            };
            let mut batch = [(ptr::null_mut::<Segment>(), 0u64); PURGE_BATCH];
            let mut n = 0;
            let mut more = false;
            {
                let mut seg = lists.registry.first();
                while !seg.is_null() {
                    // SAFETY: `seg` is registered and the lock keeps it so; `kind` is fixed
                    // from its set-up (before it was registered, under this lock), and the
                    // claim touches only atomics.
                    unsafe {
                        if (*seg).kind != SegmentKind::Huge && (*seg).purge.any_ready() {
                            if now < (*seg).purge.since() + delay {
                                not_due = true;
                            } else if n == PURGE_BATCH {
                                more = true;
                                break;
                            } else {
                                let won = (*seg).purge.claim();
                                if won != 0 {
                                    batch[n] = (seg, won);
                                    n += 1;
                                }
                            }
                        }
                        seg = List::<Segment, InRegistry>::next(seg);
                    }
                }
                drop(lists);
            }
            for &(seg, won) in &batch[..n] {
                // SAFETY: the slots of `won` are ours until `purge_done`: free, and their
                // owner waits for us before it reuses them or releases the segment, so the
                // segment stays mapped and registered; the layout fields `slot_runs` reads are
                // fixed since the segment was set up.
                unsafe {
                    Segment::slot_runs(seg, won, |start, len| {
                        self.os.purge(NonNull::new_unchecked(start as *mut u8), len);
                        purged += len;
                    });
                    (*seg).purge.done(won);
                }
            }
            drop(hold);
            if !more {
                break;
            }
        }
        if not_due {
            self.purge_pending.store(true, Ordering::Relaxed);
        }
        self.counters
            .purged_bytes
            .fetch_add(purged as u64, Ordering::Relaxed);
        self.counters
            .background_purged_bytes
            .fetch_add(purged as u64, Ordering::Relaxed);
        purged
    }

    /// Unmaps every cached span (`malloc_trim`). Returns the bytes released.
    pub fn trim(&self) -> usize {
        let mut released = 0;
        loop {
            // One span at a time, so the system call is made outside the lock.
            let Some(span) = self.cache.lock().pop() else {
                break;
            };
            // SAFETY: cached spans are unregistered and unused.
            unsafe { self.unmap(span.ptr as *mut u8, span.size) };
            released += span.size;
        }
        released
    }

    /// Publishes a segment of an exiting thread for others to reclaim.
    ///
    /// # Safety
    /// The caller owned `seg` and gives it up: nothing of its heap refers to it any more, and it
    /// is in no owner list.
    pub(crate) unsafe fn push_abandoned(&self, seg: *mut Segment) {
        // SAFETY: the segment is valid and in no owner list.
        unsafe {
            (*seg).thread_id.store(owner::NONE, Ordering::Release);
            self.segments.lock().abandoned.push_front(seg);
        }
        self.abandoned_now.fetch_add(1, Ordering::Relaxed);
        self.counters.abandoned.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes one abandoned segment, if any; the caller becomes its only user.
    pub(crate) fn pop_abandoned(&self) -> Option<*mut Segment> {
        if self.abandoned_now.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let seg = self.segments.lock().abandoned.pop_front();
        if seg.is_null() {
            return None;
        }
        self.abandoned_now.fetch_sub(1, Ordering::Relaxed);
        Some(seg)
    }

    /// Whether any segment is abandoned (a relaxed read: a hint for the purge clock).
    pub(crate) fn has_abandoned(&self) -> bool {
        self.abandoned_now.load(Ordering::Relaxed) != 0
    }

    /// Takes one abandoned segment that other threads have freed blocks into since (a page
    /// with a non-empty `thread_free` list), if any: the purge clock reclaims it, so memory
    /// freed after its thread exited is released without waiting for a thread to need a
    /// segment. Looks at most at [`ABANDONED_SCAN`] segments, moving those it passes over to the
    /// back, so successive calls cover the whole list.
    pub(crate) fn pop_abandoned_with_frees(&self) -> Option<*mut Segment> {
        if self.abandoned_now.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let mut lists = self.segments.lock();
        for _ in 0..ABANDONED_SCAN {
            let seg = lists.abandoned.pop_front();
            if seg.is_null() {
                break;
            }
            // SAFETY: abandoned segments are registered and their pages were written by their
            // last owner before it released this lock; `thread_free` is atomic.
            let freed = unsafe {
                let pages = &*ptr::addr_of!((*seg).pages);
                pages[..(*seg).page_count]
                    .iter()
                    .any(|p| p.assigned.get() && !p.thread_free.is_empty())
            };
            if freed {
                self.abandoned_now.fetch_sub(1, Ordering::Relaxed);
                return Some(seg);
            }
            // SAFETY: `seg` was just unlinked from this list.
            unsafe { lists.abandoned.push_back(seg) };
        }
        None
    }

    /// Takes the arena's locks for `fork()` (the child must not inherit a lock held
    /// mid-update), except those the calling thread holds already (a fork from a signal
    /// handler; see `SpinLock::lock_for_fork`). Returns which it took, for
    /// [`Arena::unlock_after_fork`].
    pub fn lock_for_fork(&self) -> u32 {
        // The purge thread's lock first: it takes `segments` while holding it.
        let purging = self.purging.lock_for_fork() as u32;
        purging << 2
            | self.segments.lock_for_fork() as u32
            | (self.cache.lock_for_fork() as u32) << 1
    }

    /// Releases the locks `taken` names (what [`Arena::lock_for_fork`] returned, in the parent;
    /// `u32::MAX` in the child, which has one thread and must be able to allocate).
    ///
    /// # Safety
    /// In the parent, `taken` came from `lock_for_fork` before this fork; in the child, no
    /// other thread exists.
    pub unsafe fn unlock_after_fork(&self, taken: u32) {
        // SAFETY: per the contract, the locks named are ours to release.
        unsafe {
            if taken & 2 != 0 {
                self.cache.force_unlock();
            }
            if taken & 1 != 0 {
                self.segments.force_unlock();
            }
            if taken & 4 != 0 {
                self.purging.force_unlock();
            }
        }
    }
}
