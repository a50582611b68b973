//! The main thread's loop during a run: the [`Supervisor`] takes the
//! walker's news and the workers' events, keeps every announced job until
//! its completion, replaces lost workers, grows the pool as [`grow`]
//! decides, and at the end runs the finish stage and accounts for
//! whatever never completed.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::mpsc::TryRecvError;
use std::time::{Duration, Instant};

use procpool::{AnyPool, AsyncResult, GetTimeoutError, Manager};

use super::destination::Destination;
use super::grow::{self, Event, GrowSetup, Grower, Sample};
use super::pending::{Ledger, Pending};
use super::splits::{self, FileEnd, Splits};
use super::worker::{self, WorkerStop, WorkerSummary, WorkerTask};
use crate::exit_codes::{ExitStatus, Fatal};
use crate::finish::dirmeta::DirApply;
use crate::finish::dirmeta::DirMeta;
use crate::finish::links::LinkJob;
use crate::finish::{self, FinishSetup, Tree};
use crate::job::{
    Changes, Completion, CopyOptions, FailKind, FileJob, Findings, Outcome, WorkerEvent,
};
use crate::plan::Root;
use crate::relpath;
use crate::ui::report::Reporter;
use crate::walk::{BATCH_FILES, WalkEvent, Walking};
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

/// What the supervisor starts with: the parts of the run's setup it uses,
/// and what `run` opened and started.
pub(super) struct Start<'r> {
    /// How many workers the pool starts with.
    pub(super) workers: usize,
    /// How far it may grow.
    pub(super) grow: &'r GrowSetup,
    /// The engine's options (`-a`, the temp tag).
    pub(super) copy: &'r CopyOptions,
    pub(super) finish: &'r FinishSetup,
    pub(super) roots: &'r [Root],
    pub(super) dst: &'r Destination,
    pub(super) manager: &'r Manager,
    pub(super) pool: AnyPool,
    /// What every worker task is started with (the task number aside).
    pub(super) task: WorkerTask,
    pub(super) walk: Walking,
    pub(super) splits: Splits,
}

/// A worker task not resolved yet.
struct Task {
    /// Its [`WorkerSetup::task`](super::worker::WorkerSetup::task).
    number: u64,
    result: AsyncResult<WorkerSummary>,
}

/// The main thread's state during a run.
pub(super) struct Supervisor<'r> {
    copy: &'r CopyOptions,
    finish: &'r FinishSetup,
    roots: &'r [Root],
    dst: &'r Destination,
    reporter: &'r mut Reporter,
    manager: &'r Manager,
    pub(super) pool: AnyPool,
    /// The pool's size: its start, then as grown (never smaller).
    workers: usize,
    /// When the pool grows (`grow`); fed by this thread alone.
    grower: Grower,
    started: Instant,
    /// Jobs completed and bytes copied so far, for `grower`.
    jobs_done: u64,
    bytes_done: u64,
    /// What every worker task is started with (the task number aside);
    /// the jobs queue is replaced by the retry queue at the end.
    task: WorkerTask,
    tasks: Vec<Task>,
    next_task: u64,
    pending: Ledger,
    walk: Walking,
    walk_done: bool,
    dirs: Vec<DirMeta>,
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
    /// Destination paths (`-a` only, for `links`) left without a version
    /// of their source: failed, or skipped by `--existing`, `--max-size`
    /// and the like.
    not_copied: HashSet<OsString>,
    /// Large files copied in parts, until their last part ends.
    splits: Splits,
}

