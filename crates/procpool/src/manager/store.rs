//! The queue itself: a deque behind one mutex with two condition variables,
//! owned by the manager and used directly by local handles and by the
//! server's connection threads on behalf of remote handles. Owns the items
//! and the wake-ups between putters and getters; calls only the protocol's
//! [`Wait`].

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::protocol::Wait;

/// How often a server thread blocked for a remote client checks that the
/// client is still connected. Only bounds how long a killed client's thread
/// lingers; correctness does not depend on it (see [`Shared::get_many`]).
const ABANDON_POLL: Duration = Duration::from_millis(500);

/// Why an operation did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// A non-blocking put found the queue full, or a get found it empty.
    WouldBlock,
    /// The deadline passed first.
    TimedOut,
    /// Closed: puts are refused, and gets found nothing left to drain.
    Closed,
    /// The manager dropped the queue.
    Gone,
    /// The remote client this server thread waited for has disconnected.
    Abandoned,
}

/// Everything the mutex protects.
#[derive(Debug)]
struct State<T> {
    items: VecDeque<T>,
    /// Set once by `close`; never cleared.
    closed: bool,
    /// Set once when the manager drops; every operation fails afterwards.
    gone: bool,
    /// Threads parked on `not_empty` / `not_full`. Notifiers skip the futex
    /// wake syscall when these are zero; both are only changed with the lock
    /// held around the wait, so a notifier that reads zero under the lock
    /// cannot miss a waiter.
    getters_waiting: usize,
    putters_waiting: usize,
}

/// A queue of `T`. Invariants, all under `state`'s lock:
/// - `items.len() <= maxsize` when bounded, except transiently after
///   [`Shared::push_front`] returns items a failed delivery had taken.
/// - Every item is in `items` or owned by exactly one caller, never both:
///   no item is lost or duplicated.
/// - Wake-ups: whoever adds items notifies `not_empty`, whoever removes them
///   from a bounded queue notifies `not_full`; `close` and `shut_down` wake
///   everyone. A waiter that consumed a `notify_one` but leaves without
///   acting on it passes it on.
#[derive(Debug)]
pub(crate) struct Shared<T> {
    state: Mutex<State<T>>,
    not_empty: Condvar,
    not_full: Condvar,
    /// Zero means unbounded.
    maxsize: usize,
    /// Wakes [`Shared::wait_for_parked`] whenever a thread parks.
    #[cfg(test)]
    parked: Condvar,
}

/// How long `wait` still allows parking: `None` when it allows none (a
/// non-blocking call, or a deadline already passed), `Some(None)` forever.
fn remaining(wait: Wait) -> Option<Option<Duration>> {
    match wait {
        Wait::Block => Some(None),
        Wait::Now => None,
        Wait::Until(deadline) => {
            let left = deadline.checked_duration_since(Instant::now())?;
            (!left.is_zero()).then_some(Some(left))
        }
    }
}

/// The failure of a wait that ran out: non-blocking calls would have
/// blocked, the others timed out.
fn expired(wait: Wait) -> Stop {
    if matches!(wait, Wait::Now) {
        Stop::WouldBlock
    } else {
        Stop::TimedOut
    }
}

impl<T> Shared<T> {
    pub(crate) fn new(maxsize: usize) -> Shared<T> {
        Shared {
            state: Mutex::new(State {
                items: VecDeque::new(),
                closed: false,
                gone: false,
                getters_waiting: 0,
                putters_waiting: 0,
            }),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            maxsize,
            #[cfg(test)]
            parked: Condvar::new(),
        }
    }

    pub(crate) fn maxsize(&self) -> usize {
        self.maxsize
    }

    /// Nothing in this module panics with the lock held, but a panicking `T`
    /// destructor elsewhere must not turn every later operation into a panic.
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn has_room(&self, state: &State<T>) -> bool {
        self.maxsize == 0 || state.items.len() < self.maxsize
    }

