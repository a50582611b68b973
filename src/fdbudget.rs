//! The descriptor budget: the soft `RLIMIT_NOFILE` raised to the hard
//! limit at start (as Go's runtime does), and what that limit allows
//! shared out before anything is written: so many workers, so many levels
//! of directories the walk holds open.
//!
//! A run that ran out of descriptors part way would fail files at random
//! (or lose a worker's queue connection); so the workers get what they need
//! first, the walk what is left (it reopens directories it had to close,
//! see `walk::tree`), and a limit too small for even one worker is an
//! error at start.

use std::num::NonZeroUsize;

use rustix::process::{Resource, Rlimit};

use crate::cli::WorkerKind;
use crate::exit_codes::{ExitStatus, Fatal};

/// Descriptors outside the workers and the walk: the standard streams,
/// the manager's socket and its connections to the main thread, the
/// signal pipe, the destination root, and the finish stage's directories
/// (it runs once the workers are done, so it shares their part too).
const RESERVED: u64 = 12;
/// A worker thread at its busiest: the cached destination and source
/// directories, the source file and the new file (measured: each thread
/// worker more adds two descriptors to the least limit a run needs).
const THREAD_WORKER: u64 = 4;
/// A worker process's part of the parent's descriptors: its socket and
/// its connections to the queue manager (measured: four to eight more per
/// worker process). It has a table of its own, as large as the parent's.
const PROCESS_WORKER: u64 = 8;
/// The walk at its least: a root's two directories (source and
/// destination, never closed), the level being read, and a child being
/// opened; and the count-ahead's root and one level.
const WALK_MIN: u64 = 8;
/// More open levels than this save nothing measurable: a climb reopens
/// half of them at once.
const MAX_OPEN_LEVELS: u64 = 128;

/// What the limit allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FdBudget {
    /// Workers to start: `-j`, or fewer when the limit holds fewer.
    pub(crate) workers: NonZeroUsize,
    /// Levels below a root the walk keeps open (see `WalkSetup`).
    pub(crate) open_levels: usize,
    /// The soft limit the budget was made for.
    pub(crate) limit: u64,
}

/// Raises the soft limit on open files to the hard limit. Best effort: a
/// limit that cannot be raised is budgeted as it is.
pub(crate) fn raise_limit() {
    let Rlimit { current, maximum } = rustix::process::getrlimit(Resource::Nofile);
    if current != maximum {
        let raised = Rlimit {
            current: maximum,
            maximum,
        };
        let _ = rustix::process::setrlimit(Resource::Nofile, raised);
    }
}

/// The budget for `jobs` workers of `kind` under the current limit.
pub(crate) fn plan(jobs: NonZeroUsize, kind: WorkerKind) -> Result<FdBudget, Fatal> {
    let limit = rustix::process::getrlimit(Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    share(limit, open_now(), jobs, kind)
}

/// Descriptors open in this process now (3 if `/proc` cannot tell).
fn open_now() -> u64 {
    match std::fs::read_dir("/proc/self/fd") {
        // The listing's own descriptor is among the entries.
        Ok(entries) => (entries.count() as u64).saturating_sub(1),
        Err(_) => 3,
    }
}

/// Shares `limit` descriptors, `in_use` of them taken already.
fn share(limit: u64, in_use: u64, jobs: NonZeroUsize, kind: WorkerKind) -> Result<FdBudget, Fatal> {
    let per_worker = match kind {
        WorkerKind::Thread => THREAD_WORKER,
        WorkerKind::Process => PROCESS_WORKER,
    };
    let fixed = in_use.max(3) - 3 + RESERVED + WALK_MIN;
    let fits = limit.saturating_sub(fixed) / per_worker;
    let Some(fits) = NonZeroUsize::new(usize::try_from(fits).unwrap_or(usize::MAX)) else {
        return Err(Fatal::new(
            ExitStatus::Ipc,
            format!(
                "the limit of {limit} open files is too small for one worker: \
                 at least {} are needed (raise it with `ulimit -n`)",
                fixed + per_worker
            ),
        ));
    };
    let workers = jobs.min(fits);
    let left = limit - fixed - per_worker * workers.get() as u64;
    // The walk's minimum holds one level; what is left adds levels, each
    // two descriptors of the walk's and one of the count-ahead's.
    let open_levels = (1 + left / 3).min(MAX_OPEN_LEVELS);
    Ok(FdBudget {
        workers,
        open_levels: open_levels as usize,
        limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(value: usize) -> NonZeroUsize {
        NonZeroUsize::new(value).unwrap()
    }

    #[test]
    fn a_roomy_limit_keeps_every_worker_and_the_most_levels() {
        let budget = share(1 << 20, 3, n(8), WorkerKind::Process).unwrap();
        assert_eq!(budget.workers, n(8));
        assert_eq!(budget.open_levels, MAX_OPEN_LEVELS as usize);
    }

    #[test]
    fn a_small_limit_runs_fewer_workers_and_one_level() {
        let budget = share(32, 3, n(8), WorkerKind::Thread).unwrap();
        // 32 - 12 - 8 = 12 left: three threads of 4, nothing more.
        assert_eq!((budget.workers, budget.open_levels), (n(3), 1));
        let budget = share(32, 3, n(8), WorkerKind::Process).unwrap();
        assert_eq!((budget.workers, budget.open_levels), (n(1), 2));
    }

    #[test]
    fn descriptors_already_open_count_against_the_limit() {
        let budget = share(64, 3, n(8), WorkerKind::Thread).unwrap();
        let crowded = share(64, 23, n(8), WorkerKind::Thread).unwrap();
        assert!(crowded.workers < budget.workers, "{crowded:?} {budget:?}");
    }

    #[test]
    fn a_limit_too_small_for_one_worker_is_an_error() {
        let err = share(24, 3, n(1), WorkerKind::Process).unwrap_err();
        assert_eq!(err.status, ExitStatus::Ipc);
        assert!(err.message.contains("at least 28"), "{}", err.message);
        assert!(share(24, 3, n(1), WorkerKind::Thread).is_ok());
        assert!(share(23, 3, n(1), WorkerKind::Thread).is_err());
    }
}
