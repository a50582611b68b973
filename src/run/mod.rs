//! One run of the copy: the walker thread, the worker pool, and the main
//! loop that connects them.
//!
//! Who owns what, and who wakes whom:
//! - the walker thread alone puts on the jobs queue and closes it when the
//!   walk ends; a full queue blocks it, which bounds memory;
//! - worker tasks take batches until the jobs queue is closed and drained,
//!   and put their events on the done queue (unbounded, so a worker never
//!   waits for the main thread);
//! - the main thread alone reads the done queue, watches the tasks, and
//!   closes the done queue once the walk is over and every task has
//!   resolved, so nothing can be put on it any more; its loop ends when
//!   the done queue reports closed-and-drained.
//!
//! Every job the walker announces stays in `pending` until its completion
//! arrives, so a worker that dies loses no job: what it held is put on a
//! fresh queue once at the end, and what still does not complete is
//! reported as failed.
//!
//! This file starts a run; its others: the main thread's loop
//! ([`supervisor`]), the jobs it keeps ([`pending`]), the worker tasks
//! ([`worker`]), the main thread's half of split files ([`splits`]) and
//! the destination root as opened ([`destination`]). It may call every
//! later stage: it starts the walk, runs the engine in the workers, and
//! hands the tree to `finish` at the end; only the main thread holds the
//! reporter (`ui`).

mod destination;
pub(crate) mod grow;
mod pending;
mod splits;
mod supervisor;
#[cfg(test)]
mod tests;
pub(crate) mod worker;

use std::num::NonZeroUsize;
use std::os::fd::AsFd;

use procpool::{AnyPool, Manager};

use crate::cli::WorkerKind;
use crate::copy::caps::{self, Capabilities};
use crate::exit_codes::Fatal;
use crate::finish::FinishSetup;
use crate::job::{CopyOptions, FailKind};
use crate::plan::Plan;
use crate::ui::report::Reporter;
use crate::walk::{self, WalkSetup, WalkStart};
use destination::Destination;
pub(crate) use grow::GrowSetup;
use splits::Splits;
pub(crate) use supervisor::RunEnd;
use supervisor::{Start, Supervisor, ipc};
use worker::{WorkerSetup, WorkerTask};

/// How a run goes; built by `Config::run_setup`.
#[derive(Debug, Clone)]
pub(crate) struct RunSetup {
    /// How many workers copy at once, and of which kind.
    pub(crate) workers: NonZeroUsize,
    pub(crate) kind: WorkerKind,
    /// The engine's options, the same for every job.
    pub(crate) copy: CopyOptions,
    pub(crate) walk: WalkSetup,
    pub(crate) finish: FinishSetup,
    /// `--modify-window` in seconds; `None`: the destination's timestamp
    /// granularity decides.
    pub(crate) modify_window: Option<u64>,
    /// Why fewer workers run than `-j` asked for (the descriptor budget).
    pub(crate) budget_note: Option<String>,
    /// How far the pool may grow while the run goes.
    pub(crate) grow: GrowSetup,
}

/// Before the walk: tells what the plan and the descriptor budget already
/// know, and makes the destination (and a `--backup-dir`) ready.
fn prepare(setup: &RunSetup, plan: &Plan, reporter: &mut Reporter) -> Result<(), Fatal> {
    if let Some(note) = &setup.budget_note {
        reporter.notice(note);
    }
    for rejected in &plan.rejected {
        reporter.failed(&rejected.path, &rejected.reason, FailKind::SourceIo);
    }
    for warning in crate::plan::aside::prepare(plan, &setup.copy)? {
        reporter.notice(&warning);
    }
    if plan.create_dst_root && plan.roots.iter().any(|root| root.rel_dst.is_empty()) {
        reporter.dir_created(std::ffi::OsStr::new(""));
    }
    Ok(())
}

