//! The engine's decision before a copy: whether the destination is already
//! up to date (see [`quick_check`]), and what a dry run reports.

use std::ffi::{CStr, CString, OsStr};
use std::os::fd::BorrowedFd;

use rustix::fs::FileType;

use super::fail::Failure;
use super::owners::Owners;
use super::quick_check::{self, DestMeta, Verdict};
use super::{DestPath, Engine, Judgement, check, commit, parent_dir, skip_special, source};
use crate::job::{Changes, Compare, EntryKind, FileJob, FileTime, Outcome, SkipReason, SourceMeta};

impl Engine {
    /// Decides whether the job needs writing. The destination is looked at
    /// only when an option can leave it alone and the walker did not create
    /// its directory in this run (a new file costs no extra syscall).
    pub(super) fn judge(
        &mut self,
        job: &FileJob,
        dest: &DestPath<'_>,
    ) -> Result<Judgement, Failure> {
        if let Some(judgement) = self.without_looking(job)? {
            return Ok(judgement);
        }
        let (src_type, src) = self.source_meta(job)?;
        if job.meta.is_none() {
            self.found.source_size = Some(src.size);
            self.found.source_mode = Some(src.mode);
        }
        let dir = parent_dir(&mut self.dirs, dest.parent)?;
        let found = check::dest_meta(dir, dest.name)?;
        // Read once, for the comparison and the listing.
        let link = match (src_type, &found) {
            (FileType::Symlink, Some(_)) => Some(read_link(job)?),
            _ => None,
        };
        let mut changes = differences(src_type, &src, found.as_ref(), self.opts.owners);
        // Without -p an existing entry keeps its mode: no change to report.
        changes.perms &= self.opts.keep.perms;
        let verdict = match quick_check::decide(&self.opts, src_type, &src, found.as_ref()) {
            Verdict::CompareContents => {
                let at = Found {
                    dir,
                    name: dest.name,
                    link: link.as_deref(),
                };
                compare_contents(job, src_type, at, self.opts.dereference, &mut self.scratch)?
            }
            verdict => verdict,
        };
        changes.contents |= matches!(verdict, Verdict::Copy { replaced: true })
            && self.opts.compare == Compare::Checksum
            && src_type == FileType::RegularFile
            && !changes.size;
        if let (true, Some(link)) = (self.opts.itemize, &link) {
            changes.contents = !check::same_link_target(link, dir, dest.name)?;
        }
        self.found.link_target = link.map(CString::into_bytes);
        // Without -t a copy is dated when written (rsync's `T`), and an
        // entry left alone keeps its time: no change to report either way.
        changes.time_now = !self.opts.keep.times
            && changes.time
            && matches!(verdict, Verdict::Copy { .. } | Verdict::CompareContents);
        changes.time &= self.opts.keep.times;
        self.found.changes = Some(changes);
        match (verdict, found) {
            (Verdict::Skip(SkipReason::UpToDate), Some(found)) if !self.opts.dry_run => {
                self.seen = Some(super::moves::Seen::of_meta(&src));
                let how = check::Refresh {
                    owner: self.opts.owners.wanted(src.uid, src.gid),
                    window_ns: self.opts.modify_window_ns,
                    modes: self.opts.dest.modes && self.opts.keep.perms,
                    times: self.opts.keep.times,
                };
                check::refresh(dir, dest.name, &found, &src, how)?;
                Ok(Judgement::Skip(SkipReason::UpToDate))
            }
            (Verdict::Skip(reason), _) => Ok(Judgement::Skip(reason)),
            (Verdict::Copy { replaced }, _) => Ok(Judgement::Write {
                exists: Some(replaced),
            }),
            (Verdict::CompareContents, _) => Ok(Judgement::Write { exists: Some(true) }),
        }
    }

    /// What is decided without the destination's metadata: rsync's
    /// transfer rules, a name in a directory this run made, and options
    /// under which nothing at the name can spare the copy.
    fn without_looking(&mut self, job: &FileJob) -> Result<Option<Judgement>, Failure> {
        if let Some(reason) = self.transfer_rules(job)? {
            return Ok(Some(Judgement::Skip(reason)));
        }
        if job.fresh {
            self.found.changes = Some(Changes::new_entry());
            let exists = Some(false);
            return Ok(Some(Judgement::Write { exists }));
        }
        let special = job.kind == EntryKind::Special;
        let skipped_link = job.kind == EntryKind::Symlink && !self.opts.dereference;
        if skipped_link && !self.opts.keep.links {
            return Ok(Some(Judgement::Skip(super::skipped_link_reason())));
        }
        let unkept = special && !self.opts.keep.any_special();
        if !quick_check::looks_at_destination(&self.opts) || unkept {
            return Ok(Some(Judgement::Write { exists: None }));
        }
        Ok(None)
    }

