#!/usr/bin/env bash
# Builds oxalloc in release mode and installs it under PREFIX (default /usr/local):
#   PREFIX/lib/liboxalloc.so.VERSION (SONAME liboxalloc.so.MAJOR) with the links
#   PREFIX/lib/liboxalloc.so.MAJOR -> liboxalloc.so.VERSION and liboxalloc.so -> liboxalloc.so.MAJOR,
#   PREFIX/lib/liboxalloc.a, PREFIX/include/oxalloc.h, PREFIX/lib/pkgconfig/oxalloc.pc,
#   PREFIX/bin/oxalloc
# The build goes to $CARGO_TARGET_DIR when it is set, else to target/.
set -euo pipefail
prefix=${1:-/usr/local}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --release
target=${CARGO_TARGET_DIR:-target}/release
# The package version, as Cargo sees it (e.g. path+file:///src/crates/oxalloc-capi#0.1.0).
version=$(cargo pkgid -p oxalloc-capi | sed 's/.*[#@]//')
case $version in
    [0-9]*.[0-9]*.[0-9]*) ;;
    *) echo "install.sh: cannot read the version from 'cargo pkgid' (got '$version')" >&2; exit 1 ;;
esac
major=${version%%.*}
soname=liboxalloc.so.$major
if command -v readelf >/dev/null 2>&1 && ! readelf -d "$target/liboxalloc.so" | grep -q "Library soname: \[$soname\]"; then
    echo "install.sh: $target/liboxalloc.so does not carry the SONAME $soname" >&2
    exit 1
fi
install -d "$prefix/lib/pkgconfig" "$prefix/include" "$prefix/bin"
install -m 0755 "$target/liboxalloc.so" "$prefix/lib/liboxalloc.so.$version"
ln -sfn "liboxalloc.so.$version" "$prefix/lib/$soname"
ln -sfn "$soname" "$prefix/lib/liboxalloc.so"
install -m 0644 "$target/liboxalloc.a" "$prefix/lib/"
install -m 0644 crates/oxalloc-capi/include/oxalloc.h "$prefix/include/"
install -m 0755 "$target/oxalloc" "$prefix/bin/"
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" crates/oxalloc-capi/oxalloc.pc.in > "$prefix/lib/pkgconfig/oxalloc.pc"
echo "installed oxalloc $version under $prefix"
