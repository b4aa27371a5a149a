#!/usr/bin/env python3
"""oxalloc's benchmark runner: every workload under glibc, the Debian allocators (mimalloc 2.0,
jemalloc, tcmalloc), the crates.io-built peers (mimalloc 2.x, mimalloc 3.x, snmalloc) and
oxalloc, interleaved run by run, several runs each; reports median wall time, CPU time, peak RSS
and (for the C workloads) final RSS per allocator as ratios to a baseline (Debian's mimalloc
unless --baseline says otherwise), with geometric means, plus oxalloc against the best of the
strong peers on each workload, as a Markdown table and an SVG chart, and rewrites the results
section of BENCHMARKS.md.

    python3 bench/run.py                 # the full suite, 5 runs
    python3 bench/run.py --runs 3 --only larson,xmalloc
    python3 bench/run.py --runs 1 --only bulk,cfrac --no-write    # a smoke run
    python3 bench/run.py --callgrind     # also instructions per malloc/free pair

Competitors: Debian's libmimalloc2.0, libjemalloc2 and libtcmalloc-minimal4, preloaded with
LD_PRELOAD (`--install` installs the missing ones with apt-get, as root); and the peers under
bench/peers/, small Rust cdylib crates that build mimalloc and snmalloc from the crates.io crates
that vendor their sources (versions pinned by each peer's Cargo.lock), which the runner builds
with `cargo build --release` in each peer's directory (`--no-peers` skips them). A missing
allocator or a peer that fails to build is reported and left out. Every run's standard output
must match the first run's, so a wrong answer fails the benchmark instead of winning it.
"""

import argparse
import json
import math
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PEERS = BENCH / "peers"
WORK = BENCH / "results" / "work"
LIBDIR = Path("/usr/lib/x86_64-linux-gnu")


class Allocator:
    """One column: the system allocator, a Debian package, a peer built from crates.io, or oxalloc."""

    def __init__(self, name, kind, lib=None, package=None, peer=None, env=None):
        self.name, self.kind, self.package, self.peer = name, kind, package, peer
        self.lib = PEERS / peer / "target" / "release" / f"libpeer_{peer}.so" if peer else lib
        self.env = env or {}  # extra environment of this column (--compare NAME=PATH,VAR=VALUE)


ALLOCATORS = {a.name: a for a in (
    Allocator("glibc", "system"),
    Allocator("mimalloc-2.0", "debian", LIBDIR / "libmimalloc.so.2", "libmimalloc2.0"),
    Allocator("jemalloc", "debian", LIBDIR / "libjemalloc.so.2", "libjemalloc2"),
    Allocator("tcmalloc", "debian", LIBDIR / "libtcmalloc_minimal.so.4", "libtcmalloc-minimal4"),
    Allocator("mimalloc-2.x", "peer", peer="mimalloc2"),
    Allocator("mimalloc-3.x", "peer", peer="mimalloc3"),
    Allocator("snmalloc", "peer", peer="snmalloc"),
    Allocator("oxalloc", "ours", ROOT / "target" / "release" / "liboxalloc.so"),
)}
BASELINE = "mimalloc-2.0"          # ratios are to this one (--baseline changes it)
STRONG = ("mimalloc-2.x", "mimalloc-3.x", "snmalloc")  # "oxalloc vs the best of" these
THREADS = (1, 2, 4)
THREADS_OVERSUBSCRIBED = (1, 2, 4, 8)  # for the cross-thread workloads: 8 threads on 2 cores
# The Rust workload has its global allocator compiled in for oxalloc and mimalloc 3.x (the
# `mimalloc` crate, on the same libmimalloc-sys as the mimalloc-3.x peer); every other allocator
# replaces the system allocator of churn-system by preloading.
RUST_BINARIES = {"oxalloc": "churn-oxalloc", "mimalloc-3.x": "churn-mimalloc"}


class Workload:
    """One benchmark: a command per allocator, and what it models."""

    def __init__(self, name, model, stresses, argv, threads=None, stdin=None, rust=False, phases=()):
        self.name, self.model, self.stresses = name, model, stresses
        self.argv, self.threads, self.stdin, self.rust = argv, threads, stdin, rust
        self.phases = phases  # names of the "phase NAME SECONDS" lines it prints on stderr

    @property
    def label(self):
        return self.name if self.threads is None else f"{self.name} t={self.threads}"

    def command(self, allocator):
        """The argv and extra environment to run this workload under `allocator`."""
        argv = [str(a) for a in self.argv]
        preload = ALLOCATORS[allocator].lib
        if self.rust:
            binary = RUST_BINARIES.get(allocator, "churn-system")
            argv[0] = str(BENCH / "rust" / "target" / "release" / binary)
            if allocator in RUST_BINARIES:
                preload = None
        env = {"LD_PRELOAD": str(preload)} if preload else {}
        env.update(ALLOCATORS[allocator].env)
        return argv, env


