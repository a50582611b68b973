//! `AsyncResult`: the handle to a value that a worker will deliver.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::error::{Error, panic_message};
use crate::spin::spin_until;
use crate::ticket::{Cancel, Ticket};

/// A one-shot cell that one side fills and the other waits on.
///
/// Ownership: the pool side holds a [`Resolver`] (exactly one, moved into
/// the job), the caller holds the [`AsyncResult`]. The resolver sets the
/// value once and wakes every waiter; if the resolver is dropped without
/// setting a value (a job lost by a bug, or discarded during shutdown), its
/// `Drop` sets [`Error::Terminated`], so no waiter can hang.
///
/// Who wakes whom: filling the slot wakes the threads parked on `ready`
/// (in `get` and `wait`) and then the one task that awaits the result, whose
/// waker sits in `waker`. An `.await` registers its waker while it holds the
/// `value` lock and sees no value, and the filler takes the waker only after
/// it has stored the value under that lock, so a wake-up cannot fall between
/// the two. Lock order: `value`, then `waker`.
///
/// Who resolves: whoever first `claim`s the slot fills it, and nobody else.
/// That is the worker's resolver, unless `cancel` or a timed-out thread
/// task's timer claimed it first; the late value is then dropped unseen,
/// its callbacks unrun.
struct Slot<T> {
    value: Mutex<Option<Result<T, Error>>>,
    ready: Condvar,
    waker: Mutex<Option<Waker>>,
    claimed: AtomicBool,
    /// Set (after the value, under its lock) once the value is there, so a
    /// waiter can spin on it without taking the lock (see `crate::spin`).
    filled: AtomicBool,
    /// Waiters parked on `ready`. Changed only under the lock around the
    /// wait, and read under it by `fill`, so a filler that reads 0 misses
    /// no one and skips the wake-up system call.
    parked: AtomicUsize,
}

impl<T> Slot<T> {
    fn lock(&self) -> MutexGuard<'_, Option<Result<T, Error>>> {
        // A poisoned lock only means a waiter panicked; the value is intact.
        self.value.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_waker(&self) -> MutexGuard<'_, Option<Waker>> {
        self.waker.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the right to fill the slot; `false` if it was taken already.
    fn claim(&self) -> bool {
        !self.claimed.swap(true, Ordering::AcqRel)
    }

    fn is_claimed(&self) -> bool {
        self.claimed.load(Ordering::Acquire)
    }

    /// Stores the value and wakes every waiter: parked threads, and the
    /// task that awaits the result.
    fn fill(&self, value: Result<T, Error>) {
        let mut slot = self.lock();
        *slot = Some(value);
        self.filled.store(true, Ordering::Release);
        let parked = self.parked.load(Ordering::Relaxed);
        drop(slot);
        if parked > 0 {
            self.ready.notify_all();
        }
        // Taken out first: the wake-up may run the task inline, and it
        // polls, which takes these locks again.
        let waker = self.lock_waker().take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Parks on `ready` (the caller holds the lock), counted in `parked`.
    fn park<'a>(
        &self,
        guard: MutexGuard<'a, Option<Result<T, Error>>>,
        timeout: Option<Duration>,
    ) -> MutexGuard<'a, Option<Result<T, Error>>> {
        self.parked.fetch_add(1, Ordering::Relaxed);
        let guard = match timeout {
            None => self.ready.wait(guard).unwrap_or_else(|e| e.into_inner()),
            Some(left) => {
                self.ready
                    .wait_timeout(guard, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
        };
        self.parked.fetch_sub(1, Ordering::Relaxed);
        guard
    }

    /// Spins briefly for the value, so that a result arriving within
    /// microseconds (a small task's round trip) costs its waiter no
    /// wake-up; the caller parks on `ready` if this returns false.
    fn spin_for_value(&self) -> bool {
        spin_until(|| self.filled.load(Ordering::Acquire))
    }
}

/// Callbacks run in the parent when the value arrives, before waiters wake,
/// as Python's `ApplyResult._set` does.
pub(crate) type Callback<T> = Box<dyn FnOnce(&T) + Send>;
pub(crate) type ErrorCallback = Box<dyn FnOnce(&Error) + Send>;

/// The filling side of a [`Slot`] (internal).
#[doc(hidden)]
pub struct Resolver<T> {
    slot: Option<Arc<Slot<T>>>,
    callback: Option<Callback<T>>,
    error_callback: Option<ErrorCallback>,
    /// The task's ticket, shared with the `AsyncResult`.
    ticket: Arc<Ticket>,
}

impl<T> fmt::Debug for Resolver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver").finish_non_exhaustive()
    }
}

