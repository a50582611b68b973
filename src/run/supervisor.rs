//! The main thread's loop during a run: the [`Supervisor`] takes the
//! walker's news and the workers' events, keeps every announced job until
//! its completion, replaces lost workers, and at the end runs the finish
//! stage and accounts for whatever never completed.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::thread::JoinHandle;
use std::time::Duration;

use procpool::{AsyncResult, GetTimeoutError, Manager, Queue};

use super::splits::{self, FileEnd, Splits};
use super::worker::{WorkerArgs, WorkerStop, WorkerSummary, Workers};
use crate::config::Config;
use crate::exit_codes::{ExitStatus, Fatal};
use crate::finish::dirmeta::{self, DirMeta};
use crate::finish::links::LinkJob;
use crate::finish::{self, Tree};
use crate::job::{Completion, FailKind, FileJob, JobIdMap, Outcome, WorkerEvent};
use crate::plan::Plan;
use crate::ui::report::Reporter;
use crate::walk::{BATCH_FILES, WalkEvent};
use crate::{copy, signals};

/// How long the main loop waits for worker events before it looks at
/// signals, tasks and the progress display again.
const POLL: Duration = Duration::from_millis(50);

/// How a run ended, beyond what the reporter counted.
#[derive(Debug)]
pub(crate) struct RunEnd {
    pub(crate) interrupted: bool,
    /// An error that stopped the run early, to print after the summary.
    pub(crate) fatal: Option<Fatal>,
}

/// A job announced by the walker and not completed yet.
#[derive(Debug)]
struct Pending {
    job: FileJob,
    /// Bytes of it already shown as progress.
    reported: u64,
}

/// The main thread's state during a run.
pub(super) struct Supervisor<'r> {
    config: &'r Config,
    plan: &'r Plan,
    reporter: &'r mut Reporter,
    manager: &'r Manager,
    pub(super) pool: Workers,
    workers: usize,
    /// What every worker task is started with (the task number aside);
    /// the jobs queue is replaced by the retry queue at the end.
    args: WorkerArgs,
    done: Queue<Vec<WorkerEvent>>,
    /// Unresolved worker tasks by task number.
    tasks: Vec<(u64, AsyncResult<WorkerSummary>)>,
    next_task: u64,
    pending: JobIdMap<Pending>,
    walk_events: Receiver<WalkEvent>,
    walk_done: bool,
    dirs: Vec<DirMeta>,
    /// Tells the walker to stop.
    stop: Arc<AtomicBool>,
    /// No more jobs are handed out (interrupt or fatal error).
    stopping: bool,
    interrupted: bool,
    retried: bool,
    /// Destination directories a killed worker may have left a named temp
    /// file in (only where `O_TMPFILE` is unsupported).
    suspect_dirs: HashSet<OsString>,
    fatal: Option<Fatal>,
    /// Later names of multiply-linked files (`-a`), linked after the copy.
    links: Vec<LinkJob>,
    /// Destination paths whose copy failed (`-a` only, for `links`).
    failed_rels: HashSet<OsString>,
    /// Large files copied in parts, until their last part ends.
    splits: Splits,
}

