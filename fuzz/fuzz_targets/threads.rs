//! Multi-threaded allocation sequences against a model.
//!
//! The input is decoded into 2 to 4 threads' action sequences (byte 0 chooses the number of
//! threads; byte 1 + t + k·n is the k-th byte of thread t's stream). Actions: malloc of a
//! small, medium or huge size; calloc (`malloc_zeroed`); realloc of a live block; aligned
//! allocation (8 B to 2 MiB, optionally zeroed); free; handing a block to another thread
//! through a shared slot array, and taking one from it (so blocks are freed and reallocated by
//! threads that did not allocate them, also after their owner exited); a statistics snapshot.
//!
//! The model: every live block is filled with a pattern derived from its id and checked
//! before it is freed or reallocated (and its kept prefix after a realloc); zeroed blocks are
//! checked to be zero; alignment (16, or the alignment asked for) and `usable_size >= size`
//! are checked; a registry of every live block's `[p, p + usable_size)` across threads
//! catches overlapping blocks. Any failure panics, which libFuzzer reports as a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};

const SLOTS: usize = 16;
const MAX_LIVE: usize = 48;
/// Bytes a thread keeps live at most; older blocks are freed to stay under it.
const MAX_LIVE_BYTES: usize = 24 << 20;
const SMALL_MAX: usize = 1024;
const MEDIUM_MAX: usize = 128 << 10;
const HUGE_MAX: usize = 4 << 20;

struct Block {
    p: *mut u8,
    size: usize,
    id: u64,
}

// SAFETY: a Block is owned by exactly one thread or one slot at a time; the memory it points
// to is only touched by its owner.
unsafe impl Send for Block {}

/// Every live block: start address -> (end address, id).
static REGISTRY: Mutex<BTreeMap<usize, (usize, u64)>> = Mutex::new(BTreeMap::new());
static SLOT: [Mutex<Option<Block>>; SLOTS] = [const { Mutex::new(None) }; SLOTS];
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn pattern(id: u64, off: usize) -> u8 {
    let x = id.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ ((off >> 8) as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    ((x >> 29) as u8) ^ (off as u8)
}

/// The offsets of a block of `size` bytes that carry its pattern: all of a small block; the
/// first and last 2 KiB and one byte per 4 KiB page of a larger one.
fn offsets(size: usize) -> impl Iterator<Item = usize> {
    let (head, tail_from) = if size <= 4096 {
        (size, size)
    } else {
        (2048, size - 2048)
    };
    (0..head)
        .chain((head..tail_from).step_by(4096))
        .chain(tail_from..size)
}

/// Fills the pattern of `id` at the offsets of `size` that are at or past `from`.
///
/// # Safety
/// `p` has `size` writable bytes.
unsafe fn fill(p: *mut u8, size: usize, id: u64, from: usize) {
    for off in offsets(size).filter(|&o| o >= from) {
        // SAFETY: `off < size`.
        unsafe { *p.add(off) = pattern(id, off) };
    }
}

/// Checks the pattern of `id` at the offsets of `size` below `upto`.
///
/// # Safety
/// `p` has `size` readable bytes.
unsafe fn check(p: *const u8, size: usize, id: u64, upto: usize, what: &str) {
    for off in offsets(size).filter(|&o| o < upto) {
        // SAFETY: `off < size`.
        let got = unsafe { *p.add(off) };
        assert_eq!(
            got,
            pattern(id, off),
            "{what}: block {id} at {p:p} (size {size}) corrupted at offset {off}"
        );
    }
}

/// Checks that the block is zero at the offsets of `size`.
///
/// # Safety
/// `p` has `size` readable bytes.
unsafe fn check_zero(p: *const u8, size: usize, what: &str) {
    for off in offsets(size) {
        // SAFETY: `off < size`.
        let got = unsafe { *p.add(off) };
        assert_eq!(
            got, 0,
            "{what}: block at {p:p} (size {size}) not zero at offset {off}"
        );
    }
}

/// Records a new live block, checking it overlaps no other live block.
fn register(p: *mut u8, size: usize, id: u64, what: &str) {
    // SAFETY: `p` is a live block from oxalloc.
    let usable = unsafe { oxalloc::usable_size(p) };
    assert!(
        usable >= size,
        "{what}: usable_size {usable} < size {size} for {p:p}"
    );
    let start = p as usize;
    let end = start + usable.max(1);
    let mut reg = REGISTRY.lock().unwrap();
    if let Some((&s, &(e, other))) = reg.range(..end).next_back() {
        assert!(
            e <= start,
            "{what}: block {id} [{start:#x}, {end:#x}) overlaps live block {other} [{s:#x}, {e:#x})"
        );
    }
    reg.insert(start, (end, id));
}

/// Removes a block from the registry before it is freed or reallocated.
fn unregister(b: &Block) {
    let removed = REGISTRY.lock().unwrap().remove(&(b.p as usize));
    assert!(
        matches!(removed, Some((_, id)) if id == b.id),
        "block {} at {:p} was not registered",
        b.id,
        b.p
    );
}

/// A thread's stream of input bytes; 0 once it runs out.
struct Stream<'a> {
    data: &'a [u8],
    at: usize,
    step: usize,
}

