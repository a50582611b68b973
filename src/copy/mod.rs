//! The copy engine: copies one [`FileJob`] at a time into the destination
//! tree, atomically per file, in a pool worker.
//!
//! Every new file is written without a name (`O_TMPFILE`) or under a
//! [`TEMP_PREFIX`] name, gets its final mode and times, and only then is
//! linked or renamed to its final name. Destination directories are reached
//! from the destination root fd without following symlinks.
//!
//! Owns everything one job needs: whether to copy at all (the quick check,
//! `--checksum` with its digest), moving the data, what `-a` keeps
//! (owner, xattrs, special files), naming, `--verify`, and the engine's
//! side of split files; also rsync's backup flags as they touch one file:
//! basis directories (`basis.rs`), old versions kept aside (`backup.rs`),
//! `--remove-source-files` (`moves.rs`) and `--bwlimit` (`throttle.rs`). It calls no other stage, only the shared job types
//! and path helpers; the walk and the finish stage use its temp names and
//! attribute helpers.

mod archive;
pub(crate) mod backup;
pub(crate) mod backup_dir;
mod basis;
pub(crate) mod caps;
mod check;
pub(crate) mod chmod;
pub(crate) mod chown;
pub(crate) mod clear;
mod commit;
mod data;
mod dest;
mod digest;
mod fail;
mod judge;
mod mapped;
mod moves;
pub(crate) mod owners;
pub(crate) mod partial;
mod quick_check;
pub(crate) mod range;
mod source;
mod test_hook;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_paths;
mod throttle;
mod verify;
pub(crate) mod xattrs;

use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use crate::job::{CopyOptions, EntryKind, FailKind, FileJob, Findings, Outcome, SkipReason};
use commit::Namer;
pub(crate) use commit::TEMP_PREFIX;
use data::DataCopier;
use dest::{DestPath, DirCache};
use fail::Failure;
pub(crate) use quick_check::same_mtime;

/// Copies jobs into one destination root. One per worker; not shared
/// between threads. It caches the last destination directory fd and what
/// the destination filesystem supports.
#[derive(Debug)]
pub(crate) struct Engine {
    /// `None` only when dry running into a destination that does not
    /// exist: every job is then new and no directory is ever looked at.
    dirs: Option<DirCache>,
    namer: Namer,
    data: DataCopier,
    opts: CopyOptions,
    /// Read buffer for `--checksum` comparisons.
    scratch: Vec<u8>,
    /// Where sources are opened, and stat'ed when the walker did not.
    sources: source::SourceDirCache,
    /// This process's umask, when known: what the kernel takes away from
    /// the mode a file is created with.
    umask: Option<u32>,
    /// `--link-dest`, `--compare-dest`, `--copy-dest` directories.
    basis: Option<basis::Basis>,
    /// `--remove-source-files`: what the current job's source was when it
    /// was copied or found up to date.
    seen: Option<moves::Seen>,
    /// What the job in hand found at the destination (see
    /// [`Engine::take_findings`]).
    found: Findings,
}

impl Engine {
    /// Opens `dst_root`, which must be an existing directory (a symlink to
    /// one is followed: the user named it). `O_PATH`, as every directory a
    /// worker names things in (see [`dest::DirCache`]): opening it for
    /// reading would cost every worker two requests on a network mount.
    pub(crate) fn new(dst_root: &Path, opts: CopyOptions) -> std::io::Result<Engine> {
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let dirs = match rustix::fs::open(dst_root, flags, Mode::empty()) {
            Ok(root) => Some(DirCache::new(root)),
            Err(Errno::NOENT) if opts.dry_run => None,
            Err(err) => return Err(err.into()),
        };
        let mut namer = Namer::new(&opts.temp_tag, opts.force);
        let root = dirs.as_ref().map(DirCache::root);
        if let (Some(root), Some(spec), false) = (root, &opts.backup, opts.dry_run) {
            namer.keep_backups(backup::Backup::open(root, spec, &opts.temp_tag)?);
        }
        let basis =
            (root.zip(opts.basis.as_ref())).map(|(root, spec)| basis::Basis::open(root, spec));
        let mut data = DataCopier::default();
        data.throttle(opts.bwlimit.map(throttle::shared));
        Ok(Engine {
            dirs,
            namer,
            data,
            opts,
            scratch: Vec::new(),
            sources: source::SourceDirCache::default(),
            umask: process_umask(),
            basis,
            seen: None,
            found: Findings::default(),
        })
    }

