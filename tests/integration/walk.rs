//! The walk reaches any depth and any descriptor limit that fits the
//! workers: a tree deeper than `PATH_MAX` is copied exactly, and a run
//! under a small `RLIMIT_NOFILE` ends with every file copied. The
//! count-ahead makes the progress totals final before the walk is over.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::process::Stdio;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use std::io::{BufRead, BufReader};

use crate::testenv::{
    Gate, Guarded, TestEnv, assert_listings_equal, assert_same_tree, assert_status, hook_available,
    limit_fds, run_gated_progress_with, run_with_fd_limit,
};

/// The length of every directory name in the deep tree: the most a name
/// may have on Linux file systems.
const NAME_MAX: usize = 255;

fn open_dir(parent: BorrowedFd<'_>, name: &[u8]) -> OwnedFd {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::openat(parent, name, flags, Mode::empty()).expect("openat dir")
}

fn write_at(dir: BorrowedFd<'_>, name: &str, contents: &[u8]) {
    let flags = OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC;
    let file = rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(0o640)).expect("create");
    rustix::io::write(&file, contents).expect("write");
}

/// Builds below `root` a chain of directories with 255-byte names until
/// the path is `depth` bytes long, through descriptors (no path of that
/// length can be handed to the kernel). Each level holds a file, a
/// symlink and an empty directory; the deepest has a mode of its own.
fn deep_tree(root: &std::path::Path, depth: usize) {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut dir = rustix::fs::open(root, flags, Mode::empty()).expect("open root");
    let mut length = 0;
    let mut level = 0;
    while length < depth {
        let mut name = format!("{level:03}-").into_bytes();
        name.resize(NAME_MAX, b'd');
        rustix::fs::mkdirat(&dir, &name[..], Mode::from_raw_mode(0o755)).expect("mkdirat");
        dir = open_dir(dir.as_fd(), &name);
        write_at(dir.as_fd(), "file", format!("level {level}\n").as_bytes());
        rustix::fs::symlinkat("file", &dir, "link").expect("symlinkat");
        rustix::fs::mkdirat(&dir, "empty", Mode::from_raw_mode(0o700)).expect("mkdirat");
        length += NAME_MAX + 1;
        level += 1;
    }
    rustix::fs::fchmod(&dir, Mode::from_raw_mode(0o750)).expect("fchmod");
}

/// One line per entry below `dir` (path, type, mode, mtime, contents or
/// link target), found through descriptors so any depth can be listed.
fn deep_listing(dir: BorrowedFd<'_>, rel: &[u8], lines: &mut Vec<String>) {
    let mut buffer = vec![std::mem::MaybeUninit::<u8>::uninit(); 1 << 16];
    let reopened = open_dir(dir, b".");
    let mut names = Vec::new();
    let mut entries = rustix::fs::RawDir::new(reopened.as_fd(), &mut buffer);
    while let Some(entry) = entries.next() {
        let name = entry.expect("getdents").file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(name);
        }
    }
    for name in names {
        let st = rustix::fs::statat(dir, &name[..], AtFlags::SYMLINK_NOFOLLOW).expect("lstat");
        let mut path = rel.to_vec();
        path.extend_from_slice(b"/");
        path.extend_from_slice(&name);
        let kind = FileType::from_raw_mode(st.st_mode);
        let what = match kind {
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(dir, &name[..], Vec::new()).expect("readlink");
                format!("-> {:?}", target)
            }
            FileType::RegularFile => {
                let file = rustix::fs::openat(dir, &name[..], OFlags::RDONLY, Mode::empty());
                let mut contents = vec![0; st.st_size as usize];
                rustix::io::read(file.expect("open"), &mut contents).expect("read");
                format!("{:?}", String::from_utf8_lossy(&contents))
            }
            _ => String::new(),
        };
        let mode = if kind == FileType::Symlink {
            0
        } else {
            st.st_mode & 0o7777
        };
        lines.push(format!(
            "{}\t{kind:?} {mode:o} {}.{:09} {what}",
            OsStr::from_bytes(&path).to_string_lossy(),
            st.st_mtime,
            st.st_mtime_nsec
        ));
        if kind == FileType::Directory {
            deep_listing(open_dir(dir, &name).as_fd(), &path, lines);
        }
    }
}

fn listing_of(root: &std::path::Path) -> Vec<String> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let dir = rustix::fs::open(root, flags, Mode::empty()).expect("open root");
    let mut lines = Vec::new();
    deep_listing(dir.as_fd(), b".", &mut lines);
    lines.sort();
    lines
}

