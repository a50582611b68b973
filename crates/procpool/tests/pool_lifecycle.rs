//! The pool's life cycle on both worker kinds: close, terminate and join,
//! callbacks that stop the pool or drop it, and `maxtasksperchild`. Each
//! test runs as `process::NAME` and `thread::NAME` (see
//! `common::on_both_kinds`).

mod common;

use std::sync::{Arc, mpsc};

use procpool::{Error, Kind, Runs, TaskFn, WorkerPool};

use common::{
    Gate, all_fired, assert_bad_chunksize, assert_closed, on_both_kinds, outcome_callbacks, pool,
    squares, within,
};

procpool::test_support!();

on_both_kinds! {
    an_imap_started_before_close_yields_everything(square);
    an_imap_cut_short_by_terminate_gives_each_item_it_took_one_result(square);
    submitting_after_close_or_terminate_is_refused(square, add);
    a_refused_submission_fires_no_callback(square);
    join_before_close_or_terminate_is_still_running(square);
    close_then_join_delivers_queued_results(hold_until_released, square);
    terminate_resolves_queued_results_at_once(hold_until_released, square);
    a_callback_may_terminate_its_own_pool(hold_until_released, square);
    dropping_the_last_handle_in_a_callback_does_not_deadlock(hold_until_released, square);
    builder_rejects_zero_workers_and_zero_maxtasksperchild();
    maxtasksperchild_replaces_workers(worker_identity);
    maxtasksperchild_counts_a_map_chunk_as_one_task(item_identity);
}

/// `close()` stops new submissions, not the rest of an `imap`'s input
/// (`Shared::push_all`). An `IMap` is not `Send`, so the whole test runs
/// under `within`, which turns a hang into a failure.
fn an_imap_started_before_close_yields_everything<K, Sq>(_: K, square: Sq)
where
    K: Runs<Sq, (u64,)>,
    Sq: TaskFn<(u64,), Output = u64> + Copy,
{
    let collect_after_close = move || {
        let pool = pool::<K>(2);
        // 300 chunks of one: more than the window an imap submits ahead.
        let ordered = pool.imap(square, 0..300, Some(1)).unwrap();
        let unordered = pool.imap_unordered(square, 0..300, Some(1)).unwrap();
        pool.close();
        let ordered: Result<Vec<u64>, Error> = ordered.collect();
        let mut unordered: Vec<u64> = unordered.collect::<Result<_, _>>().unwrap();
        unordered.sort_unstable();
        (ordered, unordered)
    };
    let (ordered, unordered) = within("imap after close", collect_after_close);
    assert_eq!(ordered, Ok(squares(0..300)));
    assert_eq!(unordered, squares(0..300));
}

/// After `terminate()` an imap's next chunk is refused: the iterator ends
/// after that chunk's error (last, for `imap`), and every item it took from the input comes out
/// exactly once (a value, or `Terminated`/`Closed`), in order for `imap`.
fn an_imap_cut_short_by_terminate_gives_each_item_it_took_one_result<K, Sq>(_: K, square: Sq)
where
    K: Runs<Sq, (u64,)>,
    Sq: TaskFn<(u64,), Output = u64> + Copy,
{
    let run = move |ordered: bool| {
        let pool = pool::<K>(1);
        let taken = std::rc::Rc::new(std::cell::Cell::new(0u64));
        let counter = taken.clone();
        let input = (0..100_000u64).inspect(move |_| counter.set(counter.get() + 1));
        let mut results: Box<dyn Iterator<Item = Result<u64, Error>>> = if ordered {
            Box::new(pool.imap(square, input, Some(1)).unwrap())
        } else {
            Box::new(pool.imap_unordered(square, input, Some(1)).unwrap())
        };
        let first = results.next();
        pool.terminate();
        let rest: Vec<_> = results.collect();
        (first, rest, taken.get())
    };
    for ordered in [true, false] {
        let (first, rest, taken) = within("an imap after terminate", move || {
            let (first, rest, taken) = run(ordered);
            (first, rest, taken)
        });
        assert!(matches!(first, Some(Ok(_))), "{first:?}");
        let closed = rest.iter().filter(|r| **r == Err(Error::Closed)).count();
        assert_eq!(closed, 1, "one refused chunk of one item: {rest:?}");
        if ordered {
            assert_eq!(
                rest.last(),
                Some(&Err(Error::Closed)),
                "the refusal comes last"
            );
        }
        let all: Vec<_> = first.into_iter().chain(rest).collect();
        assert_eq!(all.len() as u64, taken, "one result per item taken");
        let values: Vec<u64> = all.iter().filter_map(|r| r.clone().ok()).collect();
        let stopped = |r: &&Result<u64, Error>| matches!(r, Err(Error::Terminated | Error::Closed));
        assert_eq!(all.iter().filter(stopped).count() + values.len(), all.len());
        let mut distinct = values.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), values.len(), "no value twice");
        if ordered {
            let squares: Vec<u64> = (0..values.len() as u64).map(|i| i * i).collect();
            assert_eq!(values, squares, "the values come first, in order");
        }
    }
}