    /// rsync's transfer rules that need no look at the destination:
    /// `--max-size`/`--min-size` for regular files, and `--existing` for
    /// an entry whose directory this run created.
    fn transfer_rules(&mut self, job: &FileJob) -> Result<Option<SkipReason>, Failure> {
        if self.opts.existing && job.fresh {
            return Ok(Some(SkipReason::Missing));
        }
        if !self.opts.sizes.is_set() || job.kind == EntryKind::Special {
            return Ok(None);
        }
        let (src_type, src) = self.source_meta(job)?;
        let excluded = src_type == FileType::RegularFile && self.opts.sizes.excludes(src.size);
        Ok(excluded.then_some(SkipReason::SizeLimit))
    }

    /// The type the copy would create and the source's metadata: the
    /// walker's, or a fresh `lstat` (`stat` with `-L`) when it sent none.
    fn source_meta(&mut self, job: &FileJob) -> Result<(FileType, SourceMeta), Failure> {
        let follow = self.opts.dereference;
        if let Some(meta) = job.meta {
            let file_type = match job.kind {
                EntryKind::Symlink if !follow => FileType::Symlink,
                EntryKind::Special => FileType::from_raw_mode(meta.mode),
                _ => FileType::RegularFile,
            };
            let mode = self.opts.chmod.apply(meta.mode, false);
            return Ok((file_type, SourceMeta { mode, ..meta }));
        }
        let st = (self.sources.stat(&job.src, follow))
            .map_err(|err| Failure::source("cannot stat source", err))?;
        let meta = SourceMeta {
            size: u64::try_from(st.st_size).unwrap_or(0),
            mtime: FileTime::mtime(&st),
            mode: self.opts.chmod.apply(st.st_mode, false),
            uid: st.st_uid,
            gid: st.st_gid,
            rdev: st.st_rdev,
        };
        Ok((FileType::from_raw_mode(st.st_mode), meta))
    }

    /// `--dry-run`: what would be written, without writing.
    pub(super) fn would_copy(
        &mut self,
        job: &FileJob,
        exists: Option<bool>,
    ) -> Result<Outcome, Failure> {
        if job.kind == EntryKind::Symlink && !self.opts.dereference {
            let target = self.found.link_target.take();
            let target = target.map_or_else(|| read_link(job).map(CString::into_bytes), Ok)?;
            self.found.link_target = Some(target);
        }
        if job.kind == EntryKind::Special {
            let st = source::stat(&job.src, self.opts.dereference)
                .map_err(|err| Failure::source("cannot stat source", err))?;
            match FileType::from_raw_mode(st.st_mode) {
                FileType::RegularFile | FileType::Symlink => {}
                other if !self.opts.keep.special(st.st_mode) => return Ok(skip_special(other)),
                _ => {}
            }
        }
        let bytes = match (&job.kind, job.meta) {
            (EntryKind::File, Some(meta)) => meta.size,
            (EntryKind::Symlink, Some(meta)) if self.opts.dereference => meta.size,
            _ => 0,
        };
        Ok(Outcome::Copied {
            bytes,
            changed: false,
            replaced: exists.unwrap_or(false),
        })
    }
}

/// The target of the source symlink of `job`.
fn read_link(job: &FileJob) -> Result<CString, Failure> {
    source::read_link(&job.src).map_err(|e| Failure::source("cannot read link", e))
}

/// What differs between the source and the entry found at its name, in
/// the terms of rsync's `--itemize-changes`; owner and group count only
/// when they are set (`-a`, `--chown`).
fn differences(
    src_type: FileType,
    src: &SourceMeta,
    found: Option<&DestMeta>,
    owners: Owners,
) -> Changes {
    let wanted = owners.wanted(src.uid, src.gid);
    let Some(found) = found.filter(|found| found.file_type == src_type) else {
        return Changes::new_entry();
    };
    let ids = wanted.differs(found.uid, found.gid);
    Changes {
        created: false,
        contents: src_type != FileType::RegularFile && found.rdev != src.rdev,
        size: src_type == FileType::RegularFile && found.size != src.size,
        time: found.mtime != src.mtime,
        perms: src_type != FileType::Symlink
            && found.mode != commit::final_mode(src.mode, wanted.both()) & 0o7777,
        owner: ids.owner,
        group: ids.group,
        time_now: false,
    }
}

/// A destination entry to compare with: a name in an open directory.
#[derive(Debug, Clone, Copy)]
struct Found<'a> {
    dir: BorrowedFd<'a>,
    name: &'a OsStr,
    /// The source symlink's target, when the source is one.
    link: Option<&'a CStr>,
}

/// `--checksum` with the same type and size: the link targets, or the
/// contents, decide.
fn compare_contents(
    job: &FileJob,
    src_type: FileType,
    at: Found<'_>,
    follow: bool,
    buffer: &mut Vec<u8>,
) -> Result<Verdict, Failure> {
    Ok(match src_type {
        FileType::Symlink => match at.link {
            Some(link) => same_or_copy(check::same_link_target(link, at.dir, at.name)?),
            None => Verdict::Copy { replaced: true },
        },
        FileType::RegularFile => same_or_copy(check::same_contents(
            &job.src, follow, at.dir, at.name, buffer,
        )?),
        _ => Verdict::Skip(SkipReason::UpToDate),
    })
}

fn same_or_copy(same: bool) -> Verdict {
    match same {
        true => Verdict::Skip(SkipReason::UpToDate),
        false => Verdict::Copy { replaced: true },
    }
}
