//! Where a task is in its life (queued, sent, running, stopped, done), and
//! who may stop it. Owns [`Ticket`], the record that `AsyncResult::cancel`
//! and the pool's timer find a task by.
//!
//! Every job carries a ticket, and the `AsyncResult` it feeds holds the same
//! ticket (a map's result holds one per chunk).
//!
//! Who owns what: the phase changes only under the ticket's lock. The worker
//! that takes a job moves it from `Queued` to `Running` (a process I/O thread
//! through `Claimed` while it sends the frame) and, once the outcome is
//! known, to `Done` or `Stopped`. `cancel` moves `Queued` to `Cancelled`, and
//! `Claimed` or a process's `Running` to `Stopping` (or, for a task that
//! shares its frame with others, to `Discarded`); the timer moves `Running`
//! to `Stopping`.
//!
//! Who stops whom: a task running on a worker process is stopped by SIGKILL
//! to that process, sent by whoever moves the ticket to `Stopping`, while it
//! holds the ticket's lock and then the pool's lock (always in that order),
//! and only if the pool still lists the pid as its live child: the pid
//! cannot have been reaped and reused. The slot's I/O thread then sees its
//! worker gone and, as the ticket says `Stopping`, replaces the worker
//! before it resolves the task. A task claimed but not yet sent is not
//! signalled: its I/O thread finds `Stopping` when the frame is out and kills
//! its own worker. A task sent in one frame with others is not stopped
//! while killing its worker would take tasks that nobody cancelled: its
//! result resolves to `Cancelled` at once and the value it may still
//! compute is discarded; the batch's `wanted` count says when the last task
//! still wanted is cancelled, which then stops the worker. A thread cannot
//! be stopped: a timed-out thread task's
//! result is given up through the `abandon` hook (the timer resolves it
//! now) and the thread's late result finds nobody to take it.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::error::Error;

/// Sends SIGKILL to a worker process of a pool, if the pool still lists it
/// as live (see `Shared::pids`).
pub(crate) trait KillWorker: Send + Sync {
    fn kill_worker(&self, pid: u32);
}

/// What runs a task.
pub(crate) enum Runner {
    /// A thread of this process; it cannot be stopped.
    Thread,
    /// A worker process of `pool`.
    Process { pid: u32, pool: Arc<dyn KillWorker> },
}

/// What [`Ticket::start`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// Run the task.
    Run,
    /// Run it (it is in a frame already), but nobody wants its value.
    Discarded,
    /// Do not run it: it was cancelled while queued.
    Skip,
    /// It was asked to stop while its frame was being sent.
    Stop,
}

/// Why a running task was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    Cancelled,
    TimedOut(Duration),
}

/// What [`Ticket::cancel`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cancel {
    /// The task was queued; it will never run.
    Dequeued,
    /// The task was sent to a worker process together with others, which
    /// stopping the worker would take with it: it may still run, but its
    /// value is discarded, and the result is to resolve now.
    Discarded,
    /// The task was sent to a worker process or runs there; the worker is
    /// being stopped and replaced, and its I/O thread resolves the task.
    Stopping,
    /// Too late: it runs on a thread, was stopped already, or is done.
    TooLate,
}

enum Phase {
    Queued,
    /// Taken into a frame by a process I/O thread, not sent yet.
    Claimed,
    Running(Runner),
    Stopping(Stop),
    Cancelled,
    /// Cancelled in a frame shared with other tasks (see `Cancel`).
    Discarded,
    Stopped(Stop),
    Done,
}

type Abandon = Box<dyn FnOnce(Error) + Send>;

struct State {
    phase: Phase,
    /// For a task a process I/O thread took: how many tasks of its batch
    /// are not cancelled yet. When the last of them is cancelled, stopping
    /// the worker stops nothing that anyone still wants.
    wanted: Option<Arc<AtomicUsize>>,
    /// Resolves a thread task's result at once when it times out.
    abandon: Option<Abandon>,
}

