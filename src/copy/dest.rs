//! Finding a job's destination directory beneath the destination root
//! without following symlinks, so nothing is ever written outside the root.

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::fail::{Failure, errno_text, escape_path};
use crate::job::FailKind;
use crate::relpath;

/// Longest path handed to one `openat2` call; `PATH_MAX` counts the NUL.
const MAX_PATH_ARG: usize = libc::PATH_MAX as usize - 1;

/// A validated `rel_dst`: the parent directory (relative to the root, empty
/// for the root itself) and the final name.
#[derive(Debug)]
pub(super) struct DestPath<'a> {
    pub(super) parent: &'a [u8],
    pub(super) name: &'a OsStr,
}

impl<'a> DestPath<'a> {
    /// Accepts only relative paths of non-empty components separated by
    /// single slashes, none of them `.` or `..`: such a path cannot name
    /// anything outside the root, whatever the directories contain.
    pub(super) fn parse(rel_dst: &'a OsStr) -> Result<Self, Failure> {
        let bytes = rel_dst.as_bytes();
        let valid = !bytes.is_empty()
            && bytes
                .split(|&b| b == b'/')
                .all(|c| !c.is_empty() && c != b"." && c != b"..");
        if !valid {
            return Err(Failure::new(
                FailKind::Other,
                format!(
                    "invalid destination path \"{}\": must be relative, without empty, '.' or '..' components",
                    escape_path(bytes)
                ),
            ));
        }
        let (parent, name) = relpath::split(rel_dst);
        Ok(DestPath {
            parent: parent.as_bytes(),
            name,
        })
    }
}

/// The destination root and the last parent directory used.
///
/// Jobs arrive mostly in walk order, so consecutive files share a parent and
/// reuse one fd; a child of the cached directory is opened relative to it.
/// Directories below the root are opened `O_PATH`: a worker only names
/// entries beneath them, and on a network or FUSE mount a full open of a
/// directory is two more requests (open and release) per batch.
#[derive(Debug)]
pub(super) struct DirCache {
    root: OwnedFd,
    /// Whether the root passes modes through (see [`DirCache::new_file_dir`]).
    root_plain: Option<bool>,
    cached: Option<CachedDir>,
    resolver: Resolver,
}

#[derive(Debug)]
struct CachedDir {
    rel: Vec<u8>,
    fd: OwnedFd,
    /// Whether it passes modes through; looked up at its first new file.
    plain: Option<bool>,
}

impl DirCache {
    pub(super) fn new(root: OwnedFd) -> Self {
        DirCache {
            root,
            root_plain: None,
            cached: None,
            resolver: Resolver {
                openat2_unavailable: false,
            },
        }
    }

    /// The destination root every path is resolved beneath.
    pub(super) fn root(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// Makes lookups walk components with `O_NOFOLLOW`, as on kernels
    /// without `openat2`.
    #[cfg(test)]
    pub(super) fn force_component_walk(&mut self) {
        self.resolver.openat2_unavailable = true;
    }

    /// The directory `rel_parent` beneath the root (the root when empty).
    pub(super) fn parent(&mut self, rel_parent: &[u8]) -> Result<BorrowedFd<'_>, Failure> {
        self.new_file_dir(rel_parent, false).map(|(dir, _)| dir)
    }

    /// [`DirCache::parent`], and when `ask_plain`, whether a file created
    /// there gets exactly the permission bits it is created with, the
    /// umask aside: true unless the directory has a default ACL (or that
    /// cannot be told), which would decide some of the bits instead.
    pub(super) fn new_file_dir(
        &mut self,
        rel_parent: &[u8],
        ask_plain: bool,
    ) -> Result<(BorrowedFd<'_>, bool), Failure> {
        if rel_parent.is_empty() {
            let plain = ask_plain && *self.root_plain.get_or_insert_with(|| plain(&self.root));
            return Ok((self.root.as_fd(), plain));
        }
        let entry = match self.cached.take() {
            Some(hit) if hit.rel == rel_parent => hit,
            previous => CachedDir {
                fd: self.open_parent(previous.as_ref(), rel_parent)?,
                rel: rel_parent.to_vec(),
                plain: None,
            },
        };
        let entry = self.cached.insert(entry);
        let plain = ask_plain && *entry.plain.get_or_insert_with(|| plain(&entry.fd));
        Ok((entry.fd.as_fd(), plain))
    }

    fn open_parent(
        &mut self,
        previous: Option<&CachedDir>,
        rel: &[u8],
    ) -> Result<OwnedFd, Failure> {
        if let Some(CachedDir {
            rel: prev_rel,
            fd: prev_fd,
            ..
        }) = previous
        {
            let is_child = rel.len() > prev_rel.len()
                && rel.starts_with(prev_rel)
                && rel[prev_rel.len()] == b'/';
            if is_child {
                return self
                    .resolver
                    .resolve(prev_fd.as_fd(), rel, prev_rel.len() + 1);
            }
        }
        self.resolver.resolve(self.root.as_fd(), rel, 0)
    }
}

/// Whether files created in `dir` get the permission bits they are
/// created with (umask aside): only a default ACL would change that. An
/// `O_PATH` descriptor has no attributes of its own to read: they are
/// read through its `/proc/self/fd` name (without procfs, not plain).
fn plain(dir: &OwnedFd) -> bool {
    let name = "system.posix_acl_default";
    let found = match rustix::fs::fgetxattr_query(dir, name) {
        Err(Errno::BADF) => {
            let path = format!("/proc/self/fd/{}", dir.as_raw_fd());
            rustix::fs::getxattr_query(path.as_str(), name)
        }
        other => other,
    };
    matches!(found, Err(Errno::NODATA | Errno::NOTSUP))
}

