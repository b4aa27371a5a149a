#!/usr/bin/env bash
# Miri on the core's unit tests (oxalloc-core runs its tests on a fixed memory region, no
# system calls): undefined behaviour (Stacked Borrows aliasing, out-of-bounds and dangling
# accesses) and data races between the tests' threads. Nightly Rust with the miri and rust-src
# components.
#
# Skipped by default, each taking more than 2 minutes under Miri (MIRI_SKIP= runs them all;
# MIRI_SKIP="a b" skips those instead):
#   tests::abandoned_segments_are_reclaimed, tests::huge_blocks_map_cache_and_unmap,
#   tests::malloc_free_many_sizes_reuses_memory, tests::remote_frees_come_back_to_the_owner
# (size_class::tests::every_size_round_trips, the next slowest, takes about 50 s and runs.)
# MIRIFLAGS defaults:
#   -Zmiri-ignore-leaks           the tests leak their Global and its region on purpose (Box::leak)
#   -Zmiri-permissive-provenance  free-list links are XOR-encoded integers turned back into
#                                 pointers, by design; Miri warns at every such cast otherwise
source "$(dirname "$0")/lib.sh"
ensure_component nightly rust-src
ensure_component nightly miri
export CARGO_TARGET_DIR="$(target_dir)"
cargo +nightly miri setup || fail "cargo miri setup"
export MIRIFLAGS="${MIRIFLAGS--Zmiri-ignore-leaks -Zmiri-permissive-provenance}"
default_skip="tests::abandoned_segments_are_reclaimed tests::huge_blocks_map_cache_and_unmap
tests::malloc_free_many_sizes_reuses_memory tests::remote_frees_come_back_to_the_owner"
args=(--exact)
for t in ${MIRI_SKIP-$default_skip}; do args+=(--skip "$t"); done
say "MIRIFLAGS=\"$MIRIFLAGS\" cargo +nightly miri test -p oxalloc-core --lib -- ${args[*]}"
cargo +nightly miri test -p oxalloc-core --lib -- "${args[@]}" || fail "Miri on oxalloc-core's tests"
say "ok"
