//! `--remove-source-files`: a source file is removed once its copy is
//! complete and named (flushed, with its directory, under `--fsync`), or
//! was found up to date, and only if it is still what was copied.

use rustix::fs::{Mode, OFlags, Stat};

use super::Engine;
use super::fail::errno_text;
use crate::job::{EntryKind, FailKind, FileJob, FileTime, Outcome, SkipReason, SourceMeta};

/// The source as it was copied (or judged up to date).
#[derive(Debug, Clone, Copy)]
pub(super) struct Seen {
    size: i64,
    mtime: FileTime,
    /// When the copy opened the file: any write, truncation or
    /// replacement since changes it.
    identity: Option<Identity>,
}

/// Which file a source was, and when it last changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
    ctime: FileTime,
}

impl Seen {
    pub(super) fn of_stat(st: &Stat) -> Seen {
        Seen {
            size: st.st_size,
            mtime: FileTime::mtime(st),
            identity: Some(Identity {
                dev: st.st_dev,
                ino: st.st_ino,
                ctime: FileTime::ctime(st),
            }),
        }
    }

    pub(super) fn of_meta(meta: &SourceMeta) -> Seen {
        Seen {
            size: i64::try_from(meta.size).unwrap_or(i64::MAX),
            mtime: meta.mtime,
            identity: None,
        }
    }

    fn still(&self, st: &Stat) -> bool {
        let now = Seen::of_stat(st);
        let same_identity = match (self.identity, now.identity) {
            (Some(before), Some(after)) => before == after,
            _ => true,
        };
        self.size == now.size && self.mtime == now.mtime && same_identity
    }
}

impl Engine {
    /// Removes the job's source after a copy or an up-to-date skip; a
    /// source that changed meanwhile stays (with a failure: the copy is
    /// not what is there now), as does any directory.
    pub(super) fn remove_source(&mut self, job: &FileJob, outcome: Outcome) -> Outcome {
        let done = match &outcome {
            Outcome::Copied { changed, .. } => !changed,
            Outcome::Skipped { reason } => *reason == SkipReason::UpToDate,
            Outcome::Failed { .. } => false,
        };
        let Some(seen) = self.seen.take().filter(|_| done) else {
            return outcome;
        };
        if job.kind == EntryKind::Special && !self.opts.keep.any_special() {
            return outcome;
        }
        if self.opts.fsync {
            if let Err(message) = self.sync_dest_dir(job) {
                return failed(message);
            }
        }
        match self
            .sources
            .remove_if(&job.src, self.opts.dereference, &|st| seen.still(st))
        {
            Ok(true) => outcome,
            Ok(false) => failed("source changed during the copy; not removed".into()),
            Err(err) => failed(format!("cannot remove source: {}", errno_text(err))),
        }
    }

    /// `--fsync`: the new name itself reaches the disk before the source
    /// goes.
    fn sync_dest_dir(&mut self, job: &FileJob) -> Result<(), String> {
        let (parent, _) = crate::relpath::split(&job.rel_dst);
        let dir =
            super::parent_dir(&mut self.dirs, parent.as_encoded_bytes()).map_err(|f| f.message)?;
        // The cached directory may be `O_PATH` (see `DirCache`), which
        // cannot be flushed: it is opened for reading beneath itself.
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let flush = rustix::fs::openat(dir, ".", flags, Mode::empty())
            .and_then(|opened| rustix::fs::fsync(&opened));
        flush.map_err(|e| format!("cannot flush directory: {}", errno_text(e)))
    }
}

fn failed(error: String) -> Outcome {
    Outcome::Failed {
        error,
        kind: FailKind::SourceIo,
    }
}
