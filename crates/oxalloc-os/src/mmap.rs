//! Anonymous mmap. Aligned mappings first try a hint address right after the previous aligned
//! mapping (one system call when the address space there is free), and otherwise map
//! `size + align` and trim both ends. The first hint is random (drawn from `getrandom` when the
//! process maps its first segment), so the heap's addresses change from run to run as ASLR
//! intends.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};
use oxalloc_core::os::{Mapping, OS_PAGE};

/// Where aligned mappings are hinted: well above the program's usual mappings.
const HINT_START: usize = 0x0200_0000_0000; // 2 TiB
/// The first hint lies below this, at a random multiple of [`HINT_GRANULE`] from the start.
const HINT_RANDOM_END: usize = 0x2000_0000_0000; // 32 TiB
/// Granule of the first hint: a segment (4 MiB), so hints stay aligned for segments.
const HINT_GRANULE: usize = 1 << 22;
/// Hints stop here and the trimming path takes over.
const HINT_END: usize = 0x4000_0000_0000; // 64 TiB

/// A random first hint: one of the 7.5 million segment-aligned addresses between 2 and 32 TiB.
fn random_hint() -> usize {
    let slots = (HINT_RANDOM_END - HINT_START) / HINT_GRANULE;
    HINT_START + (crate::sys::random_word() % slots) * HINT_GRANULE
}

/// The mmap source.
pub struct Mmap {
    hint: AtomicUsize,
}

impl Mmap {
    /// A new source (its first hint is drawn when it first maps).
    pub const fn new() -> Self {
        Mmap {
            hint: AtomicUsize::new(0),
        }
    }

    /// The next hint for `span` bytes; the first call draws the random start.
    fn next_hint(&self, span: usize) -> usize {
        if self.hint.load(Ordering::Relaxed) == 0 {
            // Two threads racing here both draw; the first to store wins.
            let _ =
                self.hint
                    .compare_exchange(0, random_hint(), Ordering::Relaxed, Ordering::Relaxed);
        }
        self.hint.fetch_add(span, Ordering::Relaxed)
    }

