#!/usr/bin/env bash
# Does the growing default -j pay? pcopy without -j (the default, which
# grows on a remote mount: src/run/grow.rs) against fixed -j 128 and
# -j 256 through bench/slowfs at several delays, and without -j against
# -j <CPUs> on tmpfs, where the pool must never grow. See --help.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: bench/grow.sh [OPTIONS]

Times, with hyperfine, medians of --runs rounds (each round runs every
command of a case once, so a change of the machine's load falls on all
of them alike, and each round starts with the next command, as the
first of a round measured up to 3 % faster on tmpfs), every run on a fresh slowfs mount (cold caches), a tree of --files files of 1-16 KiB in
--files/100 directories:
  - source on slowfs at 1, 5 and 20 ms a request, copied to tmpfs;
  - destination on slowfs at 1 and 5 ms a request, copied from tmpfs;
each with pcopy (no -j), pcopy -j 128, pcopy -j 256 and every --also
binary (no -j). Then on tmpfs both sides: pcopy (no -j) against -j
<CPUs>. An untimed run of each (no -j) with -v --json first records the
workers it ended with and the growth steps it printed (steps.txt).
Writes bench/results-grow.md (or --md FILE).

Options:
  --runs N          Rounds: timed runs of each command (default 3).
  --files N         Files in the tree (default 10000).
  --delays LIST     Which cases, as SIDE:MS,... (default
                    src:1,src:5,src:20,dst:1,dst:5).
  --slowfs-threads N
                    Requests slowfs serves at once (default 128).
  --also LABEL=BIN  Also time this pcopy binary without -j. Repeatable.
  --pcopy BIN       Time this binary instead of a release build of the
                    work tree.
  --dir DIR         Where the trees and the mount go (default
                    /dev/shm/pcopy-grow; removed at the end).
  --md FILE         The report (default bench/results-grow.md).
  --no-tmpfs        Leave out the tmpfs case.
  -h, --help        This text.

Needs root and /dev/fuse (slowfs), hyperfine and python3.
EOF
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
runs=3 files=10000 delays=src:1,src:5,src:20,dst:1,dst:5 threads=128 pcopy='' base=/dev/shm/pcopy-grow
md=$here/results-grow.md tmpfs=1
also=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift ;;
    --files) files=$2; shift ;;
    --delays) delays=$2; shift ;;
    --slowfs-threads) threads=$2; shift ;;
    --also) also+=("$2"); shift ;;
    --pcopy) pcopy=$2; shift ;;
    --dir) base=$2; shift ;;
    --md) md=$2; shift ;;
    --no-tmpfs) tmpfs=0 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "grow.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
for n in "$runs" "$files" "$threads"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "grow.sh: $n is not a positive number" >&2; exit 2; }
done
command -v hyperfine >/dev/null || { echo "grow.sh: hyperfine is required" >&2; exit 1; }
if [ "$(id -u)" != 0 ] || [ ! -c /dev/fuse ]; then
  echo "grow.sh: slowfs mounts FUSE as root (/dev/fuse)" >&2
  exit 1
fi

log() { printf '[grow.sh %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
q() { printf '%q' "$1"; }

target_dir=${CARGO_TARGET_DIR:-$repo/target}
if [ -z "$pcopy" ]; then
  log "build"
  (cd "$repo" && cargo build --release --quiet)
  pcopy=$target_dir/release/pcopy
  pcopy_source="work tree of $(git -C "$repo" describe --always --dirty 2>/dev/null || echo '?')"
else
  pcopy_source="given binary $pcopy"
fi
cargo build --release --quiet --manifest-path "$here/slowfs/Cargo.toml" --target-dir "$target_dir"
slowfs=$target_dir/release/slowfs
cpus=$(nproc)

out=$base/out
tree=$base/src/tree
mnt=$base/mnt pidfile=$base/slowfs.pid
mkdir -p "$base/src" "$base/dst" "$out" "$mnt"
log "tree: $files files in $tree"
python3 "$here/gen_tree.py" many "$tree" --files "$files" --dirs $((files / 100)) --max-size 16k --min-size 1k

unmount_cmd() { printf '%s --unmount --pidfile %s %s' "$(q "$slowfs")" "$(q "$pidfile")" "$(q "$mnt")"; }
cleanup() {
  bash -c "$(unmount_cmd)" 2>/dev/null || true
  rm -rf "$base"
}
trap cleanup EXIT

# side SIDE: what slowfs serves (back), what is copied from and to, and
# where the copy lands outside the mount (copy), removed before each run.
side() {
  case $1 in
    src) back=$tree from=$mnt to=$base/dst/copy copy=$base/dst/copy ro=--ro ;;
    dst) back=$base/dst/back from=$tree to=$mnt/copy copy=$base/dst/back/copy ro= ;;
  esac
  mkdir -p "$back"
}

