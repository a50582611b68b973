//! Large files split into ranges copied by several workers. The hidden
//! `--split-min` lowers the threshold so that files of a few MiB are split
//! (into parts of half the threshold), keeping the tests fast.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Output, Stdio};

use crate::testenv::{
    Gate, Guarded, Mounted, Rng, TestEnv, assert_same_tree, assert_status, hook_available, json_of,
    send_signal, set_mtime, skipped, temp_files,
};

/// The threshold the tests use: files from 1 MiB on, in 512 KiB parts.
const SPLIT_MIN: &str = "1048576";
/// The split file: 5 MiB and a bit, so its last part is short (11 parts).
const BIG_SIZE: usize = (5 << 20) + 1234;
/// More than the number of parts and retries: every part that stops at
/// the gate goes on.
const RELEASES: usize = 32;

/// `src/` with the split file `sub/big.bin` (mode 640, a fixed mtime)
/// and a small file; returns the big file's contents.
fn tree(env: &TestEnv) -> Vec<u8> {
    let data = Rng::new(7).bytes(BIG_SIZE);
    env.write("src/sub/big.bin", &data);
    env.chmod("src/sub/big.bin", 0o640);
    set_mtime(&env.path("src/sub/big.bin"), 1_600_000_000, 123_456_789);
    env.write("src/small.txt", "small\n");
    data
}

/// Starts pcopy with `--json` and the split threshold, gated at `stage`
/// of the split file.
fn spawn_gated(env: &TestEnv, gate: &Gate, jobs: &str) -> Guarded {
    let (key, value) = gate.env();
    let mut command = env.pcopy();
    command
        .args([
            "--json",
            "-j",
            jobs,
            "--split-min",
            SPLIT_MIN,
            "src/",
            "dst",
        ])
        .env(key, value)
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Guarded::spawn(&mut command)
}

