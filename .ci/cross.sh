#!/usr/bin/env bash
# Other targets: the portable thread-slot path of the oxalloc crate (pthread_getspecific),
# which x86-64 never compiles, checked for aarch64 Linux; and the no_std core built for
# wasm32 and for a 32-bit microcontroller (thumbv7em: no 64-bit atomics, 32-bit usize).
# Warnings are errors (code compiled only for these targets is linted nowhere else). Every
# step runs; the script fails at the end if any did.
source "$(dirname "$0")/lib.sh"
export RUSTFLAGS="${RUSTFLAGS:-} -D warnings"
toolchain=$(rustup show active-toolchain 2>/dev/null | cut -d' ' -f1)
[ -n "$toolchain" ] || fail "no active Rust toolchain"
failed=()
step() { # target, then the cargo command
    local target=$1
    shift
    ensure_target "$toolchain" "$target"
    say "$*"
    if ! "$@"; then
        echo "ci[$ci_name]: FAILED: $*" >&2
        failed+=("$target")
    fi
}
step aarch64-unknown-linux-gnu cargo check -p oxalloc --target aarch64-unknown-linux-gnu
step wasm32-unknown-unknown cargo build -p oxalloc-core --target wasm32-unknown-unknown
step thumbv7em-none-eabi cargo build -p oxalloc-core --target thumbv7em-none-eabi
[ ${#failed[@]} -eq 0 ] || fail "did not build for: ${failed[*]}"
say "ok"
