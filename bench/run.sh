#!/usr/bin/env bash
# pcopy's benchmark harness: pcopy against cp -a, rsync -a, xcp, fcp, the
# seed's Python Pool copier and a floor program, on synthetic trees and a
# copy of /usr/share. See `bench/run.sh --help`.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: bench/run.sh [OPTIONS]

Generates the source trees (deterministic, cached between runs), installs
missing peers, builds pcopy (release) and the floor program, times every
copier on each tree with hyperfine, then measures the no-op rerun,
--workers process against thread, peak RSS on 200,000 tiny files and
system calls per file, and writes the ratio table and a chart.

Options:
  --smoke           Tiny trees, 2 rounds: a check that everything works
                    (seconds once built). Results go to the output dir only.
  --rounds K        Rounds per tree (default 10; smoke 2). A round is one
                    hyperfine with every copier, the first with a warmup
                    run each. hyperfine runs all runs of one command before
                    the next, so the copiers are interleaved by rounds: a
                    neighbour's build on a shared machine then slows every
                    copier alike instead of one. Runs of all rounds are pooled.
  --runs N          Timed runs per copier in each round (default 1).
  --seed-runs N     Rounds that include the slow Python seed copier
                    (default 2; smoke 1), from the second round on.
  --idle-wait SECS  Before each round, wait up to SECS for the CPUs to be
                    idle (under 25 % busy over a second; default 120, smoke 0).
  --dst-dir DIR     Copies are written in DIR/dst (default /dev/shm/pcopy-bench,
                    tmpfs). Give a directory on a disk to measure a disk.
  --src-dir DIR     Source trees are generated in DIR/src (default
                    /dev/shm/pcopy-bench).
  --out DIR         JSON, logs and reports (default bench/out, smoke
                    bench/out/smoke). Results of parts not run (--only) stay
                    and are reported with the new ones.
  --usr-share-cap SIZE
                    Copy at most this much of /usr/share, whole top-level
                    entries in name order (default 1G; smoke 10M).
  --only LIST       Comma-separated parts to run: small,big8,huge1,usrshare,
                    rerun,workers,rss,strace (default all).
  --profile         Also record `perf` profiles of pcopy on the small tree
                    and the 8 x 128 MiB tree (perf from linux-perf).
  --pcopy BIN       Benchmark this pcopy binary instead of building the work
                    tree (say, a release build of a given commit).
  --no-install      Do not install anything; missing peers are left out.
  -h, --help        This text.

A full run writes bench/results.md and bench/results.svg.
EOF
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

smoke=0 runs=1 seed_runs='' rounds='' idle_wait='' install=1 profile=0 only=all cap='' pcopy=''
src_parent=/dev/shm/pcopy-bench dst_parent=/dev/shm/pcopy-bench out=
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) smoke=1 ;;
    --runs) runs=$2; shift ;;
    --seed-runs) seed_runs=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    --idle-wait) idle_wait=$2; shift ;;
    --dst-dir) dst_parent=$2; shift ;;
    --src-dir) src_parent=$2; shift ;;
    --out) out=$2; shift ;;
    --usr-share-cap) cap=$2; shift ;;
    --only) only=$2; shift ;;
    --profile) profile=1 ;;
    --pcopy) pcopy=$(realpath "$2"); shift ;;
    --no-install) install=0 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown option: $1 (see --help)" >&2; exit 1 ;;
  esac
  shift
done
# Only these subdirectories are ever written or removed, so a --dst-dir
# that holds other things keeps them.
if [ "$smoke" = 1 ]; then
  rounds=${rounds:-2} cap=${cap:-10M} seed_runs=${seed_runs:-1} idle_wait=${idle_wait:-0}
  src_base=$src_parent/src-smoke dst_base=$dst_parent/dst-smoke out=${out:-$here/out/smoke}
else
  rounds=${rounds:-10} cap=${cap:-1G} seed_runs=${seed_runs:-2} idle_wait=${idle_wait:-120}
  src_base=$src_parent/src dst_base=$dst_parent/dst out=${out:-$here/out}
fi
for n in "$runs" "$seed_runs" "$rounds" "$idle_wait"; do
  case "$n" in ''|*[!0-9]*) echo "run.sh: counts and seconds must be integers, not '$n'" >&2; exit 1 ;; esac
done
if [ "$runs" -eq 0 ] || [ "$rounds" -eq 0 ]; then
  echo "run.sh: --runs and --rounds must be positive" >&2
  exit 1
