#!/usr/bin/env python3
"""Compares two trees entry by entry: what `diff -r` checks and the
metadata it does not, at any depth (every entry is reached relative to an
open directory, so paths longer than PATH_MAX are compared too).

Usage: tree_compare.py [--contents-only] [--no-times] [--no-owners]
                       [--no-xattrs] [--no-links] SRC DST

Compared for every entry below SRC and DST (and the two roots' own
metadata): type; for files size and bytes; symlink targets; device
numbers; permission bits including setuid, setgid and sticky; owner and
group; modification time to the nanosecond (not for symlinks' when the
copy is on a file system that cannot keep them: never skipped here);
user.* extended attributes; and which names are hard links of one file.
--contents-only keeps only types, bytes, symlink targets and the set of
names (what copiers that keep no metadata can be held to).

Exits 0 when the trees match, 1 with the first differences on stderr,
2 on bad usage or an unreadable tree.
"""

import argparse
import os
import stat
import sys

KIND = {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink", stat.S_IFIFO: "fifo",
        stat.S_IFSOCK: "socket", stat.S_IFCHR: "char device", stat.S_IFBLK: "block device"}
CHUNK = 1 << 20


def user_xattrs(name, dir_fd, st):
    """user.* attributes of a file or directory (symlinks and special
    files have none here)."""
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        return {}
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
    fd = os.open(name, flags, dir_fd=dir_fd)
    try:
        try:
            names = os.listxattr(fd)
        except OSError:
            return {}
        return {n: os.getxattr(fd, n) for n in names if n.startswith("user.")}
    finally:
        os.close(fd)


def same_bytes(a_dir, b_dir, name):
    fa = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=a_dir)
    try:
        fb = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=b_dir)
        try:
            while True:
                a, b = os.read(fa, CHUNK), os.read(fb, CHUNK)
                if a != b:
                    return False
                if not a:
                    return True
        finally:
            os.close(fb)
    finally:
        os.close(fa)


class Compare:
    def __init__(self, args):
        self.args = args
        self.diffs = []
        # (device, inode) -> [paths] for files with more than one link.
        self.links = ({}, {})

    def differ(self, path, what):
        shown = os.fsdecode(path) if path else "."
        if len(shown) > 160:
            shown = "%s...[%d bytes]...%s" % (shown[:60], len(path), shown[-60:])
        self.diffs.append("%s: %s" % (shown, what))

    def meta(self, path, sa, sb):
        """Differences of metadata that a metadata-keeping copy must match."""
        a = self.args
        if a.contents_only:
            return
        if stat.S_IMODE(sa.st_mode) != stat.S_IMODE(sb.st_mode) and not stat.S_ISLNK(sa.st_mode):
            self.differ(path, "mode %o != %o" % (stat.S_IMODE(sa.st_mode), stat.S_IMODE(sb.st_mode)))
        if not a.no_owners and (sa.st_uid, sa.st_gid) != (sb.st_uid, sb.st_gid):
            self.differ(path, "owner %d:%d != %d:%d" % (sa.st_uid, sa.st_gid, sb.st_uid, sb.st_gid))
        if not a.no_times and sa.st_mtime_ns != sb.st_mtime_ns:
            self.differ(path, "mtime %d != %d" % (sa.st_mtime_ns, sb.st_mtime_ns))

    def entry(self, dirs, path, name):
        """Compares one entry; returns True when both are directories to descend into."""
        sa, sb = (os.stat(name, dir_fd=d, follow_symlinks=False) for d in dirs)
        ka, kb = stat.S_IFMT(sa.st_mode), stat.S_IFMT(sb.st_mode)
        if ka != kb:
            self.differ(path, "%s != %s" % (KIND.get(ka, ka), KIND.get(kb, kb)))
            return False
        self.meta(path, sa, sb)
        if ka == stat.S_IFREG:
            if sa.st_size != sb.st_size:
                self.differ(path, "size %d != %d" % (sa.st_size, sb.st_size))
            elif not same_bytes(dirs[0], dirs[1], name):
                self.differ(path, "contents differ")
            for side, st in enumerate((sa, sb)):
                if st.st_nlink > 1:
                    self.links[side].setdefault((st.st_dev, st.st_ino), []).append(path)
        elif ka == stat.S_IFLNK:
            ta, tb = (os.readlink(name, dir_fd=d) for d in dirs)
            if ta != tb:
                self.differ(path, "symlink %r != %r" % (ta, tb))
        elif ka in (stat.S_IFCHR, stat.S_IFBLK) and sa.st_rdev != sb.st_rdev:
            self.differ(path, "device %x != %x" % (sa.st_rdev, sb.st_rdev))
        if not (self.args.contents_only or self.args.no_xattrs):
            xa, xb = (user_xattrs(name, d, s) for d, s in zip(dirs, (sa, sb)))
            if xa != xb:
                self.differ(path, "xattrs %r != %r" % (xa, xb))
        return ka == stat.S_IFDIR

    def tree(self, roots):
        """Iterative walk of both trees at once, each directory open
        relative to its parent, so depth is limited by descriptors only."""
        opened = [os.open(r, os.O_RDONLY | os.O_DIRECTORY) for r in roots]
        self.entry(opened, b"", ".")
        stack = [(opened, b"")]
        while stack:
            dirs, path = stack.pop()
            try:
                names = [set(os.listdir(d)) for d in dirs]
                for name in sorted(names[0] ^ names[1]):
                    side = "only in SRC" if name in names[0] else "only in DST"
                    self.differ(os.path.join(path, os.fsencode(name)), side)
                for name in sorted(names[0] & names[1]):
                    sub = os.path.join(path, os.fsencode(name))
                    if self.entry(dirs, sub, name):
                        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                        stack.append(([os.open(name, flags, dir_fd=d) for d in dirs], sub))
            finally:
                for d in dirs:
                    os.close(d)

    def hard_links(self):
        groups = [sorted(sorted(g) for g in side.values()) for side in self.links]
        if not (self.args.contents_only or self.args.no_links) and groups[0] != groups[1]:
            self.differ(b"", "hard links differ: SRC %r, DST %r" % (groups[0], groups[1]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contents-only", action="store_true")
    parser.add_argument("--no-times", action="store_true")
    parser.add_argument("--no-owners", action="store_true")
    parser.add_argument("--no-xattrs", action="store_true")
    parser.add_argument("--no-links", action="store_true")
    parser.add_argument("src")
    parser.add_argument("dst")
    args = parser.parse_args()
    compare = Compare(args)
    try:
        compare.tree([os.fsencode(args.src), os.fsencode(args.dst)])
    except OSError as err:
        print("tree_compare.py: %s" % err, file=sys.stderr)
        return 2
    compare.hard_links()
    for line in compare.diffs[:20]:
        print("tree_compare.py: %s" % line, file=sys.stderr)
    if len(compare.diffs) > 20:
        print("tree_compare.py: ... %d differences in all" % len(compare.diffs), file=sys.stderr)
    return 1 if compare.diffs else 0


if __name__ == "__main__":
    sys.exit(main())
