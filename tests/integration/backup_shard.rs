//! `--shard K/N`: N runs split one copy between them, disjointly, and
//! together equal one full run; also through GNU parallel, as the README's
//! recipe runs it.

use std::collections::BTreeSet;
use std::process::Command;

use crate::testenv::{
    TestEnv, assert_same_tree, assert_status, json_of, listing, sorted_stdout_lines,
};

/// A tree of many small files, so every shard gets some.
fn many_files(env: &TestEnv) {
    env.sample_tree("src");
    for i in 0..120 {
        env.write(
            format!("src/spread/d{}/f{i:03}.txt", i % 5),
            format!("{i}\n"),
        );
    }
}

fn copied_by(output: &std::process::Output) -> BTreeSet<String> {
    // Directories (`-v` lists them with a trailing `/`) are every shard's.
    sorted_stdout_lines(output)
        .into_iter()
        .filter(|l| !l.ends_with('/'))
        .collect()
}

both_kinds! {
    fn three_shards_equal_one_full_run_and_are_disjoint(env: TestEnv) {
        many_files(&env);
        assert_status(&env.run(["src/", "full"]), 0);
        let mut seen = BTreeSet::new();
        let mut total = 0;
        for k in 0..3 {
            let shard = format!("{k}/3");
            let output = env.run(["-v", "--shard", &shard, "src/", "dst"]);
            assert_status(&output, 0);
            let files = copied_by(&output);
            assert!(!files.is_empty(), "shard {shard} copied nothing");
            assert!(seen.is_disjoint(&files), "shard {shard} overlaps: {:?}", seen.intersection(&files));
            total += files.len();
            seen.extend(files);
        }
        assert_eq!(total, 129);
        assert_same_tree(&env.path("full"), &env.path("dst"));
        assert_same_tree(&env.path("src"), &env.path("dst"));
        for k in 0..3 {
            let output = env.run(["--json", "--shard", &format!("{k}/3"), "src/", "dst"]);
            assert_eq!(json_of(&output)["files_copied"], 0, "shard {k} rerun copied");
        }
    }

    fn a_single_shard_creates_every_directory(env: TestEnv) {
        many_files(&env);
        assert_status(&env.run(["--shard", "1/3", "src/", "dst"]), 0);
        let dirs = |root: &str| -> Vec<String> {
            listing(&env.path(root)).into_iter().filter(|l| l.contains("\tdir ")).collect()
        };
        assert_eq!(dirs("src"), dirs("dst"));
    }

    fn a_bad_shard_is_a_usage_error(env: TestEnv) {
        env.write("src/f", "f");
        for bad in ["3/3", "1/0", "x"] {
            let output = env.run(["--shard", bad, "src/", "dst"]);
            assert_status(&output, 1);
        }
    }
}

both_kinds! {
    fn gnu_parallel_runs_the_shards_at_once_and_equals_one_full_run(env: TestEnv) {
        let available = Command::new("parallel").arg("--version").output();
        if !available.is_ok_and(|o| o.status.success()) {
            eprintln!("skipped: GNU parallel is not installed (apt-get install parallel)");
            return;
        }
        many_files(&env);
        assert_status(&env.run(["src/", "full"]), 0);
        let output = Command::new("parallel")
            .current_dir(env.root())
            .args(["--will-cite", "--halt", "now,fail=1", "-j3"])
            .arg(env!("CARGO_BIN_EXE_pcopy"))
            .args(["--workers", env.kind])
            .args(["--shard", "{}/3", "src/", "dst", ":::", "0", "1", "2"])
            .output()
            .expect("run parallel");
        assert_status(&output, 0);
        assert_same_tree(&env.path("full"), &env.path("dst"));
    }
}
