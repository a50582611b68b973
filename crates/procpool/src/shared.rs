//! The state both worker kinds share: the queue of jobs and the pool's
//! life cycle (running → closed or terminated).
//!
//! Who owns what: the pool handle pushes jobs; the worker threads (thread
//! pools) or the per-worker I/O threads (process pools) pop them. Every job
//! owns the resolvers of the results it feeds, so a job that is dropped
//! instead of run resolves them to `Terminated` (see `result::Resolver`).
//!
//! Who wakes whom: a push wakes one idle popper (`work`), and only when one
//! is actually waiting and none is spinning, so a steady stream of
//! submissions costs no futex call per job. A popper that finds the queue
//! empty first spins for a few microseconds (`crate::spin`) on `queued`,
//! so the next job of a caller that waits for each result needs no
//! wake-up. `close`, `terminate` and a shrinking `resize` wake every
//! popper. A popper that exits, and a process worker that becomes ready or
//! fails to start, wake `changed`, which `join` and the process pool's
//! start-up (and growth) wait on.
//!
//! The number of workers can change while the pool runs (`resize`):
//! `target` is how many there should be and `seats` how many hold a place.
//! A worker takes a seat when it is started and gives it up only in
//! `pop_batch`, between tasks, when there are more seats than the target,
//! so a shrinking pool loses no queued or running task. A thread worker
//! that hands over to a fresh one (after `maxtasksperchild`) hands over its
//! seat with it.
//!
//! Lanes (process pools only): each worker slot's I/O state (its child and
//! the parent's end of the socket) is a lane, held by one thread at a time,
//! as `lanes` records under the lock: the slot's I/O thread (`Busy`), or,
//! while that thread waits for work (`Free`), a caller of `apply` that
//! borrows it to make its round trip itself (`Lent`, see
//! `process/lend.rs`). A lane is lent only while the pool runs and nothing
//! is queued, and its I/O thread takes no job until the lane is back: it
//! waits on `lent`, woken by `return_lane`, and passes on to another idle
//! popper a wake-up that a push may have meant for it. A borrower that
//! leaves work for the I/O thread (a failed round trip, a worker to
//! replace) gives the lane back `Handed`, and wakes it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use crate::error::Error;
use crate::spin::spin_until;
use crate::ticket::KillWorker;

/// Who holds a process worker's lane (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LaneUse {
    /// Its I/O thread: starting the worker, dispatching, tidying up, or
    /// leaving.
    Busy,
    /// Nobody: its I/O thread waits for work in `pop_batch`.
    Free,
    /// A caller of `apply`, making its own round trip.
    Lent,
    /// Given back by a caller with work for the I/O thread.
    Handed,
}

/// Where the pool is in Python's life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunState {
    Running,
    /// `close()`: no new submissions; workers finish the queue and exit.
    Closed,
    /// `terminate()`: queued jobs were dropped; workers stop now.
    Terminated,
}

pub(crate) struct Inner<J> {
    pub(crate) jobs: VecDeque<J>,
    pub(crate) state: RunState,
    /// Poppers blocked in `work.wait`; a push only notifies when this is > 0.
    idle: usize,
    /// Poppers spinning before they park (see `pop_batch`). Each takes a
    /// job it sees, or looks again under the lock before parking, so a
    /// push that finds one spinning need not wake a parked one.
    spinning: usize,
    /// Idle poppers already notified but not yet running. Without it, every
    /// push during a wake-up's latency would notify the same sleeper again,
    /// one futex call per job.
    waking: usize,
    /// Worker threads (or I/O threads) that have not exited yet.
    pub(crate) live: usize,
    /// How many workers the pool should have: `workers()`.
    target: usize,
    /// Workers that hold a place in the pool; more than `target` while a
    /// shrink waits for busy workers to finish their task.
    seats: usize,
    /// Pids of live worker processes, indexed by worker slot. A slot is
    /// one I/O thread's for its whole life; growing adds slots. An I/O thread
    /// clears its entry under this lock *before* it reaps the child, and
    /// `terminate` signals pids under the same lock, so a pid is never
    /// signalled after it could have been reused.
    pub(crate) pids: Vec<Option<u32>>,
    /// Who holds each worker slot's lane, indexed as `pids`; empty for a
    /// thread pool.
    pub(crate) lanes: Vec<LaneUse>,
    /// I/O threads parked on `lent` until their lane is given back.
    lent_parked: usize,
    /// Process workers that finished their first start-up, those that
    /// failed it, and the latest failure.
    pub(crate) started: usize,
    pub(crate) start_failed: usize,
    /// Live `imap` iterators. They may still submit after `close()`, so
    /// poppers wait for them instead of exiting on an empty closed queue.
    leases: usize,
    pub(crate) start_error: Option<Error>,
}

