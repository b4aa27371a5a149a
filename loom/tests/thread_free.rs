//! Model checks of the cross-thread free protocol. Run with `bash .ci/loom.sh` (or
//! `cd loom && LOOM_MAX_PREEMPTIONS=3 cargo test --release`).

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use oxalloc_loom::thread_free::{delayed, DelayedList, Pushed, ThreadFree};
use oxalloc_loom::util::sync::link_read;

/// A model block: 16-byte aligned, its first word the link (read and written through its
/// address by the protocol, hence never by name).
#[repr(align(16))]
struct Block(#[allow(dead_code)] AtomicUsize);

fn blocks(n: usize) -> Arc<Vec<Block>> {
    Arc::new((0..n).map(|_| Block(AtomicUsize::new(0))).collect())
}

fn addr(b: &Block) -> usize {
    b as *const Block as usize
}

/// Walks a taken list (owner side), returning the blocks on it.
fn walk(mut head: usize, bound: usize) -> Vec<usize> {
    let mut out = Vec::new();
    while head != 0 {
        assert!(out.len() < bound, "the list has a cycle");
        out.push(head);
        // SAFETY: every block on a list is a live model block.
        head = unsafe { link_read(head) };
    }
    out
}

/// A page and its heap's delayed list, shared by the model threads.
struct Shared {
    page: ThreadFree,
    heap: DelayedList,
    blocks: Arc<Vec<Block>>,
    torn_down: AtomicBool,
}

/// A page in `state` with `n` blocks to free, and an empty heap list.
fn shared(n: usize, state: usize) -> Arc<Shared> {
    let page = ThreadFree::new(delayed::NORMAL);
    page.set_state(state);
    Arc::new(Shared {
        page,
        heap: DelayedList::new(),
        blocks: blocks(n),
        torn_down: AtomicBool::new(false),
    })
}

/// The addresses of the shared blocks, sorted.
fn all(s: &Shared) -> Vec<usize> {
    let mut v: Vec<usize> = s.blocks.iter().map(addr).collect();
    v.sort();
    v
}

/// What `free::free_remote` does with the protocol.
fn remote_free(s: &Shared, block: usize) {
    // SAFETY: the block is ours to free.
    match unsafe { s.page.push(block) } {
        Ok(Pushed::Listed) => {}
        Ok(Pushed::Notify) => {
            assert!(
                !s.torn_down.load(Ordering::SeqCst),
                "a remote free pushed on the delayed list of a heap that was torn down"
            );
            // SAFETY: as above.
            unsafe { s.heap.push(block) };
            s.page.end_notify();
        }
        Err(b) => panic!("false double free of {b:#x}"),
    }
}

#[test]
fn every_remote_free_is_collected_once() {
    loom::model(|| {
        let s = shared(2, delayed::NORMAL);
        let remotes: Vec<_> = (0..2)
            .map(|i| {
                let s = s.clone();
                thread::spawn(move || remote_free(&s, addr(&s.blocks[i])))
            })
            .collect();
        // The owner collects while the remote frees land.
        let mut seen = walk(s.page.take_all(), 3);
        for r in remotes {
            r.join().unwrap();
        }
        seen.extend(walk(s.page.take_all(), 3));
        seen.sort();
        assert_eq!(seen, all(&s));
        assert_eq!(s.page.state(), delayed::NORMAL);
    });
}

#[test]
fn a_full_page_is_told_and_nothing_is_lost() {
    loom::model(|| {
        // The owner found the page full and announced it (find_page).
        let s = shared(2, delayed::USE_DELAYED);
        let remotes: Vec<_> = (0..2)
            .map(|i| {
                let s = s.clone();
                thread::spawn(move || remote_free(&s, addr(&s.blocks[i])))
            })
            .collect();
        // Meanwhile the owner looks once more and takes the page back to normal (find_page
        // after a remote free landed), draining what it was told about.
        let mut seen = walk(s.page.take_all(), 3);
        s.page.set_state(delayed::NORMAL);
        seen.extend(walk(s.heap.take_all(), 3));
        for r in remotes {
            r.join().unwrap();
        }
        seen.extend(walk(s.page.take_all(), 3));
        seen.extend(walk(s.heap.take_all(), 3));
        seen.sort();
        assert_eq!(
            seen,
            all(&s),
            "every block once, on the page or the heap's list"
        );
    });
}

#[test]
fn teardown_waits_out_a_notification() {
    loom::model(|| {
        let s = shared(1, delayed::USE_DELAYED);
        let remote = {
            let s = s.clone();
            thread::spawn(move || remote_free(&s, addr(&s.blocks[0])))
        };
        // Thread exit (heap_life::abandon): no remote free may reach the heap afterwards.
        s.page.set_state(delayed::NEVER);
        let mut seen = walk(s.heap.take_all(), 2);
        s.torn_down.store(true, Ordering::SeqCst);
        remote.join().unwrap();
        seen.extend(walk(s.page.take_all(), 2));
        assert_eq!(seen, all(&s));
        assert_eq!(s.page.state(), delayed::NEVER);
    });
}
