//! The built-in demo workload: a small, real, allocation-heavy program (text indexing, a
//! multi-threaded pipeline with cross-thread frees, thread churn, growing buffers), so that
//! `oxalloc run` has something to show on a machine with nothing else installed.

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc;
use std::thread;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn word(rng: &mut Rng) -> String {
    const SYL: [&str; 16] = [
        "ka", "lo", "mi", "ne", "ru", "ta", "shi", "po", "an", "el", "or", "ix", "um", "ve", "zo",
        "qu",
    ];
    let n = 1 + (rng.next() % 3) as usize;
    (0..n).map(|_| SYL[(rng.next() % 16) as usize]).collect()
}

/// Runs the workload and prints what it computed.
pub fn run() {
    let mut rng = Rng(0x0DDB_A11C_0FFE_E000);

    // 1. Index a generated text: strings, a hash map of vectors, sorting.
    let text: Vec<String> = (0..400_000).map(|_| word(&mut rng)).collect();
    let mut index: HashMap<&str, Vec<u32>> = HashMap::new();
    for (i, w) in text.iter().enumerate() {
        index.entry(w.as_str()).or_default().push(i as u32);
    }
    let mut top: Vec<(&str, usize)> = index.iter().map(|(w, v)| (*w, v.len())).collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    println!(
        "indexed {} words, {} distinct; most common: {:?}",
        text.len(),
        index.len(),
        &top[..3]
    );

    // 2. A pipeline: producers build records, consumers on other threads parse and drop them.
    let (tx, rx) = mpsc::sync_channel::<Vec<String>>(64);
    let producers: Vec<_> = (0..3u64)
        .map(|p| {
            let tx = tx.clone();
            thread::spawn(move || {
                let mut rng = Rng(p * 7 + 1);
                for batch in 0..300 {
                    let recs = (0..200)
                        .map(|i| format!("{p},{batch},{i},{}", word(&mut rng).repeat(1 + i % 5)))
                        .collect();
                    tx.send(recs).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let consumer = thread::spawn(move || {
        let mut fields = 0usize;
        let mut longest = String::new();
        for batch in rx {
            for rec in batch {
                let parts: Vec<&str> = rec.split(',').collect();
                fields += parts.len();
                if parts[3].len() > longest.len() {
                    longest = parts[3].to_string();
                }
            }
        }
        (fields, longest.len())
    });
    for p in producers {
        p.join().unwrap();
    }
    let (fields, longest) = consumer.join().unwrap();
    println!("pipeline parsed {fields} fields across threads; longest field {longest} bytes");

    // 3. Thread churn: short-lived threads hand their results on and exit.
    let mut carried: Vec<BTreeMap<u32, String>> = Vec::new();
    for gen in 0..24u32 {
        let incoming = std::mem::take(&mut carried);
        carried = thread::spawn(move || {
            let total: usize = incoming.iter().map(|m| m.len()).sum();
            let mut m = BTreeMap::new();
            for i in 0..3000 {
                m.insert(i * 31 % 5000 + gen, format!("g{gen}-{i}"));
            }
            let _ = total;
            vec![m]
        })
        .join()
        .unwrap();
    }
    println!(
        "thread churn: 24 generations, last map has {} entries",
        carried[0].len()
    );

    // 4. Growing buffers (realloc) and huge blocks.
    let mut buf: Vec<u8> = Vec::new();
    for i in 0..(48u32 << 20) {
        buf.push((i % 251) as u8);
    }
    let sum: u64 = buf.iter().step_by(4096).map(|&b| b as u64).sum();
    let blocks: Vec<Vec<u64>> = (1..=8).map(|i| vec![i; i as usize * 300_000]).collect();
    let cells: u64 = blocks
        .iter()
        .map(|b| std::hint::black_box(b).iter().step_by(512).sum::<u64>())
        .sum();
    println!(
        "grew a buffer to {} MiB (checksum {sum}); {} huge blocks (checksum {cells})",
        buf.len() >> 20,
        blocks.len()
    );
}
