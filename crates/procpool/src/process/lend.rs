//! Process workers, parent side: a sequential `apply` that makes its round
//! trip itself, on the caller's thread, instead of through an I/O thread.
//!
//! Through the queue, a round trip passes four hand-offs: caller → I/O
//! thread → worker → I/O thread → caller. Here it passes two: the caller
//! writes the task's frame to an idle worker and reads the reply from the
//! socket itself. Each hand-off left out is one wake-up fewer when a waiter
//! sleeps, and one spinning thread fewer competing for the CPUs when none
//! does: the caller and the worker are the only threads that run.
//!
//! Who owns what: the caller borrows the slot's lane (its `IoThread`: the
//! child and the socket) from `Shared::lend_lane`, only while the slot's
//! I/O thread waits for work with nothing queued, and holds the lane's lock
//! for the round trip. It never starts a worker: a child forked from a
//! caller's thread would be killed by `PR_SET_PDEATHSIG` when that thread
//! exits. So whatever needs one (the worker was found dead, or died during
//! the task) is left in the lane's `handover`, and the lane is given back
//! `Handed`, which wakes the I/O thread to finish it as it would its own
//! frame; the caller then waits for its result as any `apply` does.
//!
//! Only plain pools lend: with `task_timeout`, `maxtasksperchild` or
//! `max_memory_per_child`, what follows a task (a clock, a count, a memory
//! check and a retirement) stays with the I/O thread, and `apply` goes
//! through the queue.

use std::sync::{Arc, Mutex};

use super::{Handover, IoThread, Lane, RemoteJob, lock, stop};
use crate::kind::{Process, WorkerSpec};
use crate::shared::Shared;

/// A process pool's lanes, by worker slot. A slot's lane is added when the
/// slot is made and kept for the pool's life.
#[doc(hidden)]
#[derive(Default)]
pub struct Lanes(Mutex<Vec<Option<Arc<Lane>>>>);

impl std::fmt::Debug for Lanes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lanes").finish_non_exhaustive()
    }
}

impl Lanes {
    /// Makes `io` the lane of `slot` and returns it.
    pub(super) fn add(&self, slot: usize, io: IoThread) -> Arc<Lane> {
        let lane = Arc::new(Mutex::new(io));
        let mut lanes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if lanes.len() <= slot {
            lanes.resize(slot + 1, None);
        }
        lanes[slot] = Some(lane.clone());
        lane
    }

    fn get(&self, slot: usize) -> Option<Arc<Lane>> {
        let lanes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        lanes.get(slot).cloned().flatten()
    }
}

/// Runs `job`, whose caller waits for it at once, on an idle worker from
/// this thread; `Err(job)` if the pool lends no lane now (see the module
/// documentation), and the job is to be queued.
pub(super) fn run_on_lent_lane(
    pool: &Shared<RemoteJob>,
    spec: &WorkerSpec<Process>,
    job: RemoteJob,
) -> Result<(), RemoteJob> {
    let plain =
        spec.timer.is_none() && spec.maxtasksperchild.is_none() && spec.max_memory.is_none();
    if !plain {
        return Err(job);
    }
    let Some(slot) = pool.lend_lane() else {
        return Err(job);
    };
    let Some(lane) = spec.lanes.get(slot) else {
        pool.return_lane(slot, false);
        return Err(job);
    };
    let handed = lock(&lane).run_lent(job);
    pool.return_lane(slot, handed);
    Ok(())
}

impl IoThread {
    /// One round trip of `job` made by the caller that borrowed the lane.
    /// Returns whether it left work for the I/O thread (`handover`).
    fn run_lent(&mut self, job: RemoteJob) -> bool {
        let mut part = vec![job];
        stop::claim_batch(&mut part);
        if part.is_empty() {
            return false;
        }
        if self.child.is_none() {
            self.handover = Some(Handover::Unsent(part));
            return true;
        }
        match self.send(&part, true) {
            Ok(true) => {}
            Ok(false) => {
                self.handover = Some(Handover::Unsent(part));
                return true;
            }
            Err(err) => {
                self.handover = Some(Handover::Unanswered(part, err));
                return true;
            }
        }
        self.mark_started(&part);
        let mut jobs = part.into_iter();
        let delivered = self.deliver_replies(&mut jobs);
        self.unwatch();
        match delivered {
            Ok(()) => false,
            // Nothing ran: the frame goes to a new worker.
            Err(_) if self.take_unread() && !self.pool.is_terminated() => {
                self.handover = Some(Handover::Unsent(jobs.collect()));
                true
            }
            Err(err) => {
                self.handover = Some(Handover::Unanswered(jobs.collect(), err));
                true
            }
        }
    }
}
