#!/usr/bin/env bash
# The no_std core on wasm: built for wasm32-unknown-unknown, and its unit tests run for
# wasm32-wasip1 under Node.js's WASI (a wasm32-unknown-unknown test binary has no runtime to run
# it without a JavaScript test harness). Tests that need threads are ignored on wasm.
set -euo pipefail
cd "$(dirname "$0")/.."
for t in wasm32-unknown-unknown wasm32-wasip1; do
    rustup target add "$t" >/dev/null 2>&1 || { echo "ci/wasm: FAILED to install the $t target with rustup" >&2; exit 1; }
done
if ! command -v node >/dev/null; then
    echo "ci/wasm: installing nodejs (it runs the wasm32-wasip1 tests)"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq nodejs >/dev/null; } \
        || { echo "ci/wasm: FAILED to install nodejs with apt-get" >&2; exit 1; }
fi
cargo build -p oxalloc-core --target wasm32-unknown-unknown
CARGO_TARGET_WASM32_WASIP1_RUNNER="node --no-warnings --no-incremental-marking --wasm-enforce-bounds-checks $PWD/scripts/wasi-run.js" \
    cargo test -p oxalloc-core --lib --target wasm32-wasip1
