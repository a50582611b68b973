//! Exit statuses and messages for bad input, failed entries and interrupts.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;

use crate::testenv::{
    self, Guarded, NOBODY, TestEnv, assert_status, normalized_stderr, send_signal,
    unprivileged_runner,
};

/// Stderr of a run, which must be exactly one line.
fn only_line(output: &std::process::Output) -> String {
    let stderr = String::from_utf8(output.stderr.clone()).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{}", testenv::describe(output));
    stderr.trim_end().to_string()
}

both_kinds! {
    fn a_missing_source_is_status_3(env: TestEnv) {
        let output = env.run(["nope", "dst"]);
        assert_status(&output, 3);
        assert_eq!(only_line(&output), "pcopy: nope: cannot read source: No such file or directory");
        assert!(!env.path("dst").exists());
    }

    fn a_source_equal_to_the_destination_is_status_3(env: TestEnv) {
        env.write("src/f", "f");
        let output = env.run(["src/", "src"]);
        assert_status(&output, 3);
        assert_eq!(only_line(&output), "pcopy: src/: source and destination are the same directory");
        let output = env.run(["src/f", "src/f"]);
        assert_status(&output, 3);
        assert_eq!(only_line(&output), "pcopy: src/f: source and destination are the same file");
    }

    fn a_destination_inside_the_source_is_status_3(env: TestEnv) {
        env.write("src/sub/f", "f");
        let output = env.run(["src/", "src/sub/copy"]);
        assert_status(&output, 3);
        assert_eq!(only_line(&output), "pcopy: src/sub/copy: destination is inside the source src/");
        let output = env.run(["src", "src/sub"]);
        assert_status(&output, 3);
        assert!(!env.path("src/sub/copy").exists() && !env.path("src/sub/src").exists());
    }

    fn a_destination_inside_the_source_through_a_symlink_is_status_3(env: TestEnv) {
        env.write("src/sub/f", "f");
        env.symlink("src/sub", "alias");
        let output = env.run(["src/", "alias/copy"]);
        assert_status(&output, 3);
        assert_eq!(only_line(&output), "pcopy: alias/copy: destination is inside the source src/");
        assert!(!env.path("src/sub/copy").exists());
    }

    fn a_directory_over_an_existing_file_is_status_3(env: TestEnv) {
        env.write("src/f", "f");
        env.write("file", "i am a file");
        let output = env.run(["src/", "file"]);
        assert_status(&output, 3);
        assert_eq!(only_line(&output), "pcopy: file: cannot copy a directory over an existing file");
        env.write("dst/src", "also a file");
        let output = env.run(["src", "dst"]);
        assert_status(&output, 3);
        assert_eq!(
            only_line(&output),
            "pcopy: dst/src: cannot copy directory src over an existing non-directory"
        );
        assert_eq!(fs::read(env.path("file")).unwrap(), b"i am a file");
    }

    fn usage_errors_are_status_1(env: TestEnv) {
        env.write("src/f", "f");
        for args in [vec!["src/"], vec!["-j", "0", "src/", "dst"], vec!["--bogus", "src/", "dst"]] {
            let output = env.run(&args);
            assert_status(&output, 1);
            let stderr = String::from_utf8(output.stderr).unwrap();
            assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        }
        let output = env.pcopy().args(["--workers", "fibers", "src/", "dst"]).output().unwrap();
        assert_status(&output, 1);
        assert!(!env.path("dst").exists());
    }

    fn an_uncreatable_destination_is_status_11(env: TestEnv) {
        env.write("src/f", "f");
        let output = env.run(["src/", "missing-parent/dst"]);
        assert_status(&output, 11);
        assert_eq!(
            only_line(&output),
            "pcopy: missing-parent/dst: cannot create destination directory: No such file or directory"
        );
    }

    fn a_file_over_a_full_directory_deeper_down_fails_that_entry_only(env: TestEnv) {
        env.write("src/clash/inner.txt", "inner");
        env.write("src/full", "a file where a directory is");
        env.write("src/fine/ok.txt", "ok");
        env.write("dst/clash", "a file where the directory goes");
        env.write("dst/full/kept.txt", "kept");
        let output = env.run(["src/", "dst"]);
        assert_status(&output, 23);
        let stderr = normalized_stderr(&output);
        assert_eq!(
            stderr,
            "pcopy: src/full: destination is a non-empty directory; not replacing it (--force or --delete would)\n\
             pcopy: 2 files, 7 B in [time]; 0 skipped, 1 failed\n"
        );
        // The file where a directory goes was replaced by it.
        assert_eq!(fs::read(env.path("dst/clash/inner.txt")).unwrap(), b"inner");
        assert_eq!(fs::read(env.path("dst/fine/ok.txt")).unwrap(), b"ok");
        assert_eq!(fs::read(env.path("dst/full/kept.txt")).unwrap(), b"kept");
    }

    fn an_unreadable_file_fails_alone_with_status_23(env: TestEnv) {
        let Some(setpriv) = unprivileged_runner() else {
            return;
        };
        env.sample_tree("src");
        env.write("src/secret.txt", "secret");
        env.chmod("src/secret.txt", 0o000);
        env.mkdir("dst");
        std::os::unix::fs::chown(env.path("dst"), Some(NOBODY), Some(NOBODY)).unwrap();
        let output = env.run_as_nobody(setpriv, ["src/", "dst"]);
        assert_status(&output, 23);
        let stderr = normalized_stderr(&output);
        assert_eq!(
            stderr,
            "pcopy: src/secret.txt: cannot open source: Permission denied\n\
             pcopy: 9 files, 9.00 MiB in [time]; 0 skipped, 1 failed\n"
        );
        let expected: Vec<String> = testenv::listing(&env.path("src"))
            .into_iter()
            .filter(|line| !line.starts_with("secret.txt\t"))
            .collect();
        testenv::assert_listings_equal(&expected, &testenv::listing(&env.path("dst")));
    }

    fn ctrl_c_stops_the_run_with_status_20_and_no_temp_files(env: TestEnv) {
        env.many_long_names("src");
        let mut child = Guarded::spawn(
            env.pcopy()
                .args(["-v", "-j", "2", "src/", "dst"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        );
        let mut stdout = BufReader::new(child.child().stdout.take().unwrap());
        // `-v` lists the created directories too; wait for a file.
        let mut first = String::new();
        while !first.ends_with(".txt\n") {
            first.clear();
            assert!(stdout.read_line(&mut first).unwrap() > 0, "no file listed");
            assert!(first.ends_with(".txt\n") || first.ends_with("/\n"), "line: {first:?}");
        }
        send_signal(child.id(), libc::SIGINT);
        let mut rest = Vec::new();
        stdout.read_to_end(&mut rest).unwrap();
        let output = child.wait();
        assert_status(&output, 20);
        let stderr = normalized_stderr(&output);
        assert!(stderr.starts_with("pcopy: interrupted: "), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert_eq!(testenv::temp_files(&env.path("dst")), Vec::<std::path::PathBuf>::new());
    }

    fn help_lists_examples_and_exit_statuses_and_version_works(env: TestEnv) {
        let help = env.run(["--help"]);
        assert_status(&help, 0);
        let text = String::from_utf8(help.stdout).unwrap();
        assert!(text.contains("Examples:") && text.contains("Exit status:"), "{text}");
        assert!(text.contains("  23  some entries failed"), "{text}");
        let version = env.run(["--version"]);
        assert_status(&version, 0);
        assert_eq!(String::from_utf8(version.stdout).unwrap(), format!("pcopy {}\n", env!("CARGO_PKG_VERSION")));
    }
}
