//! The `nightly` feature: `OxAlloc` and `&Heap` as the standard `core::alloc::Allocator`, so
//! `std`'s own collections allocate in them. Built and run by `.ci/nightly.sh`.
#![cfg(feature = "nightly")]
#![feature(allocator_api)]

use oxalloc::{Heap, OxAlloc};
use std::collections::VecDeque;

#[global_allocator]
static GLOBAL: OxAlloc = OxAlloc;

#[test]
fn std_collections_in_a_heap() {
    let heap = Heap::new().unwrap();
    let mut v: Vec<u32, &Heap> = Vec::new_in(&heap);
    v.extend(0..10_000);
    let b: Box<[u8; 64], &Heap> = Box::new_in([9; 64], &heap);
    let mut q: VecDeque<String, &Heap> = VecDeque::new_in(&heap);
    q.push_back("queued".to_string());
    v.shrink_to(100);
    assert_eq!(v.iter().map(|&x| x as u64).sum::<u64>(), 49_995_000);
    assert_eq!(b[63], 9);
    assert_eq!(q.pop_front().as_deref(), Some("queued"));
}

#[test]
fn std_collections_in_oxalloc() {
    let mut v: Vec<u64, OxAlloc> = Vec::with_capacity_in(10, OxAlloc);
    v.extend(0..1000);
    let b = Box::new_in(v, OxAlloc);
    assert_eq!(b.len(), 1000);
}
