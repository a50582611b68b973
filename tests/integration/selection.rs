//! Selection by rsync's transfer rules: `--max-size`/`--min-size`,
//! `--existing`, `-x`, and `--mkpath` for the destination.

use crate::testenv::{
    Detail, Mounted, TestEnv, assert_listings_equal, assert_same_tree, assert_status,
    hook_available, listing_with, run_gated_progress, skipped, sorted_stdout_lines,
};

/// Names, types and contents below `root` (modes and times aside).
fn contents(env: &TestEnv, root: &str) -> Vec<String> {
    listing_with(&env.path(root), Detail::Contents)
}

both_kinds! {
    fn size_limits_leave_out_files_outside_them(env: TestEnv) {
        for dir in ["src", "src/sub", "expected", "expected/sub"] {
            env.mkdir(dir);
        }
        for dir in ["src", "src/sub"] {
            env.write(format!("{dir}/tiny"), "t");
            env.write(format!("{dir}/mid"), vec![b'm'; 1000]);
            env.write(format!("{dir}/edge"), vec![b'e'; 2048]);
            env.write(format!("{dir}/big"), vec![b'b'; 2049]);
        }
        for dir in ["expected", "expected/sub"] {
            env.write(format!("{dir}/mid"), vec![b'm'; 1000]);
            env.write(format!("{dir}/edge"), vec![b'e'; 2048]);
        }
        let output = env.run(["-v", "--min-size", "10", "--max-size", "2K", "src/", "dst"]);
        assert_status(&output, 0);
        assert_listings_equal(&contents(&env, "expected"), &contents(&env, "dst"));
        assert_eq!(sorted_stdout_lines(&output), ["./", "edge", "mid", "sub/", "sub/edge", "sub/mid"]);
        // rsync's offsets and 1000-based units: 2kb-1 leaves out `edge`.
        let output = env.run(["-v", "--max-size", "2kb-1", "src/", "dst2"]);
        assert_status(&output, 0);
        assert_eq!(sorted_stdout_lines(&output), ["./", "mid", "sub/", "sub/mid", "sub/tiny", "tiny"]);
    }

    fn a_bad_size_is_a_usage_error(env: TestEnv) {
        env.write("src/f", "f");
        for bad in ["1x", "", "1.2.3k", "-3"] {
            let output = env.run([&format!("--max-size={bad}"), "src/", "dst"]);
            assert_status(&output, 1);
            let stderr = String::from_utf8(output.stderr).unwrap();
            assert!(stderr.contains("is not a size"), "{bad:?}: {stderr}");
            assert!(!env.path("dst").exists());
        }
    }

    fn existing_updates_only_what_is_there(env: TestEnv) {
        env.write("src/a.txt", "new a\n");
        env.write("src/new.txt", "new\n");
        env.write("src/sub/b.txt", "new b\n");
        env.write("src/sub/new.txt", "new\n");
        env.write("src/other/c.txt", "c\n");
        env.write("dst/a.txt", "old\n");
        env.write("dst/sub/b.txt", "old\n");
        let output = env.run(["-v", "--existing", "src/", "dst"]);
        assert_status(&output, 0);
        assert_eq!(sorted_stdout_lines(&output), ["a.txt", "sub/b.txt"]);
        env.write("expected/a.txt", "new a\n");
        env.write("expected/sub/b.txt", "new b\n");
        assert_listings_equal(&contents(&env, "expected"), &contents(&env, "dst"));
        // The rsync spelling, into a new destination: only DST itself.
        let output = env.run(["--ignore-non-existing", "src/", "fresh"]);
        assert_status(&output, 0);
        assert_eq!(contents(&env, "fresh"), [".\tdir"]);
    }

    fn mkpath_creates_the_missing_parents_of_dst(env: TestEnv) {
        env.sample_tree("src");
        env.write("one.txt", "one\n");
        let plain = env.run(["src/", "a/b/c"]);
        assert_status(&plain, 11);
        assert!(!env.path("a").exists(), "nothing made without --mkpath");
        let file = env.run(["one.txt", "x/y/z.txt"]);
        assert_status(&file, 11);
        assert!(!env.path("x").exists());
        assert_status(&env.run(["--mkpath", "src/", "a/b/c"]), 0);
        assert_same_tree(&env.path("src"), &env.path("a/b/c"));
        assert_status(&env.run(["--mkpath", "one.txt", "x/y/z.txt"]), 0);
        assert_eq!(std::fs::read(env.path("x/y/z.txt")).unwrap(), b"one\n");
        assert_status(&env.run(["--mkpath", "one.txt", "p/q/"]), 0);
        assert_eq!(std::fs::read(env.path("p/q/one.txt")).unwrap(), b"one\n");
    }

    fn a_size_beyond_64_bits_is_a_usage_error(env: TestEnv) {
        env.write("src/f", "f\n");
        for (flag, size) in [
            ("--max-size", "99999999999999999999T"),
            ("--min-size", "1.999999999999999999999999999999P"),
        ] {
            let output = env.run([flag, size, "src/", "dst"]);
            assert_status(&output, 1);
            let expected = format!(
                "error: invalid value '{size}' for '{flag} <SIZE>': \"{size}\" is too large: \
                 a size is at most 18446744073709551615 bytes\n\nFor more information, try '--help'.\n"
            );
            assert_eq!(String::from_utf8_lossy(&output.stderr), expected);
            assert!(!env.path("dst").exists());
        }
    }

    fn one_file_system_copies_mount_points_empty(env: TestEnv) {
        env.write("src/here.txt", "here\n");
        env.mkdir("src/mnt");
        let mounted = match Mounted::tmpfs(&env.path("src/mnt"), "size=1m") {
            Ok(mounted) => mounted,
            Err(why) => return skipped(why),
        };
        env.write("src/mnt/there.txt", "there\n");
        env.write("src/mnt/deeper/file", "deeper\n");
        env.write("expected/here.txt", "here\n");
        env.mkdir("expected/mnt");
        assert_status(&env.run(["-x", "src/", "once"]), 0);
        assert_listings_equal(&contents(&env, "expected"), &contents(&env, "once"));
        assert_status(&env.run(["-xx", "src/", "twice"]), 0);
        assert!(!env.path("twice/mnt").exists(), "-xx leaves mount points out");
        assert!(env.path("twice/here.txt").exists());
        assert_status(&env.run(["src/", "all"]), 0);
        assert_listings_equal(&contents(&env, "src"), &contents(&env, "all"));
        drop(mounted);
    }

    fn one_file_system_leaves_other_mounts_out_of_the_counted_totals(env: TestEnv) {
        if !hook_available() {
            return;
        }
        // The totals shown at the gate are the count-ahead's alone.
        env.write("first/gate.txt", "gate\n");
        for i in 0..1000 {
            env.write(format!("second/d{}/f{i:04}", i % 10), "x");
        }
        env.mkdir("second/mnt");
        let mounted = match Mounted::tmpfs(&env.path("second/mnt"), "size=1m") {
            Ok(mounted) => mounted,
            Err(why) => return skipped(why),
        };
        for i in 0..5 {
            env.write(format!("second/mnt/sub/g{i}"), vec![b'y'; 1000]);
        }
        for flag in ["-x", "-xx"] {
            let dst = format!("dst{flag}");
            let run = run_gated_progress(&env, &format!("gate{flag}"), &[flag, "first/", "second/", &dst]);
            // 1,001 files of 1,005 bytes: nothing of the tmpfs.
            let first = &run.first_final;
            assert!(first.starts_with("pcopy: 0/1001 files, 0 B/1005 B, "), "{flag}: {first}");
            assert_status(&run.output, 0);
            let last = run.rest.iter().any(|l| l.starts_with("pcopy: 1001/1001 files"));
            assert!(last, "{flag}: {:?}", run.rest);
            assert!(!env.path(format!("{dst}/mnt/sub")).exists(), "{flag}");
        }
        drop(mounted);
    }
}

