#!/usr/bin/env python3
"""Turns bench/run.sh's measurements into the ratio table, the targets
check (Markdown) and the chart's data (JSON, drawn as SVG by bench/chart).

Usage: report.py --out DIR --files N [--md PATH] [--chart-json PATH]

Reads DIR/json/GROUP.rK.json (hyperfine exports; the runs of all rounds of
a group are pooled, and GROUP-seed joins GROUP), DIR/env.txt, DIR/rss.tsv
and DIR/strace-*.txt. N is the number of files in the small tree, for
system calls per file. Medians are compared: the machine is shared, and a
median shrugs off the odd run that a neighbour's build slowed down.
"""

import argparse
import glob
import json
import os
import re
import statistics
import sys

TREES = [
    ("small", "Small files"),
    ("usrshare", "/usr/share"),
    ("big8", "8 × 128 MiB"),
    ("huge1", "1 × 1 GiB"),
    ("rerun", "No-op rerun (small tree)"),
    ("workers", "Worker kind (small tree)"),
]
ORDER = [
    "pcopy", "pcopy rerun", "pcopy --workers thread", "pcopy --workers process",
    "floor (atomic)", "floor (atomic, /proc link)", "floor (plain)", "fcp", "xcp", "cp -a", "rsync -a",
    "rsync -a rerun", "cp -au rerun", "seed (Python Pool)",
]
MIB = 1 << 20


class ReportError(Exception):
    """Input that cannot be reported on; the message says which and why."""


def load_runs(out):
    """{tree: {command: ([seconds, ...], [cpu seconds, ...])}} with rounds
    pooled. hyperfine exports each run's wall time but only the mean CPU
    time (user + system) of a round: one CPU figure per round."""
    trees = {}
    for path in sorted(glob.glob(os.path.join(out, "json", "*.json"))):
        group = re.sub(r"\.r\d+\.json$", "", os.path.basename(path))
        tree = group[: -len("-seed")] if group.endswith("-seed") else group
        try:
            with open(path) as f:
                results = json.load(f)["results"]
        except (ValueError, KeyError, TypeError) as err:
            raise ReportError("%s is not a hyperfine export (%s); an interrupted run leaves"
                              " an empty one: rerun that part or remove it" % (path, err)) from err
        for r in results:
            wall, cpu = trees.setdefault(tree, {}).setdefault(r["command"], ([], []))
            wall.extend(r["times"])
            cpu.append(r["user"] + r["system"])
    return trees


def stats(times, cpu):
    return {
        "cpu": statistics.median(cpu),
        "median": statistics.median(times),
        "mean": statistics.fmean(times),
        "sd": statistics.stdev(times) if len(times) > 1 else 0.0,
        "min": min(times),
        "max": max(times),
        "n": len(times),
    }


def order_key(name):
    return (ORDER.index(name) if name in ORDER else len(ORDER), name)


def fmt_time(s):
    if s >= 10:
        return "%.1f s" % s
    if s >= 1:
        return "%.2f s" % s
    return "%.0f ms" % (s * 1000) if s >= 0.1 else "%.1f ms" % (s * 1000)


def read_env(out):
    env = {}
    try:
        with open(os.path.join(out, "env.txt")) as f:
            for line in f:
                key, _, value = line.rstrip("\n").partition(": ")
                env[key] = value
    except FileNotFoundError:
        pass
    return env


def subject(tree):
    return {"rerun": "pcopy rerun", "workers": "pcopy --workers process"}.get(tree, "pcopy")


def tree_table(tree, cmds):
    """Markdown rows for one tree: every copier and pcopy / copier."""
    base = subject(tree)
    rows = ["| Copier | Median | Mean ± σ | Runs | CPU (user+sys) | %s / copier |" % base,
            "|---|---|---|---|---|---|"]
    ref = cmds.get(base)
    for name in sorted(cmds, key=order_key):
        s = cmds[name]
        ratio = "%.2f" % (ref["median"] / s["median"]) if ref else "–"
        rows.append("| %s | %s | %s ± %s | %d | %s | %s |" % (
            name, fmt_time(s["median"]), fmt_time(s["mean"]), fmt_time(s["sd"]), s["n"],
            fmt_time(s["cpu"]), ratio))
    return rows


def median_of(data, tree, name):
    s = data.get(tree, {}).get(name)
    return s["median"] if s else None


def check(label, value, op, limit, unit="×"):
    if value is None:
        return (label, "not measured", "–")
    met = value <= limit if op == "<=" else value >= limit
    shown = "%.1f MiB" % value if unit == "MiB" else "%.2f×" % value
    return (label, shown, "met" if met else "**missed**")


def ratio(a, b):
    return a / b if a is not None and b else None