impl<T> Resolver<T> {
    /// The ticket of the task this resolver belongs to.
    pub(crate) fn ticket(&self) -> &Arc<Ticket> {
        &self.ticket
    }

    pub(crate) fn with_callbacks(
        mut self,
        callback: Option<Callback<T>>,
        error_callback: Option<ErrorCallback>,
    ) -> Self {
        self.callback = callback;
        self.error_callback = error_callback;
        self
    }

    /// Delivers the value without running the callbacks (see `Drop`).
    pub(crate) fn resolve_quietly(mut self, value: Result<T, Error>) {
        self.callback = None;
        self.error_callback = None;
        self.resolve(value);
    }

    /// Delivers the value. Callbacks run first, on the calling (pool)
    /// thread, without any pool lock held, so a callback may submit work or
    /// call `terminate()` without deadlocking (cpython#87129). A panicking
    /// callback is reported on stderr and does not take the pool thread down.
    pub(crate) fn resolve(mut self, value: Result<T, Error>) {
        let Some(slot) = self.slot.take() else {
            return;
        };
        if !slot.claim() {
            return;
        }
        match &value {
            Ok(v) => {
                if let Some(cb) = self.callback.take() {
                    run_callback(|| cb(v));
                }
            }
            Err(e) => {
                if let Some(cb) = self.error_callback.take() {
                    run_callback(|| cb(e));
                }
            }
        }
        slot.fill(value);
    }
}

fn run_callback(f: impl FnOnce()) {
    if let Err(p) = catch_unwind(AssertUnwindSafe(f)) {
        eprintln!(
            "procpool: a result callback panicked: {}",
            panic_message(&*p)
        );
    }
}

impl<T> Drop for Resolver<T> {
    /// A resolver dropped unresolved belongs to work that never ran: refused
    /// at submission, or cancelled by `terminate()` or `cancel()`. Its result
    /// becomes `Terminated` (or `Cancelled`), quietly: the callbacks are for
    /// outcomes a worker produced, and Python never calls them for
    /// cancelled work either.
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take()
            && slot.claim()
        {
            slot.fill(Err(self.ticket.dropped_error()));
        }
    }
}

/// Creates a connected resolver and result.
pub(crate) fn pair<T>() -> (Resolver<T>, AsyncResult<T>) {
    let slot = Arc::new(Slot {
        value: Mutex::new(None),
        ready: Condvar::new(),
        waker: Mutex::new(None),
        claimed: AtomicBool::new(false),
        filled: AtomicBool::new(false),
        parked: AtomicUsize::new(0),
    });
    let ticket = Ticket::new();
    (
        Resolver {
            slot: Some(slot.clone()),
            callback: None,
            error_callback: None,
            ticket: ticket.clone(),
        },
        AsyncResult {
            slot,
            tickets: vec![ticket],
        },
    )
}

/// The result of [`apply_async`](crate::WorkerPool::apply_async) or
/// [`map_async`](crate::WorkerPool::map_async): Python's `AsyncResult`.
///
/// It always resolves: to the value, to the task's panic, to
/// [`Error::WorkerLost`] if its worker died, or to [`Error::Terminated`]
/// if the pool was terminated first. Python leaves results pending forever
/// in the last two cases.
///
/// Differences from Python: [`get`](Self::get) consumes the handle and
/// returns the value by move (no copy, no pickling twice); use
/// [`wait_timeout`](Self::wait_timeout) to wait repeatedly.
/// [`successful`](Self::successful) returns `None` where Python raises
/// `ValueError` (not ready yet).
pub struct AsyncResult<T> {
    slot: Arc<Slot<T>>,
    /// The tickets of the jobs that feed this result: its own task's, or
    /// one per chunk of a map. `cancel` goes through them.
    tickets: Vec<Arc<Ticket>>,
}

