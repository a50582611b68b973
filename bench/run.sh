#!/usr/bin/env bash
# pcopy's benchmark harness: pcopy against cp -a, rsync -a, xcp, fcp, the
# seed's Python Pool copier and a floor program, on synthetic trees and a
# copy of /usr/share, on tmpfs and through a mount that delays every
# request. See `bench/run.sh --help`.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: bench/run.sh [OPTIONS]

Generates the source trees (deterministic, cached between runs), installs
missing peers, builds pcopy (release) and the floor program, times every
copier on each tree with hyperfine, then measures the no-op rerun,
--workers process against thread, peak RSS on 200,000 tiny files and
system calls per file, and writes the ratio table and a chart. Then the
latency-bound case (every copier through slowfs, a FUSE mount that sleeps
in every request) and the robustness checks, with their own report, and
whether the progress display tells the truth (bench/progress_eta.py, its
own report too).

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
                    rerun,workers,rss,strace,latency,robust,eta (default all).
                    Only the trees the parts need are generated.
  --latency-rounds K
                    Rounds of the latency part (default 3; smoke 1). Every
                    run there starts on a fresh mount: cold caches.
  --delay-ms MS     The latency part's delay per request (default 1).
  --slowfs-opts OPTS
                    More slowfs options for the latency part, say
                    "--no-readdirplus" or "--ttl 30" (bench/slowfs --help).
                    Results are kept per delay and options, and reported
                    side by side.
  --profile         Also record `perf` profiles of pcopy on the small tree
                    and the 8 x 128 MiB tree (perf from linux-perf).
  --pcopy BIN       Benchmark this pcopy binary instead of building the work
                    tree (say, a release build of a given commit).
  --eta-before BIN  In the eta part, run this older build right after each
                    run of pcopy, the same way, and report both.
  --no-install      Do not install anything; missing peers are left out.
  -h, --help        This text.

A full run writes bench/results.md and bench/results.svg, and with the
latency or robust part bench/results-latency.md, and with the eta part
bench/results-progress.md. The latency part mounts
FUSE file systems: it needs root and /dev/fuse (it is left out without).
EOF
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

smoke=0 runs=1 seed_runs='' rounds='' idle_wait='' install=1 profile=0 only=all cap='' pcopy=''
eta_before=''
latency_rounds='' delay_ms=1 slowfs_opts=''
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
    --latency-rounds) latency_rounds=$2; shift ;;
    --delay-ms) delay_ms=$2; shift ;;
    --slowfs-opts) slowfs_opts=$2; shift ;;
    --profile) profile=1 ;;
    --pcopy) pcopy=$(realpath "$2"); shift ;;
    --eta-before) eta_before=$(realpath "$2"); shift ;;
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
  latency_rounds=${latency_rounds:-1}
  src_base=$src_parent/src-smoke dst_base=$dst_parent/dst-smoke out=${out:-$here/out/smoke}
else
  rounds=${rounds:-10} cap=${cap:-1G} seed_runs=${seed_runs:-2} idle_wait=${idle_wait:-120}
  latency_rounds=${latency_rounds:-3}
  src_base=$src_parent/src dst_base=$dst_parent/dst out=${out:-$here/out}
fi
for n in "$runs" "$seed_runs" "$rounds" "$idle_wait" "$latency_rounds"; do
  case "$n" in ''|*[!0-9]*) echo "run.sh: counts and seconds must be integers, not '$n'" >&2; exit 1 ;; esac
done
if [ "$runs" -eq 0 ] || [ "$rounds" -eq 0 ] || [ "$latency_rounds" -eq 0 ]; then
  echo "run.sh: --runs, --rounds and --latency-rounds must be positive" >&2
  exit 1
fi
if ! [[ $delay_ms =~ ^[0-9]+(\.[0-9]+)?$ ]]; then
  echo "run.sh: --delay-ms needs a number of milliseconds, not '$delay_ms'" >&2
  exit 1
fi

log() { printf '\n== %s\n' "$*" >&2; }
wants() { [ "$only" = all ] || [[ ",$only," == *",$1,"* ]]; }
wants_any() { local part; for part; do wants "$part" && return 0; done; return 1; }
# The parts reported in bench/results.md (the others have their own report).
main_parts=(small big8 huge1 usrshare rerun workers rss strace)
if [ "$only" != all ]; then
  IFS=, read -ra parts <<<"$only"
  for part in "${parts[@]}"; do
    case "$part" in
      small|big8|huge1|usrshare|rerun|workers|rss|strace|latency|robust|eta) ;;
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
# Files and directories of the small, tiny200k and lat2k trees, and the
# big trees' counts and sizes.
if [ "$smoke" = 1 ]; then
  small_shape=(300 30) tiny_shape=(2000 20) lat_shape=(200 10) big8_size=4M huge1_size=16M big8_count=2
  eta_shape=(2000 20) mixed_shape=(2000 20 4M)