    /// What the last [`Engine::copy`] found at the destination.
    pub(crate) fn take_findings(&mut self) -> Findings {
        std::mem::take(&mut self.found)
    }

    /// The device and inode of the destination root this engine opened;
    /// `None` when it opened none (a dry run into a missing destination).
    pub(crate) fn root_identity(&self) -> Option<(u64, u64)> {
        // Device and inode never change, so the kernel's cached attributes
        // do: on a network mount asking the server again would be a
        // request per worker.
        let flags = AtFlags::EMPTY_PATH | AtFlags::STATX_DONT_SYNC;
        let root = self.dirs.as_ref()?.root();
        let st = rustix::fs::statx(root, c"", flags, rustix::fs::StatxFlags::INO).ok()?;
        Some((
            rustix::fs::makedev(st.stx_dev_major, st.stx_dev_minor),
            st.stx_ino,
        ))
    }

    /// Copies one entry. Never panics: every problem becomes an
    /// [`Outcome::Failed`] and leaves no temp file behind. `on_bytes` receives
    /// the data bytes copied in increments (every 8 MiB and at the end) that
    /// add up to the `bytes` of [`Outcome::Copied`]; after a failure, the
    /// increments already reported were discarded with the temp file.
    pub(crate) fn copy(&mut self, job: &FileJob, on_bytes: &mut dyn FnMut(u64)) -> Outcome {
        self.seen = None;
        self.found = Findings::default();
        let outcome = self.copy_entry(job, on_bytes);
        match self.opts.remove_source && !self.opts.dry_run {
            true => self.remove_source(job, outcome),
            false => outcome,
        }
    }

    fn copy_entry(&mut self, job: &FileJob, on_bytes: &mut dyn FnMut(u64)) -> Outcome {
        let result = DestPath::parse(&job.rel_dst).and_then(|dest| {
            // A part of a split file: nothing to judge, the walker found
            // nothing at the name and made the temp.
            if let Some(range) = &job.range {
                return self.copy_part(job, range, &dest, on_bytes);
            }
            let exists = match self.judge(job, &dest)? {
                Judgement::Skip(reason) => return Ok(Outcome::Skipped { reason }),
                Judgement::Write { exists } => exists,
            };
            if self.opts.dry_run {
                return self.would_copy(job, exists);
            }
            self.namer.expect_existing(exists);
            self.namer.job_parent(dest.parent);
            match (&job.kind, self.opts.dereference) {
                (EntryKind::Symlink, false) => self.copy_symlink(job, &dest, on_bytes, true),
                (EntryKind::Special, _) => self.recheck_special(job, &dest, on_bytes),
                (EntryKind::File | EntryKind::Symlink, _) => {
                    self.copy_file(job, &dest, on_bytes, true)
                }
            }
            .map(|outcome| mark_replaced(outcome, exists))
        });
        result.unwrap_or_else(Failure::into_outcome)
    }

    /// The mode to create a copy of a file of `mode` with, when that yields
    /// its final permission bits exactly: no setuid, setgid or sticky bit
    /// (those depend on the owner, set later) and none the umask would
    /// take away. The directory must not have a default ACL either (see
    /// `DirCache::new_file_dir`).
    fn preset_mode(&self, mode: u32) -> Option<Mode> {
        let bits = mode & 0o7777;
        let umask = self.umask?;
        (bits & 0o7000 == 0 && bits & umask == 0).then(|| Mode::from_raw_mode(bits))
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
        test_hook::reached(test_hook::Stage::Open, dest);
        let src = match self.sources.open(&job.src, follow) {
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
        self.seen = Some(moves::Seen::of_stat(&st));
        match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => match self.use_basis(src.as_fd(), &st, dest, on_bytes)? {
                Some(outcome) => Ok(outcome),
                None => self.write_file(Data::source(src.as_fd()), &st, dest, on_bytes),
            },
            FileType::Directory => Err(source_is_directory()),
            other => Ok(skip_special(other)),
        }
    }

