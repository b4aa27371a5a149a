#!/usr/bin/env bash
# Documentation: cargo doc for the workspace with warnings denied. The C library's crate
# (oxalloc-capi, whose lib target is also named oxalloc) is left out of cargo doc (doc = false,
# two crates named oxalloc would share target/doc/oxalloc/), so its documentation is checked
# separately with cargo rustdoc, into its own directory. Both steps run; the script fails at
# the end if either did.
source "$(dirname "$0")/lib.sh"
failed=()
say "RUSTDOCFLAGS=\"-D warnings\" cargo doc --workspace --no-deps"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps || failed+=("cargo doc --workspace --no-deps")
say "cargo rustdoc -p oxalloc-capi --lib -- -D warnings"
CARGO_TARGET_DIR="$(target_dir)/capi-doc" cargo rustdoc -p oxalloc-capi --lib -- -D warnings \
    || failed+=("cargo rustdoc -p oxalloc-capi")
[ ${#failed[@]} -eq 0 ] || fail "documentation has warnings or errors: ${failed[*]}"
say "ok"
