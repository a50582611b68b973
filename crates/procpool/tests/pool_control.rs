//! What no Python pool has: awaiting a result, resizing the pool,
//! cancelling a task, a time limit per task and a memory cap per worker.
//! Each test is written once, generic over the kind, and runs as
//! `process::NAME` and `thread::NAME` where it applies to both (see
//! `common::on_both_kinds`); the rest are for one kind only.
//!
//! Tests wait on events (a task's gate, a channel, a waker), never on
//! time: a task that must outlast its time limit blocks on its gate until
//! the test releases it.

mod common;

use std::ffi::OsString;
use std::future::{Future, IntoFuture};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::pin::pin;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use std::time::Duration;

use procpool::{Error, Kind, Pool, Runs, TaskFn, ThreadPool, WorkerPool};

use common::{Gate, HANG, all_fired, on_both_kinds, outcome_callbacks, pool, within};

/// The time limit of the tests whose task must outlast it: it blocks on
/// its gate until the test releases it, so the limit's length only sets
/// how long the test waits.
const LIMIT: Duration = Duration::from_millis(200);

procpool::test_support!();

/// Grows the worker by `mib` MiB, kept for its life as a leak would be, and
/// says which worker it is.
fn grow_and_report(mib: usize) -> u32 {
    std::mem::forget(vec![1u8; mib << 20]);
    std::process::id()
}

procpool::register!(grow_and_report);

on_both_kinds! {
    an_awaited_result_wakes_its_task_when_the_value_arrives(hold_until_released);
    awaited_results_give_values_and_errors(square, fail_if_odd);
    resize_grows_at_once_so_more_tasks_run_together(hold_until_released);
    a_shrink_lets_busy_workers_finish_and_loses_no_queued_task(hold_until_released, square);
    resize_refuses_zero_workers_and_a_stopped_pool(square);
    a_cancelled_queued_task_never_runs(hold_until_released, square);
    a_cancelled_queued_map_never_runs(hold_until_released, square);
    cancelling_a_resolved_result_changes_nothing(square);
    a_task_past_its_time_limit_resolves_to_timed_out(hold_until_released, square);
    a_map_chunk_past_its_time_limit_fails_the_map(hold_until_released);
    tasks_within_a_time_limit_run_as_usual(square);
    a_zero_time_limit_is_an_invalid_argument(square);
}

/// A waker that reports each wake-up on a channel.
struct Signal(Mutex<Sender<()>>);

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        // The test may have stopped listening; a wake-up is then moot.
        let _ = self.0.lock().unwrap().send(());
    }
}

fn signal_waker() -> (Waker, Receiver<()>) {
    let (tx, rx) = mpsc::channel();
    (Waker::from(Arc::new(Signal(Mutex::new(tx)))), rx)
}

/// Runs `future` to completion on this thread, blocking on the waker's
/// channel between polls: an executor with no runtime behind it.
fn block_on<F: Future>(future: F) -> F::Output {
    let (waker, woken) = signal_waker();
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
        woken
            .recv_timeout(common::HANG)
            .expect("a pending future is woken");
    }
}

fn an_awaited_result_wakes_its_task_when_the_value_arrives<K, Hold>(_: K, hold: Hold)
where
    K: Runs<Hold, (OsString,)>,
    Hold: TaskFn<(OsString,), Output = String>,
{
    let pool = pool::<K>(1);
    let gate = Gate::new();
    let mut future = pin!(pool.apply_async(hold, (gate.arg(),)).unwrap().into_future());
    let held = gate.wait_started();
    let (waker, woken) = signal_waker();
    let mut cx = Context::from_waker(&waker);
    assert_eq!(future.as_mut().poll(&mut cx), Poll::Pending);
    assert_eq!(woken.try_recv(), Err(mpsc::TryRecvError::Empty));
    held.release("awaited");
    woken
        .recv_timeout(common::HANG)
        .expect("the delivery wakes the task");
    assert_eq!(
        future.as_mut().poll(&mut cx),
        Poll::Ready(Ok("awaited".to_string()))
    );
}