else
  small_shape=(20000 1000) tiny_shape=(200000 2000) lat_shape=(2000 100) big8_size=128M huge1_size=1G big8_count=8
  eta_shape=(200000 2000) mixed_shape=(100000 1000 512M)
fi
if wants_any small rerun workers strace robust; then
  gen many "$src_base/small" --files "${small_shape[0]}" --dirs "${small_shape[1]}" --max-size 64k --mean 11150
fi
if wants big8; then gen big "$src_base/big8" --count "$big8_count" --size "$big8_size"; fi
if wants huge1; then gen big "$src_base/huge1" --count 1 --size "$huge1_size"; fi
if wants rss; then
  gen many "$src_base/tiny200k" --files "${tiny_shape[0]}" --dirs "${tiny_shape[1]}" --max-size 100
fi
# The latency-bound case: files of 1-64 KiB, drawn uniformly.
if wants latency; then
  gen many "$src_base/lat2k" --files "${lat_shape[0]}" --dirs "${lat_shape[1]}" --max-size 64k --min-size 1k
fi
# The progress display's case: tiny files of 1 B-4 KiB, drawn uniformly,
# where a copy is bound by the cost per file, not per byte.
if wants eta; then
  gen many "$src_base/tiny4k" --files "${eta_shape[0]}" --dirs "${eta_shape[1]}" --max-size 4k --mean 0
fi
# And a mixed tree: small files like tiny4k's and 4 large ones, the small
# files copied first or the large ones. The walk takes a directory's
# entries in the order the file system lists them (tmpfs: the newest
# first), so the part to be copied second is made first; the names sort
# the same way. Both parts are made again together when either is stale.
gen_mixed() { # DIR FIRST-PART: FIRST-PART is small or large
  local dir=$1 first=$2 stamp="$1.stamp" want="mixed ${mixed_shape[*]} $2"
  [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -d "$dir" ] && return 0
  rm -rf "$dir" "$stamp"
  local small=(many --files "${mixed_shape[0]}" --dirs "${mixed_shape[1]}" --max-size 4k --mean 0)
  local large=(big --count 4 --size "${mixed_shape[2]}")
  if [ "$first" = small ]; then
    gen "${large[0]}" "$dir/b-large" "${large[@]:1}"
    gen "${small[0]}" "$dir/a-small" "${small[@]:1}"
  else
    gen "${small[0]}" "$dir/b-small" "${small[@]:1}"
    gen "${large[0]}" "$dir/a-large" "${large[@]:1}"
  fi
  echo "$want" >"$stamp"
}
if wants eta; then
  gen_mixed "$src_base/mixed-small-first" small
  gen_mixed "$src_base/mixed-large-first" large
fi
# Odd entries and one path of more than 6,000 bytes (PATH_MAX is 4,096).
if wants robust; then gen odd "$src_base/odd-deep" --deep 6000; fi

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
if wants usrshare; then
  copy_usr_share
  sed -n 2p "$src_base/usrshare.stamp" >&2
fi

# ---------------------------------------------------------------- tree info
# The machine and the tools, for every report.
machine_env() {
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "mode: $([ "$smoke" = 1 ] && echo smoke || echo full)"
  echo "cpus: $(nproc)"
  echo "kernel: $(uname -r)"
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "pcopy: $("$pcopy" --version), $pcopy_source"
  echo "cp: $(cp --version | head -n1)"
  [ "$have_rsync" = 1 ] && echo "rsync: $(rsync --version | head -n1)"
  [ "$have_xcp" = 1 ] && echo "xcp: $(xcp --version 2>&1 | head -n1)"
  [ "$have_fcp" = 1 ] && echo "fcp: $(fcp --version 2>&1 | head -n1)"
  echo "hyperfine: $(hyperfine --version)"
  echo "python: $(python3 --version 2>&1)"
}

describe_tree() { # DIR: the env.txt description report.py reads
  echo "$(find "$1" -type f | wc -l) files, $(find "$1" -type d | wc -l) dirs, $(find "$1" -type l | wc -l) symlinks, $(du -sb "$1" | cut -f1) bytes"
}

