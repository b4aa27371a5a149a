//! Memory sources: the only code in oxalloc that makes system calls for memory.
//!
//! - [`mmap::Mmap`]: anonymous private mappings, aligned by hinting and trimming.
//! - [`brk::Brk`]: the classic program break, grown in whole pages, shrunk when its top is free,
//!   with a first-fit list of free spans (split and coalesced) in between.
//! - [`OsSource`]: the one the process uses, chosen by `OXALLOC_SOURCE` at the first mapping;
//!   the program break falls back to mmap when it cannot grow.
//! - [`backtrace`]: call stacks for the sampled heap profile: on x86-64 an unwinder of its own
//!   (`unwinder`) that remembers each return address's unwind rule, elsewhere libgcc's.
//!
//! Nothing here allocates: diagnostics are written with `write(2)` from fixed buffers.
#![no_std]
#![warn(unsafe_op_in_unsafe_fn, missing_docs)]

pub mod backtrace;
pub mod brk;
pub mod mmap;
mod source;
pub mod sys;
#[cfg(all(target_os = "linux", target_env = "gnu", target_arch = "x86_64"))]
mod unwinder;

#[cfg(test)]
extern crate std;

pub use source::OsSource;