impl<T> fmt::Debug for AsyncResult<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncResult")
            .field("ready", &self.ready())
            .finish()
    }
}

impl<T> AsyncResult<T> {
    /// Makes `tickets` (a map's chunks') the jobs this result depends on.
    pub(crate) fn with_tickets(mut self, tickets: Vec<Arc<Ticket>>) -> Self {
        self.tickets = tickets;
        self
    }

    /// Waits for the value and returns it (Python's `get()`).
    ///
    /// ```
    /// let pool = procpool::ThreadPool::with_workers(2)?;
    /// let r = pool.apply_async(|x: u32| x + 1, (41,))?;
    /// assert_eq!(r.get()?, 42);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn get(self) -> Result<T, Error> {
        self.slot.spin_for_value();
        let mut value = self.slot.lock();
        loop {
            if let Some(v) = value.take() {
                return v;
            }
            value = self.slot.park(value, None);
        }
    }

    /// Waits at most `timeout` for the value (Python's `get(timeout)`).
    /// On timeout it returns [`Error::Timeout`] and the value is given up;
    /// to retry, call [`wait_timeout`](Self::wait_timeout) first and then `get`.
    ///
    /// ```
    /// use std::{sync::{Arc, Barrier}, time::Duration};
    /// let pool = procpool::ThreadPool::with_workers(1)?;
    /// let gate = Arc::new(Barrier::new(2));
    /// let task_gate = gate.clone();
    /// let blocked = pool.apply_async(move || { task_gate.wait(); }, ())?;
    /// assert_eq!(blocked.get_timeout(Duration::from_millis(10)), Err(procpool::Error::Timeout));
    /// gate.wait();
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn get_timeout(self, timeout: Duration) -> Result<T, Error> {
        if self.wait_timeout(timeout) {
            self.get()
        } else {
            Err(Error::Timeout)
        }
    }

    /// Waits until the value is there (Python's `wait()`).
    ///
    /// ```
    /// let pool = procpool::ThreadPool::with_workers(1)?;
    /// let r = pool.apply_async(|| 7, ())?;
    /// r.wait();
    /// assert!(r.ready());
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn wait(&self) {
        self.slot.spin_for_value();
        let mut value = self.slot.lock();
        while value.is_none() {
            value = self.slot.park(value, None);
        }
    }

    /// Waits at most `timeout`; returns whether the value is there
    /// (Python's `wait(timeout)`, which returns `None` either way).
    ///
    /// ```
    /// use std::time::Duration;
    /// let pool = procpool::ThreadPool::with_workers(1)?;
    /// let r = pool.apply_async(|| 7, ())?;
    /// assert!(r.wait_timeout(Duration::from_secs(10)));
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut value = self.slot.lock();
        while value.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            value = self.slot.park(value, Some(left));
        }
        true
    }

    /// Whether the value is there (Python's `ready()`).
    ///
    /// ```
    /// let pool = procpool::ThreadPool::with_workers(1)?;
    /// let r = pool.apply_async(|| 1, ())?;
    /// r.wait();
    /// assert!(r.ready());
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn ready(&self) -> bool {
        self.slot.lock().is_some()
    }

    /// Whether the task succeeded: `None` while it is not ready (where
    /// Python raises `ValueError`), then `Some(true)` or `Some(false)`.
    ///
    /// ```
    /// let pool = procpool::ThreadPool::with_workers(1)?;
    /// let r = pool.apply_async(|| -> u8 { panic!("no") }, ())?;
    /// r.wait();
    /// assert_eq!(r.successful(), Some(false));
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn successful(&self) -> Option<bool> {
        self.slot.lock().as_ref().map(Result::is_ok)
    }

    /// Cancels the task, which Python's `AsyncResult` cannot do. Returns
    /// whether it took effect:
    ///
    /// - a task still queued never runs: `true`, and the result resolves
    ///   to [`Error::Cancelled`] at once;
    /// - a task running on a worker process is stopped: `true`; the worker
    ///   is killed and replaced, and the result resolves to `Cancelled`
    ///   once the new worker has taken its place;
    /// - a task running on a thread cannot be stopped: `false`, and its
    ///   value arrives as usual;
    /// - a result already resolved stays so: `false`, and
    ///   [`get`](Self::get) still gives the value.
    ///
    /// For a map, the chunks still queued never run and those on worker
    /// processes are stopped; the map resolves to `Cancelled`. Callbacks do
    /// not run for a cancelled task, as for a terminated one.
    ///
    /// A process pool sends a worker several tasks at once when more are
    /// queued than there are workers. Stopping that worker would take
    /// tasks nobody cancelled with it, so a task sent along with others is
    /// not stopped while one of them is still wanted: `cancel` returns
    /// `true` and the result resolves to `Cancelled` at once, and the value
    /// the task may still compute is discarded. Cancelling the last task
    /// still wanted stops the worker. A pool with a
    /// [`task_timeout`](crate::Builder::task_timeout) sends one task at a
    /// time, so there every running task is stopped.
    ///
    /// ```
    /// use std::sync::{Arc, Barrier};
    /// let pool = procpool::ThreadPool::with_workers(1)?;
    /// let gate = Arc::new(Barrier::new(2));
    /// let task_gate = gate.clone();
    /// let busy = pool.apply_async(move || { task_gate.wait(); "ran" }, ())?;
    /// let queued = pool.apply_async(|| "never runs", ())?;
    /// assert!(queued.cancel());
    /// assert_eq!(queued.get(), Err(procpool::Error::Cancelled));
    /// gate.wait();
    /// busy.wait();
    /// assert!(!busy.cancel(), "already resolved");
    /// assert_eq!(busy.get(), Ok("ran"));
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn cancel(&self) -> bool {
        if self.slot.is_claimed() {
            return false;
        }
        let (mut dequeued, mut stopping) = (false, false);
        for ticket in &self.tickets {
            match ticket.cancel() {
                Cancel::Dequeued | Cancel::Discarded => dequeued = true,
                Cancel::Stopping => stopping = true,
                Cancel::TooLate => {}
            }
        }
        // A stopped worker's I/O thread resolves the result once the worker
        // is replaced. Dequeued jobs are only dropped when a worker reaches
        // them (and discarded ones deliver into a claimed slot), so their
        // result is resolved here, now.
        if dequeued && !stopping && self.slot.claim() {
            self.slot.fill(Err(Error::Cancelled));
        }
        dequeued || stopping
    }

    /// Takes the value if it is there; otherwise leaves `cx`'s waker to be
    /// woken when it arrives (see [`Slot`]). Only the latest poll's waker
    /// is kept: a future is polled by one task at a time.
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>) -> Poll<Result<T, Error>> {
        let mut value = self.slot.lock();
        if let Some(v) = value.take() {
            return Poll::Ready(v);
        }
        let mut waker = self.slot.lock_waker();
        match &mut *waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            other => *other = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropping_a_resolver_resolves_to_terminated() {
        let (resolver, result) = pair::<u8>();
        drop(resolver);
        assert_eq!(result.get(), Err(Error::Terminated));
    }

    #[test]
    fn callbacks_run_before_waiters_wake_and_panics_are_contained() {
        let (tx, rx) = std::sync::mpsc::channel();
        let (resolver, result) = pair::<u8>();
        let resolver = resolver.with_callbacks(
            Some(Box::new(move |v: &u8| tx.send(*v).unwrap())),
            Some(Box::new(|_: &Error| panic!("unused"))),
        );
        resolver.resolve(Ok(5));
        assert_eq!(rx.try_recv(), Ok(5));
        assert_eq!(result.get(), Ok(5));

        let (resolver, result) = pair::<u8>();
        let resolver =
            resolver.with_callbacks(Some(Box::new(|_: &u8| panic!("callback bug"))), None);
        resolver.resolve(Ok(1));
        assert_eq!(result.get(), Ok(1));
    }
}