fn release_all(gate: &mut Gate) {
    for _ in 0..RELEASES {
        gate.release();
    }
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

both_kinds! {
    fn a_split_file_is_copied_whole_with_its_metadata_and_counted_once(env: TestEnv) {
        tree(&env);
        for jobs in ["2", "3"] {
            let dst = format!("dst{jobs}");
            let args = ["--json", "-j", jobs, "--split-min", SPLIT_MIN, "src/", &dst];
            let output = env.run(args);
            assert_status(&output, 0);
            let json = json_of(&output);
            assert_eq!(json["files_copied"], 2, "{json}");
            assert_eq!(json["bytes_copied"], BIG_SIZE as u64 + 6, "{json}");
            assert_eq!(json["files_failed"], 0, "{json}");
            assert_same_tree(&env.path("src"), &env.path(&dst));
            assert_eq!(temp_files(&env.path(&dst)), Vec::<PathBuf>::new());
            let meta = std::fs::metadata(env.path(&dst).join("sub/big.bin")).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, 0o640);
            assert_eq!((meta.mtime(), meta.mtime_nsec()), (1_600_000_000, 123_456_789));
            // The copy has its name now: the rerun's quick check skips it.
            let again = env.run(args);
            assert_eq!(json_of(&again)["files_skipped"], 2, "{}", stderr_of(&again));
        }
    }

    fn archive_and_fsync_keep_a_split_file_s_attributes(env: TestEnv) {
        tree(&env);
        let big = env.path("src/sub/big.bin");
        let flags = rustix::fs::XattrFlags::empty();
        if rustix::fs::setxattr(&big, "user.note", b"kept", flags) == Err(rustix::io::Errno::NOTSUP) {
            return eprintln!("skipped: the temp filesystem has no user extended attributes");
        }
        let args = ["-a", "--fsync", "-j", "2", "--split-min", SPLIT_MIN, "src/", "dst"];
        let output = env.run(args);
        assert_status(&output, 0);
        assert_same_tree(&env.path("src"), &env.path("dst"));
        let mut note = [0u8; 16];
        let len = rustix::fs::getxattr(env.path("dst/sub/big.bin"), "user.note", &mut note[..]);
        assert_eq!(&note[..len.unwrap()], b"kept");
    }

    fn a_full_destination_fails_a_split_file_once_and_gives_its_space_back(env: TestEnv) {
        env.mkdir("dst");
        let _tmpfs = match Mounted::tmpfs(&env.path("dst"), "size=4m") {
            Ok(mounted) => mounted,
            Err(why) => return skipped(why),
        };
        tree(&env);
        // Alone: a small file copied while the parts fill the space could
        // fail too, depending on the order.
        std::fs::remove_file(env.path("src/small.txt")).unwrap();
        let args = ["--json", "-j", "3", "--split-min", SPLIT_MIN, "src/", "dst"];
        let output = env.run(args);
        assert_status(&output, 23);
        let stderr = stderr_of(&output);
        assert!(
            stderr.contains("src/sub/big.bin: cannot write destination: No space left on device"),
            "{stderr}"
        );
        let json = json_of(&output);
        assert_eq!(json["files_failed"], 1, "{json}");
        assert_eq!(json["files_copied"], 0, "{json}");
        assert!(!env.path("dst/sub/big.bin").exists());
        assert_eq!(temp_files(&env.path("dst")), Vec::<PathBuf>::new());
        let stat = rustix::fs::statvfs(env.path("dst")).unwrap();
        let free = stat.f_bavail * stat.f_frsize;
        assert!(free >= 3 << 20, "only {free} bytes free: the temp still holds space");
    }

    fn a_split_file_that_grows_while_copied_is_reported_and_copied_again_later(env: TestEnv) {
        if !hook_available() {
            return;
        }
        let data = tree(&env);
        let mut gate = Gate::new(env.root(), "data", "sub/big.bin");
        let child = spawn_gated(&env, &gate, "2");
        gate.wait_reached();
        let mut grown = std::fs::OpenOptions::new()
            .append(true)
            .open(env.path("src/sub/big.bin"))
            .unwrap();
        std::io::Write::write_all(&mut grown, b"appended while copied").unwrap();
        release_all(&mut gate);
        let output = child.wait();
        assert_status(&output, 0);
        let stderr = stderr_of(&output);
        assert!(
            stderr.contains("src/sub/big.bin: file changed as we read it"),
            "{stderr}"
        );
        assert_eq!(json_of(&output)["files_copied"], 2, "{stderr}");
        // The bytes the walk saw, with the mtime it saw: not a current copy.
        assert_eq!(std::fs::read(env.path("dst/sub/big.bin")).unwrap(), data);
        let mtime = std::fs::metadata(env.path("dst/sub/big.bin")).unwrap().mtime();
        assert_eq!(mtime, 1_600_000_000);
        let rerun = env.run(["--json", "--split-min", SPLIT_MIN, "src/", "dst"]);
        assert_eq!(json_of(&rerun)["files_copied"], 1, "{}", stderr_of(&rerun));
        assert_same_tree(&env.path("src"), &env.path("dst"));
    }

    fn a_split_file_whose_source_vanishes_fails_once_and_leaves_no_temp(env: TestEnv) {
        if !hook_available() {
            return;
        }
        tree(&env);
        let mut gate = Gate::new(env.root(), "open", "sub/big.bin");
        let child = spawn_gated(&env, &gate, "3");
        gate.wait_reached();
        std::fs::remove_file(env.path("src/sub/big.bin")).unwrap();
        release_all(&mut gate);
        let output = child.wait();
        assert_status(&output, 24);
        let json = json_of(&output);
        assert_eq!(json["files_copied"], 1, "{json}");
        assert_eq!(json["files_vanished"], 1, "{json}");
        assert_eq!(json["errors"].as_array().unwrap().len(), 1, "{json}");
        assert!(!env.path("dst/sub/big.bin").exists());
        assert_eq!(temp_files(&env.path("dst")), Vec::<PathBuf>::new());
    }

    fn an_interrupted_split_copy_leaves_a_whole_file_or_none_and_no_temp(env: TestEnv) {
        if !hook_available() {
            return;
        }
        let data = tree(&env);
        std::fs::remove_file(env.path("src/small.txt")).unwrap();
        let mut gate = Gate::new(env.root(), "data", "sub/big.bin");
        let child = spawn_gated(&env, &gate, "2");
        gate.wait_reached();
        send_signal(child.id(), libc::SIGINT);
        // The parts go on; the workers may finish them all before the run
        // sees the signal (it polls), so either outcome is right, but
        // nothing in between.
        release_all(&mut gate);
        let output = child.wait();
        assert_status(&output, 20);
        let json = json_of(&output);
        match std::fs::read(env.path("dst/sub/big.bin")) {
            Ok(copy) => {
                assert!(copy == data, "the file is not whole");
                assert_eq!(json["files_copied"], 1, "{json}");
            }
            Err(_) => assert_eq!(json["files_not_copied"], 1, "{json}"),
        }
        assert_eq!(temp_files(&env.path("dst")), Vec::<PathBuf>::new());
    }

    fn a_run_killed_mid_split_leaves_a_temp_that_the_next_run_removes(env: TestEnv) {
        if !hook_available() {
            return;
        }
        tree(&env);
        let mut gate = Gate::new(env.root(), "data", "sub/big.bin");
        let child = spawn_gated(&env, &gate, "2");
        gate.wait_reached();
        let status = child.kill_group();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert!(!env.path("dst/sub/big.bin").exists());
        assert_eq!(temp_files(&env.path("dst")).len(), 1, "the split file's temp");
        let output = env.run(["--split-min", SPLIT_MIN, "src/", "dst"]);
        assert_status(&output, 0);
        assert_same_tree(&env.path("src"), &env.path("dst"));
        assert_eq!(temp_files(&env.path("dst")), Vec::<PathBuf>::new());
    }
}

/// Only process workers can be killed alone; the thread kind shares the
/// fate of pcopy itself (the test above).
#[test]
fn a_worker_killed_during_a_split_copy_costs_only_its_part() {
    if !hook_available() {
        return;
    }
    let env = TestEnv::new("process");
    tree(&env);
    let mut gate = Gate::new(env.root(), "data", "sub/big.bin");
    let child = spawn_gated(&env, &gate, "2");
    let first = gate.wait_reached();
    assert_ne!(first, child.id(), "the gate must stop a worker process");
    // `first` is a live worker of our child, stopped at the gate.
    send_signal(first, libc::SIGKILL);
    release_all(&mut gate);
    let output = child.wait();
    assert_status(&output, 0);
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains(&format!("worker process {first} was lost")),
        "{stderr}"
    );
    let json = json_of(&output);
    assert_eq!(json["files_copied"], 2, "{json}");
    assert_eq!(json["bytes_copied"], BIG_SIZE as u64 + 6, "{json}");
    assert_same_tree(&env.path("src"), &env.path("dst"));
    assert_eq!(temp_files(&env.path("dst")), Vec::<PathBuf>::new());
}