    fn raw_map(addr: usize, size: usize) -> Option<*mut u8> {
        // SAFETY: an anonymous private mapping with no fixed address cannot clobber anything.
        let p = unsafe {
            libc::mmap(
                addr as *mut libc::c_void,
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            None
        } else {
            Some(p.cast())
        }
    }

    /// Maps `size` bytes aligned to `align`.
    pub fn map(&self, size: usize, align: usize) -> Option<Mapping> {
        debug_assert!(size % OS_PAGE == 0 && align.is_power_of_two());
        if align <= OS_PAGE {
            let p = Self::raw_map(0, size)?;
            return Some(Mapping {
                ptr: NonNull::new(p)?,
                zeroed: true,
            });
        }
        // 1. A hinted address, aligned by construction.
        let span = (size + align - 1) & !(align - 1);
        let hint = self.next_hint(span);
        if hint + span <= HINT_END && hint % align == 0 {
            if let Some(p) = Self::raw_map(hint, size) {
                if p as usize % align == 0 {
                    return Some(Mapping {
                        ptr: NonNull::new(p)?,
                        zeroed: true,
                    });
                }
                // SAFETY: we just mapped it.
                unsafe { libc::munmap(p.cast(), size) };
            }
        }
        // 2. Over-map and trim.
        let p = Self::raw_map(0, size.checked_add(align)?)? as usize;
        let aligned = (p + align - 1) & !(align - 1);
        // SAFETY: both trimmed pieces lie inside the mapping we own and are page-aligned.
        unsafe {
            if aligned > p {
                libc::munmap(p as *mut libc::c_void, aligned - p);
            }
            let tail = p + size + align - (aligned + size);
            if tail > 0 {
                libc::munmap((aligned + size) as *mut libc::c_void, tail);
            }
        }
        Some(Mapping {
            ptr: NonNull::new(aligned as *mut u8)?,
            zeroed: true,
        })
    }

    /// Unmaps a range.
    ///
    /// # Safety
    /// The range was mapped by this source and is unused.
    pub unsafe fn unmap(&self, ptr: NonNull<u8>, size: usize) {
        // SAFETY: per the contract.
        unsafe { libc::munmap(ptr.as_ptr().cast(), size) };
    }

    /// Drops the physical pages of a range (they read as zero afterwards); RSS falls at once.
    ///
    /// # Safety
    /// The range is mapped and holds nothing needed.
    pub unsafe fn purge(ptr: NonNull<u8>, size: usize) -> bool {
        // SAFETY: per the contract.
        unsafe { libc::madvise(ptr.as_ptr().cast(), size, libc::MADV_DONTNEED) == 0 }
    }

    /// Lets the kernel take the physical pages of a range when it needs memory (`MADV_FREE`);
    /// until then they stay resident and keep their contents, so the range does not read as
    /// zero. Falls back to [`Mmap::purge`] (and says the range is zeroed) on kernels without it.
    ///
    /// # Safety
    /// The range is mapped and holds nothing needed.
    pub unsafe fn purge_lazily(ptr: NonNull<u8>, size: usize) -> bool {
        // SAFETY: per the contract.
        if unsafe { libc::madvise(ptr.as_ptr().cast(), size, libc::MADV_FREE) } == 0 {
            return false;
        }
        // SAFETY: per the contract.
        unsafe { Self::purge(ptr, size) }
    }

    /// Asks for transparent huge pages on a range (`on`), or for none.
    pub fn advise_huge_pages(ptr: NonNull<u8>, size: usize, on: bool) {
        let advice = if on {
            libc::MADV_HUGEPAGE
        } else {
            libc::MADV_NOHUGEPAGE
        };
        // SAFETY: advice on a mapping we own changes no contents; a failure only means the
        // kernel has no THP support, which leaves the range as it was.
        unsafe { libc::madvise(ptr.as_ptr().cast(), size, advice) };
    }

    /// Moves a mapping's pages to a fresh `align`-aligned range of `new` bytes without copying.
    ///
    /// # Safety
    /// The range was mapped by this source and nothing else refers into it.
    pub unsafe fn remap_move(
        &self,
        ptr: NonNull<u8>,
        old: usize,
        new: usize,
        align: usize,
    ) -> Option<NonNull<u8>> {
        // Reserve the destination first, so the kernel places nothing else there.
        let dest = self.map(new, align)?.ptr;
        // SAFETY: both ranges are ours; MREMAP_FIXED replaces the reservation atomically.
        if !unsafe { self.remap_into(ptr, old, dest, new) } {
            // SAFETY: the reservation is ours and unused.
            unsafe { libc::munmap(dest.as_ptr().cast(), new) };
            return None;
        }
        Some(dest)
    }

    /// Moves a mapping's pages onto `dest..dest+new` (a range of ours whose contents are
    /// discarded) without copying; false if the kernel refused, which may have unmapped the
    /// destination.
    ///
    /// # Safety
    /// Both ranges are ours, and nothing else refers into either.
    pub unsafe fn remap_into(
        &self,
        ptr: NonNull<u8>,
        old: usize,
        dest: NonNull<u8>,
        new: usize,
    ) -> bool {
        // SAFETY: per the contract; MREMAP_FIXED replaces the destination's pages.
        let p = unsafe {
            libc::mremap(
                ptr.as_ptr().cast(),
                old,
                new,
                libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                dest.as_ptr(),
            )
        };
        p == dest.as_ptr().cast()
    }

    /// Grows or shrinks a mapping without moving it.
    ///
    /// # Safety
    /// The range was mapped by this source.
    pub unsafe fn remap_in_place(&self, ptr: NonNull<u8>, old: usize, new: usize) -> bool {
        // SAFETY: without MREMAP_MAYMOVE the mapping stays where it is or the call fails.
        let p = unsafe { libc::mremap(ptr.as_ptr().cast(), old, new, 0) };
        p != libc::MAP_FAILED && p == ptr.as_ptr().cast()
    }
}

impl Default for Mmap {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts the resident 4 KiB pages of `start..start + len` (page-aligned) with `mincore`,
/// calling `per_page(i, resident)` for each page `i` of the range; returns false if the kernel
/// refused (the range is not mapped). Nothing is allocated: the kernel's answer goes through a
/// fixed buffer on the stack, 1024 pages at a time.
pub fn for_each_resident(start: usize, len: usize, mut per_page: impl FnMut(usize, bool)) -> bool {
    const CHUNK: usize = 1024;
    let mut vec = [0u8; CHUNK];
    let pages = len / 4096;
    let mut done = 0;
    while done < pages {
        let n = (pages - done).min(CHUNK);
        // SAFETY: `vec` has room for `n` entries; mincore only reads the page tables of the
        // range, which fails cleanly (ENOMEM) if the range is not mapped.
        let r = unsafe {
            libc::mincore(
                (start + done * 4096) as *mut libc::c_void,
                n * 4096,
                vec.as_mut_ptr(),
            )
        };
        if r != 0 {
            return false;
        }
        for (i, v) in vec[..n].iter().enumerate() {
            per_page(done + i, v & 1 != 0);
        }
        done += n;
    }
    true
}
