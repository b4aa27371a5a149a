#!/usr/bin/env python3
"""oxalloc's benchmark runner: every workload under glibc, mimalloc, jemalloc, tcmalloc and
oxalloc, interleaved run by run, several runs each; reports median wall time, CPU time and peak
RSS per allocator as ratios to mimalloc, with geometric means, as a Markdown table and an SVG
chart, and rewrites the results section of BENCHMARKS.md.

    python3 bench/run.py                 # the full suite, 5 runs
    python3 bench/run.py --runs 3 --only larson,xmalloc
    python3 bench/run.py --callgrind     # also instructions per malloc/free pair

Competitors are Debian's libmimalloc2.0, libjemalloc2 and libtcmalloc-minimal4, preloaded with
LD_PRELOAD; `--install` installs the missing ones with apt-get (as root). Missing allocators are
reported and left out. Every run's standard output must match glibc's, so a wrong answer fails
the benchmark instead of winning it.
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
WORK = BENCH / "results" / "work"
LIBDIR = Path("/usr/lib/x86_64-linux-gnu")

# name -> (shared library or None for the system allocator, Debian package)
ALLOCATORS = {
    "glibc": (None, None),
    "mimalloc": (LIBDIR / "libmimalloc.so.2", "libmimalloc2.0"),
    "jemalloc": (LIBDIR / "libjemalloc.so.2", "libjemalloc2"),
    "tcmalloc": (LIBDIR / "libtcmalloc_minimal.so.4", "libtcmalloc-minimal4"),
    "oxalloc": (ROOT / "target" / "release" / "liboxalloc.so", None),
}
BASELINE = "mimalloc"
THREADS = (1, 2, 4)


class Workload:
    """One benchmark: a command per allocator, and what it models."""

    def __init__(self, name, model, stresses, argv, threads=None, stdin=None, rust=False):
        self.name, self.model, self.stresses = name, model, stresses
        self.argv, self.threads, self.stdin, self.rust = argv, threads, stdin, rust

    @property
    def label(self):
        return self.name if self.threads is None else f"{self.name} t={self.threads}"

    def command(self, allocator):
        """The argv and extra environment to run this workload under `allocator`."""
        argv = [str(a) for a in self.argv]
        lib, _ = ALLOCATORS[allocator]
        if self.rust:
            # The Rust workload has its global allocator compiled in for glibc (system),
            # mimalloc and oxalloc; jemalloc and tcmalloc replace the system allocator.
            binary = {"oxalloc": "churn-oxalloc", "mimalloc": "churn-mimalloc"}.get(allocator, "churn-system")
            argv[0] = str(BENCH / "rust" / "target" / "release" / binary)
            preload = lib if allocator in ("jemalloc", "tcmalloc") else None
        else:
            preload = lib
        env = {"LD_PRELOAD": str(preload)} if preload else {}
        return argv, env


def workloads(python):
    c = lambda name: WORK / name  # noqa: E731  compiled C workloads
    w = [
        Workload("alloc-test", "alloc-test", "one thread, random small sizes, 200k live blocks",
                 [c("alloc_test"), 5]),
    ]
    for t in THREADS:
        w += [
            Workload("malloc-simple", "glibc bench-malloc-simple", "batches of 100 blocks allocated then freed, 16 B-4 KiB",
                     [c("malloc_simple"), t, 6000], t),
            Workload("larson", "larson", "server: blocks freed by the next generation of threads",
                     [c("larson"), t, 16000000], t),
            Workload("larson-sized", "larson with sized free", "as larson, freeing with the size (free_sized/sdallocx)",
                     [c("larson"), t, 16000000, "sized"], t),
            Workload("xmalloc", "xmalloc-test", f"{t} producer(s) allocate, {t} consumer(s) free",
                     [c("xmalloc"), t, 2000000], t),
            Workload("cache-scratch", "cache-scratch", "passive false sharing: handed-over objects",
                     [c("cache_scratch"), t, 200000], t),
            Workload("cache-thrash", "cache-thrash", "active false sharing: neighbouring objects",
                     [c("cache_scratch"), t, 200000, "active"], t),
            Workload("mstress", "mstress", "thread churn with cross-thread frees",
                     [c("mstress"), t, 100], t),
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


def find_allocators(install):
    present, missing = [], []
    updated = False
    for name, (lib, package) in ALLOCATORS.items():
        if lib is None or lib.exists():
            present.append(name)
            continue
        if install and package and os.geteuid() == 0:
            apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            if not updated:
                subprocess.run(["apt-get", "update", "-qq"], check=False, env=apt_env)
                updated = True
            subprocess.run(["apt-get", "install", "-y", "-qq", package], check=False, env=apt_env)
            if lib.exists():
                present.append(name)
                continue
        missing.append((name, package))
    for name, package in missing:
        hint = f" (apt-get install {package}, or run with --install)" if package else " (cargo build --release)"
        print(f"MISSING allocator {name}: {ALLOCATORS[name][0]} not found{hint}; left out", flush=True)
    return present


def measure(workload, allocator):
    """Runs one workload through the `measure` launcher: wall time, CPU time (user + system,
    including the program's own children) and peak RSS (largest of the process and its children)."""
    argv, extra = workload.command(allocator)
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "OXALLOC_REPORT_FILE")}
    stdin = open(workload.stdin, "rb") if workload.stdin else subprocess.DEVNULL
    report = WORK / "measure.txt"
    out_path, err_path = WORK / "stdout.txt", WORK / "stderr.txt"
    with open(out_path, "wb") as out_f, open(err_path, "wb") as err_f:
        subprocess.run([str(WORK / "measure"), str(report), extra.get("LD_PRELOAD", "-"), *argv],
                       env=env, stdin=stdin, stdout=out_f, stderr=err_f, cwd=WORK, check=True, timeout=600)
    if workload.stdin:
        stdin.close()
    status, wall, cpu, rss_kib = report.read_text().split()
    if int(status) != 0:
        err = err_path.read_text(errors="replace")[-800:]
        raise RuntimeError(f"{workload.label} under {allocator} exited {status}: {err}")
    return {"wall": float(wall), "cpu": float(cpu), "rss": int(rss_kib) * 1024, "out": out_path.read_bytes()}