/// The flags a directory below the root is opened with: see [`DirCache`].
fn dir_flags() -> OFlags {
    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC
}

/// Opens directories beneath a base fd, remembering whether `openat2` works.
#[derive(Debug)]
struct Resolver {
    openat2_unavailable: bool,
}

impl Resolver {
    /// Opens `rel[start..]` relative to `base`, in pieces short enough for one
    /// path argument each, so parents deeper than `PATH_MAX` work.
    fn resolve(
        &mut self,
        base: BorrowedFd<'_>,
        rel: &[u8],
        start: usize,
    ) -> Result<OwnedFd, Failure> {
        let mut current: Option<OwnedFd> = None;
        let mut pos = start;
        while pos < rel.len() {
            let end = piece_end(rel, pos);
            let dir = current.as_ref().map_or(base, AsFd::as_fd);
            current = Some(self.open_piece(dir, rel, pos, end)?);
            pos = end + 1;
        }
        current.ok_or_else(|| Failure::new(FailKind::Other, "empty destination directory path"))
    }

    fn open_piece(
        &mut self,
        dir: BorrowedFd<'_>,
        rel: &[u8],
        start: usize,
        end: usize,
    ) -> Result<OwnedFd, Failure> {
        if !self.openat2_unavailable {
            let flags = dir_flags();
            let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS;
            match rustix::fs::openat2(dir, &rel[start..end], flags, Mode::empty(), resolve) {
                Ok(fd) => return Ok(fd),
                // Old kernels lack openat2; some seccomp filters deny it.
                Err(Errno::NOSYS | Errno::PERM) => self.openat2_unavailable = true,
                // The walk below reproduces the error and names the component.
                Err(_) => {}
            }
        }
        walk_components(dir, rel, start, end)
    }
}

/// The end of the longest run of whole components from `start` that fits one
/// path argument (always at least one component; a single component is at
/// most `NAME_MAX` on Linux filesystems, far below `PATH_MAX`).
fn piece_end(rel: &[u8], start: usize) -> usize {
    let mut end = next_slash(rel, start);
    while end < rel.len() {
        let next = next_slash(rel, end + 1);
        if next - start > MAX_PATH_ARG {
            break;
        }
        end = next;
    }
    end
}

fn next_slash(rel: &[u8], from: usize) -> usize {
    rel[from..]
        .iter()
        .position(|&b| b == b'/')
        .map_or(rel.len(), |offset| from + offset)
}

/// Opens `rel[start..end]` one component at a time with `O_NOFOLLOW`.
fn walk_components(
    base: BorrowedFd<'_>,
    rel: &[u8],
    start: usize,
    end: usize,
) -> Result<OwnedFd, Failure> {
    let flags = dir_flags() | OFlags::NOFOLLOW;
    let mut current: Option<OwnedFd> = None;
    let mut pos = start;
    while pos < end {
        let stop = next_slash(rel, pos).min(end);
        let component = &rel[pos..stop];
        let dir = current.as_ref().map_or(base, AsFd::as_fd);
        match rustix::fs::openat(dir, component, flags, Mode::empty()) {
            Ok(fd) => current = Some(fd),
            Err(err) => return Err(component_error(dir, component, &rel[..stop], err)),
        }
        pos = stop + 1;
    }
    current.ok_or_else(|| Failure::new(FailKind::Other, "empty destination directory path"))
}

fn component_error(dir: BorrowedFd<'_>, component: &[u8], shown: &[u8], err: Errno) -> Failure {
    let shown = escape_path(shown);
    if matches!(err, Errno::LOOP | Errno::NOTDIR) {
        let found = rustix::fs::statat(dir, component, AtFlags::SYMLINK_NOFOLLOW)
            .map(|st| FileType::from_raw_mode(st.st_mode));
        if let Ok(FileType::Symlink) = found {
            return Failure::new(
                FailKind::DestIo,
                format!(
                    "destination directory \"{shown}\" is a symbolic link; not writing through it"
                ),
            );
        }
        if found.is_ok() {
            return Failure::new(
                FailKind::DestIo,
                format!("destination \"{shown}\" is not a directory"),
            );
        }
    }
    Failure::new(
        if super::fail::is_no_space(err) {
            FailKind::NoSpace
        } else {
            FailKind::DestIo
        },
        format!(
            "cannot open destination directory \"{shown}\": {}",
            errno_text(err)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_splits_parent_and_name() {
        let dest = DestPath::parse(OsStr::new("a/b/c.txt")).map_err(|f| f.message);
        let dest = dest.expect("valid path");
        assert_eq!(dest.parent, b"a/b");
        assert_eq!(dest.name, OsStr::new("c.txt"));
        let top = DestPath::parse(OsStr::new("c")).map_err(|f| f.message);
        assert_eq!(top.expect("valid path").parent, b"");
    }

    #[test]
    fn parse_rejects_escaping_and_unclean_paths() {
        for bad in [
            "",
            "/etc/passwd",
            "a/../b",
            "..",
            "a//b",
            "a/./b",
            "a/",
            ".",
        ] {
            assert!(
                DestPath::parse(OsStr::new(bad)).is_err(),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn piece_end_cuts_at_component_boundaries_below_path_max() {
        let component = [b'x'; 200];
        let mut rel = Vec::new();
        for _ in 0..50 {
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(&component);
        }
        let mut pos = 0;
        let mut pieces = 0;
        while pos < rel.len() {
            let end = piece_end(&rel, pos);
            assert!(end - pos <= MAX_PATH_ARG);
            assert!(end == rel.len() || rel[end] == b'/');
            pos = end + 1;
            pieces += 1;
        }
        assert_eq!(pieces, 3);
    }
}
