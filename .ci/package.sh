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
# failure after the fetch is a packaging error. CI runs on 2026-12-02 and 2026-12-03 failed
# in this step where a clean clone here passed; the part of their output that was kept did
# not say why, and a registry read is the one thing here that differs between machines.
if ! cargo fetch; then
    say "cargo fetch failed; retrying once in 15 s (a transient registry error fails only once)"
    sleep 15
    cargo fetch || fail "cargo fetch could not read the crates.io index (twice)"
fi
# --allow-dirty: what is checked is the packaging, also of a working tree with changes.
cargo package --offline --allow-dirty "${crates[@]/#/-p}" || fail "cargo package ${crates[*]}"
target=$(target_dir)
version=$(cargo pkgid --offline -p oxalloc | sed 's/.*[#@]//')
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