/// Copies `first/` (one gated file) and `second/` (2,000 one-byte files
/// in ten directories at the end of `chain`) with `--progress` and one
/// worker, under `fd_limit` if given, and checks that the totals are
/// final while that worker is held at the first file and the walk, held
/// by the bounded jobs queue (four batches of 128 with -j 1), is far from
/// the last of the second source's files.
fn assert_totals_final_before_the_last_job(env: &TestEnv, chain: &str, fd_limit: Option<u64>) {
    env.write("first/gate.txt", "gate\n");
    for i in 0..2000 {
        env.write(format!("second/{chain}d{}/f{i:04}", i % 10), "x");
    }
    let args = ["first/", "second/", "dst"];
    let run = run_gated_progress_with(env, "gate", &args, |command| {
        if let Some(limit) = fd_limit {
            limit_fds(command, limit);
        }
    });
    // No rate yet, so no ETA; but no total is open any more.
    assert!(
        run.first_final
            .starts_with("pcopy: 0/2001 files, 0 B/1.96 KiB, "),
        "{}\n{:?}",
        run.first_final,
        run.scanning
    );
    assert!(!run.first_final.contains('+'), "{}", run.first_final);
    assert_status(&run.output, 0);
    assert!(
        run.rest
            .iter()
            .any(|l| l.starts_with("pcopy: 2001/2001 files")),
        "{:?}",
        run.rest
    );
    assert_eq!(std::fs::read(env.path("dst/gate.txt")).unwrap(), b"gate\n");
    let last = format!("dst/{chain}d7/f1997");
    assert_eq!(std::fs::read(env.path(last)).unwrap(), b"x");
}

