#!/usr/bin/env bash
# Miri on the core's unit tests (oxalloc-core runs its tests on a fixed memory region, no
# system calls): undefined behaviour (Stacked Borrows aliasing, out-of-bounds and dangling
# accesses) and data races between the tests' threads. Nightly Rust with the miri and rust-src
# components.
#
# What runs: every unit test of oxalloc-core's lib (the leaf and page-level modules, the size
# classes, and the heap tests of src/tests.rs) but those in MIRI_SKIP, one test at a time in
# each of two Miri processes that run at once (Miri interprets one thread at a time, so two
# processes use both cores of a CI machine; the heaviest tests are dealt out first so the
# halves are even). Under `cfg(miri)` the tests are smaller (tests.rs `scaled`: fewer blocks,
# steps, rounds and threads, the same code paths: several segments, abandoned segments, huge
# blocks, full pages and the delayed free path, remote frees, the purge clock), the exhaustive
# size-class round trip checks every size up to 1 KiB and the sizes at each class boundary, the
# aligned test takes eight of its alignments, and the byte checks sample a block (both ends and
# every 509th byte). The times Miri reports (--report-time) are its virtual clock, not wall
# time: the whole set reads 84 s on it and takes several minutes of real time per process.
#
# The multi-threaded tests run with the others: many_threads_cross_free_without_losing_blocks
# (owners allocating and refilling pages while other threads free into them),
# remote_frees_come_back_to_the_owner and snapshots_while_another_thread_allocates. Miri used
# to report a data race in the first, real undefined behaviour: the owner took `&mut Page`
# (page_life::refill, every `&mut self` method of Page), whose retag writes the whole struct,
# while other threads' frees held `&Page`, whose retag reads every byte outside an UnsafeCell.
# Now no `&mut Page` is made once a segment is set up: every field of a Page is a Cell written by
# its owner or an atomic, and its methods take `&self` (page.rs, "Sharing"); segment headers are
# reached one field at a time through raw pointers.
#
# Left out (MIRI_SKIP's default), for CI's 30 minutes: they pass under Miri, and
# .ci/miri-full.sh runs them with the rest (as .ci/fuzz-long.sh is the fuzzer's long run). The
# whole set took 581 s of real time in two processes in a CI run; the left-out ones, run alone
# on 2026-12-02 (two processes on two cores): 6 min for the first five, 7.5 min for the last.
# - the four heaviest single-threaded heap tests (by Miri's clock 14, 11, 6.5 and 5 s of the
#   95): tests::random_replacement_keeps_the_heap_consistent, tests::secure_mode_seals_fills_
#   and_gives_everything_back, tests::malloc_free_many_sizes_reuses_memory, size_class::tests::
#   every_size_round_trips (safe arithmetic only);
# - tests::free_pages_of_a_live_segment_are_purged_after_the_delay (it did not finish in five
#   minutes before Page::init's debug check of every granule was skipped under Miri; it passes
#   now, within the 6 minutes above);
# - profile::tests::table_records_finds_and_releases (safe code over the sample table's
#   atomics: 7.5 minutes). The profile's statistical tests run here at a smaller scale under
#   Miri (4000 and 2000 draws, bounds of five standard errors);
# - tests::reclaimed_pages_keep_the_live_estimate_exact (single-threaded statistics
#   bookkeeping over 8 rounds of abandon and reclaim: more than 8 minutes under Miri, which
#   the reclaim path it shares with tests::abandoned_segments_are_reclaimed already covers).
# The multi-threaded tests, where Miri's race detector matters most, all run.
#
# Why the heap tests used to be left out, or ran for more than ten minutes: every call of
# `SEGMENT_MAP.contains` made a reference to 8 MiB of atomics, and Miri walks every atomic of a
# reference it retags (2000 calls took over five minutes); the map now holds a reference to its
# words. Byte checks through slice iterators made a reference per byte, each splitting the
# region's borrow tracking (one allocation of many MiB) into one more range; they read through
# raw pointers now. Miri's cost also grows with the blocks a test touches in that one
# allocation, hence the smaller tests.
#
# MIRI_TESTS="..." runs only the tests whose names contain one of the words given (libtest
# filters); MIRI_SKIP="" runs the left-out tests too (MIRI_SKIP names the tests to skip).
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
skip=" ${MIRI_SKIP-tests::random_replacement_keeps_the_heap_consistent tests::secure_mode_seals_fills_and_gives_everything_back tests::malloc_free_many_sizes_reuses_memory size_class::tests::every_size_round_trips tests::free_pages_of_a_live_segment_are_purged_after_the_delay profile::tests::table_records_finds_and_releases tests::reclaimed_pages_keep_the_live_estimate_exact} "
# The heaviest tests by Miri's (virtual) clock, dealt out first so that the halves take about as
# long as each other.
heavy="tests::random_replacement_keeps_the_heap_consistent tests::secure_mode_seals_fills_and_gives_everything_back tests::malloc_free_many_sizes_reuses_memory tests::snapshots_while_another_thread_allocates tests::frees_into_abandoned_segments_are_released_by_the_purge_clock size_class::tests::every_size_round_trips tests::remote_frees_come_back_to_the_owner tests::huge_blocks_map_cache_and_unmap"
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
say "${#chosen[@]} unit tests of oxalloc-core in two Miri processes at once (left out:${skip% })"
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
