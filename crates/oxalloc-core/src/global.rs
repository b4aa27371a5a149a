//! Process-wide state: the memory source, the span cache, abandoned segments, the registries
//! of segments and heaps that statistics and heap walks read, and the pool heaps come from.
//! Everything here is reached from slow paths only, behind spin locks that never allocate.

use crate::heap::Heap;
use crate::options::{self, Opt};
use crate::os::{Os, OS_PAGE};
use crate::page::delayed;
use crate::segment::{Segment, SegmentKind, SEGMENT_MAP, SEGMENT_SIZE};
use crate::size_class::align_up;
use crate::span_cache::{Span, SpanCache, CACHE_SPAN_MAX};
use crate::stats::{GlobalCounters, Snapshot};
use crate::sync::{AtomicUsize, Ordering, SpinLock};
use core::ptr::{self, NonNull};

/// Intrusive lists under one lock: abandoned segments and the registry of all segments.
struct Lists<S: Os + 'static> {
    abandoned: *mut Segment,
    all_segments: *mut Segment,
    live_heaps: *mut Heap<S>,
    free_heaps: *mut Heap<S>,
}

/// The allocator's process-wide state, generic over where memory comes from.
pub struct Global<S: Os + 'static> {
    /// The memory source.
    pub os: S,
    /// Process-wide counters.
    pub counters: GlobalCounters,
    /// Binds a real heap to the calling thread and returns it (set by the front end, which owns
    /// thread-local storage). Called from the sentinel heap's slow path.
    pub bind_thread: unsafe fn() -> *mut Heap<S>,
    /// The process secret that heap keys derive from (0 until the first heap).
    secret: AtomicUsize,
    cache: SpinLock<SpanCache>,
    lists: SpinLock<Lists<S>>,
}

// SAFETY: all mutable state is behind spin locks or atomics; raw pointers in it refer to
// segments and heaps whose ownership the locks hand over.
unsafe impl<S: Os + 'static> Sync for Global<S> {}
// SAFETY: as above.
unsafe impl<S: Os + 'static> Send for Global<S> {}

/// Bytes mapped at a time for heap structs.
const HEAP_CHUNK: usize = 64 * 1024;

