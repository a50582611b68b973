//! Process workers, parent side: stopping a task on purpose. The I/O
//! thread's part in `cancel` and `task_timeout` (see `ticket.rs` for the
//! phases and who signals whom).
//!
//! The order that callers rely on: a stopped task's worker is reaped and a
//! new one started in its slot before the task's result is resolved, so
//! whoever waits on that result finds the old pid gone and the pool at full
//! strength.

use std::sync::Arc;

use super::{BATCH, IoThread, RemoteJob};
use crate::error::Error;
use crate::ticket::{KillWorker, Runner, Stop};

impl IoThread {
    /// The most calls one frame may carry. With a time limit, one: each
    /// task's time is then its own, and stopping it stops nothing else.
    pub(super) fn batch_limit(&self) -> usize {
        if self.spec.timer.is_some() { 1 } else { BATCH }
    }

    /// Marks the tasks of the frame just sent as running on this slot's
    /// worker, and starts their clocks. A task asked to stop while its
    /// frame was being sent was not signalled (see `Ticket::cancel`): its
    /// worker is killed here, which the reply's read sees as the end.
    pub(super) fn mark_started(&mut self, part: &[RemoteJob]) {
        let Some(child) = self.child.as_mut() else {
            return;
        };
        let pid = child.pid();
        let pool: Arc<dyn KillWorker> = self.pool.clone();
        let mut stop_now = false;
        for job in part {
            let runner = Runner::Process {
                pid,
                pool: pool.clone(),
            };
            stop_now |= !job.ticket.start(runner);
            if let Some(timer) = &self.spec.timer {
                self.watches.push(timer.watch(&job.ticket));
            }
        }
        if stop_now {
            child.kill();
        }
    }

    /// Ends the clocks of the frame that was in flight.
    pub(super) fn unwatch(&mut self) {
        if let Some(timer) = &self.spec.timer {
            self.watches.drain(..).for_each(|id| timer.unwatch(id));
        }
    }

    /// Resolves the jobs of a frame that got no reply, with `err`, the
    /// loss of their worker. If a task of theirs was stopped on purpose,
    /// the worker is replaced first; the stopped task resolves to why it
    /// was stopped (a cancelled one quietly, through its dropped job), and
    /// its batch-mates, which ran in the same worker, to `WorkerLost`.
    pub(super) fn fail_unanswered(&mut self, part: Vec<RemoteJob>, err: Error) {
        let stops: Vec<Option<Stop>> = part.iter().map(|job| job.ticket.finish()).collect();
        if stops.iter().all(Option::is_none) {
            part.into_iter()
                .for_each(|job| (job.done)(Err(err.clone())));
            return;
        }
        if self.child.is_none() && self.pool.wants_workers() {
            // If this fails, the next dispatch tries again and reports it.
            let _ = self.respawn();
        }
        // Not `WorkerLost`: the pool was terminated meanwhile (or the worker
        // broke the protocol), which is what every task then resolves to.
        let Error::WorkerLost { pid, .. } = err else {
            for (job, stop) in part.into_iter().zip(stops) {
                match stop {
                    Some(Stop::Cancelled) => drop(job),
                    _ => (job.done)(Err(err.clone())),
                }
            }
            return;
        };
        let collateral = Error::WorkerLost {
            pid,
            status: "stopped with a task of the same batch that was cancelled or timed out".into(),
        };
        for (job, stop) in part.into_iter().zip(stops) {
            match stop {
                Some(Stop::Cancelled) => drop(job),
                Some(Stop::TimedOut(limit)) => (job.done)(Err(Error::TimedOut {
                    limit,
                    pid: Some(pid),
                })),
                None => (job.done)(Err(collateral.clone())),
            }
        }
    }
}
