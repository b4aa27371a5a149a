#!/usr/bin/env bash
# Runs bench/rss/scenarios.c under glibc, Debian's mimalloc 2.0, the mimalloc 3.x peer
# (bench/peers) when built, and oxalloc (target/release; also with its purge thread), one
# scenario per process, and prints what each reports. Usage: bench/rss/run.sh (after cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(mktemp -d)
cc -O2 -pthread bench/rss/scenarios.c -o "$out/scenarios"
declare -A libs=(
    [glibc]=""
    [mimalloc-2.0]=/usr/lib/x86_64-linux-gnu/libmimalloc.so.2
    [mimalloc-3.x]=bench/peers/mimalloc3/target/release/libpeer_mimalloc3.so
    [oxalloc]=target/release/liboxalloc.so
)
for name in glibc mimalloc-2.0 mimalloc-3.x oxalloc; do
    lib=${libs[$name]}
    if [ -n "$lib" ] && [ ! -f "$lib" ]; then echo "== $name: $lib missing, left out"; continue; fi
    echo "== $name"
    for s in 1 2 3 4 5 6 7; do
        if [ -z "$lib" ]; then "$out/scenarios" $s
        else LD_PRELOAD="$(realpath "$lib")" "$out/scenarios" $s; fi
    done
done
# The background purge thread: oxalloc with OXALLOC_PURGE_THREAD=1.
echo "== oxalloc OXALLOC_PURGE_THREAD=1"
for s in 1 2 3 4 5 6 7; do
    OXALLOC_PURGE_THREAD=1 LD_PRELOAD="$(realpath target/release/liboxalloc.so)" "$out/scenarios" $s
done
# Transparent huge pages: oxalloc with each OXALLOC_THP setting (the kernel's is shown first).
echo "== THP: kernel setting $(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo unknown)"
for thp in never always; do
    echo "== oxalloc OXALLOC_THP=$thp"
    for s in 1 5; do
        OXALLOC_THP=$thp LD_PRELOAD="$(realpath target/release/liboxalloc.so)" "$out/scenarios" $s
    done
done
rm -rf "$out"
