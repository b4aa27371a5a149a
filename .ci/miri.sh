#!/usr/bin/env bash
# Miri on the core's unit tests (oxalloc-core runs its tests on a fixed memory region, no
# system calls): undefined behaviour (Stacked Borrows aliasing, out-of-bounds and dangling
# accesses) and data races between the tests' threads. Nightly Rust with the miri and rust-src
# components.
#
# What runs: every unit test of oxalloc-core's lib (the leaf and page-level modules, the size
# classes, and the heap tests of src/tests.rs) but those in MIRI_SKIP (none by default), one
# test at a time in each of two Miri processes that run at once (Miri interprets one thread at
# a time, so two processes use both cores of a CI machine; the heaviest tests are dealt out
# first so the halves are even). Under `cfg(miri)` the tests are smaller (tests.rs `scaled`:
# fewer blocks, steps, rounds and threads, the same code paths: several segments, abandoned
# segments, huge blocks, full pages and the delayed free path, remote frees and the remote
# cache, the purge clock), the exhaustive size-class round trip checks every size up to 1 KiB
# and the sizes at each class boundary, the aligned test takes eight of its alignments, and the
# byte checks sample a block (both ends and every 509th byte). The times Miri reports
# (--report-time) are its virtual clock, not wall time.
#
# The multi-threaded tests run with the others: many_threads_cross_free_without_losing_blocks
# (owners allocating and refilling pages while other threads free into them, their remote frees
# batched in their caches), remote_frees_come_back_to_the_owner and
# snapshots_while_another_thread_allocates. Miri used to report a data race in the first, real
# undefined behaviour: the owner took `&mut Page` (page_life::refill, every `&mut self` method
# of Page), whose retag writes the whole struct, while other threads' frees held `&Page`, whose
# retag reads every byte outside an UnsafeCell. Now no `&mut Page` is made once a segment is set
# up: every field of a Page is a Cell written by its owner or an atomic, and its methods take
# `&self` (page.rs, "Sharing"); segment headers are reached one field at a time through raw
# pointers.
#
# Time: the whole set takes about 6 minutes of CPU (5 of real time on two cores, 2026-12-03).
# Until then seven tests were left out for CI's 30 minutes (13 minutes between them), and the
# cause was never the tests' size: Miri walks every atomic of a reference it retags, at each
# function that takes one. `SegmentMap::contains` passed `&MapUnits` (2^16 atomic bytes under
# Miri) to a method, a tenth of a second per call, at every free; the heap profile's table
# (over a megabyte of atomics) was reached through `&Table`. Both are reached one element at a
# time through raw pointers now (segment.rs, profile.rs `TablePtr`): the purge-clock test went
# from 199 s to 13 s, the profile's in-place resize test from 278 s to 5 s. The next-slowest
# pattern of the kind: each call of an `Arena` method retags the arena's counters (half a
# millisecond a call). A test's real time under Miri, one process: `MIRI_TESTS=name .ci/miri.sh`.
#
# MIRI_TESTS="..." runs only the tests whose names contain one of the words given (libtest
# filters); MIRI_SKIP="a b" leaves out the tests named (exact names).
# MIRIFLAGS defaults:
#   -Zmiri-ignore-leaks           the tests leak their allocator and its region on purpose
#   -Zmiri-permissive-provenance  free-list links are XOR-encoded integers turned back into
#                                 pointers, by design; Miri warns at every such cast otherwise
source "$(dirname "$0")/lib.sh"
ensure_component nightly rust-src
ensure_component nightly miri
# Miri's own target directory: cargo-miri records the source directory of the crate it set up
# for interpretation, so a target directory shared with another checkout runs that checkout's
# sources.
export CARGO_TARGET_DIR="$(target_dir)/miri-$(basename "$PWD")"
cargo +nightly miri setup || fail "cargo miri setup"
export MIRIFLAGS="${MIRIFLAGS--Zmiri-ignore-leaks -Zmiri-permissive-provenance}"
skip=" ${MIRI_SKIP-} "
# The heaviest tests by Miri's (virtual) clock, dealt out first so that the halves take about as
# long as each other.
heavy="tests::reclaimed_pages_keep_the_live_estimate_exact tests::many_threads_cross_free_without_losing_blocks tests::random_replacement_keeps_the_heap_consistent tests::free_pages_of_a_live_segment_are_purged_after_the_delay tests::secure_mode_seals_fills_and_gives_everything_back tests::malloc_free_many_sizes_reuses_memory tests::snapshots_while_another_thread_allocates tests::frees_into_abandoned_segments_are_released_by_the_purge_clock tests::remote_frees_come_back_to_the_owner tests::aligned_blocks_are_aligned_and_freeable"
say "building the tests for Miri"
cargo +nightly miri test -p oxalloc-core --lib --no-run || fail "cargo miri test --no-run"
listed=$(cargo +nightly miri test -p oxalloc-core --lib -q -- --list --format terse 2>/dev/null | sed -n 's/: test$//p' | tr '\n' ' ')
[ -n "$listed" ] || fail "could not list oxalloc-core's tests under Miri"
chosen=()
for t in $heavy $listed; do
    [[ " $listed " == *" $t "* ]] || continue # a heavy test that was renamed
    [[ " ${chosen[*]} " == *" $t "* ]] && continue
    [[ "$skip" == *" $t "* ]] && continue
    if [ -n "${MIRI_TESTS:-}" ]; then
        keep=0
        for w in $MIRI_TESTS; do [[ "$t" == *"$w"* ]] && keep=1; done
        [ $keep -eq 1 ] || continue
    fi
    chosen+=("$t")
done
[ ${#chosen[@]} -gt 0 ] || fail "no test left to run"
half=("" "")
for i in "${!chosen[@]}"; do half[$((i % 2))]+=" ${chosen[$i]}"; done
# shellcheck disable=SC2086 # the names, on one line
left_out=$(echo $skip)
say "${#chosen[@]} unit tests of oxalloc-core in two Miri processes at once (left out: ${left_out:-none})"
logs=$(mktemp -d)
pids=()
for h in 0 1; do
    [ -n "${half[$h]}" ] || continue
    # shellcheck disable=SC2086 # the half is a list of names
    cargo +nightly miri test -p oxalloc-core --lib -- --test-threads=1 --exact ${half[$h]} >"$logs/$h" 2>&1 &
    pids[$h]=$!
done
failed=0
for h in "${!pids[@]}"; do
    wait "${pids[$h]}" || failed=1
    sed "s/^/[miri $h] /" "$logs/$h"
done
rm -rf "$logs"
[ $failed -eq 0 ] || fail "Miri on oxalloc-core's tests"
say "ok"
