//! The engine's side of a large file split over several workers (see
//! `walk::split` for who decides and who counts).
//!
//! The walker creates the temp file at the full size ([`create_split_temp`]);
//! each worker copies one byte range into it at the same offsets
//! ([`Engine::copy_part`]); the main thread gives it the source's metadata
//! and its final name once every part is done ([`commit_split`]), or
//! removes it ([`discard_split_temp`]). Until then only a [`TEMP_PREFIX`]
//! name refers to the data, so the final name never holds part of a file,
//! and a run killed meanwhile leaves a temp the next run removes.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use super::commit::{self, TEMP_NAME_ATTEMPTS, TEMP_PREFIX};
use super::dest::DestPath;
use super::fail::Failure;
use super::mapped::{self, MappedEnd};
use super::{Engine, archive, parent_dir, partial, source, test_hook};
use crate::job::{CopyOptions, FailKind, FileJob, FileRange, FileTime, Outcome};
use crate::relpath;

/// Creates a temp file for a split copy in `dir`: a fresh [`TEMP_PREFIX`]
/// name (`tag` as in [`CopyOptions::temp_tag`]), created exclusively with
/// mode 0600, `size` bytes long so every part can write at its offset.
/// Returns its name.
pub(crate) fn create_split_temp(
    dir: BorrowedFd<'_>,
    tag: &str,
    size: u64,
) -> Result<OsString, Errno> {
    let stem = format!("{tag}{}", std::process::id());
    let flags = OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::WRONLY | OFlags::CLOEXEC;
    let mut last = Errno::EXIST;
    for _ in 0..TEMP_NAME_ATTEMPTS {
        let name = commit::next_temp_name(&stem);
        let fd = match rustix::fs::openat(dir, name.as_c_str(), flags, Mode::from_raw_mode(0o600)) {
            Ok(fd) => fd,
            Err(err) => {
                last = err;
                if err == Errno::EXIST {
                    continue;
                }
                return Err(err);
            }
        };
        // Setting the length allocates nothing (the parts fill it in), but
        // fails early for a size the filesystem cannot hold.
        if let Err(err) = rustix::fs::ftruncate(&fd, size) {
            let _ = rustix::fs::unlinkat(dir, name.as_c_str(), AtFlags::empty());
            return Err(err);
        }
        return Ok(OsString::from(OsStr::from_bytes(name.as_bytes())));
    }
    Err(last)
}

impl Engine {
    /// Copies one part of a split file into its temp, which must exist:
    /// it is opened by name without following a symlink and never created,
    /// so a part that runs after the file was given up writes nothing.
    pub(super) fn copy_part(
        &mut self,
        job: &FileJob,
        range: &FileRange,
        dest: &DestPath<'_>,
        on_bytes: &mut dyn FnMut(u64),
    ) -> Result<Outcome, Failure> {
        test_hook::reached(test_hook::Stage::Open, dest);
        let (src, _) = open_same_source(job, range, self.opts.dereference)?;
        let dir = parent_dir(&mut self.dirs, dest.parent)?;
        let temp = open_temp(dir, &range.temp)?;
        test_hook::reached(test_hook::Stage::Data, dest);
        let fds = (src.as_fd(), temp.as_fd());
        let bytes = match mapped::try_exclusive(temp.as_fd()) {
            true => self
                .data
                .copy_range(fds, range.offset, range.len, on_bytes)?,
            false => self.copy_part_mapped(fds, range, on_bytes)?,
        };
        if bytes == range.len && partial::is_partial(range.temp.as_bytes()) {
            // Data first, then the record (with or without --fsync), so a
            // record never stands for data a crash lost; a part whose data
            // cannot be flushed is left unrecorded, to be copied again.
            if let Ok(synced) = partial::sync_part(temp.as_fd(), range.offset, range.len) {
                partial::record_part(synced);
            }
        }
        Ok(Outcome::Copied {
            bytes,
            // Short: the source ended before this part did.
            changed: bytes != range.len,
            replaced: false,
        })
    }
}

