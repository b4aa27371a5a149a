//! The cross-thread free protocol of oxalloc-core (`src/thread_free.rs`) and the purge thread's
//! claim protocol on free page slots (`src/purge_claim.rs`), compiled unchanged against loom's
//! atomics: the file reaches its atomics, its link accesses and its wait hint only
//! through `crate::util::sync`, which this crate provides. Free-list links are loom atomics
//! accessed with relaxed ordering, so a missing release/acquire pair in the protocol shows up as
//! a lost or garbled block in the model tests (`tests/thread_free.rs`).

/// What `thread_free.rs` imports, backed by loom.
pub mod util {
    /// loom's atomics and the link accessors.
    pub mod sync {
        pub use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

        /// Writes a link into a model block (a loom atomic, relaxed).
        ///
        /// # Safety
        /// `block` is the address of a live `AtomicUsize`.
        pub unsafe fn link_write(block: usize, link: usize) {
            // SAFETY: per the contract.
            unsafe { (*(block as *const AtomicUsize)).store(link, Ordering::Relaxed) }
        }

        /// Reads a link from a model block (relaxed).
        ///
        /// # Safety
        /// `block` is the address of a live `AtomicUsize`.
        pub unsafe fn link_read(block: usize) -> usize {
            // SAFETY: per the contract.
            unsafe { (*(block as *const AtomicUsize)).load(Ordering::Relaxed) }
        }

        /// A wait lets loom schedule the other threads.
        pub fn spin_hint() {
            loom::thread::yield_now();
        }

        /// A longer wait: the same for loom.
        pub fn yield_now() {
            loom::thread::yield_now();
        }
    }
}

#[path = "../../crates/oxalloc-core/src/thread_free.rs"]
pub mod thread_free;

#[path = "../../crates/oxalloc-core/src/purge_claim.rs"]
pub mod purge_claim;
