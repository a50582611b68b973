//! Where the `--backup-dir` is: beneath DST (reached one component at a
//! time from DST's descriptor, never through a symlink) or the user's own
//! directory outside it, and never DST itself nor a directory holding it.
//!
//! A relative directory is relative to DST, as in rsync. Whether it lies
//! beneath DST is decided on the spelling with `.` and `name/..` taken out
//! (no component beneath DST is a link that could make `..` go elsewhere:
//! none is followed), and for a directory spelled from outside DST (an
//! absolute one, or one starting with `..`) by finding DST's device and
//! inode among the directories on its way.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::relpath;

/// Where the `--backup-dir` lies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Place {
    /// Beneath the destination root: this path relative to it, with
    /// single slashes and neither `.` nor `..` (never empty).
    Beneath(OsString),
    /// Outside DST: the user's own target, as named (relative to DST when
    /// relative).
    Outside(OsString),
}

/// The `--backup-dir` is the destination directory itself: every backup
/// would be made over, or deleted as, the entry it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IsDestination;

/// An opened directory's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DirId {
    dev: u64,
    ino: u64,
}

impl DirId {
    pub(crate) fn of(dir: BorrowedFd<'_>) -> Result<DirId, Errno> {
        let st = rustix::fs::fstat(dir)?;
        Ok(DirId {
            dev: st.st_dev,
            ino: st.st_ino,
        })
    }
}

/// Where `dir` lies relative to the destination root `root`.
pub(crate) fn locate(root: BorrowedFd<'_>, dir: &OsStr) -> Result<Place, IsDestination> {
    let absolute = dir.as_bytes().starts_with(b"/");
    let parts = components(dir.as_bytes());
    let from_outside = absolute || parts.first() == Some(&&b".."[..]);
    if !from_outside {
        return beneath(&parts);
    }
    let Ok(root_id) = DirId::of(root) else {
        return Ok(Place::Outside(dir.to_os_string()));
    };
    // The first directory on the way that is DST: what follows is beneath
    // it. Those before are outside DST, where the user's links lead.
    let first = usize::from(!absolute);
    for taken in first..=parts.len() {
        let mut prefix = if absolute { b"/".to_vec() } else { Vec::new() };
        prefix.extend_from_slice(&parts[..taken].join(&b'/'));
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let Ok(fd) = rustix::fs::openat(root, OsStr::from_bytes(&prefix), flags, Mode::empty())
        else {
            break;
        };
        if DirId::of(fd.as_fd()) == Ok(root_id) {
            return beneath(&parts[taken..]);
        }
    }
    Ok(Place::Outside(dir.to_os_string()))
}

/// Opens the backup directory `dir` (created already) relative to the
/// destination root `root`: beneath it without following a symlink, or
/// outside it as the user named it; never DST itself.
pub(crate) fn open(root: BorrowedFd<'_>, dir: &OsStr) -> io::Result<OwnedFd> {
    let fd = match locate(root, dir).map_err(|IsDestination| is_destination())? {
        Place::Beneath(rel) => relpath::open_beneath(root, &rel)?,
        Place::Outside(path) => {
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
            rustix::fs::openat(root, &path, flags, Mode::empty())?
        }
    };
    // A way around the spelling (a link outside DST back into it).
    if DirId::of(fd.as_fd())? == DirId::of(root)? {
        return Err(is_destination());
    }
    // A directory above DST that cannot be looked at (no search
    // permission there) is not taken for the backup directory.
    if holds(fd.as_fd(), root).unwrap_or(false) {
        return Err(holds_destination());
    }
    Ok(fd)
}

/// Whether `dir` is one of the directories above `root`, found by
/// identity going up through `..` to `/`: the backup of an entry of DST
/// could then land on another entry of DST (with `--backup-dir=..`, that
/// of `NAME/f`, for DST named `NAME`, is DST's own `f`).
pub(crate) fn holds(dir: BorrowedFd<'_>, root: BorrowedFd<'_>) -> Result<bool, Errno> {
    let wanted = DirId::of(dir)?;
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut below = DirId::of(root)?;
    let mut current = rustix::fs::openat(root, "..", flags, Mode::empty())?;
    loop {
        let id = DirId::of(current.as_fd())?;
        if id == wanted {
            return Ok(true);
        }
        // `/` is its own parent.
        if id == below {
            return Ok(false);
        }
        below = id;
        current = rustix::fs::openat(&current, "..", flags, Mode::empty())?;
    }
}

/// Why [`create_beneath`] stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Blocked {
    /// The component at fault, relative to DST.
    pub(crate) at: OsString,
    pub(crate) err: Errno,
}