impl Engine {
    /// Copies a part while another part of the file holds its lock: into
    /// a mapping, with whatever the mapping refuses going through `write`.
    fn copy_part_mapped(
        &mut self,
        fds: (BorrowedFd<'_>, BorrowedFd<'_>),
        range: &FileRange,
        on_bytes: &mut dyn FnMut(u64),
    ) -> Result<u64, Failure> {
        let (offset, len) = (range.offset, range.len);
        match mapped::copy_mapped(fds, offset, len, on_bytes)? {
            None => self.data.copy_range(fds, offset, len, on_bytes),
            Some(MappedEnd {
                copied,
                refused: true,
            }) => {
                let rest = self
                    .data
                    .copy_range(fds, offset + copied, len - copied, on_bytes)?;
                Ok(copied + rest)
            }
            Some(end) => Ok(end.copied),
        }
    }
}

/// Opens the source of a part and checks it is still the regular file the
/// walker saw, so parts of two different files are never mixed.
fn open_same_source(
    job: &FileJob,
    range: &FileRange,
    follow: bool,
) -> Result<(OwnedFd, Stat), Failure> {
    let src =
        source::open(&job.src, follow).map_err(|e| Failure::source("cannot open source", e))?;
    let st = rustix::fs::fstat(&src).map_err(|e| Failure::source("cannot stat source", e))?;
    let same = FileType::from_raw_mode(st.st_mode) == FileType::RegularFile
        && st.st_dev == range.dev
        && st.st_ino == range.ino;
    if !same {
        return Err(Failure::new(
            FailKind::SourceIo,
            "source was replaced during the copy; not copied",
        ));
    }
    Ok((src, st))
}

/// Opens a split copy's temp for reading and writing (a shared writable
/// mapping needs both): never a symlink, never created,
/// never blocking (a fifo put there would otherwise wait for a reader),
/// and only if it is a regular file.
fn open_temp(dir: BorrowedFd<'_>, temp: &OsStr) -> Result<OwnedFd, Failure> {
    let flags = OFlags::RDWR | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let what = "cannot open the temp file of a split copy";
    let fd =
        rustix::fs::openat(dir, temp, flags, Mode::empty()).map_err(|e| Failure::dest(what, e))?;
    let st = rustix::fs::fstat(&fd).map_err(|e| Failure::dest(what, e))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(Failure::new(
            FailKind::DestIo,
            format!("{what}: not a file"),
        ));
    }
    Ok(fd)
}

/// What the main thread knows of a split file whose parts all succeeded.
#[derive(Debug)]
pub(crate) struct SplitCopy<'a> {
    /// Any part's job: the source and destination of the whole file, and
    /// the walker's `lstat` of the source.
    pub(crate) job: &'a FileJob,
    pub(crate) range: &'a FileRange,
    /// Data bytes the parts copied, together.
    pub(crate) bytes: u64,
    /// Some part ended early at the source's EOF.
    pub(crate) short: bool,
}

/// Gives a split file whose parts are all copied the source's metadata and
/// its final name in the destination beneath `root`. The temp is removed
/// if that fails. A source whose size or mtime differs from what the walker
/// saw changed during the copy: like a single copy, it is named with a
/// warning, and keeps the mtime seen at the walk so the next run's quick
/// check copies it again.
pub(crate) fn commit_split(
    root: BorrowedFd<'_>,
    split: &SplitCopy<'_>,
    opts: &CopyOptions,
) -> Outcome {
    let committed = DestPath::parse(&split.job.rel_dst).and_then(|dest| {
        let parent = OsStr::from_bytes(dest.parent);
        let dir = relpath::open_beneath(root, parent)
            .map_err(|e| Failure::dest("cannot open destination directory", e))?;
        let done = finish_temp(dir.as_fd(), &dest, split, opts);
        if done.is_err() {
            let _ = rustix::fs::unlinkat(&dir, split.range.temp.as_os_str(), AtFlags::empty());
        }
        done
    });
    committed.unwrap_or_else(Failure::into_outcome)
}

