#!/usr/bin/env python3
"""Deterministic synthetic source trees for bench/run.sh.

Two shapes:

  gen_tree.py many DIR --files N --dirs D --max-size B [--mean M]
      N files spread over D leaf directories (D/100 parents of up to 100
      leaves each). Sizes are exponential with mean M, clamped to
      [1, B] bytes; --mean 0 draws them uniformly from [1, B].

  gen_tree.py big DIR --count C --size S
      C files of S bytes each in DIR.

Contents are slices of one pseudo-random pool at seeded offsets, so no two
files are equal and nothing compresses, and the same arguments and seed
always give the same bytes, names, modes and modification times. A stamp
file next to DIR (DIR.stamp) records the arguments; a tree whose stamp
matches is left as it is, so reruns of the harness do not regenerate it.
"""

import argparse
import os
import random
import shutil
import sys

POOL_SIZE = 64 << 20
CHUNK = 8 << 20
# 2020-01-01T00:00:00Z: a fixed base for modification times.
MTIME_BASE = 1_577_836_800


def parse_size(text):
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    suffix = text[-1:].lower()
    if suffix in units:
        return int(text[:-1]) * units[suffix]
    return int(text)


def make_pool(seed):
    return random.Random(seed).randbytes(POOL_SIZE)


def write_slice(out, pool, rng, size):
    """Writes `size` bytes taken from `pool` in pieces at random offsets."""
    left = size
    while left:
        n = min(left, CHUNK)
        start = rng.randrange(0, POOL_SIZE - n + 1)
        out.write(memoryview(pool)[start:start + n])
        left -= n


def draw_size(rng, max_size, mean):
    if mean <= 0:
        return rng.randint(1, max_size)
    return max(1, min(max_size, int(rng.expovariate(1.0 / mean))))


def leaf_dirs(root, count):
    """`count` leaf directories, grouped 100 to a parent: p000/d00000."""
    return [os.path.join(root, "p%03d" % (i // 100), "d%05d" % i) for i in range(count)]


def gen_many(root, args, pool):
    rng = random.Random(args.seed)
    dirs = leaf_dirs(root, args.dirs)
    for d in dirs:
        os.makedirs(d)
    total = 0
    for i in range(args.files):
        size = draw_size(rng, args.max_size, args.mean)
        path = os.path.join(dirs[i % args.dirs], "file-%06d.dat" % i)
        with open(path, "wb", buffering=0) as out:
            write_slice(out, pool, rng, size)
        # A few read-only and executable files, like a real tree.
        os.chmod(path, (0o644, 0o755, 0o444)[i % 3 if i % 10 == 0 else 0])
        os.utime(path, (MTIME_BASE + i, MTIME_BASE + i))
        total += size
    return total


def gen_big(root, args, pool):
    rng = random.Random(args.seed)
    os.makedirs(root)
    for i in range(args.count):
        path = os.path.join(root, "big-%02d.dat" % i)
        with open(path, "wb", buffering=0) as out:
            write_slice(out, pool, rng, args.size)
        os.utime(path, (MTIME_BASE + i, MTIME_BASE + i))
    return args.count * args.size


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=20240601)
    sub = parser.add_subparsers(dest="shape", required=True)
    many = sub.add_parser("many", help="many files in many directories")
    many.add_argument("dir")
    many.add_argument("--files", type=int, required=True)
    many.add_argument("--dirs", type=int, required=True)
    many.add_argument("--max-size", type=parse_size, required=True)
    many.add_argument("--mean", type=parse_size, default=0)
    big = sub.add_parser("big", help="a few large files")
    big.add_argument("dir")
    big.add_argument("--count", type=int, required=True)
    big.add_argument("--size", type=parse_size, required=True)
    args = parser.parse_args()
    if getattr(args, "files", 1) < 1 or getattr(args, "dirs", 1) < 1:
        parser.error("--files and --dirs must be at least 1")

    root = args.dir.rstrip("/")
    stamp_path = root + ".stamp"
    stamp = repr(sorted(vars(args).items())) + "\n"
    try:
        with open(stamp_path) as f:
            if f.read() == stamp and os.path.isdir(root):
                return 0
    except FileNotFoundError:
        pass
    if os.path.lexists(stamp_path):
        os.remove(stamp_path)
    shutil.rmtree(root, ignore_errors=True)
    pool = make_pool(args.seed)
    total = gen_many(root, args, pool) if args.shape == "many" else gen_big(root, args, pool)
    with open(stamp_path, "w") as f:
        f.write(stamp)
    print("generated %s: %.1f MB" % (root, total / 1e6), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