if wants_any "${main_parts[@]}"; then
  {
    machine_env
    echo "src fs: $(stat -f -c %T "$src_base")"
    echo "dst fs: $(stat -f -c %T "$dst_base") ($dst_base)"
    echo "runs: $rounds rounds x $runs run(s) per copier, warmup 1 in the first round; seed copier in $seed_runs round(s)"
    [ -f "$src_base/usrshare.stamp" ] && echo "usrshare: $(sed -n 2p "$src_base/usrshare.stamp")"
    for t in small big8 huge1 usrshare tiny200k; do
      [ -d "$src_base/$t" ] && echo "tree $t: $(describe_tree "$src_base/$t")"
    done
  } >"$out/env.txt"
fi

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

# Optional: the JSON directory (default $out/json), the number of rounds
# (default --rounds) and whether the first round has a warmup run (1, the
# default, or 0).
hyperfine_group() {
  local group=$1 round args warmup prepare_args=() name cmd lines
  local json=${3:-$out/json} rounds=${4:-$rounds} first_warmup=${5:-1}
  [ -z "$2" ] || prepare_args=(--prepare "$2")
  lines=$(cat)
  mkdir -p "$json"
  rm -f "$json/$group".r*.json
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
    warmup=$((round == 1 ? first_warmup : 0))
    wait_idle "$group round $round"
    log "$group (round $round/$rounds)"
    hyperfine --style basic --warmup "$warmup" --runs "$runs" "${prepare_args[@]}" \
      --export-json "$json/$group.r$round.json" "${args[@]}" >&2
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
if wants_any small strace; then "$floor" list "$src_base/small" "$small_list"; fi

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

# ---------------------------------------------------------------- latency
# Storage bound by latency (NFS, Lustre, sshfs, cloud mounts), where a
# parallel copier matters most: the lat2k tree through slowfs, a FUSE
# passthrough that sleeps --delay-ms in every request, once as the source
# (the copy goes to tmpfs) and once as the destination (copied from
# tmpfs). Every run, timed or not, starts on a fresh mount, so the
# kernel's caches of the mount are cold. The mount point is outside
# $dst_base (removed at the end), and an exit on an error unmounts first.
lat_jobs=(1 4 8 16 32 64)
lat_threads=(2 8 32)

slug() { printf '%s' "$1" | tr -c 'A-Za-z0-9.' '-'; }

latency_commands() { # SRC DST: name<TAB>command lines
  local src=$1 dst=$2 k
  printf 'pcopy\t%s -q %s/ %s\n' "$(q "$pcopy")" "$(q "$src")" "$(q "$dst")"
  for k in "${lat_jobs[@]}"; do
    printf 'pcopy -j %s\t%s -q -j %s %s/ %s\n' "$k" "$(q "$pcopy")" "$k" "$(q "$src")" "$(q "$dst")"
  done
  printf 'cp -a\tcp -a %s %s\n' "$(q "$src")" "$(q "$dst")"
  [ "$have_rsync" = 1 ] && printf 'rsync -a\trsync -a %s/ %s/\n' "$(q "$src")" "$(q "$dst")"
  if [ "$have_xcp" = 1 ]; then
    printf 'xcp\txcp -r --no-progress %s %s\n' "$(q "$src")" "$(q "$dst")"
    for k in "${lat_threads[@]}"; do
      printf 'xcp -w %s\txcp -r --no-progress -w %s %s %s\n' "$k" "$k" "$(q "$src")" "$(q "$dst")"
    done
  fi
  if [ "$have_fcp" = 1 ]; then
    # fcp runs on rayon, whose thread count (default: the CPUs) is set by
    # the environment.
    printf 'fcp\tfcp %s %s\n' "$(q "$src")" "$(q "$dst")"
    for k in "${lat_threads[@]}"; do
      printf 'fcp (%s threads)\tRAYON_NUM_THREADS=%s fcp %s %s\n' "$k" "$k" "$(q "$src")" "$(q "$dst")"
    done
  fi
  return 0
}

# lat_side SIDE: what is mounted (lat_back), what the copiers copy from
# and to, and where the copy lands outside the mount (lat_copy).
lat_side() {
  case $1 in
    src) lat_back=$src_base/lat2k lat_from=$lat_mnt lat_to=$dst_base/lat2k lat_copy=$dst_base/lat2k lat_ro=--ro ;;
    dst) lat_back=$dst_base/lat-back lat_from=$src_base/lat2k lat_to=$lat_mnt/copy lat_copy=$dst_base/lat-back/copy lat_ro= ;;
  esac
  mkdir -p "$lat_back"
}

lat_unmount_cmd() { printf '%s --unmount --pidfile %s %s' "$(q "$slowfs")" "$(q "$lat_pid")" "$(q "$lat_mnt")"; }

