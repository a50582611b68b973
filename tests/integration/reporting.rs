//! Reporting that scripts parse: `-i` in rsync's format, `--out-format`,
//! `--stats`, `--log-file`, and the same lines from `-v` and `-n -v`.

use std::process::Command;

use crate::testenv::{TestEnv, assert_status, set_mtime, sorted_stdout_lines};

/// A source with a file, a nested file, a symlink and directories, all
/// with fixed mtimes (whole seconds, so rsync and pcopy judge them alike).
fn dated_tree(env: &TestEnv) {
    env.write("src/top.txt", "top\n");
    env.write("src/a/b/c.txt", "c\n");
    env.symlink("top.txt", "src/lnk");
    for (rel, secs) in [
        ("src/top.txt", 1_600_000_000),
        ("src/a/b/c.txt", 1_600_000_100),
    ] {
        set_mtime(&env.path(rel), secs, 0);
    }
    for (rel, secs) in [
        ("src/a/b", 1_600_000_200),
        ("src/a", 1_600_000_300),
        ("src", 1_600_000_400),
    ] {
        set_mtime(&env.path(rel), secs, 0);
    }
}

/// Changes to `dated_tree` after a first copy: a longer file, another
/// mtime and mode, a new link target, a new file, an extra entry in DST.
fn change_dated_tree(env: &TestEnv) {
    env.write("src/top.txt", "top, longer\n");
    set_mtime(&env.path("src/top.txt"), 1_600_000_000, 0);
    set_mtime(&env.path("src/a/b/c.txt"), 1_600_000_999, 0);
    env.chmod("dst/a/b/c.txt", 0o600);
    std::fs::remove_file(env.path("src/lnk")).unwrap();
    env.symlink("a", "src/lnk");
    set_mtime(&env.path("src/lnk"), 1_600_000_060, 0);
    env.write("src/a/new", "new\n");
    env.write("dst/extra", "extra\n");
    set_mtime(&env.path("src/a"), 1_600_000_300, 0);
    set_mtime(&env.path("src"), 1_600_000_400, 0);
}

const FIRST_RUN: [&str; 6] = [
    ">f+++++++++ a/b/c.txt",
    ">f+++++++++ top.txt",
    "cL+++++++++ lnk -> top.txt",
    "cd+++++++++ ./",
    "cd+++++++++ a/",
    "cd+++++++++ a/b/",
];

/// The root's mtime moved when `extra` was written into it.
const SECOND_RUN: [&str; 6] = [
    "*deleting   extra",
    ".d..t...... ./",
    ">f+++++++++ a/new",
    ">f..tp..... a/b/c.txt",
    ">f.s....... top.txt",
    "cLc.t...... lnk -> a",
];