def geomean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def summarise(results, allocators, loads):
    rows = []
    for w in loads:
        r = results[w.label]
        med = {a: {m: statistics.median(run[m] for run in r[a]) for m in ("wall", "cpu", "rss")} for a in allocators}
        base = med.get(BASELINE)
        ratio = {a: {m: (med[a][m] / base[m] if base and base[m] else float("nan")) for m in med[a]} for a in allocators}
        rows.append({"workload": w.label, "model": w.model, "stresses": w.stresses, "median": med, "ratio": ratio})
    geo = {a: {m: geomean([row["ratio"][a][m] for row in rows]) for m in ("wall", "cpu", "rss")} for a in allocators}
    return rows, geo


def fmt_ratio(x, best=False):
    if x != x:  # NaN
        return "-"
    s = f"{x:.2f}"
    return f"**{s}**" if best else s


def markdown(rows, geo, allocators, meta):
    lines = []
    for metric, title in (("wall", "Wall time"), ("cpu", "CPU time (user + system)"), ("rss", "Peak RSS")):
        lines.append(f"### {title}, as a ratio to {BASELINE} (lower is better; best in bold)\n")
        lines.append("| workload | " + " | ".join(allocators) + f" | {BASELINE} median |")
        lines.append("|---|" + "---:|" * (len(allocators) + 1))
        for row in rows:
            vals = {a: row["ratio"][a][metric] for a in allocators}
            best = min(v for v in vals.values() if v == v)
            med = row["median"][BASELINE][metric] if BASELINE in allocators else float("nan")
            med_s = f"{med * 1000:.0f} ms" if metric != "rss" else f"{med / 2**20:.1f} MiB"
            lines.append(f"| {row['workload']} | " + " | ".join(fmt_ratio(vals[a], vals[a] == best) for a in allocators) + f" | {med_s} |")
        lines.append("| **geometric mean** | " + " | ".join(fmt_ratio(geo[a][metric]) for a in allocators) + " | |")
        lines.append("")
    ox = "oxalloc"
    if ox in allocators:
        worst = []
        for row in rows:
            peers = [row["median"][a]["wall"] for a in allocators if a != ox]
            worst.append((row["median"][ox]["wall"] / min(peers), row["workload"]))
        worst.sort(reverse=True)
        lines.append(f"oxalloc against the best peer on each workload (wall time): worst "
                     + ", ".join(f"{w} {x:.2f}x" for x, w in worst[:3]) + ".\n")
    lines.append(f"{meta['runs']} runs per workload and allocator, interleaved; medians. Machine: {meta['machine']}. "
                 f"Date: {meta['date']}. Command: `{meta['command']}`.\n")
    return "\n".join(lines)


