//! Runs every example with small inputs and checks what it prints.
//!
//! Cargo builds examples but gives tests no path to them, and running
//! `cargo run --example` from a test would rebuild under a lock. Instead
//! each example file is compiled into this test crate as a module: its
//! `run(out, args)` is the whole example except `main`, so the test calls
//! it with a buffer and command-line style arguments. The examples'
//! `register!` lines then register their tasks in this binary, whose worker
//! processes are this binary started again (see `test_support!`).

use std::error::Error;
use std::ffi::OsString;

procpool::test_support!();

// Each module is an example's whole source; only its `main` goes unused.
#[path = "../examples/apply.rs"]
#[allow(dead_code, reason = "main is for cargo run; the tests call run")]
mod apply;
#[path = "../examples/apply_async.rs"]
#[allow(dead_code, reason = "main is for cargo run; the tests call run")]
mod apply_async;
#[path = "../examples/close_join_terminate.rs"]
#[allow(dead_code, reason = "main is for cargo run; the tests call run")]
mod close_join_terminate;
#[path = "../examples/folder_copier.rs"]
#[allow(dead_code, reason = "main is for cargo run; the tests call run")]
mod folder_copier;
#[path = "../examples/manager_queue.rs"]
#[allow(dead_code, reason = "main is for cargo run; the tests call run")]
mod manager_queue;
#[path = "../examples/map.rs"]
#[allow(dead_code, reason = "main is for cargo run; the tests call run")]
mod map;
#[path = "../examples/map_async.rs"]
#[allow(dead_code, reason = "main is for cargo run; the tests call run")]
mod map_async;
#[path = "../examples/pool_bench.rs"]
#[allow(dead_code, reason = "main is for cargo run; the tests call run")]
mod pool_bench;
#[path = "../examples/pool_squares.rs"]
#[allow(dead_code, reason = "main is for cargo run; the tests call run")]
mod pool_squares;
#[path = "../examples/timeouts.rs"]
#[allow(dead_code, reason = "main is for cargo run; the tests call run")]
mod timeouts;
#[path = "../examples/worker_crash.rs"]
#[allow(dead_code, reason = "main is for cargo run; the tests call run")]
mod worker_crash;

type Run = fn(&mut Vec<u8>, &[OsString]) -> Result<(), Box<dyn Error>>;

/// Runs an example's `run` with `args` and returns its output lines.
fn lines_of(run: Run, args: &[&str]) -> Vec<String> {
    let args: Vec<OsString> = args.iter().map(OsString::from).collect();
    let mut out = Vec::new();
    if let Err(e) = run(&mut out, &args) {
        panic!(
            "example failed: {e}; output so far:\n{}",
            String::from_utf8_lossy(&out)
        );
    }
    String::from_utf8(out)
        .expect("examples print UTF-8")
        .lines()
        .map(str::to_string)
        .collect()
}

/// The pid a line names after `marker` (e.g. "on worker ").
fn pid_after(line: &str, marker: &str) -> u32 {
    let rest = &line[line
        .find(marker)
        .unwrap_or_else(|| panic!("{marker:?} in {line:?}"))
        + marker.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("a pid after {marker:?} in {line:?}"))
}

/// The `[a, b, ...]` list of numbers in a line.
fn list_in(line: &str) -> Vec<u64> {
    let (start, end) = (
        line.find('[').expect("a list"),
        line.find(']').expect("a list"),
    );
    line[start + 1..end]
        .split(", ")
        .filter(|s| !s.is_empty())
        .map(|n| n.parse().unwrap())
        .collect()
}

