//! What `-a` keeps beyond contents, mode and times: owner and group (where
//! this user may set them), extended attributes, and fifos, sockets and
//! device nodes (recreated with `mknodat`); and the POSIX ACLs `-A` keeps.

use std::ffi::CStr;
use std::os::fd::BorrowedFd;

use rustix::fs::{AtFlags, FileType, Mode, Stat};
use rustix::io::Errno;

use super::fail::Failure;
use super::owners::Owners;
use super::xattrs;

/// Gives the new file the owner and group `owners` asks for, before its
/// mode (a `chown` clears setuid and setgid). Returns whether both were
/// set: only then do setuid and setgid stay (see
/// [`Wanted::apply`](super::owners::Wanted::apply)).
pub(super) fn copy_owner(fd: BorrowedFd<'_>, st: &Stat, owners: Owners) -> Result<bool, Failure> {
    owners
        .wanted(st.st_uid, st.st_gid)
        .apply(|uid, gid| rustix::fs::fchown(fd, uid, gid))
        .map_err(|err| Failure::dest("cannot set owner", err))
}

/// [`copy_owner`] for an entry that cannot be opened (a symlink or a
/// special file under its temp name), never following a symlink.
pub(super) fn copy_owner_at(
    dir: BorrowedFd<'_>,
    name: &CStr,
    st: &Stat,
    owners: Owners,
) -> Result<bool, Failure> {
    let nofollow = AtFlags::SYMLINK_NOFOLLOW;
    owners
        .wanted(st.st_uid, st.st_gid)
        .apply(|uid, gid| rustix::fs::chownat(dir, name, uid, gid, nofollow))
        .map_err(|err| Failure::dest("cannot set owner", err))
}

/// Copies every extended attribute of `src` to `dst`, by the rule of
/// [`xattrs::set`].
pub(super) fn copy_xattrs(src: BorrowedFd<'_>, dst: BorrowedFd<'_>) -> Result<(), Failure> {
    let attrs = xattrs::read_fd(src)
        .map_err(|err| Failure::source("cannot read extended attributes", err))?;
    for (name, value) in &attrs {
        xattrs::set(dst, name, value).map_err(|err| {
            let shown = String::from_utf8_lossy(name);
            Failure::dest(&format!("cannot set extended attribute {shown}"), err)
        })?;
    }
    Ok(())
}

/// Makes the POSIX ACLs of the file `dst` those of `src` (`-A`); returns
/// whether they changed, so the mode is set again after them.
pub(super) fn copy_acls(src: BorrowedFd<'_>, dst: BorrowedFd<'_>) -> Result<bool, Failure> {
    let attrs = xattrs::read_fd(src).map_err(|err| Failure::source("cannot read the ACLs", err))?;
    xattrs::apply_acls(dst, &xattrs::acls_of(attrs), false)
        .map_err(|err| Failure::dest("cannot set the ACLs", err))
}

/// Creates a node like the special file `st` under `name` in `dir`, mode
/// 0600 until its metadata is applied. `false` when this user may not (a
/// device node without root): the caller skips it with a warning.
pub(super) fn make_node(dir: BorrowedFd<'_>, name: &CStr, st: &Stat) -> Result<bool, Errno> {
    let file_type = FileType::from_raw_mode(st.st_mode);
    let mode = Mode::from_raw_mode(0o600);
    match rustix::fs::mknodat(dir, name, file_type, mode, st.st_rdev) {
        Ok(()) => Ok(true),
        Err(Errno::PERM) => Ok(false),
        Err(err) => Err(err),
    }
}

/// What a special file is called in messages.
pub(super) fn special_name(file_type: FileType) -> &'static str {
    match file_type {
        FileType::Fifo => "fifo",
        FileType::Socket => "socket",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        _ => "unknown type",
    }
}
