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
use std::pin::pin;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use procpool::{Error, Runs, TaskFn};

use common::{Gate, on_both_kinds, pool, within};

procpool::test_support!();

on_both_kinds! {
    an_awaited_result_wakes_its_task_when_the_value_arrives(hold_until_released);
    awaited_results_give_values_and_errors(square, fail_if_odd);
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
