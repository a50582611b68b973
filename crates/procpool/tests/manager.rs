//! The manager's queues used from other processes: child processes that are
//! this test binary re-run on one test (`--exact`), and pool workers.
//!
//! A child learns its role from [`ROLE`] and gets its queue handles,
//! postcard-encoded in hex, from [`HANDLES`]: exactly how a handle travels
//! to a pool worker inside a task's arguments.

use std::collections::BTreeMap;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use procpool::{GetError, Manager, ManagerError, Pool, PutError, Queue, ThreadPool, TryGetError};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

procpool::test_support!();

const ROLE: &str = "PROCPOOL_MANAGER_TEST_ROLE";
const HANDLES: &str = "PROCPOOL_MANAGER_TEST_HANDLES";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// Starts this binary on `test` as a child with `role` and `handles`.
fn spawn_child<H: Serialize>(test: &str, role: &str, handles: &H) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            test,
            "--include-ignored",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(ROLE, role)
        .env(HANDLES, hex(&postcard::to_allocvec(handles).unwrap()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// The role and handles of this process if it is a child.
fn child_role<H: DeserializeOwned>() -> Option<(String, H)> {
    let role = std::env::var(ROLE).ok()?;
    let handles = postcard::from_bytes(&unhex(&std::env::var(HANDLES).unwrap())).unwrap();
    Some((role, handles))
}

/// Waits for `child` to exit, failing the test instead of hanging if it
/// has not within `limit`.
fn wait_within(mut child: Child, limit: Duration) -> ExitStatus {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    let waiter = thread::spawn(move || tx.send(child.wait().unwrap()).unwrap());
    match rx.recv_timeout(limit) {
        Ok(status) => {
            waiter.join().unwrap();
            status
        }
        Err(_) => {
            // SAFETY: `pid` is our unreaped child (the waiter thread has not
            // returned), so the number cannot have been reused.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("child {pid} still running after {limit:?}");
        }
    }
}

/// Waits for `children`, then closes `queue`, so a consumer in this process
/// ends even when a producer died early. Returns whether all succeeded.
fn close_when_done<T>(children: Vec<Child>, queue: Queue<T>) -> thread::JoinHandle<bool>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    thread::spawn(move || {
        let statuses: Vec<_> = children
            .into_iter()
            .map(|c| wait_within(c, Duration::from_secs(60)))
            .collect();
        queue.close().unwrap();
        statuses.iter().all(ExitStatus::success)
    })
}

fn counts<T: Ord>(items: impl IntoIterator<Item = T>) -> BTreeMap<T, usize> {
    let mut counts = BTreeMap::new();
    for item in items {
        *counts.entry(item).or_insert(0) += 1;
    }
    counts
}

#[test]
fn process_producers_deliver_an_exact_multiset() {
    const ITEMS: u64 = 2000;
    if let Some((role, queue)) = child_role::<Queue<(u32, u64)>>() {
        let producer: u32 = role.parse().unwrap();
        for i in (0..ITEMS).step_by(100) {
            queue
                .put_many((i..i + 50).map(|j| (producer, j)).collect())
                .unwrap();
            for j in i + 50..i + 100 {
                queue.put((producer, j)).unwrap();
            }
        }
        return;
    }
    // Bounded: each put is a round trip; unbounded: puts are write-behind.
    for maxsize in [64, 0] {
        let manager = Manager::new().unwrap();
        let queue = manager.queue::<(u32, u64)>(maxsize).unwrap();
        let children: Vec<_> = (0..2)
            .map(|p| {
                spawn_child(
                    "process_producers_deliver_an_exact_multiset",
                    &p.to_string(),
                    &queue,
                )
            })
            .collect();
        let producers = close_when_done(children, queue.clone());
        let mut got = Vec::new();
        while let Ok(batch) = queue.get_many(128) {
            got.extend(batch);
        }
        assert!(producers.join().unwrap(), "a producer failed");
        let expected = counts((0..2).flat_map(|p| (0..ITEMS).map(move |i| (p, i))));
        assert_eq!(counts(got), expected);
    }
}

/// Write-behind puts are in the manager's socket once `put` returns, so a
/// producer that exits at once, without dropping its handle, loses none.
#[test]
fn a_producer_exiting_right_after_its_puts_loses_nothing() {
    if let Some((_, queue)) = child_role::<Queue<u64>>() {
        for i in 0..1000 {
            queue.put(i).unwrap();
        }
        // No destructors run: nothing gets settled or flushed.
        std::process::exit(0);
    }
    let manager = Manager::new().unwrap();
    let queue = manager.queue::<u64>(0).unwrap();
    let child = spawn_child(
        "a_producer_exiting_right_after_its_puts_loses_nothing",
        "producer",
        &queue,
    );
    assert!(wait_within(child, Duration::from_secs(20)).success());
    let mut got = Vec::new();
    while got.len() < 1000 {
        match queue.get_timeout(Duration::from_secs(10)) {
            Ok(item) => got.push(item),
            Err(e) => panic!("after {} items: {e}", got.len()),
        }
    }
    assert_eq!(got, (0..1000).collect::<Vec<_>>());
}

#[test]
fn process_consumers_take_what_the_parent_put() {
    if let Some((_, (work, done))) = child_role::<(Queue<u64>, Queue<u64>)>() {
        loop {
            match work.get() {
                Ok(item) => done.put(item).unwrap(),
                Err(GetError::Closed) => return,
                Err(e) => panic!("consumer failed: {e}"),
            }
        }
    }
    let manager = Manager::new().unwrap();
    let work = manager.queue::<u64>(10).unwrap();
    let done = manager.queue::<u64>(0).unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            spawn_child(
                "process_consumers_take_what_the_parent_put",
                "consumer",
                &(&work, &done),
            )
        })
        .collect();
    for i in 0..1000 {
        work.put(i).unwrap();
    }
    work.close().unwrap();
    for child in children {
        assert!(wait_within(child, Duration::from_secs(20)).success());
    }
    let mut got = Vec::new();
    while let Ok(item) = done.get_nowait() {
        got.push(item);
    }
    assert_eq!(counts(got), counts(0..1000));
}

