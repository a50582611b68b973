//! Stress and hostile-protocol tests of process pools: many tasks with
//! seeded panics and worker kills all resolve, and leave no descriptor or
//! child process behind; malformed frames on the worker protocol, in either
//! direction, end in an error, never a panic, a hang or undefined behaviour.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use procpool::{Error, Pool};

procpool::test_support!();

/// Fixed, so a failing schedule of panics and kills can be replayed.
const SEED: u64 = 0x0dd_ba11_5eed;
const TASKS: u64 = 100_000;
/// One task in this many panics, one in `KILL_EVERY` kills its worker.
const PANIC_EVERY: u64 = 97;
const KILL_EVERY: u64 = 9_973;
/// The test thread kills a worker from outside after this many results.
const EXTERNAL_KILL_EVERY: u64 = 12_500;
/// A generous bound on one result, so a lost wake-up fails the test.
const RESULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The tests count descriptors and child processes of the whole test
/// process, so they must not overlap.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// SplitMix64 of the seed and a task number: the task's fate.
fn mix(i: u64) -> u64 {
    let mut z = (SEED ^ i).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Value,
    Panic,
    KillWorker,
}

fn fate(i: u64) -> Fate {
    let roll = mix(i);
    if roll % KILL_EVERY == 0 {
        Fate::KillWorker
    } else if roll % PANIC_EVERY == 1 {
        Fate::Panic
    } else {
        Fate::Value
    }
}

fn stress_task(i: u64) -> u64 {
    match fate(i) {
        Fate::Value => mix(i).rotate_left(7),
        Fate::Panic => panic!("planned panic {i}"),
        Fate::KillWorker => {
            // SAFETY: kill has no memory-safety preconditions; this signals
            // the worker process itself.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
            unreachable!("SIGKILL is delivered before kill returns")
        }
    }
}

/// Worker initializer: the planned panics are expected, so their default
/// report on stderr would only be noise.
fn quiet_panics() {
    std::panic::set_hook(Box::new(|_| {}));
}

procpool::register!(stress_task, quiet_panics, corrupt_reply);

/// Open descriptors of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Child processes of this process, zombies included (an unreaped child
/// is a leak too).
fn children() -> Vec<u32> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1));
        if ppid == Some(me.as_str()) {
            found.push(pid);
        }
    }
    found
}