# The command that starts a run on a fresh mount: unmount, remove the last
# copy (from tmpfs or the backing directory, never through the mount),
# mount again. Extra slowfs options (--stats FILE) are appended.
lat_prepare_cmd() {
  printf '%s && rm -rf %s && %s --background %s --delay-ms %s %s %s --pidfile %s %s %s' \
    "$(lat_unmount_cmd)" "$(q "$lat_copy")" "$(q "$slowfs")" "$lat_ro" "$delay_ms" "$slowfs_opts" \
    "$*" "$(q "$lat_pid")" "$(q "$lat_back")" "$(q "$lat_mnt")"
}

lat_exact() { # NAME: the copy matches the source; modes and times too where the copier keeps them
  diff -r --no-dereference -q "$src_base/lat2k" "$lat_copy" >&2 || return 1
  case $1 in xcp* | fcp*) return 0 ;; esac
  python3 "$here/tree_compare.py" "$src_base/lat2k" "$lat_copy"
}

# lat_check SIDE: one untimed run of every copier, each on a fresh mount
# that counts requests (stats/SIDE/NAME.tsv). Prints the name<TAB>command
# lines of the copiers whose copy was exact; the others are left out of
# the timing and listed in failed.tsv.
lat_check() {
  local side=$1 name cmd rc
  mkdir -p "$lat_out/stats/$side"
  while IFS=$'\t' read -r name cmd; do
    log "latency $side: $name (counted, checked)"
    bash -c "$(lat_prepare_cmd --stats "$(q "$lat_out/stats/$side/$(slug "$name").tsv")")"
    rc=0
    bash -c "$cmd" >/dev/null 2>"$lat_out/err.txt" || rc=$?
    bash -c "$(lat_unmount_cmd)"
    if [ "$rc" = 0 ] && lat_exact "$name"; then
      printf '%s\t%s\n' "$name" "$cmd"
    else
      echo "run.sh: $name, $side on the slow mount: exit $rc or an inexact copy; left out of the timing" >&2
      head -n3 "$lat_out/err.txt" >&2
      printf '%s\t%s\t%s\n' "$side" "$name" "$rc" >>"$lat_out/failed.tsv"
    fi
  done < <(latency_commands "$lat_from" "$lat_to")
}

fuse_ok=1
if wants latency && { [ "$(id -u)" != 0 ] || [ ! -c /dev/fuse ]; }; then
  echo "run.sh: the latency part mounts FUSE as root (/dev/fuse): left out" >&2
  fuse_ok=0
fi
if wants latency && [ "$fuse_ok" = 1 ]; then
  cargo build --release --quiet --manifest-path "$here/slowfs/Cargo.toml" --target-dir "$target_dir"
  slowfs=$target_dir/release/slowfs
  label="$delay_ms ms${slowfs_opts:+, $slowfs_opts}"
  lat_out=$out/latency/$(slug "$label")
  lat_mnt=$dst_parent/slowfs-mnt lat_pid=$dst_parent/slowfs.pid
  rm -rf "$lat_out"
  mkdir -p "$lat_out" "$lat_mnt"
  : >"$lat_out/failed.tsv"
  trap 'bash -c "$(lat_unmount_cmd)" || true' EXIT
  for side in src dst; do
    lat_side "$side"
    lines=$(lat_check "$side")
    hyperfine_group "$side" "$(lat_prepare_cmd)" "$lat_out/json" "$latency_rounds" 0 <<<"$lines"
    bash -c "$(lat_unmount_cmd)"
  done
  trap - EXIT
  {
    machine_env
    echo "label: $label"
    echo "delay: $delay_ms ms per request"
    echo "slowfs options: ${slowfs_opts:-none}"
    echo "rounds: $latency_rounds (one run per copier per round, no warmup, every run on a fresh mount)"
    echo "tree: $(describe_tree "$src_base/lat2k")"
    echo "other side: $(stat -f -c %T "$dst_base")"
    busy=$(grep -E '^(src|dst) round' "$out/busy.txt" | paste -sd ';' -) || true
    [ -z "$busy" ] || echo "busy rounds: $busy"
  } >"$lat_out/env.txt"
fi

