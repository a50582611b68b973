//! What the walk sends: jobs in batches on the bounded jobs queue, and news
//! for the main thread ([`WalkEvent`]) on a channel.
//!
//! The [`Batcher`] owns the producer side of the jobs queue and closes it
//! when the walk ends. A batch is announced on the channel *before* it is
//! put on the queue, so the main thread knows every job a completion can
//! refer to; a full queue blocks the walk, which keeps it (and memory) only
//! a few batches ahead of the workers.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use procpool::Queue;

use super::entry_stat::EntryStat;
use super::split::{HeldParts, SplitStart};
use crate::finish::dirmeta::DirMeta;
use crate::finish::links::LinkJob;
use crate::job::{Changes, EntryKind, FailKind, FileJob, FileRange, SourceMeta, WorkerEvent};

/// Jobs per batch: large enough that queue round trips vanish in the cost
/// of copying, small enough to spread a directory over the workers.
pub(crate) const BATCH_FILES: usize = 128;
/// The fewest jobs per batch, however many workers there are.
const BATCH_FILES_MIN: usize = 16;

/// Jobs per batch for `workers` workers: [`BATCH_FILES`] for a few, fewer
/// for many, so that a walk that keeps up (see `readers`) hands every
/// worker a batch of a tree of some thousands of files rather than
/// leaving most idle while a few work through 128 files each (measured
/// on a 1 ms mount: the README's "Latency-bound storage").
fn batch_files(workers: usize) -> usize {
    (4 * BATCH_FILES / workers.max(1)).clamp(BATCH_FILES_MIN, BATCH_FILES)
}
/// A batch is sent early once it holds this much data, so big files are
/// spread over workers instead of landing in one batch.
const BATCH_BYTES: u64 = 32 << 20;
/// A batch is sent early if the walk is slow, so workers do not idle.
const BATCH_AGE: Duration = Duration::from_millis(20);
/// How many entries go into a batch between looks at its age.
const AGE_CHECK_EVERY: usize = 8;

/// What the walker tells the main thread.
#[derive(Debug)]
pub(crate) enum WalkEvent {
    /// These jobs are about to be put on the jobs queue.
    Queued { jobs: Vec<FileJob>, bytes: u64 },
    /// A destination directory was created (or, dry running, would be).
    DirCreated { rel: OsString },
    /// An existing destination directory and how it differs from its
    /// source (`-i` only).
    DirChanged { rel: OsString, changes: Changes },
    /// A later name of a multiply-linked file (`-a`), to link after the copy.
    HardLink(LinkJob),
    /// An entry that will not be copied, and why.
    Failed {
        path: PathBuf,
        reason: String,
        kind: FailKind,
    },
    /// The count-ahead's totals: what the walk will queue, in all.
    Counted(super::count::Counted),
    /// The walk is over; the directories whose metadata is still to apply.
    Finished { dirs: Vec<DirMeta> },
}

/// The walk was stopped: by the main thread, or because the jobs queue or
/// the event channel is gone.
#[derive(Debug)]
pub(super) struct Stopped;

/// One entry for the jobs queue, as the walker found it.
#[derive(Debug)]
pub(super) struct NewJob {
    pub(super) src: PathBuf,
    pub(super) rel_dst: OsString,
    pub(super) kind: EntryKind,
    pub(super) meta: Option<SourceMeta>,
    /// `meta` counts in the totals (see [`FileJob::counted`]).
    pub(super) counted: bool,
    /// The walker created its destination directory in this run.
    pub(super) fresh: bool,
}

/// The walk's outputs: the jobs queue, the event channel, and the batch
/// being filled.
#[derive(Debug)]
pub(super) struct Batcher {
    jobs: Queue<Vec<FileJob>>,
    events: Sender<WalkEvent>,
    /// The done queue, only to wake the main thread when the walk ends.
    wake: Queue<Vec<WorkerEvent>>,
    batch: Vec<FileJob>,
    /// Parts of split files announced but not queued yet.
    held: HeldParts,
    batch_bytes: u64,
    batch_started: Instant,
    next_id: u64,
    /// Jobs per batch (see [`batch_files`]).
    batch_files: usize,
}

impl Batcher {
    /// `turns`: how many split files take turns (see [`HeldParts`]).
    pub(super) fn new(
        jobs: Queue<Vec<FileJob>>,
        events: Sender<WalkEvent>,
        wake: Queue<Vec<WorkerEvent>>,
        turns: usize,
        workers: usize,
    ) -> Batcher {
        let batch_files = batch_files(workers);
        Batcher {
            jobs,
            events,
            wake,
            batch: Vec::with_capacity(batch_files),
            batch_files,
            held: HeldParts::new(turns),
            batch_bytes: 0,
            batch_started: Instant::now(),
            next_id: 0,
        }
    }

    /// The id of a job not queued: every job, queued or not, has its own.
    pub(super) fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Tells the main thread `event`.
    pub(super) fn send(&self, event: WalkEvent) -> Result<(), Stopped> {
        self.events.send(event).map_err(|_| Stopped)
    }