impl Stream<'_> {
    fn more(&self) -> bool {
        self.at < self.data.len()
    }
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += self.step;
        b
    }
    fn u16(&mut self) -> usize {
        usize::from(self.byte()) | usize::from(self.byte()) << 8
    }
    /// A size: 0 small (0 ..= 1 KiB), 1 medium (up to 128 KiB), 2 huge (to 4 MiB).
    fn size(&mut self, class: u8) -> usize {
        match class % 8 {
            0..=3 => (usize::from(self.byte()) | usize::from(self.byte() & 3) << 8).min(SMALL_MAX),
            4..=6 => 1 + self.u16() * 2,
            _ => MEDIUM_MAX + 1 + self.u16() * (HUGE_MAX - MEDIUM_MAX) / 65536,
        }
    }
}

fn new_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// Checks and frees a block.
fn release(b: Block) {
    // SAFETY: `b` is a live block of `b.size` bytes owned by this thread.
    unsafe { check(b.p, b.size, b.id, b.size, "before free") };
    unregister(&b);
    // SAFETY: as above; it is no longer used.
    unsafe { oxalloc::free(b.p) };
}

fn allocated(p: *mut u8, size: usize, align: usize, zeroed: bool, what: &str) -> Block {
    assert!(!p.is_null(), "{what}({size}, align {align}) returned NULL");
    assert!(
        p as usize % align == 0,
        "{what}({size}, align {align}) returned {p:p}, misaligned"
    );
    if zeroed {
        // SAFETY: `p` has `size` bytes.
        unsafe { check_zero(p, size, what) };
    }
    let id = new_id();
    register(p, size, id, what);
    // SAFETY: `p` has `size` writable bytes.
    unsafe { fill(p, size, id, 0) };
    Block { p, size, id }
}

