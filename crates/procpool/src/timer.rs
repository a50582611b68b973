//! The time limit of running tasks (`Builder::task_timeout`): one thread
//! per pool that stops each task still running at its deadline. Owns
//! [`Timer`].
//!
//! Who owns what: the pool's `WorkerSpec` owns the [`Timer`] handle; the
//! timer thread owns a reference to the shared state and nothing else.
//! Workers add a watch when a task starts and remove it when the task ends,
//! so the watches are the running tasks, at most a few per worker.
//!
//! Who wakes whom: the timer thread sleeps until the earliest deadline. A
//! new watch wakes it only if it was sleeping without one, because every
//! deadline is its start plus the same limit, taken under the lock, so a
//! new one is never earlier than those already watched. At a deadline the
//! timer calls `Ticket::expire` without its own lock held. Dropping the
//! handle (when the last worker and the pool are gone) wakes the thread to
//! exit.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::kind::mark_owned_by;
use crate::ticket::Ticket;

/// The handle of a pool's timer thread; dropping it ends the thread.
pub(crate) struct Timer {
    core: Arc<Core>,
}

impl std::fmt::Debug for Timer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timer")
            .field("limit", &self.core.limit)
            .finish_non_exhaustive()
    }
}

/// A watch added by [`Timer::watch`], to hand back to [`Timer::unwatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct WatchId(u64);

struct Core {
    limit: Duration,
    state: Mutex<State>,
    wake: Condvar,
}

struct State {
    watches: HashMap<WatchId, Watch>,
    next: u64,
    retired: bool,
}

struct Watch {
    deadline: Instant,
    ticket: Arc<Ticket>,
}

impl Core {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Critical sections only move map entries, so a poisoned lock still
        // holds consistent state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Timer {
    /// Starts the timer thread of pool `pool_id`, whose tasks may run for
    /// `limit`. The thread counts as the pool's own (see `kind::OWNER`): a
    /// timed-out thread task's error callback runs on it, and may drop the
    /// pool's last handle, which must not join the pool from here.
    pub(crate) fn start(limit: Duration, pool_id: usize) -> Result<Timer, Error> {
        let core = Arc::new(Core {
            limit,
            state: Mutex::new(State {
                watches: HashMap::new(),
                next: 0,
                retired: false,
            }),
            wake: Condvar::new(),
        });
        let thread_core = core.clone();
        std::thread::Builder::new()
            .name("procpool-timer".into())
            .spawn(move || {
                mark_owned_by(pool_id);
                run(&thread_core);
            })
            .map_err(|e| Error::Worker {
                message: format!("cannot start the timer thread: {e}"),
            })?;
        Ok(Timer { core })
    }

    /// Watches a task that starts now.
    pub(crate) fn watch(&self, ticket: &Arc<Ticket>) -> WatchId {
        let mut state = self.core.lock();
        let id = WatchId(state.next);
        state.next += 1;
        let was_empty = state.watches.is_empty();
        let watch = Watch {
            deadline: Instant::now() + self.core.limit,
            ticket: ticket.clone(),
        };
        state.watches.insert(id, watch);
        drop(state);
        if was_empty {
            self.core.wake.notify_one();
        }
        id
    }

    /// Stops watching a task that ended.
    pub(crate) fn unwatch(&self, id: WatchId) {
        self.core.lock().watches.remove(&id);
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.core.lock().retired = true;
        self.core.wake.notify_one();
    }
}

/// The timer thread: expire what is due, then sleep until the next deadline.
fn run(core: &Core) {
    let mut state = core.lock();
    while !state.retired {
        let now = Instant::now();
        let due: Vec<WatchId> = state
            .watches
            .iter()
            .filter(|(_, w)| w.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        if !due.is_empty() {
            let expired: Vec<Arc<Ticket>> = due
                .iter()
                .filter_map(|id| state.watches.remove(id))
                .map(|w| w.ticket)
                .collect();
            drop(state);
            for ticket in expired {
                ticket.expire(core.limit);
            }
            state = core.lock();
            continue;
        }
        let next = state.watches.values().map(|w| w.deadline).min();
        state = match next {
            Some(deadline) => {
                let wait = core.wake.wait_timeout(state, deadline - now);
                wait.unwrap_or_else(|e| e.into_inner()).0
            }
            None => core.wake.wait(state).unwrap_or_else(|e| e.into_inner()),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ticket::{Runner, Start, Stop};

    #[test]
    fn a_task_running_past_its_deadline_expires_and_an_ended_one_does_not() {
        let timer = Timer::start(Duration::from_millis(1), 0).unwrap();
        let ended = Ticket::new();
        assert_eq!(ended.start(Runner::Thread), Start::Run);
        let id = timer.watch(&ended);
        timer.unwatch(id);
        assert_eq!(ended.finish(), None);

        let stuck = Ticket::new();
        let (tx, rx) = std::sync::mpsc::channel();
        stuck.on_abandon(move |e| tx.send(e).unwrap());
        assert_eq!(stuck.start(Runner::Thread), Start::Run);
        timer.watch(&stuck);
        let limit = Duration::from_millis(1);
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(30)),
            Ok(Error::TimedOut { limit, pid: None })
        );
        assert_eq!(stuck.finish(), Some(Stop::TimedOut(limit)));
    }
}