fn awaited_results_give_values_and_errors<K, Sq, Fail>(_: K, square: Sq, fail: Fail)
where
    K: Runs<Sq, (u64,)> + Runs<Fail, (u64,)>,
    Sq: TaskFn<(u64,), Output = u64> + Copy,
    Fail: TaskFn<(u64,), Output = u64>,
{
    let pool = pool::<K>(2);
    let outcome = within("awaiting results", move || {
        block_on(async {
            let pending: Vec<_> = (0..10)
                .map(|i| pool.apply_async(square, (i,)).unwrap())
                .collect();
            let mut squares = Vec::new();
            for result in pending {
                squares.push(result.await?);
            }
            let map = pool.map_async(square, 0..4, None)?.await?;
            let failed = pool.apply_async(fail, (3,))?.await;
            Ok::<_, Error>((squares, map, failed))
        })
    });
    let (squares, map, failed) = outcome.unwrap();
    assert_eq!(squares, common::squares(0..10));
    assert_eq!(map, vec![0, 1, 4, 9]);
    assert_eq!(failed, Err(common::panicked("odd input 3")));
}

/// Holds `n` tasks on their gates and returns their results and gates once
/// every one runs: each gate opens only when a worker runs its task, so
/// this returns only if `n` workers run at once.
fn hold_on_every_worker<K, Hold>(
    pool: &procpool::WorkerPool<K>,
    hold: Hold,
    n: usize,
) -> Vec<(procpool::AsyncResult<String>, common::Held)>
where
    K: Runs<Hold, (OsString,)>,
    Hold: TaskFn<(OsString,), Output = String> + Copy,
{
    let gates: Vec<Gate> = (0..n).map(|_| Gate::new()).collect();
    let results: Vec<_> = gates
        .iter()
        .map(|gate| pool.apply_async(hold, (gate.arg(),)).unwrap())
        .collect();
    results
        .into_iter()
        .zip(gates.iter().map(Gate::wait_started))
        .collect()
}

fn resize_grows_at_once_so_more_tasks_run_together<K, Hold>(_: K, hold: Hold)
where
    K: Runs<Hold, (OsString,)>,
    Hold: TaskFn<(OsString,), Output = String> + Copy,
{
    let pool = pool::<K>(1);
    pool.resize(5).unwrap();
    assert_eq!(pool.workers(), 5);
    let held = hold_on_every_worker(&pool, hold, 5);
    for (i, (result, gate)) in held.into_iter().enumerate() {
        gate.release(&format!("task {i}"));
        assert_eq!(result.get(), Ok(format!("task {i}")));
    }
}

fn a_shrink_lets_busy_workers_finish_and_loses_no_queued_task<K, Hold, Sq>(
    _: K,
    hold: Hold,
    square: Sq,
) where
    K: Runs<Hold, (OsString,)> + Runs<Sq, (u64,)>,
    Hold: TaskFn<(OsString,), Output = String> + Copy,
    Sq: TaskFn<(u64,), Output = u64> + Copy,
{
    let pool = pool::<K>(3);
    let held = hold_on_every_worker(&pool, hold, 3);
    let queued: Vec<_> = (0..20)
        .map(|i| pool.apply_async(square, (i,)).unwrap())
        .collect();
    pool.resize(1).unwrap();
    assert_eq!(pool.workers(), 1, "the new number holds at once");
    for (result, gate) in held {
        gate.release("finished");
        assert_eq!(result.get(), Ok("finished".to_string()));
    }
    let squares: Vec<u64> = queued.into_iter().map(|r| r.get().unwrap()).collect();
    assert_eq!(squares, common::squares(0..20));
    pool.resize(2).unwrap();
    assert_eq!(pool.map(square, 0..10, Some(1)), Ok(common::squares(0..10)));
}

