//! The pool side: the task each worker runs on the pool, whichever kind of
//! worker `--workers` chose.
//!
//! A worker task is long-lived: it takes batches of jobs from the shared
//! jobs queue until that queue is closed and drained, and sends what
//! happened back on the done queue. So the pool sees `jobs` tasks per run
//! (plus replacements), not one task per file, and a file costs the hot
//! path a slot in a batch rather than a round trip of its own.

use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, Instant};

use procpool::{AnyPool, AsyncResult, GetError, Queue};
use serde::{Deserialize, Serialize};

use crate::copy::Engine;
use crate::job::{Completion, CopyOptions, FileJob, WorkerEvent};
use crate::signals;

/// How often at most a worker sends what it has done so far, so progress
/// moves even while a batch of large files is being copied.
const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// A file at least this large is copied only after the completions before
/// it are sent (about a millisecond of copying at memory speed).
const REPORT_BEFORE: u64 = 1 << 20;

/// What a worker task returns when the jobs queue runs dry.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct WorkerSummary {
    /// The worker's process id.
    pub(crate) pid: u32,
    /// Jobs this task ran.
    pub(crate) jobs: u64,
    /// Why the task stopped early, if it did.
    pub(crate) error: Option<WorkerStop>,
}

/// Why a worker task stopped before its jobs queue ran dry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum WorkerStop {
    /// The destination root could not be opened.
    Destination(String),
    /// A queue failed (the manager is gone).
    Queue(String),
}

/// What one worker task is started with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WorkerTask {
    /// The batches to copy, until the queue is closed and drained.
    pub(crate) jobs: Queue<Vec<FileJob>>,
    /// Where the task's events go.
    pub(crate) done: Queue<Vec<WorkerEvent>>,
    pub(crate) setup: WorkerSetup,
}

/// Where a worker task copies to, and which task it is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WorkerSetup {
    /// Numbers the tasks of a run, so the main thread can collect the
    /// result of a task that announced [`WorkerEvent::Exiting`] at once
    /// instead of polling every task.
    pub(crate) task: u64,
    /// The destination root, absolute.
    pub(crate) dst_root: OsString,
    /// Device and inode of the destination root as the main process opened
    /// it. A worker opens `dst_root` by path again; if that reaches another
    /// directory (the path was swapped meanwhile, say for a symlink), it
    /// copies nothing rather than write outside the destination.
    pub(crate) dst_identity: Option<(u64, u64)>,
    pub(crate) opts: CopyOptions,
    /// The main process's id: a task running in another process is in a
    /// process worker, which the pool stops with SIGTERM.
    pub(crate) main_pid: u32,
}

/// The worker task: copies batches from `jobs` into the destination until
/// `jobs` is closed and drained, the run is interrupted, or a queue fails.
pub(crate) fn copy_worker(task: WorkerTask) -> WorkerSummary {
    let WorkerTask { jobs, done, setup } = task;
    let mut summary = WorkerSummary {
        pid: std::process::id(),
        ..WorkerSummary::default()
    };
    let own_process = setup.main_pid != summary.pid;
    if own_process {
        if let Err(err) = signals::task_starts() {
            // Without it the worker dies mid-batch and its last completions
            // go unreported; the copies themselves stay whole.
            eprintln!(
                "pcopy: worker {}: cannot handle SIGTERM: {err}",
                summary.pid
            );
        }
    }
    let mut outbox = Outbox::new(done);
    match Engine::new(Path::new(&setup.dst_root), setup.opts) {
        Ok(engine)
            if setup
                .dst_identity
                .is_some_and(|id| engine.root_identity() != Some(id)) =>
        {
            summary.error = Some(WorkerStop::Destination(
                "destination directory was replaced during the run; not copying into it".into(),
            ));
        }
        Ok(engine) => copy_until_dry(engine, &jobs, &mut outbox, &mut summary),
        Err(err) => {
            summary.error = Some(WorkerStop::Destination(format!(
                "cannot open destination directory: {}",
                crate::ui::escape::io_reason(&err)
            )));
        }
    }
    outbox.push(WorkerEvent::Exiting { task: setup.task });
    outbox.flush();
    if own_process {
        // Every finished file is reported: a terminated worker goes now,
        // as SIGTERM would have taken it, rather than wait for the next task.
        signals::task_ends();
    }
    if let Some(err) = outbox.error.take() {
        summary.error.get_or_insert(WorkerStop::Queue(err));
    }
    summary
}

fn copy_until_dry(
    mut engine: Engine,
    jobs: &Queue<Vec<FileJob>>,
    outbox: &mut Outbox,
    summary: &mut WorkerSummary,
) {
    // Thread workers share the parent's interrupt flag and stop between
    // files; process workers never see it set and are terminated instead.
    while !signals::interrupted() {
        let batch = match jobs.get() {
            Ok(batch) => batch,
            Err(GetError::Closed) => break,
            Err(GetError::Failed(err)) => {
                summary.error = Some(WorkerStop::Queue(format!("jobs queue failed: {err}")));
                break;
            }
        };
        for job in batch {
            if signals::interrupted() {
                break;
            }
            if job.meta.is_some_and(|m| m.size >= REPORT_BEFORE) {
                // A large file keeps the worker a while: what it finished
                // before is reported now, so a kill mid-file loses no news.
                outbox.flush();
            }
            let outcome = engine.copy(&job, &mut |bytes| outbox.bytes(job.id, bytes));
            summary.jobs += 1;
            outbox.push(WorkerEvent::Done(Completion {
                id: job.id,
                outcome,
                worker_pid: summary.pid,
                found: engine.take_findings(),
            }));
            outbox.flush_if_due();
        }
        outbox.flush();
    }
}

