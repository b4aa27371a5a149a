//! Statistics under oxalloc as the global allocator. Alone in its own test binary: a snapshot
//! is exact only while no other thread allocates, and the other test binaries run threads.

#[global_allocator]
static GLOBAL: oxalloc::OxAlloc = oxalloc::OxAlloc;

#[test]
fn statistics_count_allocations() {
    let before = oxalloc::stats();
    let v: Vec<Box<u64>> = (0..10_000).map(Box::new).collect();
    let mid = oxalloc::stats();
    drop(v);
    assert!(mid.allocations >= before.allocations + 10_000);
    assert!(mid.live_bytes >= 10_000 * 16);
    assert!(mid.peak_live_bytes >= mid.live_bytes);
    assert!(mid.mapped_bytes >= mid.live_bytes);
}