impl<'r> Supervisor<'r> {
    pub(super) fn new(start: Start<'r>, reporter: &'r mut Reporter) -> Supervisor<'r> {
        Supervisor {
            copy: start.copy,
            finish: start.finish,
            roots: start.roots,
            dst: start.dst,
            reporter,
            manager: start.manager,
            pool: start.pool,
            workers: start.workers,
            grower: Grower::for_setup(start.workers, start.grow),
            started: Instant::now(),
            jobs_done: 0,
            bytes_done: 0,
            task: start.task,
            tasks: Vec::new(),
            next_task: 0,
            pending: Ledger::default(),
            walk: start.walk,
            walk_done: false,
            dirs: Vec::new(),
            stopping: false,
            interrupted: false,
            retried: false,
            suspect_dirs: HashSet::new(),
            fatal: None,
            links: Vec::new(),
            not_copied: HashSet::new(),
            splits: start.splits,
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
            match self.task.done.get_timeout(POLL) {
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
            if !done_closed {
                self.grow()?;
            }
            // Every task resolved after the walk: nothing can be put on
            // the done queue any more, unless a retry round starts now.
            if self.tasks.is_empty() && self.walk_done && !done_closed {
                self.drain_done()?;
                if !self.retry_once()? {
                    (self.task.done)
                        .close()
                        .map_err(|e| ipc("cannot close the done queue", e))?;
                    done_closed = true;
                }
            }
            self.reporter.tick();
        }
    }

    fn submit(&mut self) -> anyhow::Result<()> {
        let mut task = self.task.clone();
        task.setup.task = self.next_task;
        let result =
            worker::submit(&self.pool, task).map_err(|e| ipc("cannot start a worker task", e))?;
        self.tasks.push(Task {
            number: self.next_task,
            result,
        });
        self.next_task += 1;
        Ok(())
    }

    /// Tells the growth rule where the run stands, and grows the pool as
    /// it says: resizes it, then starts a worker task for each new worker
    /// (they take batches from the same jobs queue). Not while stopping:
    /// an interrupted or failing run hands out nothing more.
    fn grow(&mut self) -> anyhow::Result<()> {
        if self.stopping {
            return Ok(());
        }
        let sample = Sample {
            at: self.started.elapsed(),
            files: self.jobs_done,
            bytes: self.bytes_done,
            walk_done: self.walk_done,
            jobs_left: self.pending.len() as u64,
        };
        while let Some(event) = self.grower.observe(sample) {
            match event {
                Event::Grow(step) => {
                    self.reporter.grew(&grow::describe_step(&step));
                    // A pool that could not start every new worker keeps
                    // those that did start, and grows no more.
                    let resized = self.pool.resize(step.to);
                    let now = self.pool.workers().max(self.workers);
                    if let Err(err) = resized {
                        self.reporter
                            .notice(&format!("cannot start more workers: {err}"));
                        self.grower.stalled(now);
                    }
                    for _ in self.workers..now {
                        self.submit()?;
                    }
                    self.workers = now;
                }
                Event::Judged(verdict) => self.reporter.grew(&grow::describe_verdict(&verdict)),
            }
        }
        Ok(())
    }