/// The same fields as a serialized `Queue`, to forge one.
#[derive(Serialize, Deserialize)]
struct HandleMirror {
    socket: Vec<u8>,
    token: [u8; 32],
    queue: u32,
    maxsize: u64,
}

#[test]
fn a_forged_token_is_refused_from_another_process() {
    if let Some((_, forged)) = child_role::<Queue<u32>>() {
        let refused = matches!(
            forged.get_nowait(),
            Err(TryGetError::Failed(ManagerError::Refused))
        );
        std::process::exit(if refused { 0 } else { 1 });
    }
    let manager = Manager::new().unwrap();
    let queue = manager.queue::<u32>(0).unwrap();
    queue.put(7).unwrap();
    let mut mirror: HandleMirror =
        postcard::from_bytes(&postcard::to_allocvec(&queue).unwrap()).unwrap();
    mirror.token[31] ^= 0x80;
    let child = spawn_child(
        "a_forged_token_is_refused_from_another_process",
        "forger",
        &mirror,
    );
    assert!(
        wait_within(child, Duration::from_secs(20)).success(),
        "the forged handle was not refused"
    );
    assert_eq!(queue.get_nowait().unwrap(), 7);
}

/// The child reports ready on one queue, then blocks in `get` on another;
/// dropping the manager must end that `get` with `Gone`.
#[test]
fn dropping_the_manager_ends_a_remote_get_with_gone() {
    if let Some((_, (ready, work))) = child_role::<(Queue<u32>, Queue<u32>)>() {
        ready.put(std::process::id()).unwrap();
        let got = work.get();
        let put = ready.put(0);
        let gone = matches!(got, Err(GetError::Failed(ManagerError::Gone)));
        let still_gone = matches!(put, Err(PutError::Failed(0, ManagerError::Gone)));
        if !(gone && still_gone) {
            eprintln!("after the manager's drop: get gave {got:?}, put gave {put:?}");
            std::process::exit(1);
        }
        return;
    }
    let manager = Manager::new().unwrap();
    let ready = manager.queue::<u32>(0).unwrap();
    let work = manager.queue::<u32>(0).unwrap();
    let child = spawn_child(
        "dropping_the_manager_ends_a_remote_get_with_gone",
        "waiter",
        &(&ready, &work),
    );
    assert_eq!(ready.get().unwrap(), child.id());
    drop(manager);
    assert!(
        wait_within(child, Duration::from_secs(20)).success(),
        "the child did not see Gone"
    );
}