    pub(super) fn add(&mut self, new: NewJob) -> Result<(), Stopped> {
        if self.batch.is_empty() {
            self.batch_started = Instant::now();
        }
        let size = match new.kind {
            EntryKind::File if new.counted => new.meta.map_or(0, |m| m.size),
            _ => 0,
        };
        let id = self.take_id();
        self.batch.push(FileJob {
            id,
            src: new.src.into_os_string(),
            rel_dst: new.rel_dst,
            kind: new.kind,
            meta: new.meta,
            counted: new.counted,
            fresh: new.fresh,
            range: None,
        });
        self.batch_bytes += size;
        // The clock is read every few entries only: on a fast walk that
        // read costs as much as the rest of queueing an entry.
        let age_check = self.batch.len() % AGE_CHECK_EVERY == 0;
        if self.batch.len() >= self.batch_files
            || self.batch_bytes >= BATCH_BYTES
            || age_check && self.batch_started.elapsed() >= BATCH_AGE
        {
            self.flush()?;
        }
        Ok(())
    }

    /// Announces the parts of a split file and holds them, to be queued in
    /// turns with other split files' (see [`Batcher::queue_round`]). The
    /// temp exists from here on: the main thread hears of it at once,
    /// before anything else can stop the walk, and accounts for parts
    /// that never get queued.
    pub(super) fn add_split(
        &mut self,
        src: &Path,
        rel_dst: OsString,
        md: &EntryStat,
        fresh: bool,
        split: SplitStart,
    ) -> Result<(), Stopped> {
        let first = self.next_id;
        let parts = split.ranges.len() as u32;
        let mut jobs = VecDeque::with_capacity(split.ranges.len());
        for (part, range) in split.ranges.iter().enumerate() {
            let range = FileRange {
                split: first,
                part: part as u32,
                parts,
                offset: range.offset,
                len: range.len,
                temp: split.temp.clone(),
                dev: md.dev(),
                ino: md.ino(),
            };
            jobs.push_back(FileJob {
                id: self.take_id(),
                src: src.as_os_str().to_os_string(),
                rel_dst: rel_dst.clone(),
                kind: EntryKind::File,
                meta: Some(md.source_meta()),
                counted: true,
                fresh,
                range: Some(range),
            });
        }
        let announced = WalkEvent::Queued {
            jobs: jobs.iter().cloned().collect(),
            bytes: md.len(),
        };
        self.send(announced)?;
        self.held.add(jobs);
        self.queue_round()
    }

    /// Queues a round of held parts (see [`HeldParts::round`]), each part
    /// as a batch of its own so that different workers take them. A round
    /// after every batch moves big files along with the small ones.
    fn queue_round(&mut self) -> Result<(), Stopped> {
        for part in self.held.round() {
            // Announced with its file in `add_split`.
            self.jobs.put(vec![part]).map_err(|_| Stopped)?;
        }
        Ok(())
    }

    /// Queues the batch and every part still held (the walk is over).
    pub(super) fn drain(&mut self) -> Result<(), Stopped> {
        self.flush()?;
        while !self.held.is_empty() {
            self.queue_round()?;
        }
        Ok(())
    }

    /// Queues the batch, if any, then a round of held parts.
    fn flush(&mut self) -> Result<(), Stopped> {
        self.flush_batch()?;
        self.queue_round()
    }

    pub(super) fn flush_batch(&mut self) -> Result<(), Stopped> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let jobs = std::mem::replace(&mut self.batch, Vec::with_capacity(self.batch_files));
        let bytes = std::mem::take(&mut self.batch_bytes);
        self.put(jobs, bytes)
    }

    /// Announces `jobs` to the main thread, then puts them on the queue.
    fn put(&mut self, jobs: Vec<FileJob>, bytes: u64) -> Result<(), Stopped> {
        let announced = WalkEvent::Queued {
            jobs: jobs.clone(),
            bytes,
        };
        self.send(announced)?;
        // Blocks while the queue is full: this is what keeps the walk
        // (and memory) only a few batches ahead of the workers.
        self.jobs.put(jobs).map_err(|_| Stopped)
    }

    /// Closes the jobs queue and reports `Finished` with the directories
    /// whose metadata is still to apply.
    pub(super) fn finish(self, dirs: Vec<DirMeta>) {
        // Closing lets workers finish once the queue is drained; failure
        // means the manager is gone, which the main thread sees for itself.
        let _ = self.jobs.close();
        let _ = self.events.send(WalkEvent::Finished { dirs });
        // The main thread may be waiting on the done queue, not on the
        // event channel: an empty batch wakes it to see the end of the
        // walk now rather than at its next poll.
        let _ = self.wake.put(Vec::new());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_workers_get_smaller_batches_never_below_the_least() {
        assert_eq!(batch_files(1), BATCH_FILES);
        assert_eq!(batch_files(4), BATCH_FILES);
        assert_eq!(batch_files(8), BATCH_FILES / 2);
        assert_eq!(batch_files(16), BATCH_FILES / 4);
        assert_eq!(batch_files(64), BATCH_FILES_MIN);
        assert_eq!(batch_files(0), BATCH_FILES);
    }
}