fn submitting_after_close_or_terminate_is_refused<K, Sq, Ad>(_: K, square: Sq, add: Ad)
where
    K: Runs<Sq, (u64,)> + Runs<Ad, (u64, u64)>,
    Sq: TaskFn<(u64,), Output = u64> + Copy,
    Ad: TaskFn<(u64, u64), Output = u64> + Copy,
{
    let stops: [fn(&WorkerPool<K>); 2] = [WorkerPool::close, WorkerPool::terminate];
    for stop in stops {
        let pool = pool::<K>(1);
        stop(&pool);
        assert_closed(pool.apply(square, (1,)));
        assert_closed(pool.apply_async(square, (1,)));
        assert_closed(pool.apply_async_with_callbacks(square, (1,), |_| {}, |_| {}));
        assert_closed(pool.map(square, [1], None));
        assert_closed(pool.map(square, [], None));
        assert_closed(pool.map_async(square, [1], None));
        assert_closed(pool.map_async_with_callbacks(square, [1], None, |_| {}, |_| {}));
        assert_closed(pool.starmap(add, [(1, 2)], None));
        assert_closed(pool.starmap_async(add, [(1, 2)], None));
        assert_closed(pool.imap(square, 0.., None));
        assert_closed(pool.imap_unordered(square, 0.., None));
    }
}

/// Python raises before it creates the result, so no callback ever runs
/// for a submission that was refused.
fn a_refused_submission_fires_no_callback<K, Sq>(_: K, square: Sq)
where
    K: Runs<Sq, (u64,)>,
    Sq: TaskFn<(u64,), Output = u64> + Copy,
{
    let pool = pool::<K>(1);
    let (callback, error_callback, fired) = outcome_callbacks();
    let bad_chunksize =
        pool.map_async_with_callbacks(square, 0..3, Some(0), callback, error_callback);
    assert_bad_chunksize(bad_chunksize);
    assert_eq!(all_fired(fired), vec![], "after a bad chunksize");

    pool.close();
    let (callback, error_callback, fired) = outcome_callbacks();
    let apply = pool.apply_async_with_callbacks(square, (2,), callback, error_callback);
    assert_closed(apply);
    assert_eq!(
        all_fired(fired),
        vec![],
        "after apply_async on a closed pool"
    );
    let (callback, error_callback, fired) = outcome_callbacks();
    let map = pool.map_async_with_callbacks(square, 0..3, None, callback, error_callback);
    assert_closed(map);
    assert_eq!(all_fired(fired), vec![], "after map_async on a closed pool");
}