fn resize_refuses_zero_workers_and_a_stopped_pool<K, Sq>(_: K, square: Sq)
where
    K: Runs<Sq, (u64,)>,
    Sq: TaskFn<(u64,), Output = u64>,
{
    let pool = pool::<K>(2);
    assert!(
        matches!(pool.resize(0), Err(Error::InvalidArgument { message }) if message.contains("at least one worker"))
    );
    assert_eq!(pool.workers(), 2);
    assert_eq!(pool.apply(square, (3,)), Ok(9));
    pool.close();
    assert_eq!(pool.resize(3), Err(Error::Closed));
    assert_eq!(pool.workers(), 2);
}

/// Waits until the pool's live worker processes are exactly `n`: a
/// retired worker leaves `worker_pids` when its slot reaps it, a few
/// system calls after it was told to go. There is no event to wait on but
/// that, so this polls, failing at [`common::HANG`].
fn wait_for_worker_count(pool: &Pool, n: usize) -> Vec<u32> {
    let give_up = std::time::Instant::now() + common::HANG;
    loop {
        let pids = pool.worker_pids();
        if pids.len() == n {
            return pids;
        }
        assert!(
            std::time::Instant::now() < give_up,
            "the pool stayed at {pids:?}, not {n} workers"
        );
        std::thread::yield_now();
    }
}

/// Waits until process `pid` has ended (its pidfd polls readable) or is
/// gone altogether (reaped: no pidfd can be opened).
fn wait_until_ended(pid: u32) {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        let err = std::io::Error::last_os_error();
        assert_eq!(err.raw_os_error(), Some(libc::ESRCH), "pidfd_open: {err}");
        return;
    }
    // SAFETY: pidfd_open returned this fd just now and nothing else owns it.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
    let mut poll = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `poll` is one valid pollfd for the duration of the call.
    let ready = unsafe { libc::poll(&mut poll, 1, common::HANG.as_millis() as libc::c_int) };
    assert_eq!(
        ready,
        1,
        "process {pid} did not end within {:?}",
        common::HANG
    );
}

#[test]
fn a_shrunk_process_pool_retires_and_reaps_its_surplus_workers() {
    let pool = Pool::with_workers(3).unwrap();
    let before = pool.worker_pids();
    assert_eq!(before.len(), 3);
    pool.resize(1).unwrap();
    let after = wait_for_worker_count(&pool, 1);
    assert!(before.contains(&after[0]), "{after:?} is one of {before:?}");
    for &pid in before.iter().filter(|pid| !after.contains(pid)) {
        wait_until_ended(pid);
    }
    pool.resize(3).unwrap();
    let grown = pool.worker_pids();
    assert_eq!(
        grown.len(),
        3,
        "growth waits for the new workers: {grown:?}"
    );
    assert_eq!(
        pool.map(common::square, 0..6, Some(1)),
        Ok(common::squares(0..6))
    );
}

/// Whether `pid` is still a process (a zombie counts: it is not reaped).
fn exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn timed_pool<K: Kind>(limit: Duration) -> WorkerPool<K> {
    WorkerPool::<K>::builder()
        .workers(1)
        .task_timeout(limit)
        .build()
        .expect("start the pool")
}

/// The queued task holds on a gate nobody opens: had it run, it would
/// block the only worker, and the task queued after it would never finish.
fn a_cancelled_queued_task_never_runs<K, Hold, Sq>(_: K, hold: Hold, square: Sq)
where
    K: Runs<Hold, (OsString,)> + Runs<Sq, (u64,)>,
    Hold: TaskFn<(OsString,), Output = String> + Copy,
    Sq: TaskFn<(u64,), Output = u64>,
{
    let pool = pool::<K>(1);
    let (busy_gate, never_gate) = (Gate::new(), Gate::new());
    let busy = pool.apply_async(hold, (busy_gate.arg(),)).unwrap();
    let held = busy_gate.wait_started();
    let (callback, error_callback, fired) = outcome_callbacks::<String>();
    let doomed = pool
        .apply_async_with_callbacks(hold, (never_gate.arg(),), callback, error_callback)
        .unwrap();
    let after = pool.apply_async(square, (5,)).unwrap();
    assert!(doomed.cancel());
    assert!(!doomed.cancel(), "a second cancel finds it resolved");
    assert!(
        doomed.ready(),
        "resolved at once, before any worker is free"
    );
    assert_eq!(doomed.get(), Err(Error::Cancelled));
    held.release("busy");
    assert_eq!(busy.get(), Ok("busy".to_string()));
    assert_eq!(within("the task after", move || after.get()), Ok(25));
    assert_eq!(all_fired(fired), vec![], "no callback for a cancelled task");
}

