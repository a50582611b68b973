//! Reaching the source entry, including paths longer than `PATH_MAX`.

use std::ffi::{CString, OsStr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, CWD, Mode, OFlags, Stat};
use rustix::io::Errno;

use crate::relpath;

/// Longest path handed to one syscall; `PATH_MAX` counts the NUL.
const MAX_PATH_ARG: usize = libc::PATH_MAX as usize - 1;

/// Opens the source for reading without ever blocking: `O_NONBLOCK` makes
/// opening a fifo return at once (regular files ignore the flag), so an entry
/// that turned into a fifo after the walk is detected by `fstat`, not waited on.
pub(super) fn open(src: &OsStr, follow: bool) -> Result<OwnedFd, Errno> {
    let flags = open_flags(follow);
    at_source(src, |dir, path| {
        rustix::fs::openat(dir, path, flags, Mode::empty())
    })
}

fn open_flags(follow: bool) -> OFlags {
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
    match follow {
        true => flags,
        false => flags | OFlags::NOFOLLOW,
    }
}

/// `lstat` (or `stat` when `follow`) of the source.
pub(super) fn stat(src: &OsStr, follow: bool) -> Result<Stat, Errno> {
    let flags = stat_flags(follow);
    at_source(src, |dir, path| rustix::fs::statat(dir, path, flags))
}

fn stat_flags(follow: bool) -> AtFlags {
    match follow {
        true => AtFlags::empty(),
        false => AtFlags::SYMLINK_NOFOLLOW,
    }
}

/// The directory of the last source looked at, held open (`O_PATH`), so
/// the next entry of that directory is reached by its name alone rather
/// than its whole path, which the kernel would walk again for every file.
/// Like the walker's open directories, it still sees a directory that was
/// renamed after it was opened: the entry found there is the one copied,
/// and its metadata comes from the descriptor, as always.
#[derive(Debug, Default)]
pub(super) struct SourceDirCache {
    dir: Option<(Vec<u8>, OwnedFd)>,
}

impl SourceDirCache {
    /// Like [`open`], beneath the cached directory when `src` is in it.
    pub(super) fn open(&mut self, src: &OsStr, follow: bool) -> Result<OwnedFd, Errno> {
        let flags = open_flags(follow);
        self.at(src, |dir, name| {
            rustix::fs::openat(dir, name, flags, Mode::empty())
        })
        .unwrap_or_else(|| open(src, follow))
    }

    /// Like [`stat`], beneath the cached directory when `src` is in it.
    pub(super) fn stat(&mut self, src: &OsStr, follow: bool) -> Result<Stat, Errno> {
        let flags = stat_flags(follow);
        self.at(src, |dir, name| rustix::fs::statat(dir, name, flags))
            .unwrap_or_else(|| stat(src, follow))
    }

    /// Removes `src` (never a directory) if `still` accepts what is at its
    /// name now (`stat`, following a symlink when `follow`); `false` when
    /// it does not, and nothing was removed.
    pub(super) fn remove_if(
        &mut self,
        src: &OsStr,
        follow: bool,
        still: &dyn Fn(&Stat) -> bool,
    ) -> Result<bool, Errno> {
        let flags = stat_flags(follow);
        let op = |dir: BorrowedFd<'_>, name: &OsStr| {
            if !still(&rustix::fs::statat(dir, name, flags)?) {
                return Ok(false);
            }
            rustix::fs::unlinkat(dir, name, AtFlags::empty()).map(|()| true)
        };
        self.at(src, op).unwrap_or_else(|| at_source(src, op))
    }

    /// Runs `op` on `src`'s last component beneath its directory, opened
    /// unless it is the cached one. `None`: the path has no directory
    /// part, or it cannot be opened (too long, gone): the caller then goes
    /// by the whole path, which also says why it fails.
    fn at<T>(
        &mut self,
        src: &OsStr,
        op: impl FnOnce(BorrowedFd<'_>, &OsStr) -> Result<T, Errno>,
    ) -> Option<Result<T, Errno>> {
        let (parent, name) = relpath::split(src);
        if parent.is_empty() || name.is_empty() {
            return None;
        }
        let dir = match self.dir.take() {
            Some((cached, fd)) if cached == parent.as_bytes() => (cached, fd),
            _ => {
                let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
                let fd = rustix::fs::openat(CWD, parent, flags, Mode::empty()).ok()?;
                (parent.as_bytes().to_vec(), fd)
            }
        };
        let dir = self.dir.insert(dir);
        Some(op(dir.1.as_fd(), name))
    }
}

/// The target of the symbolic link `src`, byte for byte, whatever its length.
pub(super) fn read_link(src: &OsStr) -> Result<CString, Errno> {
    at_source(src, |dir, path| {
        rustix::fs::readlinkat(dir, path, Vec::new())
    })
}

