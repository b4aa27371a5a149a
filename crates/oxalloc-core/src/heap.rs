//! Heaps: one per thread, owning pages of every size class and the segments they live in, and
//! the registry of heaps (with the pool their structs come from).
//!
//! A heap is touched without locks by its thread only. Other threads reach it in exactly one
//! way: a remote free of a block in a *full* page pushes that block on the heap's atomic
//! `delayed` list (see `free`), so the owner learns that the page has room again.
//!
//! Invariants:
//! - the page queues' invariants (`page_queue`), for pages whose `heap` is this heap;
//! - `segments[k]` lists exactly the segments of kind `k` owned by this heap (`thread_id` is
//!   ours) that have a free page slot, each with `in_heap_list` set;
//! - `counters` are written by the owner only (relaxed stores of its own values), so any thread
//!   may read them.
//!
//! A thread's first heap is a static *sentinel* (`thread_id == 0`): its direct table points at
//! the empty page, so the first `malloc` falls into the slow path, which calls `bind` to give the
//! thread a real heap. The fast path therefore never asks "is this thread initialised?".
//!
//! Creating, binding and tearing heaps down is the `heap_life` module; this one holds the types.

use crate::arena::Arena;
use crate::os::{Os, OS_PAGE};
use crate::page::Page;
use crate::page_queue::{PageQueue, PageQueues, FULL};
use crate::profile::Sampler;
use crate::secure::Quarantine;
use crate::segment::{InOwnerList, Segment};
use crate::stats::HeapCounters;
use crate::thread_free::DelayedList;
use crate::util::align::align_up;
use crate::util::list::{Linked, Links, List};
use crate::util::sync::{Ordering, SpinLock};
use core::ptr;

/// A heap adds its live-byte changes to the global estimate (and samples the peak) once they
/// reach this many bytes either way: the peak of live bytes is exact to within this per thread.
pub(crate) const LIVE_SAMPLE_BYTES: u64 = 256 * 1024;

/// The front end's hook that binds a real heap to the calling thread (it owns thread-local
/// storage). Returns null when out of memory.
pub type BindFn<S> = unsafe fn() -> *mut Heap<S>;

/// A thread's heap.
#[repr(C)]
pub struct Heap<S: Os + 'static> {
    /// The heap's pages; the direct table comes first, at offset 0, for the fast path.
    pub(crate) pages: PageQueues,
    /// The owning thread's id; 0 for the sentinel.
    pub(crate) thread_id: usize,
    /// Blocks of full pages freed by other threads (see `thread_free`).
    pub(crate) delayed: DelayedList,
    /// The memory layer this heap takes segments from.
    pub(crate) arena: &'static Arena<S>,
    /// Binds a real heap to the thread (used by the sentinel's slow path).
    pub(crate) bind: BindFn<S>,
    /// Random key mixed into page keys.
    pub(crate) key: usize,
    /// Owned segments with a free page slot, by kind (small, medium).
    pub(crate) segments: [List<Segment, InOwnerList>; 2],
    /// Counters, flushed into the global ones on slow paths.
    pub(crate) counters: HeapCounters,
    /// Page refills since the heap last ran the arena's purge clock.
    pub(crate) refills: u32,
    /// Whether some owned segment may hold dirty free page slots (`Segment::dirty_new` or
    /// `dirty_old`), so the purge clock has work.
    pub(crate) dirty_slots: bool,
    /// When the heap's next purge epoch begins (the source's milliseconds).
    pub(crate) next_purge_ms: u64,
    /// The heap's `OXALLOC_SECURE` level (from its arena when it was created; 0: default mode).
    pub(crate) secure: usize,
    /// Secure mode: blocks freed by the owner, waiting before they are reused.
    pub(crate) quarantine: Quarantine,
    /// The heap profile's sampler (idle unless profiling is on).
    pub(crate) sampler: Sampler,
    /// A first-class heap's thread heap (the heap of the thread that created it, which tears
    /// it down at its exit); null for a thread's heap. See `first_class`.
    pub(crate) parent: *mut Heap<S>,
    /// A thread heap's first-class heaps, linked through `child_links`.
    pub(crate) children: List<Heap<S>, InChildren>,
    /// Links in the parent's `children`.
    pub(crate) child_links: Links<Heap<S>>,
    /// Set once a first-class heap has allocated a huge block (tagged with the heap in its
    /// page's `heap`), so tearing the heap down must look for them.
    pub(crate) huge_blocks: bool,
}

