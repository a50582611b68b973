#!/usr/bin/env python3
"""Is pcopy's progress display truthful? Times its progress output.

Usage: progress_eta.py --pcopy BIN (--src DIR | --tree NAME=DIR ...) --dst DIR --out DIR
                       [--eta-before BIN] [--runs N] [--modes lines,json,tty]
                       [--md PATH] [--label TEXT]
       progress_eta.py --report-only --out DIR [--md PATH] [--label TEXT]

Each round copies each tree (--src, or every --tree in turn) into DST
(removed first) three ways, in turn:

  lines  `pcopy --progress SRC/ DST`, stderr a pipe: plain lines
  json   `pcopy --progress --json SRC/ DST`: the same figures as JSON
  tty    `pcopy SRC/ DST` with stderr on a pseudo-terminal: the bar

and timestamps every line (every redraw of the bar) as it arrives. With
--eta-before BIN, an older build copies the same way right after each
run of BIN, so that both share the machine's moods. From the lines of
one run it reports:

  - when the totals were final (the first line without "scanning" and a
    total without "+"), as a share of the run's wall time;
  - at the first line at or past 10 %, 25 % and 50 % of the files done,
    the ETA shown against the time really left (the run's end minus the
    line's time): their ratio, 1.0 being exact, with a "+" where the
    display marked it as a lower bound; likewise at the first line at or
    past 25 % of the run's wall time, as on a tree of small and large
    files the share of the files done says little of the work done;
  - the peak RSS of pcopy and its workers (wait4's ru_maxrss);
  - for the bar: that every redraw before the totals were final says
    "scanning" with no ETA, and none after does.

The load average before each run is kept: the machine is shared. Results
go to DIR/progress.json and, with --md, a Markdown report with a section
per tree.
"""

import argparse
import json
import os
import pty
import re
import select
import shutil
import statistics
import subprocess
import sys
import time

MARKS = (10, 25, 50)
# A mark by the share of the run's wall time gone.
TIME_MARK = 25
FILES = re.compile(r"(?P<done>\d+)/(?P<total>\d+)(?P<open>\+)? files?\b")
ETA = re.compile(r"\bETA (\S+?)(\+)?$")
DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?$")
# A redraw of the bar: what is between carriage returns and line clears.
ESCAPE = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


class BenchError(Exception):
    """A run that cannot be measured; the message says why."""


def seconds(text):
    """`6s`, `2m05s`, `1h02m` -> seconds; `?` -> None."""
    m = DURATION.match(text)
    if text == "?" or not m or not any(m.groups()):
        return None
    h, mins, s = m.groups()
    return int(h or 0) * 3600 + int(mins or 0) * 60 + float(s or 0)


def parse_plain(text):
    """One progress line (plain or a bar's redraw) as a dict, or None."""
    m = FILES.search(text)
    if not m:
        return None
    eta = ETA.search(text)
    scanning = "scanning" in text
    return {
        "files_done": int(m["done"]),
        "files_total": int(m["total"]),
        "totals_final": not scanning and not m["open"],
        "eta_seconds": seconds(eta.group(1)) if eta else None,
        "eta_lower_bound": bool(eta and eta.group(2)),
        "scanning": scanning,
    }


def parse_json(text):
    try:
        record = json.loads(text)
    except ValueError:
        return None
    if not isinstance(record, dict) or "files_done" not in record:
        return None
    record["scanning"] = not record["totals_final"]
    record.setdefault("eta_lower_bound", False)
    return record


def load():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def cpu_busy_seconds():
    """CPU time (all CPUs) not idle since boot, in seconds."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def spawn(cmd, tty):
    """Starts cmd with stderr on a pipe or a pseudo-terminal; the reader's fd."""
    if tty:
        master, slave = pty.openpty()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=slave, env=dict(os.environ, COLUMNS="160"))
        os.close(slave)
        return proc, master
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    return proc, proc.stderr.fileno()


def read_timed(fd, tty, start):
    """(seconds since start, text) for every line or bar redraw until EOF."""
    chunks, pending = [], b""
    while True:
        select.select([fd], [], [])
        try:
            data = os.read(fd, 65536)
        except OSError:  # a pty reads EIO once the other side is closed
            data = b""
        now = time.monotonic() - start
        if not data:
            break
        pending += data
        parts = re.split(rb"[\r\n]", pending)
        pending = parts.pop()
        for part in parts:
            text = ESCAPE.sub(b"", part).decode("utf-8", "replace").strip()
            if text:
                chunks.append((now, text))
    if pending.strip():
        chunks.append((time.monotonic() - start, ESCAPE.sub(b"", pending).decode("utf-8", "replace")))
    return chunks


