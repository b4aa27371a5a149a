#!/usr/bin/env bash
# loom model of the cross-thread free protocol (crates/oxalloc-core/src/thread_free.rs, compiled
# unchanged against loom's atomics by loom/). Exhaustive within LOOM_MAX_PREEMPTIONS.
set -euo pipefail
cd "$(dirname "$0")/.."
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}"
cd loom
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/../target/loom}" cargo test --release
