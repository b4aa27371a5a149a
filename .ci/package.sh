#!/usr/bin/env bash
# Packaging: the crates a Rust user depends on by version (oxalloc, and oxalloc-core and
# oxalloc-os under it) pass `cargo package`, which builds each packaged crate on its own
# against the others (cargo's local overlay for unpublished workspace crates; it needs the
# crates.io index for libc). Their metadata is checked: description, license, readme,
# keywords, categories and the docs.rs section.
source "$(dirname "$0")/lib.sh"

crates=(oxalloc-core oxalloc-os oxalloc)
# --allow-dirty: what is checked is the packaging, also of a working tree with changes.
# Verifying reads the crates.io index; a CI run on 2026-12-02 failed here once and passed on a
# clean clone right after, so a failure is retried once, loudly (a real packaging error fails
# twice).
if ! cargo package --allow-dirty "${crates[@]/#/-p}"; then
    say "cargo package failed; retrying once in 10 s (a transient registry error fails only once)"
    sleep 10
    cargo package --allow-dirty "${crates[@]/#/-p}" || fail "cargo package ${crates[*]} (twice)"
fi
target=$(target_dir)
version=$(cargo pkgid -p oxalloc | sed 's/.*[#@]//')
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
