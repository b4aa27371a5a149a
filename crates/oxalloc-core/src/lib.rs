//! # oxalloc-core: the allocator's policy, without an operating system
//!
//! ## Glossary
//! - **block**: what `malloc` returns. Its size is its class's size; it has no header.
//! - **bin** (size class): a block size; 48 of them from 16 B to 128 KiB (`size_class`).
//! - **page**: 64 KiB (small classes) or 512 KiB (medium classes) of blocks of one bin. Not an OS
//!   page, which we call an *OS page* (4 KiB).
//! - **segment**: 4 MiB, 4 MiB-aligned, holding pages and, at its start, their metadata. A
//!   pointer finds its segment by masking and its page by a shift (`segment`).
//! - **huge block**: larger than 128 KiB; it gets a segment of its own (`huge`).
//! - **heap**: one per thread; owns pages and segments and allocates without locks (`heap`).
//!   A program may create more, bound to its thread: *first-class* heaps (`first_class`).
//! - **arena**: the process-wide memory layer under the heaps: the source, the span cache, the
//!   registry of segments and the abandoned ones (`arena`).
//! - **source**: where memory comes from: mmap or the program break (`oxalloc-os`), or a fixed
//!   region (`region`), behind the [`os::Os`] trait.
//!
//! ## Layers
//! Each module uses only modules of lower layers (or of its own layer when named on the same
//! line below). `tests/layers.rs` reads the sources and fails when a module imports a higher one.
//! ```text
//!  0  util                                   leaf: sync, list, align, fmt
//!  1  os, size_class, options                the source trait; size classes; the options table
//!  2  stats                                  counters and snapshots
//!  3  thread_free, purge_claim, page, secure  the cross-thread free protocol; the purge
//!                                            thread's claim on free page slots; a page's blocks
//!                                            and free lists; secure mode's seals, fills,
//!                                            quarantine
//!  4  page_queue, segment                    queues of pages + direct table; segment layout + map
//!  5  span_cache, region, profile            spans kept for reuse and when to purge them; the
//!                                            fixed-region source; heap-profile sampling
//!  6  arena                                  segments from the source and back; abandoned list
//!  7  huge                                   blocks with a segment of their own
//!  8  heap                                   the heap type and the registry of heaps
//!  9  validate                               the whole-heap validator (debug-full, tests)
//! 10  page_life                              the slow path: find, refill, fresh, retire, reclaim
//! 11  free                                   free: owner's fast path, generic path, remote frees
//! 12  alloc                                  malloc: fast path and entry to the slow path; zeroed,
//!                                            aligned, realloc, usable size
//! 13  heap_life, collect, first_class         heaps created, torn down (abandoning segments);
//!                                            memory given back on demand (malloc_trim);
//!                                            first-class heaps (created, destroyed, deleted)
//! 14  visit                                  the heap walk and the statistics snapshot
//! ```
//!
//! ## The data path
//! ```text
//! malloc(n) -> heap.direct[(n+15)/16].free  --pop-->  block, link checked, live bit set
//!                                                                       (alloc: fast path)
//!                   | empty
//!                   v
//!              malloc_slow (alloc) -> page_life::find_page: collect local/remote frees,
//!                   extend the page, or take a fresh page from an owned segment
//!                   -> an abandoned segment (reclaim) -> arena: the span cache -> Os::map
//!              huge: huge::huge_alloc -> arena (span cache or Os::map)
//! free(p)   -> segment = p & !(4 MiB - 1); in SEGMENT_MAP?  page = segment.page_of_slot[slot]
//!              owner thread & page flags clear & live bit set -> clear it, push on
//!              page.local_free                                                  (free: fast)
//!              live bit clear, unaligned -> abort naming p                      (free_generic)
//!              other thread -> CAS push on page.thread_free (no lock)          (free_remote)
//!              huge -> huge::huge_free -> arena: span cache (purged later, then unmapped)
//! ```
//! A page whose last block is freed goes back to its segment (`page_life::retire`), a segment
//! whose last page goes goes back to the arena's span cache (`Arena::free_segment`); at thread
//! exit `heap_life::destroy` abandons segments that still hold live blocks, and another heap
//! reclaims them when it needs a segment (`page_life::reclaim`).
//!
//! Pages and segment headers are shared: other threads free into a page (and read its flags
//! and live bits) and heap walks read it while its owner allocates from it. So no `&mut Page`
//! or `&mut Segment` is ever made once a segment is set up: every field of a `Page` is a `Cell`
//! (written by the owner only) or an atomic (read by other threads while the owner writes it),
//! its methods take `&self`, and a segment header is read and written one field at a time
//! through its raw pointer (`page`'s "Sharing", `segment`). Miri's data race detector checks
//! this on the multi-threaded tests (`.ci/miri.sh`).
//!
//! ## Giving memory back
//! Freed memory stays resident for `OXALLOC_PURGE_DELAY` ms, so a free-then-reallocate workload
//! pays nothing, and is then purged (`Os::purge`: `MADV_DONTNEED` or `MADV_FREE`): cached spans
//! by the arena's decay (`Arena::tick`, on cache use and every 32 page refills), free page slots
//! of a heap's segments by its purge epoch (`page_life::purge_tick`), abandoned segments that
//! got frees by reclaim; `malloc_trim` does it all at once (`collect`). All of that runs on the
//! program's slow paths. With `OXALLOC_PURGE_THREAD=1` the front end also runs a purge thread
//! that calls [`Arena::background_purge`] and [`heap_life::recycle_abandoned`] every delay, so
//! memory comes back while the program sleeps. It purges slots of segments it does not own
//! through a claim protocol on three atomics per segment (`purge_claim::PurgeSlots`): owners publish freed resident slots; the thread marks a due segment's
//! published slots busy, takes them with one `fetch_and`, purges them outside every lock and
//! clears the busy bits; an owner takes a slot back with one `fetch_and` and waits while the
//! thread holds it, and releases no segment while the thread holds any of its slots.
//!
//! The core is generic over [`os::Os`] so it runs on a fixed region in tests and on targets
//! without an OS; the `oxalloc` crate binds heaps to threads and picks the real source.
//! `DESIGN.md` at the top of the repository tells the life of a block, a page, a segment and a
//! heap at more length.
#![no_std]
#![warn(unsafe_op_in_unsafe_fn, missing_docs)]
#![allow(clippy::missing_safety_doc)]

#[cfg(test)]
extern crate std;

pub mod util;

pub mod options;
pub mod os;
pub mod size_class;

pub mod stats;

pub(crate) mod page;
pub mod purge_claim;
pub(crate) mod secure;
pub mod thread_free;

pub(crate) mod page_queue;
pub(crate) mod segment;

pub mod profile;
pub mod region;
pub(crate) mod span_cache;

pub mod arena;

pub(crate) mod huge;

pub mod heap;

pub mod validate;

pub(crate) mod page_life;

pub mod free;

pub mod alloc;

pub mod collect;
pub mod first_class;
pub mod heap_life;

pub mod visit;

#[cfg(test)]
mod tests;

pub use arena::Arena;
pub use heap::{BindFn, Heap, HeapRegistry};
pub use os::{Mapping, Os};
pub use region::FixedRegion;
pub use segment::{SEGMENT_SHIFT, SEGMENT_SIZE};
pub use stats::Snapshot;
