//! Large files copied by several workers at once, the main thread's half:
//! gathering the parts' completions, and naming each file's temp when its
//! last part is done (see `walk::split` for the walker's half and who owns
//! what).

use std::collections::HashSet;
use std::os::fd::OwnedFd;

use super::pending::Pending;
use crate::copy::{self, range::SplitCopy};
use crate::job::{CopyOptions, FailKind, FileJob, JobIdMap, Outcome};

/// The main thread's half: the split files whose parts are not all done.
#[derive(Debug)]
pub(crate) struct Splits {
    /// The destination root; `None` only in a dry run, which never splits.
    root: Option<OwnedFd>,
    opts: CopyOptions,
    /// By [`crate::job::FileRange::split`].
    files: JobIdMap<SplitFile>,
}

#[derive(Debug)]
struct SplitFile {
    /// The first part to end: source, destination and temp of the file.
    job: FileJob,
    /// Parts not ended yet.
    left: u32,
    /// Bytes the successful parts copied, all shown as progress.
    bytes: u64,
    short: bool,
    /// The first part's failure: the file fails with it.
    failure: Option<PartFailure>,
}

/// Why a part of a split file failed.
#[derive(Debug)]
struct PartFailure {
    error: String,
    kind: FailKind,
}

impl SplitFile {
    /// A file of `parts` parts, none ended yet, known from `job`.
    fn new(job: FileJob, parts: u32) -> Self {
        SplitFile {
            job,
            left: parts,
            bytes: 0,
            short: false,
            failure: None,
        }
    }
}

/// A split file whose last part ended: reported like a single job that
/// showed `reported` bytes of progress and ended with `outcome`.
#[derive(Debug)]
pub(crate) struct FileEnd {
    pub(crate) job: FileJob,
    pub(crate) reported: u64,
    pub(crate) outcome: Outcome,
}

/// What the main thread reports when a part of a split file ends.
#[derive(Debug, Default)]
pub(crate) struct PartEnd {
    /// Bytes the part copied beyond those it showed as progress.
    pub(crate) more_bytes: u64,
    /// Progress shown for the part and taken back: what it showed beyond
    /// what it copied, or all of it when it failed.
    pub(crate) fewer_bytes: u64,
    /// The whole file's end, when this was its last part.
    pub(crate) file: Option<FileEnd>,
}

impl Splits {
    pub(crate) fn new(root: Option<OwnedFd>, opts: CopyOptions) -> Splits {
        Splits {
            root,
            opts,
            files: JobIdMap::default(),
        }
    }

    /// A part ended, after `reported` bytes of progress. Returns how the
    /// progress shown changes, and the whole file's end when this was its
    /// last part.
    pub(crate) fn part_done(&mut self, job: FileJob, reported: u64, outcome: Outcome) -> PartEnd {
        let mut end = PartEnd::default();
        let Some(range) = job.range.clone() else {
            return end;
        };
        let file = self
            .files
            .entry(range.split)
            .or_insert_with(|| SplitFile::new(job, range.parts));
        file.left = file.left.saturating_sub(1);
        match outcome {
            Outcome::Copied { bytes, changed, .. } => {
                // The part's progress, made exact now; undone at the end
                // if the file fails.
                end.more_bytes = bytes.saturating_sub(reported);
                end.fewer_bytes = reported.saturating_sub(bytes);
                file.bytes += bytes;
                file.short |= changed;
            }
            Outcome::Failed { error, kind } => {
                end.fewer_bytes = reported;
                if file.failure.is_none() {
                    file.failure = Some(PartFailure { error, kind });
                    // The parts still to run find no temp and end at once.
                    discard(self.root.as_ref(), &file.job, self.opts.partial);
                }
            }
            Outcome::Skipped { .. } => {}
        }
        if file.left == 0 {
            end.file = self.files.remove(&range.split).map(|f| self.finish(f));
        }
        end
    }

    fn finish(&self, file: SplitFile) -> FileEnd {
        let outcome = match (file.failure, &self.root, &file.job.range) {
            (Some(PartFailure { error, kind }), _, _) => Outcome::Failed { error, kind },
            (None, Some(root), Some(range)) => {
                let split = SplitCopy {
                    job: &file.job,
                    range,
                    bytes: file.bytes,
                    short: file.short,
                };
                copy::range::commit_split(std::os::fd::AsFd::as_fd(root), &split, &self.opts)
            }
            (None, _, _) => Outcome::Failed {
                error: "the destination is not open".into(),
                kind: FailKind::Other,
            },
        };
        FileEnd {
            job: file.job,
            reported: file.bytes,
            outcome,
        }
    }

    /// Gives up every split file not complete at the end of the run: the
    /// parts in `left` never ended (the run stopped, or their worker was
    /// lost twice). Removes their temps; returns each file once with the
    /// progress shown for it.
    pub(super) fn abandon(&mut self, left: Vec<Pending>) -> Vec<Pending> {
        for Pending { job, reported } in left {
            if let Some(range) = job.range.clone() {
                let file = self
                    .files
                    .entry(range.split)
                    .or_insert_with(|| SplitFile::new(job, range.parts));
                file.bytes += reported;
            }
        }
        let mut given_up: Vec<Pending> = (self.files.drain())
            .map(|(_, file)| Pending {
                job: file.job,
                reported: file.bytes,
            })
            .collect();
        given_up.sort_by_key(|p| p.job.id);
        for p in &given_up {
            discard(self.root.as_ref(), &p.job, self.opts.partial);
        }
        given_up
    }
}

/// Removes a split file's temp, unless `--partial` keeps it for the next
/// run (its complete parts are recorded in it).
fn discard(root: Option<&OwnedFd>, job: &FileJob, keep_partial: bool) {
    if let (Some(root), Some(range)) = (root, &job.range) {
        if keep_partial && copy::partial::is_partial(range.temp.as_encoded_bytes()) {
            return;
        }
        copy::range::discard_split_temp(std::os::fd::AsFd::as_fd(root), &job.rel_dst, &range.temp);
    }
}

/// The files `jobs` belong to: one per ordinary job, one per split file
/// however many of its parts are there.
pub(crate) fn distinct_files(jobs: &[FileJob]) -> u64 {
    let mut splits = HashSet::new();
    jobs.iter()
        .filter(|job| job.range.as_ref().is_none_or(|r| splits.insert(r.split)))
        .count() as u64
}

/// Jobs of a walker batch that are files of their own: one per ordinary
/// job and one per split file (its first part), for the totals.
pub(crate) fn files_in(jobs: &[FileJob]) -> u64 {
    jobs.iter()
        .filter(|job| job.range.as_ref().is_none_or(|r| r.part == 0))
        .count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::walk::split::tests::part_of;

    #[test]
    fn a_split_file_counts_once_in_the_totals() {
        let part = |part| part_of(10, part);
        let mut plain = part(0);
        plain.range = None;
        let jobs = vec![plain, part(0), part(1), part(2)];
        assert_eq!(files_in(&jobs), 2);
        assert_eq!(distinct_files(&jobs[2..]), 1);
        assert_eq!(distinct_files(&jobs), 2);
    }
}