def one_run(args, tree, mode, build, pcopy):
    shutil.rmtree(args.dst, ignore_errors=True)
    cmd = [pcopy, f"{tree['dir']}/", args.dst]
    if mode != "tty":
        cmd.insert(1, "--progress")
    if mode == "json":
        cmd.insert(1, "--json")
    before = load()
    busy_before = cpu_busy_seconds()
    start = time.monotonic()
    proc, fd = spawn(cmd, mode == "tty")
    lines = read_timed(fd, mode == "tty", start)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    # What other processes took of the CPUs meanwhile: the busy time of
    # the machine less pcopy's own (and its workers'), in CPUs.
    own = usage.ru_utime + usage.ru_stime
    others = max(0.0, cpu_busy_seconds() - busy_before - own) / wall
    if mode == "tty":
        os.close(fd)
    if os.waitstatus_to_exitcode(status) != 0:
        raise BenchError(f"{' '.join(cmd)} exited {os.waitstatus_to_exitcode(status)}")
    parse = parse_json if mode == "json" else parse_plain
    records = [(t, r) for t, r in ((t, parse(x)) for t, x in lines) if r is not None]
    if not records:
        raise BenchError(f"{mode}: no progress line in {lines[:3]}")
    result = summarize(mode, records, wall, usage.ru_maxrss, before)
    result.update(others_cpus=others, tree=tree["name"], build=build)
    return result


def eta_at(hit, wall, total):
    """The ETA of the line `hit` (time, record) against the time left."""
    if hit is None or hit[1]["eta_seconds"] is None:
        return None
    t, r = hit
    left = wall - t
    return {
        "at": t / wall,
        "done": r["files_done"] / total,
        "shown": r["eta_seconds"],
        "lower_bound": r.get("eta_lower_bound", False),
        "left": left,
        "ratio": r["eta_seconds"] / left if left > 0 else None,
    }


def summarize(mode, records, wall, maxrss_kib, load_before):
    final = next(((t, r) for t, r in records if r["totals_final"]), None)
    total = records[-1][1]["files_total"]
    result = {
        "mode": mode,
        "wall": wall,
        "load_before": load_before,
        "peak_rss_mib": maxrss_kib / 1024,
        "lines": len(records),
        "totals_final_at": final[0] / wall if final else None,
        # Honest display: no ETA while scanning, none claimed open after.
        "eta_while_scanning": sum(1 for _, r in records
                                  if r["scanning"] and r["eta_seconds"] is not None),
        "scanning_after_final": sum(1 for t, r in records if final and t > final[0]
                                    and r["scanning"]),
    }
    for mark in MARKS:
        hit = next(((t, r) for t, r in records
                    if r["totals_final"] and r["files_done"] * 100 >= mark * total), None)
        result[f"eta{mark}"] = eta_at(hit, wall, total)
    hit = next(((t, r) for t, r in records
                if r["totals_final"] and t * 100 >= TIME_MARK * wall), None)
    result[f"eta_t{TIME_MARK}"] = eta_at(hit, wall, total)
    return result


def fmt_ratio(v):
    return "?" if v is None else f"{v:.2f}"


def fmt_mark(mark, share="done"):
    """The ratio, "+" if shown as a lower bound, and how much was done at
    the line it was read from (a line a second on a short run may be
    well past the mark), or how far into the run it came."""
    if mark is None or mark["ratio"] is None:
        return "?"
    plus = "+" if mark.get("lower_bound") else ""
    return f"{mark['ratio']:.2f}{plus} ({100 * mark[share]:.0f} %)"


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio_range(rows, key):
    ratios = sorted(r[key]["ratio"] for r in rows if r[key] and r[key]["ratio"] is not None)
    return f"{ratios[0]:.2f}-{ratios[-1]:.2f}" if ratios else "?"


def medians_line(rows):
    final = median([r["totals_final_at"] for r in rows])
    parts = [f"final at {'never' if final is None else f'{100 * final:.1f} %'}"]
    for m in MARKS:
        parts.append(f"ETA/left at {m} % {fmt_ratio(median([r[f'eta{m}']['ratio'] for r in rows if r[f'eta{m}']]))}")
    key = f"eta_t{TIME_MARK}"
    parts.append(f"at {TIME_MARK} % of the time "
                 f"{fmt_ratio(median([r[key]['ratio'] for r in rows if r[key]]))}"
                 f" (range {ratio_range(rows, key)})")
    within = [r for r in rows if r["eta25"] and r["eta25"]["ratio"] is not None
              and 0.7 <= r["eta25"]["ratio"] <= 1.3]
    parts.append(f"ETA at 25 % within 30 % in {len(within)} of {len(rows)} runs"
                 f" (range {ratio_range(rows, 'eta25')})")
    early = [r for r in rows if r["totals_final_at"] is not None and r["totals_final_at"] <= 0.1]
    parts.append(f"final within 10 % in {len(early)} of {len(rows)}")
    parts.append(f"peak RSS {max(r['peak_rss_mib'] for r in rows):.1f} MiB (largest)")
    return ", ".join(parts)


