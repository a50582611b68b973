//! A hostile destination (symlinks planted where directories or files go,
//! also mid-run) cannot make pcopy create, write, chmod, chown or delete
//! anything outside DST; and no copy is ever readable by others before it
//! is complete, nor keeps setuid or setgid bits without its owner.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::process::Stdio;

use crate::testenv::{
    Gate, Guarded, assert_same_tree, assert_unchanged, hook_available, snapshot, unnamed_files,
};
use crate::testenv::{
    TestEnv, as_nobody, assert_status, normalized_stderr, temp_files, unprivileged_runner,
};

/// A directory next to the test's trees that pcopy must never change.
fn outside(env: &TestEnv) -> PathBuf {
    env.write("outside/precious.txt", "precious\n");
    env.write("outside/sub/deeper.txt", "deeper\n");
    env.chmod("outside/precious.txt", 0o640);
    env.path("outside")
}

/// Whether this pcopy has `--delete` (it removes entries, so it must not
/// follow symlinks either).
fn has_delete(env: &TestEnv) -> bool {
    let help = env.run(["--help"]);
    String::from_utf8_lossy(&help.stdout).contains("--delete")
}

both_kinds! {
    fn fifos_and_devices_at_destination_names_are_replaced_never_waited_on(env: TestEnv) {
        env.write("src/fifo.txt", "was a fifo\n");
        env.write("src/dev.txt", "was a device\n");
        env.write("src/tty.txt", "was a terminal\n");
        env.write("src/big.bin", vec![b'b'; 3 << 20]);
        for round in ["--inplace", "--partial"] {
            let dst = format!("dst{round}");
            env.mkdir(&dst);
            env.mkfifo(format!("{dst}/fifo.txt"));
            // A fifo where a resumable temp goes: not resumed, removed.
            env.mkfifo(format!("{dst}/.pcopy-tmp.partial.big.bin"));
            // Devices: /dev/null's numbers, and a terminal's (major 136,
            // a pseudo-terminal not open) that fails to open, are never
            // opened, written into, nor made the controlling terminal.
            for (name, major, minor) in [("dev.txt", 1, 3), ("tty.txt", 136, 4000)] {
                let planted = rustix::fs::mknodat(
                    rustix::fs::CWD,
                    env.path(format!("{dst}/{name}")),
                    rustix::fs::FileType::CharacterDevice,
                    rustix::fs::Mode::from_raw_mode(0o666),
                    rustix::fs::makedev(major, minor),
                );
                if let Err(err) = planted {
                    println!("no device node planted ({err}): the fifos are tested alone");
                }
            }
            let output = env.run([round, "--split-min", "2097152", "-j", "2", "src/", &dst]);
            assert_status(&output, 0);
            assert_same_tree(&env.path("src"), &env.path(&dst));
            assert_eq!(temp_files(&env.path(&dst)), Vec::<PathBuf>::new());
        }
    }

    fn symlinks_planted_in_dst_never_lead_outside(env: TestEnv) {
        let outside = outside(&env);
        env.write("src/sub/a.txt", "a\n");
        env.write("src/sub/deeper.txt", "mine\n");
        env.write("src/deep/dir/c.txt", "c\n");
        env.write("src/precious.txt", "replacement\n");
        env.write("src/ok.txt", "ok\n");
        env.mkdir("dst/deep");
        env.symlink(&outside, "dst/sub");
        env.symlink(outside.join("sub"), "dst/deep/dir");
        env.symlink(outside.join("precious.txt"), "dst/precious.txt");
        let before = snapshot(&outside);
        let output = env.run(["src/", "dst"]);
        assert_status(&output, 0);
        assert_unchanged(&before, &outside, "outside DST");
        // The link where a file goes was replaced by the file, not followed.
        let replaced = fs::symlink_metadata(env.path("dst/precious.txt")).unwrap();
        assert!(replaced.is_file());
        assert_eq!(fs::read(env.path("dst/precious.txt")).unwrap(), b"replacement\n");
        assert_eq!(fs::read(env.path("dst/ok.txt")).unwrap(), b"ok\n");
        // The links where directories go were unlinked as links and
        // replaced by directories: the copy is exact, outside untouched.
        assert_same_tree(&env.path("src"), &env.path("dst"));
        // With -L nothing changes: it is about the source, never DST.
        env.symlink(&outside, "dst2-sub");
        fs::remove_dir_all(env.path("dst/sub")).unwrap();
        fs::rename(env.path("dst2-sub"), env.path("dst/sub")).unwrap();
        assert_status(&env.run(["-L", "src/", "dst"]), 0);
        assert_unchanged(&before, &outside, "outside DST under -L");
        assert_same_tree(&env.path("src"), &env.path("dst"));
        if has_delete(&env) {
            // Extra entries that lead outside: only the links themselves go.
            env.write("src2/kept.txt", "kept\n");
            env.mkdir("dst2/extra-dir");
            env.symlink(&outside, "dst2/extra-link");
            env.symlink(outside.join("precious.txt"), "dst2/extra-file-link");
            env.symlink(&outside, "dst2/extra-dir/inner-link");
            let output = env.run(["--delete", "src2/", "dst2"]);
            assert_status(&output, 0);
            assert_unchanged(&before, &outside, "outside DST under --delete");
            let left: Vec<_> = fs::read_dir(env.path("dst2")).unwrap().map(|e| e.unwrap().file_name()).collect();
            assert_eq!(left, ["kept.txt"], "the extra links were deleted, not followed");
        }
    }

    fn a_directory_swapped_for_a_symlink_mid_run_is_not_written_through(env: TestEnv) {
        if !hook_available() {
            return;
        }
        let outside = outside(&env);
        env.write("src/sub/x.txt", "x\n");
        env.write("src/top.txt", "top\n");
        let before = snapshot(&outside);
        let mut gate = Gate::new(env.root(), "open", "sub/x.txt");
        let (key, value) = gate.env();
        let child = Guarded::spawn(env.pcopy().args(["src/", "dst"]).env(key, value).stderr(Stdio::piped()));
        gate.wait_reached();
        // The walker made dst/sub; replace it with a link out of DST.
        fs::rename(env.path("dst/sub"), env.path("dst/sub-moved")).unwrap();
        env.symlink(&outside, "dst/sub");
        gate.release();
        let output = child.wait();
        assert_status(&output, 23);
        let stderr = normalized_stderr(&output);
        assert!(
            stderr.contains("pcopy: src/sub/x.txt: destination directory \"sub\" is a symbolic link; not writing through it\n"),
            "{stderr}"
        );
        assert_unchanged(&before, &outside, "outside DST");
        assert_eq!(fs::read(env.path("dst/top.txt")).unwrap(), b"top\n");
        assert!(fs::read_dir(env.path("dst/sub-moved")).unwrap().next().is_none());
    }

    fn new_files_cannot_be_read_before_they_are_complete(env: TestEnv) {
        if !hook_available() {
            return;
        }
        let big: Vec<u8> = (0..(2u32 << 20)).map(|i| (i % 253) as u8).collect();
        env.write("src/shared.bin", &big);
        env.chmod("src/shared.bin", 0o644);
        env.write("dst/shared.bin", "the old version\n");
        env.chmod("dst/shared.bin", 0o600);
        let mut gate = Gate::new(env.root(), "data", "shared.bin");
        let (key, value) = gate.env();
        let child = Guarded::spawn(env.pcopy().args(["src/", "dst"]).env(key, value).stderr(Stdio::piped()));
        let pid = gate.wait_reached();
        let unnamed = unnamed_files(pid, &env.path("dst"));
        let [fd_path] = &unnamed[..] else {
            panic!("process {pid} holds not one unnamed file in DST but {unnamed:?}");
        };
        // Through /proc the fd's file is reachable without a name.
        let size = fs::metadata(fd_path).unwrap().len();
        assert_eq!(size, 0, "the new file has no data yet");
        // The final name still holds the old version, untouched.
        assert_eq!(fs::read(env.path("dst/shared.bin")).unwrap(), b"the old version\n");
        // Without a name, the file is only reachable through the worker's
        // /proc fd links, which another user cannot follow whatever its
        // mode (it may already have its final one).
        if let Some(setpriv) = unprivileged_runner() {
            let other = as_nobody(setpriv, "cat").arg(fd_path).output().unwrap();
            assert!(!other.status.success(), "another user opened {}", fd_path.display());
            assert!(other.stdout.is_empty());
        }
        gate.release();
        let output = child.wait();
        assert_status(&output, 0);
        let meta = fs::metadata(env.path("dst/shared.bin")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o644);
        assert!(fs::read(env.path("dst/shared.bin")).unwrap() == big);
        assert_eq!(temp_files(&env.path("dst")), Vec::<PathBuf>::new());
    }

    fn setuid_and_setgid_bits_are_dropped_as_ownership_is_not_kept(env: TestEnv) {
        for (name, mode) in [("suid", 0o4755), ("sgid", 0o2755), ("both", 0o6711), ("sticky", 0o1644)] {
            env.write(format!("src/{name}"), name);
            env.chmod(format!("src/{name}"), mode);
            if rustix::process::geteuid().is_root() {
                // Someone else's setuid program: copying it as root must
                // not make a root-owned setuid program of it.
                std::os::unix::fs::chown(env.path(format!("src/{name}")), Some(65534), Some(65534)).unwrap();
                env.chmod(format!("src/{name}"), mode);
            }
        }
        assert_status(&env.run(["src/", "dst"]), 0);
        let me = rustix::process::geteuid().as_raw();
        for (name, kept) in [("suid", 0o755), ("sgid", 0o755), ("both", 0o711), ("sticky", 0o1644)] {
            let meta = fs::metadata(env.path(format!("dst/{name}"))).unwrap();
            assert_eq!(meta.mode() & 0o7777, kept, "{name}");
            assert_eq!(meta.uid(), me, "{name}: the copy belongs to who ran pcopy");
        }
    }
}
