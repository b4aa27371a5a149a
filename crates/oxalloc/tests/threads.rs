//! oxalloc as the global allocator of a multi-threaded program: cross-thread frees, thread
//! churn, fork while other threads allocate, and over-aligned layouts.

use std::alloc::{GlobalAlloc, Layout};
use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc;
use std::thread;

#[global_allocator]
static GLOBAL: oxalloc::OxAlloc = oxalloc::OxAlloc;

#[test]
fn collections_churn_across_threads() {
    let (tx, rx) = mpsc::channel::<Vec<String>>();
    let producers: Vec<_> = (0..4)
        .map(|t| {
            let tx = tx.clone();
            thread::spawn(move || {
                for round in 0..200 {
                    let batch: Vec<String> = (0..100)
                        .map(|i| format!("t{t}-r{round}-{i}-{}", "x".repeat(i % 70)))
                        .collect();
                    tx.send(batch).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    // The consumer frees everything the producers allocated: all frees are remote.
    let mut words: HashMap<usize, usize> = HashMap::new();
    for batch in rx {
        for s in batch {
            *words.entry(s.len()).or_default() += 1;
        }
    }
    for p in producers {
        p.join().unwrap();
    }
    assert_eq!(words.values().sum::<usize>(), 4 * 200 * 100);
}

#[test]
fn thread_churn_hands_blocks_on() {
    let mut carried: Vec<Box<[u8]>> = Vec::new();
    for gen in 0..50u32 {
        let incoming = std::mem::take(&mut carried);
        carried = thread::spawn(move || {
            for b in &incoming {
                assert!(b.iter().all(|&x| x == b.len() as u8));
            }
            drop(incoming);
            let mut map = BTreeMap::new();
            for i in 0..2000u32 {
                map.insert(i, vec![i as u8; (i as usize * 7 + gen as usize) % 300]);
            }
            (1..40usize)
                .map(|n| vec![(n * 13) as u8; n * 13].into_boxed_slice())
                .collect()
        })
        .join()
        .unwrap();
    }
    let s = oxalloc::stats();
    assert!(s.threads >= 50, "{} thread heaps", s.threads);
    assert!(
        s.abandoned > 0 && s.reclaimed > 0,
        "exited threads' segments are reclaimed ({} / {})",
        s.abandoned,
        s.reclaimed
    );
}

#[test]
fn over_aligned_layouts() {
    for align_log in 4..=21 {
        for size in [1usize, 100, 4096, 70_000, 300_000] {
            let layout = Layout::from_size_align(size, 1 << align_log).unwrap();
            // SAFETY: every pointer comes from this allocator with the layout passed back, and is freed once.
            unsafe {
                let p = GLOBAL.alloc(layout);
                assert!(!p.is_null());
                assert_eq!(p as usize % layout.align(), 0);
                std::ptr::write_bytes(p, 1, size);
                let q = GLOBAL.realloc(p, layout, size * 2);
                assert_eq!(q as usize % layout.align(), 0);
                assert!(std::slice::from_raw_parts(q, size).iter().all(|&b| b == 1));
                GLOBAL.dealloc(
                    q,
                    Layout::from_size_align(size * 2, layout.align()).unwrap(),
                );
                let z = GLOBAL.alloc_zeroed(layout);
                assert!(std::slice::from_raw_parts(z, size).iter().all(|&b| b == 0));
                GLOBAL.dealloc(z, layout);
            }
        }
    }
    let too_big = Layout::from_size_align(64, 8 << 20).unwrap();
    // SAFETY: every pointer comes from this allocator with the layout passed back, and is freed once.
    assert!(unsafe { GLOBAL.alloc(too_big) }.is_null());
}

#[test]
fn fork_while_threads_allocate() {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let stop = stop.clone();
            thread::spawn(move || {
                let mut v = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    v.push(vec![0u8; 1000]);
                    if v.len() > 500 {
                        v.clear();
                    }
                }
            })
        })
        .collect();
    for _ in 0..20 {
        // SAFETY: every pointer comes from this allocator with the layout passed back, and is freed once.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // Child: allocate and free a lot, with a thread of its own, then exit without
            // running the test harness's destructors. The thread is a raw pthread: std's
            // thread spawning takes std-internal locks that another thread of the parent may
            // have held at the fork, so it is not fork-safe (glibc's pthread_create is).
            let mut v: Vec<Vec<u8>> = (0..10_000).map(|i| vec![1u8; i % 500]).collect();
            v.truncate(10);
            extern "C" fn child_thread(_: *mut libc::c_void) -> *mut libc::c_void {
                let n = (0..1000).map(|i| i.to_string()).collect::<Vec<_>>().len();
                n as *mut libc::c_void
            }
            let mut t: libc::pthread_t = 0;
            let mut n: *mut libc::c_void = std::ptr::null_mut();
            // SAFETY: every pointer comes from this allocator with the layout passed back, and is freed once.
            let ok = unsafe {
                libc::pthread_create(&mut t, std::ptr::null(), child_thread, std::ptr::null_mut())
                    == 0
                    && libc::pthread_join(t, &mut n) == 0
            } && n as usize == 1000
                && v.len() == 10;
            // SAFETY: every pointer comes from this allocator with the layout passed back, and is freed once.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: every pointer comes from this allocator with the layout passed back, and is freed once.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "child failed: {status}"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
}
