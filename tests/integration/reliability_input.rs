//! Bad input: each case gets a clear message and its documented exit
//! status, never a hang, and leaves what is already in DST undamaged.

use std::ffi::OsStr;
use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::testenv::{
    NOBODY, TestEnv, assert_same_tree, assert_status, assert_unchanged, normalized_stderr,
    snapshot, unprivileged_runner,
};

both_kinds! {
    fn bad_sources_and_destinations_are_status_3_and_change_nothing(env: TestEnv) {
        env.write("src/sub/f.txt", "f\n");
        env.write("dst/kept.txt", "kept\n");
        env.write("dst/src", "a file where the directory would go\n");
        env.write("file.txt", "a file\n");
        env.symlink("src/sub", "alias");
        let cases: [(&[&str], &str); 7] = [
            (&["nope", "dst"], "pcopy: nope: cannot read source: No such file or directory"),
            (&["src/sub/f.txt", "nope", "dst"], "pcopy: nope: cannot read source: No such file or directory"),
            (&["src/", "src"], "pcopy: src/: source and destination are the same directory"),
            (&["src/sub/f.txt", "alias/f.txt"], "pcopy: src/sub/f.txt: source and destination are the same file"),
            (&["src/", "src/sub/copy"], "pcopy: src/sub/copy: destination is inside the source src/"),
            (&["src/", "alias/copy"], "pcopy: alias/copy: destination is inside the source src/"),
            (&["src/", "file.txt"], "pcopy: file.txt: cannot copy a directory over an existing file"),
        ];
        for (args, message) in cases {
            let before = snapshot(env.root());
            let output = env.run(args);
            assert_status(&output, 3);
            assert_eq!(normalized_stderr(&output), format!("{message}\n"), "{args:?}");
            assert_unchanged(&before, env.root(), &format!("by {args:?}"));
        }
    }

    fn special_files_are_skipped_with_a_warning_and_never_opened(env: TestEnv) {
        env.write("src/file.txt", "data\n");
        env.mkfifo("src/fifo");
        let _socket = std::os::unix::net::UnixListener::bind(env.path("src/socket")).unwrap();
        let mut expected = vec!["fifo", "socket"];
        if rustix::process::geteuid().is_root() {
            let dev = rustix::fs::makedev(1, 3);
            let char_dev = rustix::fs::FileType::CharacterDevice;
            let mode = rustix::fs::Mode::from_raw_mode(0o666);
            rustix::fs::mknodat(rustix::fs::CWD, env.path("src/null"), char_dev, mode, dev).unwrap();
            expected.push("character device");
        }
        for extra in [&[][..], &["-L"][..]] {
            let output = env.run(extra.iter().chain(&["src/", "dst"]));
            assert_status(&output, 0);
            let stderr = normalized_stderr(&output);
            for what in &expected {
                assert!(stderr.contains(&format!(": skipping special file ({what})")), "{stderr}");
            }
            assert_eq!(fs::read(env.path("dst/file.txt")).unwrap(), b"data\n");
            let names: Vec<_> = fs::read_dir(env.path("dst")).unwrap().map(|e| e.unwrap().file_name()).collect();
            assert_eq!(names, ["file.txt"], "only the regular file is copied");
        }
    }

    fn loops_and_dangling_links_under_dereference_fail_alone(env: TestEnv) {
        env.write("src/ok.txt", "ok\n");
        env.symlink("loop-b", "src/loop-a");
        env.symlink("loop-a", "src/loop-b");
        env.symlink("nowhere", "src/dangling");
        env.write("src/dir/inner.txt", "inner\n");
        env.symlink("..", "src/dir/up");
        let output = env.run(["-L", "src/", "dst"]);
        assert_status(&output, 23);
        let stderr = normalized_stderr(&output);
        for path in ["src/loop-a", "src/loop-b", "src/dangling", "src/dir/up"] {
            let line = stderr.lines().find(|l| l.starts_with(&format!("pcopy: {path}: ")));
            assert!(line.is_some(), "{path} not reported: {stderr}");
        }
        assert!(stderr.contains("symbolic link loop back to"), "{stderr}");
        assert!(stderr.ends_with("0 skipped, 4 failed\n"), "{stderr}");
        assert_eq!(fs::read(env.path("dst/ok.txt")).unwrap(), b"ok\n");
        assert_eq!(fs::read(env.path("dst/dir/inner.txt")).unwrap(), b"inner\n");
        // Without -L they are links like any other, copied as they are.
        let output = env.run(["src/", "plain"]);
        assert_status(&output, 0);
        assert_same_tree(&env.path("src"), &env.path("plain"));
    }

    fn non_utf8_and_255_byte_names_are_copied_byte_for_byte(env: TestEnv) {
        let long_ascii = vec![b'n'; 255];
        let mut long_utf8 = "é".repeat(127).into_bytes();
        long_utf8.push(b'x');
        assert_eq!(long_utf8.len(), 255);
        let names: [&[u8]; 5] = [b"\xff\xfe", b"caf\xe9.txt", b"tab\tnew\nline", &long_ascii, &long_utf8];
        for name in names {
            env.write(Path::new("src").join(OsStr::from_bytes(name)), name);
            let dir = Path::new("src/dirs").join(OsStr::from_bytes(name));
            env.write(dir.join(OsStr::from_bytes(name)), b"nested");
        }
        std::os::unix::fs::symlink(OsStr::from_bytes(b"target\xff"), env.path("src/link")).unwrap();
        let output = env.run(["-v", "src/", "dst"]);
        assert_status(&output, 0);
        assert_same_tree(&env.path("src"), &env.path("dst"));
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(stdout.lines().any(|l| l == "\\xff\\xfe"), "{stdout}");
        assert!(stdout.lines().any(|l| l == "tab\\tnew\\nline"), "{stdout}");
        assert!(stdout.lines().any(|l| l == "link -> target\\xff"), "{stdout}");
        let (dirs, entries): (Vec<&str>, Vec<&str>) = stdout.lines().partition(|l| l.ends_with('/'));
        assert_eq!(entries.len(), 11, "one line per entry: {stdout}");
        // `./`, `dirs/` and the five below it.
        assert_eq!(dirs.len(), 7, "one line per directory: {stdout}");
    }

    fn paths_longer_than_path_max_are_copied(env: TestEnv) {
        env.write("src/shallow.txt", "shallow\n");
        let component = [b'd'; 250];
        let depth = 20;
        let bottom = deep_dirs(&env.path("src"), &component, depth);
        write_at(&bottom, b"deep.txt", b"deep\n");
        let output = env.run(["src/", "dst"]);
        assert_status(&output, 0);
        assert_eq!(fs::read(env.path("dst/shallow.txt")).unwrap(), b"shallow\n");
        let copied = open_deep(&env.path("dst"), &component, depth)
            .and_then(|dir| read_at(&dir, b"deep.txt"));
        assert_eq!(copied.as_deref(), Some(&b"deep\n"[..]));
    }

    fn unreadable_files_and_directories_fail_alone_when_run_unprivileged(env: TestEnv) {
        let Some(setpriv) = unprivileged_runner() else {
            return;
        };
        env.write("src/ok.txt", "ok\n");
        env.write("src/secret.txt", "secret\n");
        env.chmod("src/secret.txt", 0o000);
        env.write("src/locked/hidden.txt", "hidden\n");
        env.chmod("src/locked", 0o000);
        env.mkdir("dst");
        std::os::unix::fs::chown(env.path("dst"), Some(NOBODY), Some(NOBODY)).unwrap();
        let output = env.run_as_nobody(setpriv, ["src/", "dst"]);
        assert_status(&output, 23);
        let stderr = normalized_stderr(&output);
        assert!(
            stderr.contains("pcopy: src/secret.txt: cannot open source: Permission denied\n"),
            "{stderr}"
        );
        assert!(stderr.contains("pcopy: src/locked: Permission denied\n"), "{stderr}");
        assert!(stderr.ends_with("0 skipped, 2 failed\n"), "{stderr}");
        assert_eq!(fs::read(env.path("dst/ok.txt")).unwrap(), b"ok\n");
        assert!(!env.path("dst/secret.txt").exists());
        assert!(!env.path("dst/locked/hidden.txt").exists());
    }
}

