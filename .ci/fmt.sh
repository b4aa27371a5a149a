#!/usr/bin/env bash
# Formatting: cargo fmt --all -- --check (the root workspace and the fuzz workspace).
source "$(dirname "$0")/lib.sh"
cargo fmt --version >/dev/null 2>&1 || fail "rustfmt is not installed (rustup component add rustfmt)"
cargo fmt --all -- --check || fail "formatting differs: run cargo fmt --all"
if [ -f fuzz/Cargo.toml ]; then
    cargo fmt --manifest-path fuzz/Cargo.toml -- --check || fail "formatting differs in fuzz/: run cargo fmt --manifest-path fuzz/Cargo.toml"
fi
say "ok"
