//! Process workers, parent side: stopping a task, or retiring its worker,
//! on purpose. The I/O thread's part in `cancel` and `task_timeout` (see
//! `ticket.rs` for the phases and who signals whom), and the
//! `max_memory_per_child` check.
//!
//! The order that callers rely on: a stopped task's worker is reaped and a
//! new one started in its slot before the task's result is resolved, so
//! whoever waits on that result finds the old pid gone and the pool at full
//! strength. A worker over its memory cap is retired after its results are
//! delivered (they stand), like one that reached `maxtasksperchild`, and
//! replaced before its slot takes another task.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{BATCH, IoThread, RemoteJob};
use crate::error::Error;
use crate::kind::Process;
use crate::pool::Builder;
use crate::ticket::{KillWorker, Runner, Start, Stop};

impl IoThread {
    /// The most calls one frame may carry. With a time limit, one: each
    /// task's time is then its own, and stopping it stops nothing else.
    pub(super) fn batch_limit(&self) -> usize {
        if self.spec.timer.is_some() { 1 } else { BATCH }
    }

    /// Marks the tasks of the frame just sent as running on this slot's
    /// worker, and starts their clocks. The last task still wanted of its
    /// batch, cancelled while its frame was being sent, was not signalled
    /// (see `Ticket::cancel`): the worker is killed here, which the reply's
    /// read sees as the end.
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
            stop_now |= job.ticket.start(runner) == Start::Stop;
            if let Some(timer) = &self.spec.timer {
                self.watches.push(timer.watch(&job.ticket));
            }
        }
        if stop_now {
            child.kill();
        }
    }

    /// Whether the worker, between tasks now, holds more resident memory
    /// than `max_memory_per_child` allows. A worker whose size cannot be
    /// read (it just died) is left to the next dispatch to find.
    pub(super) fn over_memory_cap(&self) -> bool {
        match (self.spec.max_memory, &self.child) {
            (Some(cap), Some(child)) => resident_bytes(child.pid()).is_some_and(|rss| rss > cap),
            _ => false,
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

/// Claims a popped batch for sending: a job cancelled while queued is
/// dropped here, unrun, and the others share one count of the tasks still
/// wanted (see `Ticket::cancel`).
pub(super) fn claim_batch(batch: &mut Vec<RemoteJob>) {
    let wanted = Arc::new(AtomicUsize::new(batch.len()));
    batch.retain(|job| {
        let claimed = job.ticket.claim(&wanted);
        if !claimed {
            wanted.fetch_sub(1, Ordering::AcqRel);
        }
        claimed
    });
}

/// The resident set size of process `pid`, from `/proc/PID/statm` (its
/// second field, in pages).
fn resident_bytes(pid: u32) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(page).ok().map(|page| pages * page)
}

impl Builder<Process> {
    /// Retires a worker process, after its task, once its resident memory
    /// (RSS) exceeds `bytes`, and starts a fresh one in its place; the
    /// task's own result stands. This bounds a leak in task code by size,
    /// where [`maxtasksperchild`](Builder::maxtasksperchild) bounds it by
    /// count. Python's `Pool` has no such cap. The size is read after
    /// every frame a worker answers: one task, or a batch of short ones
    /// when the queue is long. Zero is [`Error::InvalidArgument`] at
    /// [`build`](Builder::build).
    ///
    /// ```
    /// fn grow_and_report(mib: usize) -> u32 {
    ///     // Kept for the worker's life, as a leak would be.
    ///     std::mem::forget(vec![1u8; mib << 20]);
    ///     std::process::id()
    /// }
    /// procpool::register!(grow_and_report);
    ///
    /// fn main() -> Result<(), procpool::Error> {
    ///     procpool::init();
    ///     let pool = procpool::Pool::builder().workers(1).max_memory_per_child(256 << 20).build()?;
    ///     let first = pool.apply(grow_and_report, (0,))?;
    ///     assert_eq!(pool.apply(grow_and_report, (300,))?, first, "its result stands");
    ///     assert_ne!(pool.apply(grow_and_report, (0,))?, first, "then it was replaced");
    ///     Ok(())
    /// }
    /// ```
    pub fn max_memory_per_child(self, bytes: u64) -> Self {
        self.set_max_memory(bytes)
    }
}
