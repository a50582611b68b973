//! The descriptor budget: the soft `RLIMIT_NOFILE` raised to the hard
//! limit at start (as Go's runtime does), and what that limit allows
//! shared out before anything is written: so many workers (and so many
//! more the pool may grow to, see `run::grow`), so many levels of
//! directories the walk holds open.
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
/// opened; and the count-ahead's first level: the directory it opens
/// and the one above it on the way down (`walk::count` holds a
/// directory open only for each level more, and reopens beneath the
/// nearest one it holds, or the root).
const WALK_MIN: u64 = 8;
/// A directory reader at its busiest: the directory it reads, its parent
/// (which it keeps open while it opens beneath it, should the walk close
/// it meanwhile), and the two results it may have waiting for the walk
/// (`walk::readers` keeps two requests per reader outstanding).
const READER: u64 = 4;
/// More open levels than this save nothing measurable: a climb reopens
/// half of them at once.
const MAX_OPEN_LEVELS: u64 = 128;

/// What the limit allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FdBudget {
    /// Workers to start: `-j`, or fewer when the limit holds fewer.
    pub(crate) workers: NonZeroUsize,
    /// The most workers the pool may grow to: as asked, or fewer when the
    /// limit holds fewer; never fewer than `workers`. What is left for the
    /// walk is what these leave, so growth never takes the walk's part.
    pub(crate) most_workers: NonZeroUsize,
    /// Levels below a root the walk keeps open (see `WalkSetup`).
    pub(crate) open_levels: usize,
    /// Directory readers: as many as asked, or fewer (none) when the
    /// limit holds fewer.
    pub(crate) readers: usize,
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

/// What the run asks of the budget.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Wanted {
    pub(crate) jobs: NonZeroUsize,
    /// The most workers the pool may grow to (`jobs` where it never
    /// grows).
    pub(crate) most: NonZeroUsize,
    pub(crate) kind: WorkerKind,
    /// Directory readers (see `walk::readers`).
    pub(crate) readers: usize,
}

/// The budget for what is `wanted` under the current limit.
pub(crate) fn plan(wanted: Wanted) -> Result<FdBudget, Fatal> {
    let limit = rustix::process::getrlimit(Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    share(limit, open_now(), wanted)
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
fn share(limit: u64, in_use: u64, wanted: Wanted) -> Result<FdBudget, Fatal> {
    let Wanted {
        jobs,
        most,
        kind,
        readers,
    } = wanted;
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
    let most_workers = most.max(jobs).min(fits);
    let left = limit - fixed - per_worker * most_workers.get() as u64;
    // Readers get at most half of what is left: without them the walk is
    // slower on slow storage, without levels it reopens more.
    let readers = (readers as u64).min(left / 2 / READER);
    let left = left - readers * READER;
    // The walk's minimum holds one level; what is left adds levels, each
    // two descriptors of the walk's and one of the count-ahead's.
    let open_levels = (1 + left / 3).min(MAX_OPEN_LEVELS);
    Ok(FdBudget {
        workers,
        most_workers,
        open_levels: open_levels as usize,
        readers: readers as usize,
        limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(value: usize) -> NonZeroUsize {
        NonZeroUsize::new(value).unwrap()
    }

    fn want(jobs: usize, kind: WorkerKind, readers: usize) -> Wanted {
        Wanted {
            jobs: n(jobs),
            most: n(jobs),
            kind,
            readers,
        }
    }

    #[test]
    fn a_roomy_limit_keeps_every_worker_and_the_most_levels() {
        let budget = share(1 << 20, 3, want(8, WorkerKind::Process, 0)).unwrap();
        assert_eq!(budget.workers, n(8));
        assert_eq!(budget.open_levels, MAX_OPEN_LEVELS as usize);
    }

    #[test]
    fn a_small_limit_runs_fewer_workers_and_one_level() {
        let budget = share(32, 3, want(8, WorkerKind::Thread, 0)).unwrap();
        // 32 - 12 - 8 = 12 left: three threads of 4, nothing more.
        assert_eq!((budget.workers, budget.open_levels), (n(3), 1));
        let budget = share(32, 3, want(8, WorkerKind::Process, 0)).unwrap();
        assert_eq!((budget.workers, budget.open_levels), (n(1), 2));
    }

    #[test]
    fn readers_get_part_of_what_the_workers_leave_and_none_of_little() {
        let roomy = share(1 << 20, 3, want(8, WorkerKind::Thread, 16)).unwrap();
        assert_eq!(roomy.readers, 16);
        // 64 - 12 - 8 - 2 * 4 = 36 left: half of it for readers of 4
        // descriptors each, the rest for levels of 3.
        let some = share(64, 3, want(2, WorkerKind::Thread, 16)).unwrap();
        assert_eq!((some.readers, some.open_levels), (4, 7));
        let tight = share(32, 3, want(8, WorkerKind::Thread, 16)).unwrap();
        assert_eq!((tight.workers, tight.readers), (n(3), 0));
    }

    #[test]
    fn descriptors_already_open_count_against_the_limit() {
        let budget = share(64, 3, want(8, WorkerKind::Thread, 0)).unwrap();
        let crowded = share(64, 23, want(8, WorkerKind::Thread, 0)).unwrap();
        assert!(crowded.workers < budget.workers, "{crowded:?} {budget:?}");
    }

    #[test]
    fn growth_is_budgeted_before_the_walk_and_never_beyond_the_limit() {
        let grows = |limit, most| {
            let wanted = Wanted {
                most: n(most),
                ..want(32, WorkerKind::Thread, 16)
            };
            share(limit, 3, wanted).unwrap()
        };
        let roomy = grows(1 << 20, 128);
        assert_eq!((roomy.workers, roomy.most_workers), (n(32), n(128)));
        // 1024 - 12 - 8 = 1004: 251 threads of 4 fit, so the pool starts
        // with 32 and grows to 251 at most, and nothing is left for
        // readers or more levels.
        let tight = grows(1024, 512);
        assert_eq!((tight.workers, tight.most_workers), (n(32), n(251)));
        assert_eq!((tight.readers, tight.open_levels), (0, 1));
        // Growth's descriptors come out of the walk's part, as the start's.
        let fixed = grows(1024, 32);
        assert!(fixed.readers > 0 && fixed.open_levels > tight.open_levels);
        // A limit that holds fewer than the start holds no growth.
        let small = grows(100, 128);
        assert_eq!((small.workers, small.most_workers), (n(20), n(20)));
    }

    #[test]
    fn a_limit_too_small_for_one_worker_is_an_error() {
        let err = share(24, 3, want(1, WorkerKind::Process, 0)).unwrap_err();
        assert_eq!(err.status, ExitStatus::Ipc);
        assert!(err.message.contains("at least 28"), "{}", err.message);
        assert!(share(24, 3, want(1, WorkerKind::Thread, 0)).is_ok());
        assert!(share(23, 3, want(1, WorkerKind::Thread, 0)).is_err());
    }
}
