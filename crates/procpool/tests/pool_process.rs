//! Process workers only: lost and stuck workers, leaked fds and processes,
//! worker stdout, registration, encoding errors, retired workers and
//! initializers.
//!
//! Tests that count this process's fds or read its stdout run alone in a
//! fresh copy of this binary (see [`run_alone`]), since the other tests of
//! the run open fds and start workers at the same time.

mod common;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use procpool::{Error, Pool};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use common::{
    Gate, HANG, all_fired, assert_panicked_here, hold_until_released, outcome_callbacks,
    panic_here, square, within, worker_identity,
};

procpool::test_support!();

/// Deliberately missing from `register!`.
fn never_registered(x: u64) -> u64 {
    x
}

static GREETING: OnceLock<String> = OnceLock::new();

fn set_greeting(text: String) {
    GREETING
        .set(text)
        .expect("the initializer runs once per worker");
}

fn greeting_and_pid() -> (Option<String>, u32) {
    (GREETING.get().cloned(), std::process::id())
}

/// Panics without the panic hook, as `common::fail_if_odd` does.
fn refuse_to_start(reason: String) {
    std::panic::resume_unwind(Box::new(reason));
}

const NOISY_TASKS: u64 = 40;
const NOISE_LINES: u64 = 250;

fn print_noise(task: u64) -> u64 {
    for line in 0..NOISE_LINES {
        println!("noise {task} {line}");
    }
    task * 2
}

fn exit_with(code: i32) {
    std::process::exit(code);
}

/// Holds like `common::hold_until_released`, but first makes the worker
/// deaf to SIGTERM, as a task stuck in uninterruptible work would be.
fn ignore_sigterm_and_hold(gate: OsString) -> String {
    // SAFETY: setting a signal to SIG_IGN installs no handler code.
    unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
    hold_until_released(gate)
}

/// A value whose encoding fails for 3, for both arguments and results.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
struct Picky(u64);

impl Serialize for Picky {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0 == 3 {
            return Err(serde::ser::Error::custom("three cannot be encoded"));
        }
        serializer.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Picky {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        u64::deserialize(deserializer).map(Picky)
    }
}

fn make_picky(x: u64) -> Picky {
    Picky(x)
}

fn unwrap_picky(p: Picky) -> u64 {
    p.0
}

/// Zeros of the given length: a result as large as asked for, cheap to
/// make (the kernel's zero pages until written).
fn bytes_of_len(len: u64) -> Vec<u8> {
    vec![0; len as usize]
}

/// The length of its argument: an argument as large as the caller makes it.
fn len_of(data: Vec<u8>) -> u64 {
    data.len() as u64
}

/// One byte over what a frame carries.
const OVER_THE_LIMIT: u64 = (1 << 30) + 1;

procpool::register!(
    set_greeting,
    greeting_and_pid,
    refuse_to_start,
    print_noise,
    exit_with,
    ignore_sigterm_and_hold,
    make_picky,
    unwrap_picky,
    bytes_of_len,
    len_of
);

/// Set in the copy of this binary that [`run_alone`] starts.
const ALONE: &str = "PROCPOOL_POOL_TEST_ALONE";

fn running_alone() -> bool {
    std::env::var_os(ALONE).is_some()
}

/// Runs the test `name` alone in a fresh copy of this binary, asserts that
/// it passed, and returns its stdout.
fn run_alone(name: &str) -> String {
    run_alone_with(name, &[])
}

/// [`run_alone`] with extra environment variables.
fn run_alone_with(name: &str, env: &[(&str, &str)]) -> String {
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(ALONE, "1")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start a copy of the test binary");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    let Ok(output) = rx.recv_timeout(HANG) else {
        // SAFETY: kill has no memory-safety preconditions; the child is
        // unreaped (its waiter has not returned), so the pid is still it.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        panic!("{name} still running after {HANG:?}");
    };
    let output = output.expect("wait for the copy");
    let stdout = String::from_utf8(output.stdout).expect("UTF-8 output");
    assert!(output.status.success(), "{name} failed:\n{stdout}");
    assert!(stdout.contains("1 passed"), "{name} did not run:\n{stdout}");
    stdout
}