fi

log() { printf '\n== %s\n' "$*" >&2; }
wants() { [ "$only" = all ] || [[ ",$only," == *",$1,"* ]]; }
if [ "$only" != all ]; then
  IFS=, read -ra parts <<<"$only"
  for part in "${parts[@]}"; do
    case "$part" in
      small|big8|huge1|usrshare|rerun|workers|rss|strace) ;;
      *) echo "run.sh: unknown part '$part' in --only (see --help)" >&2; exit 1 ;;
    esac
  done
fi

# ---------------------------------------------------------------- tools
apt_updated=0
apt_install() { # PACKAGE...
  [ "$install" = 1 ] || return 1
  local sudo=
  [ "$(id -u)" = 0 ] || sudo=sudo
  if [ "$apt_updated" = 0 ]; then
    $sudo apt-get update -qq >&2 || return 1
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >&2
}

need_apt() { # COMMAND PACKAGE
  command -v "$1" >/dev/null || apt_install "$2" || true
  command -v "$1" >/dev/null
}

need_cargo() { # COMMAND CRATE
  command -v "$1" >/dev/null && return 0
  [ -x "$HOME/.cargo/bin/$1" ] && { PATH="$HOME/.cargo/bin:$PATH"; return 0; }
  if [ "$install" = 1 ]; then
    cargo install --locked "$2" >&2 || cargo install "$2" >&2 || true
  fi
  PATH="$HOME/.cargo/bin:$PATH"
  command -v "$1" >/dev/null
}

log "tools"
need_apt hyperfine hyperfine || { echo "run.sh: hyperfine is required" >&2; exit 1; }
need_apt python3 python3 || { echo "run.sh: python3 is required" >&2; exit 1; }
have_rsync=0 have_xcp=0 have_fcp=0 have_strace=0 have_time=0
need_apt rsync rsync && have_rsync=1
need_cargo xcp xcp && have_xcp=1
need_cargo fcp fcp && have_fcp=1
need_apt strace strace && have_strace=1
[ -x /usr/bin/time ] || apt_install time || true
[ -x /usr/bin/time ] && have_time=1
for t in rsync xcp fcp strace time; do
  v=have_$t
  [ "${!v}" = 1 ] || echo "run.sh: $t not available: left out" >&2
done

target_dir=${CARGO_TARGET_DIR:-$repo/target}
log "build (target dir $target_dir)"
if [ -z "$pcopy" ]; then
  (cd "$repo" && cargo build --release --quiet)
  pcopy=$target_dir/release/pcopy
  pcopy_source="work tree of $(git -C "$repo" describe --always --dirty 2>/dev/null || echo '?')"
else
  pcopy_source="given binary $pcopy"
fi
[ -x "$pcopy" ] || { echo "run.sh: no pcopy binary at $pcopy" >&2; exit 1; }
cargo build --release --quiet --manifest-path "$here/floor/Cargo.toml" --target-dir "$target_dir"
floor=$target_dir/release/pcopy-floor
cargo build --release --quiet --manifest-path "$here/chart/Cargo.toml" --target-dir "$target_dir"
chart=$target_dir/release/pcopy-chart
seed=$repo/../shared/anchors/seed_pool_copier.py
[ -f "$seed" ] || seed=

mkdir -p "$src_base" "$dst_base" "$out/json"
: >"$out/busy.txt"
q() { printf '%q' "$1"; }

# ---------------------------------------------------------------- trees
log "source trees in $src_base"
gen() { python3 "$here/gen_tree.py" "$@"; }
if [ "$smoke" = 1 ]; then
  gen many "$src_base/small" --files 300 --dirs 30 --max-size 64k --mean 11150
  gen big "$src_base/big8" --count 2 --size 4M
  gen big "$src_base/huge1" --count 1 --size 16M
  gen many "$src_base/tiny200k" --files 2000 --dirs 20 --max-size 100
else
  gen many "$src_base/small" --files 20000 --dirs 1000 --max-size 64k --mean 11150
  gen big "$src_base/big8" --count 8 --size 128M
  gen big "$src_base/huge1" --count 1 --size 1G
  gen many "$src_base/tiny200k" --files 200000 --dirs 2000 --max-size 100
fi

to_bytes() { numfmt --from=iec "$1"; }