def targets(data, rss):
    m = lambda tree, name: median_of(data, tree, name)  # noqa: E731
    best_peer = [v for v in (m("big8", "xcp"), m("big8", "fcp")) if v]
    peak = rss.get("pcopy")
    return [
        check("small: pcopy / fcp ≤ 1.0", ratio(m("small", "pcopy"), m("small", "fcp")), "<=", 1.0),
        check("small: seed copier / pcopy ≥ 100", ratio(m("small", "seed (Python Pool)"), m("small", "pcopy")), ">=", 100),
        check("small: pcopy / floor (atomic) ≤ 1.2", ratio(m("small", "pcopy"), m("small", "floor (atomic)")), "<=", 1.2),
        check("/usr/share: pcopy / fcp ≤ 1.0", ratio(m("usrshare", "pcopy"), m("usrshare", "fcp")), "<=", 1.0),
        check("8×128 MiB: pcopy / best of xcp, fcp ≤ 1.0", ratio(m("big8", "pcopy"), min(best_peer) if best_peer else None), "<=", 1.0),
        check("8×128 MiB: cp -a / pcopy ≥ 1.8", ratio(m("big8", "cp -a"), m("big8", "pcopy")), ">=", 1.8),
        check("1 GiB: cp -a / pcopy ≥ 1.7", ratio(m("huge1", "cp -a"), m("huge1", "pcopy")), ">=", 1.7),
        check("no-op rerun: pcopy / rsync -a ≤ 0.5", ratio(m("rerun", "pcopy rerun"), m("rerun", "rsync -a rerun")), "<=", 0.5),
        check("process / thread ≤ 1.1", ratio(m("workers", "pcopy --workers process"), m("workers", "pcopy --workers thread")), "<=", 1.1),
        check("peak RSS, 200k files ≤ 64 MiB", peak / 1024 if peak else None, "<=", 64, "MiB"),
    ]


def read_rss(out):
    rss, rows = {}, []
    try:
        with open(os.path.join(out, "rss.tsv")) as f:
            for line in f:
                name, kib, wall = line.rstrip("\n").split("\t")
                rss[name] = int(kib)
                rows.append((name, int(kib), wall))
    except FileNotFoundError:
        pass
    return rss, rows


def read_strace(path):
    """{syscall: calls} and the total from `strace -c` output."""
    calls = {}
    with open(path) as f:
        for line in f:
            tokens = line.split()
            if len(tokens) < 5 or not re.match(r"^[\d.]+$", tokens[0]):
                continue
            calls[tokens[-1]] = int(tokens[3])
    return calls


def strace_section(out, files):
    found = {}
    for variant in ("thread", "process", "floor"):
        path = os.path.join(out, "strace-%s.txt" % variant)
        if os.path.exists(path):
            found[variant] = read_strace(path)
    if not found:
        return []
    names = {"thread": "pcopy (thread)", "process": "pcopy (process)", "floor": "floor (atomic)"}
    cols = list(found)
    lines = ["| System call | " + " | ".join(names[c] for c in cols) + " |",
             "|---|" + "---|" * len(cols)]
    per_file = lambda c, k: found[c].get(k, 0) / files  # noqa: E731
    keys = sorted({k for c in cols for k in found[c] if k != "total"},
                  key=lambda k: -per_file(cols[0], k))
    for k in keys:
        if max(per_file(c, k) for c in cols) >= 0.01:
            lines.append("| %s | " % k + " | ".join("%.2f" % per_file(c, k) for c in cols) + " |")
    lines.append("| **total** | " + " | ".join("**%.2f**" % per_file(c, "total") for c in cols) + " |")
    return lines


def markdown(data, env, rss, rss_rows, out, files):
    md = ["# pcopy benchmark results", ""]
    md += ["Produced by `bench/run.sh`" + (" --smoke" if env.get("mode") == "smoke" else "")
           + " on %s." % env.get("date", "?"), ""]
    md += ["| | |", "|---|---|"]
    for key in ("cpus", "cpu", "kernel", "load before", "src fs", "dst fs", "runs", "pcopy", "cp", "rsync",
                "xcp", "fcp", "hyperfine", "python", "usrshare"):
        if key in env:
            md.append("| %s | %s |" % (key, env[key].replace("|", "\\|")))
    for key in sorted(k for k in env if k.startswith("tree ")):
        md.append("| %s | %s |" % (key, env[key]))
    try:
        with open(os.path.join(out, "busy.txt")) as f:
            busy = [line.strip() for line in f if line.strip()]
    except FileNotFoundError:
        busy = []
    if busy:
        md += ["", "Rounds that started while other work kept the CPUs busy: "
               + "; ".join(busy) + "."]
    md += ["", "Ratios are pcopy's median wall time over the copier's: below 1, pcopy is "
           "faster. CPU is the median over rounds of user + system time, all threads "
           "and processes: what the copy costs the machine.", ""]
    md += ["## Targets", ""]
    if env.get("mode") == "smoke":
        md += ["A smoke run: tiny trees, where process start-up dominates; these verdicts mean nothing.", ""]
    md += ["| Target | Measured | |", "|---|---|---|"]
    md += ["| %s | %s | %s |" % t for t in targets(data, rss)]
    for tree, title in TREES:
        if tree in data:
            md += ["", "## %s (%s)" % (title, describe(tree, env)), ""] + tree_table(tree, data[tree])
    if rss_rows:
        md += ["", "## Peak RSS, 200,000 tiny files", "",
               "| Copier | Peak RSS | Wall time |", "|---|---|---|"]
        md += ["| %s | %.1f MiB | %s |" % (n, kib / 1024, wall) for n, kib, wall in rss_rows]
    lines = strace_section(out, files)
    if lines:
        md += ["", "## System calls per file, small tree (`strace -f -c`)", ""] + lines
    return "\n".join(md) + "\n"