fn kill(pid: u32, signal: libc::c_int) {
    // SAFETY: kill has no memory-safety preconditions. The pid is a live
    // worker of a pool this test owns, unreaped until its I/O thread sees it die.
    let rc = unsafe { libc::kill(pid as libc::pid_t, signal) };
    assert_eq!(rc, 0, "kill {pid}: {}", std::io::Error::last_os_error());
}

/// Waits until process `pid` has ended (it may stay a zombie), without
/// reaping it: its pool's I/O thread owns that.
fn wait_until_dead(pid: u32) {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    assert!(fd >= 0, "pidfd_open: {}", std::io::Error::last_os_error());
    // SAFETY: pidfd_open returned this fd just now and nothing else owns it.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
    let mut poll = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `poll` is one valid pollfd for the duration of the call.
    let ready = unsafe { libc::poll(&mut poll, 1, HANG.as_millis() as libc::c_int) };
    assert_eq!(ready, 1, "worker {pid} did not die within {HANG:?}");
}

/// A process, told apart from a later one that reuses its pid by its start
/// time.
#[derive(Debug)]
struct ProcessRecord {
    pid: u32,
    start_time: String,
}

impl ProcessRecord {
    /// The fields of `/proc/PID/stat` after the command name, if it exists:
    /// index 1 is the parent's pid, index 19 the start time.
    fn stat_fields(pid: u32) -> Option<Vec<String>> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (_, after_name) = stat.rsplit_once(')')?;
        Some(after_name.split_whitespace().map(String::from).collect())
    }

    fn of(pid: u32) -> ProcessRecord {
        let fields = Self::stat_fields(pid).expect("the worker exists");
        ProcessRecord {
            pid,
            start_time: fields[19].clone(),
        }
    }

    /// Whether this very process is still a child of ours, live or zombie.
    fn is_our_child(&self) -> bool {
        Self::stat_fields(self.pid).is_some_and(|fields| {
            fields[19] == self.start_time && fields[1] == std::process::id().to_string()
        })
    }
}

fn records_of(pool: &Pool) -> Vec<ProcessRecord> {
    let records: Vec<_> = pool
        .worker_pids()
        .into_iter()
        .map(ProcessRecord::of)
        .collect();
    assert!(
        records.iter().all(ProcessRecord::is_our_child),
        "{records:?}"
    );
    records
}

#[test]
fn a_sigkilled_worker_fails_only_its_own_task() {
    let pool = Pool::with_workers(1).unwrap();
    let [old] = pool.worker_pids()[..] else {
        panic!("one worker expected");
    };
    let gate = Gate::new();
    let doomed = pool
        .apply_async(hold_until_released, (gate.arg(),))
        .unwrap();
    let _held = gate.wait_started();
    let queued: Vec<_> = (0..10)
        .map(|i| pool.apply_async(square, (i,)).unwrap())
        .collect();
    kill(old, libc::SIGKILL);
    match within("the lost task", move || doomed.get()) {
        Err(Error::WorkerLost { pid, status }) => {
            assert_eq!(pid, old);
            assert!(status.contains("SIGKILL"), "{status}");
        }
        other => panic!("expected WorkerLost, got {other:?}"),
    }
    let got: Vec<_> = queued.into_iter().map(|r| r.get()).collect();
    assert_eq!(got, (0..10).map(|i| Ok(i * i)).collect::<Vec<_>>());
    let new = pool.worker_pids();
    assert!(new.len() == 1 && new[0] != old, "{old} then {new:?}");
    assert_eq!(pool.apply(square, (12,)), Ok(144));
}

