//! rsync's backup flags: snapshots (`--link-dest`, `--compare-dest`,
//! `--copy-dest`), versions (`-b`, `--backup-dir`, `--suffix`), moves
//! (`--remove-source-files`) and `--bwlimit`.

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::testenv::{
    Gate, Guarded, TestEnv, assert_same_tree, assert_status, hook_available, json_of,
    lines_of_tree, listing, normalized_stderr,
};

fn ino(path: &Path) -> u64 {
    fs::symlink_metadata(path).unwrap().ino()
}

/// Bytes `du` counts for each of `dirs` given together (a file linked
/// into several is counted once, at its first directory).
fn du(dirs: &[&Path]) -> Vec<u64> {
    let output = Command::new("du")
        .arg("-s")
        .arg("-B1")
        .args(dirs)
        .output()
        .unwrap();
    assert!(output.status.success(), "du failed");
    let text = String::from_utf8(output.stdout).unwrap();
    text.lines()
        .map(|l| l.split('\t').next().unwrap().parse().unwrap())
        .collect()
}

/// A source tree of files big enough for `du` to see.
fn week_tree(env: &TestEnv) {
    for name in ["a.bin", "b.bin", "sub/c.bin", "sub/deep/d.bin", "gone.bin"] {
        env.write(format!("src/{name}"), vec![name.as_bytes()[0]; 64 << 10]);
    }
    env.symlink("a.bin", "src/link");
}

