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

use procpool::{Error, Pool, Runs, TaskFn};

use common::{Gate, on_both_kinds, pool, within};

procpool::test_support!();

on_both_kinds! {
    an_awaited_result_wakes_its_task_when_the_value_arrives(hold_until_released);
    awaited_results_give_values_and_errors(square, fail_if_odd);
    resize_grows_at_once_so_more_tasks_run_together(hold_until_released);
    a_shrink_lets_busy_workers_finish_and_loses_no_queued_task(hold_until_released, square);
    resize_refuses_zero_workers_and_a_stopped_pool(square);
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
