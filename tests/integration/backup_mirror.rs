//! Mirroring: `--delete` with its limits, `--dry-run`, and the filters.

use std::fs;

use crate::testenv::{
    self, TestEnv, assert_same_tree, assert_status, assert_unchanged, json_of, listing, snapshot,
    sorted_stdout_lines,
};

/// A destination that holds a copy of `src` plus extraneous entries.
fn mirror_with_extras(env: &TestEnv) {
    env.sample_tree("src");
    assert_status(&env.run(["src/", "dst"]), 0);
    env.write("dst/extra.txt", "not in the source");
    env.write("dst/a/old/deeper/file", "gone from the source");
    env.write("outside/precious", "must survive");
    env.symlink("../outside", "dst/a/escape");
}

both_kinds! {
    fn delete_removes_what_the_source_lacks_and_never_follows_links(env: TestEnv) {
        mirror_with_extras(&env);
        let output = env.run(["--delete", "-v", "--json", "src/", "dst"]);
        assert_status(&output, 0);
        assert_eq!(json_of(&output)["deleted"], 5);
        assert_same_tree(&env.path("src"), &env.path("dst"));
        assert_eq!(fs::read(env.path("outside/precious")).unwrap(), b"must survive");
        let stderr = String::from_utf8(output.stderr).unwrap();
        for line in ["deleting extra.txt", "deleting a/old/", "deleting a/escape"] {
            assert!(stderr.lines().any(|l| l == line), "{line:?} missing:\n{stderr}");
        }
    }

    fn max_delete_stops_deleting_and_exits_25(env: TestEnv) {
        mirror_with_extras(&env);
        let output = env.run(["--delete", "--max-delete", "2", "--json", "src/", "dst"]);
        assert_status(&output, 25);
        let summary = json_of(&output);
        assert_eq!((summary["deleted"].as_u64(), summary["exit_code"].as_u64()), (Some(2), Some(25)));
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(stderr.contains("--max-delete 2 reached"), "{stderr}");
        let left = listing(&env.path("dst")).len() - listing(&env.path("src")).len();
        assert_eq!(left, 5 - 2);
        let output = env.run(["--delete", "--max-delete", "10", "src/", "dst"]);
        assert_status(&output, 0);
        assert_same_tree(&env.path("src"), &env.path("dst"));
    }

    fn excluded_entries_are_kept_unless_delete_excluded(env: TestEnv) {
        env.write("src/keep.txt", "k");
        env.write("src/cache/blob", "source cache");
        env.write("dst/cache/blob", "old cache");
        env.write("dst/cache/stale", "stale cache");
        env.write("dst/notes.log", "local log");
        let filters = ["--exclude", "cache/", "--exclude", "*.log"];
        let output = env.pcopy().args(["--delete"]).args(filters).args(["src/", "dst"]).output().unwrap();
        assert_status(&output, 0);
        assert_eq!(fs::read(env.path("dst/cache/blob")).unwrap(), b"old cache");
        assert!(env.path("dst/cache/stale").exists() && env.path("dst/notes.log").exists());
        let output = env.pcopy().args(["--delete", "--delete-excluded"]).args(filters)
            .args(["src/", "dst"]).output().unwrap();
        assert_status(&output, 0);
        assert!(!env.path("dst/cache").exists() && !env.path("dst/notes.log").exists());
        assert_eq!(fs::read(env.path("dst/keep.txt")).unwrap(), b"k");
    }

    fn a_failed_entry_turns_deletion_off(env: TestEnv) {
        // Under -L a dangling link cannot be copied: that entry fails.
        env.write("src/kept", "x");
        env.symlink("does/not/exist", "src/dangling");
        env.write("dst/extra", "would be deleted");
        let output = env.run(["-L", "--delete", "src/", "dst"]);
        assert_status(&output, 23);
        assert!(env.path("dst/extra").exists());
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(stderr.contains("nothing deleted (--delete)"), "{stderr}");
    }

    fn a_dry_run_changes_nothing_and_lists_what_a_run_would(env: TestEnv) {
        mirror_with_extras(&env);
        env.write("src/top.txt", "changed to something longer\n");
        env.write("src/new/dir/file.txt", "new\n");
        let before = snapshot(&env.path("dst"));
        let src_before = snapshot(&env.path("src"));
        let output = env.run(["-n", "-v", "--delete", "--json", "src/", "dst"]);
        assert_status(&output, 0);
        assert_unchanged(&before, &env.path("dst"), "by a dry run");
        assert_unchanged(&src_before, &env.path("src"), "by a dry run");
        let summary = json_of(&output);
        assert_eq!(summary["dry_run"], true);
        assert_eq!((summary["files_copied"].as_u64(), summary["deleted"].as_u64()), (Some(2), Some(5)));
        // The lines of a real -v run (rsync's): copied and created
        // entries and deletions; a skipped file is not listed.
        let stderr = String::from_utf8(output.stderr).unwrap();
        let mut lines: Vec<&str> = stderr.lines().filter(|l| !l.starts_with("pcopy: ")).collect();
        lines.sort();
        assert_eq!(lines, [
            "deleting a/escape", "deleting a/old/", "deleting a/old/deeper/",
            "deleting a/old/deeper/file", "deleting extra.txt", "new/", "new/dir/",
            "new/dir/file.txt", "top.txt",
        ]);
        let real = env.run(["-v", "--delete", "src/", "dst"]);
        let mut real_lines = sorted_stdout_lines(&real);
        real_lines.retain(|l| !l.starts_with("pcopy: "));
        assert_eq!(real_lines, lines, "a dry run lists what the real run does");
    }

    fn a_dry_run_into_a_missing_destination_creates_nothing(env: TestEnv) {
        env.sample_tree("src");
        let output = env.run(["--dry-run", "-v", "src", "new-dst"]);
        assert_status(&output, 0);
        assert!(!env.path("new-dst").exists());
        let lines = sorted_stdout_lines(&output);
        assert!(lines.contains(&"src/a/b/c/deep.txt".to_string()), "{lines:?}");
        assert!(lines.contains(&"src/a/b/".to_string()), "{lines:?}");
        assert!(lines.contains(&"src/link -> a/sibling.txt".to_string()), "{lines:?}");
        let stderr = testenv::normalized_stderr(&output);
        assert!(stderr.ends_with("pcopy: 9 files, 9.00 MiB in [time]; 0 skipped, 0 failed\n"), "{stderr}");
    }

    fn filters_leave_out_files_and_whole_directories(env: TestEnv) {
        env.write("src/keep.c", "c");
        env.write("src/skip.o", "o");
        env.write("src/sub/deep.o", "o");
        env.write("src/sub/keep.h", "h");
        env.write("src/build/out.c", "never entered");
        env.write("src/important.o", "kept by an include");
        env.write("rules", "# build products\n*.o\n");
        let output = env.run([
            "-v", "--include", "important.o", "--exclude-from", "rules", "--exclude", "/build",
            "src/", "dst",
        ]);
        assert_status(&output, 0);
        assert_eq!(
            sorted_stdout_lines(&output),
            ["./", "important.o", "keep.c", "sub/", "sub/keep.h"]
        );
        assert!(!env.path("dst/build").exists());
    }

    fn include_before_a_catch_all_exclude_copies_only_matches(env: TestEnv) {
        env.write("src/a/x.txt", "x");
        env.write("src/a/y.bin", "y");
        env.write("src/z.txt", "z");
        let output = env.run(["-v", "--include", "*/", "--include", "*.txt", "--exclude", "*", "src/", "dst"]);
        assert_status(&output, 0);
        assert_eq!(sorted_stdout_lines(&output), ["./", "a/", "a/x.txt", "z.txt"]);
    }

    fn a_bad_filter_is_a_usage_error(env: TestEnv) {
        env.write("src/f", "f");
        let output = env.run(["--exclude-from", "no-such-file", "src/", "dst"]);
        assert_status(&output, 1);
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(stderr.starts_with("pcopy: no-such-file: cannot read"), "{stderr}");
        assert!(!env.path("dst").exists());
    }
}
