//! Signals: a worker process killed mid-file costs nothing, and SIGINT or
//! SIGTERM stop a run quickly and cleanly.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::testenv::{Gate, Guarded, hook_available, send_signal};
use crate::testenv::{TestEnv, assert_same_tree, assert_status, temp_files};

/// The stop-time bound: "about a second", with room for a loaded machine.

#[test]
fn a_worker_killed_mid_file_has_that_file_retried_once_and_the_run_succeeds() {
    if !hook_available() {
        return;
    }
    let env = TestEnv::new("process");
    for i in 0..300 {
        env.write(format!("src/d{}/f{i:03}.txt", i % 4), format!("{i}\n"));
    }
    let big: Vec<u8> = (0..(3u32 << 20)).map(|i| (i % 251) as u8).collect();
    env.write("src/d1/inflight.bin", &big);
    let mut gate = Gate::new(env.root(), "data", "d1/inflight.bin");
    let (key, value) = gate.env();
    let child = Guarded::spawn(
        env.pcopy()
            .args(["-v", "-j", "2", "src/", "dst"])
            .env(key, value)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    // The worker holds the file's new data file open, nothing copied yet.
    let first = gate.wait_reached();
    assert_ne!(first, child.id(), "the gate must stop a worker process");
    send_signal(first, libc::SIGKILL);
    // The retry round runs the file again, in another worker.
    let second = gate.wait_reached();
    assert_ne!(second, first);
    gate.release();
    let output = child.wait();
    assert_status(&output, 0);
    assert!(!gate.reached_again(), "the file was tried more than twice");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains(&format!(
            "worker process {first} was lost: killed by signal 9"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("whose worker was lost"), "{stderr}");
    assert!(
        stderr
            .lines()
            .last()
            .unwrap()
            .starts_with("pcopy: 301 files, "),
        "{stderr}"
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let listed = stdout.lines().filter(|l| *l == "d1/inflight.bin").count();
    assert_eq!(listed, 1, "the in-flight file is copied exactly once");
    assert_same_tree(&env.path("src"), &env.path("dst"));
    assert_eq!(temp_files(&env.path("dst")), Vec::<PathBuf>::new());
}

/// Starts a run whose one worker stops at the test hook in the middle of
/// its first file (`first/gated.bin`, with all of `bulk/` queued behind
/// it), sends `signal` then, lets the worker go on, and returns the output
/// and how long the run took to stop after the signal.
fn interrupt_mid_file(env: &TestEnv, signal: i32) -> (std::process::Output, Duration) {
    env.write("first/gated.bin", vec![1u8; 4 << 20]);
    for i in 0..3000 {
        env.write(
            format!("bulk/d{}/file-{i:05}.txt", i % 8),
            "z".repeat(i % 300),
        );
    }
    let mut gate = Gate::new(env.root(), "data", "gated.bin");
    let (key, value) = gate.env();
    let child = Guarded::spawn(
        env.pcopy()
            .args(["-j", "1", "first/", "bulk/", "dst"])
            .env(key, value)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    gate.wait_reached();
    let signalled = Instant::now();
    send_signal(child.id(), signal);
    // A thread worker finishes the file in hand; a process worker is
    // terminated and never reads this.
    gate.release();
    let output = child.wait();
    (output, signalled.elapsed())
}

/// Every file that reached its final name is complete and equal to its
/// source; nothing is left under a temp name; most queued files were not
/// copied (a worker may finish a few between the signal and the moment
/// the main loop, which polls every 50 ms, stops it). Returns how many
/// files reached their names.
fn assert_clean_partial_copy(env: &TestEnv) -> usize {
    assert_eq!(temp_files(&env.path("dst")), Vec::<PathBuf>::new());
    let mut files = 0;
    for entry in walkdir::WalkDir::new(env.path("dst")) {
        let entry = entry.unwrap();
        if entry.file_type().is_file() {
            let rel = entry.path().strip_prefix(env.path("dst")).unwrap();
            let source = ["first", "bulk"]
                .map(|root| env.path(root).join(rel))
                .into_iter()
                .find(|path| path.exists())
                .unwrap();
            let got = std::fs::read(entry.path()).unwrap();
            assert!(
                got == std::fs::read(source).unwrap(),
                "{} is not a complete copy",
                rel.display()
            );
            files += 1;
        }
    }
    assert!(
        files < 1000,
        "{files} of 3001 files copied: the run did not stop"
    );
    files
}

/// A run interrupted by `signal` mid-file stops with status 20 and a
/// summary that counts exactly the files that reached their names, having
/// copied only whole files and far fewer than the sources hold (the event
/// that shows it stopped). How many queued jobs it reports as not copied
/// depends on how far the walk had got, so it is not asserted here (the
/// reporter's tests pin that line). How long it took is printed for the
/// record, not asserted: timings belong to the benchmarks.
fn assert_stops_with_status_20(env: &TestEnv, signal: i32, name: &str) {
    let (output, stop_time) = interrupt_mid_file(env, signal);
    assert_status(&output, 20);
    let stderr = String::from_utf8(output.stderr).unwrap();
    let last = stderr.lines().last().unwrap_or_default();
    let copied = assert_clean_partial_copy(env);
    let files = if copied == 1 { "file" } else { "files" };
    let summary = format!("pcopy: interrupted: {copied} {files}, ");
    assert!(last.starts_with(&summary), "{summary:?} expected: {stderr}");
    eprintln!("{} workers: stopped {stop_time:?} after {name}", env.kind);
}

both_kinds! {
    fn sigterm_stops_the_run_with_status_20(env: TestEnv) {
        assert_stops_with_status_20(&env, libc::SIGTERM, "SIGTERM");
    }

    fn sigint_stops_the_run_with_status_20(env: TestEnv) {
        assert_stops_with_status_20(&env, libc::SIGINT, "SIGINT");
    }
}
