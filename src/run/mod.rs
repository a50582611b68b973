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
//! Its files: the loop ([`supervisor`]), the worker tasks ([`worker`]) and
//! the main thread's half of split files ([`splits`]). It may call every
//! later stage: it starts the walk, runs the engine in the workers, and
//! hands the tree to `finish` at the end; only the main thread holds the
//! reporter (`ui`).

mod splits;
mod supervisor;
#[cfg(test)]
mod tests;
pub(crate) mod worker;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;

use procpool::Manager;
use rustix::fs::{Mode, OFlags};

use crate::config::Config;
use crate::exit_codes::{ExitStatus, Fatal};
use crate::plan::Plan;
use crate::ui::escape::{Escaped, io_reason};
use crate::ui::report::Reporter;
use crate::walk::split::Splitter;
use crate::walk::{self, WalkSetup};
use splits::Splits;
pub(crate) use supervisor::RunEnd;
use supervisor::{Supervisor, ipc};
use worker::{WorkerSetup, Workers};

/// Copies everything in `plan`, reporting as it goes.
pub(crate) fn run(config: &Config, plan: &Plan, reporter: &mut Reporter) -> anyhow::Result<RunEnd> {
    let (dst_root, root_fd) = open_destination(plan, config.copy.dry_run)?;
    let dst_identity = match &root_fd {
        Some(fd) => Some(identity(fd).map_err(|e| dest_fatal(&dst_root, "cannot stat", &e))?),
        None => None,
    };
    let workers = config.jobs.get();
    let manager = Manager::new().map_err(|e| ipc("cannot start the queue manager", e))?;
    // A few batches per worker: enough that none waits for the walker,
    // few enough that memory does not grow with the tree.
    let jobs = manager
        .queue(2 * workers + 2)
        .map_err(|e| ipc("cannot create the jobs queue", e))?;
    let done = manager
        .queue(0)
        .map_err(|e| ipc("cannot create the done queue", e))?;
    let pool =
        Workers::start(config.workers, workers).map_err(|e| ipc("cannot start workers", e))?;
    let (events, walk_events) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let setup = WalkSetup {
        roots: plan.roots.clone(),
        dst_root: root_fd.as_ref().map(OwnedFd::try_clone).transpose()?,
        dst_root_new: plan.create_dst_root,
        dereference: config.copy.dereference,
        dry_run: config.copy.dry_run,
        archive: config.copy.archive,
        filter: config.filter.clone(),
        shard: config.shard,
        splitter: Splitter::new(config.split_min, workers, &config.copy),
        jobs: jobs.clone(),
        wake: done.clone(),
        events,
        stop: Arc::clone(&stop),
    };
    let walker = std::thread::Builder::new()
        .name("pcopy-walk".into())
        .spawn(move || walk::walk(setup))?;
    let worker_setup = WorkerSetup {
        task: 0,
        dst_root: dst_root.into_os_string(),
        dst_identity,
        opts: config.copy.clone(),
    };
    let splits = Splits::new(
        root_fd.as_ref().map(OwnedFd::try_clone).transpose()?,
        config.copy.clone(),
    );
    let mut supervisor = Supervisor::new(
        (config, plan, splits),
        reporter,
        &manager,
        pool,
        (jobs, done, worker_setup),
        walk_events,
        stop,
    );
    let supervised = supervisor.supervise();
    if supervised.is_err() {
        supervisor.stop_dispatch();
        supervisor.pool.terminate();
    }
    let end = supervisor.finish(walker, root_fd.as_ref());
    supervised?;
    Ok(end)
}

/// The destination root, absolute, and opened (following a symlink: the
/// user named it); not opened when a dry run would have created it.
fn open_destination(plan: &Plan, dry_run: bool) -> Result<(PathBuf, Option<OwnedFd>), Fatal> {
    let dst_root = plan.dst_root.as_path();
    let what = "cannot open destination directory";
    let absolute = std::path::absolute(dst_root).map_err(|e| dest_fatal(dst_root, what, &e))?;
    if dry_run && plan.create_dst_root {
        return Ok((absolute, None));
    }
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let fd = rustix::fs::open(&absolute, flags, Mode::empty())
        .map_err(|e| dest_fatal(dst_root, what, &e.into()))?;
    Ok((absolute, Some(fd)))
}

/// Device and inode: what names one directory whatever its path.
fn identity(fd: &OwnedFd) -> std::io::Result<(u64, u64)> {
    let st = rustix::fs::fstat(fd)?;
    Ok((st.st_dev, st.st_ino))
}

fn dest_fatal(path: &Path, what: &str, err: &std::io::Error) -> Fatal {
    Fatal::new(
        ExitStatus::DestinationIo,
        format!("{}: {what}: {}", Escaped::path(path), io_reason(err)),
    )
}
