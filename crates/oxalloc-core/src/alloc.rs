//! Allocation: the malloc fast path, its slow path, and the calls built on them (zeroed,
//! aligned, realloc, usable size).
//!
//! The fast path is a table lookup and a pop, behind one test:
//! ```text
//! page  = heap.direct[(size + 15) / 16]     // the size class's current page
//! block = page.free                         // null => slow path (also for the sentinel heap)
//! page.free = decode(block.next); page.used += 1
//! ```

use crate::heap::Heap;
use crate::os::{Os, OS_PAGE};
use crate::page::FLAG_HAS_ALIGNED;
use crate::segment::{Segment, SegmentKind, SEGMENT_MAP};
use crate::size_class::{align_up, bin_of, bin_size, ALIGN, DIRECT_MAX, MEDIUM_MAX};
use crate::sync::Ordering;
use core::ptr;

impl<S: Os + 'static> Heap<S> {
    /// Allocates `size` bytes, 16-byte aligned. Null when out of memory.
    ///
    /// # Safety
    /// Called by the thread this heap belongs to (or on the sentinel, by any thread).
    #[inline(always)]
    pub unsafe fn malloc(&mut self, size: usize) -> *mut u8 {
        // SAFETY: same caller contract.
        unsafe {
            let p = self.malloc_fast(size);
            if !p.is_null() {
                return p;
            }
            self.malloc_slow(size)
        }
    }

    /// The fast path alone: a block if the size class's current page has one, else null (the
    /// caller then takes [`Heap::malloc_slow`]).
    ///
    /// # Safety
    /// As for [`Heap::malloc`].
    #[inline(always)]
    pub unsafe fn malloc_fast(&mut self, size: usize) -> *mut u8 {
        if size <= DIRECT_MAX {
            let page = self.direct[size.div_ceil(ALIGN)];
            // SAFETY: direct entries point at this heap's pages or at the empty page, whose
            // `free` is null; a non-null `free` means the page is ours to pop from.
            unsafe {
                if !(*page).free.is_null() {
                    return (*page).pop_free();
                }
            }
        }
        ptr::null_mut()
    }

    /// The slow path's common case, kept small so it needs few registers: the current page of
    /// the size class has blocks freed since it ran dry (or room to carve more). Everything else
    /// goes on to [`Heap::malloc_generic`].
    #[cold]
    #[inline(never)]
    pub unsafe fn malloc_slow(&mut self, size: usize) -> *mut u8 {
        // A sentinel heap has empty queues and no delayed frees, so it falls through too.
        if size <= MEDIUM_MAX && self.delayed.load(Ordering::Relaxed) == 0 {
            let page = self.queues[bin_of(size)].first;
            if !page.is_null() {
                // SAFETY: pages in our queues are ours.
                unsafe {
                    self.refill(page);
                    if !(*page).free.is_null() {
                        return (*page).pop_free();
                    }
                }
            }
        }
        // SAFETY: same caller contract.
        unsafe { self.malloc_generic(size) }
    }

    /// Everything else: binding the thread, huge sizes, delayed frees, moving on from full pages
    /// and taking fresh ones.
    #[inline(never)]
    unsafe fn malloc_generic(&mut self, size: usize) -> *mut u8 {
        if self.is_sentinel() {
            // SAFETY: the front end's binder returns a heap bound to this thread.
            unsafe {
                let heap = (self.global.bind_thread)();
                if heap.is_null() || (*heap).is_sentinel() {
                    return ptr::null_mut();
                }
                return (*heap).malloc(size);
            }
        }
        if size > MEDIUM_MAX {
            // SAFETY: same caller contract.
            return unsafe { self.huge(size, ALIGN, false) };
        }

        // SAFETY: we are the owner of this bound heap.
        unsafe {
            self.drain_delayed();
            let page = self.find_page(bin_of(size));
            if page.is_null() {
                return ptr::null_mut();
            }
            (*page).pop_free()
        }
    }

    /// A huge block. Huge blocks have no owning heap, but a thread's first allocation binds it
    /// anyway: binding is what runs process start-up (options, such as the memory source)
    /// before anything is mapped.
    unsafe fn huge(&mut self, size: usize, align: usize, zero: bool) -> *mut u8 {
        // SAFETY: the front end's binder returns a heap bound to this thread, or null.
        if self.is_sentinel() && unsafe { (self.global.bind_thread)() }.is_null() {
            return ptr::null_mut();
        }
        self.global.huge_alloc(size, align, zero)
    }

    /// Allocates `size` zeroed bytes.
    ///
    /// # Safety
    /// As for [`Heap::malloc`].
    pub unsafe fn malloc_zeroed(&mut self, size: usize) -> *mut u8 {
        if size > MEDIUM_MAX {
            // SAFETY: same caller contract.
            return unsafe { self.huge(size, ALIGN, true) };
        }
        // SAFETY: same caller contract.
        let p = unsafe { self.malloc(size) };
        if !p.is_null() {
            // SAFETY: `p` is a block of one of our pages (huge sizes were handled above), and has
            // at least `size` writable bytes. A block popped from a list of never-used zeroed
            // blocks needs no memset: the page says so about its current `free` list.
            unsafe {
                let page = (*Segment::of(p)).page_of(p);
                if !(*page).free_is_zero {
                    ptr::write_bytes(p, 0, size);
                }
                debug_assert!(core::slice::from_raw_parts(p, size).iter().all(|&b| b == 0));
            }
        }
        p
    }

    /// Allocates `size` bytes aligned to `align` (a power of two), zeroed if `zero`. Null when
    /// out of memory or when `align` exceeds what a segment can give (2 MiB).
    ///
    /// # Safety
    /// As for [`Heap::malloc`].
    pub unsafe fn malloc_aligned(&mut self, size: usize, align: usize, zero: bool) -> *mut u8 {
        debug_assert!(align.is_power_of_two());
        // SAFETY (whole body): same caller contract as `malloc`.
        unsafe {
            if align <= ALIGN {
                return if zero {
                    self.malloc_zeroed(size)
                } else {
                    self.malloc(size)
                };
            }
            // Classes whose block size is a multiple of `align` are aligned already: every page
            // starts on an OS page boundary.
            let natural = size.max(align);
            if align <= OS_PAGE && natural <= MEDIUM_MAX && bin_size(bin_of(natural)) % align == 0 {
                return if zero {
                    self.malloc_zeroed(natural)
                } else {
                    self.malloc(natural)
                };
            }
            let padded = match size.checked_add(align - ALIGN) {
                Some(p) if p <= MEDIUM_MAX => p,
                _ => return self.huge(size, align, zero),
            };
            let p = self.malloc(padded);
            if p.is_null() {
                return p;
            }
            let aligned = align_up(p as usize, align) as *mut u8;
            if aligned != p {
                let page = (*Segment::of(p)).page_of(p);
                (*page).flags |= FLAG_HAS_ALIGNED;
            }
            debug_assert!(aligned as usize + size <= p as usize + padded);
            if zero {
                ptr::write_bytes(aligned, 0, size);
            }
            aligned
        }
    }

    /// Resizes a block, in place when it can; on failure returns null and leaves `p` valid.
    ///
    /// # Safety
    /// As for [`Heap::malloc`]; `p` is null or a live block from this allocator.
    pub unsafe fn realloc(&mut self, p: *mut u8, new_size: usize) -> *mut u8 {
        // SAFETY (whole body): same caller contract; `usable_size` validates `p`.
        unsafe {
            if p.is_null() {
                return self.malloc(new_size);
            }
            let usable = self.global.usable_size(p);
            let seg = Segment::of(p);
            if (*seg).kind == SegmentKind::Huge && new_size > MEDIUM_MAX {
                let q = self.global.huge_realloc(seg, usable, new_size);
                if !q.is_null() {
                    return q;
                }
            } else if new_size <= usable && new_size >= usable / 2 {
                return p;
            }
            // A block that becomes huge gets half as much again as slack, so a buffer grown a
            // little at a time is moved O(log n) times, not once per OS page.
            let target = if new_size > usable && new_size > MEDIUM_MAX {
                new_size.max(usable.saturating_add(usable / 2))
            } else {
                new_size
            };
            let mut q = self.malloc(target);

            if q.is_null() && target != new_size {
                q = self.malloc(new_size);
            }
            if q.is_null() {
                return q;
            }

            ptr::copy_nonoverlapping(p, q, usable.min(new_size));
            let tid = if self.is_sentinel() {
                crate::free::NO_THREAD
            } else {
                self.thread_id
            };
            self.global.free(p, tid);
            q
        }
    }
}

impl<S: Os + 'static> crate::global::Global<S> {
    /// Bytes usable in the block at `p` (at least what was asked, all writable). Ends the
    /// process if `p` is not a pointer this allocator handed out.
    ///
    /// # Safety
    /// `p` is null or a live pointer from this allocator.
    pub unsafe fn usable_size(&self, p: *const u8) -> usize {
        if p.is_null() {
            return 0;
        }
        if !SEGMENT_MAP.contains(p) {
            self.os
                .fatal("malloc_usable_size(): invalid pointer", p as usize);
        }
        // SAFETY: the map says a segment starts at the masked address, so its header is valid.
        unsafe {
            let seg = Segment::of(p);
            let page = &*(*seg).page_of(p);
            if !page.in_use || !page.contains(p as usize) {
                self.os
                    .fatal("malloc_usable_size(): invalid pointer", p as usize);
            }
            let block = if page.flags & FLAG_HAS_ALIGNED != 0 || (*seg).kind == SegmentKind::Huge {
                page.block_start(p as usize) as usize
            } else {
                p as usize
            };
            block + page.block_size - p as usize
        }
    }
}
