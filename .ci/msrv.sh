#!/usr/bin/env bash
# The minimum supported Rust version: installs the toolchain named by rust-version in
# Cargo.toml with rustup, builds the allocator crates with it and checks the rest of the
# workspace (`cargo check`: the command-line tool's dependencies take most of the time, and
# codegen finds nothing about the language or library a check does not), in its own target
# directory. The allocator crates (oxalloc-core, oxalloc-os, oxalloc, oxalloc-capi) must build
# with the MSRV whatever happens; if only the command-line tool fails, because the versions of its
# dependencies (clap, serde) in Cargo.lock need a newer rustc, that is reported and the script
# still fails, so it is seen.
source "$(dirname "$0")/lib.sh"
v=$(msrv)
ensure_toolchain "$v"
export CARGO_TARGET_DIR="$(target_dir)/msrv"
say "building the allocator crates with Rust $v"
cargo "+$v" build -p oxalloc-core -p oxalloc-os -p oxalloc -p oxalloc-capi \
    || fail "the allocator crates do not build with Rust $v (rust-version)"
say "checking the whole workspace with Rust $v"
cargo "+$v" check --workspace \
    || fail "the workspace does not compile with Rust $v: the allocator crates do, so it is the command-line tool or the lockfile's versions of its dependencies"
say "ok"
