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
//! - **source**: where segments come from: mmap or the program break (`os`, `oxalloc-os`).
//!
//! ## Layers (each depends only on the ones above it)
//! ```text
//! sync, size_class, options, stats     leaf utilities
//! os                                   the memory-source trait (the only door to the kernel)
//! page, page_queue                     blocks inside a page; queues of pages
//! segment                              pages inside a segment; the segment map
//! span_cache                           freed spans kept for reuse, purged on a delay
//! global, huge                         segments from the source; abandoned segments
//! heap, alloc, free                    the per-thread allocator and its fast paths
//! ```
//!
//! ## The data path
//! ```text
//! malloc(n) -> heap.direct[(n+15)/16].free  --pop-->  block        (fast: one branch)
//!                   | empty
//!                   v
//!              malloc_slow: bind thread? drain delayed frees; page queue of bin_of(n):
//!                   collect local/remote frees, extend the page, or take a fresh page
//!                   from an owned segment -> an abandoned segment -> the span cache
//!                   -> Os::map (mmap / brk)
//! free(p)   -> segment = p & !(4 MiB - 1); in SEGMENT_MAP?  page = segment.pages[(p-seg) >> shift]
//!              owner thread & page flags clear -> push on page.local_free   (fast)
//!              other thread -> CAS push on page.thread_free (no lock)       (remote)
//!              huge -> unmap
//! ```
//!
//! The core is generic over [`os::Os`] so tests can run it on a fixed region; the `oxalloc`
//! crate binds heaps to threads and picks the real source.
#![no_std]
#![warn(unsafe_op_in_unsafe_fn, missing_docs)]
#![allow(clippy::missing_safety_doc)]

#[cfg(test)]
extern crate std;

pub mod alloc;
pub mod free;
pub mod global;
pub mod heap;
pub mod huge;
pub mod options;
pub mod os;
pub mod page;
pub mod page_queue;
pub mod segment;
pub mod size_class;
pub mod span_cache;
pub mod stats;
pub mod sync;

#[cfg(test)]
mod tests;

pub use global::Global;
pub use heap::Heap;
pub use os::{Mapping, Os};
pub use stats::Snapshot;
