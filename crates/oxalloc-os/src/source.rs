//! The process's memory source: mmap or the program break, per `OXALLOC_SOURCE`.

use crate::brk::Brk;
use crate::mmap::Mmap;
use crate::sys;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};
use oxalloc_core::options::{self, purge, source, thp, Opt};

/// The transparent huge page size on x86-64 and most aarch64 kernels: mappings aligned to it
/// (segments) are the ones THP advice is given for.
const HUGE_PAGE: usize = 2 << 20;
use oxalloc_core::os::{Mapping, Os, RemapInto};

/// The memory source oxalloc runs on.
pub struct OsSource {
    /// Anonymous mappings (always available; the fallback of `brk`).
    pub mmap: Mmap,
    /// The program break.
    pub brk: Brk,
    brk_failed: AtomicBool,
}

impl OsSource {
    /// A new source; nothing is mapped until asked.
    pub const fn new() -> Self {
        OsSource {
            mmap: Mmap::new(),
            brk: Brk::new(),
            brk_failed: AtomicBool::new(false),
        }
    }

    /// Takes the source's lock before `fork()` unless the calling thread holds it; returns
    /// whether it took it.
    pub fn lock_for_fork(&self) -> bool {
        self.brk.lock_for_fork()
    }

    /// Releases the lock after `fork()` if `taken` (in the child: always).
    ///
    /// # Safety
    /// As for [`Brk::unlock_after_fork`].
    pub unsafe fn unlock_after_fork(&self, taken: bool) {
        // SAFETY: per the contract.
        unsafe { self.brk.unlock_after_fork(taken) };
    }
}

impl Default for OsSource {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: both sources hand out disjoint, page-aligned, writable ranges and never allocate.
unsafe impl Os for OsSource {
    fn map(&self, size: usize, align: usize) -> Option<Mapping> {
        if options::get(Opt::Source) == source::BRK && !self.brk_failed.load(Ordering::Relaxed) {
            if let Some(m) = self.brk.map(size, align) {
                return Some(m);
            }
            if !self.brk_failed.swap(true, Ordering::Relaxed) && options::enabled(Opt::Verbose) {
                sys::write_stderr(
                    b"oxalloc: the program break cannot grow; using mmap from now on\n",
                );
            }
        }
        let m = self.mmap.map(size, align)?;
        match options::get(Opt::Thp) {
            thp::ALWAYS if align >= HUGE_PAGE => Mmap::advise_huge_pages(m.ptr, size, true),
            thp::NEVER if align >= HUGE_PAGE => Mmap::advise_huge_pages(m.ptr, size, false),
            _ => {}
        }
        Some(m)
    }

    unsafe fn unmap(&self, ptr: NonNull<u8>, size: usize) {
        let _keep = sys::ErrnoGuard::new();
        // SAFETY: per the trait contract, the range came from `map`, i.e. from one of the two.
        unsafe {
            if self.brk.owns(ptr.as_ptr()) {
                self.brk.unmap(ptr, size)
            } else {
                self.mmap.unmap(ptr, size)
            }
        }
    }

    unsafe fn protect(&self, ptr: NonNull<u8>, size: usize, accessible: bool) -> bool {
        let _keep = sys::ErrnoGuard::new();
        let prot = if accessible {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_NONE
        };
        // SAFETY: per the trait contract the range is ours (mmap'd or from the break).
        unsafe { libc::mprotect(ptr.as_ptr().cast(), size, prot) == 0 }
    }

    unsafe fn purge(&self, ptr: NonNull<u8>, size: usize) -> bool {
        let _keep = sys::ErrnoGuard::new();
        // SAFETY: per the trait contract. MADV_DONTNEED on private anonymous memory (mmap'd or
        // from the break) makes the range read as zero; MADV_FREE leaves it as it is until the
        // kernel takes the pages.
        unsafe {
            if options::get(Opt::Purge) == purge::FREE {
                Mmap::purge_lazily(ptr, size)
            } else {
                Mmap::purge(ptr, size)
            }
        }
    }

    unsafe fn remap_in_place(&self, ptr: NonNull<u8>, old_size: usize, new_size: usize) -> bool {
        let _keep = sys::ErrnoGuard::new();
        // SAFETY: per the trait contract.
        !self.brk.owns(ptr.as_ptr()) && unsafe { self.mmap.remap_in_place(ptr, old_size, new_size) }
    }

    unsafe fn remap_move(
        &self,
        ptr: NonNull<u8>,
        old_size: usize,
        new_size: usize,
        align: usize,
    ) -> Option<NonNull<u8>> {
        if self.brk.owns(ptr.as_ptr()) {
            return None;
        }
        let _keep = sys::ErrnoGuard::new();
        // SAFETY: per the trait contract.
        unsafe { self.mmap.remap_move(ptr, old_size, new_size, align) }
    }

    unsafe fn remap_into(
        &self,
        ptr: NonNull<u8>,
        old_size: usize,
        dest: NonNull<u8>,
        new_size: usize,
    ) -> RemapInto {
        // The break's ranges are bookkept by `Brk`: nothing moves into or out of them.
        if self.brk.owns(ptr.as_ptr()) || self.brk.owns(dest.as_ptr()) {
            return RemapInto::Unsupported;
        }
        let _keep = sys::ErrnoGuard::new();
        // SAFETY: per the trait contract.
        if unsafe { self.mmap.remap_into(ptr, old_size, dest, new_size) } {
            RemapInto::Moved
        } else {
            RemapInto::Failed
        }
    }

    fn now_ms(&self) -> u64 {
        sys::now_ms()
    }

    fn random(&self) -> usize {
        sys::random_word()
    }

    fn fatal(&self, what: &str, ptr: usize) -> ! {
        sys::fatal(what, ptr)
    }

    fn backtrace(&self, frames: &mut [usize]) -> usize {
        crate::backtrace::backtrace(frames)
    }
}