fn produce(queue: Queue<u64>, start: u64, count: u64) -> u64 {
    for i in start..start + count {
        queue.put(i).unwrap();
    }
    count
}

/// Takes items until the queue is closed, reporting each on `done`.
fn consume(work: Queue<u64>, done: Queue<u64>) -> usize {
    let mut taken = 0;
    while let Ok(batch) = work.get_many(8) {
        taken += batch.len();
        for item in batch {
            done.put(item).unwrap();
        }
    }
    taken
}

/// Says which worker it runs in, then blocks for one item.
fn take_one(ready: Queue<u32>, work: Queue<u64>) -> u64 {
    ready.put(std::process::id()).unwrap();
    work.get().unwrap()
}

procpool::register!(produce, consume, take_one);

/// Drains `queue` without waiting.
fn drain(queue: &Queue<u64>) -> Vec<u64> {
    let mut got = Vec::new();
    while let Ok(item) = queue.get_nowait() {
        got.push(item);
    }
    got
}

#[test]
fn process_workers_produce_for_thread_workers() {
    let manager = Manager::new().unwrap();
    let work = manager.queue::<u64>(16).unwrap();
    let done = manager.queue::<u64>(0).unwrap();
    let processes = Pool::with_workers(2).unwrap();
    let threads = ThreadPool::with_workers(2).unwrap();
    let produced: Vec<_> = (0..4)
        .map(|p| {
            processes
                .apply_async(produce, (work.clone(), p * 250, 250))
                .unwrap()
        })
        .collect();
    let consumed: Vec<_> = (0..2)
        .map(|_| {
            threads
                .apply_async(consume, (work.clone(), done.clone()))
                .unwrap()
        })
        .collect();
    assert_eq!(
        produced.into_iter().map(|r| r.get().unwrap()).sum::<u64>(),
        1000
    );
    work.close().unwrap();
    assert_eq!(
        consumed
            .into_iter()
            .map(|r| r.get().unwrap())
            .sum::<usize>(),
        1000
    );
    assert_eq!(counts(drain(&done)), counts(0..1000));
}

/// The process workers report each item on an unbounded queue with
/// write-behind puts; a task's puts are in place by the time its result
/// arrives, so the parent sees them all without waiting.
#[test]
fn thread_workers_produce_for_process_workers() {
    let manager = Manager::new().unwrap();
    let work = manager.queue::<u64>(16).unwrap();
    let done = manager.queue::<u64>(0).unwrap();
    let processes = Pool::with_workers(2).unwrap();
    let threads = ThreadPool::with_workers(2).unwrap();
    let producing = threads
        .apply_async(produce, (work.clone(), 0, 500))
        .unwrap();
    let consumed: Vec<_> = (0..2)
        .map(|_| {
            processes
                .apply_async(consume, (work.clone(), done.clone()))
                .unwrap()
        })
        .collect();
    assert_eq!(producing.get().unwrap(), 500);
    work.close().unwrap();
    assert_eq!(
        consumed
            .into_iter()
            .map(|r| r.get().unwrap())
            .sum::<usize>(),
        500
    );
    assert_eq!(counts(drain(&done)), counts(0..500));
}