impl<J> Inner<J> {
    /// Gives back the seat of a worker that could not start. If that leaves
    /// fewer seats than the target, the pool has fewer workers than asked
    /// for, and `workers()` says so.
    pub(crate) fn unseat_failed(&mut self) {
        self.seats -= 1;
        self.target = self.target.min(self.seats);
    }
}

/// The queue and life cycle of one pool (internal).
#[doc(hidden)]
pub struct Shared<J> {
    inner: Mutex<Inner<J>>,
    work: Condvar,
    pub(crate) changed: Condvar,
    /// I/O threads whose lane is lent wait here for it (`return_lane`).
    lent: Condvar,
    /// Mirrors `state == Terminated` for lock-free checks between jobs.
    terminated: AtomicBool,
    /// Mirrors `jobs.len()` (written under the lock), for a popper that
    /// spins before it parks (see `crate::spin`).
    queued: AtomicUsize,
}

impl<J> std::fmt::Debug for Shared<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("state", &self.lock().state)
            .finish_non_exhaustive()
    }
}

impl<J> Shared<J> {
    /// A pool of `workers` seats; the kind starts the workers that take
    /// them.
    pub(crate) fn new(workers: usize) -> Self {
        Shared {
            inner: Mutex::new(Inner {
                jobs: VecDeque::new(),
                state: RunState::Running,
                idle: 0,
                spinning: 0,
                waking: 0,
                live: 0,
                target: workers,
                seats: workers,
                pids: Vec::new(),
                lanes: Vec::new(),
                lent_parked: 0,
                started: 0,
                start_failed: 0,
                leases: 0,
                start_error: None,
            }),
            work: Condvar::new(),
            changed: Condvar::new(),
            lent: Condvar::new(),
            terminated: AtomicBool::new(false),
            queued: AtomicUsize::new(0),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner<J>> {
        // Jobs run outside the lock and never panic while holding it, so a
        // poisoned lock can only come from a bug in this module; the data is
        // still consistent because every critical section is a few moves.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn is_terminated(&self) -> bool {
        self.terminated.load(Ordering::Acquire)
    }

    /// Whether the pool may still give its workers work: it runs, or it
    /// was closed with jobs still queued or an `imap` still feeding. A
    /// worker slot that lost its worker refills only then.
    pub(crate) fn wants_workers(&self) -> bool {
        let inner = self.lock();
        match inner.state {
            RunState::Running => true,
            RunState::Closed => !inner.jobs.is_empty() || inner.leases > 0,
            RunState::Terminated => false,
        }
    }

    /// Queues jobs. `after_close` lets an `imap` that started before
    /// `close()` finish feeding its input, as Python's (eager) imap would.
    pub(crate) fn push_all(
        &self,
        jobs: impl IntoIterator<Item = J>,
        after_close: bool,
    ) -> Result<(), Error> {
        let mut inner = self.lock();
        match inner.state {
            RunState::Running => {}
            RunState::Closed if after_close => {}
            _ => return Err(Error::Closed),
        }
        inner.jobs.extend(jobs);
        self.queued.store(inner.jobs.len(), Ordering::Release);
        let wake = inner
            .idle
            .saturating_sub(inner.waking)
            .min(inner.jobs.len().saturating_sub(inner.spinning));
        inner.waking += wake;
        drop(inner);
        for _ in 0..wake {
            self.work.notify_one();
        }
        Ok(())
    }

    /// Takes up to `max` jobs into `out`, but no more than a fair share of the
    /// queue (`ceil(len / workers)`), so that one popper does not hoard work
    /// the others could run. Blocks while the queue is empty and the pool
    /// runs. Returns `false` when the popper should exit: the pool was
    /// terminated, or it was closed and the queue is drained, or it shrank
    /// and this popper's seat was given up.
    ///
    /// A process I/O thread names its `lane`: it frees the lane while it
    /// waits, takes no job while the lane is lent, and returns `true` with
    /// no job when the lane was handed back with work for it.
    pub(crate) fn pop_batch(&self, lane: Option<usize>, max: usize, out: &mut Vec<J>) -> bool {
        let mut inner = self.lock();
        if let Some(l) = lane {
            inner.lanes[l] = LaneUse::Free;
        }
        let mut spun = false;
        loop {
            let lent = lane.is_some_and(|l| inner.lanes[l] == LaneUse::Lent);
            match inner.state {
                RunState::Terminated => return Self::leave(&mut inner, lane),
                _ if inner.seats > inner.target => {
                    inner.seats -= 1;
                    return Self::leave(&mut inner, lane);
                }
                _ if lane.is_some_and(|l| inner.lanes[l] == LaneUse::Handed) => {
                    Self::leave(&mut inner, lane);
                    return true;
                }
                _ if !inner.jobs.is_empty() && !lent => break,
                RunState::Closed if inner.leases == 0 && inner.jobs.is_empty() => {
                    return Self::leave(&mut inner, lane);
                }
                _ if lent => inner = self.wait_for_lane(inner),
                // The next job of a caller that waits for each result
                // comes microseconds after the last one's: look for it
                // before parking, so its push need not wake anyone.
                RunState::Closed | RunState::Running if !spun => {
                    inner.spinning += 1;
                    drop(inner);
                    spin_until(|| self.queued.load(Ordering::Acquire) > 0 || self.is_terminated());
                    spun = true;
                    inner = self.lock();
                    inner.spinning -= 1;
                }
                RunState::Closed | RunState::Running => {
                    inner.idle += 1;
                    inner = self.work.wait(inner).unwrap_or_else(|e| e.into_inner());
                    inner.idle -= 1;
                    inner.waking = inner.waking.saturating_sub(1);
                }
            }
        }
        let fair = inner.jobs.len().div_ceil(inner.target.max(1));
        let take = fair.clamp(1, max.max(1));
        out.extend(inner.jobs.drain(..take));
        self.queued.store(inner.jobs.len(), Ordering::Release);
        Self::leave(&mut inner, lane);
        true
    }

    /// The popper stops waiting: its lane, unless lent, is its I/O
    /// thread's again (a lent one comes back through `return_lane`, and the
    /// I/O thread waits for its lock). Returns `false`, the popper's exit.
    fn leave(inner: &mut Inner<J>, lane: Option<usize>) -> bool {
        if let Some(l) = lane
            && inner.lanes[l] != LaneUse::Lent
        {
            inner.lanes[l] = LaneUse::Busy;
        }
        false
    }

    /// Parks an I/O thread whose lane is lent until the lane is given
    /// back. A push may have woken this thread, or counted it as spinning,
    /// for jobs it cannot take now: the wake-up goes to another idle
    /// popper, if there is one, so those jobs do not wait for the lane.
    fn wait_for_lane<'a>(&self, mut inner: MutexGuard<'a, Inner<J>>) -> MutexGuard<'a, Inner<J>> {
        if !inner.jobs.is_empty() && inner.idle > inner.waking {
            inner.waking += 1;
            self.work.notify_one();
        }
        inner.lent_parked += 1;
        inner = self.lent.wait(inner).unwrap_or_else(|e| e.into_inner());
        inner.lent_parked -= 1;
        inner
    }