both_kinds! {
    fn a_snapshot_rotation_shares_the_unchanged_files(env: TestEnv) {
        week_tree(&env);
        env.mkdir("snap");
        assert_status(&env.run(["-a", "src/", "snap/day1"]), 0);
        // Linking changes the ctime and link count of day1's files, nothing
        // a copy reproduces.
        let day1 = listing(&env.path("snap/day1"));
        env.write("src/b.bin", vec![b'B'; 96 << 10]);
        fs::remove_file(env.path("src/gone.bin")).unwrap();
        let output = env.run(["-a", "--json", "--link-dest=../day1", "src/", "snap/day2"]);
        assert_status(&output, 0);
        assert_eq!(json_of(&output)["bytes_copied"], 96 << 10, "only the changed file is copied");
        assert_eq!(listing(&env.path("snap/day1")), day1, "day1 changed by the next snapshot");
        assert_same_tree(&env.path("src"), &env.path("snap/day2"));
        for same in ["a.bin", "sub/c.bin", "sub/deep/d.bin", "link"] {
            let (one, two) = (env.path("snap/day1").join(same), env.path("snap/day2").join(same));
            assert_eq!(ino(&one), ino(&two), "{same} is not shared");
        }
        assert_ne!(ino(&env.path("snap/day1/b.bin")), ino(&env.path("snap/day2/b.bin")));
        let together = du(&[&env.path("snap/day1"), &env.path("snap/day2")]);
        let alone = du(&[&env.path("snap/day2")]);
        // day2 alone holds three files of 64 KiB and one of 96; beside
        // day1 only its new file counts.
        assert!(alone[0] >= 288 << 10, "{alone:?}");
        assert!(together[1] < 128 << 10, "day2 beside day1: {together:?}");
    }

    fn a_changed_mode_or_a_missing_dir_means_a_copy(env: TestEnv) {
        week_tree(&env);
        assert_status(&env.run(["-a", "src/", "day1"]), 0);
        env.chmod("src/a.bin", 0o600);
        let output = env.run(["-a", "--link-dest", "day1", "--link-dest", "../nowhere", "src/", "day2"]);
        assert_status(&output, 0);
        let stderr = normalized_stderr(&output);
        let warnings = "pcopy: --link-dest arg does not exist: day1\n\
                        pcopy: --link-dest arg does not exist: ../nowhere\n";
        assert!(stderr.starts_with(warnings), "{stderr}");
        assert_same_tree(&env.path("src"), &env.path("day2"));
        // A relative DIR is relative to DST: `day1` here is day2/day1, missing.
        assert_ne!(ino(&env.path("day1/b.bin")), ino(&env.path("day2/b.bin")));
        let output = env.run(["-a", "--link-dest", "../day1", "src/", "day3"]);
        assert_status(&output, 0);
        assert_same_tree(&env.path("src"), &env.path("day3"));
        assert_ne!(ino(&env.path("day1/a.bin")), ino(&env.path("day3/a.bin")), "mode differs");
        assert_eq!(ino(&env.path("day1/b.bin")), ino(&env.path("day3/b.bin")));
    }

    fn compare_dest_leaves_out_and_copy_dest_copies_from_the_basis(env: TestEnv) {
        week_tree(&env);
        assert_status(&env.run(["src/", "full"]), 0);
        env.write("src/sub/c.bin", "changed\n");
        env.write("src/new.txt", "new\n");
        assert_status(&env.run(["--compare-dest=../full", "src/", "diff"]), 0);
        assert_eq!(names(&env.path("diff")), listing_of(&["new.txt", "sub/", "sub/c.bin", "sub/deep/"]));
        assert_eq!(fs::read(env.path("diff/sub/c.bin")).unwrap(), b"changed\n");
        assert_status(&env.run(["--copy-dest=../full", "src/", "copy"]), 0);
        assert_same_tree(&env.path("src"), &env.path("copy"));
        assert_ne!(ino(&env.path("full/a.bin")), ino(&env.path("copy/a.bin")));
    }

    fn basis_flags_refuse_bad_input(env: TestEnv) {
        env.write("src/a", "a");
        let mixed = env.run(["--link-dest=x", "--compare-dest=y", "src/", "dst"]);
        assert_status(&mixed, 1);
        let many: Vec<String> = (0..21).map(|i| format!("--link-dest=d{i}")).collect();
        let output = env.run(many.iter().map(String::as_str).chain(["src/", "dst"]));
        assert_status(&output, 1);
        assert!(normalized_stderr(&output).contains("at most 20"), "{}", normalized_stderr(&output));
        assert!(!env.path("dst").exists());
    }

    fn backup_keeps_the_replaced_version_beside_it(env: TestEnv) {
        env.write("src/f.txt", "one\n");
        env.write("src/sub/g.txt", "g1\n");
        assert_status(&env.run(["src/", "dst"]), 0);
        let old = ino(&env.path("dst/f.txt"));
        env.write("src/f.txt", "two, longer\n");
        env.write("src/sub/g.txt", "g2, longer\n");
        assert_status(&env.run(["-b", "src/", "dst"]), 0);
        assert_eq!(fs::read(env.path("dst/f.txt")).unwrap(), b"two, longer\n");
        assert_eq!(fs::read(env.path("dst/f.txt~")).unwrap(), b"one\n");
        assert_eq!(ino(&env.path("dst/f.txt~")), old, "the backup is the old file, renamed");
        assert_eq!(fs::read(env.path("dst/sub/g.txt~")).unwrap(), b"g1\n");
        env.write("src/f.txt", "three, even longer\n");
        let output = env.run(["-b", "--suffix=.old", "--delete", "src/", "dst"]);
        assert_status(&output, 0);
        // The earlier backup `f.txt~` is spared by --delete (rsync's P *~ rule
        // applies to the suffix in use: `.old`); it goes as extraneous.
        assert_eq!(fs::read(env.path("dst/f.txt.old")).unwrap(), b"two, longer\n");
        assert_eq!(fs::read(env.path("dst/f.txt")).unwrap(), b"three, even longer\n");
        assert!(env.path("dst/f.txt~.old").exists(), "a deleted file is moved aside too");
        // A directory in the way of a file is moved aside whole.
        env.write("dst/was-dir/inside.txt", "kept\n");
        env.write("src/was-dir", "now a file\n");
        assert_status(&env.run(["-b", "--force", "src/", "dst"]), 0);
        assert_eq!(fs::read(env.path("dst/was-dir")).unwrap(), b"now a file\n");
        assert_eq!(fs::read(env.path("dst/was-dir~/inside.txt")).unwrap(), b"kept\n");
    }

    fn a_hard_link_replacing_a_name_keeps_its_old_version(env: TestEnv) {
        env.write("src/a.txt", "shared\n");
        fs::hard_link(env.path("src/a.txt"), env.path("src/b.txt")).unwrap();
        env.write("dst/b.txt", "old b\n");
        assert_status(&env.run(["-a", "-b", "src/", "dst"]), 0);
        assert_eq!(ino(&env.path("dst/a.txt")), ino(&env.path("dst/b.txt")));
        assert_eq!(fs::read(env.path("dst/b.txt")).unwrap(), b"shared\n");
        assert_eq!(fs::read(env.path("dst/b.txt~")).unwrap(), b"old b\n");
    }

    fn backup_dir_keeps_paths_and_catches_deletions(env: TestEnv) {
        env.write("src/f.txt", "one\n");
        env.write("src/sub/g.txt", "g1\n");
        env.write("src/sub/h.txt", "h1\n");
        assert_status(&env.run(["src/", "dst"]), 0);
        env.write("src/sub/g.txt", "g2, longer\n");
        fs::remove_file(env.path("src/sub/h.txt")).unwrap();
        let output = env.run(["--backup-dir=../old", "--delete", "src/", "dst"]);
        assert_status(&output, 0);
        assert_same_tree(&env.path("src"), &env.path("dst"));
        assert_eq!(names(&env.path("old")), listing_of(&["sub/", "sub/g.txt", "sub/h.txt"]));
        assert_eq!(fs::read(env.path("old/sub/g.txt")).unwrap(), b"g1\n");
        assert_eq!(fs::read(env.path("old/sub/h.txt")).unwrap(), b"h1\n");
        // Inside DST, the backup directory is spared by --delete.
        env.write("src/f.txt", "two, longer\n");
        let output = env.run(["--backup-dir=versions/1", "--delete", "src/", "dst"]);
        assert_status(&output, 0);
        assert_eq!(fs::read(env.path("dst/versions/1/f.txt")).unwrap(), b"one\n");
    }

    fn a_backup_dir_inside_the_source_is_refused_first(env: TestEnv) {
        env.write("src/f.txt", "one\n");
        let output = env.run(["--backup-dir=../src/old", "src/", "dst"]);
        assert_status(&output, 3);
        assert!(normalized_stderr(&output).contains("--backup-dir is inside the source"), "{}", normalized_stderr(&output));
        assert!(!env.path("dst").exists() && !env.path("src/old").exists());
        assert_status(&env.run(["-b", "--suffix", "a/b", "src/", "dst"]), 1);
        assert_status(&env.run(["-b", "--suffix=", "src/", "dst"]), 1);
        assert!(!env.path("dst").exists());
    }

    fn remove_source_files_moves_files_and_keeps_directories(env: TestEnv) {
        week_tree(&env);
        env.write("src/up-to-date.txt", "same\n");
        assert_status(&env.run(["src/up-to-date.txt", "dst/"]), 0);
        let expected = env.path("expected");
        assert_status(&env.run(["-a", "src/", expected.to_str().unwrap()]), 0);
        let output = env.run(["-a", "--fsync", "--remove-source-files", "src/", "dst"]);
        assert_status(&output, 0);
        assert_same_tree(&expected, &env.path("dst"));
        assert_eq!(names(&env.path("src")), listing_of(&["sub/", "sub/deep/"]));
    }

    fn a_source_that_changes_during_its_copy_is_not_removed(env: TestEnv) {
        if !hook_available() {
            return;
        }
        env.write("src/busy.log", vec![b'1'; 1 << 20]);
        env.write("src/quiet.txt", "quiet\n");
        let mut gate = Gate::new(env.root(), "data", "busy.log");
        let (key, value) = gate.env();
        let child = Guarded::spawn(
            env.pcopy().args(["--remove-source-files", "src/", "dst"]).env(key, value).stderr(Stdio::piped()),
        );
        gate.wait_reached();
        let mut log = fs::OpenOptions::new().write(true).open(env.path("src/busy.log")).unwrap();
        log.write_all(b"2").unwrap();
        drop(log);
        gate.release();
        let output = child.wait();
        assert_status(&output, 23);
        let stderr = normalized_stderr(&output);
        assert!(stderr.contains("src/busy.log: source changed during the copy; not removed"), "{stderr}");
        assert!(env.path("src/busy.log").exists() && !env.path("src/quiet.txt").exists());
    }

    fn inplace_writes_over_the_same_inode(env: TestEnv) {
        env.write("src/big.bin", vec![b'a'; 3 << 20]);
        env.write("src/short.txt", "a long first version\n");
        assert_status(&env.run(["src/", "dst"]), 0);
        let (big, short) = (ino(&env.path("dst/big.bin")), ino(&env.path("dst/short.txt")));
        env.write("src/big.bin", vec![b'b'; 2 << 20]);
        env.write("src/short.txt", "short\n");
        env.write("src/new.txt", "new\n");
        assert_status(&env.run(["--inplace", "src/", "dst"]), 0);
        assert_same_tree(&env.path("src"), &env.path("dst"));
        assert_eq!((ino(&env.path("dst/big.bin")), ino(&env.path("dst/short.txt"))), (big, short));
        assert_status(&env.run(["--inplace", "-b", "src/", "other"]), 1);
        assert!(!env.path("other").exists());
    }

    fn bwlimit_copies_exactly_and_refuses_bad_rates(env: TestEnv) {
        week_tree(&env);
        assert_status(&env.run(["--bwlimit=8M", "src/", "dst"]), 0);
        assert_same_tree(&env.path("src"), &env.path("dst"));
        for bad in ["--bwlimit=fast", "--bwlimit=10X", "--bwlimit=-1"] {
            let output = env.run([bad, "src/", "other"]);
            assert_status(&output, 1);
        }
        assert!(!env.path("other").exists());
    }
}

fn listing_of(entries: &[&str]) -> Vec<String> {
    entries.iter().map(|e| e.to_string()).collect()
}

/// The paths below `root`, directories with a trailing `/`, sorted.
fn names(root: &Path) -> Vec<String> {
    lines_of_tree(root, false, |rel, entry| match entry.file_type().is_dir() {
        true => format!("{rel}/"),
        false => rel.to_string(),
    })
}