#[test]
fn killing_one_worker_spares_the_task_of_the_other() {
    let pool = Pool::with_workers(2).unwrap();
    let gates = [Gate::new(), Gate::new()];
    let running: Vec<_> = gates
        .iter()
        .map(|gate| {
            let r = pool
                .apply_async(hold_until_released, (gate.arg(),))
                .unwrap();
            (r, gate.wait_started())
        })
        .collect();
    let victim = pool.worker_pids()[0];
    kill(victim, libc::SIGKILL);
    // Dropping (not writing to) the gates: the victim's gate has no reader.
    let mut outcomes: Vec<_> = running
        .into_iter()
        .map(|(r, held)| {
            drop(held);
            within("a held task", move || r.get())
        })
        .collect();
    outcomes.sort_by_key(Result::is_err);
    assert_eq!(outcomes[0], Ok(String::new()));
    assert!(
        matches!(&outcomes[1], Err(Error::WorkerLost { pid, .. }) if *pid == victim),
        "{outcomes:?}"
    );
    assert_eq!(pool.map(square, 0..4, Some(1)), Ok(vec![0, 1, 4, 9]));
}

#[test]
fn a_worker_killed_while_idle_is_replaced_before_the_next_task() {
    let pool = Pool::with_workers(1).unwrap();
    let old = pool.apply(worker_identity, ()).unwrap();
    let [pid] = pool.worker_pids()[..] else {
        panic!("one worker expected");
    };
    kill(pid, libc::SIGKILL);
    wait_until_dead(pid);
    let new = pool
        .apply(worker_identity, ())
        .expect("the task never reached the dead worker");
    assert_ne!(new, old);
}

/// A worker killed as soon as it has answered dies while it still looks
/// for its next frame in the mailbox, where the next task then waits,
/// untaken: that task goes to a new worker instead of failing.
#[test]
fn a_worker_killed_right_after_its_reply_loses_no_next_task() {
    let pool = Pool::with_workers(1).unwrap();
    for i in 0..20 {
        let old = pool.apply(worker_identity, ()).unwrap();
        let [pid] = pool.worker_pids()[..] else {
            panic!("one worker expected");
        };
        kill(pid, libc::SIGKILL);
        wait_until_dead(pid);
        let new = pool.apply(worker_identity, ());
        assert!(
            new.as_ref().is_ok_and(|new| *new != old),
            "round {i}: {old} then {new:?}"
        );
    }
}

#[test]
fn a_worker_that_exits_fails_only_its_own_task() {
    let pool = Pool::with_workers(1).unwrap();
    let [old] = pool.worker_pids()[..] else {
        panic!("one worker expected");
    };
    let exited = pool.apply(exit_with, (3,));
    let expected = Error::WorkerLost {
        pid: old,
        status: "exited with status 3".into(),
    };
    assert_eq!(exited, Err(expected));
    assert_eq!(pool.apply(square, (4,)), Ok(16), "a new worker serves");
}

#[test]
fn a_worker_deaf_to_sigterm_is_killed_after_the_grace_period() {
    let mut pool = Pool::with_workers(1).unwrap();
    let gate = Gate::new();
    let stuck = pool
        .apply_async(ignore_sigterm_and_hold, (gate.arg(),))
        .unwrap();
    let _held = gate.wait_started();
    let workers = records_of(&pool);
    pool.terminate();
    assert_eq!(within("join", move || pool.join()), Ok(()));
    assert_eq!(stuck.get(), Err(Error::Terminated));
    assert!(
        !workers[0].is_our_child(),
        "{:?} outlived the pool",
        workers[0]
    );
}

