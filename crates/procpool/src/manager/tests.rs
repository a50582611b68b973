//! Tests of the manager internals: the remote path driven from threads of
//! this process, and a remote client in a child process (this test binary
//! re-run with `--exact` on one test, which then plays the child).

use std::collections::BTreeMap;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::protocol::{Op, WireWait};
use super::server::{ServeQueue, ServerConn};
use super::*;

/// Set in a child started by [`spawn_child`]: the postcard bytes, in hex, of
/// the queue handle it should use.
const CHILD_HANDLE: &str = "PROCPOOL_MANAGER_TEST_CHILD_HANDLE";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// Re-runs this test binary on just `test`, which finds [`CHILD_HANDLE`]
/// and acts as the child instead of as the test.
fn spawn_child<T>(test: &str, queue: &Queue<T>) -> std::process::Child {
    let handle = postcard::to_allocvec(queue).unwrap();
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--test-threads=1", "--nocapture"])
        .env(CHILD_HANDLE, hex(&handle))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// The handle passed to this process if it is a child of [`spawn_child`].
fn child_handle<T>() -> Option<Queue<T>>
where
    T: Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    let text = std::env::var(CHILD_HANDLE).ok()?;
    Some(postcard::from_bytes(&unhex(&text)).unwrap())
}

fn remote<T>(queue: &Queue<T>) -> Queue<T>
where
    T: Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    let remote = queue.to_remote();
    assert!(remote.shared().is_none());
    remote
}

#[test]
fn local_queue_is_fifo_and_batches_keep_order() {
    let manager = Manager::new().unwrap();
    let queue = manager.queue::<u32>(0).unwrap();
    for i in 0..5 {
        queue.put(i).unwrap();
    }
    queue.put_many(vec![5, 6, 7]).unwrap();
    assert_eq!(queue.qsize().unwrap(), 8);
    assert_eq!(queue.get().unwrap(), 0);
    assert_eq!(queue.get_many(3).unwrap(), vec![1, 2, 3]);
    assert_eq!(queue.get_many(100).unwrap(), vec![4, 5, 6, 7]);
    assert!(queue.empty().unwrap());
    assert!(queue.get_many(0).unwrap().is_empty());
}

#[test]
fn remote_handle_supports_every_operation() {
    let manager = Manager::new().unwrap();
    let local = manager.queue::<String>(2).unwrap();
    let queue = remote(&local);
    queue.put("a".into()).unwrap();
    queue.put_nowait("b".into()).unwrap();
    assert!(queue.full().unwrap());
    assert!(matches!(queue.put_nowait("c".into()), Err(TryPutError::Full(c)) if c == "c"));
    let timed = queue.put_timeout("c".into(), Duration::from_millis(5));
    assert!(matches!(timed, Err(PutTimeoutError::Timeout(c)) if c == "c"));
    assert_eq!(queue.qsize().unwrap(), 2);
    assert_eq!(queue.get().unwrap(), "a");
    assert_eq!(queue.get_nowait().unwrap(), "b");
    assert!(matches!(queue.get_nowait(), Err(TryGetError::Empty)));
    assert!(matches!(
        queue.get_timeout(Duration::from_millis(5)),
        Err(GetTimeoutError::Timeout)
    ));
    queue.put_many(vec!["x".into(), "y".into()]).unwrap();
    assert_eq!(queue.get_many(5).unwrap(), vec!["x", "y"]);
    queue.put("last".into()).unwrap();
    queue.close().unwrap();
    assert!(matches!(queue.put("late".into()), Err(PutError::Closed(s)) if s == "late"));
    assert_eq!(local.get().unwrap(), "last");
    assert!(matches!(queue.get(), Err(GetError::Closed)));
    assert!(matches!(queue.get_many(3), Err(GetError::Closed)));
}

