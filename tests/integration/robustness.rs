//! A worker process killed in the middle of a run costs nothing: its jobs
//! are retried and the tree comes out complete.
//!
//! Only process workers can be killed on their own, so this test runs with
//! `--workers process` alone; a thread worker's death is the whole run's.

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;

use crate::testenv::{self, TestEnv, assert_same_tree, assert_status};

#[test]
fn a_killed_worker_process_is_replaced_and_its_files_retried() {
    let env = TestEnv::new("process");
    // As in the Ctrl-C test: more -vv output than a pipe holds, so the run
    // cannot end while only the first line has been read.
    for i in 0..4000 {
        env.write(
            format!("src/dir{}/file-with-a-long-name-{i:05}.txt", i % 8),
            "y".repeat(i % 50),
        );
    }
    let mut child = env
        .pcopy()
        .args(["-vv", "-j", "2", "src/", "dst"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let worker: libc::pid_t = first
        .strip_prefix("[pid ")
        .and_then(|rest| rest.split(']').next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no worker pid in {first:?}"));
    assert_ne!(
        worker as u32,
        child.id(),
        "-vv must name the worker, not pcopy"
    );
    // SAFETY: kill has no memory-safety preconditions. The pid is a live
    // worker of our child: the pool reaps its workers only after the run.
    assert_eq!(unsafe { libc::kill(worker, libc::SIGKILL) }, 0);
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    let output = child.wait_with_output().unwrap();
    assert_status(&output, 0);
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains(&format!(
            "worker process {worker} was lost: killed by signal 9"
        )),
        "{stderr}"
    );
    assert!(
        stderr
            .lines()
            .last()
            .unwrap_or("")
            .starts_with("pcopy: 4000 files, "),
        "{stderr}"
    );
    assert_same_tree(&env.path("src"), &env.path("dst"));
    assert_eq!(
        testenv::temp_files(&env.path("dst")),
        Vec::<std::path::PathBuf>::new()
    );
}
