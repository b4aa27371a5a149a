#!/usr/bin/env bash
# The debug-full feature: the whole heap validated after every slow-path step (page equations,
# queue links, direct table, segment lists), under the core's tests and the oxalloc crate's
# (model property test, threads, first-class heaps, statistics, profile, the purge thread's
# stress test). tests/rss.rs is left
# out here (validating the whole heap after every step of its gigabyte of blocks took 137 s);
# it runs without the feature in tests.sh.
source "$(dirname "$0")/lib.sh"
export CARGO_TARGET_DIR="$(target_dir)/debug-full"
cargo test -p oxalloc-core --features debug-full || fail "core tests with debug-full"
cargo test -p oxalloc --features debug-full --lib --test model --test threads --test heaps --test statistics --test profile --test readme --test purge_thread \
    || fail "oxalloc tests with debug-full"
say "ok"