fn join_before_close_or_terminate_is_still_running<K, Sq>(_: K, square: Sq)
where
    K: Runs<Sq, (u64,)>,
    Sq: TaskFn<(u64,), Output = u64> + Copy,
{
    let stops: [fn(&WorkerPool<K>); 2] = [WorkerPool::close, WorkerPool::terminate];
    for stop in stops {
        let mut pool = pool::<K>(1);
        assert_eq!(pool.join(), Err(Error::StillRunning));
        assert_eq!(pool.apply(square, (2,)), Ok(4), "the pool still runs");
        stop(&pool);
        assert_eq!(pool.join(), Ok(()));
        assert_eq!(pool.join(), Ok(()), "a second join is harmless");
    }
}

fn close_then_join_delivers_queued_results<K, Hold, Sq>(_: K, hold: Hold, square: Sq)
where
    K: Runs<Hold, (std::ffi::OsString,)> + Runs<Sq, (u64,)>,
    Hold: TaskFn<(std::ffi::OsString,), Output = String>,
    Sq: TaskFn<(u64,), Output = u64> + Copy,
{
    let mut pool = pool::<K>(1);
    let gate = Gate::new();
    let busy = pool.apply_async(hold, (gate.arg(),)).unwrap();
    let held = gate.wait_started();
    // The only worker is busy, so all of these are queued when close() runs.
    let queued: Vec<_> = (0..20)
        .map(|i| pool.apply_async(square, (i,)).unwrap())
        .collect();
    let mapped = pool.map_async(square, 0..20, Some(3)).unwrap();
    pool.close();
    held.release("done");
    assert_eq!(within("join after close", move || pool.join()), Ok(()));
    assert!(
        queued.iter().all(|r| r.ready()),
        "join waited for the queue"
    );
    assert_eq!(busy.get(), Ok("done".to_string()));
    let got: Vec<_> = queued.into_iter().map(|r| r.get().unwrap()).collect();
    assert_eq!(got, squares(0..20));
    assert_eq!(mapped.get(), Ok(squares(0..20)));
}

fn terminate_resolves_queued_results_at_once<K, Hold, Sq>(_: K, hold: Hold, square: Sq)
where
    K: Runs<Hold, (std::ffi::OsString,)> + Runs<Sq, (u64,)>,
    Hold: TaskFn<(std::ffi::OsString,), Output = String>,
    Sq: TaskFn<(u64,), Output = u64> + Copy,
{
    let mut pool = pool::<K>(1);
    let gate = Gate::new();
    let busy = pool.apply_async(hold, (gate.arg(),)).unwrap();
    let held = gate.wait_started();
    let queued: Vec<_> = (0..20)
        .map(|i| pool.apply_async(square, (i,)).unwrap())
        .collect();
    let mapped = pool.map_async(square, 0..20, Some(3)).unwrap();
    pool.terminate();
    // Resolved by the time terminate() returns, without waiting for workers.
    assert!(queued.iter().all(|r| r.ready()));
    assert!(mapped.ready());
    assert!(
        queued
            .into_iter()
            .all(|r| r.get() == Err(Error::Terminated))
    );
    assert_eq!(mapped.get(), Err(Error::Terminated));
    drop(held);
    assert_eq!(within("join after terminate", move || pool.join()), Ok(()));
    // A process worker dies with its task; a thread worker finishes it.
    let busy = busy.get();
    assert!(matches!(busy, Ok(_) | Err(Error::Terminated)), "{busy:?}");
}

fn a_callback_may_terminate_its_own_pool<K, Hold, Sq>(_: K, hold: Hold, square: Sq)
where
    K: Runs<Hold, (std::ffi::OsString,)> + Runs<Sq, (u64,)>,
    Hold: TaskFn<(std::ffi::OsString,), Output = String>,
    Sq: TaskFn<(u64,), Output = u64> + Copy,
{
    let pool = Arc::new(pool::<K>(1));
    let gate = Gate::new();
    let busy = pool.apply_async(hold, (gate.arg(),)).unwrap();
    let held = gate.wait_started();
    let handle = pool.clone();
    let terminating = pool
        .apply_async_with_callbacks(square, (2,), move |_| handle.terminate(), |_| {})
        .unwrap();
    let after: Vec<_> = (0..5)
        .map(|i| pool.apply_async(square, (i,)).unwrap())
        .collect();
    held.release("go");
    assert_eq!(busy.get(), Ok("go".to_string()));
    assert_eq!(within("the result", move || terminating.get()), Ok(4));
    assert_closed(pool.apply_async(square, (1,)));
    // Tasks that were queued behind it were cancelled, or had been sent
    // to the worker in the same batch and finished; either way, resolved.
    for (i, r) in (0..5).zip(after) {
        let got = within("a later result", move || r.get());
        assert!(matches!(got, Err(Error::Terminated)) || got == Ok(i * i));
    }
    let mut pool = Arc::into_inner(pool).expect("the callback dropped its handle");
    assert_eq!(within("join", move || pool.join()), Ok(()));
}

