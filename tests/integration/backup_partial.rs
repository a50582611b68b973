//! `--partial`: a split file's complete parts survive an interrupted run
//! and the next run copies only the rest, unless the source changed.
//! `--split-min` splits a file of a few MiB; the test hook stops parts at
//! exact moments.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::testenv::{
    Gate, Guarded, Rng, TestEnv, assert_same_tree, assert_status, hook_available, json_of,
    set_mtime, temp_files,
};

/// Files from 2 MiB on are split, in parts of 1 MiB.
const SPLIT_MIN: &str = "2097152";
/// 9 parts, the last one short.
const BIG_SIZE: usize = (8 << 20) + 1234;
/// Parts released, each then done and recorded, before the kill.
const DONE_BEFORE_KILL: usize = 5;

fn tree(env: &TestEnv) -> Vec<u8> {
    let data = Rng::new(11).bytes(BIG_SIZE);
    env.write("src/big.bin", &data);
    set_mtime(&env.path("src/big.bin"), 1_600_000_000, 42);
    env.write("src/small.txt", "small\n");
    data
}

/// Runs pcopy with `--partial` until two workers are stopped in parts of
/// `big.bin` and `DONE_BEFORE_KILL` others are complete, then kills it.
/// `round` names the gate's fifos apart from an earlier round's.
fn interrupted_run(env: &TestEnv, round: &str) {
    env.mkdir(round);
    let mut gate = Gate::new(&env.path(round), "data", "big.bin");
    let (key, value) = gate.env();
    let mut command = env.pcopy();
    command
        .args([
            "--partial",
            "-j",
            "2",
            "--split-min",
            SPLIT_MIN,
            "src/",
            "dst",
        ])
        .env(key, value)
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = Guarded::spawn(&mut command);
    gate.wait_reached();
    gate.wait_reached();
    for _ in 0..DONE_BEFORE_KILL {
        // The worker let go finishes its part, records it, and stops at
        // its next one: when that is seen, the part is on record.
        gate.release();
        gate.wait_reached();
    }
    let status = child.kill_group();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert!(!env.path("dst/big.bin").exists());
    let partial: PathBuf = env.path("dst/.pcopy-tmp.partial.big.bin");
    assert_eq!(temp_files(&env.path("dst")), vec![partial]);
}

fn rerun(env: &TestEnv, partial: bool) -> serde_json::Value {
    let mut args = vec!["--json", "-j", "2", "--split-min", SPLIT_MIN, "src/", "dst"];
    if partial {
        args.insert(0, "--partial");
    }
    let output = env.run(args);
    assert_status(&output, 0);
    assert_same_tree(&env.path("src"), &env.path("dst"));
    assert_eq!(temp_files(&env.path("dst")), Vec::<PathBuf>::new());
    json_of(&output)
}

fn copied(json: &serde_json::Value) -> u64 {
    json["bytes_copied"].as_u64().unwrap()
}

both_kinds! {
    fn a_resumed_copy_copies_only_the_missing_parts(env: TestEnv) {
        if !hook_available() {
            return;
        }
        tree(&env);
        interrupted_run(&env, "gate");
        let json = rerun(&env, true);
        // 9 parts: 5 were done; at most the 4 others are copied again.
        let again = copied(&json);
        assert!(again <= (4 << 20) + 1234, "copied {again} of {BIG_SIZE}");
        assert!(again * 4 < BIG_SIZE as u64 * 3, "more than 75 % again: {again}");
        assert!(!has_records(&env.path("dst/big.bin")), "records left on the file");
    }

    fn a_changed_source_or_no_partial_copies_everything_again(env: TestEnv) {
        if !hook_available() {
            return;
        }
        tree(&env);
        interrupted_run(&env, "gate1");
        set_mtime(&env.path("src/big.bin"), 1_600_000_001, 0);
        let json = rerun(&env, true);
        assert_eq!(copied(&json), BIG_SIZE as u64);
        std::fs::remove_dir_all(env.path("dst")).unwrap();
        interrupted_run(&env, "gate2");
        let json = rerun(&env, false);
        assert_eq!(copied(&json), BIG_SIZE as u64);
    }
}

/// Whether `path` still carries a `user.pcopy.` attribute.
fn has_records(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let mut names = vec![0u8; 4096];
    // SAFETY: `c` is a NUL-terminated path and `names` a buffer of the
    // length passed.
    let n = unsafe { libc::listxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    assert!(n >= 0, "listxattr failed");
    names[..n as usize]
        .split(|&b| b == 0)
        .any(|name| name.starts_with(b"user.pcopy."))
}
