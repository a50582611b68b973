//! The pool API on both worker kinds: apply, results, callbacks, the map
//! family and panics. Each test is written once, generic over the kind, and
//! runs as `process::NAME` and `thread::NAME` (see `common::on_both_kinds`).
//! The life cycle (close, terminate, join, maxtasksperchild) is in
//! `pool_lifecycle.rs`; behaviour of one kind only is in `pool_process.rs`
//! and `pool_thread.rs`.

mod common;

use std::sync::{Arc, mpsc};
use std::time::Duration;

use procpool::{Error, Runs, TaskFn};

use common::{
    Gate, all_fired, assert_bad_chunksize, assert_panicked_here, on_both_kinds, outcome_callbacks,
    panicked, pool, squares, within,
};

procpool::test_support!();

on_both_kinds! {
    apply_returns_the_tasks_value(square, add);
    async_result_is_pending_until_its_task_ends(hold_until_released);
    async_result_reports_success_and_failure(square, fail_if_odd);
    callbacks_fire_on_the_matching_outcome(square, fail_if_odd);
    map_family_keeps_input_order(square, add);
    map_family_accepts_empty_input(square, add);
    zero_chunksize_is_an_invalid_argument(square, add);
    imap_yields_in_order_from_an_endless_input(square);
    imap_unordered_yields_the_exact_multiset(last_digit);
    large_arguments_and_results_travel_whole(reverse_bytes);
    map_async_with_callbacks_passes_the_whole_list(square, fail_if_odd);
    a_panicking_task_reports_its_message_and_the_worker_serves_on(fail_if_odd, worker_identity);
    a_panic_reports_the_file_and_line_of_its_panic(panic_here, square);
    map_returns_the_failing_items_error(fail_if_odd);
    a_callback_may_submit_more_work(square);
    a_panicking_callback_leaves_the_pool_serving(square);
    an_apply_in_progress_does_not_hold_up_later_tasks(hold_until_released, square);
    applies_from_many_threads_each_get_their_own_results(square);
    terminate_ends_an_apply_in_progress(hold_until_released);
}

fn apply_returns_the_tasks_value<K, Sq, Ad>(_: K, square: Sq, add: Ad)
where
    K: Runs<Sq, (u64,)> + Runs<Ad, (u64, u64)>,
    Sq: TaskFn<(u64,), Output = u64>,
    Ad: TaskFn<(u64, u64), Output = u64>,
{
    let pool = pool::<K>(2);
    assert_eq!(pool.apply(square, (7,)), Ok(49));
    assert_eq!(pool.apply(add, (2, 40)), Ok(42));
}

fn async_result_is_pending_until_its_task_ends<K, Hold>(_: K, hold: Hold)
where
    K: Runs<Hold, (std::ffi::OsString,)>,
    Hold: TaskFn<(std::ffi::OsString,), Output = String> + Copy,
{
    let pool = pool::<K>(2);
    let (first_gate, second_gate) = (Gate::new(), Gate::new());
    let first = pool.apply_async(hold, (first_gate.arg(),)).unwrap();
    let first_held = first_gate.wait_started();
    assert!(!first.ready());
    assert_eq!(first.successful(), None);
    assert!(!first.wait_timeout(Duration::from_millis(20)));

    let second = pool.apply_async(hold, (second_gate.arg(),)).unwrap();
    let second_held = second_gate.wait_started();
    assert_eq!(
        second.get_timeout(Duration::from_millis(20)),
        Err(Error::Timeout)
    );
    second_held.release("given up");

    first_held.release("go");
    first.wait();
    assert!(first.ready());
    assert_eq!(first.successful(), Some(true));
    assert!(first.wait_timeout(Duration::ZERO));
    assert_eq!(first.get(), Ok("go".to_string()));
}

