#!/usr/bin/env bash
# The oxalloc crate's `nightly` feature (the standard `core::alloc::Allocator` for `OxAlloc` and
# `&Heap`, so std's collections allocate in them), built and tested with the nightly toolchain
# that tsan.sh and miri.sh use. Stable and the MSRV build without the feature (clippy, msrv).
source "$(dirname "$0")/lib.sh"
ensure_toolchain nightly
export CARGO_TARGET_DIR="$(target_dir)/nightly"
say "cargo +nightly clippy -p oxalloc --features nightly --tests"
cargo +nightly clippy -p oxalloc --features nightly --tests -- -D warnings -D clippy::undocumented_unsafe_blocks \
    || fail "clippy with the nightly feature"
say "cargo +nightly test -p oxalloc --features nightly --test nightly --test heaps"
cargo +nightly test -p oxalloc --features nightly --test nightly --test heaps \
    || fail "the nightly feature's tests"
say "ok"