fn a_cancelled_queued_map_never_runs<K, Hold, Sq>(_: K, hold: Hold, square: Sq)
where
    K: Runs<Hold, (OsString,)> + Runs<Sq, (u64,)>,
    Hold: TaskFn<(OsString,), Output = String> + Copy,
    Sq: TaskFn<(u64,), Output = u64> + Copy,
{
    let pool = pool::<K>(1);
    let (busy_gate, never_gate) = (Gate::new(), Gate::new());
    let busy = pool.apply_async(hold, (busy_gate.arg(),)).unwrap();
    let held = busy_gate.wait_started();
    let doomed = pool
        .map_async(hold, vec![never_gate.arg(); 4], Some(2))
        .unwrap();
    assert!(doomed.cancel());
    assert_eq!(doomed.get(), Err(Error::Cancelled));
    held.release("");
    assert_eq!(busy.get(), Ok(String::new()));
    let after = pool.map_async(square, 0..6, Some(2)).unwrap();
    assert_eq!(
        within("a map after", move || after.get()),
        Ok(common::squares(0..6))
    );
}

fn cancelling_a_resolved_result_changes_nothing<K, Sq>(_: K, square: Sq)
where
    K: Runs<Sq, (u64,)>,
    Sq: TaskFn<(u64,), Output = u64> + Copy,
{
    let pool = pool::<K>(1);
    let done = pool.apply_async(square, (6,)).unwrap();
    done.wait();
    assert!(!done.cancel());
    assert_eq!(done.get(), Ok(36));
    let map = pool.map_async(square, 0..3, None).unwrap();
    map.wait();
    assert!(!map.cancel());
    assert_eq!(map.get(), Ok(vec![0, 1, 4]));
}

/// A process worker past the limit is killed, reaped and replaced before
/// the result resolves; a thread's result resolves on time and its late
/// value is dropped.
fn a_task_past_its_time_limit_resolves_to_timed_out<K, Hold, Sq>(kind: K, hold: Hold, square: Sq)
where
    K: Runs<Hold, (OsString,)> + Runs<Sq, (u64,)>,
    Hold: TaskFn<(OsString,), Output = String> + Copy,
    Sq: TaskFn<(u64,), Output = u64>,
{
    let pool = timed_pool::<K>(LIMIT);
    let pids = worker_pids_of(&kind, &pool);
    let gate = Gate::new();
    let (callback, error_callback, fired) = outcome_callbacks::<String>();
    let stuck = pool
        .apply_async_with_callbacks(hold, (gate.arg(),), callback, error_callback)
        .unwrap();
    let held = gate.wait_started();
    let outcome = within("the time limit", move || stuck.get());
    let expected = Error::TimedOut {
        limit: LIMIT,
        pid: pids.first().copied(),
    };
    assert_eq!(outcome, Err(expected.clone()));
    assert_eq!(all_fired(fired), vec![Err(expected)]);
    if let [old] = pids[..] {
        assert!(!exists(old), "the timed-out worker {old} is gone");
        let now = worker_pids_of(&kind, &pool);
        assert!(now.len() == 1 && now[0] != old, "{now:?} replaced {old}");
    }
    // A thread is still inside the task: releasing it frees the worker.
    drop(held);
    assert_eq!(
        within("the next task", move || pool.apply(square, (4,))),
        Ok(16)
    );
}