fn async_result_reports_success_and_failure<K, Sq, Fail>(_: K, square: Sq, fail: Fail)
where
    K: Runs<Sq, (u64,)> + Runs<Fail, (u64,)>,
    Sq: TaskFn<(u64,), Output = u64>,
    Fail: TaskFn<(u64,), Output = u64>,
{
    let pool = pool::<K>(2);
    let good = pool.apply_async(square, (3,)).unwrap();
    let bad = pool.apply_async(fail, (3,)).unwrap();
    bad.wait();
    assert!(bad.ready());
    assert_eq!(bad.successful(), Some(false));
    assert_eq!(bad.get(), Err(panicked("odd input 3")));
    assert_eq!(good.get_timeout(common::HANG), Ok(9));
}

fn callbacks_fire_on_the_matching_outcome<K, Sq, Fail>(_: K, square: Sq, fail: Fail)
where
    K: Runs<Sq, (u64,)> + Runs<Fail, (u64,)>,
    Sq: TaskFn<(u64,), Output = u64>,
    Fail: TaskFn<(u64,), Output = u64>,
{
    let pool = pool::<K>(2);
    let (callback, error_callback, fired) = outcome_callbacks();
    let ok = pool
        .apply_async_with_callbacks(square, (5,), callback, error_callback)
        .unwrap();
    assert_eq!(ok.get(), Ok(25));
    assert_eq!(all_fired(fired), vec![Ok(25)]);

    let (callback, error_callback, fired) = outcome_callbacks::<u64>();
    let failed = pool
        .apply_async_with_callbacks(fail, (7,), callback, error_callback)
        .unwrap();
    assert_eq!(failed.get(), Err(panicked("odd input 7")));
    assert_eq!(all_fired(fired), vec![Err(panicked("odd input 7"))]);
}

fn map_family_keeps_input_order<K, Sq, Ad>(_: K, square: Sq, add: Ad)
where
    K: Runs<Sq, (u64,)> + Runs<Ad, (u64, u64)>,
    Sq: TaskFn<(u64,), Output = u64> + Copy,
    Ad: TaskFn<(u64, u64), Output = u64> + Copy,
{
    let pool = pool::<K>(2);
    // 101 items: the default chunk size (13) and 7 both leave a short last chunk.
    let items: Vec<u64> = (0..101).collect();
    let pairs: Vec<(u64, u64)> = items.iter().map(|&x| (x, 1000 * x)).collect();
    let sums: Vec<u64> = items.iter().map(|&x| 1001 * x).collect();
    for chunksize in [None, Some(1), Some(7)] {
        let map = pool.map(square, items.clone(), chunksize);
        assert_eq!(map, Ok(squares(0..101)), "map, chunksize {chunksize:?}");
        let map_async = pool.map_async(square, items.clone(), chunksize).unwrap();
        assert_eq!(map_async.get(), Ok(squares(0..101)), "map_async");
        let starmap = pool.starmap(add, pairs.clone(), chunksize);
        assert_eq!(
            starmap,
            Ok(sums.clone()),
            "starmap, chunksize {chunksize:?}"
        );
        let starmap_async = pool.starmap_async(add, pairs.clone(), chunksize).unwrap();
        assert_eq!(starmap_async.get(), Ok(sums.clone()), "starmap_async");
    }
}

fn map_family_accepts_empty_input<K, Sq, Ad>(_: K, square: Sq, add: Ad)
where
    K: Runs<Sq, (u64,)> + Runs<Ad, (u64, u64)>,
    Sq: TaskFn<(u64,), Output = u64> + Copy,
    Ad: TaskFn<(u64, u64), Output = u64> + Copy,
{
    let pool = pool::<K>(2);
    for chunksize in [None, Some(1), Some(7)] {
        assert_eq!(pool.map(square, Vec::new(), chunksize), Ok(vec![]));
        let map_async = pool.map_async(square, Vec::new(), chunksize).unwrap();
        assert_eq!(map_async.get(), Ok(vec![]));
        assert_eq!(pool.starmap(add, Vec::new(), chunksize), Ok(vec![]));
        let starmap_async = pool.starmap_async(add, Vec::new(), chunksize).unwrap();
        assert_eq!(starmap_async.get(), Ok(vec![]));
        assert_eq!(pool.imap(square, Vec::new(), chunksize).unwrap().count(), 0);
        let unordered = pool.imap_unordered(square, Vec::new(), chunksize).unwrap();
        assert_eq!(unordered.count(), 0);
    }
    let (callback, error_callback, fired) = outcome_callbacks();
    let r = pool
        .map_async_with_callbacks(square, Vec::new(), None, callback, error_callback)
        .unwrap();
    assert_eq!(r.get(), Ok(vec![]));
    assert_eq!(all_fired(fired), vec![Ok(vec![])]);
}