/// Kills the children a broken test left, so a failure does not hang the
/// pool's drop, then fails.
fn fail_after_killing_children(why: String) -> ! {
    for pid in children() {
        // SAFETY: kill has no memory-safety preconditions; these are our
        // own children, not reaped yet.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    }
    panic!("{why}");
}

#[derive(Debug, Default)]
struct Tally {
    values: u64,
    panics: u64,
    lost: u64,
    kills: u64,
}

/// Checks one result against its task's fate.
fn check(i: u64, result: Result<u64, Error>, tally: &mut Tally) {
    match (fate(i), result) {
        (Fate::Value, Ok(v)) if v == mix(i).rotate_left(7) => tally.values += 1,
        (Fate::Panic, Err(Error::Panicked { message, .. }))
            if message == format!("planned panic {i}") =>
        {
            tally.panics += 1;
        }
        // Its own worker, or a batch mate's kill, or a kill from outside.
        (fate, Err(Error::WorkerLost { .. })) => {
            tally.lost += 1;
            if fate == Fate::KillWorker {
                tally.kills += 1;
            }
        }
        (fate, other) => fail_after_killing_children(format!("task {i} ({fate:?}) gave {other:?}")),
    }
}

#[test]
fn a_hundred_thousand_tasks_with_panics_and_kills_all_resolve_without_leaks() {
    let _serial = serial();
    let (fds_before, children_before) = (open_fds(), children());
    let pool = Pool::builder()
        .workers(2)
        .initializer(quiet_panics, ())
        .build()
        .unwrap();
    let results: Vec<_> = (0..TASKS)
        .map(|i| pool.apply_async(stress_task, (i,)).unwrap())
        .collect();
    let mut tally = Tally::default();
    let mut external_kills = 0;
    for (i, result) in (0..TASKS).zip(results) {
        let result = match result.get_timeout(RESULT_TIMEOUT) {
            Err(Error::Timeout) => fail_after_killing_children(format!("task {i} never resolved")),
            other => other,
        };
        check(i, result, &mut tally);
        if i % EXTERNAL_KILL_EVERY == EXTERNAL_KILL_EVERY - 1 {
            // The pool is still busy with later tasks: kill one of its workers.
            if let Some(&pid) = pool.worker_pids().get((mix(i) % 2) as usize) {
                // SAFETY: kill has no memory-safety preconditions; the pid
                // is a worker of our pool, which reaps it only after this.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                external_kills += 1;
            }
        }
    }
    drop(pool);
    let planned_kills = (0..TASKS).filter(|&i| fate(i) == Fate::KillWorker).count() as u64;
    assert_eq!(tally.kills, planned_kills, "{tally:?}");
    assert!(planned_kills >= 5 && external_kills >= 5, "{tally:?}");
    assert_eq!(tally.values + tally.panics + tally.lost, TASKS);
    assert!(tally.panics > 500 && tally.values > 90_000, "{tally:?}");
    assert_eq!(open_fds(), fds_before, "descriptors leaked");
    assert_eq!(children(), children_before, "child processes left behind");
    eprintln!("{tally:?}, {external_kills} external kills");
}

/// Starts this test binary as a worker whose protocol socket is the far end
/// of the returned stream, as a pool would.
fn start_worker_by_hand() -> (std::process::Child, UnixStream) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let fd = theirs.as_raw_fd();
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .env("PROCPOOL_WORKER_FD", format!("{fd}:{}", std::process::id()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: runs between fork and exec and only calls fcntl, which is
    // async-signal-safe, on the fd the child is meant to inherit.
    unsafe {
        command.pre_exec(move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command.spawn().unwrap();
    drop(theirs);
    (child, ours)
}

#[test]
fn malformed_frames_to_a_worker_make_it_exit_with_an_error() {
    let _serial = serial();
    let frames: [(&str, Vec<u8>); 6] = [
        ("garbage body", vec![4, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]),
        ("length beyond the limit", vec![0xff, 0xff, 0xff, 0x7f]),
        ("empty body", vec![0, 0, 0, 0]),
        ("cut in the header", vec![9, 0]),
        ("cut in the body", vec![200, 0, 0, 0, 1, 2, 3]),
        ("trailing bytes", vec![3, 0, 0, 0, 2, 0, 0]),
    ];
    for (what, bytes) in frames {
        let (mut child, mut stream) = start_worker_by_hand();
        stream.write_all(&bytes).unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let mut reply = Vec::new();
        let _ = stream.read_to_end(&mut reply);
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), None, "{what}: {status:?} {stderr}");
        assert_eq!(status.code(), Some(1), "{what}: {stderr}");
        assert!(stderr.starts_with("procpool worker "), "{what}: {stderr}");
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
        assert!(reply.is_empty(), "{what}: a worker answered {reply:?}");
    }
}

/// What [`corrupt_reply`] returns: more than a worker's mailbox holds, so
/// that its reply goes by the socket, behind the bad frame, as every reply
/// did before the mailbox (a small one would pass the bad bytes by).
fn big_reply() -> Vec<u8> {
    vec![7; 64 << 10]
}

/// A task that writes a bad frame straight onto its worker's protocol
/// socket (the only socket a worker of this test has), ahead of the real
/// reply.
fn corrupt_reply(bad: Vec<u8>) -> Vec<u8> {
    let mut sockets = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let fd: i32 = entry.file_name().to_str().unwrap().parse().unwrap();
        let target = std::fs::read_link(entry.path()).unwrap_or_default();
        if fd > 2
            && target
                .as_os_str()
                .as_encoded_bytes()
                .starts_with(b"socket:")
        {
            sockets.push(fd);
        }
    }
    assert_eq!(sockets.len(), 1, "one protocol socket: {sockets:?}");
    // SAFETY: the pointer and length describe `bad`, alive for the call.
    let n = unsafe { libc::write(sockets[0], bad.as_ptr().cast(), bad.len()) };
    assert_eq!(n, bad.len() as isize);
    big_reply()
}

#[test]
fn malformed_replies_from_a_worker_fail_that_task_and_the_pool_goes_on() {
    let _serial = serial();
    let (fds_before, children_before) = (open_fds(), children());
    let pool = Pool::with_workers(1).unwrap();
    let replies: [(&str, Vec<u8>); 4] = [
        ("garbage body", vec![4, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]),
        ("length beyond the limit", vec![0xff, 0xff, 0xff, 0x7f]),
        ("trailing bytes", vec![2, 0, 0, 0, 0, 0]),
        ("a hello reply mid-run", vec![1, 0, 0, 0, 0]),
    ];
    for (what, bytes) in replies {
        let result = pool.apply_async(corrupt_reply, (bytes,)).unwrap();
        match result.get_timeout(RESULT_TIMEOUT) {
            Err(Error::Worker { message }) => {
                assert!(message.starts_with("protocol error"), "{what}: {message}");
            }
            Err(Error::Timeout) => fail_after_killing_children(format!("{what}: hangs")),
            other => fail_after_killing_children(format!("{what}: {other:?}")),
        }
        assert_eq!(
            pool.apply(corrupt_reply, (Vec::new(),)),
            Ok(big_reply()),
            "{what}"
        );
    }
    drop(pool);
    assert_eq!(open_fds(), fds_before, "descriptors leaked");
    assert_eq!(children(), children_before, "child processes left behind");
}

/// Valid frames of the worker protocol, built by hand, to mutate.
fn seed_frames() -> Vec<Vec<u8>> {
    let frame = |body: &[u8]| {
        let mut out = (body.len() as u32).to_le_bytes().to_vec();
        out.extend_from_slice(body);
        out
    };
    vec![
        frame(&[0, 0x2a, 0]),                      // Hello, no initializer
        frame(&[1, 1, 0, 2, 7, 8]),                // Batch of one call
        frame(&[2]),                               // Exit
        frame(&[2, 2, 0, 1, 9, 1, 1, b'x']),       // Replies: one Ok, one Err
        frame(&[1, 0x80, 0x80, 0x80, 0x80, 0x0f]), // Batch claiming 2^32 calls
    ]
}

#[test]
fn the_frame_decoder_survives_random_and_mutated_input() {
    let mut state = SEED;
    let mut next = || {
        state = mix(state);
        state
    };
    let seeds = seed_frames();
    for seed in &seeds {
        assert_eq!(procpool::__fuzz_decode_frame(seed), 1);
    }
    for round in 0..20_000u64 {
        let mut input = if round % 2 == 0 {
            seeds[(next() % seeds.len() as u64) as usize].clone()
        } else {
            (0..next() % 64).map(|_| next() as u8).collect()
        };
        for _ in 0..1 + next() % 4 {
            if input.is_empty() {
                break;
            }
            let at = (next() % input.len() as u64) as usize;
            match next() % 3 {
                0 => input[at] = next() as u8,
                1 => input.truncate(at),
                _ => input.insert(at, next() as u8),
            }
        }
        let frames = procpool::__fuzz_decode_frame(&input);
        assert!(frames <= input.len() / 4, "{input:?}");
    }
}