# A fresh mount at DELAY ms for the next run.
prepare_cmd() { # DELAY
  printf '%s; rm -rf %s && %s --background %s --threads %s --delay-ms %s --pidfile %s %s %s' \
    "$(unmount_cmd)" "$(q "$copy")" "$(q "$slowfs")" "$ro" "$threads" "$1" \
    "$(q "$pidfile")" "$(q "$back")" "$(q "$mnt")"
}

# The commands of a case: label<TAB>command.
commands() {
  printf 'no -j\t%s -q %s/ %s\n' "$(q "$pcopy")" "$(q "$from")" "$(q "$to")"
  printf -- '-j 128\t%s -q -j 128 %s/ %s\n' "$(q "$pcopy")" "$(q "$from")" "$(q "$to")"
  printf -- '-j 256\t%s -q -j 256 %s/ %s\n' "$(q "$pcopy")" "$(q "$from")" "$(q "$to")"
  local a
  for a in "${also[@]}"; do
    printf '%s\t%s -q %s/ %s\n' "${a%%=*}" "$(q "${a#*=}")" "$(q "$from")" "$(q "$to")"
  done
}

# hyperfine's arguments for the label<TAB>command LINES, starting with the
# ROUND-th (modulo their count): one argument a line.
rotated() { # ROUND LINE...
  local round=$1 i n
  shift
  n=$#
  local all=("$@")
  for ((i = 0; i < n; i++)); do
    local line=${all[$(((round + i) % n))]}
    printf -- '--command-name=%s\n%s\n' "${line%%$'\t'*}" "${line#*$'\t'}"
  done
}

# An untimed run of BIN (no -j) with -v --json: the workers it ended with
# and its growth steps go to steps.txt; the copy must be exact.
record_steps() { # CASE LABEL BIN PREPARE
  bash -c "$4"
  local json
  json=$("$3" -v --json "$from/" "$to" 2>"$out/stderr.txt" >"$out/stdout.txt"; tail -n1 "$out/stdout.txt")
  diff -rq "$tree" "$copy" >&2 || { echo "grow.sh: $1 $2: the copy differs" >&2; exit 1; }
  local workers
  workers=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["workers"])' "$json")
  {
    printf '%s\t%s\tworkers %s' "$1" "$2" "$workers"
    { grep '^pcopy: workers ' "$out/stderr.txt" || true; } | sed 's/^pcopy: /; /' | tr -d '\n'
    echo
  } >>"$out/steps.txt"
}