#[test]
fn apply_blocks_until_each_task_is_done() {
    let lines = lines_of(apply::run, &["--tasks", "3", "--work-ms", "10"]);
    let workers = list_in(&lines[0]);
    assert_eq!(workers.len(), 2);
    assert!(!workers.contains(&u64::from(std::process::id())));
    for (i, line) in lines[1..4].iter().enumerate() {
        let expected = format!("apply(pow, ({i}, 2)) = {} on worker ", i * i);
        assert!(line.starts_with(&expected), "{line}");
        assert!(workers.contains(&u64::from(pid_after(line, "on worker "))));
    }
    let took: u64 = lines[4]
        .split(" took ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(took >= 30, "three sequential 10 ms applies took {took} ms");
    assert!(lines[4].ends_with(
        "(at least 30 ms): each apply waited for its task, so one worker at a time was busy"
    ));
    assert!(lines[5].starts_with("the same 3 tasks with apply_async took "));
}

#[test]
fn apply_async_callbacks_run_in_the_parent() {
    let lines = lines_of(apply_async::run, &["--inputs", "2,-7,3"]);
    let parent = std::process::id();
    assert_eq!(lines[0], format!("parent pid {parent}"));
    assert_eq!(lines[1], "queued 3 calls; apply_async returned at once");
    assert!(lines[2].starts_with("callback: square(2) = 4, computed by worker "));
    assert_ne!(pid_after(&lines[2], "computed by worker "), parent);
    assert!(lines[2].ends_with(&format!("callback ran in pid {parent}")));
    // The panic's place is the example's `assert!`, wherever the example
    // file was compiled from.
    let (failed, place) = lines[3]
        .split_once(" at ")
        .expect("the panic says where it happened");
    assert_eq!(failed, "error_callback: square(-7) failed: task panicked");
    assert!(
        place.ends_with(&format!(
            "apply_async.rs:43:5: negative input: -7; ran in pid {parent}"
        )),
        "{place}"
    );
    assert!(lines[4].starts_with("callback: square(3) = 9, computed by worker "));
    assert_eq!(lines[5], "successful: 2 of 3");
    let bad = apply_async::parse(&["--inputs".into(), "2,x".into()]);
    assert_eq!(bad.unwrap_err(), "not a number: x");
}

#[test]
fn map_keeps_order_and_cuts_python_sized_chunks() {
    let lines = lines_of(map::run, &["--items", "50", "--workers", "2"]);
    assert_eq!(list_in(&lines[0]).len(), 2);
    assert_eq!(
        lines[1],
        "map over 50 items on 2 workers: chunksize = ceil(50 / (4 * 2)) = 7"
    );
    assert_eq!(lines[2], "8 chunks of sizes [7, 7, 7, 7, 7, 7, 7, 1]");
    assert_eq!(lines[3], "results in input order: true");
    assert_eq!(lines[4], "first squares: [0, 1, 4, 9, 16, 25, 36, 49]");
    let runs: Vec<&String> = lines.iter().filter(|l| l.starts_with("items ")).collect();
    assert!(!runs.is_empty());
    for run in runs {
        let range = run.trim_start_matches("items ").split(' ').next().unwrap();
        let (start, end) = range.split_once("..").unwrap();
        let (start, end): (usize, usize) = (start.parse().unwrap(), end.parse().unwrap());
        assert_eq!(start % 7, 0, "a worker change inside a chunk: {run}");
        assert!(end % 7 == 0 || end == 50, "{run}");
    }
    let last = lines.last().unwrap();
    assert!(
        last.starts_with("with chunksize 50: 1 chunk(s), 1 run(s) of one worker"),
        "{last}"
    );
}

#[test]
fn map_async_is_not_ready_until_the_workers_are_free() {
    let lines = lines_of(map_async::run, &["--items", "12"]);
    let held = list_in(&lines[0]);
    assert_eq!(held.len(), 2);
    assert_eq!(lines[1], "map_async returned at once; ready() = false");
    assert_eq!(
        lines[2],
        "successful() = None (Python raises ValueError: not ready)"
    );
    assert_eq!(lines[3], "callback got all 12 results at once");
    assert_eq!(lines[4], "first squares: [0, 1, 4, 9, 16]");
    let computed_by = list_in(&lines[5]);
    assert!(
        computed_by.iter().all(|pid| held.contains(pid)),
        "{lines:?}"
    );
}

#[test]
fn close_join_and_terminate_resolve_every_result() {
    let lines = lines_of(close_join_terminate::run, &["--tasks", "3"]);
    let expected_start = [
        "== close, then join ==",
        "join() while running: Err(StillRunning)",
        "apply_async after close(): Err(Closed)",
        "join() returned: the 3 queued tasks ran first",
    ];
    assert_eq!(lines[..4], expected_start);
    for (i, line) in lines[4..7].iter().enumerate() {
        assert!(
            line.starts_with(&format!("task {i}: Ok({}) on worker ", i * i)),
            "{line}"
        );
    }
    assert_eq!(lines[7], "== terminate, then join ==");
    assert_eq!(list_in(&lines[8]).len(), 2);
    assert!(lines[8].ends_with("are busy; 3 tasks are queued behind them"));
    let expected_end = [
        "queued task 0: Err(Terminated)",
        "queued task 1: Err(Terminated)",
        "queued task 2: Err(Terminated)",
        "running task 0: Err(Terminated)",
        "running task 1: Err(Terminated)",
        "join() returned after terminate(); in Python those get() calls would hang",
    ];
    assert_eq!(lines[9..], expected_end);
}

#[test]
fn pool_squares_runs_the_seed_example() {
    let lines = lines_of(pool_squares::run, &["--items", "20"]);
    assert_eq!(
        lines[1],
        "first squares: [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]"
    );
    assert_eq!(
        lines[2],
        format!(
            "sum of 20 squares: {}",
            (0..20u64).map(|i| i * i).sum::<u64>()
        )
    );
    let ran: usize = lines[3..]
        .iter()
        .map(|l| {
            l.trim_end_matches(" tasks")
                .rsplit(' ')
                .next()
                .unwrap()
                .parse::<usize>()
                .unwrap()
        })
        .sum();
    assert_eq!(ran, 20);
}

#[test]
fn manager_queue_carries_items_from_workers_to_the_parent() {
    let lines = lines_of(manager_queue::run, &["--count", "4"]);
    let workers = list_in(&lines[0]);
    assert!(lines[1].starts_with("a queue handle travels as "));
    let got: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("got from worker "))
        .collect();
    assert!(!got.is_empty() && got.len() <= 2);
    let mut items = 0;
    for line in got {
        assert!(workers.contains(&u64::from(pid_after(line, "got from worker "))));
        // Which worker runs which producer is up to the pool: an idle one
        // may run both, one after the other. Each run puts 0..4 in order.
        let per = list_in(line);
        assert!(!per.is_empty() && per.len() % 4 == 0, "{per:?}");
        for run in per.chunks(4) {
            assert_eq!(run, [0, 1, 2, 3], "{per:?}");
        }
        items += per.len();
    }
    assert_eq!(items, 8);
    assert!(lines.contains(&"queue empty now: true".to_string()));
    assert!(
        lines
            .last()
            .unwrap()
            .starts_with("why not a std::sync::mpsc channel?")
    );
}

