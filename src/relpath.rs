//! Paths as bytes, split and joined at slashes: the last name, the parent,
//! a join, and opening a directory beneath a descriptor.
//!
//! Destination paths (`FileJob::rel_dst`) are relative to the destination
//! root, components joined by single slashes; source paths may be
//! absolute. Only [`join`] allocates and only [`open_beneath`] reaches the
//! file system.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// The parent part and the last name of `path`, split at its last slash:
/// `a/b/c` gives `a/b` and `c`; a path without a slash has an empty parent.
pub(crate) fn split(path: &OsStr) -> (&OsStr, &OsStr) {
    let bytes = path.as_bytes();
    match bytes.iter().rposition(|&b| b == b'/') {
        Some(slash) => (
            OsStr::from_bytes(&bytes[..slash]),
            OsStr::from_bytes(&bytes[slash + 1..]),
        ),
        None => (OsStr::new(""), path),
    }
}

/// The last component of `path`.
pub(crate) fn last_name(path: &OsStr) -> &OsStr {
    split(path).1
}

/// The parent directory part of `path` (empty for a single name).
pub(crate) fn parent(path: &OsStr) -> &OsStr {
    split(path).0
}

/// The path of the entry `name` in the directory `parent` (the root when
/// empty).
pub(crate) fn join(parent: &OsStr, name: &OsStr) -> OsString {
    let mut path = OsString::with_capacity(parent.len() + 1 + name.len());
    path.push(parent);
    if !parent.is_empty() {
        path.push("/");
    }
    path.push(name);
    path
}

/// Opens the directory `rel` beneath `root` following no symlink (in one
/// `openat2`, or one component at a time), so a directory swapped for a
/// link since the walk cannot send a change elsewhere.
pub(crate) fn open_beneath(root: BorrowedFd<'_>, rel: &OsStr) -> Result<OwnedFd, Errno> {
    open_beneath_as(root, rel, OFlags::RDONLY)
}

/// [`open_beneath`] with `access` (`O_RDONLY`, or `O_PATH` for a
/// descriptor that only names the directory: on a network file system
/// opening one for reading is a request of its own, and closing another).
pub(crate) fn open_beneath_as(
    root: BorrowedFd<'_>,
    rel: &OsStr,
    access: OFlags,
) -> Result<OwnedFd, Errno> {
    let flags = access | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    if !rel.is_empty() {
        // One call where the kernel has openat2; any failure (no openat2,
        // a path too long, a symlink) is left to the walk below, which
        // reproduces it for the component at fault.
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS;
        if let Ok(fd) = rustix::fs::openat2(root, rel, flags, Mode::empty(), resolve) {
            return Ok(fd);
        }
    }
    let mut current = rustix::io::fcntl_dupfd_cloexec(root, 0)?;
    for name in rel
        .as_bytes()
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
    {
        current = rustix::fs::openat(
            current.as_fd(),
            OsStr::from_bytes(name),
            flags,
            Mode::empty(),
        )?;
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_separates_the_last_name() {
        assert_eq!(
            split(OsStr::new("a/b/c")),
            (OsStr::new("a/b"), OsStr::new("c"))
        );
        assert_eq!(split(OsStr::new("c")), (OsStr::new(""), OsStr::new("c")));
    }

    #[test]
    fn last_name_is_the_final_component() {
        assert_eq!(last_name(OsStr::new("a/b/c")), "c");
        assert_eq!(last_name(OsStr::new("c")), "c");
    }

    #[test]
    fn parent_of_strips_the_last_component() {
        assert_eq!(parent(OsStr::new("a/b/c")), "a/b");
        assert_eq!(parent(OsStr::new("c")), "");
    }
}
