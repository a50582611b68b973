//! The copy engine: copies one [`FileJob`] at a time into the destination
//! tree, atomically per file.
//!
//! Every new file is written without a name (`O_TMPFILE`) or under a
//! [`TEMP_PREFIX`] name, gets its final mode and times, and only then is
//! linked or renamed to its final name. Destination directories are reached
//! from the destination root fd without following symlinks.

mod commit;
mod data;
mod dest;
mod fail;
mod source;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_paths;

use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use crate::job::{CopyOptions, EntryKind, FailKind, FileJob, Outcome, SkipReason};
use commit::Namer;
use data::DataCopier;
use dest::{DestPath, DirCache};
use fail::Failure;

/// Names of temp files start with this; a later run removes leftovers with
/// [`remove_stale_temps`].
pub(crate) const TEMP_PREFIX: &str = ".pcopy-tmp.";

/// Copies jobs into one destination root. One per worker; not shared
/// between threads. It caches the last destination directory fd and what
/// the destination filesystem supports.
#[derive(Debug)]
pub(crate) struct Engine {
    dirs: DirCache,
    namer: Namer,
    data: DataCopier,
    opts: CopyOptions,
}

impl Engine {
    /// Opens `dst_root`, which must be an existing directory (a symlink to
    /// one is followed: the user named it).
    pub(crate) fn new(dst_root: &Path, opts: CopyOptions) -> std::io::Result<Engine> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let root = rustix::fs::open(dst_root, flags, Mode::empty())?;
        Ok(Engine {
            dirs: DirCache::new(root),
            namer: Namer::new(),
            data: DataCopier::default(),
            opts,
        })
    }

    /// Copies one entry. Never panics: every problem becomes an
    /// [`Outcome::Failed`] and leaves no temp file behind. `on_bytes` receives
    /// the data bytes copied in increments (every 8 MiB and at the end) that
    /// add up to the `bytes` of [`Outcome::Copied`]; after a failure, the
    /// increments already reported were discarded with the temp file.
    pub(crate) fn copy(&mut self, job: &FileJob, on_bytes: &mut dyn FnMut(u64)) -> Outcome {
        let result = DestPath::parse(&job.rel_dst).and_then(|dest| {
            match (&job.kind, self.opts.dereference) {
                (EntryKind::Symlink, false) => self.copy_symlink(job, &dest, on_bytes, true),
                (EntryKind::Special, _) => self.recheck_special(job, &dest, on_bytes),
                (EntryKind::File | EntryKind::Symlink, _) => {
                    self.copy_file(job, &dest, on_bytes, true)
                }
            }
        });
        result.unwrap_or_else(Failure::into_outcome)
    }

    /// Copies a regular file (or, dereferencing, what a symlink points to).
    /// `may_redirect`: the entry may turn out to be a symlink now and is then
    /// copied as one, once.
    fn copy_file(
        &mut self,
        job: &FileJob,
        dest: &DestPath<'_>,
        on_bytes: &mut dyn FnMut(u64),
        may_redirect: bool,
    ) -> Result<Outcome, Failure> {
        let follow = self.opts.dereference;
        let src = match source::open(&job.src, follow) {
            Ok(fd) => fd,
            Err(Errno::LOOP) if !follow && may_redirect => {
                return self.copy_symlink(job, dest, on_bytes, false);
            }
            Err(Errno::NOENT) if follow && source::stat(&job.src, false).is_ok() => {
                return Err(Failure::new(
                    FailKind::SourceIo,
                    "cannot open source: symbolic link points to nothing",
                ));
            }
            Err(err) => return Err(Failure::source("cannot open source", err)),
        };
        let st =
            rustix::fs::fstat(&src).map_err(|err| Failure::source("cannot stat source", err))?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => self.write_file(src.as_fd(), &st, dest, on_bytes),
            FileType::Directory => Err(source_is_directory()),
            other => Ok(skip_special(other)),
        }
    }

    fn write_file(
        &mut self,
        src: BorrowedFd<'_>,
        st: &Stat,
        dest: &DestPath<'_>,
        on_bytes: &mut dyn FnMut(u64),
    ) -> Result<Outcome, Failure> {
        let dir = self.dirs.parent(dest.parent)?;
        let file = self.namer.create(dir)?;
        let size = u64::try_from(st.st_size).unwrap_or(0);
        let bytes = self.data.copy(src, file.fd(), size, on_bytes)?;
        commit::apply_metadata(file.fd(), st)?;
        self.namer.commit(file, dir, dest.name)?;
        Ok(Outcome::Copied {
            bytes,
            changed: bytes != size,
        })
    }

    /// Recreates a symbolic link with the same target bytes and times.
    fn copy_symlink(
        &mut self,
        job: &FileJob,
        dest: &DestPath<'_>,
        on_bytes: &mut dyn FnMut(u64),
        may_redirect: bool,
    ) -> Result<Outcome, Failure> {
        let st = source::stat(&job.src, false)
            .map_err(|err| Failure::source("cannot stat source", err))?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Symlink => {}
            FileType::RegularFile if may_redirect => {
                return self.copy_file(job, dest, on_bytes, false);
            }
            FileType::RegularFile => return Err(changing_type()),
            FileType::Directory => return Err(source_is_directory()),
            other => return Ok(skip_special(other)),
        }
        let target = source::read_link(&job.src)
            .map_err(|err| Failure::source("cannot read symbolic link", err))?;
        let dir = self.dirs.parent(dest.parent)?;
        self.namer
            .place_symlink(dir, dest.name, &target, &commit::source_times(&st))?;
        Ok(Outcome::Copied {
            bytes: 0,
            changed: false,
        })
    }

    /// A special file is skipped without being opened, unless it was
    /// replaced by a file or symlink after the walk.
    fn recheck_special(
        &mut self,
        job: &FileJob,
        dest: &DestPath<'_>,
        on_bytes: &mut dyn FnMut(u64),
    ) -> Result<Outcome, Failure> {
        let st = source::stat(&job.src, self.opts.dereference)
            .map_err(|err| Failure::source("cannot stat source", err))?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => self.copy_file(job, dest, on_bytes, false),
            FileType::Symlink => self.copy_symlink(job, dest, on_bytes, false),
            FileType::Directory => Err(source_is_directory()),
            other => Ok(skip_special(other)),
        }
    }
}

fn skip_special(file_type: FileType) -> Outcome {
    let what = match file_type {
        FileType::Fifo => "fifo",
        FileType::Socket => "socket",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        _ => "unknown type",
    };
    Outcome::Skipped {
        reason: SkipReason::Special {
            message: format!("skipping special file ({what}); use -a to recreate"),
        },
    }
}

fn source_is_directory() -> Failure {
    Failure::new(FailKind::Other, "source is a directory")
}

fn changing_type() -> Failure {
    Failure::new(FailKind::SourceIo, "source keeps changing type; not copied")
}

/// Removes leftover temp files of interrupted runs from the directory at
/// `dir` (followed if it is a symlink). Returns how many were removed.
/// Must not run on a directory another pcopy run is writing into.
pub(crate) fn remove_stale_temps(dir: &Path) -> std::io::Result<u64> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let fd = rustix::fs::open(dir, flags, Mode::empty())?;
    commit::remove_stale_temps_at(fd.as_fd())
}
