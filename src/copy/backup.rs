//! `-b`: the old version of a file about to be replaced or deleted is kept
//! under its backup name (beside it with `--suffix`, or below
//! `--backup-dir`), moved there by name, never copied.
//!
//! For a replacement the old inode is first linked to the backup name and
//! the new file then renamed over the name, so the name never lacks a
//! version. Where the filesystem has no hard links (exFAT) the old version
//! is renamed aside instead, just before the new one is renamed in.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::commit::next_temp_name;
use super::fail::Failure;
use crate::job::{BackupOptions, FailKind};

/// Where old versions go; one per engine (and one for `--delete`).
#[derive(Debug)]
pub(crate) struct Backup {
    /// The `--backup-dir`, opened once relative to the destination root
    /// (the main process created it before the run), never through a
    /// symlink beneath DST.
    dir: Option<OwnedFd>,
    suffix: OsString,
    /// Temp-name stem for the link made before the rename.
    stem: String,
}

/// The directory a backup goes into: the file's own, or one below the
/// backup directory.
enum Target<'a> {
    Beside(BorrowedFd<'a>),
    Below(OwnedFd),
}

impl Target<'_> {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Target::Beside(fd) => *fd,
            Target::Below(fd) => fd.as_fd(),
        }
    }
}

impl Backup {
    /// Opens the backup directory of `opts` relative to `root`.
    pub(crate) fn open(
        root: BorrowedFd<'_>,
        opts: &BackupOptions,
        tag: &str,
    ) -> std::io::Result<Backup> {
        // Beneath DST without following a link; outside it as named.
        let dir = match &opts.dir {
            Some(dir) => Some(super::backup_dir::open(root, dir)?),
            None => None,
        };
        Ok(Backup {
            dir,
            suffix: opts.suffix.clone(),
            stem: format!("{tag}{}", std::process::id()),
        })
    }

    /// Before `name` in `dir` (at `parent` below the destination root) is
    /// replaced: links what is there to its backup name, replacing an
    /// older backup; a directory there (in the way of a file) is renamed
    /// to its backup name instead, but only when `force` (`--force`,
    /// `--delete`) lets it go: otherwise it stays, and the replacement
    /// fails on it as without `-b`.
    pub(super) fn keep(
        &self,
        dir: BorrowedFd<'_>,
        parent: &[u8],
        name: &OsStr,
        force: bool,
    ) -> Result<(), Failure> {
        let is_dir = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => FileType::from_raw_mode(st.st_mode) == FileType::Directory,
            Err(Errno::NOENT) => return Ok(()),
            Err(err) => return Err(Failure::dest("cannot stat destination for backup", err)),
        };
        if is_dir && !force {
            return Ok(());
        }
        let target = (self.target(dir, parent))
            .map_err(|e| Failure::dest("cannot create backup directory", e))?;
        let backup_name = self.backup_name(name);
        if is_dir {
            // A directory in the way of a file goes aside whole (a
            // directory cannot be linked): its name is free until the
            // new entry is renamed in.
            return rename_aside(dir, name, target.fd(), &backup_name);
        }
        let temp = next_temp_name(&self.stem);
        match rustix::fs::linkat(dir, name, target.fd(), temp.as_c_str(), AtFlags::empty()) {
            Ok(()) => {}
            Err(Errno::PERM | Errno::MLINK | Errno::OPNOTSUPP) => {
                return rename_aside(dir, name, target.fd(), &backup_name);
            }
            Err(err) => return Err(backup_failed(err)),
        }
        let renamed = rustix::fs::renameat(target.fd(), temp.as_c_str(), target.fd(), &backup_name);
        if let Err(err) = renamed {
            let _ = rustix::fs::unlinkat(target.fd(), temp.as_c_str(), AtFlags::empty());
            return Err(backup_failed(err));
        }
        Ok(())
    }

    /// [`Backup::keep`] for the walker (a directory replacing a name) and
    /// the finish stage (a hard link replacing a name): the error as a
    /// message.
    pub(crate) fn keep_old(
        &self,
        dir: BorrowedFd<'_>,
        parent: &[u8],
        name: &OsStr,
        force: bool,
    ) -> Result<(), String> {
        self.keep(dir, parent, name, force).map_err(|f| f.message)
    }

    /// `--delete` with `-b`: renames `name` in `dir` (a file, symlink or
    /// special file) to its backup name instead of removing it.
    pub(crate) fn move_aside(
        &self,
        dir: BorrowedFd<'_>,
        parent: &[u8],
        name: &OsStr,
    ) -> Result<(), Errno> {
        let target = self.target(dir, parent)?;
        match rustix::fs::renameat(dir, name, target.fd(), self.backup_name(name)) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(err) => Err(err),
        }
    }

    fn backup_name(&self, name: &OsStr) -> OsString {
        let mut backup = name.to_os_string();
        backup.push(&self.suffix);
        backup
    }

    /// The directory the backup of an entry of `parent` goes into,
    /// created below the backup directory when missing (never following
    /// a symlink there).
    fn target<'a>(&self, dir: BorrowedFd<'a>, parent: &[u8]) -> Result<Target<'a>, Errno> {
        let Some(root) = &self.dir else {
            return Ok(Target::Beside(dir));
        };
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut current = rustix::io::fcntl_dupfd_cloexec(root, 0)?;
        for part in parent.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
            let part = OsStr::from_bytes(part);
            match rustix::fs::mkdirat(&current, part, Mode::from_raw_mode(0o777)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(err) => return Err(err),
            }
            current = rustix::fs::openat(&current, part, flags, Mode::empty())?;
        }
        Ok(Target::Below(current))
    }
}

fn rename_aside(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    target: BorrowedFd<'_>,
    backup_name: &OsStr,
) -> Result<(), Failure> {
    match rustix::fs::renameat(dir, name, target, backup_name) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(err) => Err(backup_failed(err)),
    }
}

fn backup_failed(err: Errno) -> Failure {
    match err {
        Errno::XDEV => Failure::new(
            FailKind::DestIo,
            "cannot make backup: --backup-dir is on another filesystem; not replaced",
        ),
        err => Failure::dest("cannot make backup; not replaced", err),
    }
}