    fn write_file(
        &mut self,
        data: Data<'_>,
        st: &Stat,
        dest: &DestPath<'_>,
        on_bytes: &mut dyn FnMut(u64),
    ) -> Result<Outcome, Failure> {
        let st = &self.opts.chmod.stat(st);
        let st = &match self.opts.keep.perms {
            true => *st,
            false => commit::unkept_perms(st, parent_dir(&mut self.dirs, dest.parent)?, dest.name),
        };
        let preset = self.preset_mode(st.st_mode);
        let (dir, plain) = match &mut self.dirs {
            Some(cache) => cache.new_file_dir(dest.parent, preset.is_some())?,
            None => (parent_dir(&mut self.dirs, dest.parent)?, false),
        };
        let in_place = match self.opts.inplace {
            true => self.namer.open_in_place(dir, dest.name)?,
            false => None,
        };
        let (file, mode_set) = match in_place {
            Some(file) => (file, false),
            None => self.namer.create(dir, preset.filter(|_| plain))?,
        };
        test_hook::reached(test_hook::Stage::Data, dest);
        let size = u64::try_from(st.st_size).unwrap_or(0);
        // Fewer 512-byte blocks than the size needs: there are holes.
        let sparse = !self.opts.inplace && (st.st_blocks as u64).saturating_mul(512) < size;
        if self.opts.verify {
            self.data.hash_next();
        }
        let bytes = self
            .data
            .copy(data.bytes, file.fd(), (size, sparse), on_bytes)?;
        if self.opts.inplace {
            // Written over from the start: what is past the new end goes.
            rustix::fs::ftruncate(file.fd(), bytes)
                .map_err(|e| Failure::dest("cannot set size", e))?;
        }
        if self.opts.keep.xattrs {
            archive::copy_xattrs(data.source, file.fd())?;
        }
        let owner_kept = archive::copy_owner(file.fd(), st, self.opts.owners)?;
        // An ACL moves the group bits: the mode is set again after it.
        let acls_set = self.opts.acls && archive::copy_acls(data.source, file.fd())?;
        let applied = commit::Applied {
            owner_kept,
            mode_set: mode_set && !acls_set,
            times: self.opts.keep.times,
        };
        commit::apply_metadata(file.fd(), st, applied)?;
        if self.opts.fsync {
            rustix::fs::fsync(file.fd()).map_err(|e| Failure::dest("cannot flush file", e))?;
        }
        if let Some(expected) = self.data.take_digest() {
            verify::verify(file.fd(), expected, self.opts.fsync, &mut self.scratch)?;
        }
        self.namer.commit(file, dir, dest.name)?;
        Ok(Outcome::Copied {
            bytes,
            changed: bytes != size,
            replaced: false,
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
        if !self.opts.keep.links {
            return Ok(skip_link());
        }
        if !self.opts.dest.symlinks {
            return Err(Failure::new(
                FailKind::Unsupported,
                "destination filesystem does not support symbolic links",
            ));
        }
        self.seen = Some(moves::Seen::of_stat(&st));
        let target = source::read_link(&job.src)
            .map_err(|err| Failure::source("cannot read symbolic link", err))?;
        self.found.link_target = Some(target.as_bytes().to_vec());
        if let Some(outcome) = self.use_basis_link(&target, &st, dest)? {
            return Ok(outcome);
        }
        let dir = parent_dir(&mut self.dirs, dest.parent)?;
        let how = commit::Placed {
            owners: self.opts.owners,
            times: self.opts.keep.times,
        };
        self.namer
            .place_symlink(dir, dest.name, &target, &st, how)?;
        Ok(Outcome::Copied {
            bytes: 0,
            changed: false,
            replaced: false,
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
            other if !self.opts.keep.special(st.st_mode) => Ok(skip_special(other)),
            _ if !self.opts.dest.specials => Err(Failure::new(
                FailKind::Unsupported,
                "destination filesystem does not support special files",
            )),
            other => self.make_special(&st, other, dest),
        }
    }

    /// `-D` (`-a`): recreates a fifo, socket or device node; skipped with
    /// a warning when this user may not (a device without root).
    fn make_special(
        &mut self,
        st: &Stat,
        file_type: FileType,
        dest: &DestPath<'_>,
    ) -> Result<Outcome, Failure> {
        let st = &self.opts.chmod.stat(st);
        let dir = parent_dir(&mut self.dirs, dest.parent)?;
        let st = &match self.opts.keep.perms {
            true => *st,
            false => commit::unkept_perms(st, dir, dest.name),
        };
        let how = commit::Placed {
            owners: self.opts.owners,
            times: self.opts.keep.times,
        };
        if self.namer.place_node(dir, dest.name, st, how)? {
            return Ok(Outcome::Copied {
                bytes: 0,
                changed: false,
                replaced: false,
            });
        }
        let what = archive::special_name(file_type);
        Ok(Outcome::Skipped {
            reason: SkipReason::Special {
                message: format!("cannot recreate {what}: not permitted (needs root); skipped"),
            },
        })
    }
}

/// Where a new file's bytes come from, and the source its extended
/// attributes come from: the same file, except for `--copy-dest`.
#[derive(Clone, Copy)]
struct Data<'a> {
    bytes: BorrowedFd<'a>,
    source: BorrowedFd<'a>,
}

impl<'a> Data<'a> {
    fn source(src: BorrowedFd<'a>) -> Data<'a> {
        Data {
            bytes: src,
            source: src,
        }
    }
}

/// What [`Engine::judge`] found.
pub(super) enum Judgement {
    Skip(SkipReason),
    /// Copy; whether something is at the name, when known.
    Write {
        exists: Option<bool>,
    },
}

/// The destination directory `rel_parent`, through the engine's cache.
fn parent_dir<'a>(
    dirs: &'a mut Option<DirCache>,
    rel_parent: &[u8],
) -> Result<BorrowedFd<'a>, Failure> {
    match dirs {
        Some(cache) => cache.parent(rel_parent),
        None => Err(Failure::new(
            FailKind::Other,
            "the destination does not exist (dry run)",
        )),
    }
}

/// The umask of this process (`022` when it cannot be read): what a
/// copy's permission bits lose under `--no-perms`.
pub(crate) fn umask() -> u32 {
    static UMASK: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *UMASK.get_or_init(|| process_umask().unwrap_or(0o022))
}

/// The umask of this process, from `/proc/self/status` (reading it with
/// `umask(2)` would mean setting it, a race with other threads).
fn process_umask() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
    u32::from_str_radix(line.trim(), 8).ok()
}

