# Shared by the .ci/*.sh scripts (sourced, not run): strict mode, the repository root as the
# working directory, loud failures, and rustup helpers that never pass silently when a
# toolchain, target or component cannot be installed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ci_name=$(basename "$0" .sh)

# Prints a loud message and exits non-zero.
fail() {
    echo >&2
    echo "ci[$ci_name]: FAILED: $*" >&2
    echo >&2
    exit 1
}

# Prints a step, with the seconds since the script started (CI keeps no timestamps).
say() { echo "ci[$ci_name +${SECONDS}s]: $*"; }

# The Rust toolchain the workspace promises to build with (rust-version in Cargo.toml).
msrv() {
    local v
    v=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
    [ -n "$v" ] || fail "no rust-version in Cargo.toml"
    echo "$v"
}

need_rustup() {
    command -v rustup >/dev/null 2>&1 || fail "rustup is needed to install Rust toolchains, targets and components"
}

# ensure_toolchain NAME: installs the toolchain (minimal profile) unless it is there.
ensure_toolchain() {
    need_rustup
    if rustup run "$1" rustc --version >/dev/null 2>&1; then
        return
    fi
    say "installing the Rust toolchain $1"
    rustup toolchain install "$1" --profile minimal --no-self-update \
        || fail "could not install the Rust toolchain '$1' with rustup"
    rustup run "$1" rustc --version >/dev/null 2>&1 || fail "toolchain '$1' installed but rustc does not run"
}

# ensure_component TOOLCHAIN COMPONENT
ensure_component() {
    ensure_toolchain "$1"
    if rustup component list --toolchain "$1" --installed 2>/dev/null | grep -q "^$2\(-\|$\)"; then
        return
    fi
    say "installing the component $2 for $1"
    rustup component add --toolchain "$1" "$2" || fail "could not install the component '$2' for the toolchain '$1'"
}

# ensure_target TOOLCHAIN TARGET
ensure_target() {
    ensure_toolchain "$1"
    if rustup target list --toolchain "$1" --installed 2>/dev/null | grep -qx "$2"; then
        return
    fi
    say "installing the target $2 for $1"
    rustup target add --toolchain "$1" "$2" || fail "could not install the target '$2' for the toolchain '$1'"
}

# The cargo target directory the scripts build in (CARGO_TARGET_DIR if set, else target/).
target_dir() { echo "${CARGO_TARGET_DIR:-$PWD/target}"; }

# Whether clang++ builds and runs a program against LLVM's libc++ (the C++ operator tests,
# crates/oxalloc-capi/tests/cxx.rs, build operators.cpp with it too).
libcxx_works() {
    local d rc=0
    command -v clang++ >/dev/null 2>&1 || return 1
    d=$(mktemp -d)
    printf '#include <new>\n#include <string>\nint main() { return std::string("ok").size() != 2; }\n' > "$d/p.cpp"
    { clang++ -stdlib=libc++ "$d/p.cpp" -o "$d/p" && "$d/p"; } >/dev/null 2>&1 || rc=1
    rm -rf "$d"
    return $rc
}

# Installs, with apt-get, the programs the tests run (C and C++ compilers, clang with libc++,
# binutils, git, python3, sqlite3, pkg-config, valgrind) when one is missing.
ensure_test_tools() {
    local need=() tool
    # chromium: the HTML report's screenshot test (crates/oxalloc-cli/tests/report.rs, a few seconds).
    for tool in cc:gcc c++:g++ nm:binutils readelf:binutils git:git python3:python3 sqlite3:sqlite3 pkg-config:pkg-config valgrind:valgrind chromium:chromium; do
        command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool##*:}")
    done
    libcxx_works || need+=(clang libc++-dev libc++abi-dev)
    if [ ${#need[@]} -gt 0 ]; then
        say "installing ${need[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq || fail "apt-get update failed"
        apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null || fail "could not install ${need[*]} with apt-get"
    fi
    libcxx_works || fail "clang++ -stdlib=libc++ does not build and run a program (clang, libc++-dev, libc++abi-dev installed)"
}