#[test]
fn deserializing_in_the_owning_process_gives_the_local_flavor() {
    let manager = Manager::new().unwrap();
    let queue = manager.queue::<u8>(0).unwrap();
    let bytes = postcard::to_allocvec(&queue).unwrap();
    let back: Queue<u8> = postcard::from_bytes(&bytes).unwrap();
    assert!(back.shared().is_some());
    // Another item type cannot be mapped back and goes through the server,
    // which refuses it.
    let wrong: Queue<String> = postcard::from_bytes(&bytes).unwrap();
    assert!(wrong.shared().is_none());
    match wrong.put("x".into()) {
        Err(PutError::Failed(_, ManagerError::Protocol(m))) => {
            assert!(m.contains("another item type"), "{m}")
        }
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[test]
fn producers_on_remote_handles_deliver_an_exact_multiset() {
    // Bounded: every put is a round trip; unbounded: puts are write-behind.
    for maxsize in [16, 0] {
        deliver_exact_multiset(maxsize);
    }
}

fn deliver_exact_multiset(maxsize: usize) {
    const PRODUCERS: u32 = 4;
    const ITEMS: u32 = 500;
    let manager = Manager::new().unwrap();
    let queue = manager.queue::<(u32, u32)>(maxsize).unwrap();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let queue = remote(&queue);
            thread::spawn(move || {
                for i in 0..ITEMS {
                    if i % 50 == 0 {
                        queue
                            .put_many((i..i + 10).map(|j| (p, j)).collect())
                            .unwrap();
                    } else if i % 50 >= 10 {
                        queue.put((p, i)).unwrap();
                    }
                }
            })
        })
        .collect();
    let mut seen = BTreeMap::new();
    for _ in 0..PRODUCERS * ITEMS {
        *seen.entry(queue.get().unwrap()).or_insert(0) += 1;
    }
    for producer in producers {
        producer.join().unwrap();
    }
    assert_eq!(seen.len(), (PRODUCERS * ITEMS) as usize);
    assert!(seen.values().all(|&count| count == 1));
    assert!(queue.empty().unwrap());
}

#[test]
fn remote_consumers_drain_what_the_parent_put_then_see_closed() {
    let manager = Manager::new().unwrap();
    let queue = manager.queue::<u64>(0).unwrap();
    let consumers: Vec<_> = (0..3)
        .map(|n| {
            let queue = remote(&queue);
            thread::spawn(move || {
                let mut got = Vec::new();
                loop {
                    let batch = if n == 0 {
                        queue.get_many(7).map_err(|e| e.to_string())
                    } else {
                        queue.get().map(|x| vec![x]).map_err(|e| e.to_string())
                    };
                    match batch {
                        Ok(items) => got.extend(items),
                        Err(e) => return (got, e),
                    }
                }
            })
        })
        .collect();
    queue.put_many((0..1000).collect()).unwrap();
    for i in 1000..1200 {
        queue.put(i).unwrap();
    }
    queue.close().unwrap();
    let mut all = Vec::new();
    for consumer in consumers {
        let (got, ended) = consumer.join().unwrap();
        assert_eq!(ended, GetError::Closed.to_string());
        all.extend(got);
    }
    all.sort_unstable();
    assert_eq!(all, (0..1200).collect::<Vec<_>>());
}

/// A put on a full queue stays blocked until a get frees a slot, for both
/// flavors of the producer.
#[test]
fn full_bounded_queue_blocks_producers_until_a_get() {
    let manager = Manager::new().unwrap();
    let queue = manager.queue::<u32>(1).unwrap();
    let shared = std::sync::Arc::clone(queue.shared().unwrap());
    for producer in [queue.clone(), remote(&queue)] {
        producer.put(1).unwrap();
        let (done_tx, done_rx) = mpsc::channel();
        let blocked = thread::spawn(move || {
            producer.put(2).unwrap();
            done_tx.send(()).unwrap();
        });
        shared.wait_for_parked(0, 1);
        assert!(
            done_rx.try_recv().is_err(),
            "put returned while the queue was full"
        );
        assert_eq!(queue.get().unwrap(), 1);
        done_rx.recv().unwrap();
        blocked.join().unwrap();
        assert_eq!(queue.get().unwrap(), 2);
    }
}