/// The pids of a process pool's workers; none for a thread pool.
fn worker_pids_of<K: Kind>(_: &K, pool: &WorkerPool<K>) -> Vec<u32> {
    let any: &dyn std::any::Any = pool;
    any.downcast_ref::<Pool>()
        .map(Pool::worker_pids)
        .unwrap_or_default()
}

fn a_map_chunk_past_its_time_limit_fails_the_map<K, Hold>(_: K, hold: Hold)
where
    K: Runs<Hold, (OsString,)>,
    Hold: TaskFn<(OsString,), Output = String> + Copy,
{
    let pool = timed_pool::<K>(LIMIT);
    let gate = Gate::new();
    let map = pool.map_async(hold, vec![gate.arg()], None).unwrap();
    let held = gate.wait_started();
    let outcome = within("the time limit", move || map.get());
    assert!(
        matches!(outcome, Err(Error::TimedOut { limit: LIMIT, .. })),
        "{outcome:?}"
    );
    drop(held);
}

fn tasks_within_a_time_limit_run_as_usual<K, Sq>(_: K, square: Sq)
where
    K: Runs<Sq, (u64,)>,
    Sq: TaskFn<(u64,), Output = u64> + Copy,
{
    let pool = WorkerPool::<K>::builder()
        .workers(2)
        .task_timeout(HANG)
        .build()
        .unwrap();
    assert_eq!(pool.map(square, 0..100, None), Ok(common::squares(0..100)));
    assert_eq!(pool.apply(square, (9,)), Ok(81));
}

fn a_zero_time_limit_is_an_invalid_argument<K, Sq>(_: K, _square: Sq)
where
    K: Runs<Sq, (u64,)>,
    Sq: TaskFn<(u64,), Output = u64>,
{
    let built = WorkerPool::<K>::builder()
        .task_timeout(Duration::ZERO)
        .build();
    assert!(
        matches!(&built, Err(Error::InvalidArgument { message }) if message.contains("task_timeout")),
        "{built:?}"
    );
}

/// A running process task is stopped by replacing its worker: the old pid
/// is gone and the pool is at full strength when the result resolves.
#[test]
fn cancelling_a_running_process_task_replaces_its_worker() {
    let pool = Pool::with_workers(1).unwrap();
    let [old] = pool.worker_pids()[..] else {
        panic!("one worker expected");
    };
    let gate = Gate::new();
    let running = pool
        .apply_async(common::hold_until_released, (gate.arg(),))
        .unwrap();
    let held = gate.wait_started();
    assert!(running.cancel());
    assert!(!running.cancel(), "it is stopping already");
    assert_eq!(
        within("the cancel", move || running.get()),
        Err(Error::Cancelled)
    );
    assert!(!exists(old), "the cancelled task's worker {old} is gone");
    let now = pool.worker_pids();
    assert!(now.len() == 1 && now[0] != old, "{now:?} replaced {old}");
    drop(held);
    assert_eq!(pool.apply(common::square, (3,)), Ok(9));
}

/// The same for a map, one of whose chunks runs while the others wait.
#[test]
fn cancelling_a_running_process_map_stops_it_and_drops_its_queued_chunks() {
    let pool = Pool::with_workers(1).unwrap();
    let [old] = pool.worker_pids()[..] else {
        panic!("one worker expected");
    };
    let gate = Gate::new();
    let map = pool
        .map_async(common::hold_until_released, vec![gate.arg(); 3], Some(1))
        .unwrap();
    let held = gate.wait_started();
    assert!(map.cancel());
    assert_eq!(
        within("the cancel", move || map.get()),
        Err(Error::Cancelled)
    );
    assert!(!exists(old), "the cancelled map's worker {old} is gone");
    drop(held);
    assert_eq!(
        pool.map(common::square, 0..4, None),
        Ok(common::squares(0..4))
    );
}

/// A thread cannot be stopped: cancel says so and the value arrives.
#[test]
fn a_running_thread_task_cannot_be_cancelled() {
    let pool = ThreadPool::with_workers(1).unwrap();
    let gate = Gate::new();
    let running = pool
        .apply_async(common::hold_until_released, (gate.arg(),))
        .unwrap();
    let held = gate.wait_started();
    assert!(!running.cancel());
    held.release("finished");
    assert_eq!(running.get(), Ok("finished".to_string()));
}

