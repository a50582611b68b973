#!/usr/bin/env python3
"""Turns bench/run.sh's latency and robust parts into Markdown.

Usage: report_latency.py --out DIR --md PATH

Reads, for each delay and slowfs options measured (DIR/latency/LABEL/):
env.txt, the hyperfine exports json/SIDE.rK.json (rounds pooled), the
request counters of the untimed checking run stats/SIDE/COPIER.tsv and
failed.tsv; and DIR/robust.tsv. SIDE is src (the source on the slow
mount, the copy on tmpfs) or dst (the other way round). Medians are
compared, as in report.py.
"""

import argparse
import glob
import json
import os
import re
import statistics
import sys

SIDES = [("src", "Source on the slow mount (copy to tmpfs)"),
         ("dst", "Destination on the slow mount (copy from tmpfs)")]
SIDE_SHORT = {"src": "source slow", "dst": "destination slow"}


def slug(name):
    """As run.sh's slug: the stats file of a copier."""
    return re.sub(r"[^A-Za-z0-9.]", "-", name)


def read_kv(path, sep=": "):
    values = {}
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.rstrip("\n").partition(sep)
                values[key] = value
    except FileNotFoundError:
        pass
    return values


def load_times(label_dir, side):
    """{copier: [seconds, ...]} over all rounds of one side."""
    times = {}
    for path in sorted(glob.glob(os.path.join(label_dir, "json", "%s.r*.json" % side))):
        try:
            with open(path) as f:
                results = json.load(f)["results"]
        except (ValueError, KeyError, TypeError):
            print("report_latency.py: %s is not a hyperfine export; left out" % path, file=sys.stderr)
            continue
        for r in results:
            times.setdefault(r["command"], []).extend(r["times"])
    return times


def load_stats(label_dir, side, name):
    stats = read_kv(os.path.join(label_dir, "stats", side, slug(name) + ".tsv"), "\t")
    return {k: float(v) for k, v in stats.items() if v}


TOOLS = ["pcopy", "cp", "rsync", "xcp", "fcp"]


def order_key(name):
    """pcopy first, then cp, rsync, xcp and fcp; each at its default, then
    by thread count."""
    tool = name.split()[0]
    nums = [int(n) for n in re.findall(r"\d+", name)]
    return (TOOLS.index(tool) if tool in TOOLS else len(TOOLS), tool, nums[0] if nums else 0)


def shorten(text):
    """Long paths in a message cut in the middle, so a table stays readable."""
    def cut(m):
        word = m.group(0)
        return "%s...[%d bytes]...%s" % (word[:40], len(word.encode()), word[-30:])
    return re.sub(r"\S{121,}", cut, text)


def fmt_time(s):
    return "%.2f s" % s if s < 10 else "%.1f s" % s


class Label:
    """One delay and set of slowfs options: both sides' medians and counters."""

    def __init__(self, label_dir):
        self.dir = label_dir
        self.env = read_kv(os.path.join(label_dir, "env.txt"))
        m = re.match(r"(\d+) files", self.env.get("tree", ""))
        self.files = int(m.group(1)) if m else 0
        self.medians = {side: {n: statistics.median(t) for n, t in load_times(label_dir, side).items() if t}
                        for side, _ in SIDES}
        self.failed = []
        try:
            with open(os.path.join(label_dir, "failed.tsv")) as f:
                self.failed = [line.rstrip("\n").split("\t") for line in f if line.strip()]
        except FileNotFoundError:
            pass

    def stats(self, side, name):
        return load_stats(self.dir, side, name)

    def per_file(self, side, name, key="requests"):
        s = self.stats(side, name)
        return s[key] / self.files if key in s and self.files else None

    def best_peer(self, side):
        """(name, median) of the fastest xcp or fcp at any thread count."""
        peers = [(t, n) for n, t in self.medians[side].items() if n.split()[0] in ("xcp", "fcp")]
        return min(peers)[::-1] if peers else (None, None)


def verdict(value, op, limit):
    if value is None:
        return "–"
    return "met" if (value <= limit if op == "<=" else value >= limit) else "**missed**"


