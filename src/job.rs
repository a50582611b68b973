//! What a worker is asked to copy and what it reports back.
//!
//! These types cross the process boundary between the walker, the pool workers
//! and the progress reporter, so they are serde types. Paths are `OsString`,
//! which serde encodes as raw bytes on Unix: non-UTF-8 names survive the trip.

use std::ffi::OsString;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The type of a source entry as the walker saw it (from `d_type` or `lstat`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) enum EntryKind {
    /// A regular file.
    File,
    /// A symbolic link (copied as a link unless dereferencing).
    Symlink,
    /// A fifo, socket or device node: never opened for reading.
    Special,
}

/// One entry to copy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FileJob {
    /// Identifies the job in its [`Completion`].
    pub id: u64,
    /// Source path as the walker produced it (absolute or relative to the cwd).
    pub src: OsString,
    /// Destination path relative to the destination root: never absolute,
    /// components separated by single `/`, no `.` or `..` components.
    pub rel_dst: OsString,
    /// What the walker saw at `src`.
    pub kind: EntryKind,
}

/// The result of one job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Outcome {
    /// The destination name now holds a complete copy.
    Copied {
        /// File data bytes written (0 for a symbolic link).
        bytes: u64,
        /// The source's size when the copy ended differed from its size when
        /// it was opened: it was written to during the copy. The copy holds
        /// exactly the bytes read, like `tar`'s "file changed as we read it".
        changed: bool,
    },
    /// Nothing was written, on purpose.
    Skipped {
        /// Why the entry was not copied.
        reason: SkipReason,
    },
    /// Nothing was written under the destination name; an older version there
    /// (if any) is untouched.
    Failed {
        /// What went wrong, without the path (the caller prints
        /// `pcopy: PATH: error`).
        error: String,
        /// The class of failure, for exit codes and summaries.
        kind: FailKind,
    },
}

/// Why an entry was skipped.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) enum SkipReason {
    /// A fifo, socket or device node, which a plain copy does not recreate.
    Special {
        /// Ready to print, e.g. "skipping special file (fifo); use -a to recreate".
        message: String,
    },
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Special { message } => f.write_str(message),
        }
    }
}

/// The class of a failed job.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) enum FailKind {
    /// The source disappeared between the walk and the copy (ENOENT).
    Vanished,
    /// The destination filesystem is full or the quota is exhausted
    /// (ENOSPC, EDQUOT): later jobs will likely fail the same way.
    NoSpace,
    /// Creating, writing or naming the destination failed.
    DestIo,
    /// Opening or reading the source failed.
    SourceIo,
    /// Anything else: invalid job, source of an unexpected type.
    Other,
}

/// A worker's report for one job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Completion {
    /// The [`FileJob::id`] this reports on.
    pub id: u64,
    /// What happened.
    pub outcome: Outcome,
    /// The process that ran the job.
    pub worker_pid: u32,
}

/// How entries are copied; the same for every job of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct CopyOptions {
    /// Copy what symbolic links point to instead of the links (`-L`).
    pub dereference: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_reason_displays_its_message() {
        let reason = SkipReason::Special {
            message: "skipping special file (fifo); use -a to recreate".into(),
        };
        assert_eq!(
            reason.to_string(),
            "skipping special file (fifo); use -a to recreate"
        );
    }
}