both_kinds! {
    fn itemize_changes_writes_rsyncs_codes(env: TestEnv) {
        dated_tree(&env);
        let first = env.run(["-i", "src/", "dst"]);
        assert_status(&first, 0);
        assert_eq!(sorted_stdout_lines(&first), FIRST_RUN);
        let again = env.run(["-i", "src/", "dst"]);
        assert_eq!(sorted_stdout_lines(&again), Vec::<String>::new(), "nothing changed");
        change_dated_tree(&env);
        let dry = env.run(["-n", "-i", "--delete", "src/", "dst"]);
        assert_status(&dry, 0);
        assert_eq!(sorted_stdout_lines(&dry), SECOND_RUN, "a dry run lists the same");
        let second = env.run(["-i", "--delete", "src/", "dst"]);
        assert_status(&second, 0);
        assert_eq!(sorted_stdout_lines(&second), SECOND_RUN);
        let all = env.run(["-ii", "src/", "dst"]);
        assert_eq!(sorted_stdout_lines(&all), [
            ".L          lnk -> a", ".d          ./", ".d          a/", ".d          a/b/",
            ".f          a/b/c.txt", ".f          a/new", ".f          top.txt",
        ]);
    }

    fn verbose_and_dry_run_verbose_list_the_same_names(env: TestEnv) {
        dated_tree(&env);
        let dry = env.run(["-n", "-v", "src/", "dst"]);
        assert_status(&dry, 0);
        let real = env.run(["-v", "src/", "dst"]);
        assert_status(&real, 0);
        let expected = ["./", "a/", "a/b/", "a/b/c.txt", "lnk -> top.txt", "top.txt"];
        assert_eq!(sorted_stdout_lines(&dry), expected);
        assert_eq!(sorted_stdout_lines(&real), expected);
        change_dated_tree(&env);
        let dry = env.run(["-n", "-v", "--delete", "src/", "dst"]);
        let real = env.run(["-v", "--delete", "src/", "dst"]);
        let expected = ["a/b/c.txt", "a/new", "deleting extra", "lnk -> a", "top.txt"];
        assert_eq!(sorted_stdout_lines(&dry), expected);
        assert_eq!(sorted_stdout_lines(&real), expected);
    }

    fn out_format_renders_each_escape(env: TestEnv) {
        dated_tree(&env);
        env.write("dst/gone", "x");
        let output = env.run(["--delete", "--out-format=[%o|%n|%l|%b|%i|%f|%L] 100%%", "src/", "dst"]);
        assert_status(&output, 0);
        assert_eq!(sorted_stdout_lines(&output), [
            "[del.|gone|0|0|*deleting  |gone|] 100%",
            "[send|./|0|0|.d..t......||] 100%",
            "[send|a/b/c.txt|2|2|>f+++++++++|src/a/b/c.txt|] 100%",
            "[send|a/b/|0|0|cd+++++++++|a/b|] 100%",
            "[send|a/|0|0|cd+++++++++|a|] 100%",
            "[send|lnk|7|0|cL+++++++++|src/lnk| -> top.txt] 100%",
            "[send|top.txt|4|4|>f+++++++++|src/top.txt|] 100%",
        ]);
        // Without %i or %o a deletion is written as `deleting NAME`.
        env.write("dst/gone", "x");
        let names = env.run(["--delete", "--out-format=%n", "src/", "dst"]);
        assert_eq!(sorted_stdout_lines(&names), ["deleting gone"]);
    }

    fn stats_prints_rsyncs_counts(env: TestEnv) {
        dated_tree(&env);
        env.mkfifo("src/fifo");
        let output = env.run(["--stats", "src/", "dst"]);
        assert_status(&output, 0);
        assert_eq!(String::from_utf8(output.stdout).unwrap(), "\n\
            Number of files: 7 (reg: 2, dir: 3, link: 1, special: 1)\n\
            Number of created files: 6 (reg: 2, dir: 3, link: 1)\n\
            Number of deleted files: 0\n\
            Number of regular files transferred: 2\n\
            Total file size: 13 bytes\n\
            Total transferred file size: 6 bytes\n\
            Literal data: 6 bytes\n\
            Matched data: 0 bytes\n");
        env.write("dst/extra", "x");
        let again = env.run(["--stats", "--delete", "src/", "dst"]);
        let stdout = String::from_utf8(again.stdout).unwrap();
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines[1..7], [
            "Number of files: 7 (reg: 2, dir: 3, link: 1, special: 1)",
            "Number of created files: 0",
            "Number of deleted files: 1 (reg: 1)",
            "Number of regular files transferred: 0",
            "Total file size: 13 bytes",
            "Total transferred file size: 0 bytes",
        ]);
    }

    fn log_file_holds_stamped_itemized_lines(env: TestEnv) {
        dated_tree(&env);
        let output = env.run(["--log-file", "run.log", "src/", "dst"]);
        assert_status(&output, 0);
        assert!(output.stdout.is_empty(), "the log is not the -v list");
        let log = std::fs::read_to_string(env.path("run.log")).unwrap();
        let mut entries: Vec<&str> = log.lines().map(|line| {
            // `2026/01/31 12:00:00 [1234] ...`
            let (stamp, rest) = line.split_at(20);
            assert!(stamp.as_bytes()[4] == b'/' && stamp.as_bytes()[13] == b':', "{line}");
            let (pid, entry) = rest.split_once("] ").unwrap();
            assert!(pid.strip_prefix('[').unwrap().parse::<u32>().is_ok(), "{line}");
            entry
        }).collect();
        let summary = entries.pop().unwrap();
        assert!(summary.starts_with("pcopy: 3 files, "), "{summary}");
        entries.sort();
        assert_eq!(entries, FIRST_RUN);
    }

    fn an_unwritable_log_file_stops_the_run_before_it_copies(env: TestEnv) {
        dated_tree(&env);
        let output = env.run(["--log-file", "no/such/dir/run.log", "src/", "dst"]);
        assert_status(&output, 11);
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(stderr.starts_with("pcopy: cannot open log file no/such/dir/run.log: No such file or directory"), "{stderr}");
        assert!(!env.path("dst").exists(), "nothing copied");
    }

    fn itemized_lines_match_rsyncs_side_by_side(env: TestEnv) {
        if Command::new("rsync").arg("--version").output().is_err() {
            return crate::testenv::skipped("rsync is not installed");
        }
        dated_tree(&env);
        let rsync = |dst: &str| {
            let out = Command::new("rsync").args(["-rlpt", "-i", "--delete", "src/", dst])
                .current_dir(env.root()).output().unwrap();
            let mut lines: Vec<String> = String::from_utf8(out.stdout).unwrap().lines()
                .filter(|l| !l.starts_with("created directory")).map(String::from).collect();
            lines.sort();
            lines
        };
        assert_eq!(sorted_stdout_lines(&env.run(["-i", "--delete", "src/", "dst"])), rsync("theirs"));
        // Both destinations get the same changes.
        change_dated_tree(&env);
        env.chmod("theirs/a/b/c.txt", 0o600);
        env.write("theirs/extra", "extra\n");
        assert_eq!(sorted_stdout_lines(&env.run(["-i", "--delete", "src/", "dst"])), rsync("theirs"));
    }
}