impl<'r> Supervisor<'r> {
    pub(super) fn new(
        (config, plan, splits): (&'r Config, &'r Plan, Splits),
        reporter: &'r mut Reporter,
        manager: &'r Manager,
        pool: Workers,
        args: WorkerArgs,
        walk_events: Receiver<WalkEvent>,
        stop: Arc<AtomicBool>,
    ) -> Supervisor<'r> {
        Supervisor {
            config,
            plan,
            reporter,
            manager,
            pool,
            workers: config.jobs.get(),
            done: args.1.clone(),
            args,
            tasks: Vec::new(),
            next_task: 0,
            pending: JobIdMap::default(),
            walk_events,
            walk_done: false,
            dirs: Vec::new(),
            stop,
            stopping: false,
            interrupted: false,
            retried: false,
            suspect_dirs: HashSet::new(),
            fatal: None,
            links: Vec::new(),
            failed_rels: HashSet::new(),
            splits,
        }
    }

    pub(super) fn supervise(&mut self) -> anyhow::Result<()> {
        for _ in 0..self.workers {
            self.submit()?;
        }
        let mut done_closed = false;
        loop {
            self.pump_walk();
            if signals::interrupted() && !self.interrupted {
                self.interrupt();
            }
            match self.done.get_timeout(POLL) {
                Ok(events) => {
                    // The walker announces jobs before queueing them, so
                    // after this every completion finds its job.
                    self.pump_walk();
                    self.handle(events)?;
                }
                Err(GetTimeoutError::Timeout) => {}
                Err(GetTimeoutError::Closed) => return Ok(()),
                Err(GetTimeoutError::Failed(err)) => {
                    return Err(ipc("the done queue failed", err).into());
                }
            }
            self.reap()?;
            // Every task resolved after the walk: nothing can be put on
            // the done queue any more, unless a retry round starts now.
            if self.tasks.is_empty() && self.walk_done && !done_closed {
                self.drain_done()?;
                if !self.retry_once()? {
                    self.done
                        .close()
                        .map_err(|e| ipc("cannot close the done queue", e))?;
                    done_closed = true;
                }
            }
            self.reporter.tick();
        }
    }

    fn submit(&mut self) -> anyhow::Result<()> {
        let mut args = self.args.clone();
        args.2.task = self.next_task;
        let task = self
            .pool
            .submit(args)
            .map_err(|e| ipc("cannot start a worker task", e))?;
        self.tasks.push((self.next_task, task));
        self.next_task += 1;
        Ok(())
    }

    /// Takes the walker's news without waiting.
    fn pump_walk(&mut self) {
        loop {
            match self.walk_events.try_recv() {
                Ok(WalkEvent::Queued { jobs, bytes }) => {
                    self.reporter.queued(splits::files_in(&jobs), bytes);
                    for job in jobs {
                        self.pending.insert(job.id, Pending { job, reported: 0 });
                    }
                }
                Ok(WalkEvent::DirCreated { rel }) => self.reporter.dir_created(&rel),
                Ok(WalkEvent::HardLink(link)) => {
                    self.reporter.queued(1, 0);
                    self.links.push(link);
                }
                Ok(WalkEvent::Failed { path, reason, kind }) => {
                    self.reporter.failed(&path, &reason, kind);
                }
                Ok(WalkEvent::Finished { dirs }) => {
                    self.dirs = dirs;
                    self.walk_done = true;
                    self.reporter.walk_done();
                }
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => {
                    if !self.walk_done {
                        // The walker ended without `Finished`: it panicked.
                        self.walk_done = true;
                        self.abort(Fatal::new(ExitStatus::Ipc, "the directory walk failed"));
                    }
                    return;
                }
            }
        }
    }

    fn handle(&mut self, events: Vec<WorkerEvent>) -> anyhow::Result<()> {
        for event in events {
            match event {
                WorkerEvent::Exiting { task } => {
                    // Its result is on the way: collect it now rather than
                    // at the next poll, which would delay the end of a run.
                    if let Some(i) = self.tasks.iter().position(|(n, _)| *n == task) {
                        let (_, result) = self.tasks.swap_remove(i);
                        self.resolved(result.get())?;
                    }
                }
                WorkerEvent::Bytes { id, bytes } => {
                    if let Some(pending) = self.pending.get_mut(&id) {
                        pending.reported += bytes;
                        let size_known = pending.job.size_known();
                        self.reporter.bytes_copied(bytes, size_known);
                    }
                }
                WorkerEvent::Done(completion) => self.job_done(completion),
            }
        }
        Ok(())
    }

    fn job_done(&mut self, completion: Completion) {
        let Some(Pending { job, reported }) = self.pending.remove(&completion.id) else {
            return;
        };
        // A part of a split file ends the file only if it is the last.
        let ended = match job.range {
            Some(_) => {
                let part = self.splits.part_done(job, reported, completion.outcome);
                self.reporter.bytes_copied(part.more_bytes, true);
                self.reporter.restarted(part.fewer_bytes, true);
                part.file
            }
            None => Some(FileEnd {
                job,
                reported,
                outcome: completion.outcome,
            }),
        };
        let Some(FileEnd {
            job,
            reported,
            outcome,
        }) = ended
        else {
            return;
        };
        if let Outcome::Failed { .. } = outcome {
            // Later names of this file must not be linked.
            if self.config.copy.archive {
                self.failed_rels.insert(job.rel_dst.clone());
            }
        }
        self.reporter
            .completed(&job, reported, &outcome, completion.worker_pid);
    }

    fn drain_done(&mut self) -> anyhow::Result<()> {
        loop {
            match self.done.get_nowait() {
                Ok(events) => self.handle(events)?,
                Err(procpool::TryGetError::Empty | procpool::TryGetError::Closed) => return Ok(()),
                Err(procpool::TryGetError::Failed(err)) => {
                    return Err(ipc("the done queue failed", err).into());
                }
            }
        }
    }

    /// Collects the tasks that resolved without announcing it (lost ones).
    fn reap(&mut self) -> anyhow::Result<()> {
        let mut i = 0;
        while i < self.tasks.len() {
            if self.tasks[i].1.ready() {
                let (_, result) = self.tasks.swap_remove(i);
                self.resolved(result.get())?;
            } else {
                i += 1;
            }
        }
        Ok(())
    }

    /// Reacts to how a worker task ended.
    fn resolved(&mut self, result: Result<WorkerSummary, procpool::Error>) -> anyhow::Result<()> {
        match result {
            Ok(WorkerSummary { error: None, .. }) => {}
            Ok(WorkerSummary {
                error: Some(stop), ..
            }) => {
                let fatal = match stop {
                    WorkerStop::Destination(why) => Fatal::new(ExitStatus::DestinationIo, why),
                    WorkerStop::Queue(why) => Fatal::new(ExitStatus::Ipc, why),
                };
                self.abort(fatal);
            }
            Err(procpool::Error::Terminated) if self.stopping => {}
            Err(err @ (procpool::Error::WorkerLost { .. } | procpool::Error::Panicked { .. })) => {
                self.worker_lost(&err)?;
            }
            Err(err) => self.abort(Fatal::new(
                ExitStatus::Ipc,
                format!("a worker task failed: {err}"),
            )),
        }
        Ok(())
    }

    /// A worker died with jobs in hand: keep going with a replacement, and
    /// remember where it may have left temp files.
    fn worker_lost(&mut self, err: &procpool::Error) -> anyhow::Result<()> {
        let retry = if self.retried {
            ""
        } else {
            "; its files will be retried"
        };
        self.reporter.notice(&format!("{err}{retry}"));
        for pending in self.pending.values() {
            self.suspect_dirs
                .insert(parent_of(&pending.job.rel_dst).to_os_string());
        }
        if !self.stopping {
            self.submit()?;
        }
        Ok(())
    }

    /// Puts every job that never completed on a fresh queue, once, for new
    /// worker tasks. Returns whether a retry round started.
    fn retry_once(&mut self) -> anyhow::Result<bool> {
        if self.stopping || self.retried || self.pending.is_empty() {
            return Ok(false);
        }
        self.retried = true;
        let mut jobs = Vec::with_capacity(self.pending.len());
        for pending in self.pending.values_mut() {
            self.reporter
                .restarted(pending.reported, pending.job.size_known());
            pending.reported = 0;
            jobs.push(pending.job.clone());
        }
        jobs.sort_by_key(|job| job.id);
        let count = splits::distinct_files(&jobs);
        let batches: Vec<Vec<FileJob>> =
            jobs.chunks(BATCH_FILES).map(<[FileJob]>::to_vec).collect();
        let tasks = batches.len().min(self.workers);
        let queue = self
            .manager
            .queue(0)
            .map_err(|e| ipc("cannot create the retry queue", e))?;
        queue
            .put_many(batches)
            .map_err(|e| ipc("cannot fill the retry queue", e))?;
        queue
            .close()
            .map_err(|e| ipc("cannot close the retry queue", e))?;
        self.args.0 = queue;
        self.reporter
            .notice(&format!("retrying {count} files whose worker was lost"));
        for _ in 0..tasks {
            self.submit()?;
        }
        Ok(true)
    }

    /// Ctrl-C or SIGTERM: hand out nothing more and stop the workers.
    /// Process workers are killed mid-file (their temp files vanish or are
    /// removed in `finish`); thread workers stop after their current file.
    fn interrupt(&mut self) {
        self.interrupted = true;
        self.stop_dispatch();
        self.pool.terminate();
    }

    fn abort(&mut self, fatal: Fatal) {
        self.fatal.get_or_insert(fatal);
        self.stop_dispatch();
    }

    /// Stops the walk and empties the jobs queue, so workers run dry; the
    /// jobs taken out stay pending and are accounted for in `finish`.
    pub(super) fn stop_dispatch(&mut self) {
        self.stopping = true;
        self.stop.store(true, Ordering::Relaxed);
        let jobs = &self.args.0;
        let _ = jobs.close();
        while jobs.get_nowait().is_ok() {}
    }

    /// After the loop: waits for workers and walker, clears temp files a
    /// killed worker may have left, applies directory metadata and
    /// accounts for jobs that never completed.
    pub(super) fn finish(mut self, walker: JoinHandle<()>, root: Option<&OwnedFd>) -> RunEnd {
        if let Err(err) = self.pool.shut_down() {
            self.reporter
                .notice(&format!("cannot shut the workers down: {err}"));
        }
        // Unblocks a walker still waiting on a full queue (error paths).
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.args.0.close();
        let _ = walker.join();
        self.pump_walk();
        for pending in self.pending.values() {
            self.suspect_dirs
                .insert(parent_of(&pending.job.rel_dst).to_os_string());
        }
        if let Some(root) = root {
            for dir in &self.suspect_dirs {
                remove_stale_temps_beneath(root, dir, &self.config.copy.temp_tag);
            }
            let tree = Tree {
                config: self.config,
                plan: self.plan,
                root: root.as_fd(),
                dst_root: Path::new(&self.args.2.dst_root),
                complete: !self.interrupted && self.fatal.is_none() && self.pending.is_empty(),
                links: std::mem::take(&mut self.links),
                failed: &self.failed_rels,
            };
            finish::finish_tree(&tree, std::mem::take(&mut self.dirs), self.reporter);
        }
        self.abandon_splits();
        self.account_for_pending();
        RunEnd {
            interrupted: self.interrupted,
            fatal: self.fatal,
        }
    }

    /// Split files with parts that never ended count once each, like any
    /// other job left pending; their temps are removed.
    fn abandon_splits(&mut self) {
        let parts: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.job.range.is_some())
            .map(|(&id, _)| id)
            .collect();
        let left = parts
            .into_iter()
            .filter_map(|id| self.pending.remove(&id))
            .map(|p| (p.job, p.reported))
            .collect();
        for (job, reported) in self.splits.abandon(left) {
            self.reporter.restarted(reported, job.size_known());
            if self.interrupted {
                self.reporter.not_copied(1);
                continue;
            }
            let why = match self.fatal {
                Some(_) => "not copied: the run stopped early",
                None => "not copied: a worker copying part of it was lost, also on the retry",
            };
            self.reporter
                .failed(Path::new(&job.src), why, FailKind::Other);
        }
    }

    fn account_for_pending(&mut self) {
        if self.interrupted {
            self.reporter.not_copied(self.pending.len() as u64);
            return;
        }
        let mut left: Vec<Pending> = self.pending.drain().map(|(_, p)| p).collect();
        left.sort_by_key(|p| p.job.id);
        let why = if self.fatal.is_some() {
            "not copied: the run stopped early"
        } else {
            "not copied: its worker was lost, also on the retry"
        };
        for pending in left {
            self.reporter
                .restarted(pending.reported, pending.job.size_known());
            self.reporter
                .failed(Path::new(&pending.job.src), why, FailKind::Other);
        }
    }
}

/// The parent directory part of a destination path (empty for the root).
pub(super) fn parent_of(rel_dst: &OsStr) -> &OsStr {
    let bytes = rel_dst.as_bytes();
    let end = bytes.iter().rposition(|&b| b == b'/').unwrap_or(0);
    OsStr::from_bytes(&bytes[..end])
}

/// Best effort: a temp file that stays behind is harmless (no final name
/// refers to it) and the next run into the directory removes it.
fn remove_stale_temps_beneath(root: &OwnedFd, rel_dir: &OsStr, tag: &str) {
    if let Ok(dir) = dirmeta::open_beneath(root.as_fd(), rel_dir) {
        let _ = copy::remove_stale_temps_in(dir.as_fd(), tag, &mut |_| {});
    }
}

pub(super) fn ipc(what: &str, err: impl std::fmt::Display) -> Fatal {
    Fatal::new(ExitStatus::Ipc, format!("{what}: {err}"))
}