fn finish_temp(
    dir: BorrowedFd<'_>,
    dest: &DestPath<'_>,
    split: &SplitCopy<'_>,
    opts: &CopyOptions,
) -> Result<Outcome, Failure> {
    let temp = open_temp(dir, &split.range.temp)?;
    let (src, st) = open_same_source(split.job, split.range, opts.dereference)?;
    let size = u64::try_from(st.st_size).unwrap_or(0);
    // The walker's `lstat`: the temp's length and the times it saw.
    let seen_size = split.job.meta.map_or(size, |m| m.size);
    let seen_mtime = split.job.meta.map(|m| m.mtime);
    let mut applied = opts.chmod.stat(&st);
    if let Some(mtime) = seen_mtime {
        (applied.st_mtime, applied.st_mtime_nsec) = (mtime.secs, mtime.nanos as _);
    }
    let now_mtime = FileTime::mtime(&st);
    let changed = split.short || size != seen_size || seen_mtime.is_some_and(|m| m != now_mtime);
    if size < seen_size {
        // The source shrank: the copy ends where the source now ends, not
        // in the zeros of the length set at the start.
        rustix::fs::ftruncate(&temp, size).map_err(|e| Failure::dest("cannot set size", e))?;
    }
    if partial::is_partial(split.range.temp.as_bytes()) {
        partial::clear_records(&temp)
            .map_err(|e| Failure::dest("cannot clear --partial records", e))?;
    }
    if !opts.keep.perms {
        applied = commit::unkept_perms(&applied, dir, dest.name);
    }
    if opts.keep.xattrs {
        archive::copy_xattrs(src.as_fd(), temp.as_fd())?;
    }
    let owner_kept = archive::copy_owner(temp.as_fd(), &st, opts.owners)?;
    if opts.acls {
        archive::copy_acls(src.as_fd(), temp.as_fd())?;
    }
    let how = commit::Applied {
        owner_kept,
        mode_set: false,
        times: opts.keep.times,
    };
    commit::apply_metadata(temp.as_fd(), &applied, how)?;
    if opts.fsync {
        rustix::fs::fsync(&temp).map_err(|e| Failure::dest("cannot flush file", e))?;
    }
    rename_into_place(dir, &split.range.temp, dest.name)?;
    Ok(Outcome::Copied {
        bytes: split.bytes,
        changed,
        replaced: false,
    })
}

/// Renames the temp over `name`, never following a symlink there; a
/// directory there is an error (as for every other copy).
fn rename_into_place(dir: BorrowedFd<'_>, temp: &OsStr, name: &OsStr) -> Result<(), Failure> {
    match rustix::fs::renameat(dir, temp, dir, name) {
        Ok(()) => Ok(()),
        Err(Errno::ISDIR | Errno::NOTEMPTY | Errno::EXIST) => Err(Failure::new(
            FailKind::DestIo,
            "destination is a directory; not replacing it",
        )),
        Err(err) => Err(Failure::dest("cannot rename temp file to destination", err)),
    }
}

