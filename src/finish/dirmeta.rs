//! Directory modes and times, applied after the directories' contents.
//!
//! Copying a file into a directory changes the directory's mtime, and a
//! read-only source directory would refuse the files meant for it; so the
//! walker creates directories owner-writable and records their metadata,
//! and this pass applies it once every worker is done, deepest first: a
//! directory made read-only (or unsearchable) can no longer be entered to
//! fix its children.
//!
//! Within one depth the directories are independent, so each level is done
//! in parallel with rayon. This is the one place pcopy uses rayon: it is
//! CPU-light syscall work inside the parent, where a data-parallel loop is
//! the right tool, while file copying goes through the procpool queues
//! (which can run in other processes and survive a worker's death).

use std::collections::HashSet;
use std::ffi::OsString;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;

use rayon::prelude::*;
use rustix::fs::{Mode, Stat, Timestamps};
use rustix::io::Errno;

use crate::copy::owners::{IdsDiffer, Owners, Wanted};
use crate::copy::xattrs::{self, Xattr};
use crate::job::{Changes, FileTime};
use crate::relpath::open_beneath;
use crate::ui::escape::io_reason;

/// The metadata a destination directory gets from its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DirMeta {
    /// Relative to the destination root; empty for the root itself.
    pub(crate) rel: OsString,
    /// Permission bits, with setuid, setgid and sticky.
    pub(crate) mode: u32,
    pub(crate) atime: FileTime,
    pub(crate) mtime: FileTime,
    /// What `-a` keeps besides; `None` without it.
    pub(crate) archive: Option<Box<DirArchive>>,
    /// The POSIX ACLs, access and default (`-A`); `None` without it.
    pub(crate) acls: Option<Vec<Xattr>>,
}

/// The owner and group a directory gets (`-a`, `--chown`) and the
/// extended attributes of its source (`-a`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DirArchive {
    pub(crate) owner: Wanted,
    pub(crate) xattrs: Vec<Xattr>,
}

impl DirMeta {
    pub(crate) fn from_source(rel: OsString, meta: &Stat) -> DirMeta {
        DirMeta {
            rel,
            mode: meta.st_mode & 0o7777,
            atime: FileTime::atime(meta),
            mtime: FileTime::mtime(meta),
            archive: None,
            acls: None,
        }
    }

    /// Adds the ACLs `-A` keeps: `dir` is the source directory, open
    /// (`None` when it could not be opened: its ACLs are left as they are).
    pub(crate) fn with_acls(mut self, dir: Option<BorrowedFd<'_>>) -> DirMeta {
        // Best effort, as for the attributes of -a: ACLs that cannot be
        // read are left as they are, not removed.
        self.acls = dir
            .and_then(|d| xattrs::read_fd(d).ok())
            .map(xattrs::acls_of);
        self
    }

    /// Adds the owner and group `owners` asks for and, with `xattrs`
    /// (`-a`), the attributes: `dir` is the source directory, open (`None`
    /// when it could not be opened: it keeps no attributes then).
    pub(crate) fn with_archive(
        mut self,
        meta: &Stat,
        dir: Option<BorrowedFd<'_>>,
        owners: Owners,
        xattrs: bool,
    ) -> DirMeta {
        self.archive = Some(Box::new(DirArchive {
            owner: owners.wanted(meta.st_uid, meta.st_gid),
            // Best effort, as for the times: a directory whose attributes
            // cannot be read is still copied.
            xattrs: dir
                .filter(|_| xattrs)
                .and_then(|d| xattrs::read_fd(d).ok())
                .unwrap_or_default(),
        }));
        self
    }

    fn depth(&self) -> usize {
        match self.rel.as_bytes() {
            [] => 0,
            bytes => 1 + bytes.iter().filter(|&&b| b == b'/').count(),
        }
    }
}

/// A directory whose metadata could not be applied.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct DirMetaError {
    pub(crate) rel: OsString,
    pub(crate) reason: String,
}

impl DirMeta {
    /// How the existing directory `st` differs from this record, in the
    /// terms of rsync's `--itemize-changes`.
    pub(crate) fn differences(&self, st: &Stat) -> Changes {
        let ids = match &self.archive {
            Some(archive) => archive.owner.differs(st.st_uid, st.st_gid),
            None => IdsDiffer::default(),
        };
        Changes {
            time: self.mtime != FileTime::mtime(st),
            perms: st.st_mode & 0o7777 != self.mode,
            owner: ids.owner,
            group: ids.group,
            ..Changes::default()
        }
    }
}

