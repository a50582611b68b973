//! Incremental runs: the quick check, `--checksum`, `--ignore-times`,
//! `--update`, `--ignore-existing`, and the `--json` summary.

use std::fs;
use std::os::unix::fs::MetadataExt;

use crate::testenv::{
    self, TestEnv, assert_same_tree, assert_status, assert_unchanged, json_of, listing, set_mtime,
    snapshot,
};

both_kinds! {
    fn a_rerun_over_an_unchanged_tree_copies_nothing(env: TestEnv) {
        env.sample_tree("src");
        let first = env.run(["--json", "src/", "dst"]);
        assert_status(&first, 0);
        let summary = json_of(&first);
        assert_eq!(summary["files_copied"], 9, "{summary}");
        assert_eq!(summary["dirs_created"], 6, "{summary}");
        let before = snapshot(&env.path("dst"));
        let again = env.run(["--json", "src/", "dst"]);
        assert_status(&again, 0);
        let summary = json_of(&again);
        assert_eq!(summary["files_copied"], 0, "{summary}");
        assert_eq!(summary["files_skipped"], 9, "{summary}");
        assert_eq!(summary["bytes_copied"], 0, "{summary}");
        assert_eq!(summary["dirs_created"], 0, "{summary}");
        assert_unchanged(&before, &env.path("dst"), "by a rerun over an unchanged tree");
        assert_same_tree(&env.path("src"), &env.path("dst"));
        let stderr = testenv::normalized_stderr(&again);
        assert_eq!(stderr, "pcopy: 0 files, 0 B in [time]; 9 skipped, 0 failed\n");
    }

    fn a_changed_file_is_copied_again_and_nothing_else(env: TestEnv) {
        env.sample_tree("src");
        assert_status(&env.run(["src/", "dst"]), 0);
        env.write("src/a/sibling.txt", "changed, and longer\n");
        env.chmod("src/top.txt", 0o600);
        let untouched = fs::metadata(env.path("dst/a/b/c/deep.txt")).unwrap().ino();
        let output = env.run(["-v", "--json", "src/", "dst"]);
        assert_status(&output, 0);
        let summary = json_of(&output);
        assert_eq!(summary["files_copied"], 1, "{summary}");
        assert_eq!(summary["files_skipped"], 8, "{summary}");
        assert_eq!(String::from_utf8_lossy(&output.stderr).lines().next(), Some("a/sibling.txt"));
        assert_same_tree(&env.path("src"), &env.path("dst"));
        assert_eq!(fs::metadata(env.path("dst/a/b/c/deep.txt")).unwrap().ino(), untouched);
    }

    fn checksum_catches_a_same_size_same_mtime_change(env: TestEnv) {
        env.write("src/data.txt", "version one\n");
        set_mtime(&env.path("src/data.txt"), 1_600_000_000, 7);
        assert_status(&env.run(["src/", "dst"]), 0);
        env.write("dst/data.txt", "version two\n");
        set_mtime(&env.path("dst/data.txt"), 1_600_000_000, 7);
        let quick = env.run(["--json", "src/", "dst"]);
        assert_eq!(json_of(&quick)["files_skipped"], 1);
        assert_eq!(fs::read(env.path("dst/data.txt")).unwrap(), b"version two\n");
        let summed = env.run(["--json", "-c", "src/", "dst"]);
        assert_status(&summed, 0);
        assert_eq!(json_of(&summed)["files_copied"], 1);
        assert_same_tree(&env.path("src"), &env.path("dst"));
        let before = snapshot(&env.path("dst"));
        let again = env.run(["--json", "--checksum", "src/", "dst"]);
        assert_eq!(json_of(&again)["files_skipped"], 1);
        assert_unchanged(&before, &env.path("dst"), "by a --checksum rerun");
    }

    fn checksum_keeps_equal_contents_and_fixes_their_mtime(env: TestEnv) {
        env.write("src/same.txt", "same bytes\n");
        env.write("dst/same.txt", "same bytes\n");
        set_mtime(&env.path("src/same.txt"), 1_500_000_000, 0);
        let inode = fs::metadata(env.path("dst/same.txt")).unwrap().ino();
        let output = env.run(["--json", "-c", "src/", "dst"]);
        assert_eq!(json_of(&output)["files_skipped"], 1);
        let copy = fs::metadata(env.path("dst/same.txt")).unwrap();
        assert_eq!((copy.ino(), copy.mtime()), (inode, 1_500_000_000));
    }

    fn ignore_times_copies_everything(env: TestEnv) {
        env.sample_tree("src");
        assert_status(&env.run(["src/", "dst"]), 0);
        let output = env.run(["--json", "-I", "src/", "dst"]);
        assert_eq!(json_of(&output)["files_copied"], 9);
        assert_same_tree(&env.path("src"), &env.path("dst"));
    }

    fn update_skips_files_that_are_newer_in_the_destination(env: TestEnv) {
        env.write("src/old.txt", "from the source\n");
        env.write("src/new.txt", "from the source\n");
        set_mtime(&env.path("src/old.txt"), 1_000_000_000, 0);
        set_mtime(&env.path("src/new.txt"), 1_000_000_000, 0);
        env.write("dst/old.txt", "edited in dst\n");
        env.write("dst/new.txt", "older in dst\n");
        set_mtime(&env.path("dst/new.txt"), 900_000_000, 0);
        let output = env.run(["--json", "-u", "src/", "dst"]);
        assert_status(&output, 0);
        let summary = json_of(&output);
        assert_eq!((summary["files_copied"].as_u64(), summary["files_skipped"].as_u64()), (Some(1), Some(1)));
        assert_eq!(fs::read(env.path("dst/old.txt")).unwrap(), b"edited in dst\n");
        assert_eq!(fs::read(env.path("dst/new.txt")).unwrap(), b"from the source\n");
    }

    fn ignore_existing_never_touches_existing_files(env: TestEnv) {
        env.write("src/kept.txt", "new contents\n");
        env.write("src/added.txt", "added\n");
        env.write("dst/kept.txt", "old\n");
        let before = snapshot(&env.path("dst/kept.txt"));
        let output = env.run(["--json", "--ignore-existing", "src/", "dst"]);
        assert_status(&output, 0);
        assert_eq!(json_of(&output)["files_copied"], 1);
        assert_unchanged(&before, &env.path("dst/kept.txt"), "under --ignore-existing");
        assert_eq!(fs::read(env.path("dst/added.txt")).unwrap(), b"added\n");
    }

    fn json_reports_failures_with_lossless_paths(env: TestEnv) {
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::OsStr::from_bytes(b"bad\xffname");
        env.write(std::path::Path::new("src").join(name), "a file where a directory is");
        env.write("src/fine.txt", "fine");
        env.write(std::path::Path::new("dst").join(name).join("inner.txt"), "x");
        let output = env.run(["--json", "src/", "dst"]);
        assert_status(&output, 23);
        let summary = json_of(&output);
        assert_eq!(summary["exit_code"], 23);
        assert_eq!(summary["files_failed"], 1);
        assert_eq!(summary["files_copied"], 1);
        let error = &summary["errors"][0];
        // base64 of "src/bad\xffname"
        assert_eq!(error["path"]["bytes_b64"], "c3JjL2JhZP9uYW1l", "{summary}");
        assert_eq!(
            error["error"],
            "destination is a non-empty directory; not replacing it (--force or --delete would)"
        );
        assert!(summary["elapsed_seconds"].as_f64().unwrap() >= 0.0);
    }

    fn json_reports_a_bad_source_too(env: TestEnv) {
        let output = env.run(["--json", "missing/", "dst"]);
        assert_status(&output, 3);
        let summary = json_of(&output);
        assert_eq!(summary["exit_code"], 3);
        assert_eq!(summary["errors"][0]["path"], serde_json::Value::Null);
        let error = summary["errors"][0]["error"].as_str().unwrap();
        assert!(error.starts_with("missing/: cannot read source"), "{error}");
    }
}

