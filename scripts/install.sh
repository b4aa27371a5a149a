#!/usr/bin/env bash
# Builds oxalloc in release mode and installs it under PREFIX (default /usr/local):
#   PREFIX/lib/liboxalloc.so.VERSION (SONAME liboxalloc.so.MAJOR) with the links
#   PREFIX/lib/liboxalloc.so.MAJOR -> liboxalloc.so.VERSION and liboxalloc.so -> liboxalloc.so.MAJOR,
#   PREFIX/lib/liboxalloc.a, PREFIX/include/oxalloc.h, PREFIX/lib/pkgconfig/oxalloc.pc,
#   PREFIX/bin/oxalloc
#
# Usage: scripts/install.sh [PREFIX]            or   PREFIX=/usr DESTDIR=/tmp/stage scripts/install.sh
#   PREFIX   where the files will live (an argument, else $PREFIX, else /usr/local); it is what
#            oxalloc.pc names
#   DESTDIR  a staging root the files are copied under (DESTDIR/PREFIX/...), for packagers;
#            oxalloc.pc still names PREFIX
#   BUILD_DIR  install the libraries and the command already built in this directory (e.g.
#            target/release) instead of running `cargo build --release`
# The build goes to $CARGO_TARGET_DIR when it is set, else to target/.
set -euo pipefail
prefix=${1:-${PREFIX:-/usr/local}}
destdir=${DESTDIR:-}
case $prefix in
    /*) ;;
    *) echo "install.sh: PREFIX must be an absolute path (got '$prefix')" >&2; exit 1 ;;
esac
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [ -n "${BUILD_DIR:-}" ]; then
    target=$BUILD_DIR
else
    cargo build --release
    target=${CARGO_TARGET_DIR:-target}/release
fi
for f in liboxalloc.so liboxalloc.a oxalloc; do
    [ -f "$target/$f" ] || { echo "install.sh: $target/$f is missing (build it first)" >&2; exit 1; }
done
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
dest=$destdir$prefix
install -d "$dest/lib/pkgconfig" "$dest/include" "$dest/bin"
install -m 0755 "$target/liboxalloc.so" "$dest/lib/liboxalloc.so.$version"
ln -sfn "liboxalloc.so.$version" "$dest/lib/$soname"
ln -sfn "$soname" "$dest/lib/liboxalloc.so"
install -m 0644 "$target/liboxalloc.a" "$dest/lib/"
install -m 0644 crates/oxalloc-capi/include/oxalloc.h "$dest/include/"
install -m 0755 "$target/oxalloc" "$dest/bin/"
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" crates/oxalloc-capi/oxalloc.pc.in > "$dest/lib/pkgconfig/oxalloc.pc"
echo "installed oxalloc $version under $dest${destdir:+ (for $prefix)}"