fn zero_chunksize_is_an_invalid_argument<K, Sq, Ad>(_: K, square: Sq, add: Ad)
where
    K: Runs<Sq, (u64,)> + Runs<Ad, (u64, u64)>,
    Sq: TaskFn<(u64,), Output = u64> + Copy,
    Ad: TaskFn<(u64, u64), Output = u64> + Copy,
{
    let pool = pool::<K>(1);
    assert_bad_chunksize(pool.map(square, 0..3, Some(0)));
    assert_bad_chunksize(pool.map_async(square, 0..3, Some(0)));
    assert_bad_chunksize(pool.starmap(add, [(1, 2)], Some(0)));
    assert_bad_chunksize(pool.starmap_async(add, [(1, 2)], Some(0)));
    assert_bad_chunksize(pool.imap(square, 0.., Some(0)));
    assert_bad_chunksize(pool.imap_unordered(square, 0.., Some(0)));
    let (callback, error_callback, _fired) = outcome_callbacks();
    assert_bad_chunksize(pool.map_async_with_callbacks(
        square,
        0..3,
        Some(0),
        callback,
        error_callback,
    ));
    assert_eq!(pool.map(square, 0..3, Some(1)), Ok(vec![0, 1, 4]));
}

fn imap_yields_in_order_from_an_endless_input<K, Sq>(_: K, square: Sq)
where
    K: Runs<Sq, (u64,)>,
    Sq: TaskFn<(u64,), Output = u64> + Copy,
{
    let pool = pool::<K>(2);
    for chunksize in [None, Some(1), Some(7)] {
        let results = pool.imap(square, 0u64.., chunksize).unwrap();
        let got: Result<Vec<u64>, Error> = results.take(300).collect();
        assert_eq!(got, Ok(squares(0..300)), "chunksize {chunksize:?}");
    }
}

fn imap_unordered_yields_the_exact_multiset<K, Digit>(_: K, last_digit: Digit)
where
    K: Runs<Digit, (u64,)>,
    Digit: TaskFn<(u64,), Output = u64> + Copy,
{
    let pool = pool::<K>(2);
    // Every digit 100 times: a lost or doubled result changes a count.
    let mut expected: Vec<u64> = (0..1000).map(|x| x % 10).collect();
    expected.sort_unstable();
    for chunksize in [None, Some(1), Some(7)] {
        let results = pool.imap_unordered(last_digit, 0..1000, chunksize).unwrap();
        let mut got: Vec<u64> = results.collect::<Result<_, _>>().unwrap();
        got.sort_unstable();
        assert_eq!(got, expected, "chunksize {chunksize:?}");
    }
}

fn large_arguments_and_results_travel_whole<K, Rev>(_: K, reverse: Rev)
where
    K: Runs<Rev, (Vec<u8>,)>,
    Rev: TaskFn<(Vec<u8>,), Output = Vec<u8>>,
{
    let pool = pool::<K>(1);
    let data: Vec<u8> = (0..3 * 1024 * 1024 + 1).map(|i| (i % 251) as u8).collect();
    let mut expected = data.clone();
    expected.reverse();
    assert!(pool.apply(reverse, (data,)) == Ok(expected));
}

