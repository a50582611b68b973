//! The file systems misbehaving under pcopy: a full destination, a
//! read-only one, a source file that vanishes or grows during the run.
//! Each gets its documented exit status and leaves DST undamaged.

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;

use crate::testenv::{
    Gate, Guarded, Mounted, TestEnv, assert_status, assert_unchanged, hook_available,
    normalized_stderr, skipped, snapshot, temp_files, unprivileged_runner,
};

both_kinds! {
    fn a_full_destination_is_status_23_with_no_temps_and_finished_files_intact(env: TestEnv) {
        env.mkdir("dst");
        let _tmpfs = match Mounted::tmpfs(&env.path("dst"), "size=1m") {
            Ok(mounted) => mounted,
            Err(why) => return skipped(why),
        };
        env.write("dst/huge.bin", "the old version\n");
        for i in 0..20 {
            env.write(format!("src/small-{i:02}.txt"), vec![b'a' + i as u8; 8 << 10]);
        }
        env.write("src/huge.bin", vec![7u8; 3 << 20]);
        let output = env.run(["src/", "dst"]);
        assert_status(&output, 23);
        let stderr = normalized_stderr(&output);
        assert!(
            stderr.contains("pcopy: src/huge.bin: cannot write destination: No space left on device\n"),
            "{stderr}"
        );
        assert!(stderr.ends_with("0 skipped, 1 failed\n"), "{stderr}");
        for i in 0..20 {
            let data = fs::read(env.path(format!("dst/small-{i:02}.txt"))).unwrap();
            assert!(data == vec![b'a' + i as u8; 8 << 10], "small-{i:02}.txt damaged");
        }
        assert_eq!(fs::read(env.path("dst/huge.bin")).unwrap(), b"the old version\n");
        assert_eq!(temp_files(&env.path("dst")), Vec::<PathBuf>::new());
        // The failed file's blocks were given back: the small files fit again.
        let stat = rustix::fs::statvfs(env.path("dst")).unwrap();
        let free = stat.f_bavail * stat.f_frsize;
        assert!(free >= 600 << 10, "only {free} bytes free: the failed file still holds space");
    }

    fn a_read_only_destination_mount_is_status_23_and_unchanged(env: TestEnv) {
        env.write("src/f.txt", "f\n");
        env.write("src/sub/g.txt", "g\n");
        env.write("dst/old.txt", "old\n");
        let dst = env.path("dst");
        let _read_only = match Mounted::read_only_bind(&dst) {
            Ok(mounted) => mounted,
            Err(why) => return skipped(why),
        };
        let before = snapshot(&dst);
        let output = env.run(["src/", "dst"]);
        assert_status(&output, 23);
        let stderr = normalized_stderr(&output);
        assert!(stderr.contains("Read-only file system"), "{stderr}");
        assert_unchanged(&before, &dst, "on a read-only mount");
    }

    fn a_file_that_vanishes_before_its_copy_is_status_24(env: TestEnv) {
        if !hook_available() {
            return;
        }
        env.write("src/stays.txt", "stays\n");
        env.write("src/gone.txt", "gone\n");
        env.write("dst/gone.txt", "the old version\n");
        let mut gate = Gate::new(env.root(), "open", "gone.txt");
        let (key, value) = gate.env();
        let child = Guarded::spawn(env.pcopy().args(["src/", "dst"]).env(key, value).stderr(Stdio::piped()));
        gate.wait_reached();
        fs::remove_file(env.path("src/gone.txt")).unwrap();
        gate.release();
        let output = child.wait();
        assert_status(&output, 24);
        assert_eq!(
            normalized_stderr(&output),
            "pcopy: src/gone.txt: cannot open source: No such file or directory\n\
             pcopy: 1 file, 6 B in [time]; 0 skipped, 1 failed (1 vanished)\n"
        );
        assert_eq!(fs::read(env.path("dst/stays.txt")).unwrap(), b"stays\n");
        assert_eq!(fs::read(env.path("dst/gone.txt")).unwrap(), b"the old version\n");
    }

    fn a_file_that_grows_during_its_copy_is_copied_as_read_and_reported(env: TestEnv) {
        if !hook_available() {
            return;
        }
        env.write("src/grow.log", vec![b'1'; 1 << 20]);
        let mut gate = Gate::new(env.root(), "data", "grow.log");
        let (key, value) = gate.env();
        let child = Guarded::spawn(env.pcopy().args(["src/", "dst"]).env(key, value).stderr(Stdio::piped()));
        gate.wait_reached();
        // The copy has the size it saw at open; the file grows past it.
        let mut log = fs::OpenOptions::new().append(true).open(env.path("src/grow.log")).unwrap();
        log.write_all(&[b'2'; 100 << 10]).unwrap();
        drop(log);
        gate.release();
        let output = child.wait();
        assert_status(&output, 0);
        let stderr = normalized_stderr(&output);
        assert!(stderr.contains("pcopy: src/grow.log: file changed as we read it; copied as read\n"), "{stderr}");
        assert!(stderr.ends_with("pcopy: 1 file, 1.10 MiB in [time]; 0 skipped, 0 failed\n"), "{stderr}");
        let copy = fs::read(env.path("dst/grow.log")).unwrap();
        assert!(copy == fs::read(env.path("src/grow.log")).unwrap(), "the copy is not what was read");
    }

    fn a_destination_owned_by_another_user_and_read_only_is_refused(env: TestEnv) {
        let Some(setpriv) = unprivileged_runner() else {
            return;
        };
        env.write("src/f.txt", "f\n");
        env.write("dst/old.txt", "old\n");
        env.chmod("dst", 0o555);
        let before = snapshot(&env.path("dst"));
        let output = env.run_as_nobody(setpriv, ["src/", "dst"]);
        assert_status(&output, 23);
        let stderr = normalized_stderr(&output);
        assert!(
            stderr.contains("Permission denied") || stderr.contains("Operation not permitted"),
            "{stderr}"
        );
        assert_unchanged(&before, &env.path("dst"), "as another user's read-only directory");
    }
}