#[test]
fn killing_a_pool_worker_blocked_in_get_loses_nothing() {
    let manager = Manager::new().unwrap();
    let ready = manager.queue::<u32>(0).unwrap();
    let work = manager.queue::<u64>(0).unwrap();
    let pool = Pool::with_workers(2).unwrap();
    let (failed_tx, failed_rx) = mpsc::channel();
    let mut results: Vec<_> = (0..2)
        .map(|index| {
            let failed_tx = failed_tx.clone();
            let on_error =
                move |e: &procpool::Error| failed_tx.send((index, e.to_string())).unwrap();
            pool.apply_async_with_callbacks(
                take_one,
                (ready.clone(), work.clone()),
                |_| {},
                on_error,
            )
            .unwrap()
        })
        .map(Some)
        .collect();
    let pids = [ready.get().unwrap(), ready.get().unwrap()];
    assert_ne!(
        pids[0], pids[1],
        "both tasks must run at once, one per worker"
    );
    // SAFETY: plain syscall; the pid is a live worker of our pool.
    assert_eq!(
        unsafe { libc::kill(pids[0] as libc::pid_t, libc::SIGKILL) },
        0
    );
    // The killed worker's task fails once the pool has reaped it, so its
    // sockets are closed before any item exists.
    let (lost, why) = failed_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the killed worker's task did not fail");
    assert!(
        why.contains(&pids[0].to_string()),
        "unexpected failure: {why}"
    );
    assert!(results[lost].take().unwrap().get().is_err());
    work.put(7).unwrap();
    work.put(8).unwrap();
    let survivor = results[1 - lost].take().unwrap();
    let delivered = survivor.get().unwrap();
    let other = work.get_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(counts([delivered, other]), counts([7, 8]));
}

/// Throughput of single-item and batched remote puts from two processes to
/// the parent. Run with `cargo test --release --test manager -- --ignored
/// --nocapture throughput`.
#[test]
#[ignore = "benchmark; run in release mode"]
fn throughput_from_two_processes() {
    const ITEMS: u64 = 200_000;
    const BATCH: usize = 256;
    if let Some((role, queue)) = child_role::<Queue<u64>>() {
        if role != "batch" {
            for i in 0..ITEMS {
                queue.put(i).unwrap();
            }
        } else {
            let items: Vec<u64> = (0..ITEMS).collect();
            for chunk in items.chunks(BATCH) {
                queue.put_many(chunk.to_vec()).unwrap();
            }
        }
        return;
    }
    // Unbounded single puts are write-behind; bounded ones round trips.
    for (role, maxsize) in [("single", 0), ("single-bounded", 1024), ("batch", 0)] {
        let manager = Manager::new().unwrap();
        let queue = manager.queue::<u64>(maxsize).unwrap();
        let children: Vec<_> = (0..2)
            .map(|_| spawn_child("throughput_from_two_processes", role, &queue))
            .collect();
        let producers = close_when_done(children, queue.clone());
        // Timed from the first item on, so process start-up is not counted.
        let first = queue.get_many(BATCH).unwrap().len();
        let start = Instant::now();
        let mut received = first;
        while let Ok(batch) = queue.get_many(4096) {
            received += batch.len();
            if received == 2 * ITEMS as usize {
                break;
            }
        }
        let rate = (received - first) as f64 / start.elapsed().as_secs_f64();
        assert!(producers.join().unwrap(), "a producer failed");
        println!("{role} put, 2 processes to the parent: {rate:.0} items/s");
        assert_eq!(received, 2 * ITEMS as usize);
    }
}

/// Throughput of single-item remote gets by two processes from items the
/// parent put. Run like [`throughput_from_two_processes`].
#[test]
#[ignore = "benchmark; run in release mode"]
fn throughput_to_two_processes() {
    const ITEMS: u64 = 100_000;
    if let Some((_, (work, ready))) = child_role::<(Queue<u64>, Queue<u64>)>() {
        ready.put(0).unwrap();
        let mut taken = 0;
        while work.get().is_ok() {
            taken += 1;
        }
        ready.put(taken).unwrap();
        return;
    }
    let manager = Manager::new().unwrap();
    let work = manager.queue::<u64>(0).unwrap();
    let ready = manager.queue::<u64>(0).unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| spawn_child("throughput_to_two_processes", "consumer", &(&work, &ready)))
        .collect();
    // Timed from when both consumers are connected and waiting.
    assert_eq!(ready.get().unwrap() + ready.get().unwrap(), 0);
    let start = Instant::now();
    work.put_many((0..2 * ITEMS).collect()).unwrap();
    work.close().unwrap();
    let taken = ready.get().unwrap() + ready.get().unwrap();
    let rate = taken as f64 / start.elapsed().as_secs_f64();
    for child in children {
        assert!(wait_within(child, Duration::from_secs(60)).success());
    }
    println!("single get, parent to 2 processes: {rate:.0} items/s");
    assert_eq!(taken, 2 * ITEMS);
}
