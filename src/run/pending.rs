//! The jobs the walker announced that no completion has ended yet: the
//! main thread keeps each one until then, so a worker that dies loses none
//! (what it held is retried, or reported as not copied).

use std::collections::HashSet;
use std::ffi::OsString;

use crate::job::{FileJob, JobIdMap};
use crate::relpath;

/// A job announced by the walker and not completed yet.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) job: FileJob,
    /// Bytes of it already shown as progress.
    pub(super) reported: u64,
}

/// Every pending job, by id. Bounded by the jobs queue plus the batches
/// in the workers' hands.
#[derive(Debug, Default)]
pub(super) struct Ledger {
    jobs: JobIdMap<Pending>,
}

impl Ledger {
    /// The walker announced `jobs`; none shows progress yet.
    pub(super) fn announce(&mut self, jobs: Vec<FileJob>) {
        for job in jobs {
            self.jobs.insert(job.id, Pending { job, reported: 0 });
        }
    }

    pub(super) fn get_mut(&mut self, id: u64) -> Option<&mut Pending> {
        self.jobs.get_mut(&id)
    }

    /// Takes out the job `id`, which a completion ended.
    pub(super) fn remove(&mut self, id: u64) -> Option<Pending> {
        self.jobs.remove(&id)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.jobs.len()
    }

    pub(super) fn values_mut(&mut self) -> impl Iterator<Item = &mut Pending> {
        self.jobs.values_mut()
    }

    /// Adds the destination directory of every pending job to `dirs`: a
    /// worker killed with the job in hand may have left a temp file there.
    pub(super) fn note_dirs(&self, dirs: &mut HashSet<OsString>) {
        for pending in self.jobs.values() {
            dirs.insert(relpath::parent(&pending.job.rel_dst).to_os_string());
        }
    }

    /// Takes out every part of a split file.
    pub(super) fn take_parts(&mut self) -> Vec<Pending> {
        let parts: Vec<u64> = (self.jobs.iter())
            .filter(|(_, p)| p.job.range.is_some())
            .map(|(&id, _)| id)
            .collect();
        (parts.into_iter())
            .filter_map(|id| self.jobs.remove(&id))
            .collect()
    }

    /// Takes out every job, in the order the walker announced them.
    pub(super) fn take_all(&mut self) -> Vec<Pending> {
        let mut left: Vec<Pending> = self.jobs.drain().map(|(_, p)| p).collect();
        left.sort_by_key(|p| p.job.id);
        left
    }
}