fn map_async_with_callbacks_passes_the_whole_list<K, Sq, Fail>(_: K, square: Sq, fail: Fail)
where
    K: Runs<Sq, (u64,)> + Runs<Fail, (u64,)>,
    Sq: TaskFn<(u64,), Output = u64>,
    Fail: TaskFn<(u64,), Output = u64>,
{
    let pool = pool::<K>(2);
    let (callback, error_callback, fired) = outcome_callbacks();
    let r = pool
        .map_async_with_callbacks(square, 0..20, Some(3), callback, error_callback)
        .unwrap();
    assert_eq!(r.get(), Ok(squares(0..20)));
    assert_eq!(all_fired(fired), vec![Ok(squares(0..20))]);

    let (callback, error_callback, fired) = outcome_callbacks::<Vec<u64>>();
    let r = pool
        .map_async_with_callbacks(fail, [0, 2, 5, 6], Some(1), callback, error_callback)
        .unwrap();
    assert_eq!(r.get(), Err(panicked("odd input 5")));
    assert_eq!(all_fired(fired), vec![Err(panicked("odd input 5"))]);
}

fn a_panicking_task_reports_its_message_and_the_worker_serves_on<K, Fail, Id>(
    _: K,
    fail: Fail,
    identity: Id,
) where
    K: Runs<Fail, (u64,)> + Runs<Id, ()>,
    Fail: TaskFn<(u64,), Output = u64> + Copy,
    Id: TaskFn<(), Output = String> + Copy,
{
    let pool = pool::<K>(1);
    let before = pool.apply(identity, ()).unwrap();
    assert_eq!(pool.apply(fail, (3,)), Err(panicked("odd input 3")));
    assert_eq!(pool.apply(fail, (4,)), Ok(4));
    assert_eq!(
        pool.apply(identity, ()),
        Ok(before),
        "the same worker serves"
    );
}

fn map_returns_the_failing_items_error<K, Fail>(_: K, fail: Fail)
where
    K: Runs<Fail, (u64,)>,
    Fail: TaskFn<(u64,), Output = u64> + Copy,
{
    let pool = pool::<K>(2);
    let items = [0, 2, 4, 7, 8, 10];
    for chunksize in [None, Some(1), Some(4)] {
        let map = pool.map(fail, items, chunksize);
        assert_eq!(map, Err(panicked("odd input 7")), "chunksize {chunksize:?}");
    }
    // imap hands out each item's own outcome, failing neighbours included.
    let got: Vec<_> = pool.imap(fail, items, Some(2)).unwrap().collect();
    let seven = Err(panicked("odd input 7"));
    assert_eq!(got, vec![Ok(0), Ok(2), Ok(4), seven, Ok(8), Ok(10)]);
}

fn a_callback_may_submit_more_work<K, Sq>(_: K, square: Sq)
where
    K: Runs<Sq, (u64,)>,
    Sq: TaskFn<(u64,), Output = u64> + Copy,
{
    let pool = Arc::new(pool::<K>(1));
    let (tx, follow_ups) = mpsc::channel();
    let handle = pool.clone();
    let resubmit = move |v: &u64| tx.send(handle.apply_async(square, (*v,))).unwrap();
    let first = pool
        .apply_async_with_callbacks(square, (3,), resubmit, |_| {})
        .unwrap();
    assert_eq!(within("the first result", move || first.get()), Ok(9));
    let follow_up = follow_ups.recv().unwrap().expect("the pool accepts it");
    assert_eq!(within("the follow-up", move || follow_up.get()), Ok(81));
}

/// The panic is reported on stderr; the thread that ran the callback goes
/// on delivering results.
fn a_panicking_callback_leaves_the_pool_serving<K, Sq>(_: K, square: Sq)
where
    K: Runs<Sq, (u64,)>,
    Sq: TaskFn<(u64,), Output = u64> + Copy,
{
    let pool = pool::<K>(1);
    let callback = |_: &u64| std::panic::resume_unwind(Box::new("callback bug"));
    let r = pool
        .apply_async_with_callbacks(square, (2,), callback, |_| {})
        .unwrap();
    assert_eq!(r.get(), Ok(4));
    assert_eq!(pool.map(square, 0..10, Some(1)), Ok(squares(0..10)));
}