def describe(tree, env):
    """"20,000 files in 1,011 dirs, 224.0 MB" from env.txt's tree line."""
    line = env.get("tree " + {"rerun": "small", "workers": "small"}.get(tree, tree), "")
    m = re.match(r"(\d+) files, (\d+) dirs, (\d+) symlinks, (\d+) bytes", line)
    if not m:
        return ""
    files, dirs, links, size = map(int, m.groups())
    count = lambda n, noun: "%s %s%s" % (format(n, ","), noun, "" if n == 1 else "s")  # noqa: E731
    text = "%s in %s" % (count(files, "file"), count(dirs, "dir"))
    if links:
        text += ", " + count(links, "symlink")
    return text + ", %.1f MB" % (size / 1e6)


def role(name):
    """The bar colour in the chart: pcopy, the floor program or a peer."""
    if name.startswith("pcopy"):
        return "subject"
    return "floor" if name.startswith("floor") else "peer"


def chart_caption(env):
    """The machine and how the runs were made, for under the chart."""
    lines = []
    if env.get("mode") == "smoke":
        lines.append("Smoke run: tiny trees, where process start-up dominates.")
    lines.append("%s CPUs (%s), Linux %s; source %s, destination %s" % (
        env.get("cpus", "?"), env.get("cpu", "?"), env.get("kernel", "?"),
        env.get("src fs", "?"), env.get("dst fs", "?")))
    if "runs" in env:
        lines.append(env["runs"])
    lines.append("%s; run started %s" % (env.get("pcopy", "pcopy ?"), env.get("date", "?")))
    return lines


def chart_data(data, env):
    """What bench/chart draws: a panel per tree, a bar per copier (median,
    fastest and slowest run), and the caption."""
    panels = []
    for tree, title in TREES:
        cmds = data.get(tree)
        if not cmds:
            continue
        bars = [{"copier": n, "role": role(n), "median_seconds": cmds[n]["median"],
                 "fastest_seconds": cmds[n]["min"], "slowest_seconds": cmds[n]["max"]}
                for n in sorted(cmds, key=order_key)]
        panels.append({"title": title, "subtitle": describe(tree, env), "bars": bars})
    return {"caption": chart_caption(env), "panels": panels}


def terminal_table(data):
    lines = []
    for tree, title in TREES:
        cmds = data.get(tree)
        if not cmds:
            continue
        base = cmds.get(subject(tree))
        lines.append("\n%s\n  %-26s %10s   %s / copier" % (title, "copier", "median", subject(tree)))
        for name in sorted(cmds, key=order_key):
            r = "%.2f" % (base["median"] / cmds[name]["median"]) if base else "-"
            lines.append("  %-26s %10s   %s" % (name, fmt_time(cmds[name]["median"]), r))
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description="pcopy benchmark report")
    parser.add_argument("--out", required=True)
    parser.add_argument("--files", type=int, required=True)
    parser.add_argument("--md")
    parser.add_argument("--chart-json")
    args = parser.parse_args()
    if args.files < 1:
        parser.error("--files must be at least 1")
    try:
        raw = load_runs(args.out)
    except ReportError as err:
        print("report.py: %s" % err, file=sys.stderr)
        return 1
    if not raw:
        print("report.py: no hyperfine results in %s/json" % args.out, file=sys.stderr)
        return 1
    data = {tree: {n: stats(*t) for n, t in cmds.items()} for tree, cmds in raw.items()}
    env = read_env(args.out)
    rss, rss_rows = read_rss(args.out)
    md_path = args.md or os.path.join(args.out, "results.md")
    chart_path = args.chart_json or os.path.join(args.out, "chart.json")
    with open(md_path, "w") as f:
        f.write(markdown(data, env, rss, rss_rows, args.out, args.files))
    with open(chart_path, "w") as f:
        json.dump(chart_data(data, env), f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(terminal_table(data))
    print("\nTargets:" + (" (smoke run: tiny trees, where start-up dominates;"
                          " these verdicts mean nothing)" if env.get("mode") == "smoke" else ""))
    for label, value, verdict in targets(data, rss):
        print("  %-45s %-14s %s" % (label, value, verdict.strip("*")))
    print("\nWrote %s and %s" % (md_path, chart_path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