def tree_section(results, tree, description):
    builds = sorted({r.get("build", "after") for r in results})
    md = [f"## {tree}", "", description, "",
          "| build | display | load | others | wall (s) | final at | ETA at 10 % | at 25 % | at 50 % "
          f"| at {TIME_MARK} % of the time | peak RSS | ETA while scanning | scanning after final |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        ratios = [fmt_mark(r[f"eta{m}"]) for m in MARKS]
        ratios.append(fmt_mark(r.get(f"eta_t{TIME_MARK}"), "at"))
        final = "never" if r["totals_final_at"] is None else f"{100 * r['totals_final_at']:.1f} %"
        md.append(f"| {r.get('build', 'after')} | {r['mode']} | {r['load_before']:.1f} | "
                  f"{r['others_cpus']:.2f} | {r['wall']:.2f} | {final} | "
                  + " | ".join(ratios)
                  + f" | {r['peak_rss_mib']:.1f} MiB | {r['eta_while_scanning']} | "
                  f"{r['scanning_after_final']} |")
    md += ["", "Medians over the runs:", ""]
    for build in builds:
        for mode in sorted({r["mode"] for r in results}):
            rows = [r for r in results if r["mode"] == mode and r.get("build", "after") == build]
            if rows:
                name = mode if len(builds) == 1 else f"{build}, {mode}"
                md.append(f"- {name}: " + medians_line(rows))
    return md + [""]


def markdown(results, label, descriptions):
    md = ["# Progress display: is it truthful?", "",
          f"{label}", "",
          "Generated by `bench/run.sh --only eta` (bench/progress_eta.py). Each row is one run;",
          "\"final at\" is when the totals stopped growing, as a share of the wall time;",
          "\"ETA at N %\" is the ETA shown at the first line with N % of the files done",
          "divided by the time that was really left (1.00 exact; target at 25 %: 0.70-1.30),",
          "with the share of the files done at that line; \"?\": no ETA was shown there;",
          "\"+\": the display marked the ETA as a lower bound (`ETA 1.2s+`).",
          f"\"at {TIME_MARK} % of the time\" is the same at the first line at or past {TIME_MARK} % of the",
          "run's wall time, with how far into the run that line came.",
          "The bar rows are read from a pseudo-terminal, every redraw timestamped.",
          "\"others\" is the CPUs other processes kept busy during the run (the machine's",
          "busy time less pcopy's own), \"load\" the load average before it;",
          "\"before\" rows are the older build (`--eta-before`), run right after each",
          "\"after\" run.", ""]
    trees = list(dict.fromkeys(r.get("tree", "tree") for r in results))
    for tree in trees:
        rows = [r for r in results if r.get("tree", "tree") == tree]
        md += tree_section(rows, tree, descriptions.get(tree, ""))
    return "\n".join(md)


def describe(path):
    """`N files, D dirs, B bytes` of a tree."""
    files = dirs = size = 0
    for _, subdirs, names in os.walk(path):
        dirs += len(subdirs)
        for name in names:
            files += 1
            size += os.lstat(os.path.join(_, name)).st_size
    return f"{files} files, {dirs + 1} dirs, {size} bytes"


def parse_trees(args, p):
    trees = []
    if args.src:
        trees.append({"name": os.path.basename(args.src.rstrip("/")), "dir": args.src})
    for spec in args.tree:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            p.error(f"--tree wants NAME=DIR, not {spec!r}")
        trees.append({"name": name, "dir": path})
    if not trees:
        p.error("--src or --tree is needed to run")
    for tree in trees:
        if not os.path.isdir(tree["dir"]):
            p.error(f"not a directory: {tree['dir']}")
    return trees


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pcopy")
    p.add_argument("--eta-before", metavar="BIN",
                   help="an older build, run the same way right after each run of --pcopy")
    p.add_argument("--src")
    p.add_argument("--tree", action="append", default=[], metavar="NAME=DIR",
                   help="a tree to copy, reported under NAME (repeatable)")
    p.add_argument("--dst")
    p.add_argument("--out", required=True)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--modes", default="lines,json,tty")
    p.add_argument("--md")
    p.add_argument("--label", default="")
    p.add_argument("--report-only", action="store_true",
                   help="write the report from OUT/progress.json without running")
    args = p.parse_args()
    if args.report_only:
        with open(os.path.join(args.out, "progress.json")) as f:
            saved = json.load(f)
        write_report(saved["runs"], saved["trees"], args)
        return
    if not (args.pcopy and args.dst):
        p.error("--pcopy and --dst are needed to run")
    trees = parse_trees(args, p)
    builds = [("after", args.pcopy)] + ([("before", args.eta_before)] if args.eta_before else [])
    modes = args.modes.split(",")
    descriptions = {t["name"]: f"- tree: {describe(t['dir'])}" for t in trees}
    results = []
    try:
        for run in range(args.runs):
            for tree in trees:
                for mode in modes:
                    for build, pcopy in builds:
                        r = one_run(args, tree, mode, build, pcopy)
                        results.append(r)
                        print(json.dumps(r), file=sys.stderr)
    except BenchError as err:
        sys.exit(f"progress_eta.py: {err}")
    finally:
        shutil.rmtree(args.dst, ignore_errors=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "progress.json"), "w") as f:
        json.dump({"trees": descriptions, "runs": results}, f, indent=1)
    write_report(results, descriptions, args)


def write_report(results, descriptions, args):
    text = markdown(results, args.label, descriptions)
    if args.md:
        with open(args.md, "w") as f:
            f.write(text)
    print(text)


if __name__ == "__main__":
    main()