/// Runs `op` on `src` relative to the cwd. When the path is too long for one
/// syscall, opens its longest ancestor that fits, walks the remaining
/// directories one component at a time with `O_NOFOLLOW`, and runs `op` on the
/// last component relative to that directory.
fn at_source<T>(
    src: &OsStr,
    mut op: impl FnMut(BorrowedFd<'_>, &OsStr) -> Result<T, Errno>,
) -> Result<T, Errno> {
    match op(CWD, src) {
        Err(Errno::NAMETOOLONG) => {}
        done => return done,
    }
    let (dir, name) = relpath::split(src);
    if name.len() == src.len() {
        // No slash: the name alone is too long.
        return Err(Errno::NAMETOOLONG);
    }
    let dir = open_long_dir(dir.as_bytes())?;
    op(dir.as_fd(), name)
}

fn open_long_dir(dir: &[u8]) -> Result<OwnedFd, Errno> {
    if dir.is_empty() {
        return rustix::fs::openat(CWD, "/", dir_flags(), Mode::empty());
    }
    let fits = dir.len().min(MAX_PATH_ARG);
    let (mut current, rest) = if dir.len() <= MAX_PATH_ARG {
        (openat_dir(CWD, dir, false)?, &dir[dir.len()..])
    } else {
        let Some(split) = dir[..=fits].iter().rposition(|&b| b == b'/') else {
            return Err(Errno::NAMETOOLONG);
        };
        let ancestor = if split == 0 { &b"/"[..] } else { &dir[..split] };
        (openat_dir(CWD, ancestor, false)?, &dir[split + 1..])
    };
    for component in rest.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        current = openat_dir(current.as_fd(), component, true)?;
    }
    Ok(current)
}

fn dir_flags() -> OFlags {
    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC
}

fn openat_dir(dir: BorrowedFd<'_>, path: &[u8], nofollow: bool) -> Result<OwnedFd, Errno> {
    let mut flags = dir_flags();
    if nofollow {
        flags |= OFlags::NOFOLLOW;
    }
    rustix::fs::openat(dir, path, flags, Mode::empty())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    /// Builds `src/ddd…/ddd…/…` deeper than `PATH_MAX` through directory fds
    /// and returns its full path and innermost fd.
    fn deep_dir(root: &std::path::Path) -> (Vec<u8>, OwnedFd) {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let mut dir = rustix::fs::open(root, flags, Mode::empty()).expect("open root");
        let mut path = root.as_os_str().as_bytes().to_vec();
        let component = [b'd'; 250];
        for _ in 0..20 {
            rustix::fs::mkdirat(&dir, &component[..], Mode::from_raw_mode(0o755)).expect("mkdirat");
            dir = rustix::fs::openat(&dir, &component[..], flags, Mode::empty()).expect("openat");
            path.push(b'/');
            path.extend_from_slice(&component);
        }
        assert!(path.len() > MAX_PATH_ARG);
        (path, dir)
    }

    #[test]
    fn stat_and_read_link_work_beyond_path_max() {
        let root = tempfile::tempdir().expect("tempdir");
        let (mut path, dir) = deep_dir(root.path());
        rustix::fs::symlinkat("target", &dir, "link").expect("symlinkat");
        path.extend_from_slice(b"/link");
        let link = OsStr::from_bytes(&path);
        let st = stat(link, false).expect("lstat");
        assert_eq!(
            rustix::fs::FileType::from_raw_mode(st.st_mode),
            rustix::fs::FileType::Symlink
        );
        assert_eq!(read_link(link).expect("readlink").as_bytes(), b"target");
        assert_eq!(open(link, true).map(drop), Err(Errno::NOENT));
        let cached = SourceDirCache::default().stat(link, false).expect("lstat");
        assert_eq!((cached.st_ino, cached.st_mode), (st.st_ino, st.st_mode));
    }

    #[test]
    fn the_directory_cache_stats_what_the_path_names() {
        let root = tempfile::tempdir().expect("tempdir");
        let (a, b) = (root.path().join("a"), root.path().join("b"));
        for (dir, len) in [(&a, 1), (&b, 2)] {
            std::fs::create_dir(dir).expect("mkdir");
            std::fs::write(dir.join("f"), vec![0; len]).expect("write");
        }
        symlink("f", a.join("link")).expect("symlink");
        let mut cache = SourceDirCache::default();
        let size = |cache: &mut SourceDirCache, path: &std::path::Path, follow| {
            cache.stat(path.as_os_str(), follow).map(|st| st.st_size)
        };
        // Switching directories, and back, finds each one's own file.
        for (path, len) in [(a.join("f"), 1), (b.join("f"), 2), (a.join("f"), 1)] {
            assert_eq!(size(&mut cache, &path, false), Ok(len));
        }
        assert_eq!(size(&mut cache, &a.join("link"), true), Ok(1));
        assert_eq!(
            size(&mut cache, &a.join("link"), false),
            Ok(1),
            "its target's length"
        );
        let lstat = cache
            .stat(a.join("link").as_os_str(), false)
            .expect("lstat");
        assert_eq!(
            rustix::fs::FileType::from_raw_mode(lstat.st_mode),
            rustix::fs::FileType::Symlink
        );
        assert_eq!(size(&mut cache, &a.join("gone"), false), Err(Errno::NOENT));
        assert_eq!(
            size(&mut cache, &root.path().join("c/f"), false),
            Err(Errno::NOENT)
        );
    }

    #[test]
    fn open_without_follow_refuses_a_symlink() {
        let root = tempfile::tempdir().expect("tempdir");
        let link = root.path().join("link");
        symlink("elsewhere", &link).expect("symlink");
        assert_eq!(open(link.as_os_str(), false).map(drop), Err(Errno::LOOP));
    }
}