impl<S: Os + 'static> Global<S> {
    /// A new allocator over `os`.
    pub const fn new(os: S, bind_thread: unsafe fn() -> *mut Heap<S>) -> Self {
        Global {
            os,
            counters: GlobalCounters::new(),
            bind_thread,
            secret: AtomicUsize::new(0),
            cache: SpinLock::new(SpanCache::new()),
            lists: SpinLock::new(Lists {
                abandoned: ptr::null_mut(),
                all_segments: ptr::null_mut(),
                live_heaps: ptr::null_mut(),
                free_heaps: ptr::null_mut(),
            }),
        }
    }

    /// Maps `size` bytes aligned to a segment and counts them.
    pub(crate) fn map_segment_memory(&self, size: usize) -> Option<crate::os::Mapping> {
        let m = self.os.map(size, SEGMENT_SIZE)?;
        let c = &self.counters;
        GlobalCounters::gauge_add(&c.mapped_bytes, &c.peak_mapped_bytes, size as u64);
        Some(m)
    }

    /// Registers a freshly initialised segment in the map and the registry.
    pub(crate) fn register_segment(&self, seg: *mut Segment) -> bool {
        if !SEGMENT_MAP.insert(seg) {
            return false;
        }
        let mut lists = self.lists.lock();
        // SAFETY: `seg` is a valid, unregistered segment; registry members are valid.
        unsafe {
            (*seg).all_prev = ptr::null_mut();
            (*seg).all_next = lists.all_segments;
            if !lists.all_segments.is_null() {
                (*lists.all_segments).all_prev = seg;
            }
        }
        lists.all_segments = seg;
        self.counters.segments.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Removes a segment from the map and the registry.
    pub(crate) fn unregister_segment(&self, seg: *mut Segment) {
        SEGMENT_MAP.remove(seg);
        let mut lists = self.lists.lock();
        // SAFETY: `seg` is registered, so it and its neighbours are valid.
        unsafe {
            let (prev, next) = ((*seg).all_prev, (*seg).all_next);
            if prev.is_null() {
                lists.all_segments = next;
            } else {
                (*prev).all_next = next;
            }
            if !next.is_null() {
                (*next).all_prev = prev;
            }
        }
        self.counters.segments.fetch_sub(1, Ordering::Relaxed);
    }

    /// Returns mapped memory to the source and uncounts it.
    pub(crate) unsafe fn unmap_segment_memory(&self, at: *mut u8, size: usize) {
        // SAFETY: the caller passes a mapping of `size` bytes that nothing uses.
        unsafe { self.os.unmap(NonNull::new_unchecked(at), size) };
        GlobalCounters::gauge_sub(&self.counters.mapped_bytes, size as u64);
    }

    /// Takes the smallest cached span of at least `min` bytes, after letting the cache decay.
    /// A larger span is taken whole: its slack lets the block grow in place, its dirty pages
    /// (at most the cache's dirty limit) are reused rather than faulted in anew, and a purged
    /// span costs address space only.
    pub(crate) fn cache_take(&self, min: usize) -> Option<Span> {
        let span = self.cache.lock().take(min, usize::MAX);
        self.decay();
        span
    }

    /// Gives a span back: cached for reuse (dirty, purged later), or unmapped if it is too large
    /// or the cache is disabled. No system call is made while the cache is locked.
    ///
    /// # Safety
    /// The span is a mapping of `size` bytes from this allocator's source that nothing uses.
    pub(crate) unsafe fn cache_put(&self, ptr: *mut u8, size: usize) {
        let limit = options::get(Opt::SpanCache);
        if size > CACHE_SPAN_MAX || limit == 0 {
            // SAFETY: per the contract.
            return unsafe { self.unmap_segment_memory(ptr, size) };
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
    unsafe fn cache_insert(&self, span: Span) {
        let limit = options::get(Opt::SpanCache);
        let mut evicted = self.cache.lock().insert(span, limit);
        while let Some(old) = evicted {
            // SAFETY: evicted spans are unused mappings of the source, out of the cache.
            unsafe { self.unmap_segment_memory(old.ptr as *mut u8, old.size) };
            evicted = self.cache.lock().evict_over(limit);
        }
    }

    /// Purges the cached spans that have waited out the purge delay (or while too many bytes are
    /// dirty). Each is taken out of the cache for its `madvise`, so no thread can reuse it
    /// meanwhile and the lock is not held across the system call.
    fn decay(&self) {
        let now = self.os.now_ms();
        let delay = options::get(Opt::PurgeDelay) as u64;
        loop {
            let Some(mut span) = self.cache.lock().take_due(now, delay) else {
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

    /// A new segment of `kind` (small or medium), from the cache or the source. Null when out of
    /// memory.
    pub fn alloc_segment(&self, kind: SegmentKind) -> *mut Segment {
        debug_assert!(kind != SegmentKind::Huge);
        let (at, size, zeroed) = match self.cache_take(SEGMENT_SIZE) {
            Some(span) => (span.ptr as *mut u8, span.size, span.zeroed),
            None => match self.map_segment_memory(SEGMENT_SIZE) {
                Some(m) => (m.ptr.as_ptr(), SEGMENT_SIZE, m.zeroed),
                None => return ptr::null_mut(),
            },
        };
        // SAFETY: `at` is a segment-aligned range of at least SEGMENT_SIZE bytes that we own.
        let seg = unsafe { Segment::init(at, kind, size, zeroed) };
        if !self.register_segment(seg) {
            // SAFETY: the mapping is ours and unused.
            unsafe { self.unmap_segment_memory(at, size) };
            return ptr::null_mut();
        }
        seg
    }

    /// Takes back a small or medium segment with no page in use, into the span cache.
    ///
    /// # Safety
    /// The caller owns `seg`, a registered segment with no page in use.
    pub unsafe fn free_segment(&self, seg: *mut Segment) {
        // SAFETY: the caller owns `seg`, which holds no live block.
        unsafe {
            debug_assert_eq!((*seg).used_pages, 0);
            debug_assert!((*seg).kind != SegmentKind::Huge);
            let size = (*seg).size;
            self.unregister_segment(seg);
            self.cache_put(seg.cast(), size);
        }
    }

    /// Unmaps every cached span (`malloc_trim`). Returns the bytes released.
    pub fn trim(&self) -> usize {
        let mut released = 0;
        let mut cache = self.cache.lock();
        while let Some(span) = cache.pop() {
            // SAFETY: cached spans are unregistered and unused.
            unsafe { self.unmap_segment_memory(span.ptr as *mut u8, span.size) };
            released += span.size;
        }
        released
    }

    /// Publishes a segment of an exiting thread for others to reclaim.
    ///
    /// # Safety
    /// The caller owned `seg` and gives it up: nothing of its heap refers to it any more.
    pub unsafe fn push_abandoned(&self, seg: *mut Segment) {
        let mut lists = self.lists.lock();
        // SAFETY: the exiting heap hands `seg` over; nobody else references its list link.
        unsafe { (*seg).abandoned_next = lists.abandoned };
        lists.abandoned = seg;
        self.counters.abandoned.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes one abandoned segment, if any.
    pub fn pop_abandoned(&self) -> Option<*mut Segment> {
        let mut lists = self.lists.lock();
        let seg = lists.abandoned;
        if seg.is_null() {
            return None;
        }
        // SAFETY: list members are valid abandoned segments.
        lists.abandoned = unsafe { (*seg).abandoned_next };
        Some(seg)
    }

    /// A random key for a new heap: the process secret (one `getrandom` per process) mixed with
    /// the heap's address, its thread and a counter through splitmix64.
    fn heap_key(&self, heap: usize, thread_id: usize) -> usize {
        let mut secret = self.secret.load(Ordering::Relaxed);
        if secret == 0 {
            secret = self.os.random() | 1;
            self.secret.store(secret, Ordering::Relaxed);
        }
        let n = self.counters.threads.load(Ordering::Relaxed) as usize;
        let mut x = secret ^ heap.rotate_left(21) ^ thread_id.rotate_left(42) ^ n;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d049bb133111eb);
        (x ^ (x >> 31)) | 1
    }

    /// A new heap bound to `thread_id`, or null when out of memory.
    pub fn create_heap(&'static self, thread_id: usize) -> *mut Heap<S> {
        debug_assert!(thread_id != 0);
        let mut lists = self.lists.lock();
        if lists.free_heaps.is_null() {
            // Carve a chunk of heaps from the source.
            let size = align_up(core::mem::size_of::<Heap<S>>(), 64);
            let Some(m) = self
                .os
                .map(HEAP_CHUNK.max(align_up(size, OS_PAGE)), OS_PAGE)
            else {
                return ptr::null_mut();
            };
            let n = HEAP_CHUNK.max(size) / size;
            for i in 0..n {
                let h = (m.ptr.as_ptr() as usize + i * size) as *mut Heap<S>;
                // SAFETY: `h` is inside the fresh chunk, aligned to 64, with room for a heap.
                unsafe {
                    h.write(Heap::sentinel(self));
                    (*h).next_heap = lists.free_heaps;
                }
                lists.free_heaps = h;
            }
        }
        let heap = lists.free_heaps;
        // SAFETY: pool members are valid heap structs not in use.
        unsafe {
            lists.free_heaps = (*heap).next_heap;
            heap.write(Heap::sentinel(self));
            (*heap).thread_id = thread_id;
            (*heap).key = self.heap_key(heap as usize, thread_id);
            (*heap).next_heap = lists.live_heaps;
            if !lists.live_heaps.is_null() {
                (*lists.live_heaps).prev_heap = heap;
            }
        }
        lists.live_heaps = heap;
        self.counters.threads.fetch_add(1, Ordering::Relaxed);
        heap
    }

    /// Abandons a heap's memory and returns the heap to the pool.
    ///
    /// # Safety
    /// `heap` came from [`Global::create_heap`], belongs to the calling thread and is not used
    /// again.
    pub unsafe fn destroy_heap(&self, heap: *mut Heap<S>) {
        // SAFETY: per the contract, the heap is ours to tear down.
        unsafe { (*heap).abandon() };
        let mut lists = self.lists.lock();
        // SAFETY: the heap is in the live list; its neighbours are valid.
        unsafe {
            let (prev, next) = ((*heap).prev_heap, (*heap).next_heap);
            if prev.is_null() {
                lists.live_heaps = next;
            } else {
                (*prev).next_heap = next;
            }
            if !next.is_null() {
                (*next).prev_heap = prev;
            }
            (*heap).prev_heap = ptr::null_mut();
            (*heap).next_heap = lists.free_heaps;
        }
        lists.free_heaps = heap;
    }

    /// Takes every lock, for `fork()`: the child must not inherit a lock held mid-update.
    pub fn lock_for_fork(&self) {
        self.lists.lock_for_fork();
        self.cache.lock_for_fork();
    }

    /// Releases the locks taken by [`Global::lock_for_fork`] (in the parent and in the child).
    ///
    /// # Safety
    /// `lock_for_fork` was called before the fork.
    pub unsafe fn unlock_after_fork(&self) {
        // SAFETY: per the contract, we hold both locks.
        unsafe {
            self.cache.force_unlock();
            self.lists.force_unlock();
        }
    }

    /// A snapshot of every statistic. Exact when no other thread is allocating; approximate
    /// otherwise (other threads' pages are read without synchronising with them).
    pub fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::from_counters(&self.counters);
        let lists = self.lists.lock();
        let mut live_blocks = 0u64;
        let mut heap = lists.live_heaps;
        while !heap.is_null() {
            // SAFETY: live heaps stay valid while we hold the lists lock. Blocks on a delayed
            // list are freed but still counted in their page's `used`; the walk is bounded.
            unsafe {
                for (dst, src) in s.bins.iter_mut().zip((*heap).counters.bins.iter()) {
                    *dst = dst.wrapping_add(src.load(Ordering::Relaxed));
                }
                let mut b = (*heap).delayed.load(Ordering::Acquire) as *const usize;
                let mut steps = 0;
                while !b.is_null() && steps < 1 << 20 && SEGMENT_MAP.contains(b.cast()) {
                    let page = &*(*Segment::of(b.cast())).page_of(b.cast());
                    live_blocks = live_blocks.wrapping_sub(1);
                    s.live_bytes = s.live_bytes.wrapping_sub(page.block_size as u64);
                    b = ptr::read_volatile(b) as *const usize;
                    steps += 1;
                }
                heap = (*heap).next_heap;
            }
        }
        let mut seg = lists.all_segments;
        while !seg.is_null() {
            // SAFETY: registered segments stay mapped while we hold the lists lock. Their pages
            // may be changing under us; `free_len` and the thread-free walk are bounded.
            unsafe {
                if (*seg).kind != SegmentKind::Huge {
                    for i in 0..(*seg).page_count {
                        let page = &(*seg).pages[i];
                        if !ptr::read_volatile(&page.in_use) {
                            continue;
                        }
                        let bin = page.bin as usize;
                        s.bins[bin] = s.bins[bin].wrapping_sub(page.free_len() as u64);
                        let mut pending = 0u64;
                        let mut b = (page.thread_free.load(Ordering::Acquire) & !delayed::MASK)
                            as *const usize;
                        while !b.is_null()
                            && pending < page.reserved as u64
                            && page.contains(b as usize)
                        {
                            pending += 1;
                            b = ptr::read_volatile(b) as *const usize;
                        }
                        let used = (ptr::read_volatile(&page.used) as u64).saturating_sub(pending);
                        live_blocks = live_blocks.wrapping_add(used);
                        s.live_bytes = s.live_bytes.wrapping_add(used * page.block_size as u64);
                    }
                }
                seg = (*seg).all_next;
            }
        }
        drop(lists);
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
}