    /// Takes the walker's news without waiting.
    fn pump_walk(&mut self) {
        loop {
            match self.walk.events.try_recv() {
                Ok(WalkEvent::Queued { jobs, bytes }) => {
                    self.reporter.queued(splits::files_in(&jobs), bytes);
                    self.pending.announce(jobs);
                }
                Ok(WalkEvent::DirCreated { rel }) => self.reporter.dir_created(&rel),
                Ok(WalkEvent::DirChanged { rel, changes }) => {
                    self.reporter.dir_changed(&rel, changes);
                }
                Ok(WalkEvent::HardLink(link)) => {
                    self.reporter.queued(1, 0);
                    self.links.push(link);
                }
                Ok(WalkEvent::Failed { path, reason, kind }) => {
                    self.reporter.failed(&path, &reason, kind);
                }
                Ok(WalkEvent::Counted(counted)) => {
                    self.reporter.counted(counted.files, counted.bytes);
                }
                Ok(WalkEvent::Finished { dirs }) => {
                    self.reporter.dirs_walked(dirs.len() as u64);
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
                    if let Some(i) = self.tasks.iter().position(|t| t.number == task) {
                        let task = self.tasks.swap_remove(i);
                        self.resolved(task.result.get())?;
                    }
                }
                WorkerEvent::Bytes { id, bytes } => {
                    if let Some(pending) = self.pending.get_mut(id) {
                        self.bytes_done += bytes;
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
        let Some(Pending { job, reported }) = self.pending.remove(completion.id) else {
            return;
        };
        self.jobs_done += 1;
        if let Outcome::Copied { bytes, .. } = completion.outcome {
            // Its `Bytes` events counted `reported` of them already; most
            // files end before sending any.
            self.bytes_done += bytes.saturating_sub(reported);
        }
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
        // Later names of this file are then not linked to it.
        if self.copy.keep.hard_links && !outcome.leaves_a_version() {
            self.not_copied.insert(job.rel_dst.clone());
        }
        let found = match job.range {
            // The walker found nothing at the name of a split file.
            Some(_) => Findings {
                changes: Some(Changes::new_entry()),
                ..Findings::default()
            },
            None => completion.found,
        };
        let done = Completion {
            outcome,
            found,
            ..completion
        };
        self.reporter.completed(&job, reported, &done);
    }

    fn drain_done(&mut self) -> anyhow::Result<()> {
        loop {
            match self.task.done.get_nowait() {
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
            if self.tasks[i].result.ready() {
                let task = self.tasks.swap_remove(i);
                self.resolved(task.result.get())?;
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
        self.pending.note_dirs(&mut self.suspect_dirs);
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
        self.task.jobs = queue;
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
        self.walk.stop();
        let jobs = &self.task.jobs;
        let _ = jobs.close();
        while jobs.get_nowait().is_ok() {}
    }

    /// After the loop: waits for workers and walker, clears temp files a
    /// killed worker may have left, applies directory metadata and
    /// accounts for jobs that never completed.
    pub(super) fn finish(mut self) -> RunEnd {
        self.reporter.workers(self.workers);
        self.pool.close();
        if let Err(err) = self.pool.join() {
            self.reporter
                .notice(&format!("cannot shut the workers down: {err}"));
        }
        // Unblocks a walker still waiting on a full queue (error paths).
        self.walk.stop();
        let _ = self.task.jobs.close();
        self.walk.join();
        self.pump_walk();
        self.pending.note_dirs(&mut self.suspect_dirs);
        if let Some(root) = &self.dst.fd {
            self.finish_tree(root);
        }
        self.abandon_splits();
        self.account_for_pending();
        RunEnd {
            interrupted: self.interrupted,
            fatal: self.fatal,
        }
    }

    /// Clears the temps in suspect directories, then runs the finish stage.
    fn finish_tree(&mut self, root: &OwnedFd) {
        for dir in &self.suspect_dirs {
            remove_stale_temps_beneath(root, dir, &self.copy.temp_tag, self.copy.partial);
        }
        let tree = Tree {
            setup: self.finish,
            roots: self.roots,
            root: root.as_fd(),
            dst_root: &self.dst.path,
            complete: !self.interrupted && self.fatal.is_none() && self.pending.is_empty(),
            links: std::mem::take(&mut self.links),
            not_copied: &self.not_copied,
            copy: self.copy,
            dir_apply: DirApply {
                fsync: self.finish.fsync,
                window_ns: self.copy.modify_window_ns,
                modes: self.copy.dest.modes,
                times: self.copy.keep.times,
                width: self.workers,
            },
        };
        finish::finish_tree(&tree, std::mem::take(&mut self.dirs), self.reporter);
    }

    /// Split files with parts that never ended count once each, like any
    /// other job left pending; their temps are removed.
    fn abandon_splits(&mut self) {
        let left = self.pending.take_parts();
        for Pending { job, reported } in self.splits.abandon(left) {
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
        let left = self.pending.take_all();
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

/// Best effort: a temp file that stays behind is harmless (no final name
/// refers to it) and the next run into the directory removes it.
fn remove_stale_temps_beneath(root: &OwnedFd, rel_dir: &OsStr, tag: &str, keep_partial: bool) {
    if let Ok(dir) = relpath::open_beneath(root.as_fd(), rel_dir) {
        let _ = copy::remove_stale_temps_in(dir.as_fd(), tag, keep_partial, &mut |_| {});
    }
}

pub(super) fn ipc(what: &str, err: impl std::fmt::Display) -> Fatal {
    Fatal::new(ExitStatus::Ipc, format!("{what}: {err}"))
}
