//! Memory given back, read from /proc/self/status (VmRSS): the scenarios of a program that frees
//! what it allocated, on one thread and across threads that exit, and then calls malloc_trim.
//! One test function, run alone in its own binary: RSS is the whole process's.

use std::sync::mpsc;

#[global_allocator]
static GLOBAL: oxalloc::OxAlloc = oxalloc::OxAlloc;

fn rss() -> usize {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<usize>()
        .unwrap()
        * 1024
}

const MIB: usize = 1 << 20;

fn touch(v: &mut [u8]) {
    for b in v.iter_mut().step_by(512) {
        *b = 1;
    }
    v[v.len() - 1] = 1;
}

#[test]
fn trim_returns_what_was_freed() {
    oxalloc::trim();
    let start = rss();

    // 1. 400 MiB of 1 KiB blocks, all freed but one block per 4 MiB, on this thread.
    let mut blocks: Vec<Vec<u8>> = (0..400 * 1024).map(|_| vec![1u8; 1000]).collect();
    assert!(rss() > start + 300 * MIB);
    let kept: Vec<Vec<u8>> = blocks
        .iter_mut()
        .enumerate()
        .filter(|(i, _)| i % 4096 == 0)
        .map(|(_, b)| std::mem::take(b))
        .collect();
    drop(blocks);
    let released = oxalloc::trim();
    let after = rss();
    assert!(released > 300 * MIB, "released {released}");
    assert!(
        after < start + 16 * MIB,
        "one live block per 4 MiB: RSS {} MiB over the start after trim",
        (after.saturating_sub(start)) / MIB
    );
    drop(kept);

    // 2. 1 GiB of small blocks allocated by 4 threads that exit; this thread frees them all.
    let (tx, rx) = mpsc::channel::<Vec<Box<[u8; 64]>>>();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut v = Vec::with_capacity(1 << 22);
                for _ in 0..(256 * MIB / 64) {
                    v.push(Box::new([7u8; 64]));
                }
                tx.send(v).unwrap();
            })
        })
        .collect();
    drop(tx);
    for t in threads {
        t.join().unwrap();
    }
    let all: Vec<_> = rx.iter().collect();
    assert!(rss() > start + 900 * MIB);
    drop(all);
    oxalloc::trim();
    let after = rss();
    assert!(
        after < start + 8 * MIB,
        "1 GiB over 4 exited threads, freed here: RSS {} MiB over the start after trim",
        (after.saturating_sub(start)) / MIB
    );

    // 3. Many short-lived threads whose leftover blocks are freed after they exit.
    let mut leftovers = Vec::new();
    for _ in 0..200 {
        let v = std::thread::spawn(|| {
            let mut v: Vec<Vec<u8>> = (0..2000).map(|_| vec![3u8; 200]).collect();
            v.truncate(1500);
            v
        })
        .join()
        .unwrap();
        leftovers.push(v);
    }
    drop(leftovers);
    oxalloc::trim();
    let after = rss();
    assert!(
        after < start + 16 * MIB,
        "200 threads' leftovers freed after they exited: RSS {} MiB over the start after trim",
        (after.saturating_sub(start)) / MIB
    );

    // 4. Without trim: 256 MiB freed, then only small allocations (which stay in pages the heap
    //    has): the purge clock runs from page refills, so the freed segments are purged after
    //    the purge delay (50 ms) although the program never leaves its pages.
    let blocks: Vec<Vec<u8>> = (0..64 * 1024).map(|_| vec![4u8; 4000]).collect();
    drop(blocks);
    let t0 = std::time::Instant::now();
    let mut ring: Vec<Option<Box<[u8; 32]>>> = (0..64).map(|_| None).collect();
    let mut k = 0usize;
    let back = loop {
        for _ in 0..10_000 {
            ring[k % 64] = Some(Box::new([k as u8; 32]));
            k += 1;
        }
        if rss() < start + 16 * MIB {
            break Some(t0.elapsed());
        }
        if t0.elapsed() > std::time::Duration::from_secs(2) {
            break None;
        }
    };
    assert!(
        back.is_some(),
        "256 MiB freed, 2 s of small allocations: RSS still {} MiB over the start",
        rss().saturating_sub(start) / MIB
    );
    drop(ring);

    // 5. Huge blocks: freed and trimmed, their spans go back.
    let mut big: Vec<Vec<u8>> = (0..20).map(|i| vec![0u8; (5 + i) * MIB]).collect();
    for b in &mut big {
        touch(b);
    }
    drop(big);
    oxalloc::trim();
    let after = rss();
    assert!(
        after < start + 16 * MIB,
        "huge blocks freed and trimmed: RSS {} MiB over the start",
        (after.saturating_sub(start)) / MIB
    );
}
