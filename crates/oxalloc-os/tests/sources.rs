//! The memory sources against the real kernel.

use oxalloc_core::os::{Os, OS_PAGE};
use oxalloc_core::SEGMENT_SIZE;
use oxalloc_os::brk::Brk;
use oxalloc_os::mmap::Mmap;
use oxalloc_os::OsSource;

#[test]
fn mmap_aligns_and_zeroes() {
    let m = Mmap::new();
    for _ in 0..4 {
        let a = m.map(SEGMENT_SIZE, SEGMENT_SIZE).unwrap();
        assert_eq!(a.ptr.as_ptr() as usize % SEGMENT_SIZE, 0);
        assert!(a.zeroed);
        // SAFETY: the ranges come from the source under test, are used within their size, and are returned once.
        let s = unsafe { std::slice::from_raw_parts_mut(a.ptr.as_ptr(), SEGMENT_SIZE) };
        assert!(s.iter().step_by(4096).all(|&b| b == 0));
        s[SEGMENT_SIZE - 1] = 1;
        // SAFETY: the ranges come from the source under test, are used within their size, and are returned once.
        unsafe { Mmap::purge(a.ptr, SEGMENT_SIZE) };
        assert_eq!(s[SEGMENT_SIZE - 1], 0, "MADV_DONTNEED drops the contents");
        // SAFETY: the ranges come from the source under test, are used within their size, and are returned once.
        unsafe { m.unmap(a.ptr, SEGMENT_SIZE) };
    }
    let small = m.map(OS_PAGE, OS_PAGE).unwrap();
    // SAFETY: the ranges come from the source under test, are used within their size, and are returned once.
    unsafe { m.unmap(small.ptr, OS_PAGE) };
}

#[test]
fn brk_splits_coalesces_and_shrinks() {
    let b = Brk::new();
    let x = b
        .map(SEGMENT_SIZE, SEGMENT_SIZE)
        .expect("the break can grow");
    let y = b.map(SEGMENT_SIZE, SEGMENT_SIZE).unwrap();
    let z = b.map(SEGMENT_SIZE, SEGMENT_SIZE).unwrap();
    assert_eq!(x.ptr.as_ptr() as usize % SEGMENT_SIZE, 0);
    assert_eq!(y.ptr.as_ptr() as usize % SEGMENT_SIZE, 0);
    assert!(b.owns(x.ptr.as_ptr()) && b.owns(z.ptr.as_ptr()));
    // SAFETY: the ranges come from the source under test, are used within their size, and are returned once.
    unsafe { std::ptr::write_bytes(y.ptr.as_ptr(), 7, SEGMENT_SIZE) };
    // Free the middle one: it becomes a free span and is reused first-fit.
    // SAFETY: `y` came from `b` and is no longer used.
    unsafe { b.unmap(y.ptr, SEGMENT_SIZE) };
    let (_, free) = b.usage();
    assert!(free >= SEGMENT_SIZE);
    let y2 = b.map(SEGMENT_SIZE, SEGMENT_SIZE).unwrap();
    // Small ranges come out of the alignment gaps before falling back to growing.
    let small = b.map(2 * OS_PAGE, OS_PAGE).unwrap();
    // SAFETY: the ranges come from the source under test, are used within their size, and are returned once.
    unsafe { b.unmap(small.ptr, 2 * OS_PAGE) };
    assert_eq!(y2.ptr, y.ptr, "first fit reuses the freed span");
    assert!(!y2.zeroed);
    // Free everything: spans coalesce and, if nobody else moved the break, it shrinks.
    let (top_before, _) = b.usage();
    // SAFETY: the ranges come from the source under test, are used within their size, and are returned once.
    unsafe {
        b.unmap(z.ptr, SEGMENT_SIZE);
        b.unmap(y2.ptr, SEGMENT_SIZE);
        b.unmap(x.ptr, SEGMENT_SIZE);
    }
    let (top_after, free_after) = b.usage();
    if top_after < top_before {
        assert!(
            top_after <= x.ptr.as_ptr() as usize,
            "the break went back down past x"
        );
    } else {
        // Another user of the break sits above us; everything is at least one coalesced span.
        assert!(free_after >= 3 * SEGMENT_SIZE);
    }
}

#[test]
fn os_source_reports_through_its_trait() {
    let s = OsSource::new();
    let m = s.map(SEGMENT_SIZE, SEGMENT_SIZE).unwrap();
    assert!(s.random() != s.random() || s.random() != 0);
    // SAFETY: the ranges come from the source under test, are used within their size, and are returned once.
    unsafe { s.unmap(m.ptr, SEGMENT_SIZE) };
}
