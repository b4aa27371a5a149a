//! First-class heaps from Rust: `oxalloc::Heap` and `OxAlloc` as `allocator_api2` allocators
//! (collections in a heap, grow and shrink, zero-size and over-aligned layouts), dropping a
//! heap with its blocks, deleting one whose blocks live on, and frees from other threads.
#![cfg_attr(feature = "nightly", feature(allocator_api))]

use allocator_api2::alloc::{Allocator, Layout};
use allocator_api2::boxed::Box as HBox;
use allocator_api2::vec::Vec as HVec;
use oxalloc::{Heap, OxAlloc};
use std::thread;

#[global_allocator]
static GLOBAL: OxAlloc = OxAlloc;

#[test]
fn vec_and_box_in_a_heap() {
    let heap = Heap::new().unwrap();
    let mut v: HVec<u64, &Heap> = HVec::new_in(&heap);
    for i in 0..100_000u64 {
        v.push(i);
    }
    assert_eq!(v.iter().sum::<u64>(), 100_000 * 99_999 / 2);
    let b = HBox::new_in(String::from("in the heap"), &heap);
    assert_eq!(b.as_str(), "in the heap");
    let mut words: HVec<HBox<[u8], &Heap>, &Heap> = HVec::new_in(&heap);
    for i in 0..1000usize {
        let mut w = HVec::with_capacity_in(i % 300, &heap);
        w.resize(i % 300, i as u8);
        words.push(w.into_boxed_slice());
    }
    for (i, w) in words.iter().enumerate() {
        assert!(w.iter().all(|&x| x == i as u8));
    }
    v.truncate(10);
    v.shrink_to_fit();
    assert_eq!(v.capacity(), 10);
    assert_eq!(&v[..], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
}

#[test]
fn grow_shrink_zero_size_and_aligned() {
    let heap = Heap::new().unwrap();
    for a in [&heap as &dyn Allocator, &OxAlloc as &dyn Allocator] {
        // Zero-size layouts allocate nothing: an aligned dangling pointer, which deallocate
        // ignores; growing it allocates, shrinking to zero frees.
        for align in [1usize, 8, 4096] {
            let z = Layout::from_size_align(0, align).unwrap();
            let p = a.allocate(z).unwrap();
            assert_eq!(p.len(), 0);
            assert_eq!(p.cast::<u8>().as_ptr() as usize % align, 0);
            let big = Layout::from_size_align(48, align).unwrap();
            // SAFETY: `p` was allocated with `z` by `a`; each result is used as returned.
            unsafe {
                let g = a.grow_zeroed(p.cast(), z, big).unwrap();
                assert!(g.as_ref().iter().all(|&b| b == 0));
                let s = a.shrink(g.cast(), big, z).unwrap();
                assert_eq!(s.len(), 0);
                a.deallocate(s.cast(), z);
            }
        }
        for align in [1usize, 16, 64, 4096, 1 << 20] {
            let l = Layout::from_size_align(100, align).unwrap();
            let p = a.allocate_zeroed(l).unwrap();
            let mut at = p.cast::<u8>();
            assert_eq!(at.as_ptr() as usize % align, 0);
            // SAFETY: `p` is live with layout `l`; every resized block is used as returned.
            unsafe {
                assert!(p.as_ref().iter().all(|&b| b == 0));
                at.as_ptr().write_bytes(0xA5, 100);
                let mut old = l;
                for size in [1000usize, 300_000, 5000, 40, 2_000_000, 8] {
                    let new = Layout::from_size_align(size, align).unwrap();
                    let r = if size > old.size() {
                        a.grow_zeroed(at, old, new).unwrap()
                    } else {
                        a.shrink(at, old, new).unwrap()
                    };
                    assert!(r.len() >= size);
                    let r = r.cast::<u8>();
                    assert_eq!(r.as_ptr() as usize % align, 0);
                    let kept = old.size().min(size).min(100);
                    let s = std::slice::from_raw_parts(r.as_ptr(), size);
                    assert!(s[..kept].iter().all(|&b| b == 0xA5), "contents lost");
                    if size > old.size() {
                        assert!(
                            s[old.size()..].iter().all(|&b| b == 0),
                            "grown tail not zeroed"
                        );
                    }
                    r.as_ptr().write_bytes(0xA5, size.min(100));
                    at = r;
                    old = new;
                }
                a.deallocate(at, old);
            }
        }
    }
}

#[test]
fn dropping_a_heap_frees_its_blocks() {
    let before = oxalloc::stats();
    for round in 0..2000 {
        let heap = Heap::new().unwrap();
        let mut v = HVec::new_in(&heap);
        for i in 0..200usize {
            let mut s = HVec::with_capacity_in(16 + i * 7 + round % 13, &heap);
            s.push(i);
            v.push(s);
        }
        // The blocks are leaked into the heap on purpose: dropping the heap frees them.
        std::mem::forget(v);
        let big = heap.allocate(Layout::from_size_align(1 << 20, 16).unwrap());
        assert!(big.is_ok());
    }
    let after = oxalloc::stats();
    assert!(
        after.mapped_bytes <= before.mapped_bytes + (64 << 20),
        "2000 heaps dropped, mapped bytes went from {} to {}",
        before.mapped_bytes,
        after.mapped_bytes
    );
    assert!(after.segments <= before.segments + 4);
}

#[test]
fn a_deleted_heap_leaves_its_blocks_valid() {
    let heap = Heap::new().unwrap();
    let blocks: Vec<usize> = (0..1000usize)
        .map(|i| {
            let p = heap
                .allocate(Layout::from_size_align(64 + i, 16).unwrap())
                .unwrap()
                .cast::<u8>();
            // SAFETY: the block has at least 64 bytes.
            unsafe { p.as_ptr().write_bytes(i as u8, 64) };
            p.as_ptr() as usize
        })
        .collect();
    heap.delete();
    // Another heap, maybe in the same slot, does not disturb them.
    let other = Heap::new().unwrap();
    let mut v = HVec::new_in(&other);
    v.extend(0..10_000u32);
    drop(v);
    drop(other);
    // Freed later, half on this thread and half on another.
    let (mine, theirs) = blocks.split_at(500);
    for (i, &p) in blocks.iter().enumerate() {
        // SAFETY: the blocks are live; reading 64 bytes of each.
        let s = unsafe { std::slice::from_raw_parts(p as *const u8, 64) };
        assert!(s.iter().all(|&b| b == i as u8));
    }
    for &p in mine {
        // SAFETY: a live block of the deleted heap.
        unsafe { oxalloc::free(p as *mut u8) };
    }
    let theirs = theirs.to_vec();
    thread::spawn(move || {
        for p in theirs {
            // SAFETY: as above.
            unsafe { oxalloc::free(p as *mut u8) };
        }
    })
    .join()
    .unwrap();
}

#[test]
fn blocks_of_a_heap_freed_by_other_threads() {
    let heap = Heap::new().unwrap();
    for _ in 0..20 {
        let blocks: Vec<usize> = (0..5000)
            .map(|i| {
                let l = Layout::from_size_align(16 + (i % 50) * 16, 16).unwrap();
                heap.allocate(l).unwrap().cast::<u8>().as_ptr() as usize
            })
            .collect();
        thread::spawn(move || {
            for p in blocks {
                // SAFETY: live blocks, each freed once.
                unsafe { oxalloc::free(p as *mut u8) };
            }
        })
        .join()
        .unwrap();
    }
    // The heap reuses what the other thread freed: allocating the same again maps nothing new.
    let mapped = oxalloc::stats().mapped_bytes;
    let mut v = HVec::new_in(&heap);
    for i in 0..5000usize {
        v.push(HBox::new_in([i; 4], &heap));
    }
    assert!(oxalloc::stats().mapped_bytes <= mapped + (8 << 20));
}

#[test]
fn a_heap_alive_at_thread_exit_is_deleted() {
    let p = thread::spawn(|| {
        let heap = Heap::new().unwrap();
        let p = heap
            .allocate(Layout::new::<[u64; 8]>())
            .unwrap()
            .cast::<u64>();
        // SAFETY: the block holds 8 u64.
        unsafe { p.as_ptr().write(77) };
        std::mem::forget(heap);
        p.as_ptr() as usize
    })
    .join()
    .unwrap();
    // The thread is gone and its heap deleted: the block is still valid.
    // SAFETY: the block is live.
    unsafe {
        assert_eq!(*(p as *const u64), 77);
        oxalloc::free(p as *mut u8);
    }
}

#[test]
fn zero_size_values_in_a_heap() {
    let heap = Heap::new().unwrap();
    let unit = HBox::new_in((), &heap);
    let empty: HBox<[u64], &Heap> = HVec::new_in(&heap).into_boxed_slice();
    let mut v: HVec<(), &Heap> = HVec::new_in(&heap);
    v.extend(std::iter::repeat_n((), 1000));
    assert_eq!((v.len(), empty.len()), (1000, 0));
    drop((unit, empty, v));
}