#[test]
fn timeouts_honour_their_deadline() {
    let manager = Manager::new().unwrap();
    let queue = manager.queue::<u32>(1).unwrap();
    queue.put(0).unwrap();
    let timeout = Duration::from_millis(80);
    for handle in [queue.clone(), remote(&queue)] {
        let start = Instant::now();
        assert!(matches!(
            handle.put_timeout(9, timeout),
            Err(PutTimeoutError::Timeout(9))
        ));
        let waited = start.elapsed();
        assert!(waited >= timeout, "returned after {waited:?}");
        assert!(waited < timeout * 20, "returned after {waited:?}");
    }
    assert_eq!(queue.get().unwrap(), 0);
    for handle in [queue.clone(), remote(&queue)] {
        let start = Instant::now();
        assert!(matches!(
            handle.get_timeout(timeout),
            Err(GetTimeoutError::Timeout)
        ));
        assert!(start.elapsed() >= timeout);
    }
}

#[test]
fn close_wakes_every_blocked_consumer() {
    let manager = Manager::new().unwrap();
    let queue = manager.queue::<u32>(0).unwrap();
    let consumers: Vec<_> = [queue.clone(), queue.clone(), remote(&queue), remote(&queue)]
        .into_iter()
        .map(|q| thread::spawn(move || q.get()))
        .collect();
    queue.shared().unwrap().wait_for_parked(4, 0);
    queue.close().unwrap();
    for consumer in consumers {
        assert!(matches!(consumer.join().unwrap(), Err(GetError::Closed)));
    }
}

#[test]
fn close_midway_through_a_batch_hands_back_the_rest() {
    let manager = Manager::new().unwrap();
    for go_remote in [false, true] {
        let queue = manager.queue::<u32>(2).unwrap();
        let handle = if go_remote {
            remote(&queue)
        } else {
            queue.clone()
        };
        let batch = thread::spawn(move || handle.put_many(vec![1, 2, 3, 4]));
        queue.shared().unwrap().wait_for_parked(0, 1);
        queue.close().unwrap();
        match batch.join().unwrap() {
            Err(PutError::Closed(rest)) => assert_eq!(rest, vec![3, 4]),
            other => panic!("expected the rest back, got {other:?}"),
        }
        assert_eq!(queue.get_many(10).unwrap(), vec![1, 2]);
    }
}

#[derive(Serialize, Deserialize)]
struct HandleMirror {
    socket: Vec<u8>,
    token: [u8; 32],
    queue: u32,
    maxsize: u64,
}

#[test]
fn a_wrong_token_is_refused() {
    let manager = Manager::new().unwrap();
    let queue = manager.queue::<u32>(0).unwrap();
    queue.put(1).unwrap();
    let mut mirror: HandleMirror =
        postcard::from_bytes(&postcard::to_allocvec(&queue).unwrap()).unwrap();
    mirror.token[0] ^= 1;
    let forged: Queue<u32> =
        postcard::from_bytes(&postcard::to_allocvec(&mirror).unwrap()).unwrap();
    assert!(matches!(
        forged.get_nowait(),
        Err(TryGetError::Failed(ManagerError::Refused))
    ));
    assert!(matches!(
        forged.put(2),
        Err(PutError::Failed(2, ManagerError::Refused))
    ));
    assert_eq!(queue.qsize().unwrap(), 1);
}

