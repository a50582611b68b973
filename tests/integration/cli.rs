//! Copying trees: the trailing-slash rule, what is preserved, reruns, and
//! the entries that are not plain files.

use std::fs;
use std::os::unix::ffi::OsStrExt;

use crate::testenv::{
    self, TestEnv, assert_listings_equal, assert_same_tree, assert_status, listing,
    normalized_stderr,
};

both_kinds! {
    fn contents_of_a_slashed_source_are_copied_exactly(env: TestEnv) {
        env.sample_tree("src");
        let output = env.run(["src/", "dst"]);
        assert_status(&output, 0);
        assert!(output.stdout.is_empty());
        assert_eq!(
            normalized_stderr(&output),
            "pcopy: 9 files, 9.00 MiB in [time]; 0 skipped, 0 failed\n"
        );
        assert_same_tree(&env.path("src"), &env.path("dst"));
    }

    fn the_committed_fixture_tree_copies_exactly(env: TestEnv) {
        let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tree");
        let mut source = fixture.clone().into_os_string();
        source.push("/");
        let output = env.pcopy().arg(&source).arg("demo").output().unwrap();
        assert_status(&output, 0);
        assert_same_tree(&fixture, &env.path("demo"));
        assert_eq!(fs::read_link(env.path("demo/latest")).unwrap().as_os_str(), "docs/guide.md");
    }

    fn a_source_without_slash_lands_inside_the_destination(env: TestEnv) {
        env.sample_tree("src");
        env.mkdir("dst");
        assert_status(&env.run(["src", "dst"]), 0);
        assert_same_tree(&env.path("src"), &env.path("dst/src"));
        let names: Vec<_> = fs::read_dir(env.path("dst")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["src"]);
    }

    fn a_missing_destination_is_created_for_a_directory_source(env: TestEnv) {
        env.sample_tree("src");
        assert_status(&env.run(["src", "new"]), 0);
        assert_same_tree(&env.path("src"), &env.path("new/src"));
    }

    fn running_the_same_command_twice_gives_the_same_tree(env: TestEnv) {
        env.sample_tree("src");
        for args in [["src/", "contents"], ["src", "itself"]] {
            assert_status(&env.run(args), 0);
            let first = listing(&env.path(args[1]));
            assert_status(&env.run(args), 0);
            assert_listings_equal(&first, &listing(&env.path(args[1])));
        }
        assert_same_tree(&env.path("src"), &env.path("itself/src"));
    }

    fn a_rerun_replaces_changed_files(env: TestEnv) {
        env.sample_tree("src");
        assert_status(&env.run(["src/", "dst"]), 0);
        env.write("src/a/sibling.txt", "changed\n");
        env.write("dst/top.txt", "scribbled over\n");
        assert_status(&env.run(["src/", "dst"]), 0);
        assert_same_tree(&env.path("src"), &env.path("dst"));
    }

    fn a_file_goes_to_a_new_name_or_into_a_directory(env: TestEnv) {
        env.write("one.txt", "one\n");
        assert_status(&env.run(["one.txt", "renamed.txt"]), 0);
        assert_eq!(fs::read(env.path("renamed.txt")).unwrap(), b"one\n");
        env.mkdir("dir");
        assert_status(&env.run(["one.txt", "dir"]), 0);
        assert_eq!(fs::read(env.path("dir/one.txt")).unwrap(), b"one\n");
    }

    fn several_sources_go_into_a_created_directory(env: TestEnv) {
        env.write("one.txt", "one\n");
        env.sample_tree("tree");
        assert_status(&env.run(["one.txt", "tree", "out"]), 0);
        assert_eq!(fs::read(env.path("out/one.txt")).unwrap(), b"one\n");
        assert_same_tree(&env.path("tree"), &env.path("out/tree"));
    }

    fn symlinks_are_copied_as_links_or_followed_with_dereference(env: TestEnv) {
        env.write("src/target.txt", "target\n");
        env.symlink("target.txt", "src/link");
        env.mkdir("src/dir");
        env.symlink("dir", "src/dirlink");
        assert_status(&env.run(["src/", "plain"]), 0);
        assert_eq!(fs::read_link(env.path("plain/link")).unwrap().as_os_str(), "target.txt");
        assert_status(&env.run(["-L", "src/", "followed"]), 0);
        let followed = fs::symlink_metadata(env.path("followed/link")).unwrap();
        assert!(followed.is_file());
        assert_eq!(fs::read(env.path("followed/link")).unwrap(), b"target\n");
        assert!(fs::symlink_metadata(env.path("followed/dirlink")).unwrap().is_dir());
    }

    fn a_fifo_is_skipped_with_a_warning_and_does_not_hang(env: TestEnv) {
        env.write("src/file.txt", "data\n");
        env.mkfifo("src/pipe");
        let output = env.run(["src/", "dst"]);
        assert_status(&output, 0);
        let stderr = normalized_stderr(&output);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 2, "{stderr}");
        assert!(lines[0].starts_with("pcopy: src/pipe: skipping special file (fifo)"), "{stderr}");
        assert_eq!(lines[1], "pcopy: 1 file, 5 B in [time]; 1 skipped, 0 failed");
        assert!(!env.path("dst/pipe").exists());
        assert_eq!(fs::read(env.path("dst/file.txt")).unwrap(), b"data\n");
    }

    fn non_utf8_names_are_copied_exactly_and_shown_escaped(env: TestEnv) {
        let name = std::ffi::OsStr::from_bytes(b"a\xff.txt");
        env.write(std::path::Path::new("src").join(name), "bytes\n");
        let output = env.run(["-v", "src/", "dst"]);
        assert_status(&output, 0);
        // rsync's -v list: the created DST as `./`, then the file.
        assert_eq!(String::from_utf8(output.stdout.clone()).unwrap(), "./\na\\xff.txt\n");
        assert_eq!(fs::read(env.path("dst").join(name)).unwrap(), b"bytes\n");
        assert_same_tree(&env.path("src"), &env.path("dst"));
    }

    fn very_verbose_output_names_the_worker_process(env: TestEnv) {
        env.write("src/only.txt", "x");
        let output = env.run(["-vv", "src/", "dst"]);
        assert_status(&output, 0);
        let stdout = String::from_utf8(output.stdout).unwrap();
        let (created, copied) = stdout.split_once('\n').unwrap();
        assert_eq!(created, "./", "{stdout}");
        assert!(testenv::worker_pid(copied) > 0);
        assert!(copied.ends_with("] only.txt\n"), "{stdout}");
    }

    fn quiet_prints_nothing_on_success(env: TestEnv) {
        env.sample_tree("src");
        let output = env.run(["-q", "src/", "dst"]);
        assert_status(&output, 0);
        assert!(output.stdout.is_empty() && output.stderr.is_empty(), "{}", testenv::describe(&output));
    }

    fn progress_lines_go_to_stderr_when_forced(env: TestEnv) {
        env.sample_tree("src");
        let output = env.run(["--progress", "src/", "dst"]);
        assert_status(&output, 0);
        let stderr = normalized_stderr(&output);
        let lines: Vec<&str> = stderr.lines().collect();
        let (summary, progress) = lines.split_last().expect("some stderr");
        assert_eq!(*summary, "pcopy: 9 files, 9.00 MiB in [time]; 0 skipped, 0 failed");
        let last = progress.last().unwrap_or_else(|| panic!("no progress line: {stderr}"));
        assert!(last.starts_with("pcopy: 9/9 files, 9.00 MiB/9.00 MiB, "), "{stderr}");
        assert!(last.ends_with(", ETA 0s"), "{stderr}");
        assert!(progress.iter().all(|l| l.contains(" files, ")), "{stderr}");
    }

    fn without_a_terminal_there_is_no_progress_by_default(env: TestEnv) {
        env.write("src/f", "f");
        let output = env.run(["src/", "dst"]);
        assert_eq!(normalized_stderr(&output), "pcopy: 1 file, 1 B in [time]; 0 skipped, 0 failed\n");
    }

    fn stale_temp_files_of_a_killed_run_are_removed(env: TestEnv) {
        env.write("src/sub/file.txt", "new\n");
        env.write("dst/sub/.pcopy-tmp.99999.7", "half a file");
        env.write("dst/.pcopy-tmp.99999.8", "half a file");
        assert_status(&env.run(["src/", "dst"]), 0);
        assert_eq!(testenv::temp_files(&env.path("dst")), Vec::<std::path::PathBuf>::new());
        assert_same_tree(&env.path("src"), &env.path("dst"));
    }

    fn empty_and_read_only_directories_keep_their_mode_and_times(env: TestEnv) {
        env.mkdir("src/empty/nested-empty");
        env.write("src/locked/file", "f");
        env.chmod("src/locked", 0o500);
        env.chmod("src/empty", 0o711);
        assert_status(&env.run(["src/", "dst"]), 0);
        assert_same_tree(&env.path("src"), &env.path("dst"));
        assert_status(&env.run(["src/", "dst"]), 0);
        assert_same_tree(&env.path("src"), &env.path("dst"));
    }
}