fn run_thread(mut s: Stream<'_>) {
    let mut live: Vec<Block> = Vec::new();
    let mut live_bytes = 0usize;
    while s.more() {
        let op = s.byte() % 11;
        // Room for what may come: free the oldest blocks first.
        while !live.is_empty() && (live.len() >= MAX_LIVE || live_bytes > MAX_LIVE_BYTES) {
            let b = live.remove(0);
            live_bytes -= b.size;
            release(b);
        }
        match op {
            0..=3 => {
                let class = if op == 3 { 7 } else { s.byte() };
                let size = s.size(class);
                // SAFETY: malloc is always safe to call.
                let p = unsafe { oxalloc::malloc(size) };
                live_bytes += size;
                live.push(allocated(p, size, 16, false, "malloc"));
            }
            4 => {
                let class = s.byte();
                let size = s.size(class);
                // SAFETY: as above.
                let p = unsafe { oxalloc::malloc_zeroed(size) };
                live_bytes += size;
                live.push(allocated(p, size, 16, true, "malloc_zeroed"));
            }
            5 => {
                if live.is_empty() {
                    continue;
                }
                let i = usize::from(s.byte()) % live.len();
                let class = s.byte();
                let size = s.size(class).max(1);
                let b = live.swap_remove(i);
                // SAFETY: `b` is live and owned here.
                unsafe { check(b.p, b.size, b.id, b.size, "before realloc") };
                unregister(&b);
                // SAFETY: `b.p` is a live block of this allocator; it is not used after this.
                let p = unsafe { oxalloc::realloc(b.p, size) };
                assert!(!p.is_null(), "realloc({:p}, {size}) returned NULL", b.p);
                assert!(p as usize % 16 == 0, "realloc returned {p:p}, misaligned");
                let kept = b.size.min(size);
                // SAFETY: `p` has `size >= kept` bytes, the first `kept` are the old block's.
                unsafe { check(p, b.size, b.id, kept, "after realloc") };
                register(p, size, b.id, "realloc");
                // The pattern again at the offsets of the new size (a small prefix of a large
                // block had only one byte per page filled).
                // SAFETY: `p` has `size` writable bytes.
                unsafe { fill(p, size, b.id, 0) };
                live_bytes = live_bytes - b.size + size;
                live.push(Block { p, size, id: b.id });
            }
            6 => {
                let a = s.byte();
                let align = 1usize << (3 + a % 19); // 8 B ..= 2 MiB
                let class = s.byte();
                let size = s.size(class);
                let zero = a & 0x80 != 0;
                // SAFETY: `align` is a power of two of at most 2 MiB.
                let p = unsafe { oxalloc::malloc_aligned(size, align, zero) };
                live_bytes += size;
                live.push(allocated(p, size, align, zero, "malloc_aligned"));
            }
            7 => {
                if !live.is_empty() {
                    let i = usize::from(s.byte()) % live.len();
                    let b = live.swap_remove(i);
                    live_bytes -= b.size;
                    release(b);
                }
            }
            8 => {
                // Hand a block over: swap it into a slot; what was there is now ours.
                let slot = usize::from(s.byte()) % SLOTS;
                let give = if live.is_empty() {
                    None
                } else {
                    let i = usize::from(s.byte()) % live.len();
                    let b = live.swap_remove(i);
                    live_bytes -= b.size;
                    Some(b)
                };
                let got = std::mem::replace(&mut *SLOT[slot].lock().unwrap(), give);
                if let Some(b) = got {
                    live_bytes += b.size;
                    live.push(b);
                }
            }
            9 => {
                let slot = usize::from(s.byte()) % SLOTS;
                if let Some(b) = SLOT[slot].lock().unwrap().take() {
                    // SAFETY: the block is ours now.
                    unsafe { check(b.p, b.size, b.id, b.size, "taken from a slot") };
                    live_bytes += b.size;
                    live.push(b);
                }
            }
            _ => {
                // A snapshot reads every heap while the other threads change them.
                std::hint::black_box(oxalloc::stats());
            }
        }
    }
    for b in live {
        release(b);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let threads = 2 + usize::from(first) % 3;
    let start = Barrier::new(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let start = &start;
                scope.spawn(move || {
                    start.wait();
                    run_thread(Stream {
                        data: rest,
                        at: t,
                        step: threads,
                    })
                })
            })
            .collect();
        // Joined one by one: the scope alone waits only for the closures to return, not for
        // the threads' exit (thread-local destructors, oxalloc's heap teardown) to finish.
        for h in handles {
            if let Err(e) = h.join() {
                std::panic::resume_unwind(e);
            }
        }
    });
    for slot in &SLOT {
        if let Some(b) = slot.lock().unwrap().take() {
            release(b);
        }
    }
    let left = REGISTRY.lock().unwrap().len();
    assert_eq!(
        left, 0,
        "{left} blocks still registered after every thread freed its own"
    );
});
