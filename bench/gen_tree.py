#!/usr/bin/env python3
"""Deterministic synthetic source trees for bench/run.sh.

Three shapes:

  gen_tree.py many DIR --files N --dirs D --max-size B [--mean M]
      N files spread over D leaf directories (D/100 parents of up to 100
      leaves each). Sizes are exponential with mean M, clamped to
      [1, B] bytes; --mean 0 draws them uniformly from [1, B].

  gen_tree.py big DIR --count C --size S
      C files of S bytes each in DIR.

  gen_tree.py odd DIR [--deep BYTES]
      One of each odd entry a copier must keep: empty, sparse and
      read-only files, setgid and sticky modes, names with spaces, a
      newline, bytes that are not UTF-8 and 255 bytes, symlinks (relative,
      absolute, dangling, to a directory), hard links across directories,
      a fifo, a socket, a device node (as root), user xattrs, times before
      1970 and with nanoseconds. With --deep, also a chain of directories
      whose path is longer than BYTES (say 6000, beyond PATH_MAX) with
      files and a symlink at the bottom, built relative to open
      directories.

  many also takes --min-size B: sizes below B are drawn again as B.

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
import socket
import stat
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


def draw_size(rng, max_size, mean, min_size=1):
    if mean <= 0:
        return rng.randint(min_size, max_size)
    return max(min_size, min(max_size, int(rng.expovariate(1.0 / mean))))


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
        size = draw_size(rng, args.max_size, args.mean, getattr(args, "min_size", 1))
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


def set_times(name, dir_fd, ns):
    os.utime(name, ns=(ns, ns), dir_fd=dir_fd, follow_symlinks=False)


def write_file(name, dir_fd, data, mode=0o644):
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=dir_fd)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(name, mode, dir_fd=dir_fd)


def odd_files(d, rng):
    """Regular files, links and special files in the open directory d."""
    write_file("empty", d, b"")
    write_file("one byte", d, b"x")
    write_file("read-only", d, rng.randbytes(3000), 0o444)
    write_file("setgid-exec", d, b"#!/bin/sh\n", 0o2755)
    write_file("-leading-dash", d, b"dash")
    write_file("new\nline", d, b"newline")
    write_file(b"not-utf8-\xff\xfe".decode("utf-8", "surrogateescape"), d, b"latin")
    write_file("caf\u00e9-\u65e5\u672c", d, b"unicode")
    write_file("n" * 255, d, b"long name")
    write_file("64k+1", d, rng.randbytes(65537))
    fd = os.open("sparse", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=d)
    try:
        os.pwrite(fd, b"start", 0)
        os.pwrite(fd, b"middle", 1 << 20)
        os.ftruncate(fd, 3 << 20)
    finally:
        os.close(fd)
    os.setxattr(os.open("read-only", os.O_RDONLY, dir_fd=d), "user.origin", b"gen_tree")
    os.symlink("one byte", "rel-link", dir_fd=d)
    os.symlink("/nonexistent/target", "abs-dangling", dir_fd=d)
    os.symlink("sub", "dir-link", dir_fd=d)
    os.mkfifo("fifo", dir_fd=d)
    if os.geteuid() == 0:
        os.mknod("null-dev", 0o666 | stat.S_IFCHR, os.makedev(1, 3), dir_fd=d)


def make_socket(dir_path):
    """A Unix socket, bound by path (there is no bindat)."""
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(os.path.join(dir_path, "socket"))
    finally:
        sock.close()


def deep_chain(d, min_bytes):
    """Directories of 200-byte names below d until the path passes
    min_bytes; files and a symlink at the bottom. Returns the depth."""
    fds, depth, length = [], 0, 0
    cur = d
    try:
        while length <= min_bytes:
            name = "%03d-" % depth + "d" * 196
            os.mkdir(name, dir_fd=cur)
            cur = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=cur)
            fds.append(cur)
            depth += 1
            length += len(name) + 1
        write_file("bottom.txt", cur, b"deeper than PATH_MAX\n")
        os.symlink("bottom.txt", "bottom-link", dir_fd=cur)
        for i, fd in reversed(list(enumerate(fds))):
            set_times(".", fd, (MTIME_BASE + i) * 10**9 + 5)
    finally:
        for fd in fds:
            os.close(fd)
    return depth


def gen_odd(root, args):
    rng = random.Random(args.seed)
    os.makedirs(os.path.join(root, "sub", "empty-dir"))
    os.makedirs(os.path.join(root, "private"))
    os.makedirs(os.path.join(root, "sticky"))
    d = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        odd_files(d, rng)
        make_socket(root)
        os.link("64k+1", "sub/hard-link", src_dir_fd=d, dst_dir_fd=d)
        os.link("64k+1", "private/hard-link-2", src_dir_fd=d, dst_dir_fd=d)
        write_file("sub/nested.txt", d, b"nested")
        os.setxattr(os.path.join(root, "sub"), "user.dir", b"attr on a directory")
        os.chmod("private", 0o700, dir_fd=d)
        os.chmod("sticky", 0o1777, dir_fd=d)
        depth = deep_chain(d, args.deep) if args.deep else 0
        # Times last, children before their directories: nanoseconds, and
        # one before 1970.
        for i, name in enumerate(sorted(os.listdir(d))):
            set_times(name, d, (MTIME_BASE - 86400 * i) * 10**9 + 123456789)
        set_times("one byte", d, -86400 * 10**9 * 365)
        set_times("sub/nested.txt", d, MTIME_BASE * 10**9)
        set_times("sub/hard-link", d, (MTIME_BASE - 86400) * 10**9)
        for sub in ("sub/empty-dir", "sub", "private", "sticky", "."):
            set_times(sub, d, MTIME_BASE * 10**9 + 987654321)
    finally:
        os.close(d)
    if depth:
        print("odd tree %s: a chain %d directories deep" % (root, depth), file=sys.stderr)
    return None


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
    # Left out of the stamp unless given, so trees made before it stay valid.
    many.add_argument("--min-size", type=parse_size, default=argparse.SUPPRESS)
    big = sub.add_parser("big", help="a few large files")
    big.add_argument("dir")
    big.add_argument("--count", type=int, required=True)
    big.add_argument("--size", type=parse_size, required=True)
    odd = sub.add_parser("odd", help="one of each odd entry, optionally a path beyond PATH_MAX")
    odd.add_argument("dir")
    odd.add_argument("--deep", type=int, default=0)
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
    if args.shape == "odd":
        total = gen_odd(root, args)
    else:
        pool = make_pool(args.seed)
        total = gen_many(root, args, pool) if args.shape == "many" else gen_big(root, args, pool)
    with open(stamp_path, "w") as f:
        f.write(stamp)
    size = "" if total is None else ": %.1f MB" % (total / 1e6)
    print("generated %s%s" % (root, size), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
