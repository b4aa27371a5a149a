//! The leaf layer: pieces every other module may use and that use nothing of the allocator.
//!
//! - [`sync`]: the atomics the core uses (one import point, so a model checker can replace
//!   them) and the one lock, a spin lock that never allocates;
//! - [`list`]: one generic intrusive doubly linked list, with an invariant check;
//! - [`align`]: rounding to powers of two;
//! - [`fmt`]: formatting into fixed buffers, for output that must not allocate.

pub mod align;
pub mod fmt;
pub mod list;
pub mod sync;