    /// Lends a free lane whose worker is alive to a caller of `apply`, and
    /// returns its slot: only while the pool runs, nothing is queued (the
    /// I/O threads take queued jobs first) and no surplus worker waits to
    /// leave.
    pub(crate) fn lend_lane(&self) -> Option<usize> {
        let mut inner = self.lock();
        if inner.state != RunState::Running || !inner.jobs.is_empty() || inner.seats > inner.target
        {
            return None;
        }
        let inner = &mut *inner;
        let slot = inner
            .lanes
            .iter()
            .zip(&inner.pids)
            .position(|(lane, pid)| *lane == LaneUse::Free && pid.is_some())?;
        inner.lanes[slot] = LaneUse::Lent;
        Some(slot)
    }

    /// Takes back a lent lane; `handed`: with work for its I/O thread,
    /// which is woken for it wherever it waits.
    pub(crate) fn return_lane(&self, slot: usize, handed: bool) {
        let mut inner = self.lock();
        inner.lanes[slot] = if handed {
            LaneUse::Handed
        } else {
            LaneUse::Free
        };
        let wake_lent = inner.lent_parked > 0;
        let wake_idle = handed && inner.idle > 0;
        drop(inner);
        if wake_lent {
            self.lent.notify_all();
        }
        if wake_idle {
            self.work.notify_all();
        }
    }