#[test]
fn dropping_the_manager_fails_every_handle_without_hanging() {
    let manager = Manager::new().unwrap();
    let queue = manager.queue::<u32>(1).unwrap();
    let shared = std::sync::Arc::clone(queue.shared().unwrap());
    let dir = manager.dir().to_path_buf();
    let idle_remote = remote(&queue);
    idle_remote.put(1).unwrap();
    let blocked_put = {
        let queue = remote(&queue);
        thread::spawn(move || queue.put(2))
    };
    shared.wait_for_parked(0, 1);
    assert_eq!(queue.get().unwrap(), 1);
    assert_eq!(queue.get().unwrap(), 2);
    blocked_put.join().unwrap().unwrap();
    let blocked_gets: Vec<_> = [queue.clone(), remote(&queue)]
        .into_iter()
        .map(|q| thread::spawn(move || q.get()))
        .collect();
    shared.wait_for_parked(2, 0);
    drop(manager);
    for get in blocked_gets {
        assert!(matches!(
            get.join().unwrap(),
            Err(GetError::Failed(ManagerError::Gone))
        ));
    }
    assert!(matches!(
        queue.put(3),
        Err(PutError::Failed(3, ManagerError::Gone))
    ));
    assert!(matches!(
        idle_remote.put(3),
        Err(PutError::Failed(3, ManagerError::Gone))
    ));
    assert!(matches!(idle_remote.qsize(), Err(ManagerError::Gone)));
    assert!(matches!(remote(&queue).close(), Err(ManagerError::Gone)));
    assert!(!dir.exists(), "the manager's directory outlived it");
}

/// Write-behind puts that race a close: each item ends up exactly once
/// either in the queue or handed back, by the put itself or by `flush`.
#[test]
fn write_behind_puts_refused_by_a_close_are_handed_back() {
    const ITEMS: u32 = 2000;
    let manager = Manager::new().unwrap();
    let queue = manager.queue::<u32>(0).unwrap();
    let producer = remote(&queue);
    let (started_tx, started_rx) = mpsc::channel();
    let putting = thread::spawn(move || {
        let mut handed_back = Vec::new();
        for i in 0..ITEMS {
            if i == ITEMS / 4 {
                started_tx.send(()).unwrap();
            }
            if let Err(e) = producer.put(i) {
                assert!(matches!(e, PutError::Closed(_)), "{e}");
                handed_back.push(e.into_inner());
            } else {
                assert!(
                    handed_back.is_empty(),
                    "a put succeeded after one failed as closed"
                );
            }
        }
        match producer.flush() {
            Ok(()) => {}
            Err(PutError::Closed(refused)) => handed_back.extend(refused),
            Err(e) => panic!("flush failed: {e}"),
        }
        assert!(
            producer.flush().is_ok(),
            "a second flush has nothing to hand back"
        );
        handed_back
    });
    started_rx.recv().unwrap();
    queue.close().unwrap();
    let handed_back = putting.join().unwrap();
    let mut all = queue.get_many(ITEMS as usize).unwrap_or_default();
    assert!(
        !handed_back.is_empty(),
        "puts after the close were not refused"
    );
    all.extend(handed_back);
    all.sort_unstable();
    assert_eq!(all, (0..ITEMS).collect::<Vec<_>>());
}

#[test]
fn dropping_a_write_behind_handle_settles_its_puts() {
    let manager = Manager::new().unwrap();
    let queue = manager.queue::<u32>(0).unwrap();
    let producer = remote(&queue);
    for i in 0..1000 {
        producer.put(i).unwrap();
    }
    drop(producer);
    assert_eq!(queue.qsize().unwrap(), 1000);
    // Any other operation of the handle also sees its own puts in place.
    let producer = remote(&queue);
    producer.put(1000).unwrap();
    producer.put(1001).unwrap();
    assert_eq!(producer.qsize().unwrap(), 1002);
    // And so does the rest of the process after `settle_all`.
    producer.put(1002).unwrap();
    settle_all();
    assert_eq!(queue.qsize().unwrap(), 1003);
    assert_eq!(queue.get_many(2000).unwrap(), (0..1003).collect::<Vec<_>>());
}