def targets(lab):
    rows = []
    for side, _ in SIDES:
        med = lab.medians[side]
        pcopy = med.get("pcopy")
        best, best_t = lab.best_peer(side)
        r = pcopy / best_t if pcopy and best_t else None
        rows.append(("%s: pcopy / best of xcp and fcp ≤ 1.0" % SIDE_SHORT[side],
                     "%.2f× (best: %s)" % (r, best) if r else "not measured", verdict(r, "<=", 1.0)))
        cp = med.get("cp -a")
        r = cp / pcopy if cp and pcopy else None
        rows.append(("%s: cp -a / pcopy ≥ 8" % SIDE_SHORT[side],
                     "%.2f×" % r if r else "not measured", verdict(r, ">=", 8.0)))
    p, c = lab.per_file("dst", "pcopy"), lab.per_file("dst", "cp -a")
    rows.append(("destination slow: requests per file, pcopy ≤ cp -a",
                 "%.2f against %.2f" % (p, c) if p and c else "not measured",
                 verdict(p - c if p and c else None, "<=", 0.0)))
    return rows


def side_table(lab, side):
    med = lab.medians[side]
    base = med.get("pcopy")
    rows = ["| Copier | Median | pcopy / copier | Requests per file | Mean in flight | Peak in flight |",
            "|---|---|---|---|---|---|"]
    for name in sorted(med, key=order_key):
        s = lab.stats(side, name)
        req = "%.2f" % (s["requests"] / lab.files) if "requests" in s and lab.files else "–"
        flight = "%.1f" % (s["busy_seconds"] / s["span_seconds"]) if s.get("span_seconds") else "–"
        peak = "%d" % s["peak_in_flight"] if "peak_in_flight" in s else "–"
        ratio = "%.2f" % (base / med[name]) if base else "–"
        rows.append("| %s | %s | %s | %s | %s | %s |" % (name, fmt_time(med[name]), ratio, req, flight, peak))
    return rows


def jobs_table(lab):
    """pcopy's files per second by -j on both sides, and against the default."""
    names = sorted({n for side, _ in SIDES for n in lab.medians[side] if n.startswith("pcopy")}, key=order_key)
    rows = ["| -j | Source slow: files/s | × default | Destination slow: files/s | × default |",
            "|---|---|---|---|---|"]
    for name in names:
        cells = []
        for side, _ in SIDES:
            med = lab.medians[side]
            if name in med and lab.files:
                cells += ["%.0f" % (lab.files / med[name]),
                          "%.2f" % (med["pcopy"] / med[name]) if "pcopy" in med else "–"]
            else:
                cells += ["–", "–"]
        # The default depends on the mount (see src/autojobs.rs).
        shown = "default (no -j)" if name == "pcopy" else name.split()[-1]
        rows.append("| %s | %s |" % (shown, " | ".join(cells)))
    return rows


