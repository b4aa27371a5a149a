#!/usr/bin/env bash
# The tests: the README's test command (debug build of the workspace, then cargo test, which
# runs the C programs and the real programs against target/debug/liboxalloc.so); the release
# build, the main job and the C-level tests (but the real programs, valgrind and install)
# against the optimised library; one quick run of the benchmark runner; and an install with scripts/install.sh linked through pkg-config.
source "$(dirname "$0")/lib.sh"
ensure_test_tools
target=$(target_dir)
# The valgrind tests skip when valgrind is missing, and the libc++ tests of the C++ operators
# when clang++ with libc++ is; here they were installed, so they must run.
export CI_REQUIRE_VALGRIND=1
export CI_REQUIRE_LIBCXX=1

say "the README's test command"
cargo build --workspace || fail "cargo build --workspace"
cargo test --workspace || fail "cargo test --workspace"

say "release build, main job, and the C tests against the optimised library"
cargo build --release || fail "cargo build --release"
"$target/release/oxalloc" run || fail "oxalloc run (the main job)"
# The C, C++, fork, misuse and heap programs again, on the optimised library (the real programs,
# valgrind and install tests ran against the debug one above and take the longest): the test
# binaries built above, pointed at target/release (building them again in release mode took
# 40 s and tests nothing more: the programs they run are the same).
TEST_LIBOXALLOC_DIR="$target/release" cargo test -p oxalloc-capi --test c_programs --test cxx --test fork --test misuse --test heaps --test heap_visit \
    || fail "cargo test -p oxalloc-capi against target/release (C, C++, fork, misuse and heap tests)"

say "the benchmark runner, one quick run against the Debian competitors"
bench_env=()
if [ "$target" != "$PWD/target" ]; then
    # bench/run.py builds and reads target/release itself.
    say "note: bench/run.py uses target/, not CARGO_TARGET_DIR=$target: it builds there"
    bench_env=(env -u CARGO_TARGET_DIR)
fi
"${bench_env[@]}" python3 bench/run.py --install --runs 1 --only malloc-simple,xmalloc,realloc-growth --no-write > "$target/bench-quick.txt" 2>&1 \
    || { tail -n 40 "$target/bench-quick.txt"; fail "bench/run.py"; }
tail -n 25 "$target/bench-quick.txt"

say "install with scripts/install.sh and link through pkg-config"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
scripts/install.sh "$tmp" >/dev/null || fail "scripts/install.sh"
version=$(cargo pkgid -p oxalloc-capi | sed 's/.*[#@]//')
for f in "liboxalloc.so.$version" liboxalloc.so.0 liboxalloc.so liboxalloc.a pkgconfig/oxalloc.pc; do
    [ -e "$tmp/lib/$f" ] || fail "install.sh did not install lib/$f"
done
[ "$(readlink "$tmp/lib/liboxalloc.so")" = liboxalloc.so.0 ] && [ "$(readlink "$tmp/lib/liboxalloc.so.0")" = "liboxalloc.so.$version" ] \
    || fail "install.sh: lib/liboxalloc.so -> liboxalloc.so.0 -> liboxalloc.so.$version expected"
# shellcheck disable=SC2046 # pkg-config's output is a list of flags
cc crates/oxalloc-capi/tests/c/api.c -o "$tmp/api" $(PKG_CONFIG_PATH="$tmp/lib/pkgconfig" pkg-config --cflags --libs oxalloc) \
    -Wl,-rpath,"$tmp/lib" -pthread -ldl -Wno-alloc-size-larger-than -Wno-use-after-free -Wno-deprecated-declarations \
    || fail "compiling api.c against the installed library"
readelf -d "$tmp/api" | grep -q 'Shared library: \[liboxalloc.so.0\]' || fail "api.c linked through pkg-config does not need liboxalloc.so.0"
out=$("$tmp/api") || { echo "$out"; fail "api.c linked through pkg-config"; }
echo "$out" | tail -n 1
say "ok"