/// Marker of a thread heap's list of first-class heaps (`Heap::child_links`).
pub(crate) struct InChildren;

// SAFETY: `child_links` is the one field the children lists use.
unsafe impl<S: Os + 'static> Linked<InChildren> for Heap<S> {
    unsafe fn links(this: *mut Self) -> *mut Links<Self> {
        // SAFETY: `this` is a valid heap per the contract.
        unsafe { ptr::addr_of_mut!((*this).child_links) }
    }
}

/// What the registry's pool is made of: a heap, and beside it (outside the memory its owner
/// holds as `&mut Heap`) the links of the registry's lists, which other threads write when
/// they create or retire their own heaps.
#[repr(C)]
struct HeapSlot<S: Os + 'static> {
    /// First, so a heap's address is its slot's.
    heap: Heap<S>,
    /// Links in the registry's list of live heaps, or in its pool of free slots.
    links: Links<HeapSlot<S>>,
}

/// Marker of the registry's lists (`HeapSlot::links`).
pub(crate) struct InHeapRegistry;

// SAFETY: `links` is the one field the registry's lists use.
unsafe impl<S: Os + 'static> Linked<InHeapRegistry> for HeapSlot<S> {
    unsafe fn links(this: *mut Self) -> *mut Links<Self> {
        // SAFETY: `this` is a valid slot per the contract.
        unsafe { ptr::addr_of_mut!((*this).links) }
    }
}

impl<S: Os + 'static> Heap<S> {
    /// The sentinel heap of threads that have not allocated yet.
    pub const fn sentinel(arena: &'static Arena<S>, bind: BindFn<S>) -> Self {
        Heap {
            pages: PageQueues::new(),
            thread_id: 0,
            delayed: DelayedList::new(),
            arena,
            bind,
            key: 0,
            segments: [const { List::new() }; 2],
            counters: HeapCounters::new(),
            refills: 0,
            dirty_slots: false,
            next_purge_ms: 0,
            secure: 0,
            quarantine: Quarantine::new(),
            sampler: Sampler::new(),
            parent: ptr::null_mut(),
            children: List::new(),
            child_links: Links::UNLINKED,
            huge_blocks: false,
        }
    }

    /// Whether this is a sentinel (no pages, never written).
    #[inline(always)]
    pub fn is_sentinel(&self) -> bool {
        self.thread_id == 0
    }

    /// The id of the thread that owns the heap (0 for a sentinel).
    #[inline]
    pub fn owner(&self) -> usize {
        self.thread_id
    }

    /// Whether this is a first-class heap (`first_class`), not a thread's heap.
    #[inline]
    pub fn is_first_class(&self) -> bool {
        !self.parent.is_null()
    }

    /// Calls `f` on every page in the heap's queues (bin queues, then the full queue).
    ///
    /// # Safety
    /// The calling thread owns the heap.
    pub unsafe fn for_each_page(&self, mut f: impl FnMut(&Page)) {
        for q in 0..=FULL {
            let mut page = self.pages.queues[q].first();
            while !page.is_null() {
                // SAFETY: queue members are valid pages of the heap, which the caller owns.
                unsafe {
                    f(&*page);
                    page = PageQueue::next(page);
                }
            }
        }
    }
}

/// Live heaps and the pool of unused heap slots, under one lock.
struct HeapLists<S: Os + 'static> {
    live: List<HeapSlot<S>, InHeapRegistry>,
    pool: List<HeapSlot<S>, InHeapRegistry>,
}

// SAFETY: the lists hold heaps whose ownership the lock hands over.
unsafe impl<S: Os + 'static> Send for HeapLists<S> {}

/// Bytes mapped at a time for heap structs.
const HEAP_CHUNK: usize = 64 * 1024;

/// The registry of live heaps (statistics walk it) and the pool their structs come from.
/// Heap structs are never unmapped: a retired one goes back to the pool.
pub struct HeapRegistry<S: Os + 'static> {
    lists: SpinLock<HeapLists<S>>,
}

