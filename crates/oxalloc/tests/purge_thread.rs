//! The background purge thread under a Rust program (oxalloc as its global allocator), also run
//! by `.ci/debug-full.sh` with the whole heap validated after every slow-path step: threads
//! allocate, pass blocks to each other and free them in bursts while the purge thread claims and
//! purges their free page slots (a purge delay of 1 ms); no block loses its contents, and the
//! statistics show that the thread purged slots and recycled the segments of exited threads.
//!
//! Options are read at start-up, before `main`: the test runs itself again as a child process
//! with `OXALLOC_PURGE_THREAD=1` in its environment.

#[global_allocator]
static GLOBAL: oxalloc::OxAlloc = oxalloc::OxAlloc;

use std::sync::mpsc;
use std::time::{Duration, Instant};

const CHILD: &str = "OXALLOC_TEST_PURGE_CHILD";

fn fill(v: &mut [u8], tag: u8) {
    for (i, b) in v.iter_mut().enumerate().step_by(256) {
        *b = tag.wrapping_add((i / 256) as u8);
    }
}

fn intact(v: &[u8], tag: u8) -> bool {
    v.iter()
        .enumerate()
        .step_by(256)
        .all(|(i, b)| *b == tag.wrapping_add((i / 256) as u8))
}

/// One worker: bursts of blocks (small, medium, now and then huge), a share sent to the next
/// worker, the rest checked and freed; what arrives from the previous worker checked and freed.
fn worker(
    me: u64,
    until: Instant,
    tx: mpsc::Sender<(Vec<u8>, u8)>,
    rx: mpsc::Receiver<(Vec<u8>, u8)>,
) -> usize {
    let mut s = 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(me + 1);
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut bad = 0;
    while Instant::now() < until {
        let burst = 128 + (next() % 1024) as usize;
        let mut mine = Vec::with_capacity(burst);
        for _ in 0..burst {
            let r = next();
            let n = match r % 200 {
                0 => 200_000 + (r % 200_000) as usize,
                1..=20 => 8_000 + (r % 100_000) as usize,
                _ => 16 + (r % 2_000) as usize,
            };
            let tag = (r >> 32) as u8;
            let mut v = vec![0u8; n];
            fill(&mut v, tag);
            mine.push((v, tag));
        }
        for (i, block) in mine.drain(..).enumerate() {
            if i % 8 == 0 {
                let _ = tx.send(block);
            } else {
                bad += !intact(&block.0, block.1) as usize;
            }
        }
        while let Ok((v, tag)) = rx.try_recv() {
            bad += !intact(&v, tag) as usize;
        }
        if next() % 8 == 0 {
            // Let freed slots wait out the delay now and then.
            std::thread::sleep(Duration::from_millis(next() % 4));
        }
    }
    bad
}

fn stress(seconds: u64) {
    // A thread whose blocks outlive it, freed here: its segments are abandoned with frees.
    let leftovers = std::thread::spawn(|| (0..20_000).map(|i| vec![i as u8; 100]).collect())
        .join()
        .unwrap();
    let _: Vec<Vec<u8>> = leftovers;
    assert!(
        oxalloc::purge_thread_running(),
        "no purge thread after the first allocations"
    );
    let until = Instant::now() + Duration::from_secs(seconds);
    const N: usize = 4;
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..N).map(|_| mpsc::channel()).unzip();
    let mut rxs: Vec<Option<_>> = rxs.into_iter().map(Some).collect();
    let handles: Vec<_> = (0..N)
        .map(|i| {
            let tx = txs[(i + 1) % N].clone();
            let rx = rxs[i].take().unwrap();
            std::thread::spawn(move || worker(i as u64, until, tx, rx))
        })
        .collect();
    drop(txs);
    let bad: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(bad, 0, "{bad} blocks lost their contents");
    std::thread::sleep(Duration::from_millis(20));
    let s = oxalloc::stats();
    assert!(
        s.background_purged_bytes > 0,
        "the purge thread purged no free page slot: {s:?}"
    );
}

#[test]
fn threads_allocate_while_the_purge_thread_purges() {
    if std::env::var_os(CHILD).is_some() {
        let seconds = if cfg!(feature = "debug-full") { 3 } else { 2 };
        return stress(seconds);
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "threads_allocate_while_the_purge_thread_purges",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env("OXALLOC_PURGE_THREAD", "1")
        .env("OXALLOC_PURGE_DELAY", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the child test failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