/// Copies everything in `plan`, reporting as it goes.
pub(crate) fn run(
    setup: &RunSetup,
    plan: &Plan,
    reporter: &mut Reporter,
) -> anyhow::Result<RunEnd> {
    prepare(setup, plan, reporter)?;
    let dst = Destination::open(plan, setup.copy.dry_run)?;
    let caps = probe_destination(setup, &dst);
    let copy = &copy_options(setup, caps.as_ref());
    if let Some(lost) = caps
        .as_ref()
        .filter(|c| (setup.copy.keep.xattrs || setup.copy.owners.any()) && !c.loses.is_empty())
    {
        reporter.notice(&format!(
            "the destination filesystem cannot keep {}: not kept (-a)",
            lost.loses.join(", ")
        ));
    }
    let workers = setup.workers.get();
    let manager = Manager::new().map_err(|e| ipc("cannot start the queue manager", e))?;
    let task = first_task(&manager, workers, &dst, copy)?;
    let pool = AnyPool::with_workers(setup.kind.into(), workers)
        .map_err(|e| ipc("cannot start workers", e))?;
    let walk_start = WalkStart {
        roots: plan.roots.clone(),
        dst_root: dst.try_clone_fd()?,
        dst_root_new: plan.create_dst_root,
        case_insensitive: caps.as_ref().is_some_and(|c| c.case_insensitive),
        jobs: task.jobs.clone(),
        wake: task.done.clone(),
    };
    let walk = walk::spawn(setup.walk.clone(), walk_start)?;
    let splits = Splits::new(dst.try_clone_fd()?, copy.clone());
    let start = Start {
        workers,
        grow: &setup.grow,
        copy,
        finish: &setup.finish,
        roots: &plan.roots,
        dst: &dst,
        manager: &manager,
        pool,
        task,
        walk,
        splits,
    };
    let mut supervisor = Supervisor::new(start, reporter);
    let supervised = supervisor.supervise();
    if supervised.is_err() {
        supervisor.stop_dispatch();
        supervisor.pool.terminate();
    }
    let end = supervisor.finish();
    supervised?;
    Ok(end)
}

/// What the destination filesystem can hold, probed once for the whole
/// run, here; `None` for a dry run, which writes nothing.
fn probe_destination(setup: &RunSetup, dst: &Destination) -> Option<Capabilities> {
    let root = dst.fd.as_ref().filter(|_| !setup.copy.dry_run)?;
    Some(caps::probe(root.as_fd(), &setup.copy.temp_tag))
}

/// The engine's options completed by the probe: what the destination
/// holds, and the quick check's time window: the `--modify-window`
/// given, else what the destination's timestamps can tell apart.
fn copy_options(setup: &RunSetup, caps: Option<&Capabilities>) -> CopyOptions {
    let mut copy = setup.copy.clone();
    copy.modify_window_ns = match (setup.modify_window, caps.and_then(|c| c.time_step)) {
        (Some(secs), _) => secs.saturating_mul(1_000_000_000),
        (None, Some(step)) => step - 1,
        (None, None) => 0,
    };
    if let Some(caps) = caps {
        copy.dest = caps.holds;
    }
    copy
}

/// The jobs and done queues, and what every worker task is started with
/// (the task number aside).
fn first_task(
    manager: &Manager,
    workers: usize,
    dst: &Destination,
    copy: &CopyOptions,
) -> Result<WorkerTask, Fatal> {
    // A few batches per worker: enough that none waits for the walker,
    // few enough that memory does not grow with the tree.
    let jobs = manager
        .queue(2 * workers + 2)
        .map_err(|e| ipc("cannot create the jobs queue", e))?;
    let done = manager
        .queue(0)
        .map_err(|e| ipc("cannot create the done queue", e))?;
    let setup = WorkerSetup {
        task: 0,
        dst_root: dst.path.clone().into_os_string(),
        dst_identity: dst.identity,
        opts: copy.clone(),
        main_pid: std::process::id(),
    };
    Ok(WorkerTask { jobs, done, setup })
}