def workloads(python):
    c = lambda name: WORK / name  # noqa: E731  compiled C workloads
    w = [
        Workload("alloc-test", "alloc-test", "one thread, random small sizes, 200k live blocks",
                 [c("alloc_test"), 5]),
        Workload("cfrac", "cfrac", "one thread, big-number temporaries of 16-40 B, some long-lived relations",
                 [c("cfrac"), 300000]),
        Workload("bulk", "bulk alloc/free", "1M blocks of 16-256 B allocated, then freed in random order (2 rounds)",
                 [c("bulk"), 1000000, 2], phases=("alloc", "free")),
    ]
    for t in THREADS_OVERSUBSCRIBED:
        over = t > max(THREADS)  # t=8 does half the per-thread work of the others
        if not over:
            w += [
                Workload("malloc-simple", "glibc bench-malloc-simple", "batches of 100 blocks allocated then freed, 16 B-4 KiB",
                         [c("malloc_simple"), t, 6000], t),
            ]
        w += [
            Workload("larson", "larson", "server: blocks freed by the next generation of threads",
                     [c("larson"), t, 8000000 if over else 16000000], t),
        ]
        if not over:
            w += [
                Workload("larson-sized", "larson with sized free", "as larson, freeing with the size (free_sized/sdallocx)",
                         [c("larson"), t, 16000000, "sized"], t),
            ]
        w += [
            Workload("xmalloc", "xmalloc-test", f"{t} producer(s) allocate, {t} consumer(s) free",
                     [c("xmalloc"), t, 1000000 if over else 2000000], t),
            Workload("rptest", "rptest", "rings of varying sizes between threads; each frees what it receives",
                     [c("rptest"), t, 1600000 // t], t),
        ]
        if not over:
            w += [
                Workload("cache-scratch", "cache-scratch", "passive false sharing: handed-over objects",
                         [c("cache_scratch"), t, 200000], t),
                Workload("cache-thrash", "cache-thrash", "active false sharing: neighbouring objects",
                         [c("cache_scratch"), t, 200000, "active"], t),
            ]
        w += [
            Workload("mstress", "mstress", "thread churn with cross-thread frees",
                     [c("mstress"), t, 50 if over else 100], t),
            Workload("mleak", "mleak", "exited threads' memory freed later by another thread",
                     [c("mleak"), t, 80 // t], t),
        ]
        if not over:
            w += [
                Workload("rust-churn", "Rust collections churn", "HashMap/BTreeMap/Vec/String churn, ring of threads",
                         ["churn", t, 150], t, rust=True),
            ]
    w += [
        Workload("malloc-large", "malloc-large", "blocks of 5-25 MiB, live set of 20",
                 [c("malloc_large"), 10000]),
        Workload("realloc-growth", "string/vector builders", "realloc growth, in place and across classes",
                 [c("realloc_growth"), 6000]),
        Workload("python3", "python3 script", "dicts, lists, strings and JSON in CPython",
                 [python, BENCH / "programs" / "alloc_heavy.py"]),
        Workload("sqlite3", "sqlite3 shell", "200k-row table: insert, index, query, update",
                 ["sqlite3", ":memory:"], stdin=BENCH / "programs" / "bench.sql"),
        Workload("gcc", "gcc -O2", "compiling a generated 400-function C file",
                 ["gcc", "-O2", "-c", WORK / "gcc_input.c", "-o", WORK / "gcc_input.o"]),
    ]
    return w


def sh(cmd, **kw):
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kw)


def build():
    WORK.mkdir(parents=True, exist_ok=True)
    sh(["cargo", "build", "--release", "--quiet", "-p", "oxalloc-capi"], cwd=ROOT)
    sh(["cargo", "build", "--release", "--quiet", "--manifest-path", BENCH / "rust" / "Cargo.toml"], cwd=ROOT)
    for src in sorted((BENCH / "workloads").glob("*.c")) + [BENCH / "tools" / "measure.c"]:
        sh(["gcc", "-O2", "-pthread", src, "-o", WORK / src.stem, "-ldl"])
    # gcc's input: enough functions for the optimiser to allocate a lot.
    with open(WORK / "gcc_input.c", "w") as f:
        f.write("#include <string.h>\n")
        for i in range(400):
            f.write(f"struct s{i} {{ int a[{i % 13 + 1}]; double d; }};\n"
                    f"int f{i}(struct s{i} *p, int n) {{ int r = {i}; for (int k = 0; k < n; k++) "
                    f"{{ r += p->a[k % {i % 13 + 1}] * (k ^ {i}); if (r > {i * 7}) r -= (int)p->d; }} "
                    f"switch (n & 7) {{ case 1: r *= 3; break; case 2: r ^= {i}; break; default: r += n; }} return r; }}\n")


def build_peers(names):
    """`cargo build --release --locked` in each peer's directory (its own workspace and target
    directory; its .cargo/config.toml applies), all at once (each compiles one C or C++ file).
    Returns the names that failed, each reported loudly; the others' libraries exist afterwards."""
    started, jobs = time.time(), {}
    for name in names:
        d = PEERS / ALLOCATORS[name].peer
        cmd = ["cargo", "build", "--release", "--locked", "--quiet", "--target-dir", str(d / "target")]
        print(f"+ (cd {d.relative_to(ROOT)} && {' '.join(cmd)})", flush=True)
        try:
            jobs[name] = subprocess.Popen(cmd, cwd=d, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        except OSError as e:
            jobs[name] = e
    failed = []
    for name, job in jobs.items():
        a = ALLOCATORS[name]
        if isinstance(job, OSError):
            out, code = str(job), -1
        else:
            try:
                out, _ = job.communicate(timeout=1800)
                code = job.returncode
            except subprocess.TimeoutExpired:
                job.kill()
                out, code = job.communicate()[0] + "\n(timed out after 1800 s)", -1
        if code == 0 and a.lib.exists():
            continue
        failed.append(name)
        print(f"\n*** PEER BUILD FAILED: {name} (cargo build --release in bench/peers/{a.peer} exited {code}); "
              f"{name} is LEFT OUT of this run ***", flush=True)
        for line in out.strip().splitlines()[-15:]:
            print(f"    {line}", flush=True)
        print(flush=True)
    if time.time() - started > 5:
        print(f"  peers built in {time.time() - started:.0f} s", flush=True)
    return failed


def find_allocators(install, wanted):
    present, missing = [], []
    updated = False
    for name in wanted:
        a = ALLOCATORS[name]
        if a.lib is None or a.lib.exists():
            present.append(name)
            continue
        if install and a.package and os.geteuid() == 0:
            apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            if not updated:
                subprocess.run(["apt-get", "update", "-qq"], check=False, env=apt_env)
                updated = True
            subprocess.run(["apt-get", "install", "-y", "-qq", a.package], check=False, env=apt_env)
            if a.lib.exists():
                present.append(name)
                continue
        missing.append(name)
    for name in missing:
        a = ALLOCATORS[name]
        hint = {"debian": f" (apt-get install {a.package}, or run with --install)",
                "peer": f" (cargo build --release in bench/peers/{a.peer})",
                "ours": " (cargo build --release)"}.get(a.kind, "")
        print(f"MISSING allocator {name}: {a.lib} not found{hint}; left out", flush=True)
    return present, missing


def _run(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def peer_version(a):
    """The crate and the upstream allocator version a peer was built from, read from the
    crate sources Cargo resolved for the peer's Cargo.lock."""
    out = _run(["cargo", "metadata", "--format-version", "1", "--offline", "--locked",
                "--manifest-path", str(PEERS / a.peer / "Cargo.toml")])
    try:
        meta = json.loads(out)
    except ValueError:
        return {"text": "unknown (cargo metadata failed)"}
    features = {n["id"]: n.get("features", []) for n in meta.get("resolve", {}).get("nodes", [])}
    for pkg in meta["packages"]:
        src = Path(pkg["manifest_path"]).parent
        if pkg["name"] == "libmimalloc-sys":
            series = "v2" if "v2" in features.get(pkg["id"], []) else "v3"
            header = (src / "c_src" / "mimalloc" / series / "include" / "mimalloc.h").read_text(errors="replace")
            m = re.search(r"#define MI_MALLOC_VERSION\s+(\d+)", header)
            v = int(m.group(1)) if m else 0
            upstream = f"mimalloc {v // 10000}.{v // 100 % 100}.{v % 100}" if m else "mimalloc (version unknown)"
            return {"crate": f"libmimalloc-sys {pkg['version']}", "upstream": upstream,
                    "text": f"{upstream} (crates.io libmimalloc-sys {pkg['version']}, {series} sources)"}
        if pkg["name"] == "snmalloc-sys":
            try:
                sha = json.loads((src / ".cargo_vcs_info.json").read_text())["git"]["sha1"][:12]
            except (OSError, ValueError, KeyError):
                sha = "unknown"
            upstream = f"snmalloc at commit {sha}"
            return {"crate": f"snmalloc-sys {pkg['version']}", "upstream": upstream,
                    "text": f"{upstream} (crates.io snmalloc-sys {pkg['version']}, which is published from "
                            f"snmalloc's own repository and vendors its sources)"}
    return {"text": "unknown"}


def allocator_versions(allocators):
    versions = {}
    for name in allocators:
        a = ALLOCATORS[name]
        if a.kind == "system":
            libc = os.confstr("CS_GNU_LIBC_VERSION") if "CS_GNU_LIBC_VERSION" in os.confstr_names else "glibc"
            versions[name] = {"text": f"{libc} (the system allocator)"}
        elif a.kind == "debian":
            v = _run(["dpkg-query", "-W", "-f", "${Version}", a.package]) or "unknown"
            versions[name] = {"package": a.package, "text": f"Debian {a.package} {v}"}
        elif a.kind == "peer":
            versions[name] = peer_version(a)
        elif a.kind == "compare":
            extra = "".join(f" with {k}={v}" for k, v in a.env.items())
            versions[name] = {"text": f"preloaded from {a.lib}{extra}"}
        else:
            rev = _run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"]) or "unknown"
            versions[name] = {"text": f"this tree, commit {rev}"}
    return versions


PHASE_RE = re.compile(r"^phase (\S+) ([0-9.]+)$", re.M)
FINAL_RSS_RE = re.compile(r"^final-rss (\d+)$", re.M)


def measure(workload, allocator):
    """Runs one workload through the `measure` launcher: wall time, CPU time (user + system,
    including the program's own children) and peak RSS (largest of the process and its children);
    plus what the workload itself reports on stderr: phase times and its final RSS."""
    argv, extra = workload.command(allocator)
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "OXALLOC_REPORT_FILE")}
    env.update({k: v for k, v in extra.items() if k != "LD_PRELOAD"})
    stdin = open(workload.stdin, "rb") if workload.stdin else subprocess.DEVNULL
    report = WORK / "measure.txt"
    out_path, err_path = WORK / "stdout.txt", WORK / "stderr.txt"
    with open(out_path, "wb") as out_f, open(err_path, "wb") as err_f:
        subprocess.run([str(WORK / "measure"), str(report), extra.get("LD_PRELOAD", "-"), *argv],
                       env=env, stdin=stdin, stdout=out_f, stderr=err_f, cwd=WORK, check=True, timeout=600)
    if workload.stdin:
        stdin.close()
    status, wall, cpu, rss_kib = report.read_text().split()
    err = err_path.read_text(errors="replace")
    if int(status) != 0:
        raise RuntimeError(f"{workload.label} under {allocator} exited {status}: {err[-800:]}")
    final = FINAL_RSS_RE.findall(err)
    return {"wall": float(wall), "cpu": float(cpu), "rss": int(rss_kib) * 1024,
            "final": int(final[-1]) * 1024 if final else None,
            "phases": {k: float(v) for k, v in PHASE_RE.findall(err)}, "out": out_path.read_bytes()}


def geomean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


NAN = float("nan")
METRICS = ("wall", "cpu", "rss", "final")


def _median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else NAN


def summarise(results, allocators, loads, baseline):
    """One row per workload (and one more per timed phase, wall time only): medians, ratios to
    the baseline, and oxalloc against the best strong peer present. Phase rows stay out of the
    geometric means (the workload's own row counts once)."""
    strong = [a for a in STRONG if a in allocators]
    rows = []

    def row(label, w, med, phase=None):
        base = med.get(baseline)
        ratio = {a: {m: (med[a][m] / base[m] if base and base[m] == base[m] and base[m] else NAN) for m in METRICS}
                 for a in allocators}
        vs = {}
        for m in METRICS:
            vals = [(med[a][m], a) for a in strong if med[a][m] == med[a][m]]
            ox = med["oxalloc"][m] if "oxalloc" in med else NAN
            if vals and ox == ox:
                best, who = min(vals)
                vs[m] = {"ratio": ox / best if best else NAN, "best": who}
        rows.append({"workload": label, "model": w.model, "stresses": w.stresses, "phase": phase,
                     "median": med, "ratio": ratio, "vs_strong": vs})

    for w in loads:
        r = results[w.label]
        med = {a: {m: _median(run[m] for run in r[a]) for m in METRICS} for a in allocators}
        row(w.label, w, med)
        for ph in w.phases:
            pmed = {a: {m: (_median(run["phases"].get(ph) for run in r[a]) if m == "wall" else NAN) for m in METRICS}
                    for a in allocators}
            row(f"{w.label} ({ph} phase)", w, pmed, phase=ph)
    main_rows = [r for r in rows if not r["phase"]]
    geo = {a: {m: geomean([r["ratio"][a][m] for r in main_rows]) for m in METRICS} for a in allocators}
    geo_vs = {m: geomean([r["vs_strong"][m]["ratio"] for r in main_rows if m in r["vs_strong"]]) for m in METRICS}
    return rows, geo, geo_vs


def no_nan(x):
    """The same data with NaN (no value) as null, so latest.json is strict JSON."""
    if isinstance(x, float) and x != x:
        return None
    if isinstance(x, dict):
        return {k: no_nan(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [no_nan(v) for v in x]
    return x


def fmt_ratio(x, best=False):
    if x != x:  # NaN
        return "-"
    s = f"{x:.2f}"
    return f"**{s}**" if best else s


def markdown(rows, geo, geo_vs, allocators, meta, baseline):
    lines = []
    versions = meta.get("versions", {})
    if versions:
        lines.append("### Allocators\n")
        lines.append("| allocator | version |")
        lines.append("|---|---|")
        for a in allocators:
            lines.append(f"| {a} | {versions.get(a, {}).get('text', '?')} |")
        lines.append("")
    strong = [a for a in STRONG if a in allocators]
    vs_title = "oxalloc ÷ best of " + "/".join(strong) if strong and "oxalloc" in allocators else None
    titles = {"wall": "Wall time", "cpu": "CPU time (user + system)", "rss": "Peak RSS",
              "final": "Final RSS (resident at the end, after the last free; reported by the C workloads)"}
    for metric in METRICS:
        shown = [r for r in rows if any(r["median"][a][metric] == r["median"][a][metric] for a in allocators)]
        if not shown:
            continue
        lines.append(f"### {titles[metric]}, as a ratio to {baseline} (lower is better; best in bold)\n")
        lines.append("| workload | " + " | ".join(allocators) + f" | {baseline} median |" + (f" {vs_title} |" if vs_title else ""))
        lines.append("|---|" + "---:|" * (len(allocators) + 1 + (1 if vs_title else 0)))
        for row in shown:
            vals = {a: row["ratio"][a][metric] for a in allocators}
            finite = [v for v in vals.values() if v == v]
            best = min(finite) if finite else None
            med = row["median"][baseline][metric] if baseline in allocators else NAN
            med_s = "-" if med != med else (f"{med * 1000:.0f} ms" if metric in ("wall", "cpu") else f"{med / 2**20:.1f} MiB")
            cells = " | ".join(fmt_ratio(vals[a], vals[a] == best) for a in allocators)
            vs = row["vs_strong"].get(metric)
            vs_s = (f" {vs['ratio']:.2f} ({vs['best']}) |" if vs else " - |") if vs_title else ""
            name = f"_{row['workload']}_" if row["phase"] else row["workload"]
            lines.append(f"| {name} | {cells} | {med_s} |{vs_s}")
        vs_geo = (f" {fmt_ratio(geo_vs[metric])} |" if vs_title else "")
        lines.append("| **geometric mean** | " + " | ".join(fmt_ratio(geo[a][metric]) for a in allocators) + " | |" + vs_geo)
        lines.append("")
        if any(r["phase"] for r in shown):
            lines.append("Rows in italics are phases timed inside the workload (not in the geometric mean).\n")
    ox = "oxalloc"
    if ox in allocators and len(allocators) > 1:
        worst = []
        for row in rows:
            if row["phase"]:
                continue
            peers = [row["median"][a]["wall"] for a in allocators if a != ox]
            worst.append((row["median"][ox]["wall"] / min(peers), row["workload"]))
        worst.sort(reverse=True)
        lines.append(f"oxalloc against the best peer on each workload (wall time): worst "
                     + ", ".join(f"{w} {x:.2f}x" for x, w in worst[:3]) + ".\n")
        if vs_title:
            lines.append(f"oxalloc against the best of {'/'.join(strong)} (geometric mean over workloads): "
                         f"wall {geo_vs['wall']:.2f}, CPU {geo_vs['cpu']:.2f}, peak RSS {geo_vs['rss']:.2f}"
                         + (f", final RSS {geo_vs['final']:.2f}" if geo_vs['final'] == geo_vs['final'] else "") + ".\n")
    if meta.get("left_out"):
        lines.append("Left out of this run: " + ", ".join(f"{a} ({why})" for a, why in meta["left_out"].items()) + ".\n")
    lines.append(f"{meta['runs']} runs per workload and allocator, interleaved; medians. Machine: {meta['machine']}. "
                 f"Date: {meta['date']}. Command: `{meta['command']}`."
                 + (f" oxalloc, the peers and the workloads built with {meta['toolchain']}." if meta.get("toolchain") else "") + "\n")
    return "\n".join(lines)


COLORS = {"glibc": "#9e9e9e", "mimalloc-2.0": "#1f77b4", "jemalloc": "#ff7f0e", "tcmalloc": "#2ca02c",
          "mimalloc-2.x": "#17becf", "mimalloc-3.x": "#9467bd", "snmalloc": "#8c564b", "oxalloc": "#d62728"}


def svg_chart(rows, geo, allocators, path, baseline):
    """Grouped horizontal bars of wall-time and RSS ratios to the baseline, on a log scale."""
    rows = [r for r in rows if not r["phase"]]
    bar_h, gap, label_w, panel_w = 5, 6, 150, 330
    group_h = bar_h * len(allocators) + gap
    height = 60 + group_h * (len(rows) + 1) + 30
    width = label_w + 2 * panel_w + 60
    lo, hi = 0.125, 8.0
    def x_of(v, x0):
        v = min(max(v, lo), hi)
        return x0 + (math.log2(v) - math.log2(lo)) / (math.log2(hi) - math.log2(lo)) * (panel_w - 20)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="10">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="10" y="16" font-size="13" font-weight="bold">oxalloc benchmarks: ratio to {baseline} (log scale, lower is better)</text>']
    for i, a in enumerate(allocators):
        out.append(f'<rect x="{10 + i * 90}" y="26" width="10" height="10" fill="{COLORS.get(a, "#000")}"/>'
                   f'<text x="{24 + i * 90}" y="35">{a}</text>')
    for p, (metric, title) in enumerate((("wall", "wall time"), ("rss", "peak RSS"))):
        x0 = label_w + p * (panel_w + 30)
        top = 50
        out.append(f'<text x="{x0}" y="{top}" font-weight="bold">{title}</text>')
        for tick in (0.125, 0.25, 0.5, 1, 2, 4, 8):
            x = x_of(tick, x0)
            out.append(f'<line x1="{x:.1f}" y1="{top + 4}" x2="{x:.1f}" y2="{height - 24}" stroke="{"#000" if tick == 1 else "#ddd"}"/>'
                       f'<text x="{x:.1f}" y="{height - 10}" text-anchor="middle">{tick:g}x</text>')
        entries = rows + [{"workload": "geometric mean", "ratio": {a: geo[a] for a in allocators}}]
        for r, row in enumerate(entries):
            y = top + 8 + r * group_h
            if p == 0:
                weight = "bold" if row["workload"] == "geometric mean" else "normal"
                out.append(f'<text x="{label_w - 6}" y="{y + group_h / 2}" text-anchor="end" font-weight="{weight}">{row["workload"]}</text>')
            for i, a in enumerate(allocators):
                v = row["ratio"][a][metric]
                if v != v:
                    continue
                x1, x2 = x_of(1.0, x0), x_of(v, x0)
                out.append(f'<rect x="{min(x1, x2):.1f}" y="{y + i * bar_h}" width="{max(abs(x2 - x1), 1):.1f}" height="{bar_h - 1}" fill="{COLORS.get(a, "#000")}"/>')
    out.append("</svg>")
    path.write_text("\n".join(out))


def callgrind_pairs(allocators):
    """Instructions per malloc/free pair (32 bytes, 64 live), from two runs of different length."""
    if not shutil.which("valgrind"):
        print("MISSING valgrind: no instruction counts", flush=True)
        return {}
    counts = {}
    for a in allocators:
        lib = ALLOCATORS[a].lib
        totals, failed = [], None
        for rounds in (2000, 12000):
            env = {**os.environ}
            cmd = ["valgrind", "--tool=callgrind", "--trace-children=yes", f"--callgrind-out-file={WORK}/cg.%p.out", "/usr/bin/env"]
            if lib:
                cmd.append(f"LD_PRELOAD={lib}")
            cmd += [f"{k}={v}" for k, v in ALLOCATORS[a].env.items()]
            cmd += [str(WORK / "pair"), str(rounds)]
            r = subprocess.run(cmd, env=env, capture_output=True, text=True)
            found = re.findall(r"Collected : (\d+)", r.stderr)
            for f in WORK.glob("cg.*.out"):
                f.unlink()
            if r.returncode != 0 or not found or f"pair: {rounds * 64} pairs" not in r.stdout:
                # e.g. snmalloc, which cannot reserve its address space under valgrind
                why = next((line for line in r.stdout.splitlines() + r.stderr.splitlines()
                            if line.strip() and not line.startswith("==")), f"exit {r.returncode}")
                failed = f"{why.strip()[:120]} (exit {r.returncode})"
                break
            totals.append(int(found[-1]))
        if failed:
            print(f"callgrind: {a} does not run under valgrind: {failed}; no instruction count", flush=True)
            continue
        counts[a] = (totals[1] - totals[0]) / (10000 * 64)
    # The loop itself: the same program with malloc/free never called is not possible, so the
    # figure includes the benchmark loop's few instructions, equally for every allocator.
    return counts


def update_benchmarks_md(table, pairs, chart_name):
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n\n<!-- results:begin -->\n<!-- results:end -->\n"
    block = [f"![benchmark chart](bench/results/{chart_name})\n", table]
    if pairs:
        block.append("### Instructions per malloc/free pair (callgrind, 32-byte blocks, 64 live; includes the loop)\n")
        block.append("| " + " | ".join(pairs) + " |")
        block.append("|" + "---:|" * len(pairs))
        block.append("| " + " | ".join(f"{v:.1f}" for v in pairs.values()) + " |\n")
        block.append("Command: `python3 bench/run.py --callgrind` (bench/workloads/pair.c).\n")
    new = "<!-- results:begin -->\n" + "\n".join(block) + "\n<!-- results:end -->"
    text = re.sub(r"<!-- results:begin -->.*<!-- results:end -->", lambda _: new, text, flags=re.S)
    path.write_text(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="runs per workload and allocator (default 5)")
    ap.add_argument("--only", help="comma-separated workload names to run")
    ap.add_argument("--allocators", help="comma-separated allocators to run (default: all of " + ",".join(ALLOCATORS) + ")")
    ap.add_argument("--baseline", default=BASELINE, help=f"the allocator ratios are to (default {BASELINE}; "
                    "if it is missing, the first present of mimalloc-2.x, mimalloc-3.x, glibc)")
    ap.add_argument("--install", action="store_true", help="apt-get install missing Debian competitors")
    ap.add_argument("--no-peers", action="store_true", help="neither build nor run the crates.io peers (bench/peers/)")
    ap.add_argument("--callgrind", action="store_true", help="also count instructions per malloc/free pair")
    ap.add_argument("--no-build", action="store_true", help="use what is already built (oxalloc, workloads, peers)")
    ap.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md and bench/results alone (results go to bench/results/work)")
    ap.add_argument("--compare", action="append", default=[], metavar="NAME=PATH[,VAR=VALUE...]",
                    help="also run a preloaded library under the column NAME, e.g. an older "
                         "liboxalloc.so built from another commit, with extra environment "
                         "variables if given (e.g. oxalloc-secure=target/release/liboxalloc.so,"
                         "OXALLOC_SECURE=1) (repeatable)")
    args = ap.parse_args()
    for spec in args.compare:
        name, _, rest = spec.partition("=")
        path, *extra = rest.split(",")
        env = dict(e.split("=", 1) for e in extra if "=" in e)
        if not name or not path or not Path(path).is_file() or len(env) != len(extra):
            print(f"--compare {spec}: expected NAME=PATH[,VAR=VALUE...] of an existing library", file=sys.stderr)
            return 2
        ALLOCATORS[name] = Allocator(name, "compare", Path(path).resolve(), env=env)

    wanted = list(ALLOCATORS)
    if args.allocators:
        asked = args.allocators.split(",")
        unknown = [a for a in asked if a not in ALLOCATORS]
        if unknown:
            print(f"unknown allocator(s) {', '.join(unknown)}; known: {', '.join(ALLOCATORS)}", file=sys.stderr)
            return 2
        wanted = [a for a in ALLOCATORS if a in asked]
    left_out = {}
    if args.no_peers:
        for a in wanted:
            if ALLOCATORS[a].kind == "peer":
                left_out[a] = "--no-peers"
        wanted = [a for a in wanted if ALLOCATORS[a].kind != "peer"]
    if not args.no_build:
        build()
        for a in build_peers([a for a in wanted if ALLOCATORS[a].kind == "peer"]):
            left_out[a] = "peer build failed"
            wanted.remove(a)
    allocators, missing = find_allocators(args.install, wanted)
    for a in missing:
        left_out[a] = "not installed" if ALLOCATORS[a].kind == "debian" else "not built"
    baseline = args.baseline
    if baseline not in allocators:
        fallback = next((a for a in ("mimalloc-2.x", "mimalloc-3.x", "glibc") if a in allocators), None)
        if fallback is None:
            print(f"the baseline {baseline} is missing, and so are the fallbacks: ratios cannot be computed", file=sys.stderr)
            return 2
        print(f"the baseline {baseline} is missing: ratios are to {fallback} instead", flush=True)
        baseline = fallback
    loads = workloads(sys.executable)
    if args.only:
        wanted_loads = set(args.only.split(","))
        unknown = wanted_loads - {w.name for w in loads}
        if unknown:
            print(f"unknown workload(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted({w.name for w in loads}))}",
                  file=sys.stderr)
            return 2
        loads = [w for w in loads if w.name in wanted_loads]
    missing_tools = {w.argv[0] for w in loads if isinstance(w.argv[0], str) and not w.rust and not shutil.which(w.argv[0])}
    for tool in missing_tools:
        print(f"MISSING program {tool}: its workload is left out", flush=True)
    loads = [w for w in loads if w.argv[0] not in missing_tools]
    versions = allocator_versions(allocators)
    for a in allocators:
        print(f"  {a}: {versions[a]['text']}", flush=True)

    results = {w.label: {a: [] for a in allocators} for w in loads}
    expected = {}
    total = args.runs * len(loads) * len(allocators)
    done = 0
    started = time.time()
    for run in range(args.runs):
        order = loads[:]
        random.Random(run).shuffle(order)
        for w in order:
            rotated = allocators[run % len(allocators):] + allocators[:run % len(allocators)]
            for a in rotated:
                m = measure(w, a)
                if w.label not in expected:
                    expected[w.label] = m["out"]
                elif m["out"] != expected[w.label]:
                    raise SystemExit(f"{w.label}: output under {a} differs from the first run's; "
                                     f"{m['out'][:200]!r} vs {expected[w.label][:200]!r}")
                del m["out"]
                results[w.label][a].append(m)
                done += 1
        print(f"run {run + 1}/{args.runs} done ({done}/{total} measurements, {time.time() - started:.0f} s)", flush=True)

    rows, geo, geo_vs = summarise(results, allocators, loads, baseline)
    machine = f"{os.cpu_count()} cores, {os.uname().machine}, Linux {os.uname().release}"
    command = "python3 bench/run.py" + "".join(f" {a}" for a in sys.argv[1:] if a not in ("--no-build",))
    meta = {"runs": args.runs, "machine": machine, "date": time.strftime("%Y-%m-%d"), "command": command,
            "baseline": baseline, "strong": [a for a in STRONG if a in allocators], "versions": versions,
            "left_out": left_out,
            "toolchain": f"{_run(['rustc', '--version']) or 'rustc ?'}; {(_run(['gcc', '--version']) or 'gcc ?').splitlines()[0]}"}
    table = markdown(rows, geo, geo_vs, allocators, meta, baseline)
    # Partial runs do not replace the committed results.
    partial = bool(args.only) or args.no_write or bool(args.allocators)
    out_dir = WORK if partial else BENCH / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "latest.md").write_text(table)
    (out_dir / "latest.json").write_text(json.dumps(no_nan({"meta": meta, "allocators": allocators, "rows": rows, "geomean": geo,
                                                            "vs_strong_geomean": geo_vs, "raw": results}), indent=1))
    svg_chart(rows, geo, allocators, out_dir / "chart.svg", baseline)
    pairs = callgrind_pairs(allocators) if args.callgrind else {}
    if pairs:
        (out_dir / "callgrind.json").write_text(json.dumps(pairs, indent=1))
    print(table)
    if pairs:
        print("instructions per malloc/free pair:", {k: round(v, 1) for k, v in pairs.items()})
    if not partial:
        update_benchmarks_md(table, pairs, "chart.svg")
        print("BENCHMARKS.md updated")
    if left_out:
        print("LEFT OUT: " + ", ".join(f"{a} ({why})" for a, why in left_out.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