    /// Parks on `cv` until notified, for at most `limit` (and at most
    /// [`ABANDON_POLL`] when `poll_abandon`). The caller keeps the waiter
    /// count: it increments before and decrements after, under the lock.
    fn park<'a>(
        &self,
        cv: &Condvar,
        guard: MutexGuard<'a, State<T>>,
        limit: Option<Duration>,
        poll_abandon: bool,
    ) -> MutexGuard<'a, State<T>> {
        #[cfg(test)]
        self.parked.notify_all();
        let limit = if poll_abandon {
            Some(limit.map_or(ABANDON_POLL, |d| d.min(ABANDON_POLL)))
        } else {
            limit
        };
        match limit {
            None => cv.wait(guard).unwrap_or_else(PoisonError::into_inner),
            Some(d) => {
                cv.wait_timeout(guard, d)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
        }
    }

    /// Appends `item`, waiting for room per `wait`. On failure the item comes
    /// back with the reason.
    pub(crate) fn put(&self, item: T, wait: Wait) -> Result<(), (T, Stop)> {
        let mut state = self.lock();
        loop {
            if state.gone {
                return Err((item, Stop::Gone));
            }
            if state.closed {
                return Err((item, Stop::Closed));
            }
            if self.has_room(&state) {
                state.items.push_back(item);
                if state.getters_waiting > 0 {
                    self.not_empty.notify_one();
                }
                return Ok(());
            }
            let Some(limit) = remaining(wait) else {
                return Err((item, expired(wait)));
            };
            state.putters_waiting += 1;
            state = self.park(&self.not_full, state, limit, false);
            state.putters_waiting -= 1;
        }
    }

    /// Appends all of `items` in order, waiting for room as often as needed.
    /// If the queue closes (or goes) midway, the items not yet appended come
    /// back with the reason; the ones before them stay in the queue.
    pub(crate) fn put_many(&self, items: Vec<T>) -> Result<(), (Vec<T>, Stop)> {
        let mut pending = items.into_iter();
        let mut state = self.lock();
        loop {
            if state.gone || state.closed {
                let stop = if state.gone { Stop::Gone } else { Stop::Closed };
                return Err((pending.collect(), stop));
            }
            let room = if self.maxsize == 0 {
                usize::MAX
            } else {
                self.maxsize.saturating_sub(state.items.len())
            };
            let before = state.items.len();
            state.items.extend(pending.by_ref().take(room));
            if state.items.len() > before && state.getters_waiting > 0 {
                self.not_empty.notify_all();
            }
            if pending.len() == 0 {
                return Ok(());
            }
            state.putters_waiting += 1;
            state = self.park(&self.not_full, state, None, false);
            state.putters_waiting -= 1;
        }
    }

    /// Waits per `wait` until the queue holds an item, then lets `take`
    /// remove what it wants (at least one item) under the lock.
    /// `abandoned` is asked after every wake-up, before taking anything, so
    /// a server thread whose client died leaves the items to the living; an
    /// item taken for a client that dies later is returned by the server
    /// with [`Shared::push_front`]. With `poll_abandon` the wait wakes up
    /// now and then just to ask.
    pub(crate) fn take_when_ready<R>(
        &self,
        wait: Wait,
        abandoned: &mut dyn FnMut() -> bool,
        poll_abandon: bool,
        take: impl FnOnce(&mut VecDeque<T>) -> R,
    ) -> Result<R, Stop> {
        let mut state = self.lock();
        loop {
            if state.gone {
                return Err(Stop::Gone);
            }
            if !state.items.is_empty() {
                let before = state.items.len();
                let taken = take(&mut state.items);
                let freed = before.saturating_sub(state.items.len());
                if self.maxsize != 0 && state.putters_waiting > 0 {
                    if freed == 1 {
                        self.not_full.notify_one();
                    } else {
                        self.not_full.notify_all();
                    }
                }
                return Ok(taken);
            }
            if state.closed {
                return Err(Stop::Closed);
            }
            let Some(limit) = remaining(wait) else {
                return Err(expired(wait));
            };
            state.getters_waiting += 1;
            state = self.park(&self.not_empty, state, limit, poll_abandon);
            state.getters_waiting -= 1;
            if abandoned() {
                // This wake-up may have been meant for an item; hand it on.
                if !state.items.is_empty() {
                    self.not_empty.notify_one();
                }
                return Err(Stop::Abandoned);
            }
        }
    }

    /// Takes the oldest item, waiting per `wait`: the local handle's `get`.
    pub(crate) fn get(&self, wait: Wait) -> Result<T, Stop> {
        let taken = self.take_when_ready(wait, &mut || false, false, VecDeque::pop_front)?;
        // `take_when_ready` only takes from a non-empty queue.
        taken.ok_or(Stop::Gone)
    }

    /// Takes up to `max` (at least one) of the oldest items, waiting per
    /// `wait` for the first: the local handle's `get_many`.
    pub(crate) fn get_many(&self, max: usize, wait: Wait) -> Result<Vec<T>, Stop> {
        self.take_when_ready(wait, &mut || false, false, |items| {
            items.drain(..max.clamp(1, items.len())).collect()
        })
    }

    /// Returns items that were taken for a client that could not receive
    /// them to the front of the queue, in their original order, so they are
    /// the next ones handed out. They go back even if the queue was closed
    /// meanwhile (they were in it before the close) and even if that
    /// overfills a bounded queue for a moment (they had a slot when taken).
    /// Only a gone manager drops them, as it drops everything.
    pub(crate) fn push_front(&self, items: Vec<T>) {
        let mut state = self.lock();
        if state.gone || items.is_empty() {
            return;
        }
        for item in items.into_iter().rev() {
            state.items.push_front(item);
        }
        if state.getters_waiting > 0 {
            self.not_empty.notify_all();
        }
    }

    /// `(len, maxsize)`, or `Gone`.
    pub(crate) fn status(&self) -> Result<(usize, usize), Stop> {
        let state = self.lock();
        if state.gone {
            return Err(Stop::Gone);
        }
        Ok((state.items.len(), self.maxsize))
    }

    /// Marks the queue closed: puts fail from now on, gets drain what is left
    /// and then fail. Everyone parked is woken to see it. Idempotent.
    pub(crate) fn close(&self) -> Result<(), Stop> {
        let mut state = self.lock();
        if state.gone {
            return Err(Stop::Gone);
        }
        state.closed = true;
        self.not_empty.notify_all();
        self.not_full.notify_all();
        Ok(())
    }

    /// The manager is going away: drop the items and fail everything,
    /// waking every parked thread so none hangs.
    pub(crate) fn shut_down(&self) {
        let mut state = self.lock();
        state.gone = true;
        let items = std::mem::take(&mut state.items);
        self.not_empty.notify_all();
        self.not_full.notify_all();
        drop(state);
        // Item destructors run outside the lock.
        drop(items);
    }

    /// Blocks until at least `getters` threads are parked waiting for an
    /// item and `putters` for room. Lets tests act on "that call is blocked"
    /// without sleeping.
    #[cfg(test)]
    pub(crate) fn wait_for_parked(&self, getters: usize, putters: usize) {
        let mut state = self.lock();
        while state.getters_waiting < getters || state.putters_waiting < putters {
            state = self
                .parked
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}
