//! `--partial`: the temp of a split file keeps the parts already complete
//! across runs. It is named after its file (`.pcopy-tmp.partial.NAME`) so
//! the next run finds it, and carries as extended attributes the source
//! it was copied from (device, inode, size, mtime) and one attribute per
//! part written whole. The next run resumes it only for the same source
//! and copies the other parts; anything else is removed, as temps are.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, Mode, OFlags, XattrFlags};
use rustix::io::Errno;

use super::commit::TEMP_PREFIX;
use super::xattrs;

use crate::job::FileTime;

/// What follows [`TEMP_PREFIX`] in the name of a resumable temp.
const PARTIAL_TAG: &str = "partial.";
/// The source the parts were copied from.
const SOURCE_ATTR: &str = "user.pcopy.source";
/// Followed by a part's offset; its value is the part's length.
const PART_ATTR: &str = "user.pcopy.part.";

/// The source file a partial temp belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) size: u64,
    pub(crate) mtime: FileTime,
}

impl Identity {
    fn text(&self) -> String {
        let Identity {
            dev,
            ino,
            size,
            mtime,
        } = self;
        format!("{dev} {ino} {size} {} {}", mtime.secs, mtime.nanos)
    }
}

/// A part of a split file: `len` bytes from `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Part {
    pub(crate) offset: u64,
    pub(crate) len: u64,
}

/// A partial temp found or made for a split file.
#[derive(Debug)]
pub(crate) struct Partial {
    pub(crate) temp: OsString,
    /// Parts already complete in it.
    pub(crate) done: Vec<Part>,
}

/// Whether `name` (in a destination directory) is a resumable temp.
pub(crate) fn is_partial(name: &[u8]) -> bool {
    name.strip_prefix(TEMP_PREFIX.as_bytes())
        .is_some_and(|rest| rest.starts_with(PARTIAL_TAG.as_bytes()))
}

/// The temp of the split file `name` in `dir` at `size` bytes: the one an
/// interrupted run left for this very source, with the parts it holds, or
/// a new one. `None` when the name would be too long for a temp of its
/// own (the caller then makes an ordinary one).
pub(crate) fn open_or_create(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    source: &Identity,
) -> Result<Option<Partial>, Errno> {
    let mut temp = OsString::from(TEMP_PREFIX);
    temp.push(PARTIAL_TAG);
    temp.push(name);
    if temp.len() > 255 {
        return Ok(None);
    }
    // Anything may have been put at the temp's name: opening it must not
    // wait (a fifo) nor take a controlling terminal (a tty). What is not a
    // regular file is not resumed but removed, as a stale temp is.
    let flags =
        OFlags::RDWR | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    match rustix::fs::openat(dir, temp.as_os_str(), flags, Mode::empty()) {
        Ok(fd) => {
            if let Some(done) = resumable(fd.as_fd(), source) {
                return Ok(Some(Partial { temp, done }));
            }
            rustix::fs::unlinkat(dir, temp.as_os_str(), AtFlags::empty())?;
        }
        Err(Errno::NOENT) => {}
        Err(err) => return Err(err),
    }
    let fd = rustix::fs::openat(
        dir,
        temp.as_os_str(),
        flags | OFlags::CREATE | OFlags::EXCL,
        Mode::from_raw_mode(0o600),
    )?;
    let made = rustix::fs::ftruncate(&fd, source.size).and_then(|()| {
        rustix::fs::fsetxattr(
            &fd,
            SOURCE_ATTR,
            source.text().as_bytes(),
            XattrFlags::empty(),
        )
    });
    if let Err(err) = made {
        let _ = rustix::fs::unlinkat(dir, temp.as_os_str(), AtFlags::empty());
        // No attributes here (or no room): the file is split as usual.
        return match err {
            Errno::OPNOTSUPP | Errno::NOSPC | Errno::TOOBIG | Errno::PERM => Ok(None),
            err => Err(err),
        };
    }
    Ok(Some(Partial {
        temp,
        done: Vec::new(),
    }))
}

