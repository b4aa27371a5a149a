#!/usr/bin/env bash
# Prints the malloc and free fast paths of oxalloc and of mimalloc 3 (the crates.io peer in
# bench/peers/mimalloc3), as BENCHMARKS.md shows them: each function from its entry to the first
# ret-terminated block, Intel syntax, no addresses of the bytes.
#   bash bench/tools/fastpath-disasm.sh [path/to/liboxalloc.so]
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
ox=${1:-${CARGO_TARGET_DIR:-$root/target}/release/liboxalloc.so}
mi=$root/bench/peers/mimalloc3/target/release/libpeer_mimalloc3.so
[ -f "$ox" ] || { echo "missing $ox: cargo build --release -p oxalloc-capi" >&2; exit 1; }
[ -f "$mi" ] || { echo "missing $mi: (cd bench/peers/mimalloc3 && cargo build --release)" >&2; exit 1; }
show() { # library symbol: the function up to (and including) its first ret
    echo "== $2 ($(basename "$1"))"
    objdump -d --no-show-raw-insn -M intel "$1" | grep -v "int3$" |
        awk -v s="<$2>:" '$0 ~ s {on=1; next} on && /^$/ {exit} on {sub(/^ *[0-9a-f]+:\t/, ""); print; if ($0 ~ /^ret/) exit}'
    true
}
show "$ox" __libc_malloc
show "$ox" __libc_free
show "$mi" mi_malloc
show "$mi" _mi_theap_malloc_zero
show "$mi" mi_free