/// Python's pool repopulates as soon as a worker retires; so must this
/// one, without waiting for the next task. The wait polls `worker_pids`
/// up to a deadline: there is no event to wait for but the new worker.
#[test]
fn retired_workers_are_replaced_while_the_pool_is_idle() {
    let pool = Pool::builder()
        .workers(2)
        .maxtasksperchild(1)
        .build()
        .unwrap();
    let ran: BTreeSet<u32> = (0..3)
        .map(|_| pool.apply(greeting_and_pid, ()).unwrap().1)
        .collect();
    assert!(!ran.is_empty());
    let deadline = std::time::Instant::now() + HANG;
    let fresh = loop {
        let pids = pool.worker_pids();
        if pids.len() == 2 && pids.iter().all(|pid| !ran.contains(pid)) {
            break pids;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the pool stayed at {pids:?} after retiring {ran:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    assert!(records_of(&pool).len() == 2, "{fresh:?} are live children");
}

#[test]
fn a_retired_worker_is_reaped() {
    let pool = Pool::builder()
        .workers(1)
        .maxtasksperchild(1)
        .build()
        .unwrap();
    let first = records_of(&pool);
    assert_eq!(pool.apply(square, (2,)), Ok(4));
    // The slot's I/O thread retires the first worker before it takes this task.
    assert_eq!(pool.apply(square, (3,)), Ok(9));
    assert!(!first[0].is_our_child(), "{:?} was not reaped", first[0]);
}

#[test]
fn values_that_cannot_be_encoded_are_codec_errors() {
    let pool = Pool::with_workers(1).unwrap();
    let refused = pool.apply_async(unwrap_picky, (Picky(3),));
    assert!(matches!(refused, Err(Error::Codec { .. })), "{refused:?}");
    assert_eq!(pool.apply(unwrap_picky, (Picky(4),)), Ok(4));
    // One unencodable result in a chunk spoils only itself.
    let got: Vec<_> = pool.imap(make_picky, 0..6, Some(6)).unwrap().collect();
    for (i, result) in (0..6).zip(&got) {
        match result {
            Err(Error::Codec { message, .. }) if i == 3 => {
                assert!(message.contains("encode"), "{message}")
            }
            Ok(Picky(v)) => assert_eq!(*v, i),
            other => panic!("item {i}: {other:?}"),
        }
    }
}

/// Python's `imap` gives 1, 2, the error, 4: an item that cannot be
/// encoded fails in its own place, and the items after it still run.
#[test]
fn imap_yields_an_unencodable_items_error_in_its_place() {
    let pool = Pool::with_workers(2).unwrap();
    for chunksize in [None, Some(1), Some(2), Some(4)] {
        let got: Vec<_> = pool
            .imap(unwrap_picky, [1, 2, 3, 4].map(Picky), chunksize)
            .unwrap()
            .collect();
        assert_eq!(got.len(), 4, "chunksize {chunksize:?}: {got:?}");
        assert_eq!((&got[0], &got[1], &got[3]), (&Ok(1), &Ok(2), &Ok(4)));
        assert!(matches!(&got[2], Err(Error::Codec { .. })), "{got:?}");
    }
}

/// A refused item used to leave a stray `Terminated` behind that was read
/// in place of a real chunk's results: each item must come out once.
#[test]
fn imap_unordered_yields_every_item_once_when_one_cannot_be_encoded() {
    let pool = Pool::with_workers(2).unwrap();
    for chunksize in [1, 3] {
        let got: Vec<_> = pool
            .imap_unordered(unwrap_picky, (0..40).map(Picky), Some(chunksize))
            .unwrap()
            .collect();
        assert_eq!(got.len(), 40, "chunksize {chunksize}: {got:?}");
        let values: BTreeSet<u64> = got.iter().filter_map(|r| r.clone().ok()).collect();
        assert_eq!(values, (0..40).filter(|&v| v != 3).collect());
        assert!(matches!(
            got.iter().find(|r| r.is_err()),
            Some(Err(Error::Codec { .. }))
        ));
    }
}

/// A chunk the pool refuses as a whole fails each of its items, in order,
/// and the rest of the input is still read.
#[test]
fn imap_reports_a_refused_chunk_item_by_item() {
    let pool = Pool::with_workers(1).unwrap();
    let unregistered = |r: &Result<u64, Error>| matches!(r, Err(Error::Unregistered { .. }));
    let ordered: Vec<_> = pool
        .imap(never_registered, 0..5, Some(2))
        .unwrap()
        .collect();
    assert_eq!(ordered.len(), 5, "{ordered:?}");
    assert!(ordered.iter().all(unregistered), "{ordered:?}");
    let unordered: Vec<_> = pool
        .imap_unordered(never_registered, 0..5, Some(2))
        .unwrap()
        .collect();
    assert_eq!(unordered.len(), 5, "{unordered:?}");
    assert!(unordered.iter().all(unregistered), "{unordered:?}");
}

/// An encoding error keeps what the value's `Serialize` said as its
/// `source()`, whether the argument failed here or the result in the worker.
#[test]
fn codec_errors_keep_the_serializers_message_as_their_source() {
    let pool = Pool::with_workers(1).unwrap();
    let cause = |err: &Error| std::error::Error::source(err).map(ToString::to_string);
    let refused = pool.apply_async(unwrap_picky, (Picky(3),)).unwrap_err();
    assert_eq!(cause(&refused).as_deref(), Some("three cannot be encoded"));
    assert!(
        refused.to_string().contains("three cannot be encoded"),
        "{refused}"
    );
    let returned = pool.apply(make_picky, (3,)).unwrap_err();
    assert!(matches!(returned, Error::Codec { .. }), "{returned:?}");
    assert_eq!(cause(&returned).as_deref(), Some("three cannot be encoded"));
    let chunk_error = pool
        .map(unwrap_picky, [Picky(2), Picky(3)], Some(2))
        .unwrap_err();
    assert_eq!(
        cause(&chunk_error).as_deref(),
        Some("three cannot be encoded")
    );
}

/// With `RUST_BACKTRACE` set, a task's panic carries the worker's
/// backtrace, on a worker process and on a worker thread alike.
#[test]
fn a_panic_carries_a_backtrace_when_rust_backtrace_asks() {
    if !running_alone() {
        run_alone_with(
            "a_panic_carries_a_backtrace_when_rust_backtrace_asks",
            &[("RUST_BACKTRACE", "1")],
        );
        return;
    }
    let process = Pool::with_workers(1).unwrap().apply(panic_here, (5,));
    let thread = procpool::ThreadPool::with_workers(1)
        .unwrap()
        .apply(panic_here, (5,));
    for err in [process.unwrap_err(), thread.unwrap_err()] {
        assert_panicked_here(&err, 5);
        let Error::Panicked { backtrace, .. } = &err else {
            unreachable!("checked above")
        };
        let trace = backtrace.as_deref().expect("a backtrace");
        assert!(trace.contains("panic_here"), "{trace}");
        assert!(format!("{err:#}").contains("worker backtrace:"), "{err:#}");
        assert_eq!(err.to_string().lines().count(), 1, "{err}");
    }
}

#[track_caller]
fn assert_too_large(err: &Error) {
    match err {
        Error::TooLarge { size, limit } => {
            assert_eq!(*limit, 1 << 30);
            assert!(*size > OVER_THE_LIMIT, "{err:?}");
            let shown = err.to_string();
            assert!(shown.contains(&size.to_string()) && shown.contains(&limit.to_string()));
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

/// A result over the frame limit used to make its worker exit, failing the
/// tasks batched with it as `WorkerLost`. Now it fails alone: the worker
/// stays, and its batch mates get their values.
#[test]
fn a_result_too_large_for_a_frame_fails_only_its_own_task() {
    let pool = Pool::with_workers(1).unwrap();
    let worker = pool.worker_pids();
    // Hold the worker so that everything after queues up and goes out as
    // one batch.
    let gate = Gate::new();
    let holder = pool
        .apply_async(hold_until_released, (gate.arg(),))
        .unwrap();
    let held = gate.wait_started();
    let before: Vec<_> = (0..10)
        .map(|i| pool.apply_async(square, (i,)).unwrap())
        .collect();
    let huge = pool.apply_async(bytes_of_len, (OVER_THE_LIMIT,)).unwrap();
    let after: Vec<_> = (10..20)
        .map(|i| pool.apply_async(square, (i,)).unwrap())
        .collect();
    held.release("go");
    assert_eq!(holder.get(), Ok("go".to_string()));
    assert_too_large(&within("the huge result", move || huge.get()).unwrap_err());
    for (i, r) in (0..20u64).zip(before.into_iter().chain(after)) {
        assert_eq!(r.get(), Ok(i * i));
    }
    assert_eq!(pool.worker_pids(), worker, "the worker was not replaced");
    // In a chunk, the huge item fails in its place and the rest stand.
    let chunk = pool
        .map_async(bytes_of_len, [1, OVER_THE_LIMIT, 2], Some(3))
        .unwrap();
    assert_too_large(&chunk.get().unwrap_err());
    let items: Vec<_> = pool
        .imap(bytes_of_len, [1, OVER_THE_LIMIT, 2], Some(1))
        .unwrap()
        .collect();
    assert_eq!((&items[0], &items[2]), (&Ok(vec![0]), &Ok(vec![0, 0])));
    assert_too_large(items[1].as_ref().unwrap_err());
    assert_eq!(pool.worker_pids(), worker, "the worker was not replaced");
}

/// An argument over the frame limit used to fail every task sent with it
/// (`Codec`). Now it is refused alone; the rest run.
#[test]
fn an_argument_too_large_for_a_frame_fails_only_its_own_task() {
    let pool = Pool::with_workers(1).unwrap();
    let worker = pool.worker_pids();
    let small: Vec<_> = (0..40)
        .map(|i| pool.apply_async(square, (i,)).unwrap())
        .collect();
    let huge = || vec![0u8; OVER_THE_LIMIT as usize];
    assert_too_large(&pool.apply_async(len_of, (huge(),)).unwrap_err());
    for (i, r) in (0..40u64).zip(small) {
        assert_eq!(r.get(), Ok(i * i));
    }
    let items: Vec<_> = pool
        .imap(len_of, [vec![1], huge(), vec![1, 2]], Some(3))
        .unwrap()
        .collect();
    assert_eq!((&items[0], &items[2]), (&Ok(1), &Ok(2)));
    assert_too_large(items[1].as_ref().unwrap_err());
    assert_eq!(pool.worker_pids(), worker, "the worker was not replaced");
}

#[test]
fn a_hundred_thousand_queued_tasks_complete_and_leak_no_fds() {
    if !running_alone() {
        run_alone("a_hundred_thousand_queued_tasks_complete_and_leak_no_fds");
        return;
    }
    let open_fds = || std::fs::read_dir("/proc/self/fd").unwrap().count();
    let baseline = open_fds();
    let pool = Pool::with_workers(2).unwrap();
    let results: Vec<_> = (0..100_000u64)
        .map(|i| pool.apply_async(square, (i,)).unwrap())
        .collect();
    for (i, r) in (0u64..).zip(results) {
        assert_eq!(r.get(), Ok(i * i));
    }
    drop(pool);
    assert_eq!(open_fds(), baseline);
}

#[test]
fn worker_stdout_noise_leaves_results_intact() {
    if running_alone() {
        let pool = Pool::with_workers(2).unwrap();
        let got = pool.map(print_noise, 0..NOISY_TASKS, Some(1)).unwrap();
        assert_eq!(got, (0..NOISY_TASKS).map(|n| n * 2).collect::<Vec<_>>());
        return;
    }
    let stdout = run_alone("worker_stdout_noise_leaves_results_intact");
    // The harness prints "test NAME ... " before the test runs, so the
    // first line of noise can follow it on the same line.
    let noise: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.find("noise ").map(|at| &l[at..]))
        .collect();
    let expected: Vec<String> = (0..NOISY_TASKS)
        .flat_map(|task| (0..NOISE_LINES).map(move |line| format!("noise {task} {line}")))
        .collect();
    assert_eq!(noise.len(), expected.len(), "every line printed once");
    let distinct: BTreeSet<&str> = noise.into_iter().collect();
    assert!(
        expected.iter().all(|line| distinct.contains(line.as_str())),
        "every line arrives whole"
    );
}

#[test]
fn no_worker_process_outlives_the_pool_drop() {
    let pool = Pool::with_workers(2).unwrap();
    assert_eq!(
        pool.map(square, 0..10, Some(1)),
        Ok((0..10).map(|i| i * i).collect())
    );
    let workers = records_of(&pool);
    drop(pool);
    for worker in workers {
        assert!(!worker.is_our_child(), "{worker:?} outlived the pool");
    }
}

#[test]
fn no_worker_process_outlives_terminate_and_join() {
    let mut pool = Pool::with_workers(2).unwrap();
    let gate = Gate::new();
    let busy = pool
        .apply_async(hold_until_released, (gate.arg(),))
        .unwrap();
    let _held = gate.wait_started();
    let workers = records_of(&pool);
    pool.terminate();
    assert_eq!(within("join", move || pool.join()), Ok(()));
    for worker in workers {
        assert!(!worker.is_our_child(), "{worker:?} outlived the pool");
    }
    assert_eq!(busy.get(), Err(Error::Terminated), "its worker was stopped");
}

#[test]
fn an_unregistered_function_is_refused_at_submit() {
    let pool = Pool::with_workers(1).unwrap();
    let unregistered = |e: Error| {
        matches!(&e, Error::Unregistered { name } if name.ends_with("never_registered"))
            && e.to_string().contains("procpool::register!(")
    };
    assert!(unregistered(
        pool.apply_async(never_registered, (1,)).unwrap_err()
    ));
    assert!(unregistered(
        pool.apply(never_registered, (1,)).unwrap_err()
    ));
    assert!(unregistered(
        pool.map(never_registered, 0..5, None).unwrap_err()
    ));
    let mut imap = pool.imap(never_registered, 0..5, None).unwrap();
    assert!(unregistered(imap.next().unwrap().unwrap_err()));
    let (callback, error_callback, fired) = outcome_callbacks();
    let with_callbacks =
        pool.apply_async_with_callbacks(never_registered, (1,), callback, error_callback);
    assert!(unregistered(with_callbacks.unwrap_err()));
    assert_eq!(pool.apply(square, (3,)), Ok(9), "the pool still works");
    assert_eq!(all_fired(fired), vec![], "a refused task fires no callback");
}

#[test]
fn the_initializer_runs_in_every_worker_process() {
    let pool = Pool::builder()
        .workers(1)
        .maxtasksperchild(1)
        .initializer(set_greeting, ("hello".to_string(),))
        .build()
        .unwrap();
    let seen: Vec<_> = (0..3)
        .map(|_| pool.apply(greeting_and_pid, ()).unwrap())
        .collect();
    assert!(
        seen.iter()
            .all(|(greeting, _)| greeting.as_deref() == Some("hello"))
    );
    let pids: BTreeSet<u32> = seen.iter().map(|&(_, pid)| pid).collect();
    assert_eq!(pids.len(), 3, "each task ran in a fresh worker: {seen:?}");
    assert_eq!(greeting_and_pid().0, None, "the parent never runs it");
}

#[test]
fn a_panicking_initializer_makes_build_fail() {
    let built = Pool::builder()
        .workers(2)
        .initializer(refuse_to_start, ("no database".to_string(),))
        .build();
    assert_eq!(
        built.unwrap_err(),
        Error::Initializer {
            message: "no database".into()
        }
    );
}

#[test]
fn an_unregistered_initializer_makes_build_fail() {
    let built = Pool::builder()
        .workers(1)
        .initializer(never_registered, (1,))
        .build();
    assert!(
        matches!(built, Err(Error::Unregistered { .. })),
        "{built:?}"
    );
}