def kinds_table(lab):
    """Requests per file on the slow destination by kind, for cp, rsync,
    the fastest xcp and fcp, and pcopy at its default and fastest -j."""
    med = lab.medians["dst"]
    cols = [n for n in ("cp -a", "rsync -a") if n in med]
    for tool in ("xcp", "fcp", "pcopy"):
        runs = [(t, n) for n, t in med.items() if n.split()[0] == tool]
        if tool == "pcopy" and "pcopy" in med:
            cols.append("pcopy")
        if runs and min(runs)[1] not in cols:
            cols.append(min(runs)[1])
    stats = {c: lab.stats("dst", c) for c in cols}
    skip = {"delay_ms", "requests", "busy_seconds", "span_seconds", "peak_in_flight"}
    kinds = [k for k in next(iter(stats.values()), {}) if k not in skip]
    if not cols or not lab.files:
        return []
    rows = ["| Request | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for k in kinds:
        values = [stats[c].get(k, 0) / lab.files for c in cols]
        if max(values) >= 0.005:
            rows.append("| %s | " % k + " | ".join("%.2f" % v for v in values) + " |")
    rows.append("| **requests** | " + " | ".join("**%.2f**" % (stats[c].get("requests", 0) / lab.files) for c in cols) + " |")
    return rows


def label_section(lab):
    env = lab.env
    opts = env.get("slowfs options", "none")
    title = "%s per request" % env.get("delay", "? ms").replace(" per request", "")
    md = ["## " + title + ("" if opts == "none" else ", slowfs %s" % opts), ""]
    md += ["| | |", "|---|---|"]
    for key in ("date", "mode", "cpus", "cpu", "kernel", "load before", "delay", "slowfs options", "rounds",
                "tree", "other side", "busy rounds", "pcopy", "cp", "rsync", "xcp", "fcp", "hyperfine"):
        if key in env:
            md.append("| %s | %s |" % (key, env[key].replace("|", "\\|").replace(";", "; ")))
    if lab.failed:
        md += ["", "Left out of the timing (nonzero exit or inexact copy): "
               + "; ".join("%s, %s slow (exit %s)" % (n, SIDE_SHORT.get(s, s), rc) for s, n, rc in lab.failed) + "."]
    md += ["", "### Targets", "", "| Target | Measured | |", "|---|---|---|"]
    md += ["| %s | %s | %s |" % t for t in targets(lab)]
    for side, title in SIDES:
        if lab.medians[side]:
            md += ["", "### " + title, ""] + side_table(lab, side)
    md += ["", "### pcopy's throughput by -j", ""] + jobs_table(lab)
    kinds = kinds_table(lab)
    if kinds:
        md += ["", "### Requests per file on the slow destination, by kind", ""] + kinds
    return md


def robust_section(out):
    try:
        with open(os.path.join(out, "robust.tsv")) as f:
            rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    except FileNotFoundError:
        return []
    env = read_kv(os.path.join(out, "robust-env.txt"))
    md = ["## Robustness (not timed)", ""]
    if "deep tree" in env:
        md += ["Deep tree: %s, odd entries around it (`gen_tree.py odd --deep 6000`). "
               "ulimit checks: the small tree." % env["deep tree"], ""]
    md += ["| Check | Exit | Copy | Target: exit 0, exact | First message |", "|---|---|---|---|---|"]
    for row in rows:
        name, rc, exact, message = (row + ["", "", "", ""])[:4]
        peer = "(peer)" in name
        ok = rc == "0" and exact == "exact"
        target = "–" if peer else ("met" if ok else "**missed**")
        md.append("| %s | %s | %s | %s | %s |" % tuple(
            shorten(c).replace("|", "\\|") for c in (name, rc, exact, target, message.strip() or "–")))
    return md


ROBUST_HEADING = "## Robustness (not timed)"


def sections(text):
    """The `## ` sections of a report, heading -> lines, in order."""
    found, heading = {}, None
    for line in text.splitlines():
        if line.startswith("## "):
            heading = line
            found[heading] = []
        if heading is not None:
            found[heading].append(line)
    return found


def keep_unrun(text, old_text):
    """`text` with the sections of `old_text` that this run did not
    produce (another delay or slowfs options, or the robustness part):
    a run of some parts must not erase the results of the others."""
    new, old = sections(text), sections(old_text)
    lines = text.rstrip("\n").splitlines()
    robust = new.get(ROBUST_HEADING) or old.get(ROBUST_HEADING)
    if ROBUST_HEADING in new:
        lines = lines[:lines.index(ROBUST_HEADING)]
    while lines and not lines[-1].strip():
        lines.pop()
    for heading, body in old.items():
        if heading not in new and heading != ROBUST_HEADING:
            lines += [""] + body
            while lines and not lines[-1].strip():
                lines.pop()
    if robust:
        lines += [""] + robust
    return "\n".join(lines).rstrip("\n") + "\n"


def markdown(labels, out):
    md = ["# pcopy on latency-bound storage, and the walk's robustness", "",
          "Produced by `bench/run.sh` (parts `latency` and `robust`). The slow mount is "
          "`bench/slowfs`, a FUSE passthrough of a tmpfs directory that sleeps a fixed delay in "
          "every request, served by 128 threads, with entries, attributes and negative lookups "
          "cached for 1 s and directories listed with attributes (READDIRPLUS), unless the "
          "options say otherwise. Every run starts on a fresh mount (cold caches). "
          "Ratios are of median wall times: pcopy / copier below 1 means pcopy is faster. "
          "Requests per file, mean and peak in flight are slowfs's counters in an untimed run "
          "of each copier (requests that got a reply; mean in flight is the time requests were "
          "being served, summed, over the span from the first to the last).", ""]
    for lab in labels:
        md += label_section(lab) + [""]
    md += robust_section(out)
    return "\n".join(md).rstrip("\n") + "\n"


def main():
    parser = argparse.ArgumentParser(description="latency and robustness report")
    parser.add_argument("--out", required=True)
    parser.add_argument("--md", required=True)
    args = parser.parse_args()
    labels = [Label(d) for d in sorted(glob.glob(os.path.join(args.out, "latency", "*")))
              if os.path.isdir(d)]
    labels.sort(key=lambda lab: (lab.env.get("slowfs options", "") != "none", lab.env.get("label", "")))
    text = markdown(labels, args.out)
    try:
        with open(args.md) as f:
            text = keep_unrun(text, f.read())
    except FileNotFoundError:
        pass
    with open(args.md, "w") as f:
        f.write(text)
    for lab in labels:
        print("\n%s: %s" % (lab.env.get("delay", "?"), lab.env.get("slowfs options", "?")))
        for label, value, verdict_ in targets(lab):
            print("  %-55s %-28s %s" % (label, value, verdict_.strip("*")))
    for line in robust_section(args.out)[4:]:
        print("  " + line)
    print("\nWrote %s" % args.md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