/// A task's phase and stop hooks (see the module documentation).
pub(crate) struct Ticket {
    state: Mutex<State>,
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let phase = match self.lock().phase {
            Phase::Queued => "queued",
            Phase::Claimed => "claimed",
            Phase::Running(_) => "running",
            Phase::Stopping(_) => "stopping",
            Phase::Cancelled => "cancelled",
            Phase::Discarded => "discarded",
            Phase::Stopped(_) => "stopped",
            Phase::Done => "done",
        };
        f.debug_struct("Ticket").field("phase", &phase).finish()
    }
}

impl Ticket {
    pub(crate) fn new() -> Arc<Ticket> {
        Arc::new(Ticket {
            state: Mutex::new(State {
                phase: Phase::Queued,
                wanted: None,
                abandon: None,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section is a few moves and a kill(2), which cannot
        // panic halfway, so a poisoned lock still holds a consistent phase.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A process I/O thread takes the job into a batch, whose tasks still
    /// wanted `wanted` counts. `false`: it was cancelled while queued, and
    /// the job is to be dropped unrun.
    pub(crate) fn claim(&self, wanted: &Arc<AtomicUsize>) -> bool {
        let mut state = self.lock();
        match state.phase {
            Phase::Queued => {
                state.phase = Phase::Claimed;
                state.wanted = Some(wanted.clone());
                true
            }
            _ => false,
        }
    }

    /// The task starts on `runner`; see [`Start`] for what the caller is
    /// to do.
    pub(crate) fn start(&self, runner: Runner) -> Start {
        let mut state = self.lock();
        match state.phase {
            // A process task starts again on a new worker when the one it
            // was sent to died before it took the frame (nothing ran).
            Phase::Queued | Phase::Claimed | Phase::Running(Runner::Process { .. }) => {
                state.phase = Phase::Running(runner);
                Start::Run
            }
            Phase::Discarded => Start::Discarded,
            Phase::Stopping(_) => Start::Stop,
            _ => Start::Skip,
        }
    }

    /// The task's outcome is known (or its worker is gone). Returns why it
    /// was stopped (or discarded), if it was; the task is then resolved for
    /// that reason.
    pub(crate) fn finish(&self) -> Option<Stop> {
        let mut state = self.lock();
        let stop = match state.phase {
            Phase::Stopping(stop) => Some(stop),
            Phase::Discarded => Some(Stop::Cancelled),
            _ => None,
        };
        state.phase = stop.map_or(Phase::Done, Phase::Stopped);
        state.abandon = None;
        stop
    }

    /// Cancels the task: see [`Cancel`] for what happens in each phase.
    pub(crate) fn cancel(&self) -> Cancel {
        let mut state = self.lock();
        match &state.phase {
            Phase::Queued => {
                state.phase = Phase::Cancelled;
                Cancel::Dequeued
            }
            Phase::Claimed | Phase::Running(Runner::Process { .. }) => {
                let last = state
                    .wanted
                    .as_ref()
                    .is_none_or(|wanted| wanted.fetch_sub(1, Ordering::AcqRel) == 1);
                if !last {
                    state.phase = Phase::Discarded;
                    return Cancel::Discarded;
                }
                // The last task of its batch that anyone wants. Signalled
                // before the lock is released: until then the I/O thread
                // cannot mark the task done and move on to another task on
                // the same worker. A claimed task is not sent yet: its I/O
                // thread kills the worker once it is.
                if let Phase::Running(Runner::Process { pid, pool }) = &state.phase {
                    pool.kill_worker(*pid);
                }
                state.phase = Phase::Stopping(Stop::Cancelled);
                Cancel::Stopping
            }
            Phase::Running(Runner::Thread)
            | Phase::Stopping(_)
            | Phase::Cancelled
            | Phase::Discarded
            | Phase::Stopped(_)
            | Phase::Done => Cancel::TooLate,
        }
    }

    /// The task's time (`limit`) ran out: a process worker is killed (its
    /// I/O thread resolves the task), a thread task is resolved now.
    pub(crate) fn expire(&self, limit: Duration) {
        let mut state = self.lock();
        let abandon = match &state.phase {
            Phase::Running(Runner::Process { pid, pool, .. }) => {
                pool.kill_worker(*pid);
                None
            }
            Phase::Running(Runner::Thread) => state.abandon.take(),
            _ => return,
        };
        state.phase = Phase::Stopping(Stop::TimedOut(limit));
        // The hook resolves the result and may run its error callback,
        // which may call into the pool: never under the lock.
        drop(state);
        if let Some(abandon) = abandon {
            abandon(Error::TimedOut { limit, pid: None });
        }
    }

    /// Sets how a thread task's result is resolved if it times out.
    pub(crate) fn on_abandon(&self, abandon: impl FnOnce(Error) + Send + 'static) {
        self.lock().abandon = Some(Box::new(abandon));
    }

    /// Whether the task was cancelled (queued, or stopped for it).
    pub(crate) fn is_cancelled(&self) -> bool {
        matches!(
            self.lock().phase,
            Phase::Cancelled
                | Phase::Discarded
                | Phase::Stopping(Stop::Cancelled)
                | Phase::Stopped(Stop::Cancelled)
        )
    }

    /// What a job dropped unrun resolves to: `Cancelled` if it was
    /// cancelled, `Terminated` otherwise (refused, or cancelled by
    /// `terminate()`).
    pub(crate) fn dropped_error(&self) -> Error {
        if self.is_cancelled() {
            Error::Cancelled
        } else {
            Error::Terminated
        }
    }
}

/// A completion (a result's resolver, a chunk's) that a ticket can resolve
/// early, when a thread task times out, while the thread still runs it.
pub(crate) trait Abandonable: Send + 'static {
    fn abandon(self, err: Error);
}

/// A completion shared between the thread that runs its task and the
/// ticket's `abandon` hook: whichever takes it first resolves the result,
/// and the other finds it gone. This is how a thread's late result is
/// discarded.
///
/// The job owns the completion; the hook only refers to it (`Weak`), so a
/// job dropped unrun still drops its completion, which resolves the result
/// (to `Terminated` or `Cancelled`), though the ticket outlives the job.
pub(crate) struct Held<D>(Arc<Mutex<Option<D>>>);

impl<D: Abandonable> Held<D> {
    /// Holds `done` and hands `ticket` the hook that abandons it.
    pub(crate) fn new(done: D, ticket: &Ticket) -> Held<D> {
        let cell = Arc::new(Mutex::new(Some(done)));
        let hook = Arc::downgrade(&cell);
        ticket.on_abandon(move |err| {
            if let Some(done) = hook.upgrade().and_then(|cell| take(&cell)) {
                done.abandon(err);
            }
        });
        Held(cell)
    }

    /// The completion, unless the ticket abandoned it.
    pub(crate) fn take(self) -> Option<D> {
        take(&self.0)
    }
}

fn take<D>(cell: &Mutex<Option<D>>) -> Option<D> {
    cell.lock().unwrap_or_else(|e| e.into_inner()).take()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Records the pids it was asked to kill.
    #[derive(Default)]
    struct Killed(AtomicU32);

    impl KillWorker for Killed {
        fn kill_worker(&self, pid: u32) {
            self.0.store(pid, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_queued_task_cancels_for_good() {
        let ticket = Ticket::new();
        assert_eq!(ticket.cancel(), Cancel::Dequeued);
        assert!(!ticket.claim(&Arc::new(AtomicUsize::new(1))));
        assert_eq!(ticket.start(Runner::Thread), Start::Skip);
        assert_eq!(ticket.cancel(), Cancel::TooLate);
        assert_eq!(ticket.dropped_error(), Error::Cancelled);
    }

    #[test]
    fn a_running_process_task_is_killed_and_reports_why() {
        let killed = Arc::new(Killed::default());
        let ticket = Ticket::new();
        assert!(ticket.claim(&Arc::new(AtomicUsize::new(1))));
        let pool: Arc<dyn KillWorker> = killed.clone();
        let runner = Runner::Process { pid: 77, pool };
        assert_eq!(ticket.start(runner), Start::Run);
        assert_eq!(ticket.cancel(), Cancel::Stopping);
        assert_eq!(killed.0.load(Ordering::SeqCst), 77);
        assert_eq!(ticket.cancel(), Cancel::TooLate);
        assert_eq!(ticket.finish(), Some(Stop::Cancelled));
        assert_eq!(ticket.dropped_error(), Error::Cancelled);
    }

    #[test]
    fn a_claimed_task_is_left_to_its_io_thread() {
        let ticket = Ticket::new();
        assert!(ticket.claim(&Arc::new(AtomicUsize::new(1))));
        assert_eq!(ticket.cancel(), Cancel::Stopping);
        let pool: Arc<dyn KillWorker> = Arc::new(Killed::default());
        let runner = Runner::Process { pid: 5, pool };
        assert_eq!(ticket.start(runner), Start::Stop);
        assert_eq!(ticket.finish(), Some(Stop::Cancelled));
    }

    #[test]
    fn a_batch_stops_when_its_last_wanted_task_is_cancelled() {
        let killed = Arc::new(Killed::default());
        let wanted = Arc::new(AtomicUsize::new(3));
        let tickets = [Ticket::new(), Ticket::new(), Ticket::new()];
        assert!(tickets.iter().all(|t| t.claim(&wanted)));
        // Cancelled before its frame is sent, and after.
        assert_eq!(tickets[2].cancel(), Cancel::Discarded);
        for ticket in &tickets {
            let pool: Arc<dyn KillWorker> = killed.clone();
            let started = ticket.start(Runner::Process { pid: 9, pool });
            assert_ne!(started, Start::Stop);
        }
        assert_eq!(tickets[1].cancel(), Cancel::Discarded);
        assert_eq!(killed.0.load(Ordering::SeqCst), 0, "one task is wanted");
        assert_eq!(tickets[1].cancel(), Cancel::TooLate);
        assert_eq!(tickets[0].cancel(), Cancel::Stopping);
        assert_eq!(killed.0.load(Ordering::SeqCst), 9, "nothing wanted is left");
        assert!(tickets.iter().all(|t| t.finish() == Some(Stop::Cancelled)));
        assert!(
            tickets
                .iter()
                .all(|t| t.dropped_error() == Error::Cancelled)
        );
    }

    #[test]
    fn the_last_wanted_task_cancelled_before_its_frame_is_sent_stops_it() {
        let wanted = Arc::new(AtomicUsize::new(2));
        let tickets = [Ticket::new(), Ticket::new()];
        assert!(tickets.iter().all(|t| t.claim(&wanted)));
        assert_eq!(tickets[0].cancel(), Cancel::Discarded);
        assert_eq!(tickets[1].cancel(), Cancel::Stopping);
        let pool: Arc<dyn KillWorker> = Arc::new(Killed::default());
        let runner = |pool: &Arc<dyn KillWorker>| Runner::Process {
            pid: 4,
            pool: pool.clone(),
        };
        assert_eq!(tickets[0].start(runner(&pool)), Start::Discarded);
        assert_eq!(tickets[1].start(runner(&pool)), Start::Stop);
    }

    #[test]
    fn a_thread_task_cannot_be_cancelled_but_times_out_through_its_hook() {
        let ticket = Ticket::new();
        let (tx, rx) = std::sync::mpsc::channel();
        ticket.on_abandon(move |e| tx.send(e).unwrap());
        assert_eq!(ticket.start(Runner::Thread), Start::Run);
        assert_eq!(ticket.cancel(), Cancel::TooLate);
        ticket.expire(Duration::from_secs(2));
        let limit = Duration::from_secs(2);
        assert_eq!(rx.try_recv(), Ok(Error::TimedOut { limit, pid: None }));
        assert_eq!(ticket.finish(), Some(Stop::TimedOut(limit)));
        assert_eq!(ticket.dropped_error(), Error::Terminated);
    }

    #[test]
    fn expiry_after_the_task_finished_changes_nothing() {
        let ticket = Ticket::new();
        assert_eq!(ticket.start(Runner::Thread), Start::Run);
        assert_eq!(ticket.finish(), None);
        ticket.expire(Duration::from_secs(1));
        assert_eq!(ticket.cancel(), Cancel::TooLate);
        assert_eq!(ticket.dropped_error(), Error::Terminated);
    }
}