#[test]
fn folder_copier_copies_a_tree_with_progress() {
    use std::os::unix::ffi::OsStrExt;
    let root = tempfile::tempdir().unwrap();
    let (src, dst) = (root.path().join("src"), root.path().join("dst"));
    std::fs::create_dir_all(src.join("a/b")).unwrap();
    std::fs::create_dir(src.join("empty")).unwrap();
    std::fs::write(src.join("top.txt"), "top").unwrap();
    std::fs::write(src.join("a/b/deep.txt"), "deep").unwrap();
    let odd = std::ffi::OsStr::from_bytes(b"not-utf8-\xff");
    std::fs::write(src.join("a").join(odd), "odd").unwrap();
    std::os::unix::fs::symlink("top.txt", src.join("link")).unwrap();
    let args = [
        src.as_os_str(),
        dst.as_os_str(),
        "-j".as_ref(),
        "2".as_ref(),
    ];
    let args: Vec<OsString> = args.iter().map(|a| a.to_os_string()).collect();
    let mut out = Vec::new();
    folder_copier::run(&mut out, &args).unwrap();
    let out = String::from_utf8(out).unwrap();
    let progress: Vec<&str> = out.split(['\r', '\n']).filter(|s| !s.is_empty()).collect();
    assert_eq!(
        progress[..4],
        [
            "copy progress: 25.00%",
            "copy progress: 50.00%",
            "copy progress: 75.00%",
            "copy progress: 100.00%"
        ]
    );
    assert!(
        progress[4].starts_with("copied 4 of 4 files; files per worker: {"),
        "{out}"
    );
    assert_eq!(std::fs::read(dst.join("a/b/deep.txt")).unwrap(), b"deep");
    assert_eq!(std::fs::read(dst.join("a").join(odd)).unwrap(), b"odd");
    assert_eq!(
        std::fs::read_link(dst.join("link")).unwrap(),
        std::path::Path::new("top.txt")
    );
    assert!(dst.join("empty").is_dir());

    let missing = [
        root.path().join("nope").into_os_string(),
        dst.into_os_string(),
    ];
    let err = folder_copier::run(&mut Vec::new(), &missing).unwrap_err();
    assert!(err.to_string().starts_with("cannot copy "), "{err}");
}