#[test]
fn write_behind_handles_report_a_gone_manager() {
    let manager = Manager::new().unwrap();
    let queue = manager.queue::<u32>(0).unwrap();
    let producer = remote(&queue);
    producer.put(1).unwrap();
    producer.put(2).unwrap();
    drop(manager);
    assert!(matches!(
        producer.put(3),
        Err(PutError::Failed(3, ManagerError::Gone))
    ));
    assert!(matches!(
        producer.put(4),
        Err(PutError::Failed(4, ManagerError::Gone))
    ));
    assert!(matches!(
        producer.flush(),
        Err(PutError::Failed(_, ManagerError::Gone))
    ));
    assert!(matches!(
        producer.get_nowait(),
        Err(TryGetError::Failed(ManagerError::Gone))
    ));
}

/// A server thread whose client's socket is dead puts the items it took
/// back at the front, in order.
#[test]
fn items_taken_for_a_dead_client_go_back_to_the_front() {
    let shared = std::sync::Arc::new(Shared::<u32>::new(0));
    shared.put_many(vec![1, 2, 3, 4]).unwrap();
    let (server_end, client_end) = UnixStream::pair().unwrap();
    drop(client_end);
    let mut conn = ServerConn::over(server_end);
    assert!(shared.serve(Op::GetMany(2), &[], &mut conn).is_err());
    assert!(
        shared
            .serve(Op::Get(WireWait::Block), &[], &mut conn)
            .is_err()
    );
    assert_eq!(
        shared.get_many(10, protocol::Wait::Now).unwrap(),
        vec![1, 2, 3, 4]
    );
}

#[test]
fn strangers_without_the_token_are_dropped_and_harmless() {
    use std::io::{Read, Write};
    let manager = Manager::new().unwrap();
    let queue = manager.queue::<u32>(0).unwrap();
    let socket = manager.core.address.socket.clone();
    // A length prefix of almost a gigabyte: refused after a few bytes.
    let mut huge = UnixStream::connect(&socket).unwrap();
    huge.write_all(&0x3fff_ffffu32.to_le_bytes()).unwrap();
    let _ = huge.write_all(&[0u8; 4096]);
    assert_eq!(
        huge.read(&mut [0u8; 16]).unwrap_or(0),
        0,
        "the server kept talking"
    );
    // A well-formed frame that is no hello: closed as well.
    let mut garbage = UnixStream::connect(&socket).unwrap();
    garbage.write_all(&[3, 0, 0, 0, 0xff, 0xff, 0xff]).unwrap();
    assert_eq!(garbage.read(&mut [0u8; 16]).unwrap_or(0), 0);
    // The manager serves its real clients as before.
    let client = remote(&queue);
    client.put(5).unwrap();
    assert_eq!(client.get().unwrap(), 5);
}

#[test]
fn handles_are_clone_send_and_sync() {
    fn shareable<Q: Clone + Send + Sync + 'static>(_: &Q) -> bool {
        true
    }
    let manager = Manager::new().unwrap();
    let queue = manager.queue::<String>(0).unwrap();
    assert!(shareable(&queue) && shareable(&remote(&queue)));
}

/// The child blocks in a remote `get` until it is killed; the item put
/// after its death must reach the next consumer.
#[test]
fn a_client_killed_while_blocked_in_get_loses_nothing() {
    if let Some(queue) = child_handle::<u32>() {
        let _ = queue.get();
        // Only reached if the parent's kill failed: make that loud.
        std::process::exit(3);
    }
    let manager = Manager::new().unwrap();
    let queue = manager.queue::<u32>(0).unwrap();
    let mut child = spawn_child(
        "manager::tests::a_client_killed_while_blocked_in_get_loses_nothing",
        &queue,
    );
    queue.shared().unwrap().wait_for_parked(1, 0);
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "child ended on its own: {status:?}");
    queue.put(42).unwrap();
    queue.put(43).unwrap();
    let survivor = remote(&queue);
    assert_eq!(survivor.get_timeout(Duration::from_secs(10)).unwrap(), 42);
    assert_eq!(queue.get_timeout(Duration::from_secs(10)).unwrap(), 43);
}