/// A worker is measured after each task: under the cap it stays, over it
/// it is retired once its result is delivered, and replaced before the
/// slot takes the next task.
#[test]
fn a_worker_over_its_memory_cap_is_retired_after_its_task_and_replaced() {
    let pool = Pool::builder()
        .workers(1)
        .max_memory_per_child(128 << 20)
        .build()
        .unwrap();
    let first = pool.apply(grow_and_report, (0,)).unwrap();
    assert_eq!(
        pool.apply(grow_and_report, (1,)),
        Ok(first),
        "under the cap"
    );
    assert_eq!(
        pool.apply(grow_and_report, (160,)),
        Ok(first),
        "the task that crossed the cap keeps its result"
    );
    let next = pool.apply(grow_and_report, (0,)).unwrap();
    assert_ne!(next, first, "a fresh worker took the next task");
    assert!(!exists(first), "the retired worker {first} was reaped");
    assert_eq!(pool.worker_pids(), vec![next]);
}

#[test]
fn a_zero_memory_cap_is_an_invalid_argument() {
    let built = Pool::builder().max_memory_per_child(0).build();
    assert!(
        matches!(&built, Err(Error::InvalidArgument { message }) if message.contains("max_memory_per_child")),
        "{built:?}"
    );
}

/// A timed-out thread task's error callback runs on the pool's timer
/// thread. Dropping the pool's last handle there must not wait for the
/// worker, which is still inside the task: the result would never resolve.
#[test]
fn a_timeout_callback_may_drop_the_last_pool_handle() {
    let pool = Arc::new(Mutex::new(Some(timed_pool::<procpool::Thread>(LIMIT))));
    let gate = Gate::new();
    let handle = pool.clone();
    let stuck = {
        let guard = pool.lock().unwrap();
        let running = guard.as_ref().unwrap();
        running
            .apply_async_with_callbacks(
                common::hold_until_released,
                (gate.arg(),),
                |_: &String| {},
                move |_: &Error| drop(handle.lock().unwrap().take()),
            )
            .unwrap()
    };
    let held = gate.wait_started();
    let outcome = within("the timed-out result", move || stuck.get());
    assert!(
        matches!(outcome, Err(Error::TimedOut { pid: None, .. })),
        "{outcome:?}"
    );
    assert!(
        pool.lock().unwrap().is_none(),
        "the callback dropped the pool"
    );
    drop(held);
}

#[test]
fn an_any_pool_resizes_either_kind() {
    use procpool::{AnyPool, WorkerKind};
    for kind in [WorkerKind::Process, WorkerKind::Thread] {
        let pool = AnyPool::with_workers(kind, 1).unwrap();
        pool.resize(3).unwrap();
        assert_eq!(pool.workers(), 3, "{kind:?}");
        let held = hold_on_every_worker_of(&pool, 3);
        for (result, gate) in held {
            gate.release("ran");
            assert_eq!(result.get(), Ok("ran".to_string()));
        }
        pool.resize(1).unwrap();
        assert_eq!(pool.workers(), 1, "{kind:?}");
        assert!(pool.resize(0).is_err());
        assert_eq!(
            pool.map(common::square, 0..5, None),
            Ok(common::squares(0..5))
        );
    }
}

/// [`hold_on_every_worker`] for an `AnyPool`.
fn hold_on_every_worker_of(
    pool: &procpool::AnyPool,
    n: usize,
) -> Vec<(procpool::AsyncResult<String>, common::Held)> {
    let gates: Vec<Gate> = (0..n).map(|_| Gate::new()).collect();
    let results: Vec<_> = gates
        .iter()
        .map(|gate| {
            pool.apply_async(common::hold_until_released, (gate.arg(),))
                .unwrap()
        })
        .collect();
    results
        .into_iter()
        .zip(gates.iter().map(Gate::wait_started))
        .collect()
}
