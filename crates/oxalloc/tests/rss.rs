//! Memory given back, read from /proc/self/status (VmRSS): the scenarios of a program that frees
//! what it allocated, on one thread and across threads that exit, and then calls malloc_trim or
//! only keeps making small allocations (the purge clock); and phases of growth and shrinking
//! that must not ratchet.
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
    let all = blocks_from_exited_threads(4, 256 * MIB, 7);
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
    small_allocations_until_back(start, "256 MiB freed");

    // 6. Without trim: scenario 1 again, one 1 KiB block kept per 4 MiB. The free pages of the
    //    live segments are purged by the heap's purge clock.
    let mut blocks: Vec<Vec<u8>> = (0..400 * 1024).map(|_| vec![1u8; 1000]).collect();
    let kept: Vec<Vec<u8>> = blocks
        .iter_mut()
        .step_by(4096)
        .map(std::mem::take)
        .collect();
    drop(blocks);
    small_allocations_until_back(start, "one live block per 4 MiB kept, no trim");
    drop(kept);

    // 7. Without trim: 512 MiB from 2 threads that exit, freed here. The purge clock reclaims
    //    the abandoned segments that got frees, which releases them.
    drop(blocks_from_exited_threads(2, 256 * MIB, 5));
    small_allocations_until_back(start, "512 MiB from 2 exited threads freed, no trim");

    // 8. Phases of growth and shrinking do not ratchet: each phase allocates 192 MiB of mixed
    //    sizes, frees every other block, allocates again and frees everything.
    let mut peaks = Vec::new();
    let mut lows = Vec::new();
    for phase in 0..5u64 {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ phase;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut v: Vec<Vec<u8>> = Vec::new();
        let mut bytes = 0;
        while bytes < 192 * MIB {
            let n = 16 + (next() % 4080) as usize;
            v.push(vec![phase as u8; n]);
            bytes += n;
        }
        let mut i = 0;
        v.retain(|_| {
            i += 1;
            i % 2 == 0
        });
        for _ in 0..v.len() {
            let n = 16 + (next() % 4080) as usize;
            v.push(vec![phase as u8; n]);
        }
        peaks.push(rss());
        drop(v);
        oxalloc::trim();
        lows.push(rss());
    }
    let mib = |v: &[usize]| v.iter().map(|r| r / MIB).collect::<Vec<_>>();
    assert!(
        peaks[4] <= peaks[0] + peaks[0] / 10 && lows[4] <= lows[0] + 8 * MIB,
        "phases ratchet: peaks {:?} MiB, after each phase {:?} MiB",
        mib(&peaks),
        mib(&lows)
    );

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

/// Small allocations only (they stay in pages the heap has) for up to 2 s, until RSS is back
/// within 16 MiB of `start`: what the purge clock gives back without `malloc_trim`.
fn small_allocations_until_back(start: usize, what: &str) {
    let t0 = std::time::Instant::now();
    let mut ring: Vec<Option<Box<[u8; 32]>>> = (0..64).map(|_| None).collect();
    let mut k = 0usize;
    loop {
        for _ in 0..10_000 {
            ring[k % 64] = Some(Box::new([k as u8; 32]));
            k += 1;
        }
        if rss() < start + 16 * MIB {
            return;
        }
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(2),
            "{what}, 2 s of small allocations: RSS still {} MiB over the start",
            rss().saturating_sub(start) / MIB
        );
    }
}

/// 64-byte blocks, `bytes` of them from each of `threads` threads, which have exited when this
/// returns the blocks.
#[allow(clippy::vec_box)] // each box is one 64-byte allocation: the blocks are the point
fn blocks_from_exited_threads(threads: usize, bytes: usize, tag: u8) -> Vec<Vec<Box<[u8; 64]>>> {
    let (tx, rx) = mpsc::channel::<Vec<Box<[u8; 64]>>>();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let v: Vec<_> = (0..bytes / 64).map(|_| Box::new([tag; 64])).collect();
                tx.send(v).unwrap();
            })
        })
        .collect();
    drop(tx);
    for t in handles {
        t.join().unwrap();
    }
    rx.iter().collect()
}