procpool::register!(copy_worker);

/// Bytes copied of one job and not reported yet.
#[derive(Debug, Clone, Copy)]
struct Unsent {
    id: u64,
    bytes: u64,
}

/// Events waiting to be sent, and when they were last sent.
struct Outbox {
    done: Queue<Vec<WorkerEvent>>,
    events: Vec<WorkerEvent>,
    last_flush: Instant,
    /// Bytes of the current job not yet reported: byte events are merged
    /// per flush so a large file costs one event per interval.
    partial: Option<Unsent>,
    error: Option<String>,
}

impl Outbox {
    fn new(done: Queue<Vec<WorkerEvent>>) -> Outbox {
        Outbox {
            done,
            events: Vec::new(),
            last_flush: Instant::now(),
            partial: None,
            error: None,
        }
    }

    fn bytes(&mut self, id: u64, bytes: u64) {
        match &mut self.partial {
            Some(unsent) if unsent.id == id => unsent.bytes += bytes,
            _ => self.partial = Some(Unsent { id, bytes }),
        }
        if self.last_flush.elapsed() >= FLUSH_INTERVAL {
            if let Some(Unsent { id, bytes }) = self.partial.take() {
                self.events.push(WorkerEvent::Bytes { id, bytes });
            }
            self.flush();
        }
    }

    fn push(&mut self, event: WorkerEvent) {
        // The completion carries the job's total, which covers the bytes
        // not reported yet.
        if let (WorkerEvent::Done(done), Some(unsent)) = (&event, &self.partial) {
            if done.id == unsent.id {
                self.partial = None;
            }
        }
        self.events.push(event);
    }

    fn flush_if_due(&mut self) {
        if self.last_flush.elapsed() >= FLUSH_INTERVAL {
            self.flush();
        }
    }

    fn flush(&mut self) {
        self.last_flush = Instant::now();
        if self.events.is_empty() || self.error.is_some() {
            return;
        }
        let events = std::mem::take(&mut self.events);
        if let Err(err) = self.done.put(events) {
            // The parent is gone or stopped listening; the jobs stay
            // unreported and the parent counts them as not completed.
            self.error = Some(format!("done queue failed: {err}"));
        }
    }
}

/// Starts one [`copy_worker`] task on `pool`.
pub(crate) fn submit(
    pool: &AnyPool,
    task: WorkerTask,
) -> Result<AsyncResult<WorkerSummary>, procpool::Error> {
    pool.apply_async(copy_worker, (task,))
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::MetadataExt;

    use procpool::Manager;

    use super::*;
    use crate::job::EntryKind;

    /// Runs one worker task in this thread over one job copying `f` into
    /// `dst`, the main process having opened the root `identity` names.
    fn run_one(identity: impl Fn(&Path) -> (u64, u64)) -> (WorkerSummary, tempfile::TempDir) {
        let tmp = tempfile::tempdir().unwrap();
        let dst = tmp.path().join("dst");
        fs::create_dir(&dst).unwrap();
        fs::write(tmp.path().join("f"), "data").unwrap();
        let manager = Manager::new().unwrap();
        let (jobs, done) = (manager.queue(0).unwrap(), manager.queue(0).unwrap());
        let job = FileJob {
            id: 1,
            src: tmp.path().join("f").into_os_string(),
            rel_dst: "f".into(),
            kind: EntryKind::File,
            meta: None,
            counted: false,
            fresh: true,
            range: None,
        };
        jobs.put(vec![job]).unwrap();
        jobs.close().unwrap();
        let setup = WorkerSetup {
            task: 7,
            dst_identity: Some(identity(&dst)),
            dst_root: dst.into_os_string(),
            opts: CopyOptions::default(),
            main_pid: std::process::id(),
        };
        (copy_worker(WorkerTask { jobs, done, setup }), tmp)
    }

    fn identity_of(path: &Path) -> (u64, u64) {
        let md = fs::metadata(path).unwrap();
        (md.dev(), md.ino())
    }

    #[test]
    fn a_worker_copies_into_the_root_the_main_process_opened() {
        let (summary, tmp) = run_one(identity_of);
        assert!(summary.error.is_none(), "{:?}", summary.error);
        assert_eq!(summary.jobs, 1);
        assert_eq!(fs::read(tmp.path().join("dst/f")).unwrap(), b"data");
    }

    #[test]
    fn a_worker_whose_root_path_now_leads_elsewhere_copies_nothing() {
        // As if `dst` had been swapped: the path reaches another directory
        // than the one the main process opened (here, its parent).
        let (summary, tmp) = run_one(|dst| identity_of(dst.parent().unwrap()));
        assert!(
            matches!(&summary.error, Some(WorkerStop::Destination(m)) if m.contains("replaced")),
            "{:?}",
            summary.error
        );
        assert_eq!(summary.jobs, 0);
        assert!(fs::symlink_metadata(tmp.path().join("dst/f")).is_err());
    }
}