# A copy of /usr/share, whole top-level entries in name order while they fit
# under the cap; the note says what was left out.
copy_usr_share() {
  local dst=$src_base/usrshare stamp=$src_base/usrshare.stamp limit total=0 size name
  limit=$(to_bytes "$cap")
  if [ -f "$stamp" ] && [ "$(head -n1 "$stamp")" = "cap=$limit" ]; then return 0; fi
  rm -rf "$dst" "$stamp"
  mkdir -p "$dst"
  local left_out=0
  while IFS=$'\t' read -r size name; do
    if [ $((total + size)) -le "$limit" ]; then
      cp -a "$name" "$dst/"
      total=$((total + size))
    else
      left_out=$((left_out + 1))
    fi
  done < <(du -sb /usr/share/* 2>/dev/null | sort -t "$(printf '\t')" -k2)
  # Special files cannot be copied by every peer; the tree has none normally.
  find "$dst" ! -type f ! -type d ! -type l -delete
  printf 'cap=%s\ncopied %s bytes of /usr/share; %s top-level entries left out\n' \
    "$limit" "$total" "$left_out" >"$stamp"
}
copy_usr_share
sed -n 2p "$src_base/usrshare.stamp" >&2

# ---------------------------------------------------------------- tree info
{
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "mode: $([ "$smoke" = 1 ] && echo smoke || echo full)"
  echo "cpus: $(nproc)"
  echo "kernel: $(uname -r)"
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "src fs: $(stat -f -c %T "$src_base")"
  echo "dst fs: $(stat -f -c %T "$dst_base") ($dst_base)"
  echo "runs: $rounds rounds x $runs run(s) per copier, warmup 1 in the first round; seed copier in $seed_runs round(s)"
  echo "pcopy: $("$pcopy" --version), $pcopy_source"
  echo "cp: $(cp --version | head -n1)"
  [ "$have_rsync" = 1 ] && echo "rsync: $(rsync --version | head -n1)"
  [ "$have_xcp" = 1 ] && echo "xcp: $(xcp --version 2>&1 | head -n1)"
  [ "$have_fcp" = 1 ] && echo "fcp: $(fcp --version 2>&1 | head -n1)"
  echo "hyperfine: $(hyperfine --version)"
  echo "python: $(python3 --version 2>&1)"
  echo "usrshare: $(sed -n 2p "$src_base/usrshare.stamp")"
  for t in small big8 huge1 usrshare tiny200k; do
    echo "tree $t: $(find "$src_base/$t" -type f | wc -l) files, $(find "$src_base/$t" -type d | wc -l) dirs, $(find "$src_base/$t" -type l | wc -l) symlinks, $(du -sb "$src_base/$t" | cut -f1) bytes"
  done
} >"$out/env.txt"

# ---------------------------------------------------------------- checks
# Every copier must produce the same tree; a benchmark of a broken copy is
# worthless. Checked once per tree with pcopy (the subject), and in smoke
# mode with every peer.
verify() { # NAME SRC DST
  if ! diff -r --no-dereference -q "$2" "$3" >&2; then
    echo "run.sh: $1 did not copy $2 correctly" >&2
    exit 1
  fi
}

# ---------------------------------------------------------------- benches
# copier_commands TREE DST: name<TAB>command lines for every available copier.
copier_commands() {
  local src=$1 dst=$2
  printf 'pcopy\t%s -q %s/ %s\n' "$(q "$pcopy")" "$(q "$src")" "$(q "$dst")"
  printf 'cp -a\tcp -a %s %s\n' "$(q "$src")" "$(q "$dst")"
  [ "$have_rsync" = 1 ] && printf 'rsync -a\trsync -a %s/ %s/\n' "$(q "$src")" "$(q "$dst")"
  [ "$have_xcp" = 1 ] && printf 'xcp\txcp -r --no-progress %s %s\n' "$(q "$src")" "$(q "$dst")"
  [ "$have_fcp" = 1 ] && printf 'fcp\tfcp %s %s\n' "$(q "$src")" "$(q "$dst")"
  return 0
}

# On a disk, dirty pages of the previous run are written out first so one
# copier does not pay for another's writeback.
prepare_cmd() { # DST
  local cmd
  cmd="rm -rf $(q "$1")"
  [ "$(stat -f -c %T "$dst_base")" = tmpfs ] || cmd="$cmd && sync"
  printf '%s' "$cmd"
}

# The share of CPU time not idle over one second, in percent.
cpu_busy() {
  local a b
  read -ra a < <(grep '^cpu ' /proc/stat)
  sleep 1
  read -ra b < <(grep '^cpu ' /proc/stat)
  local total=0 i
  for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
  local idle=$((b[4] - a[4] + b[5] - a[5]))
  echo $(( total > 0 ? 100 * (total - idle) / total : 0 ))
}

# Waits (up to --idle-wait seconds) until other work leaves the CPUs alone;
# a round that starts on a busy machine anyway is recorded in busy.txt.
wait_idle() { # WHAT
  [ "$idle_wait" -gt 0 ] || return 0
  local start=$SECONDS busy
  while busy=$(cpu_busy); [ "$busy" -ge 25 ]; do
    if [ $((SECONDS - start)) -ge "$idle_wait" ]; then
      echo "$1: started with the CPUs $busy % busy" | tee -a "$out/busy.txt" >&2
      return 0
    fi
    sleep 2
  done
}

# hyperfine_group GROUP PREPARE < name<TAB>command lines: --rounds rounds
# of one hyperfine each. The seed copier (a name starting with "seed") is
# slow: it runs only in rounds 2 .. seed_runs + 1 (so it is not warmed up),
# or in the only round.
rotate() { # LINES K: the lines, starting at the (K+1)th and wrapping around
  { tail -n +$(($2 + 1)) <<<"$1"; head -n "$2" <<<"$1"; }
}

hyperfine_group() {
  local group=$1 round args warmup prepare_args=() name cmd lines
  [ -z "$2" ] || prepare_args=(--prepare "$2")
  lines=$(cat)
  rm -f "$out/json/$group".r*.json
  local count
  count=$(wc -l <<<"$lines")
  for round in $(seq 1 "$rounds"); do
    args=()
    # Each round starts with the next copier: a position effect (the first
    # run after the idle wait, say) then falls on every copier alike.
    while IFS=$'\t' read -r name cmd; do
      if [[ $name == seed* ]] && [ "$rounds" -gt 1 ] &&
        { [ "$round" -lt 2 ] || [ "$round" -gt $((seed_runs + 1)) ]; }; then
        continue
      fi
      args+=(-n "$name" "$cmd")
    done < <(rotate "$lines" $(((round - 1) % count)))
    warmup=$((round == 1 ? 1 : 0))
    wait_idle "$group round $round"
    log "$group (round $round/$rounds)"
    hyperfine --style basic --warmup "$warmup" --runs "$runs" "${prepare_args[@]}" \
      --export-json "$out/json/$group.r$round.json" "${args[@]}" >&2
  done
}

bench_tree() { # TREE [extra name<TAB>command lines on stdin are appended]
  local tree=$1 src=$src_base/$1 dst=$dst_base/$1
  rm -rf "$dst"
  "$pcopy" -q "$src/" "$dst"
  verify pcopy "$src" "$dst"
  if [ "$smoke" = 1 ]; then
    while IFS=$'\t' read -r name cmd; do
      rm -rf "$dst"
      bash -c "$cmd" >/dev/null
      verify "$name" "$src" "$dst"
    done < <(copier_commands "$src" "$dst")
  fi
  {
    copier_commands "$src" "$dst"
    cat
    if [ -n "$seed" ] && [ "$tree" != huge1 ] && [ "$tree" != usrshare ]; then
      printf 'seed (Python Pool)\tpython3 %s %s %s -j 2 --quiet\n' "$(q "$seed")" "$(q "$src")" "$(q "$dst")"
    fi
  } | hyperfine_group "$tree" "$(prepare_cmd "$dst")"
}

small_list=$out/small.list
"$floor" list "$src_base/small" "$small_list"

if wants small; then
  dst=$dst_base/small
  floor_line() { # NAME FLAGS
    printf '%s\t%s copy %s %s %s %s\n' "$1" "$(q "$floor")" "$2" "$(q "$small_list")" \
      "$(q "$src_base/small")" "$(q "$dst")"
  }
  {
    floor_line "floor (plain)" ""
    floor_line "floor (atomic)" --atomic
    floor_line "floor (atomic, /proc link)" "--atomic --proc-link"
  } | bench_tree small
fi
for tree in big8 huge1 usrshare; do
  if wants "$tree"; then bench_tree "$tree" </dev/null; fi
done

if wants rerun; then
  # Each copier reruns over its own earlier copy: nothing changed.
  src=$src_base/small
  lines=$(printf 'pcopy rerun\t%s -q %s/ %s\n' "$(q "$pcopy")" "$(q "$src")" "$(q "$dst_base/rerun-pcopy")"
    [ "$have_rsync" = 1 ] && printf 'rsync -a rerun\trsync -a %s/ %s/\n' "$(q "$src")" "$(q "$dst_base/rerun-rsync")"
    printf 'cp -au rerun\tcp -au %s/. %s\n' "$(q "$src")" "$(q "$dst_base/rerun-cp")")
  rm -rf "$dst_base"/rerun-*
  while IFS=$'\t' read -r name cmd; do
    mkdir -p "$dst_base/rerun-${name%% *}"
    bash -c "$cmd"
  done <<<"$lines"
  hyperfine_group rerun "" <<<"$lines"
fi

if wants workers; then
  src=$src_base/small dst=$dst_base/small
  printf 'pcopy --workers thread\t%s -q --workers thread %s/ %s\npcopy --workers process\t%s -q --workers process %s/ %s\n' \
    "$(q "$pcopy")" "$(q "$src")" "$(q "$dst")" "$(q "$pcopy")" "$(q "$src")" "$(q "$dst")" |
    hyperfine_group workers "$(prepare_cmd "$dst")"
fi

# ---------------------------------------------------------------- memory
# Peak RSS (GNU time's "Maximum resident set size": the largest of the
# process and its waited-for children) copying 200,000 tiny files.
if wants rss && [ "$have_time" = 1 ]; then
  log "peak RSS, tiny200k"
  src=$src_base/tiny200k dst=$dst_base/tiny200k
  : >"$out/rss.tsv"
  {
    printf 'pcopy\t%s -q %s/ %s\n' "$(q "$pcopy")" "$(q "$src")" "$(q "$dst")"
    printf 'pcopy --workers process\t%s -q --workers process %s/ %s\n' "$(q "$pcopy")" "$(q "$src")" "$(q "$dst")"
    copier_commands "$src" "$dst" | tail -n +2
  } | while IFS=$'\t' read -r name cmd; do
    rm -rf "$dst"
    /usr/bin/time -v -o "$out/time.txt" bash -c "exec $cmd" </dev/null
    kib=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$out/time.txt")
    secs=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$out/time.txt")
    printf '%s\t%s\t%s\n' "$name" "$kib" "$secs" | tee -a "$out/rss.tsv" >&2
  done
  rm -rf "$dst"
fi

# ---------------------------------------------------------------- syscalls
if wants strace && [ "$have_strace" = 1 ]; then
  log "system calls, small tree (strace -f -c)"
  src=$src_base/small dst=$dst_base/small
  for variant in thread process floor; do
    rm -rf "$dst"
    case $variant in
      floor) cmd=("$floor" copy --atomic "$small_list" "$src" "$dst") ;;
      *) cmd=("$pcopy" -q --workers "$variant" "$src/" "$dst") ;;
    esac
    strace -f -c -o "$out/strace-$variant.txt" "${cmd[@]}"
  done
  rm -rf "$dst"
fi

# ---------------------------------------------------------------- profiles
if [ "$profile" = 1 ]; then
  if need_apt perf linux-perf && perf record -o /dev/null -- true 2>/dev/null; then
    for tree in small big8; do
      log "perf profile, $tree"
      rm -rf "${dst_base:?}/$tree"
      perf record -q -g -o "$out/perf-$tree.data" -- "$pcopy" -q "$src_base/$tree/" "$dst_base/$tree"
      # Flat (where the samples are) and inclusive (which of pcopy's
      # functions they are under).
      perf report -i "$out/perf-$tree.data" --no-children -g none --percent-limit 0.5 --stdio \
        >"$out/perf-$tree.txt" 2>/dev/null
      perf report -i "$out/perf-$tree.data" --children -g none --percent-limit 2 --stdio \
        >>"$out/perf-$tree.txt" 2>/dev/null
    done
  else
    echo "run.sh: perf does not work here: no profiles" >&2
  fi
fi

rm -rf "$dst_base"
echo "run.sh: source trees kept for the next run in $src_base ($(du -sh "$src_base" | cut -f1)); rm -rf it to free the space" >&2
# ---------------------------------------------------------------- report
files_small=$(find "$src_base/small" -type f | wc -l)
report_args=(--out "$out" --files "$files_small")
svg=$out/results.svg
if [ "$smoke" = 0 ]; then
  report_args+=(--md "$here/results.md")
  svg=$here/results.svg
fi
python3 "$here/report.py" "${report_args[@]}"
"$chart" "$out/chart.json" "$svg"
echo "run.sh: chart in $svg" >&2