/// Python shows the worker's traceback; here the error says where the
/// `panic!` is, for `apply` and for an item of a `map` alike.
fn a_panic_reports_the_file_and_line_of_its_panic<K, P, Sq>(_: K, panic_here: P, square: Sq)
where
    K: Runs<P, (u64,)> + Runs<Sq, (u64,)>,
    P: TaskFn<(u64,), Output = u64> + Copy,
    Sq: TaskFn<(u64,), Output = u64>,
{
    let pool = pool::<K>(1);
    assert_panicked_here(&pool.apply(panic_here, (7,)).unwrap_err(), 7);
    let mapped: Vec<_> = pool.imap(panic_here, [1, 2], Some(2)).unwrap().collect();
    assert_panicked_here(mapped[0].as_ref().unwrap_err(), 1);
    assert_panicked_here(mapped[1].as_ref().unwrap_err(), 2);
    assert_eq!(pool.apply(square, (3,)), Ok(9), "the worker serves on");
}

/// An `apply` in progress holds one worker (on a process pool its caller
/// makes the round trip itself): tasks submitted meanwhile, queued or
/// applied, run on the other worker instead of waiting for it.
fn an_apply_in_progress_does_not_hold_up_later_tasks<K, Hold, Sq>(_: K, hold: Hold, square: Sq)
where
    K: Runs<Hold, (std::ffi::OsString,)> + Runs<Sq, (u64,)>,
    Hold: TaskFn<(std::ffi::OsString,), Output = String>,
    Sq: TaskFn<(u64,), Output = u64> + Copy,
{
    let pool = Arc::new(pool::<K>(2));
    let gate = Gate::new();
    let applying = {
        let (pool, arg) = (pool.clone(), gate.arg());
        std::thread::spawn(move || pool.apply(hold, (arg,)))
    };
    let held = gate.wait_started();
    let queued = pool.apply_async(square, (7,)).unwrap();
    assert_eq!(within("a queued task", move || queued.get()), Ok(49));
    let other = pool.clone();
    assert_eq!(
        within("an apply", move || other.apply(square, (8,))),
        Ok(64)
    );
    held.release("done");
    let got = within("the held apply", move || applying.join().unwrap());
    assert_eq!(got, Ok("done".to_string()));
}

/// Callers on more threads than there are workers each get their own
/// results, whether their `apply` finds a worker idle or waits in the
/// queue, and a map submitted meanwhile is whole.
fn applies_from_many_threads_each_get_their_own_results<K, Sq>(_: K, square: Sq)
where
    K: Runs<Sq, (u64,)>,
    Sq: TaskFn<(u64,), Output = u64> + Copy,
{
    let pool = Arc::new(pool::<K>(2));
    let callers: Vec<_> = (0..6u64)
        .map(|t| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                (t * 1000..t * 1000 + 300)
                    .map(|i| pool.apply(square, (i,)))
                    .collect::<Result<Vec<_>, _>>()
            })
        })
        .collect();
    let mapped = pool.map_async(square, 0..2000, Some(7)).unwrap();
    for (t, caller) in (0..).zip(callers) {
        let got = within("a caller's applies", move || caller.join().unwrap());
        assert_eq!(got, Ok(squares(t * 1000..t * 1000 + 300)));
    }
    assert_eq!(
        within("the map", move || mapped.get()),
        Ok(squares(0..2000))
    );
}

/// `terminate()` while another thread's `apply` runs ends that apply (a
/// process worker is stopped with its task, a thread finishes it) and
/// lets the pool join.
fn terminate_ends_an_apply_in_progress<K, Hold>(_: K, hold: Hold)
where
    K: Runs<Hold, (std::ffi::OsString,)>,
    Hold: TaskFn<(std::ffi::OsString,), Output = String>,
{
    let pool = Arc::new(pool::<K>(1));
    let gate = Gate::new();
    let applying = {
        let (pool, arg) = (pool.clone(), gate.arg());
        std::thread::spawn(move || pool.apply(hold, (arg,)))
    };
    let held = gate.wait_started();
    pool.terminate();
    drop(held);
    let got = within("the apply after terminate", move || {
        applying.join().unwrap()
    });
    assert!(matches!(got, Ok(_) | Err(Error::Terminated)), "{got:?}");
    let mut pool = Arc::into_inner(pool).expect("the caller's handle is gone");
    assert_eq!(within("join after terminate", move || pool.join()), Ok(()));
}