/// Applies every record, deepest directories first, and returns what failed.
/// A directory recorded twice (`pcopy a/ b/ dst` records `dst` for both
/// sources) gets the metadata recorded last, as if the sources had been
/// copied one after the other.
/// With `fsync`, each directory is flushed after its metadata, which comes
/// after all its entries.
pub(crate) fn apply_all(
    root: BorrowedFd<'_>,
    dirs: Vec<DirMeta>,
    how: DirApply,
) -> Vec<DirMetaError> {
    let mut seen = HashSet::new();
    let mut dirs: Vec<DirMeta> = dirs
        .into_iter()
        .rev()
        .filter(|dir| seen.insert(dir.rel.clone()))
        .collect();
    dirs.sort_by_key(|dir| std::cmp::Reverse(dir.depth()));
    let mut errors = Vec::new();
    for level in dirs.chunk_by(|a, b| a.depth() == b.depth()) {
        let failed: Vec<DirMetaError> = level
            .par_iter()
            .filter_map(|dir| {
                apply(root, dir, how).err().map(|reason| DirMetaError {
                    rel: dir.rel.clone(),
                    reason,
                })
            })
            .collect();
        errors.extend(failed);
    }
    errors
}

/// How directories get their metadata, the same for all of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DirApply {
    /// `--fsync`: flush each directory after its metadata.
    pub(crate) fsync: bool,
    /// mtimes this many ns apart count as equal: the destination keeps
    /// no finer times (or `--modify-window` says so).
    pub(crate) window_ns: u64,
    /// The destination keeps permission bits (exFAT does not).
    pub(crate) modes: bool,
    /// Directories get their source's times (`-t`); without, the times
    /// their entries leave them.
    pub(crate) times: bool,
}

#[cfg(test)]
impl DirApply {
    /// Exact times and modes, as on any Linux filesystem.
    pub(crate) fn exact(fsync: bool) -> DirApply {
        DirApply {
            fsync,
            window_ns: 0,
            modes: true,
            times: true,
        }
    }
}

/// Sets what differs, so a rerun over an unchanged tree changes nothing,
/// not even a ctime. Times are judged by the mtime alone: reading a
/// directory (as the walk does) may move its atime, and restoring that
/// on every run would change the ctime every time.
fn apply(root: BorrowedFd<'_>, dir: &DirMeta, how: DirApply) -> Result<(), String> {
    let fd = open_beneath(root, &dir.rel)
        .map_err(|e| reason("cannot open directory to set its times and mode", e))?;
    let st = rustix::fs::fstat(&fd).map_err(|e| reason("cannot stat directory", e))?;
    let mut chowned = false;
    if let Some(archive) = &dir.archive {
        chowned = apply_owner(fd.as_fd(), &st, archive)?;
        xattrs::apply(fd.as_fd(), &archive.xattrs)
            .map_err(|e| reason("cannot set extended attributes", e))?;
    }
    // An ACL moves the group bits: the mode is set again after it.
    let mut acls_set = false;
    if let Some(acls) = &dir.acls {
        acls_set = xattrs::apply_acls(fd.as_fd(), acls, true)
            .map_err(|e| reason("cannot set the ACLs", e))?;
    }
    let kept = FileTime::mtime(&st);
    if how.times && !crate::copy::same_mtime(dir.mtime, kept, how.window_ns) {
        let times = Timestamps {
            last_access: dir.atime.timespec(),
            last_modification: dir.mtime.timespec(),
        };
        rustix::fs::futimens(&fd, &times).map_err(|e| reason("cannot set directory times", e))?;
    }
    if how.modes && (chowned || acls_set || st.st_mode & 0o7777 != dir.mode) {
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(dir.mode))
            .map_err(|e| reason("cannot set directory mode", e))?;
    }
    if how.fsync {
        rustix::fs::fsync(&fd).map_err(|e| reason("cannot flush directory", e))?;
    }
    Ok(())
}