/// How the nested directories are opened. Close-on-exec, as tests on other
/// threads of this process start children meanwhile.
const DIR_FLAGS: rustix::fs::OFlags = rustix::fs::OFlags::RDONLY
    .union(rustix::fs::OFlags::DIRECTORY)
    .union(rustix::fs::OFlags::CLOEXEC);

/// Makes `depth` nested directories named `component` below `root`, through
/// directory fds (the full path is longer than `PATH_MAX`), and returns the
/// innermost one.
fn deep_dirs(root: &Path, component: &[u8], depth: usize) -> OwnedFd {
    let none = rustix::fs::Mode::empty();
    let mut dir = rustix::fs::open(root, DIR_FLAGS, none).unwrap();
    for _ in 0..depth {
        rustix::fs::mkdirat(&dir, component, rustix::fs::Mode::from_raw_mode(0o755)).unwrap();
        dir = rustix::fs::openat(&dir, component, DIR_FLAGS, none).unwrap();
    }
    dir
}

/// The innermost of the nested directories, if they all exist.
fn open_deep(root: &Path, component: &[u8], depth: usize) -> Option<OwnedFd> {
    let none = rustix::fs::Mode::empty();
    let mut dir = rustix::fs::open(root, DIR_FLAGS, none).ok()?;
    for _ in 0..depth {
        dir = rustix::fs::openat(&dir, component, DIR_FLAGS, none).ok()?;
    }
    Some(dir)
}

fn write_at(dir: &OwnedFd, name: &[u8], data: &[u8]) {
    let flags =
        rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CREATE | rustix::fs::OFlags::CLOEXEC;
    let mode = rustix::fs::Mode::from_raw_mode(0o644);
    let fd = rustix::fs::openat(dir, name, flags, mode).unwrap();
    assert_eq!(rustix::io::write(&fd, data).unwrap(), data.len());
}

fn read_at(dir: &OwnedFd, name: &[u8]) -> Option<Vec<u8>> {
    let fd = rustix::fs::openat(
        dir,
        name,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .ok()?;
    let mut file = fs::File::from(fd);
    let mut data = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut data).ok()?;
    Some(data)
}
