//! The destination side of the quick check: one `fstatat` relative to the
//! cached destination directory, content and link-target comparison for
//! `--checksum`, and bringing an up-to-date entry's mode and mtime in line
//! without rewriting it.

use std::ffi::{CStr, OsStr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps, UTIME_OMIT};
use rustix::io::Errno;

use super::commit;
use super::digest::hash_fd;
use super::fail::Failure;
use super::owners::Wanted;
use super::quick_check::DestMeta;
use super::source;
use crate::job::SourceMeta;

/// `lstat` of `name` in `dir`; `None` when nothing is there.
pub(super) fn dest_meta(dir: BorrowedFd<'_>, name: &OsStr) -> Result<Option<DestMeta>, Failure> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(DestMeta::from_stat(&st))),
        Err(Errno::NOENT) => Ok(None),
        Err(err) => Err(Failure::dest("cannot stat destination", err)),
    }
}

/// Whether the source file and the regular file `name` in `dir` hold the
/// same bytes (by xxh3-128 of each).
pub(super) fn same_contents(
    src: &OsStr,
    follow: bool,
    dir: BorrowedFd<'_>,
    name: &OsStr,
    buffer: &mut Vec<u8>,
) -> Result<bool, Failure> {
    let source = source::open(src, follow).map_err(|e| Failure::source("cannot open source", e))?;
    let flags =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let dest = rustix::fs::openat(dir, name, flags, Mode::empty())
        .map_err(|e| Failure::dest("cannot open destination to compare", e))?;
    let (src_hash, _) =
        hash_fd(source.as_fd(), buffer).map_err(|e| Failure::source("cannot read source", e))?;
    let (dest_hash, _) =
        hash_fd(dest.as_fd(), buffer).map_err(|e| Failure::dest("cannot read destination", e))?;
    Ok(src_hash == dest_hash)
}

/// Whether the symlink at `name` in `dir` points to `ours`, the source
/// symlink's target.
pub(super) fn same_link_target(
    ours: &CStr,
    dir: BorrowedFd<'_>,
    name: &OsStr,
) -> Result<bool, Failure> {
    let theirs = rustix::fs::readlinkat(dir, name, Vec::new())
        .map_err(|e| Failure::dest("cannot read destination link", e))?;
    Ok(ours == theirs.as_c_str())
}

/// What [`refresh`] brings in line besides the mtime.
#[derive(Debug, Clone, Copy)]
pub(super) struct Refresh {
    /// The owner and group to set, where permitted (`-a`, `--chown`).
    pub(super) owner: Wanted,
    /// mtimes this many ns apart count as equal (`--modify-window`, or
    /// the destination's timestamp step).
    pub(super) window_ns: u64,
    /// Set permission bits: `-p`, and the destination keeps them (exFAT
    /// does not: setting them on every rerun would change nothing but
    /// cost a call a file).
    pub(super) modes: bool,
    /// Set the mtime (`-t`).
    pub(super) times: bool,
}

/// Gives an entry that is already up to date the source's mtime, owner
/// and permission bits where they differ (see [`Refresh`]). A symlink
/// planted at `name` is never followed.
pub(super) fn refresh(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    dest: &DestMeta,
    src: &SourceMeta,
    how: Refresh,
) -> Result<(), Failure> {
    let Refresh {
        owner,
        window_ns,
        modes,
        times,
    } = how;
    // Within the window the times are the same as far as the destination
    // can tell: setting them again would only change the ctime.
    if times && !super::quick_check::same_mtime(dest.mtime, src.mtime, window_ns) {
        let times = Timestamps {
            last_access: Timespec {
                tv_sec: 0,
                tv_nsec: UTIME_OMIT,
            },
            last_modification: src.mtime.timespec(),
        };
        rustix::fs::utimensat(dir, name, &times, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| Failure::dest("cannot set times", e))?;
    }
    let chowned = owner.differs(dest.uid, dest.gid).any();
    let owner_kept = match chowned {
        true => chown_nofollow(dir, name, owner)?,
        false => owner.both(),
    };
    let mode = commit::final_mode(src.mode, owner_kept);
    // A chown clears setuid and setgid, so the mode is looked at again.
    if modes && dest.file_type != FileType::Symlink && (dest.mode != mode || chowned) {
        chmod_nofollow(dir, name, mode)?;
    }
    Ok(())
}

/// `lchown`; whether both ids were set (see [`Wanted::apply`]).
fn chown_nofollow(dir: BorrowedFd<'_>, name: &OsStr, owner: Wanted) -> Result<bool, Failure> {
    owner
        .apply(|uid, gid| rustix::fs::chownat(dir, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW))
        .map_err(|err| Failure::dest("cannot set owner", err))
}

/// `chmod` of the entry itself: an `O_PATH` descriptor opened without
/// following, checked to be no symlink, and changed through its
/// `/proc/self/fd` name (`fchmod` refuses `O_PATH` descriptors).
fn chmod_nofollow(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> Result<(), Failure> {
    let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, name, flags, Mode::empty())
        .map_err(|e| Failure::dest("cannot open destination to set its mode", e))?;
    let st = rustix::fs::fstat(&fd).map_err(|e| Failure::dest("cannot stat destination", e))?;
    if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
        return Err(Failure::dest("destination changed type", Errno::LOOP));
    }
    let by_fd = format!("/proc/self/fd/{}", fd.as_raw_fd());
    rustix::fs::chmod(by_fd.as_str(), Mode::from_raw_mode(mode))
        .map_err(|e| Failure::dest("cannot set mode", e))
}