/// A run with one worker held at the gate (`second/gate.txt`) after it
/// copied the 300 files of `first/`, while `third/` (2,000 files) waits in
/// the walk: pcopy with `args` and `--progress`, and the gate.
fn held_after_some_progress(env: &TestEnv, args: &[&str]) -> (Guarded, Gate) {
    for i in 0..300 {
        env.write(format!("first/f{i:03}"), "x");
    }
    env.write("second/gate.txt", "gate\n");
    for i in 0..2000 {
        env.write(format!("third/d{}/f{i:04}", i % 10), "x");
    }
    let mut gate = Gate::new(env.root(), "open", "gate.txt");
    let (key, value) = gate.env();
    let child = Guarded::spawn(
        env.pcopy()
            .args(["--progress", "-j", "1"])
            .args(args)
            .args(["first/", "second/", "third/", "dst"])
            .env(key, value)
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    gate.wait_reached();
    (child, gate)
}

/// Reads progress lines until `done` says one is the line looked for;
/// returns it and the lines before.
fn read_until(
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
    done: impl Fn(&str) -> bool,
) -> (String, Vec<String>) {
    let mut seen = Vec::new();
    loop {
        let line = lines.next().expect("a progress line").expect("read");
        if done(&line) {
            return (line, seen);
        }
        seen.push(line);
    }
}

/// The seconds of a plain line's `ETA 4.2s`, `ETA 42s` or a lower bound's
/// `ETA 4.2s+`; `None` for `?`.
fn eta_seconds(line: &str) -> Option<f64> {
    let eta = line.rsplit_once(", ETA ").expect("an ETA").1;
    eta.trim_end_matches('+').strip_suffix('s')?.parse().ok()
}

both_kinds! {
    fn a_tree_deeper_than_path_max_is_copied_exactly(env: TestEnv) {
        env.mkdir("src");
        deep_tree(&env.path("src"), 6000);
        let output = env.run(["-a", "src/", "dst"]);
        assert_status(&output, 0);
        let (expected, actual) = (listing_of(&env.path("src")), listing_of(&env.path("dst")));
        assert!(expected.len() > 4 * 23, "{} entries", expected.len());
        assert_listings_equal(&expected, &actual);
    }

    fn listings_show_link_targets_beyond_path_max(env: TestEnv) {
        env.mkdir("src");
        deep_tree(&env.path("src"), 6000);
        let output = env.run(["-a", "-i", "src/", "dst"]);
        assert_status(&output, 0);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let files = stdout.lines().filter(|line| line.ends_with("/file")).count();
        let links: Vec<&str> = stdout.lines().filter(|line| line.contains("/link")).collect();
        // One file and one link a level.
        assert!(files > 20 && links.len() == files, "{files} files: {stdout}");
        for line in links {
            assert!(line.starts_with("cL+++++++++ ") && line.ends_with("/link -> file"), "{line}");
        }
    }

    fn a_small_descriptor_limit_still_copies_everything(env: TestEnv) {
        for dir in 0..20 {
            for file in 0..25 {
                env.write(format!("src/d{dir:02}/sub/f{file:02}"), format!("{dir} {file}\n"));
            }
        }
        let output = run_with_fd_limit(&env, 32, &["-j", "8", "src/", "dst"]);
        assert_status(&output, 0);
        assert_same_tree(&env.path("src"), &env.path("dst"));
    }

    fn a_limit_with_room_for_a_few_readers_copies_a_deep_and_wide_tree_exactly(env: TestEnv) {
        // 64 descriptors and two workers leave the walk a few directory
        // readers and a few open levels: the chain below is deeper than
        // those, so readers open beneath directories the walk closes and
        // reopens.
        env.mkdir("src");
        deep_tree(&env.path("src"), 6000);
        for dir in 0..30 {
            for file in 0..10 {
                env.write(format!("src/w{dir:02}/sub/f{file}"), format!("{dir} {file}\n"));
            }
        }
        let expected = listing_of(&env.path("src"));
        for run in 0..3 {
            let dst = format!("dst{run}");
            let output = run_with_fd_limit(&env, 64, &["-a", "-j", "2", "src/", &dst]);
            assert_status(&output, 0);
            assert_listings_equal(&expected, &listing_of(&env.path(&dst)));
        }
    }

    fn a_limit_too_small_for_one_worker_is_an_error_before_anything_is_written(env: TestEnv) {
        env.write("src/f", "x");
        let output = run_with_fd_limit(&env, 8, &["src/", "dst"]);
        assert_status(&output, 14);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("open files"), "{stderr}");
        assert!(!env.path("dst").exists());
    }

    fn the_totals_are_final_before_the_last_job_is_queued(env: TestEnv) {
        if !hook_available() {
            return;
        }
        assert_totals_final_before_the_last_job(&env, "", None);
    }

    fn under_a_small_descriptor_limit_the_totals_are_still_final_early(env: TestEnv) {
        if !hook_available() {
            return;
        }
        // 32 descriptors leave the count-ahead one or two open levels
        // (see `fdbudget`); the files are eight levels down.
        assert_totals_final_before_the_last_job(&env, "a/b/c/d/e/f/g/", Some(32));
    }

    fn a_small_descriptor_limit_copies_a_deep_tree_with_progress(env: TestEnv) {
        // The count-ahead reopens each of these 300 directories beneath
        // the root while the walk and the workers use the rest.
        for dir in 0..100 {
            for file in 0..4 {
                let path = format!("src/a/b/c/w{}/v{dir}/x/y/f{file}", dir % 10);
                env.write(path, format!("{dir} {file}\n"));
            }
        }
        for _ in 0..3 {
            let output = run_with_fd_limit(&env, 32, &["--progress", "-j", "8", "src/", "dst"]);
            assert_status(&output, 0);
            assert_same_tree(&env.path("src"), &env.path("dst"));
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(stderr.contains("pcopy: 400/400 files"), "{stderr}");
            std::fs::remove_dir_all(env.path("dst")).expect("rm dst");
        }
    }

    fn the_eta_appears_once_the_totals_are_final_and_is_a_number(env: TestEnv) {
        if !hook_available() {
            return;
        }
        let (mut child, mut gate) = held_after_some_progress(&env, &[]);
        let stderr = child.child().stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        // The worker is held, the walk at a full queue: only the count can
        // make the totals final, and a line says so as soon as they are,
        // and another as soon as the time left is known.
        let (with_eta, before) = read_until(&mut lines, |l| eta_seconds(l).is_some());
        for line in &before {
            assert!(line.ends_with(", ETA ?"), "{line}\n{before:?}");
        }
        assert!(with_eta.starts_with("pcopy: "), "{with_eta}");
        assert!(with_eta.contains("/2301 files, "), "{with_eta}");
        let totals = with_eta.rsplit_once(", ETA ").expect("an ETA").0;
        assert!(!totals.contains("scanning") && !totals.contains('+'), "{with_eta}");
        assert!(eta_seconds(&with_eta).is_some_and(|s| s > 0.0), "{with_eta}");
        gate.release();
        let rest: Vec<String> = lines.map(|line| line.expect("read")).collect();
        assert_status(&child.wait(), 0);
        let last = rest.iter().rev().find(|l| l.contains(", ETA ")).expect("a last line");
        assert!(last.starts_with("pcopy: 2301/2301 files, ") && last.ends_with(", ETA 0s"), "{rest:?}");
        assert_eq!(std::fs::read(env.path("dst/d3/f1993")).unwrap(), b"x");
    }

    fn json_progress_lines_carry_the_same_eta(env: TestEnv) {
        if !hook_available() {
            return;
        }
        let (mut child, mut gate) = held_after_some_progress(&env, &["--json"]);
        let stderr = child.child().stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let parse = |line: &str| -> serde_json::Value {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
        };
        let (with_eta, before) = read_until(&mut lines, |l| parse(l)["eta_seconds"].is_number());
        for line in &before {
            assert!(parse(line)["eta_seconds"].is_null(), "{line}");
        }
        let record = parse(&with_eta);
        assert_eq!(record["totals_final"], true, "{with_eta}");
        assert_eq!(record["files_total"], 2301, "{with_eta}");
        assert_eq!(record["bytes_total"], 2305, "{with_eta}");
        let done = record["files_done"].as_u64().expect("files_done");
        assert!((1..=300).contains(&done), "{with_eta}");
        assert!(record["eta_seconds"].as_f64().is_some_and(|s| s > 0.0), "{with_eta}");
        gate.release();
        let rest: Vec<String> = lines.map(|line| line.expect("read")).collect();
        assert_status(&child.wait(), 0);
        // The last JSON line says all is done; the summary follows it.
        let last = rest.iter().rev().find(|l| l.starts_with('{')).expect("a JSON line");
        let last = parse(last);
        assert_eq!((last["files_done"].as_u64(), last["eta_seconds"].as_f64()), (Some(2301), Some(0.0)));
    }
}
