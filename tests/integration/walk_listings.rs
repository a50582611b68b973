//! The listings the count-ahead keeps for the walk (`src/walk/listings.rs`)
//! never make a copy stale: with a progress display the whole tree is
//! copied, a directory changed after the count is listed again, and a
//! file changed after the count is judged by a stat no older than the
//! walk's own. `PCOPY_TEST_FRESH_LISTINGS=0` makes pcopy keep the
//! listings of directories this test has only just made.

use std::io::{BufRead, BufReader};
use std::process::{Output, Stdio};

use crate::testenv::{
    Gate, Guarded, TestEnv, assert_same_tree, assert_status, hook_available, set_mtime,
};

/// Keeps listings however recently their directories changed.
const KEEP_FRESH: (&str, &str) = ("PCOPY_TEST_FRESH_LISTINGS", "0");

/// Files in `filler/`: more than the jobs queue holds with one worker
/// (four batches of 128, and the batch being filled), so the walk waits
/// in `filler/` while the worker waits at the gate, and has not yet
/// entered `src/`.
const FILLER_FILES: usize = 1000;

/// Runs pcopy `--progress -j 1` with `args` on `gate filler src` (see
/// [`three_roots`]) into `dst`, its one worker held at `gate/gate.txt`; once a progress line
/// says the totals are final (the count is over, and has kept what it
/// listed) runs `change`, then lets the copy go on.
fn run_changed_after_the_count(env: &TestEnv, args: &[&str], change: impl FnOnce()) -> Output {
    env.mkdir("fifos");
    let mut gate = Gate::new(&env.path("fifos"), "open", "gate/gate.txt");
    let (key, value) = gate.env();
    let mut command = env.pcopy();
    command
        .args(["--progress", "-j", "1"])
        .args(args)
        .args(["gate", "filler", "src", "dst"])
        .env(key, value)
        .env(KEEP_FRESH.0, KEEP_FRESH.1)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = Guarded::spawn(&mut command);
    gate.wait_reached();
    let stderr = child.child().stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    loop {
        let line = lines.next().expect("a progress line").expect("read");
        if !line.contains("scanning") {
            break;
        }
    }
    change();
    gate.release();
    // Read to the end, so pcopy never waits on a full pipe.
    lines.for_each(drop);
    let output = child.wait();
    drop(gate);
    std::fs::remove_dir_all(env.path("fifos")).expect("rm fifos");
    output
}

/// The roots of [`run_changed_after_the_count`]: `gate/gate.txt`,
/// `filler/` and `src/`, a tree of ten directories of 20 files and
/// `late/`.
fn three_roots(env: &TestEnv) {
    env.write("gate/gate.txt", "gate\n");
    for i in 0..FILLER_FILES {
        env.write(format!("filler/f{i:04}"), "x");
    }
    for dir in 0..10 {
        for file in 0..20 {
            let name = format!("src/d{dir}/f{file:02}");
            env.write(name, format!("{dir} {file}\n"));
        }
    }
    env.write("src/late/old", "old\n");
    env.write("src/late/kept", "kept\n");
}

both_kinds! {
    fn with_a_progress_display_the_copy_is_the_whole_tree(env: TestEnv) {
        env.sample_tree("src");
        for dir in 0..30 {
            env.write(format!("src/many/d{dir}/sub/f"), format!("{dir}\n"));
            env.write(format!("src/many/d{dir}/g"), "g\n");
        }
        for args in [&["-a"][..], &[][..], &["-a", "--json"][..]] {
            let mut command = env.pcopy();
            command
                .arg("--progress")
                .args(args)
                .args(["src/", "dst"])
                .env(KEEP_FRESH.0, KEEP_FRESH.1)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let output = Guarded::spawn(&mut command).wait();
            assert_status(&output, 0);
            assert_same_tree(&env.path("src"), &env.path("dst"));
            env.chmod("dst/readonly", 0o755);
            std::fs::remove_dir_all(env.path("dst")).expect("rm dst");
        }
    }

    fn a_directory_changed_between_the_count_and_the_walk_is_listed_again(env: TestEnv) {
        if !hook_available() {
            return;
        }
        three_roots(&env);
        let output = run_changed_after_the_count(&env, &[], || {
            std::fs::remove_file(env.path("src/late/old")).expect("rm");
            env.write("src/late/new", "new\n");
            // A time no clock tick can have given the directory yet: the
            // change is seen even if it fell in the tick of the last one.
            set_mtime(&env.path("src/late"), 1_000_000_000, 0);
        });
        assert_status(&output, 0);
        assert_same_tree(&env.path("src"), &env.path("dst/src"));
        assert!(env.path("dst/src/late/new").exists());
    }

    fn a_file_changed_between_the_count_and_the_walk_is_judged_by_a_new_stat(env: TestEnv) {
        if !hook_available() {
            return;
        }
        three_roots(&env);
        for args in [&[][..], &["-a"][..]] {
            // A first copy, then a second run with the destination
            // up to date but for the gate's file.
            let output = env.run(args.iter().chain(&["gate", "filler", "src", "dst"]));
            assert_status(&output, 0);
            std::fs::remove_file(env.path("dst/gate/gate.txt")).expect("rm");
            let output = run_changed_after_the_count(&env, args, || {
                // Same size, a new time: only a stat after the change
                // tells the quick check the copy is out of date. The
                // directory is unchanged, so its listing is the count's.
                env.write("src/late/kept", "KEPT\n");
                set_mtime(&env.path("src/late/kept"), 1_000_000_000, 0);
            });
            assert_status(&output, 0);
            assert_same_tree(&env.path("src"), &env.path("dst/src"));
            assert_eq!(std::fs::read(env.path("dst/src/late/kept")).unwrap(), b"KEPT\n");
            env.write("src/late/kept", "kept\n");
            std::fs::remove_dir_all(env.path("dst")).expect("rm dst");
        }
    }
}
