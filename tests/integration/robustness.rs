//! A worker process killed in the middle of a run costs nothing: its jobs
//! are retried and the tree comes out complete.
//!
//! Only process workers can be killed on their own, so this test runs with
//! `--workers process` alone; a thread worker's death is the whole run's.

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;

use crate::testenv::{
    Guarded, TestEnv, assert_same_tree, assert_status, send_signal, temp_files, worker_pid,
};

#[test]
fn a_killed_worker_process_is_replaced_and_its_files_retried() {
    let env = TestEnv::new("process");
    // As in the Ctrl-C test: more -vv output than a pipe holds, so the run
    // cannot end while only the first line has been read.
    env.many_long_names("src");
    let mut child = Guarded::spawn(
        env.pcopy()
            .args(["-vv", "-j", "2", "src/", "dst"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let mut stdout = BufReader::new(child.child().stdout.take().unwrap());
    // Directories are listed too, by the main thread: wait for a file.
    let mut first = String::new();
    while !first.starts_with("[pid ") {
        first.clear();
        assert!(stdout.read_line(&mut first).unwrap() > 0, "no file listed");
    }
    let worker = worker_pid(&first);
    assert_ne!(worker, child.id(), "-vv must name the worker, not pcopy");
    // The pool reaps its workers only after the run: the pid is live.
    send_signal(worker, libc::SIGKILL);
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    let output = child.wait();
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
        temp_files(&env.path("dst")),
        Vec::<std::path::PathBuf>::new()
    );
}