/// Removes the temp of a split file that will not be completed. Best
/// effort: a temp that stays is harmless and the next run removes it.
pub(crate) fn discard_split_temp(root: BorrowedFd<'_>, rel_dst: &OsStr, temp: &OsStr) {
    let Ok(dest) = DestPath::parse(rel_dst) else {
        return;
    };
    if !temp.as_bytes().starts_with(TEMP_PREFIX.as_bytes()) {
        return;
    }
    if let Ok(dir) = relpath::open_beneath(root, OsStr::from_bytes(dest.parent)) {
        let _ = rustix::fs::unlinkat(&dir, temp, AtFlags::empty());
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::MetadataExt;

    use rustix::fs::{CWD, FlockOperation};

    use super::super::tests::{expect_copied, expect_failed, job, run, scratch};
    use super::*;
    use crate::job::{EntryKind, SourceMeta};

    /// A 3 MiB source, its split temp in `dst`, and the part `(offset,
    /// len)` of it as a job.
    fn part_job(s: &super::super::tests::Scratch, offset: u64, len: u64) -> (FileJob, Vec<u8>) {
        let data: Vec<u8> = (0..3u32 << 20).map(|i| (i % 251) as u8).collect();
        let src = s.src.join("big.bin");
        fs::write(&src, &data).unwrap();
        let md = fs::metadata(&src).unwrap();
        let dir = rustix::fs::open(&s.dst, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty());
        let temp = create_split_temp(dir.unwrap().as_fd(), "", md.len()).unwrap();
        let mut job = job(&src, "big.bin", EntryKind::File);
        job.meta = Some(SourceMeta {
            size: md.len(),
            mtime: FileTime {
                secs: md.mtime(),
                nanos: md.mtime_nsec(),
            },
            mode: md.mode(),
            uid: md.uid(),
            gid: md.gid(),
            rdev: 0,
        });
        job.range = Some(FileRange {
            split: 1,
            part: 1,
            parts: 3,
            offset,
            len,
            temp,
            dev: md.dev(),
            ino: md.ino(),
        });
        (job, data)
    }

    fn temp_path(s: &super::super::tests::Scratch, job: &FileJob) -> std::path::PathBuf {
        s.dst.join(&job.range.as_ref().unwrap().temp)
    }

    #[test]
    fn a_part_lands_at_its_offsets_by_either_path() {
        for mapped in [false, true] {
            let s = scratch();
            // Not page-aligned, to cover the mapping's lead.
            let (offset, len) = (1_000_000, 1_500_000);
            let (job, data) = part_job(&s, offset, len);
            let temp = temp_path(&s, &job);
            // Another part holding the lock sends this one to the mapping.
            let holder = fs::File::open(&temp).unwrap();
            if mapped {
                rustix::fs::flock(&holder, FlockOperation::LockExclusive).unwrap();
            }
            let (outcome, reported) = run(&mut super::super::tests::engine(&s.dst), &job);
            assert_eq!(expect_copied(&outcome), len);
            assert_eq!(reported, len);
            let got = fs::read(&temp).unwrap();
            assert_eq!(got.len(), data.len());
            let (start, end) = (offset as usize, (offset + len) as usize);
            assert!(got[start..end] == data[start..end], "mapped: {mapped}");
            assert!(got[..start].iter().chain(&got[end..]).all(|&b| b == 0));
        }
    }

    #[test]
    fn a_part_never_creates_the_temp_or_follows_a_symlink_there() {
        let s = scratch();
        let (job, _) = part_job(&s, 0, 4096);
        let temp = temp_path(&s, &job);
        fs::remove_file(&temp).unwrap();
        let (outcome, _) = run(&mut super::super::tests::engine(&s.dst), &job);
        assert_eq!(expect_failed(&outcome).0, FailKind::DestIo);
        assert!(!temp.exists());
        std::os::unix::fs::symlink(s.src.join("big.bin"), &temp).unwrap();
        let (outcome, _) = run(&mut super::super::tests::engine(&s.dst), &job);
        assert_eq!(expect_failed(&outcome).0, FailKind::DestIo);
    }

    #[test]
    fn a_replaced_source_fails_the_part() {
        let s = scratch();
        let (job, _) = part_job(&s, 0, 4096);
        let src = s.src.join("big.bin");
        // Kept under another name, so the new file cannot reuse its inode.
        fs::rename(&src, s.src.join("old.bin")).unwrap();
        fs::write(&src, b"another file").unwrap();
        let (outcome, _) = run(&mut super::super::tests::engine(&s.dst), &job);
        let (kind, error) = expect_failed(&outcome);
        assert_eq!(kind, FailKind::SourceIo);
        assert!(error.contains("replaced"), "{error}");
    }

    #[test]
    fn commit_names_the_temp_with_the_source_metadata() {
        let s = scratch();
        let (job, data) = part_job(&s, 0, 3 << 20);
        let mut engine = super::super::tests::engine(&s.dst);
        expect_copied(&run(&mut engine, &job).0);
        let root = rustix::fs::openat(CWD, &s.dst, OFlags::RDONLY, Mode::empty()).unwrap();
        let split = SplitCopy {
            job: &job,
            range: job.range.as_ref().unwrap(),
            bytes: 3 << 20,
            short: false,
        };
        let outcome = commit_split(root.as_fd(), &split, &CopyOptions::default());
        assert!(
            matches!(outcome, Outcome::Copied { changed: false, .. }),
            "{outcome:?}"
        );
        assert_eq!(fs::read(s.dst.join("big.bin")).unwrap(), data);
        let (src_md, dst_md) = (
            fs::metadata(s.src.join("big.bin")).unwrap(),
            fs::metadata(s.dst.join("big.bin")).unwrap(),
        );
        assert_eq!(src_md.mode(), dst_md.mode());
        assert_eq!(src_md.mtime_nsec(), dst_md.mtime_nsec());
        assert!(!temp_path(&s, &job).exists());
    }
}
