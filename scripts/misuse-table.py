#!/usr/bin/env python3
"""Runs the misuse programs of crates/oxalloc-capi/tests/misuse/ under several allocators and
prints a Markdown table of what each allocator does about each misuse.

    scripts/misuse-table.py [--oxalloc PATH] [--out DIR] [--no-build] [--save FILE] [--runs N] [--note TEXT]

Allocators (columns): glibc (no preload), Debian's mimalloc (libmimalloc2.0), jemalloc
(libjemalloc2), oxalloc and oxalloc with OXALLOC_SECURE=1. A missing library gives an "n/a"
column (install with: apt-get install -y libmimalloc2.0 libjemalloc2).

liboxalloc.so defaults to $CARGO_TARGET_DIR/release (or target/release), built first with
`cargo build --release -p oxalloc-capi` unless --no-build is given.

Cells:
  caught          killed by SIGABRT after printing a message (for oxalloc: a line starting with
                  "oxalloc:" that names the pointer the program printed)
  abort           killed by SIGABRT, with no message (or, for oxalloc, one not naming the pointer)
  crash (SIG in X: f)  killed by another signal; X is the object holding the faulting
                  instruction, f the nearest exported symbol (dladdr), when known
  warned          ran to the end (exit 0) but printed a diagnostic on stderr
  silent          ran to the end (exit 0), nothing detected
  n/a             the allocator lacks the function under test (exit 77)
  varies: ...     the runs (--runs, default 3) did not all end the same way
  hang            did not finish within the timeout
  other (exit N)  any other exit
Python standard library only.
"""

import argparse
import datetime
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MISUSE = ROOT / "crates/oxalloc-capi/tests/misuse"
LIBDIR = Path("/usr/lib/x86_64-linux-gnu")

# Row order (the order); programs not listed here are appended alphabetically.
ORDER = [
    "df_small", "df_medium", "df_large_256k", "df_large_8m", "df_delayed",
    "df_written_after_free", "df_written_before_free", "df_two_threads",
    "df_owner_then_thread",
    "if_stack", "if_interior_16", "if_interior_8", "if_interior_large", "if_mmap",
    "if_unallocated", "if_heap_gap", "if_garbage", "if_garbage_alias",
    "uaf_write_small", "uaf_write_large", "uaf_write_reuse", "uaf_read_small",
    "overflow_1_small", "overflow_8_small", "overflow_1_large", "overflow_8_large",
    "zero_size", "free_sized_wrong", "cxx_sized_delete", "cxx_aligned_delete",
    "us_stack", "us_interior",
]

# Same flags as tests/misuse.rs: no optimisation, so every misuse happens as written.
CFLAGS = ["-O0", "-g", "-Wall", "-pthread", "-Wno-use-after-free", "-Wno-free-nonheap-object",
          "-Wno-array-bounds", "-Wno-stringop-overflow", "-Wno-unused-result",
          "-Wno-maybe-uninitialized"]

# stderr lines that are not diagnostics about the misuse.
NOISE = [
    re.compile(r"^FAULT in "),
    re.compile(r"^oxalloc: ignoring unknown or malformed option "),
]

TIMEOUT = 20


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def compile_all(out: Path):
    out.mkdir(parents=True, exist_ok=True)
    bins = {}
    for src in sorted(MISUSE.iterdir()):
        if src.suffix not in (".c", ".cpp"):
            continue
        exe = out / src.stem
        if src.suffix == ".cpp":
            cmd = ["g++", "-std=c++17", "-fsized-deallocation", "-Wno-mismatched-new-delete"]
        else:
            cmd = ["gcc", "-std=gnu11"]
        cmd += CFLAGS + ["-I", str(MISUSE), str(src), "-o", str(exe), "-ldl"]
        sh(cmd)
        bins[src.stem] = (exe, title(src))
    names = [n for n in ORDER if n in bins] + sorted(n for n in bins if n not in ORDER)
    return [(n, *bins[n]) for n in names]


def title(src: Path) -> str:
    """The first sentence of the program's leading comment."""
    text = src.read_text()
    m = re.match(r"\s*(?:/\*(.*?)\*/|((?://[^\n]*\n)+))", text, re.S)
    body = (m.group(1) or m.group(2)) if m else ""
    body = " ".join(line.strip().lstrip("/*").strip() for line in body.splitlines())
    body = " ".join(body.split())
    end = re.search(r"\.(\s|$)", body)
    return body[: end.start()] if end else body