/// Creates what is missing of `rel` beneath `root`, one directory at a
/// time with `mkdirat` and entered with `O_NOFOLLOW`: a symlink or file on
/// the way is an error (`ELOOP`, `ENOTDIR`) naming that component.
pub(crate) fn create_beneath(root: BorrowedFd<'_>, rel: &OsStr) -> Result<(), Blocked> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut done = OsString::new();
    let blocked = |at: &OsString, err| Blocked {
        at: at.clone(),
        err,
    };
    let mut current = rustix::io::fcntl_dupfd_cloexec(root, 0).map_err(|e| blocked(&done, e))?;
    for part in components(rel.as_bytes()) {
        let part = OsStr::from_bytes(part);
        done = relpath::join(&done, part);
        match rustix::fs::mkdirat(&current, part, Mode::from_raw_mode(0o777)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(err) => return Err(blocked(&done, err)),
        }
        current = (rustix::fs::openat(&current, part, flags, Mode::empty()))
            .map_err(|err| blocked(&done, err))?;
    }
    Ok(())
}

/// The error [`open`] gives for a `--backup-dir` that is DST.
fn is_destination() -> io::Error {
    io::Error::other("--backup-dir is the destination directory")
}

/// The error [`open`] gives for a `--backup-dir` above DST.
fn holds_destination() -> io::Error {
    io::Error::other(HOLDS_DESTINATION)
}

/// Why a `--backup-dir` above DST is refused.
pub(crate) const HOLDS_DESTINATION: &str = "--backup-dir holds the destination directory";

/// The components of `path` without empty ones and `.`, each `name/..`
/// taken out; `..` that go above the start stay, in front.
fn components(path: &[u8]) -> Vec<&[u8]> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." if parts.last().is_some_and(|last| *last != b"..") => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    parts
}

fn beneath(parts: &[&[u8]]) -> Result<Place, IsDestination> {
    if parts.is_empty() || parts[0] == b".." {
        // `..` left after DST was found: back out of it, not beneath.
        return match parts.is_empty() {
            true => Err(IsDestination),
            false => Ok(Place::Outside(OsString::from_vec(parts.join(&b'/')))),
        };
    }
    Ok(Place::Beneath(OsString::from_vec(parts.join(&b'/'))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_of(dir: &std::path::Path) -> OwnedFd {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        rustix::fs::open(dir, flags, Mode::empty()).unwrap()
    }

    fn beneath_of(path: &str) -> Result<Place, IsDestination> {
        Ok(Place::Beneath(OsString::from(path)))
    }

    #[test]
    fn every_spelling_of_a_directory_beneath_dst_is_found() {
        let tmp = tempfile::tempdir().unwrap();
        let dst = tmp.path().join("dst");
        std::fs::create_dir(&dst).unwrap();
        let root = root_of(&dst);
        let abs = dst.to_str().unwrap();
        for spelling in [
            "bak".to_string(),
            "./bak/".to_string(),
            "x/../bak".to_string(),
            ".//bak//".to_string(),
            format!("{abs}/bak"),
            format!("{abs}//./bak/"),
            "../dst/bak".to_string(),
        ] {
            let place = locate(root.as_fd(), OsStr::new(&spelling));
            assert_eq!(place, beneath_of("bak"), "{spelling}");
        }
        for spelling in [".", "./", "x/..", abs, &format!("{abs}/."), "../dst"] {
            let place = locate(root.as_fd(), OsStr::new(spelling));
            assert_eq!(place, Err(IsDestination), "{spelling}");
        }
        let outside = locate(root.as_fd(), OsStr::new("../old"));
        assert_eq!(outside, Ok(Place::Outside(OsString::from("../old"))));
    }

    #[test]
    fn creating_beneath_dst_never_follows_a_link() {
        let tmp = tempfile::tempdir().unwrap();
        let dst = tmp.path().join("dst");
        std::fs::create_dir_all(tmp.path().join("outside")).unwrap();
        std::fs::create_dir(&dst).unwrap();
        std::os::unix::fs::symlink("../outside", dst.join("link")).unwrap();
        let root = root_of(&dst);
        let Blocked { at, err } = create_beneath(root.as_fd(), OsStr::new("link/1")).unwrap_err();
        assert_eq!(at, OsString::from("link"));
        assert!(matches!(err, Errno::NOTDIR | Errno::LOOP), "{err}");
        assert_eq!(
            std::fs::read_dir(tmp.path().join("outside"))
                .unwrap()
                .count(),
            0
        );
        create_beneath(root.as_fd(), OsStr::new("a/b")).unwrap();
        assert!(dst.join("a/b").is_dir());
        let err = Errno::from_io_error(&open(root.as_fd(), OsStr::new("link")).unwrap_err());
        assert!(matches!(err, Some(Errno::NOTDIR | Errno::LOOP)), "{err:?}");
        let err = open(root.as_fd(), OsStr::new("a/..")).unwrap_err();
        assert_eq!(err.to_string(), "--backup-dir is the destination directory");
        for above in ["..", "../..", "../dst/.."] {
            let err = open(root.as_fd(), OsStr::new(above)).unwrap_err();
            assert_eq!(err.to_string(), HOLDS_DESTINATION, "{above}");
        }
        assert!(open(root.as_fd(), OsStr::new("../outside")).is_ok());
    }
}