impl<S: Os + 'static> HeapRegistry<S> {
    /// An empty registry.
    pub const fn new() -> Self {
        HeapRegistry {
            lists: SpinLock::new(HeapLists {
                live: List::new(),
                pool: List::new(),
            }),
        }
    }

    /// A fresh heap struct bound to `thread_id`, registered as live; null when out of memory.
    /// The heap has no pages yet.
    pub fn create(
        &'static self,
        arena: &'static Arena<S>,
        bind: BindFn<S>,
        thread_id: usize,
    ) -> *mut Heap<S> {
        debug_assert!(thread_id != 0);
        let secret = arena.secret();
        let mut lists = self.lists.lock();
        if lists.pool.is_empty() {
            // Carve a chunk of heap slots from the source.
            let size = align_up(core::mem::size_of::<HeapSlot<S>>(), 64);
            let Some(m) = arena
                .os
                .map(HEAP_CHUNK.max(align_up(size, OS_PAGE)), OS_PAGE)
            else {
                return ptr::null_mut();
            };
            for i in 0..HEAP_CHUNK.max(size) / size {
                let slot = (m.ptr.as_ptr() as usize + i * size) as *mut HeapSlot<S>;
                // SAFETY: `slot` is inside the fresh chunk, aligned to 64, with room for a slot.
                unsafe {
                    slot.write(HeapSlot {
                        heap: Heap::sentinel(arena, bind),
                        links: Links::UNLINKED,
                    });
                    lists.pool.push_back(slot);
                }
            }
        }
        let slot = lists.pool.pop_front();
        let n = arena.counters.threads.fetch_add(1, Ordering::Relaxed);
        // SAFETY: pool members are valid slots not in use.
        unsafe {
            let heap = ptr::addr_of_mut!((*slot).heap);
            heap.write(Heap::sentinel(arena, bind));
            (*heap).thread_id = thread_id;
            (*heap).key = heap_key(secret, heap as usize, thread_id, n);
            (*heap).secure = arena.secure();
            (*heap).pages.secure = (*heap).secure != 0;
            (*heap).sampler.seed((*heap).key as u64);
            lists.live.push_front(slot);
            heap
        }
    }

    /// Takes a torn-down heap out of the live list and back into the pool.
    ///
    /// # Safety
    /// `heap` came from [`HeapRegistry::create`], was torn down, and is not used again.
    pub unsafe fn retire(&self, heap: *mut Heap<S>) {
        let mut lists = self.lists.lock();
        // The heap is its slot's first field.
        let slot = heap.cast::<HeapSlot<S>>();
        // SAFETY: per the contract the slot is in the live list.
        unsafe {
            lists.live.remove(slot);
            lists.pool.push_front(slot);
        }
    }

    /// Calls `f` on every live heap under the registry lock (so none is retired meanwhile).
    /// `f` must not allocate.
    pub fn for_each(&self, mut f: impl FnMut(*mut Heap<S>)) {
        let lists = self.lists.lock();
        let mut slot = lists.live.first();
        while !slot.is_null() {
            // SAFETY: `slot` is in the live list, which the lock keeps unchanged; the heap's
            // address is taken without reading it.
            unsafe {
                f(ptr::addr_of_mut!((*slot).heap));
                slot = List::<HeapSlot<S>, InHeapRegistry>::next(slot);
            }
        }
    }

    /// Takes the registry's lock for `fork()` unless the calling thread holds it already;
    /// returns whether it took it (see `Arena::lock_for_fork`).
    pub fn lock_for_fork(&self) -> bool {
        self.lists.lock_for_fork()
    }

    /// Releases the lock if `taken` (in the parent: what [`HeapRegistry::lock_for_fork`]
    /// returned; in the child: true).
    ///
    /// # Safety
    /// As for `Arena::unlock_after_fork`.
    pub unsafe fn unlock_after_fork(&self, taken: bool) {
        if taken {
            // SAFETY: per the contract.
            unsafe { self.lists.force_unlock() };
        }
    }
}

impl<S: Os + 'static> Default for HeapRegistry<S> {
    fn default() -> Self {
        Self::new()
    }
}

/// A random key for a new heap: the process secret mixed with the heap's address, its thread
/// and a counter through splitmix64 (in 64-bit arithmetic on every target).
fn heap_key(secret: usize, heap: usize, thread_id: usize, n: u64) -> usize {
    let mut x =
        (secret as u64) ^ (heap as u64).rotate_left(21) ^ (thread_id as u64).rotate_left(42) ^ n;
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ((x ^ (x >> 31)) as usize) | 1
}