def oxalloc_lib(args) -> Path:
    if args.oxalloc:
        return Path(args.oxalloc).resolve()
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    if not args.no_build:
        sh(["cargo", "build", "--release", "-p", "oxalloc-capi"], cwd=ROOT)
    return (target / "release" / "liboxalloc.so").resolve()


def allocators(ox: Path):
    mi = LIBDIR / "libmimalloc.so.2"
    je = LIBDIR / "libjemalloc.so.2"
    return [
        ("glibc", None, {}),
        ("mimalloc", mi, {}),
        ("jemalloc", je, {}),
        ("oxalloc", ox, {}),
        ("oxalloc OXALLOC_SECURE=1", ox, {"OXALLOC_SECURE": "1"}),
    ]


def run(exe: Path, lib, extra_env):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MALLOC_", "OXALLOC_", "MIMALLOC_", "LD_PRELOAD"))}
    env.update(extra_env)
    if lib is not None:
        env["LD_PRELOAD"] = str(lib)
    try:
        p = subprocess.run([str(exe)], env=env, capture_output=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return {"cell": "hang", "message": "", "stdout": "", "stderr": ""}
    return classify(p.returncode, p.stdout.decode(errors="replace"),
                    p.stderr.decode(errors="replace"), lib)


def marked(stdout: str, key: str):
    return [l.split(" ", 1)[1].strip() for l in stdout.splitlines() if l.startswith(key + " ")]


def classify(rc: int, stdout: str, stderr: str, lib):
    lines = [l for l in stderr.splitlines() if l.strip()]
    diag = [l for l in lines if not any(n.search(l) for n in NOISE)]
    fault = next((l for l in lines if l.startswith("FAULT in ")), None)
    message = diag[0] if diag else ""
    is_ox = lib is not None and "oxalloc" in lib.name
    pointers = [p.lower() for p in marked(stdout, "PTR") + marked(stdout, "BLOCK")]
    if rc == -signal.SIGABRT:
        if is_ox:
            ok = any(l.startswith("oxalloc:") and l.lower().split(": ")[-1] in pointers
                     for l in diag)
            cell = "caught" if ok else "abort"
        else:
            cell = "caught" if diag else "abort"
    elif rc < 0:
        name = signal.Signals(-rc).name
        where = ""
        m = re.match(r"FAULT in (\S+) \((\S+)\)", fault or "")
        if m:
            where = " in " + os.path.basename(m.group(1))
            where += f": {m.group(2)}" if m.group(2) != "?" else ""
        cell = f"crash ({name}{where})"
        if fault:
            message = message or fault
    elif rc == 0:
        cell = "warned" if diag else "silent"
    elif rc == 77 and "NOT SUPPORTED" in stdout:
        cell = "n/a"
    else:
        cell = f"other (exit {rc})"
    return {"cell": cell, "message": message, "stdout": stdout, "stderr": stderr,
            "fault": fault or ""}


def versions(ox: Path):
    def q(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
        except OSError:
            return "?"
    glibc = q(["ldd", "--version"]).splitlines()[0] if q(["ldd", "--version"]) else "?"
    mi = q(["dpkg-query", "-W", "-f=${Version}", "libmimalloc2.0"]) or "not installed"
    je = q(["dpkg-query", "-W", "-f=${Version}", "libjemalloc2"]) or "not installed"
    commit = q(["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"])
    return [f"glibc: {glibc}", f"mimalloc: libmimalloc2.0 {mi}", f"jemalloc: libjemalloc2 {je}",
            f"oxalloc: {ox} (commit {commit[:100]})",
            f"compilers: {q(['gcc', '--version']).splitlines()[0]}"]


def esc(s: str) -> str:
    return s.replace("|", "\\|").replace("`", "'")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    ap.add_argument("--oxalloc", help="path of liboxalloc.so (default: release build)")
    ap.add_argument("--out", help="directory for the compiled programs")
    ap.add_argument("--no-build", action="store_true", help="do not run cargo build")
    ap.add_argument("--save", help="also write the Markdown to this file")
    ap.add_argument("--note", help="a sentence to add under the versions (e.g. how liboxalloc.so "
                                   "was built)")
    ap.add_argument("--runs", type=int, default=3,
                    help="runs of each program under each allocator (default 3); differing "
                         "outcomes are all shown")
    args = ap.parse_args()

    ox = oxalloc_lib(args)
    if not ox.exists():
        sys.exit(f"{ox} is missing: build it (cargo build --release -p oxalloc-capi)")
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    out = Path(args.out) if args.out else target / "misuse-table"
    progs = compile_all(out)
    allocs = allocators(ox)

    results = {}
    for name, exe, _ in progs:
        for alloc, lib, env in allocs:
            if lib is not None and not lib.exists():
                results[name, alloc] = {"cell": "n/a (not installed)", "message": ""}
                continue
            runs = [run(exe, lib, env) for _ in range(args.runs)]
            r = dict(runs[0])
            cells = [x["cell"] for x in runs]
            if len(set(cells)) > 1:
                # Outcomes that depend on addresses (ASLR) or random keys: show them all.
                counts = {c: cells.count(c) for c in sorted(set(cells), key=lambda c: (-cells.count(c), c))}
                r["cell"] = "varies: " + ", ".join(f"{c} ×{n}" for c, n in counts.items())
                r["message"] = " / ".join(dict.fromkeys(x["message"] for x in runs if x["message"]))
            results[name, alloc] = r

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cmd = " ".join(shlex.quote(a) for a in ["scripts/misuse-table.py"] + sys.argv[1:])
    if "CARGO_TARGET_DIR" in os.environ:
        cmd = f"CARGO_TARGET_DIR={shlex.quote(os.environ['CARGO_TARGET_DIR'])} {cmd}"
    md = ["# Misuse detection: oxalloc against other allocators", "",
          f"Measured {now} with `{cmd}` (programs in this directory, compiled with "
          f"`gcc -O0`/`g++ -O0 -fsized-deallocation`); each program ran {args.runs} times under "
          f"each allocator, and a cell shows every outcome seen (\"varies\").", ""]
    md += [f"- {v}" for v in versions(ox)]
    if args.note:
        md += ["", args.note]
    md += ["", "Cells: **caught** = killed by SIGABRT with a message (for oxalloc: a line "
           "`oxalloc: ...: 0x...` naming the pointer the program printed); **abort** = SIGABRT "
           "without such a message; **crash (SIG in X: f)** = killed by another signal, X the "
           "object holding the faulting instruction and f the nearest exported symbol; **warned** = ran to the end but printed a "
           "diagnostic; **silent** = ran to the end, nothing detected; **n/a** = function not "
           "provided.", ""]
    header = ["misuse", "program"] + [a for a, _, _ in allocs]
    md.append("| " + " | ".join(header) + " |")
    md.append("|" + "---|" * len(header))
    for name, _, ttl in progs:
        cells = [results[name, a]["cell"] for a, _, _ in allocs]
        md.append(f"| {esc(ttl)} | `{name}` | " + " | ".join(cells) + " |")
    counts = []
    for a, _, _ in allocs:
        n = sum(results[name, a]["cell"] == "caught" for name, _, _ in progs)
        counts.append(f"{n}/{len(progs)}")
    md.append("| **caught** | | " + " | ".join(counts) + " |")
    md += ["", "## Messages", "",
           "First diagnostic line on stderr (or the fault location), per program and allocator; "
           "notable program output (SIZE, REUSE, DUPLICATE, READ) after it. Pointers differ "
           "between runs (ASLR).", ""]
    md.append("| program | allocator | outcome | first line / notes |")
    md.append("|---|---|---|---|")
    for name, _, _ in progs:
        for a, _, _ in allocs:
            r = results[name, a]
            notes = [l for l in r.get("stdout", "").splitlines()
                     if l.split(" ")[0] in ("SIZE", "DUPLICATE", "READ", "REUSE")]
            detail = "; ".join(x for x in [r["message"][:160]] + notes if x)
            if detail or r["cell"] not in ("silent",):
                md.append(f"| `{name}` | {a} | {r['cell']} | {esc(detail)} |")
    text = "\n".join(md) + "\n"
    print(text, end="")
    if args.save:
        Path(args.save).write_text(text)


if __name__ == "__main__":
    main()