/// A tree to pick from: two listed files below dated directories, and
/// entries no list names.
fn pickable_tree(env: &TestEnv) {
    env.write("src/a/b/f.txt", "f\n");
    env.write("src/a/skip.txt", "not listed\n");
    env.write("src/c/h", "h\n");
    env.write("src/top.txt", "not listed\n");
    env.chmod("src/a", 0o750);
    crate::testenv::set_mtime(&env.path("src/a/b"), 1_500_000_000, 5);
    crate::testenv::set_mtime(&env.path("src/a"), 1_500_000_100, 7);
}

/// The listing line of `rel` below `root` (name, type, mode, mtime).
fn line_of(env: &TestEnv, root: &str, rel: &str) -> String {
    let lines = crate::testenv::listing(&env.path(root));
    let prefix = format!("{rel}\t");
    lines
        .into_iter()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {rel} in {root}"))
}

both_kinds! {
    fn relative_keeps_each_source_path_and_its_directories_metadata(env: TestEnv) {
        pickable_tree(&env);
        let output = env.run(["-R", "-v", "src/a/b/f.txt", "src/c", "dst"]);
        assert_status(&output, 0);
        assert_eq!(sorted_stdout_lines(&output), [
            "src/", "src/a/", "src/a/b/", "src/a/b/f.txt", "src/c/", "src/c/h",
        ]);
        let file = |rel: &str| line_of(&env, "src", rel).split(" mode").next().unwrap().to_string();
        let expected = [".\tdir", "a\tdir", "a/b\tdir", &file("a/b/f.txt"), "c\tdir", &file("c/h")];
        assert_eq!(contents(&env, "dst/src"), expected);
        // The implied directories have their sources' modes and times.
        for rel in ["a", "a/b", "c", "a/b/f.txt"] {
            assert_eq!(line_of(&env, "dst/src", rel), line_of(&env, "src", rel));
        }
        // `/./` starts the kept part.
        assert_status(&env.run(["-R", "src/./a/b", "dot"]), 0);
        assert_eq!(line_of(&env, "dot", "a/b/f.txt"), line_of(&env, "src", "a/b/f.txt"));
        assert_eq!(line_of(&env, "dot", "a"), line_of(&env, "src", "a"));
        assert!(!env.path("dot/src").exists());
    }

    fn files_from_copies_the_listed_paths_and_refuses_bad_lines_alone(env: TestEnv) {
        pickable_tree(&env);
        env.write("list", "# the backup set\na/b/f.txt\n../outside\n\nc\n/a/b/f.txt\nmissing\n");
        let output = env.run(["--files-from", "list", "src", "dst"]);
        assert_status(&output, 23);
        let stderr = crate::testenv::normalized_stderr(&output);
        assert!(stderr.contains("pcopy: src/../outside: names a path outside the source directory (..)\n"), "{stderr}");
        assert!(stderr.contains("pcopy: src/missing: cannot read source: No such file or directory\n"), "{stderr}");
        assert_eq!(contents(&env, "dst").len(), 6, "{:?}", contents(&env, "dst"));
        for rel in ["a", "a/b", "a/b/f.txt", "c", "c/h"] {
            assert_eq!(line_of(&env, "dst", rel), line_of(&env, "src", rel));
        }
        assert!(!env.path("dst/top.txt").exists() && !env.path("dst/a/skip.txt").exists());
    }

    fn files_from_reads_nul_separated_names_from_stdin(env: TestEnv) {
        use std::io::Write;
        pickable_tree(&env);
        env.write("src/new\nline", "odd name\n");
        let mut child = env.pcopy()
            .args(["--files-from=-", "-0", "-v", "src/", "dst"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"new\nline\0c/h\0").unwrap();
        let output = child.wait_with_output().unwrap();
        assert_status(&output, 0);
        // As rsync: the created DST is no listed entry here.
        assert_eq!(sorted_stdout_lines(&output), ["c/", "c/h", "new\\nline"]);
        assert_eq!(std::fs::read(env.path("dst/new\nline")).unwrap(), b"odd name\n");
    }

    fn files_from_misuse_is_a_usage_error(env: TestEnv) {
        pickable_tree(&env);
        env.write("list", "c\n");
        for args in [
            &["--files-from", "list", "src", "src/a", "dst"][..],
            &["--files-from", "no-such-list", "src", "dst"],
            &["-0", "src", "dst"],
        ] {
            let output = env.run(args);
            assert_status(&output, 1);
            assert!(!env.path("dst").exists(), "{args:?} wrote");
        }
    }
}