fn dropping_the_last_handle_in_a_callback_does_not_deadlock<K, Hold, Sq>(
    _: K,
    hold: Hold,
    square: Sq,
) where
    K: Runs<Hold, (std::ffi::OsString,)> + Runs<Sq, (u64,)>,
    Hold: TaskFn<(std::ffi::OsString,), Output = String>,
    Sq: TaskFn<(u64,), Output = u64>,
{
    let pool = Arc::new(pool::<K>(1));
    let gate = Gate::new();
    let busy = pool.apply_async(hold, (gate.arg(),)).unwrap();
    let held = gate.wait_started();
    let (tx, dropped) = mpsc::channel();
    let last = pool.clone();
    let callback = move |v: &u64| {
        drop(last);
        tx.send(*v).unwrap();
    };
    let r = pool
        .apply_async_with_callbacks(square, (3,), callback, |_| {})
        .unwrap();
    drop(pool);
    held.release("go");
    assert_eq!(within("the result", move || r.get()), Ok(9));
    assert_eq!(dropped.recv(), Ok(9));
    assert_eq!(busy.get(), Ok("go".to_string()));
}

fn builder_rejects_zero_workers_and_zero_maxtasksperchild<K: Kind>(_: K) {
    let no_workers = WorkerPool::<K>::builder().workers(0).build();
    assert!(matches!(no_workers, Err(Error::InvalidArgument { .. })));
    let no_tasks = WorkerPool::<K>::builder().maxtasksperchild(0).build();
    assert!(matches!(no_tasks, Err(Error::InvalidArgument { .. })));
}

fn maxtasksperchild_replaces_workers<K, Id>(_: K, identity: Id)
where
    K: Runs<Id, ()>,
    Id: TaskFn<(), Output = String> + Copy,
{
    let builder = WorkerPool::<K>::builder().workers(1).maxtasksperchild(2);
    let pool = builder.build().unwrap();
    let ids: Vec<String> = (0..6).map(|_| pool.apply(identity, ()).unwrap()).collect();
    assert_eq!(ids[0], ids[1]);
    assert_eq!(ids[2], ids[3]);
    assert_eq!(ids[4], ids[5]);
    assert!(
        ids[0] != ids[2] && ids[2] != ids[4] && ids[0] != ids[4],
        "{ids:?}"
    );
}

/// As in Python, a `map` chunk counts as one task, whatever its size.
fn maxtasksperchild_counts_a_map_chunk_as_one_task<K, Id>(_: K, item_identity: Id)
where
    K: Runs<Id, (u64,)>,
    Id: TaskFn<(u64,), Output = String> + Copy,
{
    let builder = WorkerPool::<K>::builder().workers(1).maxtasksperchild(2);
    let pool = builder.build().unwrap();
    let chunk = pool.map(item_identity, [0, 1, 2], Some(3)).unwrap();
    assert!(
        chunk.iter().all(|id| *id == chunk[0]),
        "one chunk, one worker"
    );
    let second = pool.apply(item_identity, (3,)).unwrap();
    assert_eq!(second, chunk[0], "the chunk of three was one task");
    let third = pool.apply(item_identity, (4,)).unwrap();
    assert_ne!(third, chunk[0], "replaced after its second task");
}
