//! `AnyPool`: the pool whose worker kind is a run-time value. Each test is
//! written once over a `WorkerKind` and runs as `process::NAME` and
//! `thread::NAME`.

mod common;

use procpool::{AnyPool, Error, Pool, ThreadPool, WorkerKind};

use common::{Gate, add, hold_until_released, item_identity, square, squares, within};

procpool::test_support!();

macro_rules! on_both_kinds {
    ($($test:ident),+ $(,)?) => {
        mod process {
            $(#[test]
            fn $test() {
                super::$test(procpool::WorkerKind::Process);
            })+
        }
        mod thread {
            $(#[test]
            fn $test() {
                super::$test(procpool::WorkerKind::Thread);
            })+
        }
    };
}

on_both_kinds!(
    kind_workers_and_pids_follow_the_chosen_kind,
    apply_and_apply_async_give_the_tasks_values,
    the_map_family_keeps_input_order,
    imap_unordered_yields_every_item_once,
    close_lets_queued_tasks_finish_and_join_waits,
    terminate_resolves_queued_tasks_to_terminated,
);

fn any_pool(kind: WorkerKind, workers: usize) -> AnyPool {
    AnyPool::with_workers(kind, workers).expect("start the pool")
}

fn kind_workers_and_pids_follow_the_chosen_kind(kind: WorkerKind) {
    let pool = any_pool(kind, 3);
    assert_eq!(pool.kind(), kind);
    assert_eq!(pool.workers(), 3);
    let pids = pool.worker_pids();
    match kind {
        WorkerKind::Process => {
            assert_eq!(pids.len(), 3);
            assert!(!pids.contains(&std::process::id()));
        }
        WorkerKind::Thread => assert_eq!(pids, Vec::<u32>::new()),
    }
    assert!(format!("{pool:?}").contains(match kind {
        WorkerKind::Process => "process",
        WorkerKind::Thread => "thread",
    }));
}

fn apply_and_apply_async_give_the_tasks_values(kind: WorkerKind) {
    let pool = any_pool(kind, 2);
    assert_eq!(pool.apply(square, (9,)), Ok(81));
    assert_eq!(pool.apply(add, (2, 40)), Ok(42));
    let pending: Vec<_> = (0..20)
        .map(|i| pool.apply_async(square, (i,)).unwrap())
        .collect();
    let got: Vec<u64> = pending.into_iter().map(|r| r.get().unwrap()).collect();
    assert_eq!(got, squares(0..20));
}

fn the_map_family_keeps_input_order(kind: WorkerKind) {
    let pool = any_pool(kind, 2);
    assert_eq!(pool.map(square, 0..50, None), Ok(squares(0..50)));
    assert_eq!(
        pool.map_async(square, 0..50, Some(7)).unwrap().get(),
        Ok(squares(0..50))
    );
    assert_eq!(
        pool.starmap(add, vec![(1, 2), (3, 4), (5, 6)], Some(1)),
        Ok(vec![3, 7, 11])
    );
    let firsts: Result<Vec<u64>, Error> =
        pool.imap(square, 0.., Some(3)).unwrap().take(10).collect();
    assert_eq!(firsts, Ok(squares(0..10)));
}

fn imap_unordered_yields_every_item_once(kind: WorkerKind) {
    let pool = any_pool(kind, 2);
    let mut got: Vec<u64> = pool
        .imap_unordered(square, 0..100, Some(4))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    got.sort_unstable();
    assert_eq!(got, squares(0..100));
}

fn close_lets_queued_tasks_finish_and_join_waits(kind: WorkerKind) {
    let mut pool = any_pool(kind, 2);
    let queued: Vec<_> = (0..10)
        .map(|i| pool.apply_async(item_identity, (i,)).unwrap())
        .collect();
    assert_eq!(pool.join(), Err(Error::StillRunning));
    pool.close();
    assert_eq!(pool.apply_async(square, (1,)).unwrap_err(), Error::Closed);
    pool.join().unwrap();
    assert!(queued.into_iter().all(|r| r.ready() && r.get().is_ok()));
    assert!(pool.worker_pids().is_empty());
}

fn terminate_resolves_queued_tasks_to_terminated(kind: WorkerKind) {
    let mut pool = any_pool(kind, 1);
    let gate = Gate::new();
    let busy = pool
        .apply_async(hold_until_released, (gate.arg(),))
        .unwrap();
    let held = gate.wait_started();
    let queued: Vec<_> = (0..5)
        .map(|i| pool.apply_async(square, (i,)).unwrap())
        .collect();
    pool.terminate();
    assert!(
        queued
            .into_iter()
            .all(|r| r.get() == Err(Error::Terminated))
    );
    drop(held);
    assert_eq!(within("join after terminate", move || pool.join()), Ok(()));
    // A process worker dies with its task; a thread worker finishes it.
    let busy = busy.get();
    match kind {
        WorkerKind::Process => assert!(matches!(busy, Ok(_) | Err(Error::Terminated)), "{busy:?}"),
        WorkerKind::Thread => assert_eq!(busy, Ok(String::new())),
    }
}

#[test]
fn from_wraps_pools_built_either_way() {
    let process = AnyPool::from(
        Pool::builder()
            .workers(1)
            .maxtasksperchild(2)
            .build()
            .unwrap(),
    );
    assert_eq!(process.kind(), WorkerKind::Process);
    assert_eq!(process.map(square, 0..5, Some(1)), Ok(squares(0..5)));
    let thread = AnyPool::from(ThreadPool::with_workers(2).unwrap());
    assert_eq!(thread.kind(), WorkerKind::Thread);
    assert_eq!(thread.apply(|x: u64| x + 1, (1,)), Ok(2));
}

#[test]
fn a_closure_runs_on_threads_and_is_refused_by_processes() {
    let offset = 5;
    let thread = any_pool(WorkerKind::Thread, 1);
    assert_eq!(thread.apply(move |x: u64| x + offset, (1,)), Ok(6));
    let process = any_pool(WorkerKind::Process, 1);
    assert!(matches!(
        process.apply(move |x: u64| x + offset, (1,)),
        Err(Error::Unregistered { .. })
    ));
}