# ---------------------------------------------------------------- robustness
# Not timed: does pcopy copy what it promises where the walk is tried
# hardest? Each check appends name, exit status, whether the copy is exact
# (tree_compare.py: bytes, types, modes, times, owners, xattrs, hard links)
# and the first line pcopy wrote to stderr.
# A run that has not ended after robust_timeout seconds is stopped and
# reported as a hang.
robust_timeout=300
robust_check() { # NAME SRC DST COMMAND
  local name=$1 src=$2 dst=$3 cmd=$4 rc=0 exact=exact
  rm -rf "$dst"
  timeout -k 10 "$robust_timeout" bash -c "$cmd" >/dev/null 2>"$out/robust-err.txt" || rc=$?
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then rc="none: still running after $robust_timeout s, stopped"; fi
  if ! python3 "$here/tree_compare.py" "$src" "$dst" 2>"$out/robust-diff.txt"; then
    exact="not exact ($(find "$dst" -type f 2>/dev/null | wc -l) of $(find "$src" -type f | wc -l) files there): $(head -n1 "$out/robust-diff.txt" | sed 's/^tree_compare.py: //')"
  fi
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$exact" "$(head -n1 "$out/robust-err.txt")" |
    tr -d '\r' | tee -a "$out/robust.tsv" >&2
  rm -rf "$dst"
}

if wants robust; then
  log "robustness checks"
  : >"$out/robust.tsv"
  deep=$src_base/odd-deep
  robust_check "deep tree: pcopy -a" "$deep" "$dst_base/deep" \
    "$(q "$pcopy") -a -q $(q "$deep")/ $(q "$dst_base/deep")"
  robust_check "deep tree: cp -a (peer)" "$deep" "$dst_base/deep" "cp -a $(q "$deep") $(q "$dst_base/deep")"
  if [ "$have_rsync" = 1 ]; then
    robust_check "deep tree: rsync -aHX (peer)" "$deep" "$dst_base/deep" "rsync -aHX $(q "$deep")/ $(q "$dst_base/deep")/"
  fi
  for kind in process thread; do
    robust_check "ulimit -n 32, -j 8, --workers $kind" "$src_base/small" "$dst_base/ulimit" \
      "ulimit -n 32 && exec $(q "$pcopy") -q -j 8 --workers $kind $(q "$src_base/small")/ $(q "$dst_base/ulimit")"
  done
  echo "deep tree: $(describe_tree "$deep"), one path of more than 6,000 bytes" >"$out/robust-env.txt"
fi

# ---------------------------------------------------------------- progress
# Is the display truthful? pcopy copies tiny4k and the two mixed trees with
# plain --progress lines, JSON lines and the bar on a pseudo-terminal, every
# line timestamped: when the totals were final, the ETA shown at 10, 25 and
# 50 % of the files and at 25 % of the time against the time really left,
# peak RSS, and that the bar says "scanning" exactly until the totals are
# final. One run of each display and tree a round (and of the older build
# right after, with --eta-before).
if wants eta; then
  wait_idle "eta"
  log "progress display, tiny4k and the mixed trees ($rounds rounds)"
  eta_md=$out/results-progress.md
  [ "$smoke" = 1 ] || eta_md=$here/results-progress.md
  eta_label="$(machine_env | grep -E '^(date|mode|cpus|kernel|cpu|pcopy):' | sed 's/^/- /')
- copied tmpfs to $(stat -f -c %T "$dst_base")"
  [ -z "$eta_before" ] || eta_label+="
- before: $("$eta_before" --version) ($eta_before)"
  eta_args=(--tree "tiny4k=$src_base/tiny4k"
    --tree "mixed-small-first=$src_base/mixed-small-first"
    --tree "mixed-large-first=$src_base/mixed-large-first")
  [ -z "$eta_before" ] || eta_args+=(--eta-before "$eta_before")
  python3 "$here/progress_eta.py" --pcopy "$pcopy" "${eta_args[@]}" \
    --dst "$dst_base/eta" --out "$out" --runs "$rounds" --md "$eta_md" --label "$eta_label" >&2
fi

if wants_any latency robust; then
  lat_md=$out/results-latency.md
  [ "$smoke" = 1 ] || lat_md=$here/results-latency.md
  python3 "$here/report_latency.py" --out "$out" --md "$lat_md"
fi

rm -rf "$dst_base"
echo "run.sh: source trees kept for the next run in $src_base ($(du -sh "$src_base" | cut -f1)); rm -rf it to free the space" >&2
# ---------------------------------------------------------------- report
wants_any "${main_parts[@]}" || exit 0
files_small=${small_shape[0]}
[ -d "$src_base/small" ] && files_small=$(find "$src_base/small" -type f | wc -l)
report_args=(--out "$out" --files "$files_small")
svg=$out/results.svg
if [ "$smoke" = 0 ]; then
  report_args+=(--md "$here/results.md")
  svg=$here/results.svg
fi
python3 "$here/report.py" "${report_args[@]}"
"$chart" "$out/chart.json" "$svg"
echo "run.sh: chart in $svg" >&2