both_kinds! {
    fn a_rerun_over_many_directories_judges_every_name_by_its_own_source(env: TestEnv) {
        // Enough directories that the readers stat most of them ahead of
        // the walk, and their stats, not the workers', decide.
        for dir in 0..48 {
            for file in 0..3 {
                env.write(format!("src/d{dir:02}/f{file}"), format!("{dir:02}-{file}"));
            }
        }
        assert_status(&env.run(["src/", "dst"]), 0);
        let mut changed = Vec::new();
        for dir in (0..48).step_by(5) {
            // The same size, new bytes and another mtime: copied again.
            env.write(format!("src/d{dir:02}/f1"), format!("{:02}-X", dir));
            set_mtime(&env.path(format!("src/d{dir:02}/f1")), 1_000_000_000 + dir, 0);
            changed.push(format!("d{dir:02}/f1"));
            // Only the mtime: the quick check copies it again too.
            set_mtime(&env.path(format!("src/d{dir:02}/f2")), 1_000_000_000 + dir, 7);
            changed.push(format!("d{dir:02}/f2"));
        }
        let output = env.run(["-v", "--json", "src/", "dst"]);
        assert_status(&output, 0);
        let summary = json_of(&output);
        assert_eq!(summary["files_copied"], changed.len(), "{summary}");
        assert_eq!(summary["bytes_copied"], 4 * changed.len(), "{summary}");
        assert_eq!(summary["files_skipped"], 144 - changed.len(), "{summary}");
        let mut listed: Vec<String> = String::from_utf8_lossy(&output.stderr)
            .lines()
            .filter(|line| !line.starts_with('{') && !line.starts_with("pcopy:"))
            .map(str::to_owned)
            .collect();
        listed.sort();
        assert_eq!(listed, changed);
        assert_same_tree(&env.path("src"), &env.path("dst"));
    }

    fn listing_of_a_rerun_equals_the_first_run(env: TestEnv) {
        env.sample_tree("src");
        assert_status(&env.run(["src/", "dst"]), 0);
        let first = listing(&env.path("dst"));
        assert_status(&env.run(["src/", "dst"]), 0);
        testenv::assert_listings_equal(&first, &listing(&env.path("dst")));
    }

    fn json_reports_a_bad_filter_too(env: TestEnv) {
        env.write("src/f", "f");
        let output = env.run(["--json", "--exclude-from", "missing-rules", "src/", "dst"]);
        assert_status(&output, 1);
        let summary = json_of(&output);
        assert_eq!(summary["exit_code"], 1);
        let error = summary["errors"][0]["error"].as_str().unwrap();
        assert!(error.starts_with("missing-rules: cannot read"), "{error}");
    }
}