/// The parts complete in the temp `fd`, if it is a regular file made for
/// `source` with its full length; `None` otherwise.
fn resumable(fd: BorrowedFd<'_>, source: &Identity) -> Option<Vec<Part>> {
    let st = rustix::fs::fstat(fd).ok()?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return None;
    }
    if u64::try_from(st.st_size).ok()? != source.size {
        return None;
    }
    let attrs = xattrs::read_fd(fd).ok()?;
    let recorded = attrs
        .iter()
        .find(|(name, _)| name == SOURCE_ATTR.as_bytes())?;
    if recorded.1 != source.text().as_bytes() {
        return None;
    }
    let done = attrs.iter().filter_map(|(name, value)| {
        let offset = std::str::from_utf8(name.strip_prefix(PART_ATTR.as_bytes())?).ok()?;
        let len = std::str::from_utf8(value).ok()?;
        Some(Part {
            offset: offset.parse().ok()?,
            len: len.parse().ok()?,
        })
    });
    Some(done.collect())
}

/// A part of a temp whose data is on disk: the only thing
/// [`record_part`] takes, and made only by [`sync_part`], so a part is
/// never recorded before its data is durable. A record that outlived a
/// crash its data did not would make the next run skip a part of zeros.
#[derive(Debug)]
pub(super) struct SyncedPart<'fd> {
    fd: BorrowedFd<'fd>,
    offset: u64,
    len: u64,
}

/// Flushes the data of the temp `fd` (the part at `offset` of `len` bytes
/// was just written whole) to disk; the part may be recorded only then.
pub(super) fn sync_part(
    fd: BorrowedFd<'_>,
    offset: u64,
    len: u64,
) -> Result<SyncedPart<'_>, Errno> {
    rustix::fs::fdatasync(fd)?;
    Ok(SyncedPart { fd, offset, len })
}

/// Records that a part, flushed by [`sync_part`], is complete in its temp.
/// Best effort: an unrecorded part is only copied again.
pub(super) fn record_part(part: SyncedPart<'_>) {
    let name = format!("{PART_ATTR}{}", part.offset);
    let _ = rustix::fs::fsetxattr(
        part.fd,
        name.as_str(),
        part.len.to_string().as_bytes(),
        XattrFlags::empty(),
    );
}

/// Removes the records from a complete temp before it gets its name.
pub(super) fn clear_records(fd: &OwnedFd) -> Result<(), Errno> {
    for (name, _) in xattrs::read_fd(fd.as_fd())? {
        if name.starts_with(b"user.pcopy.") {
            match rustix::fs::fremovexattr(fd, OsStr::from_bytes(&name)) {
                Ok(()) | Err(Errno::NODATA) => {}
                Err(err) => return Err(err),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    fn source() -> Identity {
        Identity {
            dev: 1,
            ino: 2,
            size: 8192,
            mtime: FileTime { secs: 3, nanos: 4 },
        }
    }

    #[test]
    fn a_synced_part_is_recorded_and_found_by_the_next_run() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = rustix::fs::open(
            tmp.path(),
            OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .expect("open dir");
        let name = OsStr::new("big");
        let Some(made) = open_or_create(dir.as_fd(), name, &source()).expect("temp") else {
            eprintln!("skipped: no user xattrs where the temp dir is");
            return;
        };
        assert!(made.done.is_empty());
        let fd = rustix::fs::openat(dir.as_fd(), &made.temp, OFlags::RDWR, Mode::empty())
            .expect("open temp");
        rustix::io::pwrite(&fd, &[7; 4096], 4096).expect("write");
        let synced = sync_part(fd.as_fd(), 4096, 4096).expect("fdatasync");
        record_part(synced);
        let found = open_or_create(dir.as_fd(), name, &source()).expect("temp");
        let part = Part {
            offset: 4096,
            len: 4096,
        };
        assert_eq!(found.expect("resumed").done, [part]);
    }

    #[test]
    fn a_part_whose_data_cannot_be_flushed_cannot_be_recorded() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let fifo = tmp.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .expect("mkfifo");
        // Read and write: the open does not wait for a peer.
        let fd = rustix::fs::open(&fifo, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
            .expect("open fifo");
        // fdatasync fails on a pipe: no `SyncedPart`, so nothing to record.
        assert_eq!(sync_part(fd.as_fd(), 0, 1).map(drop), Err(Errno::INVAL));
    }
}
