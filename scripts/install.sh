#!/usr/bin/env bash
# Builds oxalloc in release mode and installs it under PREFIX (default /usr/local):
#   PREFIX/lib/liboxalloc.so, PREFIX/lib/liboxalloc.a, PREFIX/include/oxalloc.h,
#   PREFIX/lib/pkgconfig/oxalloc.pc, PREFIX/bin/oxalloc
set -euo pipefail
prefix=${1:-/usr/local}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --release
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
install -d "$prefix/lib/pkgconfig" "$prefix/include" "$prefix/bin"
install -m 0755 target/release/liboxalloc.so "$prefix/lib/"
install -m 0644 target/release/liboxalloc.a "$prefix/lib/"
install -m 0644 crates/oxalloc-capi/include/oxalloc.h "$prefix/include/"
install -m 0755 target/release/oxalloc "$prefix/bin/"
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" crates/oxalloc-capi/oxalloc.pc.in > "$prefix/lib/pkgconfig/oxalloc.pc"
echo "installed oxalloc $version under $prefix"
