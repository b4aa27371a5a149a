#!/usr/bin/env bash
# Packaging: the crates a Rust user depends on by version (oxalloc, and oxalloc-core and
# oxalloc-os under it) pass `cargo package`, which builds each packaged crate on its own
# against the others (cargo's local overlay for unpublished workspace crates). Their
# metadata is checked: description, license, readme, keywords, categories and the docs.rs
# section.
source "$(dirname "$0")/lib.sh"

crates=(oxalloc-core oxalloc-os oxalloc)
# The step's one network access, the crates.io index, is read once by `cargo fetch`
# (retried once, loudly); `cargo package` then runs offline against what was fetched, so a
# failure after the fetch is a packaging error.
if ! cargo fetch; then
    say "cargo fetch failed; retrying once in 15 s (a transient registry error fails only once)"
    sleep 15
    cargo fetch || fail "cargo fetch could not read the crates.io index (twice)"
fi
# cargo verifies each packaged crate against the others through a local overlay registry and
# extracts them under $CARGO_HOME/registry/src/-<hash of the overlay's path>/NAME-VERSION. It
# does not extract again when that folder exists, so a clone at the same path as an earlier run
# (as CI's is) builds oxalloc-os against an older oxalloc-core: stop 20's and 21's CI failed so
# (E0432, an item the old copy lacks). These crates are not on crates.io, so every extracted
# copy of them is such a leftover and is removed first. For the same reason (a registry crate
# is taken as never changing, so its build is not redone) the verification builds in a target
# folder of its own that starts empty: in the shared one, a build of an earlier oxalloc-core
# from the overlay would be reused.
version=$(cargo pkgid --offline -p oxalloc | sed 's/.*[#@]//')
for c in "${crates[@]}"; do
    rm -rf "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"$c-$version"
done
target="$(target_dir)/ci-package"
rm -rf "$target"
# --allow-dirty: what is checked is the packaging, also of a working tree with changes.
cargo package --offline --allow-dirty --target-dir "$target" "${crates[@]/#/-p}" \
    || fail "cargo package ${crates[*]}"
for c in "${crates[@]}"; do
    manifest=$(tar -xzOf "$target/package/$c-$version.crate" "$c-$version/Cargo.toml") \
        || fail "$c-$version.crate has no Cargo.toml"
    for key in description license readme keywords categories; do
        grep -q "^$key = " <<<"$manifest" || fail "$c: the packaged manifest has no $key"
    done
    grep -q '^\[package.metadata.docs.rs\]' <<<"$manifest" || fail "$c: no [package.metadata.docs.rs]"
    files=$(tar -tzf "$target/package/$c-$version.crate")
    grep -qx "$c-$version/README.md" <<<"$files" || fail "$c: README.md is not packaged"
done
say "ok"