/// Gives the directory the owner and group asked for where they differ
/// and this user may; returns whether it tried (a chown clears setgid,
/// so the mode is set again).
fn apply_owner(fd: BorrowedFd<'_>, st: &Stat, archive: &DirArchive) -> Result<bool, String> {
    if !archive.owner.differs(st.st_uid, st.st_gid).any() {
        return Ok(false);
    }
    archive
        .owner
        .apply(|uid, gid| rustix::fs::fchown(fd, uid, gid))
        .map_err(|e| reason("cannot set directory owner", e))?;
    Ok(true)
}

fn reason(what: &str, err: Errno) -> String {
    format!("{what}: {}", io_reason(&err.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fs::OFlags;
    use std::fs;
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::fs::PermissionsExt;

    fn meta(rel: &str, mode: u32, mtime: i64) -> DirMeta {
        DirMeta {
            rel: rel.into(),
            mode,
            atime: FileTime {
                secs: mtime,
                nanos: 0,
            },
            mtime: FileTime {
                secs: mtime,
                nanos: 123_456_789,
            },
            archive: None,
            acls: None,
        }
    }

    #[test]
    fn read_only_parents_are_applied_after_their_children() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join("a/b/c")).unwrap();
        let root = rustix::fs::open(
            tmp.path(),
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
        let dirs = vec![
            meta("a", 0o500, 1_000),
            meta("a/b", 0o555, 2_000),
            meta("a/b/c", 0o750, 3_000),
        ];
        assert_eq!(
            apply_all(root.as_fd(), dirs, DirApply::exact(false)),
            Vec::new()
        );
        let c = fs::metadata(tmp.path().join("a/b/c")).unwrap();
        assert_eq!((c.mtime(), c.mtime_nsec()), (3_000, 123_456_789));
        assert_eq!(c.permissions().mode() & 0o7777, 0o750);
        let a = fs::metadata(tmp.path().join("a")).unwrap();
        assert_eq!((a.mtime(), a.permissions().mode() & 0o7777), (1_000, 0o500));
        fs::set_permissions(tmp.path().join("a"), fs::Permissions::from_mode(0o700)).unwrap();
    }

    #[test]
    fn a_symlink_in_place_of_a_directory_is_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("elsewhere")).unwrap();
        std::os::unix::fs::symlink("elsewhere", tmp.path().join("d")).unwrap();
        let root = rustix::fs::open(
            tmp.path(),
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
        let errors = apply_all(
            root.as_fd(),
            vec![meta("d", 0o500, 5)],
            DirApply::exact(false),
        );
        assert_eq!(errors.len(), 1);
        let elsewhere = fs::metadata(tmp.path().join("elsewhere")).unwrap();
        assert_ne!(elsewhere.mtime(), 5);
    }

    #[test]
    fn the_last_record_of_a_directory_wins() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("d")).unwrap();
        let root = rustix::fs::open(
            tmp.path(),
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
        let errors = apply_all(
            root.as_fd(),
            vec![meta("d", 0o700, 10), meta("d", 0o750, 20)],
            DirApply::exact(false),
        );
        assert_eq!(errors, Vec::new());
        let d = fs::metadata(tmp.path().join("d")).unwrap();
        assert_eq!((d.mtime(), d.permissions().mode() & 0o7777), (20, 0o750));
    }

    #[test]
    fn a_destination_with_coarse_times_and_no_modes_is_not_touched_again() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("d")).unwrap();
        let root = rustix::fs::open(
            tmp.path(),
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
        let coarse = DirApply {
            fsync: false,
            window_ns: 1_999_999_999,
            modes: false,
            times: true,
        };
        let mut record = meta("d", 0o750, 20);
        assert_eq!(
            apply_all(root.as_fd(), vec![record.clone()], coarse),
            Vec::new()
        );
        let before = fs::metadata(tmp.path().join("d")).unwrap();
        // Two seconds' steps kept 20.123456789 as 20; modes are not kept.
        record.mtime = FileTime { secs: 21, nanos: 0 };
        assert_eq!(apply_all(root.as_fd(), vec![record], coarse), Vec::new());
        let after = fs::metadata(tmp.path().join("d")).unwrap();
        assert_eq!(after.mtime(), before.mtime());
        assert_eq!(
            (after.ctime(), after.ctime_nsec()),
            (before.ctime(), before.ctime_nsec())
        );
        assert_ne!(after.permissions().mode() & 0o7777, 0o750);
    }

    #[test]
    fn depth_counts_components() {
        assert_eq!(meta("", 0, 0).depth(), 0);
        assert_eq!(meta("a/b", 0, 0).depth(), 2);
    }
}
