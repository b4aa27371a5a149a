#!/usr/bin/env bash
# Miri on the core's unit tests (oxalloc-core runs its tests on a fixed memory region, no
# system calls): undefined behaviour (Stacked Borrows aliasing, out-of-bounds and dangling
# accesses) and data races between the tests' threads. Nightly Rust with the miri and rust-src
# components.
#
# What runs: every unit test of the leaf and page-level modules (util, page, page_queue,
# segment, span_cache, stats, options, size_class but its exhaustive round trip), and the heap
# tests listed in MIRI_HEAP_TESTS. Left out:
# - tests too slow under Miri (more than 2 minutes each: the exhaustive size-class round trip,
#   the tests that allocate hundreds of MiB or run hundreds of thousands of steps);
# - the other heap tests: abandoned_segments_are_reclaimed and heap_walk_is_exact_for_the_owner
#   each ran for more than ten minutes under Miri on a 2-core machine without finishing, and
#   the multi-threaded ones, the huge-block ones and the purge-clock ones have not been run to
#   the end; whether they are free of undefined behaviour is not known yet.
# The heap API takes raw heap pointers (no `&mut Heap` is held while a free reaches the same heap
# through a page's heap pointer); that aliasing was the undefined behaviour Miri found in
# realloc and in aligned frees. The realloc test runs here. The aligned test passed under Miri
# in 7 s once the API changed, but in a later full CI run it was still going after ten
# minutes, for reasons not yet found, so it is left out until that is understood.
# The first-class heap tests (first_class::tests) all passed under Miri, one at a time, on a
# 2-core machine shared with other builds (wall time of `cargo miri test` once the crate was
# built: the two listed 15 and 30 s, the others 40 s to 2 min), so only the two quick ones run
# here.
# MIRI_HEAP_TESTS="..." changes the list; MIRI_ALL=1 runs every test.
# MIRIFLAGS defaults:
#   -Zmiri-ignore-leaks           the tests leak their allocator and its region on purpose
#   -Zmiri-permissive-provenance  free-list links are XOR-encoded integers turned back into
#                                 pointers, by design; Miri warns at every such cast otherwise
source "$(dirname "$0")/lib.sh"
ensure_component nightly rust-src
ensure_component nightly miri
export CARGO_TARGET_DIR="$(target_dir)"
cargo +nightly miri setup || fail "cargo miri setup"
export MIRIFLAGS="${MIRIFLAGS--Zmiri-ignore-leaks -Zmiri-permissive-provenance}"
if [ -n "${MIRI_ALL:-}" ]; then
    cargo +nightly miri test -p oxalloc-core --lib || fail "Miri on oxalloc-core's tests"
    say "ok"
    exit 0
fi
say "the leaf and page-level unit tests"
cargo +nightly miri test -p oxalloc-core --lib -- util:: page:: page_queue:: segment:: span_cache:: stats:: \
    options:: size_class::tests::small_pages_hold_at_least_eight_blocks \
    || fail "Miri on the core's module tests"
heap_tests=${MIRI_HEAP_TESTS-tests::double_free_is_detected tests::foreign_pointer_is_detected tests::interior_pointer_is_detected tests::realloc_keeps_contents_across_classes first_class::tests::thread_exit_deletes_first_class_heaps first_class::tests::first_class_heaps_do_not_reclaim_abandoned_segments}
for t in $heap_tests; do
    say "$t"
    cargo +nightly miri test -p oxalloc-core --lib -- --exact "$t" || fail "Miri on $t"
done
say "ok"
