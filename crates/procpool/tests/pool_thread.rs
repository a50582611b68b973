//! Thread workers only: what closures and in-process threads allow that
//! process workers cannot, and `terminate` letting a running task finish.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, mpsc};
use std::time::Duration;

use procpool::{Error, ThreadPool};

/// Far longer than any healthy wait here: reaching it means a hang.
const HANG: Duration = Duration::from_secs(30);

#[test]
fn terminate_lets_the_running_task_finish_and_cancels_the_queue() {
    let mut pool = ThreadPool::with_workers(1).unwrap();
    let (started_tx, started) = mpsc::channel();
    let release = Arc::new(Barrier::new(2));
    let released = release.clone();
    let running = pool
        .apply_async(
            move || {
                started_tx.send(()).unwrap();
                released.wait();
                "finished"
            },
            (),
        )
        .unwrap();
    let queued: Vec<_> = (0..5)
        .map(|i| pool.apply_async(move || i, ()).unwrap())
        .collect();
    started.recv_timeout(HANG).expect("the first task starts");
    pool.terminate();
    assert!(queued.iter().all(|r| r.ready()), "resolved by terminate()");
    assert!(
        queued
            .into_iter()
            .all(|r| r.get() == Err(Error::Terminated))
    );
    assert!(!running.ready(), "a running thread task is not cut short");
    release.wait();
    pool.join().unwrap();
    assert_eq!(running.get(), Ok("finished"));
}

#[test]
fn closures_capturing_state_run_as_tasks() {
    let pool = ThreadPool::with_workers(3).unwrap();
    let words = Arc::new(["zero", "one", "two"]);
    let calls = Arc::new(AtomicUsize::new(0));
    let offset = 1000;
    let (task_words, task_calls) = (words.clone(), calls.clone());
    let label = move |i: usize| {
        task_calls.fetch_add(1, Ordering::SeqCst);
        format!("{}-{}", task_words[i % 3], i + offset)
    };
    let got = pool.map(label, 0..30, Some(4)).unwrap();
    let expected: Vec<String> = (0..30)
        .map(|i| format!("{}-{}", words[i % 3], i + offset))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(calls.load(Ordering::SeqCst), 30);

    let owned = String::from("moved in");
    assert_eq!(pool.apply(move || owned.len(), ()), Ok(8));
}

#[test]
fn arguments_need_not_be_serializable() {
    let pool = ThreadPool::with_workers(2).unwrap();
    let (tx, rx) = mpsc::channel();
    let send = |tx: mpsc::Sender<u32>, value: u32| tx.send(value).unwrap();
    let sent = pool.starmap(send, (0..10).map(|v| (tx.clone(), v)), None);
    assert_eq!(sent.map(|units| units.len()), Ok(10));
    drop(tx);
    let mut got: Vec<u32> = rx.iter().collect();
    got.sort_unstable();
    assert_eq!(got, (0..10).collect::<Vec<_>>());
}

thread_local! {
    static INITIALIZED: Cell<bool> = const { Cell::new(false) };
}

#[test]
fn the_initializer_runs_in_every_worker_thread() {
    let pool = ThreadPool::builder()
        .workers(2)
        .maxtasksperchild(1)
        .initializer(|| INITIALIZED.set(true))
        .build()
        .unwrap();
    let seen = pool.map(|_: u32| INITIALIZED.get(), 0..6, Some(1)).unwrap();
    assert_eq!(seen, vec![true; 6], "replacement threads run it too");
    assert!(!INITIALIZED.get(), "the test's own thread never runs it");
}

#[test]
fn a_panicking_initializer_leaves_the_thread_serving() {
    let pool = ThreadPool::builder()
        .workers(1)
        .initializer(|| std::panic::resume_unwind(Box::new("no database")))
        .build()
        .unwrap();
    assert_eq!(pool.apply(|x: u32| x + 1, (1,)), Ok(2));
}

/// A thread retired by `maxtasksperchild` hands over to a fresh one at
/// once, so the pool is at full strength while idle: each replacement runs
/// the initializer, which reports it.
#[test]
fn retired_threads_are_replaced_while_the_pool_is_idle() {
    let (tx, started) = mpsc::channel();
    let pool = ThreadPool::builder()
        .workers(2)
        .maxtasksperchild(1)
        .initializer(move || tx.send(std::thread::current().id()).unwrap())
        .build()
        .unwrap();
    let ran: Vec<_> = (0..3)
        .map(|_| pool.apply(|| std::thread::current().id(), ()).unwrap())
        .collect();
    // Two first threads and one replacement per retired thread, with no
    // task after the last retirement.
    let threads: Vec<_> = (0..5)
        .map(|_| started.recv_timeout(HANG).expect("a thread started"))
        .collect();
    let distinct: std::collections::BTreeSet<String> =
        threads.iter().map(|id| format!("{id:?}")).collect();
    assert_eq!(distinct.len(), 5, "{threads:?}");
    assert!(
        ran.iter().all(|id| threads.contains(id)),
        "{ran:?} {threads:?}"
    );
    drop(pool);
    assert!(
        started.try_recv().is_err(),
        "no thread starts after the last"
    );
}