    /// How many workers the pool should have.
    pub(crate) fn target(&self) -> usize {
        self.lock().target
    }

    /// Sets the number of workers to `workers` and returns how many new
    /// ones the caller must start (each has its seat already). Surplus
    /// workers leave in `pop_batch`: idle ones are woken for it now, busy
    /// ones after their task. Refused once the pool is closed or terminated.
    pub(crate) fn resize(&self, workers: usize) -> Result<usize, Error> {
        let mut inner = self.lock();
        if inner.state != RunState::Running {
            return Err(Error::Closed);
        }
        let shrinks = workers < inner.target;
        inner.target = workers;
        let grow = workers.saturating_sub(inner.seats);
        inner.seats += grow;
        drop(inner);
        if shrinks {
            self.work.notify_all();
        }
        Ok(grow)
    }

    /// Moves to `Closed` (if running) and wakes every popper so idle ones
    /// can see that the queue will not grow again.
    pub(crate) fn close(&self) {
        let mut inner = self.lock();
        if inner.state == RunState::Running {
            inner.state = RunState::Closed;
        }
        drop(inner);
        self.work.notify_all();
    }

    /// Moves to `Terminated`, takes the queued jobs out (the caller drops
    /// them outside the lock, which resolves their results to
    /// `Terminated`), and runs `signal` on the live pids under the lock.
    pub(crate) fn terminate(&self, signal: impl Fn(u32)) -> VecDeque<J> {
        let mut inner = self.lock();
        inner.state = RunState::Terminated;
        self.terminated.store(true, Ordering::Release);
        let dropped = std::mem::take(&mut inner.jobs);
        self.queued.store(0, Ordering::Release);
        inner.pids.iter().flatten().for_each(|&pid| signal(pid));
        drop(inner);
        self.work.notify_all();
        self.changed.notify_all();
        dropped
    }

    /// Keeps poppers alive past `close()` until the lease is dropped.
    pub(crate) fn lease(&self) -> Lease<'_, J> {
        self.lock().leases += 1;
        Lease(self)
    }

    /// Records that a worker thread started; paired with [`Shared::exited`].
    pub(crate) fn entered(&self) {
        self.lock().live += 1;
    }

    pub(crate) fn exited(&self) {
        self.lock().live -= 1;
        self.changed.notify_all();
    }

    /// Blocks until `done` holds for the shared state.
    pub(crate) fn wait_until(
        &self,
        mut done: impl FnMut(&Inner<J>) -> bool,
    ) -> MutexGuard<'_, Inner<J>> {
        let mut inner = self.lock();
        while !done(&inner) {
            inner = self.changed.wait(inner).unwrap_or_else(|e| e.into_inner());
        }
        inner
    }
}