COLORS = {"glibc": "#9e9e9e", "mimalloc": "#1f77b4", "jemalloc": "#ff7f0e", "tcmalloc": "#2ca02c", "oxalloc": "#d62728"}


def svg_chart(rows, geo, allocators, path):
    """Grouped horizontal bars of wall-time and RSS ratios to the baseline, on a log scale."""
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
           f'<text x="10" y="16" font-size="13" font-weight="bold">oxalloc benchmarks: ratio to {BASELINE} (log scale, lower is better)</text>']
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
        lib, _ = ALLOCATORS[a]
        totals = []
        for rounds in (2000, 12000):
            env = {**os.environ}
            cmd = ["valgrind", "--tool=callgrind", "--trace-children=yes", f"--callgrind-out-file={WORK}/cg.%p.out", "/usr/bin/env"]
            if lib:
                cmd.append(f"LD_PRELOAD={lib}")
            cmd += [str(WORK / "pair"), str(rounds)]
            r = subprocess.run(cmd, env=env, capture_output=True, text=True)
            found = re.findall(r"Collected : (\d+)", r.stderr)
            totals.append(int(found[-1]))
            for f in WORK.glob("cg.*.out"):
                f.unlink()
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
    ap.add_argument("--install", action="store_true", help="apt-get install missing competitors")
    ap.add_argument("--callgrind", action="store_true", help="also count instructions per malloc/free pair")
    ap.add_argument("--no-build", action="store_true", help="use what is already built")
    ap.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md and bench/results alone (results go to bench/results/work)")
    args = ap.parse_args()

    if not args.no_build:
        build()
    allocators = find_allocators(args.install)
    if BASELINE not in allocators:
        print(f"the baseline {BASELINE} is missing: ratios cannot be computed", file=sys.stderr)
        return 2
    loads = workloads(sys.executable)
    if args.only:
        wanted = set(args.only.split(","))
        loads = [w for w in loads if w.name in wanted]
    missing_tools = {w.argv[0] for w in loads if isinstance(w.argv[0], str) and not w.rust and not shutil.which(w.argv[0])}
    for tool in missing_tools:
        print(f"MISSING program {tool}: its workload is left out", flush=True)
    loads = [w for w in loads if w.argv[0] not in missing_tools]

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

    rows, geo = summarise(results, allocators, loads)
    machine = f"{os.cpu_count()} cores, {os.uname().machine}, Linux {os.uname().release}"
    command = "python3 bench/run.py" + "".join(f" {a}" for a in sys.argv[1:] if a not in ("--no-build",))
    meta = {"runs": args.runs, "machine": machine, "date": time.strftime("%Y-%m-%d"), "command": command}
    table = markdown(rows, geo, allocators, meta)
    # Partial runs do not replace the committed results.
    partial = bool(args.only) or args.no_write
    out_dir = WORK if partial else BENCH / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "latest.md").write_text(table)
    (out_dir / "latest.json").write_text(json.dumps({"meta": meta, "allocators": allocators, "rows": rows, "geomean": geo,
                                                     "raw": results}, indent=1))
    svg_chart(rows, geo, allocators, out_dir / "chart.svg")
    pairs = callgrind_pairs(allocators) if args.callgrind else {}
    if pairs:
        (out_dir / "callgrind.json").write_text(json.dumps(pairs, indent=1))
    print(table)
    if pairs:
        print("instructions per malloc/free pair:", {k: round(v, 1) for k, v in pairs.items()})
    if not partial:
        update_benchmarks_md(table, pairs, "chart.svg")
        print("BENCHMARKS.md updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
