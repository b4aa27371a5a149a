#!/usr/bin/env bash
# Lints: clippy on every crate and target of the workspace, warnings denied, every unsafe block
# with a SAFETY comment.
source "$(dirname "$0")/lib.sh"
cargo clippy --version >/dev/null 2>&1 || fail "clippy is not installed (rustup component add clippy)"
cargo clippy --workspace --all-targets -- -D warnings -D clippy::undocumented_unsafe_blocks \
    || fail "clippy found problems (to list every one without stopping at the first crate: cargo clippy --workspace --all-targets -- -W clippy::undocumented_unsafe_blocks)"
say "ok"