impl<J: Send> KillWorker for Shared<J> {
    /// SIGKILLs `pid` if it is still a live worker of this pool: the check
    /// and the signal happen under the lock that reaping takes first, so
    /// the pid cannot have been reaped and reused in between.
    fn kill_worker(&self, pid: u32) {
        let inner = self.lock();
        if inner.pids.contains(&Some(pid)) {
            // SAFETY: kill(2) has no memory-safety preconditions; the pid is
            // an unreaped child of this process (see above).
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
    }
}

/// An `imap` iterator's claim on the workers (see [`Shared::lease`]).
pub(crate) struct Lease<'a, J>(&'a Shared<J>);

impl<J> Drop for Lease<'_, J> {
    fn drop(&mut self) {
        self.0.lock().leases -= 1;
        // Idle poppers of a closed pool re-check whether they may exit.
        self.0.work.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pop_takes_a_fair_share_and_stops_after_close() {
        let shared = Shared::<u32>::new(2);
        shared.push_all(0..10, false).unwrap();
        let mut out = Vec::new();
        assert!(shared.pop_batch(None, 64, &mut out));
        assert_eq!(out, (0..5).collect::<Vec<_>>());
        out.clear();
        assert!(shared.pop_batch(None, 2, &mut out));
        assert_eq!(out, vec![5, 6]);
        shared.close();
        assert_eq!(shared.push_all([1], false), Err(Error::Closed));
        shared.push_all([99], true).unwrap();
        out.clear();
        while shared.pop_batch(None, 64, &mut out) {}
        assert_eq!(out, vec![7, 8, 9, 99]);
    }

    #[test]
    fn terminate_hands_back_the_queue_and_signals_live_pids() {
        let shared = Shared::<u32>::new(2);
        shared.lock().pids = vec![None, Some(4242)];
        shared.push_all([1, 2], false).unwrap();
        let signalled = std::cell::RefCell::new(Vec::new());
        let dropped = shared.terminate(|pid| signalled.borrow_mut().push(pid));
        assert_eq!(dropped, VecDeque::from(vec![1, 2]));
        assert_eq!(signalled.into_inner(), vec![4242]);
        assert!(shared.is_terminated());
        assert!(!shared.pop_batch(None, 8, &mut Vec::new()));
    }

    #[test]
    fn a_blocked_popper_wakes_on_push() {
        let shared = std::sync::Arc::new(Shared::<u32>::new(1));
        let popper = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                let mut out = Vec::new();
                shared.pop_batch(None, 8, &mut out);
                out
            })
        };
        // Wait until the popper is parked, so the push must wake it.
        while shared.lock().idle == 0 {
            std::thread::yield_now();
        }
        shared.push_all([7], false).unwrap();
        assert_eq!(popper.join().unwrap(), vec![7]);
    }

    #[test]
    fn a_shrink_unseats_poppers_between_jobs_and_keeps_the_queue() {
        let shared = Shared::<u32>::new(3);
        shared.push_all(0..4, false).unwrap();
        assert_eq!(shared.resize(1), Ok(0));
        assert_eq!(shared.target(), 1);
        // Two of the three seats are surplus: their poppers leave, taking
        // nothing; the third takes the queue.
        let mut out = Vec::new();
        assert!(!shared.pop_batch(None, 8, &mut out));
        assert!(!shared.pop_batch(None, 8, &mut out));
        assert!(shared.pop_batch(None, 8, &mut out));
        assert_eq!(out, vec![0, 1, 2, 3]);
        assert_eq!(shared.resize(4), Ok(3), "three new workers to start");
        assert_eq!(
            shared.resize(2),
            Ok(0),
            "seats above the target leave later"
        );
        shared.close();
        assert_eq!(shared.resize(3), Err(Error::Closed));
    }
}