: >"$out/steps.txt"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
IFS=, read -r -a cases <<<"$delays"
for c in "${cases[@]}"; do
  s=${c%%:*} delay=${c#*:}
  side "$s"
  log "$s slow at $delay ms"
  record_steps "$c" "no -j" "$pcopy" "$(prepare_cmd "$delay")"
  for a in "${also[@]}"; do record_steps "$c" "${a%%=*}" "${a#*=}" "$(prepare_cmd "$delay")"; done
  mapfile -t lines < <(commands)
  echo "$c $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/load.txt"
  for r in $(seq "$runs"); do
    mapfile -t args < <(rotated "$r" "${lines[@]}")
    hyperfine --runs 1 --prepare "$(prepare_cmd "$delay")" --export-json "$out/$s-$delay.round$r.json" \
      --style basic "${args[@]}" >&2 || { echo "grow.sh: hyperfine failed on $c" >&2; exit 1; }
  done
  bash -c "$(unmount_cmd)"
done

if [ "$tmpfs" = 1 ]; then
  log "tmpfs"
  from=$tree to=$base/dst/copy copy=$base/dst/copy
  prep="rm -rf $(q "$copy")"
  bash -c "$prep"
  record_steps tmpfs "no -j" "$pcopy" "$prep"
  echo "tmpfs $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/load.txt"
  lines=("no -j"$'\t'"$pcopy -q $(q "$from")/ $(q "$to")"
    "-j $cpus"$'\t'"$pcopy -q -j $cpus $(q "$from")/ $(q "$to")")
  for r in $(seq $((runs * 3))); do
    mapfile -t args < <(rotated "$r" "${lines[@]}")
    hyperfine --runs 1 --prepare "$prep" --export-json "$out/tmpfs.round$r.json" --style basic \
      "${args[@]}" >&2
  done
fi

{
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "pcopy: $pcopy_source"
  echo "cpus: $cpus"
  echo "load before: $load_before"
  echo "tree: $files files of 1-16 KiB in $((files / 100)) directories"
  echo "slowfs threads: $threads"
  echo "rounds: $runs (tmpfs: $((runs * 3))), each command once a round, every slowfs run on a fresh mount"
} >"$out/env.txt"
python3 - "$out" "$md" <<'EOF'
import json, os, statistics, sys

out, md = sys.argv[1], sys.argv[2]
env = dict(line.rstrip("\n").split(": ", 1) for line in open(os.path.join(out, "env.txt")))
loads = dict(line.split(" ", 1) for line in open(os.path.join(out, "load.txt")).read().splitlines())
steps = {}
for line in open(os.path.join(out, "steps.txt")):
    case, label, rest = line.rstrip("\n").split("\t", 2)
    steps[(case, label)] = rest

def medians(case):
    """(command, median) of every round file of `case`, in command order."""
    times = {}
    for name in sorted(os.listdir(out)):
        if name.startswith(case + ".round") and name.endswith(".json"):
            for r in json.load(open(os.path.join(out, name)))["results"]:
                times.setdefault(r["command"], []).extend(r["times"])
    first = ["no -j", "-j 128", "-j 256"]
    order = lambda command: (first.index(command) if command in first else len(first), command)
    return [(command, statistics.median(times[command])) for command in sorted(times, key=order)]

lines = ["# The growing default -j against fixed counts", "",
         "Produced by `bench/grow.sh`. Ratios are of median wall times against "
         "`-j 128` (below 1: faster than `-j 128`).", ""]
lines += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in env.items()]
lines += ["", "| Case | Command | Median | / -j 128 | Load before | No -j ended with |",
          "|---|---|---|---|---|---|"]
cases = sorted({n.split(".")[0] for n in os.listdir(out) if ".round" in n} - {"tmpfs"},
               key=lambda c: (c.split("-")[0], float(c.split("-")[1])))
for name in cases:
    side, delay = name.split("-")
    case = f"{side}:{delay}"
    rows = medians(name)
    base = dict(rows).get("-j 128")
    what = "source" if side == "src" else "destination"
    for command, median in rows:
        ratio = f"{median / base:.2f}" if base else "?"
        ended = steps.get((case, command), "")
        lines.append(f"| {what} slow, {delay} ms | {command} | {median:.2f} s | {ratio} | "
                     f"{loads.get(case, '?')} | {ended} |")
rows = medians("tmpfs")
if rows:
    fixed, base = next(row for row in rows if row[0] != "no -j")
    lines += ["", f"| tmpfs | Median | / {fixed} | No -j ended with |", "|---|---|---|---|"]
    for command, median in rows:
        lines.append(f"| {command} | {median:.3f} s | {median / base:.2f} | "
                     f"{steps.get(('tmpfs', command), '')} |")
    lines.append(f"\nLoad before the tmpfs case: {loads.get('tmpfs', '?')}")
open(md, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
log "wrote $md"
