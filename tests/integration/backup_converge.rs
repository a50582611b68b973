//! A mirror converges: one run fixes entries that changed type, retargeted
//! links, names in several sources, hard-linked special files and coarse
//! destination times, and a second run copies nothing.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::testenv::{
    Detail, Fs, Mounted, TestEnv, assert_listings_equal, assert_same_tree, assert_status,
    assert_unchanged, json_of, listing_with, normalized_stderr, set_mtime, skipped, snapshot,
};

/// Reruns `args` with `--json` and asserts that nothing was copied and
/// nothing in `dst` changed.
fn rerun_copies_nothing<S: AsRef<OsStr>>(env: &TestEnv, args: &[S], dst: &Path) {
    let before = snapshot(dst);
    let mut again: Vec<&OsStr> = vec![OsStr::new("--json")];
    again.extend(args.iter().map(AsRef::as_ref));
    let output = env.run(again);
    assert_status(&output, 0);
    let summary = json_of(&output);
    assert_eq!(summary["files_copied"], 0, "{summary}");
    assert_eq!(summary["deleted"], 0, "{summary}");
    assert_unchanged(&before, dst, "by a rerun");
}

both_kinds! {
    fn entries_that_changed_type_are_replaced_in_one_run(env: TestEnv) {
        env.write("outside/precious.txt", "precious\n");
        env.write("outside/sub/deeper.txt", "deeper\n");
        let outside = env.path("outside");
        env.write("src/was-link/a.txt", "a\n");
        env.write("src/was-file/b.txt", "b\n");
        env.write("src/was-dir", "now a file\n");
        env.symlink("target", "src/link-was-dir");
        env.write("src/file-was-link", "file\n");
        env.write("src/keep.txt", "keep\n");
        env.mkdir("dst");
        env.symlink(&outside, "dst/was-link");
        env.write("dst/was-file", "old file\n");
        env.write("dst/was-dir/inner/old.txt", "old\n");
        env.write("dst/link-was-dir/old.txt", "old\n");
        env.symlink(outside.join("precious.txt"), "dst/file-was-link");
        env.write("dst/stale.txt", "stale\n");
        let before = snapshot(&outside);
        let output = env.run(["--delete", "src/", "dst"]);
        assert_status(&output, 0);
        assert_same_tree(&env.path("src"), &env.path("dst"));
        assert_unchanged(&before, &outside, "outside DST");
        rerun_copies_nothing(&env, &["--delete", "src/", "dst"], &env.path("dst"));
    }

    fn a_directory_in_the_way_of_a_file_goes_only_with_force_or_delete(env: TestEnv) {
        env.write("src/full", "file\n");
        env.write("src/empty", "file\n");
        env.write("dst/full/inner.txt", "inner\n");
        env.mkdir("dst/empty");
        let output = env.run(["src/", "dst"]);
        assert_status(&output, 23);
        assert_eq!(
            normalized_stderr(&output),
            "pcopy: src/full: destination is a non-empty directory; not replacing it (--force or --delete would)\n\
             pcopy: 1 file, 5 B in [time]; 0 skipped, 1 failed\n",
        );
        // An empty directory is replaced without --force, as rsync does.
        assert_eq!(fs::read(env.path("dst/empty")).unwrap(), b"file\n");
        assert_eq!(fs::read(env.path("dst/full/inner.txt")).unwrap(), b"inner\n");
        assert_status(&env.run(["--force", "src/", "dst"]), 0);
        assert_same_tree(&env.path("src"), &env.path("dst"));
        rerun_copies_nothing(&env, &["src/", "dst"], &env.path("dst"));
    }

    fn a_retargeted_symlink_of_the_same_length_and_time_is_replaced(env: TestEnv) {
        env.mkdir("src");
        env.symlink("target1", "src/link");
        set_mtime(&env.path("src/link"), 1_600_000_000, 5);
        set_mtime(&env.path("src"), 1_600_000_000, 0);
        assert_status(&env.run(["src/", "dst"]), 0);
        fs::remove_file(env.path("src/link")).unwrap();
        env.symlink("target2", "src/link");
        set_mtime(&env.path("src/link"), 1_600_000_000, 5);
        set_mtime(&env.path("src"), 1_600_000_000, 0);
        let output = env.run(["--json", "src/", "dst"]);
        assert_status(&output, 0);
        assert_eq!(json_of(&output)["files_copied"], 1);
        assert_same_tree(&env.path("src"), &env.path("dst"));
        rerun_copies_nothing(&env, &["src/", "dst"], &env.path("dst"));
    }

    fn the_first_source_that_has_a_name_wins(env: TestEnv) {
        env.write("s1/f", vec![b'1'; 50_000]);
        env.write("s2/f", "2222");
        env.write("s2/only2", "only in s2\n");
        env.write("s1/d/x", "x from s1\n");
        env.write("s2/d/x", "x from s2\n");
        env.write("s2/d/y", "y from s2\n");
        env.write("s1/t", "t is a file in s1\n");
        env.write("s2/t/inner", "t is a directory in s2\n");
        env.write("expected/f", vec![b'1'; 50_000]);
        env.write("expected/only2", "only in s2\n");
        env.write("expected/d/x", "x from s1\n");
        env.write("expected/d/y", "y from s2\n");
        env.write("expected/t", "t is a file in s1\n");
        let expected = listing_with(&env.path("expected"), Detail::Contents);
        for _ in 0..3 {
            assert_status(&env.run(["s1/", "s2/", "dst"]), 0);
            assert_listings_equal(&expected, &listing_with(&env.path("dst"), Detail::Contents));
        }
        // Each name has the winner's times too, so a rerun finds it current.
        let winner = fs::metadata(env.path("s1/f")).unwrap();
        let copy = fs::metadata(env.path("dst/f")).unwrap();
        assert_eq!((copy.mtime(), copy.mtime_nsec()), (winner.mtime(), winner.mtime_nsec()));
        rerun_copies_nothing(&env, &["s1/", "s2/", "dst"], &env.path("dst"));
        rerun_copies_nothing(&env, &["--delete", "s1/", "s2/", "dst"], &env.path("dst"));
    }

    fn a_source_given_twice_is_copied_once(env: TestEnv) {
        env.sample_tree("src");
        let output = env.run(["-v", "src/", "src/", "src/.", "dst"]);
        assert_status(&output, 0);
        let listed: Vec<&str> = std::str::from_utf8(&output.stdout).unwrap().lines().collect();
        let mut distinct = listed.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(listed.len(), distinct.len(), "listed twice: {listed:?}");
        // The same entries as a run naming the source once.
        let once = env.run(["-v", "src/", "once"]);
        assert_status(&once, 0);
        let mut expected: Vec<&str> = std::str::from_utf8(&once.stdout).unwrap().lines().collect();
        expected.sort();
        assert_eq!(distinct, expected);
        assert_same_tree(&env.path("src"), &env.path("dst"));
        rerun_copies_nothing(&env, &["src/", "src/", "dst"], &env.path("dst"));
    }

    fn archive_keeps_hard_links_among_fifos_symlinks_and_files(env: TestEnv) {
        env.mkdir("src");
        env.mkfifo("src/fifo");
        env.symlink("somewhere", "src/link");
        env.write("src/file", "file\n");
        env.mkdir("src/more");
        for name in ["fifo", "link", "file"] {
            fs::hard_link(env.path(format!("src/{name}")), env.path(format!("src/more/{name}2"))).unwrap();
        }
        assert_status(&env.run(["-a", "src/", "dst"]), 0);
        for name in ["fifo", "link", "file"] {
            let first = fs::symlink_metadata(env.path(format!("dst/{name}"))).unwrap();
            let second = fs::symlink_metadata(env.path(format!("dst/more/{name}2"))).unwrap();
            assert_eq!(first.ino(), second.ino(), "{name} came apart");
            assert_eq!(first.nlink(), 2, "{name}");
        }
        assert_same_tree(&env.path("src"), &env.path("dst"));
        rerun_copies_nothing(&env, &["-a", "src/", "dst"], &env.path("dst"));
    }

    fn ignore_errors_lets_delete_run_after_a_failure(env: TestEnv) {
        env.write("src/kept.txt", "kept\n");
        env.symlink("does/not/exist", "src/dangling");
        env.write("dst/stale.txt", "stale\n");
        let output = env.run(["-L", "--delete", "src/", "dst"]);
        assert_status(&output, 23);
        assert!(normalized_stderr(&output).contains("nothing deleted (--delete)"));
        assert!(env.path("dst/stale.txt").exists());
        let output = env.run(["-L", "--delete", "--ignore-errors", "--json", "src/", "dst"]);
        assert_status(&output, 23);
        assert_eq!(json_of(&output)["deleted"], 1);
        let left: Vec<_> = fs::read_dir(env.path("dst")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, ["kept.txt"]);
    }

    fn a_rerun_onto_exfat_copies_nothing(env: TestEnv) {
        env.mkdir("mnt");
        let mounted = match Mounted::new(Fs::Exfat, &env.path("mnt")) {
            Ok(mounted) => mounted,
            Err(why) => return skipped(why),
        };
        for i in 0..20 {
            let name = format!("src/d{}/f{i}.txt", i % 3);
            env.write(&name, format!("file {i}\n"));
            // Odd seconds and nanoseconds: nothing exFAT keeps exactly.
            set_mtime(&env.path(&name), 1_600_000_001 + 2 * i, 123_456_789);
        }
        let dst = mounted.dir().join("copy");
        let args = [OsStr::new("src/"), dst.as_os_str()];
        assert_status(&env.run(args), 0);
        let src_listing = listing_with(&env.path("src"), Detail::Contents);
        assert_listings_equal(&src_listing, &listing_with(&dst, Detail::Contents));
        let again = env.run([OsStr::new("--json")].into_iter().chain(args));
        assert_status(&again, 0);
        assert_eq!(json_of(&again)["files_copied"], 0, "{}", json_of(&again));
        // A negative window compares to the nanosecond: everything differs.
        let exact = env.run([OsStr::new("--json"), OsStr::new("--modify-window=-1")].into_iter().chain(args));
        assert_status(&exact, 0);
        assert_eq!(json_of(&exact)["files_copied"], 20);
        let sized = env.run([OsStr::new("--json"), OsStr::new("--size-only")].into_iter().chain(args));
        assert_eq!(json_of(&sized)["files_copied"], 0);
        eprintln!("{} workers: exfat rerun copied 0 of 20 files", env.kind);
    }
}
