#!/usr/bin/env bash
# Fuzzing, bounded: the `threads` target of fuzz/ (2 to 4 threads' malloc/calloc/realloc/
# aligned/free/hand-over sequences against a model, on the oxalloc crate's functions) under
# libFuzzer with cargo-fuzz on nightly Rust, for SECONDS (default 30; the first argument or
# FUZZ_SECONDS). cargo-fuzz is installed with `cargo install cargo-fuzz` if missing.
# The corpus grows in fuzz/corpus/threads; a crash is saved in fuzz/artifacts/threads/ and
# the script fails, printing how to reproduce it. Long runs: .ci/fuzz-long.sh.
source "$(dirname "$0")/lib.sh"
seconds=${1:-${FUZZ_SECONDS:-30}}
ensure_toolchain nightly
if ! cargo fuzz --version >/dev/null 2>&1; then
    say "installing cargo-fuzz"
    cargo install cargo-fuzz --locked || fail "could not install cargo-fuzz (cargo install cargo-fuzz)"
fi
export CARGO_TARGET_DIR="$(target_dir)/fuzz"
say "building the fuzz target"
cargo +nightly fuzz build threads || fail "cargo fuzz build threads"
mkdir -p fuzz/corpus/threads fuzz/artifacts/threads
say "fuzzing for ${seconds}s"
if ! cargo +nightly fuzz run threads -- -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 -print_final_stats=1; then
    crash=$(ls -t fuzz/artifacts/threads/* 2>/dev/null | head -n1 || true)
    fail "the fuzzer found a failure${crash:+: $crash (reproduce with: cargo +nightly fuzz run threads $crash)}"
fi
say "ok"