/// Records in a copy's outcome that it replaced an existing entry.
fn mark_replaced(outcome: Outcome, exists: Option<bool>) -> Outcome {
    match outcome {
        Outcome::Copied { bytes, changed, .. } => Outcome::Copied {
            bytes,
            changed,
            replaced: exists.unwrap_or(false),
        },
        other => other,
    }
}

fn skip_special(file_type: FileType) -> Outcome {
    let what = archive::special_name(file_type);
    let flag = match file_type {
        FileType::CharacterDevice | FileType::BlockDevice => "--devices",
        _ => "--specials",
    };
    Outcome::Skipped {
        reason: SkipReason::Special {
            message: format!("skipping special file ({what}); use -a or {flag} to recreate"),
        },
    }
}

/// `--no-links`: a symbolic link is left out with a warning, as rsync
/// does without `-l`.
fn skip_link() -> Outcome {
    Outcome::Skipped {
        reason: skipped_link_reason(),
    }
}

fn skipped_link_reason() -> SkipReason {
    SkipReason::Special {
        message: "skipping symbolic link; use -l or -a to copy it".to_string(),
    }
}

fn source_is_directory() -> Failure {
    Failure::new(FailKind::Other, "source is a directory")
}

fn changing_type() -> Failure {
    Failure::new(FailKind::SourceIo, "source keeps changing type; not copied")
}

/// Removes leftover temp files of interrupted runs from the open directory
/// `dir`, which must not be read through another descriptor sharing its
/// offset meanwhile. Returns how many were removed. Must not run on a
/// directory another pcopy run is writing into, except another shard:
/// `tag` (see [`CopyOptions::temp_tag`]) spares its files. `other` sees
/// the name of every other entry, `.` and `..` aside. With `keep_partial`
/// (`--partial`), resumable temps stay (see [`partial`]).
pub(crate) fn remove_stale_temps_in(
    dir: BorrowedFd<'_>,
    tag: &str,
    keep_partial: bool,
    other: &mut dyn FnMut(&[u8]),
) -> std::io::Result<u64> {
    commit::remove_stale_temps_at(dir, tag, keep_partial, other)
}
