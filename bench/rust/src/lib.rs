//! Collections churn, the Rust benchmark workload: each thread builds and tears down hash maps
//! of strings to vectors, B-tree maps, sorted string vectors and boxed buffers, and hands part
//! of its data to the next thread, which frees it. Run with the global allocator chosen by the
//! binary (`churn-oxalloc`, `churn-mimalloc`, `churn-system`).

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasherDefault;
use std::sync::mpsc;
use std::thread;

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

fn round(seed: u64, incoming: Vec<String>) -> (u64, Vec<String>) {
    let mut s = seed | 1;
    let mut check = incoming.iter().map(|x| x.len() as u64).sum::<u64>();
    drop(incoming);
    // A fixed hasher keeps the output the same under every allocator (the runner checks it).
    let mut map: HashMap<String, Vec<u64>, BuildHasherDefault<DefaultHasher>> = HashMap::default();
    for _ in 0..20_000 {
        let k = xorshift(&mut s) % 5_000;
        map.entry(format!("key-{k}")).or_default().push(k);
    }
    map.retain(|_, v| v.len() % 3 != 0);
    let mut tree = BTreeMap::new();
    for (k, v) in &map {
        tree.insert(v.len() * 1_000_000 + k.len(), k.clone());
    }
    let mut words: Vec<String> = tree.values().map(|k| k.repeat(1 + k.len() % 4)).collect();
    words.sort_unstable();
    let buffers: Vec<Box<[u8]>> = (0..200).map(|i| vec![i as u8; 64 + (xorshift(&mut s) % 8_000) as usize].into_boxed_slice()).collect();
    check += buffers.iter().map(|b| b[0] as u64 + b.len() as u64).sum::<u64>();
    check += words.len() as u64 + tree.len() as u64;
    let handed = words.into_iter().step_by(2).collect();
    (check, handed)
}

/// Runs `rounds` rounds on each of `threads` threads arranged in a ring, and returns a checksum.
pub fn run(threads: usize, rounds: usize) -> u64 {
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..threads).map(|_| mpsc::sync_channel::<Vec<String>>(2)).unzip();
    let mut rxs: Vec<_> = rxs.into_iter().map(Some).collect();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let next = txs[(t + 1) % threads].clone();
            let inbox = rxs[t].take().unwrap();
            thread::spawn(move || {
                let mut total = 0u64;
                let mut incoming = Vec::new();
                for r in 0..rounds {
                    let (check, handed) = round((t * 7919 + r) as u64, incoming);
                    total = total.wrapping_add(check);
                    if next.send(handed).is_err() {
                        break;
                    }
                    incoming = inbox.recv().unwrap_or_default();
                }
                total
            })
        })
        .collect();
    drop(txs);
    handles.into_iter().map(|h| h.join().unwrap()).fold(0, u64::wrapping_add)
}

/// Parses `THREADS ROUNDS` from the command line and prints the checksum.
pub fn main_with_args() {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().expect("numbers")).collect();
    let threads = args.first().copied().unwrap_or(1);
    let rounds = args.get(1).copied().unwrap_or(20);
    println!("churn: {threads} threads x {rounds} rounds, check {}", run(threads, rounds));
}