#[test]
fn worker_crash_reports_worker_lost_and_goes_on() {
    let lines = lines_of(worker_crash::run, &["--after", "4"]);
    let victim = pid_after(&lines[1], "worker ");
    assert!(list_in(&lines[0]).contains(&u64::from(victim)));
    assert_eq!(
        lines[1],
        format!("worker {victim} is inside a task; sending it SIGKILL")
    );
    assert_eq!(
        lines[2],
        format!(
            "the task's result: Err(WorkerLost {{ pid: {victim}, status: \"killed by signal 9 (SIGKILL)\" }})"
        )
    );
    assert_eq!(
        lines[3],
        "(Python's Pool would wait for that result forever)"
    );
    assert_eq!(list_in(&lines[4]).len(), 2);
    assert!(
        lines[4].ends_with(&format!("; {victim} replaced: true")),
        "{}",
        lines[4]
    );
    assert_eq!(lines[5], "the pool goes on: map gave [0, 1, 4, 9]");
}

#[test]
fn pool_bench_prints_every_figure_in_the_python_format() {
    let args = [
        "-j",
        "2",
        "--n-async",
        "300",
        "--n-apply",
        "20",
        "--n-map",
        "1000",
        "--n-queue",
        "200",
        "--mb",
        "3",
    ];
    let lines = lines_of(pool_bench::run, &args);
    let figures = [
        "apply_async",
        "apply_round_trip",
        "map",
        "imap_unordered",
        "queue_put_get",
        "queue_put_get_batch",
        "bytes_echo_mb",
    ];
    let expected: Vec<String> = ["process", "thread"]
        .iter()
        .flat_map(|backend| figures.iter().map(move |f| format!("{backend}.{f}")))
        .collect();
    assert_eq!(lines.len(), expected.len(), "{lines:?}");
    for (line, name) in lines.iter().zip(&expected) {
        // "%-28s %10d %9.3f %12.0f"
        assert_eq!(line[..28].trim_end(), name);
        let fields: Vec<&str> = line[28..].split_whitespace().collect();
        assert_eq!(fields.len(), 3, "{line}");
        assert_eq!(line.len(), 28 + 11 + 10 + 13, "{line}");
        let figure = name.split_once('.').unwrap().1;
        let items =
            [300, 20, 1000, 300, 200, 200, 3][figures.iter().position(|f| *f == figure).unwrap()];
        assert_eq!(fields[0], items.to_string(), "{line}");
        assert!(fields[1].parse::<f64>().unwrap() >= 0.0);
        assert_eq!(fields[1].split('.').nth(1).unwrap().len(), 3, "{line}");
    }
    let bad = pool_bench::Options::parse(&["--n-queue".into(), "1".into()]).unwrap_err();
    assert_eq!(bad, "--n-queue must be at least -j");
}

#[test]
fn timeouts_stop_a_stuck_task_and_cancel_stops_queued_and_running_ones() {
    let lines = lines_of(timeouts::run, &["--limit-ms", "200"]);
    assert_eq!(lines[0], "== a time limit of 200 ms ==");
    let stuck = pid_after(&lines[1], "worker ");
    assert_eq!(
        lines[1],
        format!("worker {stuck} runs a task that never returns")
    );
    assert_eq!(
        lines[2],
        format!("its result: Err(TimedOut {{ limit: 200ms, pid: Some({stuck}) }})")
    );
    let prefix = format!("worker {stuck} still alive: false; the pool's workers now: ");
    assert!(lines[3].starts_with(&prefix), "{}", lines[3]);
    let now = list_in(&lines[3]);
    assert!(now.len() == 1 && now[0] != u64::from(stuck), "{}", lines[3]);
    assert_eq!(lines[4], "the next task runs at once: Ok(49)");
    assert_eq!(lines[5], "== cancel ==");
    assert_eq!(lines[6], "queued task: cancel() = true");
    assert_eq!(lines[7], "its result: Err(Cancelled)");
    let running = pid_after(&lines[8], "on worker ");
    assert_eq!(
        lines[8],
        format!("task running on worker {running}: cancel() = true")
    );
    assert_eq!(lines[9], "its result: Err(Cancelled)");
    let prefix = format!("worker {running} still alive: false; the pool's workers now: ");
    assert!(lines[10].starts_with(&prefix), "{}", lines[10]);
    assert_eq!(list_in(&lines[10]).len(), 1);
    assert_eq!(lines[11], "a finished task: cancel() = false");
    assert_eq!(lines[12], "its result: Ok(81)");
    assert_eq!(lines.len(), 13);
    assert!(timeouts::parse(&["--limit-ms".into(), "x".into()]).is_err());
}
