//! Property test: random sequences of malloc, calloc, realloc, aligned allocation and free,
//! checked against a model of what must hold: blocks never overlap, are aligned as asked, have
//! at least the usable size asked for, keep their contents across realloc, and calloc's blocks
//! are zero.

use proptest::prelude::*;

#[global_allocator]
static GLOBAL: oxalloc::OxAlloc = oxalloc::OxAlloc;

#[derive(Debug, Clone)]
enum Op {
    Malloc(usize),
    Calloc(usize),
    Aligned(usize, u32),
    Realloc(usize, usize),
    Free(usize),
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        8 => 0usize..256,
        4 => 256usize..8192,
        2 => 8192usize..140_000,
        1 => 140_000usize..3_000_000,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => size().prop_map(Op::Malloc),
        1 => size().prop_map(Op::Calloc),
        1 => (size(), 4u32..22).prop_map(|(s, a)| Op::Aligned(s, a)),
        2 => (any::<usize>(), size()).prop_map(|(i, s)| Op::Realloc(i, s)),
        3 => any::<usize>().prop_map(Op::Free),
    ]
}

struct Live {
    ptr: *mut u8,
    size: usize,
    tag: u8,
}

fn fill(l: &Live) {
    // SAFETY: the model passes the allocator only pointers it returned and has not freed, with the sizes and alignments they were allocated with.
    unsafe { std::ptr::write_bytes(l.ptr, l.tag, l.size) };
}

fn intact(l: &Live, n: usize) -> bool {
    // SAFETY: the model passes the allocator only pointers it returned and has not freed, with the sizes and alignments they were allocated with.
    unsafe { std::slice::from_raw_parts(l.ptr, n) }
        .iter()
        .all(|&b| b == l.tag)
}

fn run(ops: &[Op]) {
    let mut live: Vec<Live> = Vec::new();
    let mut tag = 0u8;
    for op in ops {
        tag = tag.wrapping_add(1).max(1);
        match *op {
            Op::Malloc(s) | Op::Calloc(s) | Op::Aligned(s, _) => {
                // SAFETY: the model passes the allocator only pointers it returned and has not freed, with the sizes and alignments they were allocated with.
                let (p, align) = unsafe {
                    match *op {
                        Op::Malloc(_) => (oxalloc::malloc(s), 16),
                        Op::Calloc(_) => (oxalloc::malloc_zeroed(s), 16),
                        Op::Aligned(_, a) => {
                            (oxalloc::malloc_aligned(s, 1 << a, false), 1usize << a)
                        }
                        _ => unreachable!(),
                    }
                };
                assert!(!p.is_null(), "allocation of {s} failed");
                assert_eq!(p as usize % align, 0, "alignment {align}");
                // SAFETY: the model passes the allocator only pointers it returned and has not freed, with the sizes and alignments they were allocated with.
                assert!(unsafe { oxalloc::usable_size(p) } >= s);
                if let Op::Calloc(_) = op {
                    assert!(
                        // SAFETY: the model passes the allocator only pointers it returned and has not freed, with the sizes and alignments they were allocated with.
                        unsafe { std::slice::from_raw_parts(p, s) }
                            .iter()
                            .all(|&b| b == 0),
                        "calloc not zero"
                    );
                }
                let l = Live {
                    ptr: p,
                    size: s,
                    tag,
                };
                fill(&l);
                live.push(l);
            }
            Op::Realloc(i, s) if !live.is_empty() => {
                let i = i % live.len();
                let old = live[i].size;
                // SAFETY: the model passes the allocator only pointers it returned and has not freed, with the sizes and alignments they were allocated with.
                let p = unsafe { oxalloc::realloc(live[i].ptr, s) };
                assert!(!p.is_null());
                live[i].ptr = p;
                assert!(intact(&live[i], old.min(s)), "realloc lost contents");
                live[i].size = s;
                fill(&live[i]);
            }
            Op::Free(i) if !live.is_empty() => {
                let l = live.swap_remove(i % live.len());
                assert!(intact(&l, l.size), "a block was overwritten while live");
                // SAFETY: the model passes the allocator only pointers it returned and has not freed, with the sizes and alignments they were allocated with.
                unsafe { oxalloc::free(l.ptr) };
            }
            _ => {}
        }
    }
    // No two live blocks overlap, and every one kept its contents.
    let mut spans: Vec<(usize, usize)> = live
        .iter()
        .map(|l| (l.ptr as usize, l.size.max(1)))
        .collect();
    spans.sort();
    for w in spans.windows(2) {
        assert!(w[0].0 + w[0].1 <= w[1].0, "blocks overlap");
    }
    for l in live {
        assert!(intact(&l, l.size));
        // SAFETY: the model passes the allocator only pointers it returned and has not freed, with the sizes and alignments they were allocated with.
        unsafe { oxalloc::free(l.ptr) };
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn random_sequences_match_the_model(ops in proptest::collection::vec(op(), 1..400)) {
        run(&ops);
    }
}
