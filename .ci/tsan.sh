#!/usr/bin/env bash
# ThreadSanitizer on the multi-threaded Rust tests: the oxalloc crate's thread tests (oxalloc as
# the test program's global allocator, threads freeing each other's blocks) and the core's unit
# tests (several threads on one fixed memory region). Nightly Rust with the rust-src component
# (the standard library is rebuilt instrumented with -Zbuild-std), in its own target directory.
# fork_while_threads_allocate is skipped: ThreadSanitizer cannot start threads in the child of
# a multi-threaded fork ("starting new threads after multi-threaded fork is not supported").
# TSAN_OPTIONS=halt_on_error=0 lists every race instead of stopping at the first.
source "$(dirname "$0")/lib.sh"
ensure_component nightly rust-src
host=$(rustc +nightly -vV | sed -n 's/^host: //p')
export CARGO_TARGET_DIR="$(target_dir)/tsan"
export RUSTFLAGS="-Zsanitizer=thread"
export RUSTDOCFLAGS="-Zsanitizer=thread"
# Reports end the test process with a non-zero status; halt_on_error stops at the first one.
# The workspace's dev profile says panic = "abort"; test harnesses are built with unwinding,
# and with -Zbuild-std the two would link two copies of core: build everything unwinding.
export CARGO_PROFILE_DEV_PANIC=unwind
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1 second_deadlock_stack=1}"
failed=()
say "cargo +nightly test -Zbuild-std --target $host -p oxalloc --test threads"
cargo +nightly test -Zbuild-std --target "$host" -p oxalloc --test threads -- --test-threads=1 \
    --skip fork_while_threads_allocate || failed+=("oxalloc --test threads")
say "cargo +nightly test -Zbuild-std --target $host -p oxalloc-core --lib"
cargo +nightly test -Zbuild-std --target "$host" -p oxalloc-core --lib -- --test-threads=1 \
    || failed+=("oxalloc-core --lib")
[ ${#failed[@]} -eq 0 ] || fail "ThreadSanitizer reported races or the tests failed in: ${failed[*]}"
say "ok"
