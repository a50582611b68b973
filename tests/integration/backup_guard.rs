//! `--delete` and the backup flags kept within their bounds: nothing
//! another source copied is removed, backups are kept when a file makes
//! way for a directory or a directory is emptied, and a `--backup-dir`
//! never leads outside DST through a symlink.

use std::fs;
use std::path::Path;
use std::process::Stdio;

use crate::testenv::{
    Gate, Guarded, TestEnv, assert_same_tree, assert_status, assert_unchanged, describe,
    hook_available, lines_of_tree, normalized_stderr, snapshot,
};

/// `path` as a command-line argument.
fn arg(path: &Path) -> String {
    path.to_str().expect("UTF-8 temp path").to_string()
}

/// Every entry below `root` with what it holds, sorted: `path/` for a
/// directory, `path -> target` for a symlink, `path = contents` for a file.
fn contents(root: &Path) -> Vec<String> {
    lines_of_tree(root, false, |rel, entry| {
        let kind = entry.file_type();
        if kind.is_dir() {
            format!("{rel}/")
        } else if kind.is_symlink() {
            let target = fs::read_link(entry.path()).unwrap();
            format!("{rel} -> {}", target.display())
        } else {
            let data = fs::read(entry.path()).unwrap();
            format!("{rel} = {}", String::from_utf8_lossy(&data).trim_end())
        }
    })
}

fn lines(entries: &[&str]) -> Vec<String> {
    entries.iter().map(|line| line.to_string()).collect()
}

/// `src` with `f.txt` and `sub/g.txt` copied to `dst`, then both changed
/// in `src`: a run with `-b` has two old versions to keep.
fn two_versions(env: &TestEnv) {
    env.write("src/f.txt", "f1");
    env.write("src/sub/g.txt", "g1");
    assert_status(&env.run(["src/", "dst"]), 0);
    env.write("src/f.txt", "f2, longer");
    env.write("src/sub/g.txt", "g2, longer");
}

/// A directory outside DST holding something, and its snapshot.
fn outside(env: &TestEnv) -> Vec<String> {
    env.write("outside/precious.txt", "precious");
    snapshot(&env.path("outside"))
}

both_kinds! {
    fn delete_spares_what_other_sources_copied(env: TestEnv) {
        env.write("src/a.txt", "a\n");
        env.write("src/other/from-src.txt", "from src\n");
        env.write("src/sub/s.txt", "s\n");
        env.write("other/o.txt", "o\n");
        env.write("file.txt", "single file\n");
        env.write("dst/extra.txt", "extraneous\n");
        env.write("dst/other/stale.txt", "extraneous too\n");
        env.write("dst/sub/stale.txt", "extraneous too\n");
        let sources = ["src/", "other", "file.txt"];
        let output = env.run(["-a", "--delete"].iter().chain(&sources).chain(&["dst"]));
        assert_status(&output, 0);
        assert_status(&env.run(["-a"].iter().chain(&sources).chain(&["expected"])), 0);
        assert_same_tree(&env.path("expected"), &env.path("dst"));
        // A rerun finds nothing to delete either.
        let output = env.run(["-a", "--delete", "-v"].iter().chain(&sources).chain(&["dst"]));
        assert_status(&output, 0);
        assert!(!String::from_utf8_lossy(&output.stdout).contains("deleting"), "{}", describe(&output));
        assert_same_tree(&env.path("expected"), &env.path("dst"));
    }

    fn delete_leaves_the_way_to_a_relative_source_alone(env: TestEnv) {
        env.write("src/top.txt", "top\n");
        env.write("deep/er/leaf/l.txt", "leaf\n");
        env.write("dst/extra.txt", "extraneous\n");
        env.write("dst/deep/beside.txt", "in an implied directory: kept (rsync too)\n");
        env.write("dst/deep/er/leaf/stale.txt", "extraneous\n");
        let sources = ["src/./", "deep/er/leaf"];
        let output = env.run(["-a", "-R", "--delete"].iter().chain(&sources).chain(&["dst"]));
        assert_status(&output, 0);
        // The kept file first: the copy then gives `deep` its source's times.
        env.mkdir("expected/deep");
        assert_status(&env.run(["-a", "dst/deep/beside.txt", "expected/deep/"]), 0);
        assert_status(&env.run(["-a", "-R"].iter().chain(&sources).chain(&["expected"])), 0);
        assert_same_tree(&env.path("expected"), &env.path("dst"));
    }

    fn every_type_change_keeps_the_old_entry_under_its_backup_name(env: TestEnv) {
        // What DST held, each replaced by an entry of another type.
        let old = |env: &TestEnv, dst: &str| {
            env.write(format!("{dst}/file-to-dir"), "old file");
            env.symlink("old-target", format!("{dst}/link-to-dir"));
            env.write(format!("{dst}/dir-to-file/inside.txt"), "old inside");
            env.symlink("old-target", format!("{dst}/link-to-file"));
            env.write(format!("{dst}/file-to-link"), "old file");
            env.write(format!("{dst}/sub/file-to-dir"), "old deep file");
        };
        env.write("src/file-to-dir/new.txt", "new");
        env.write("src/link-to-dir/new.txt", "new");
        env.write("src/dir-to-file", "new file");
        env.write("src/link-to-file", "new file");
        env.symlink("new-target", "src/file-to-link");
        env.write("src/sub/file-to-dir/new.txt", "new");
        old(&env, "dst");
        assert_status(&env.run(["-a", "-b", "--force", "src/", "dst"]), 0);
        let new = [
            "dir-to-file = new file", "file-to-dir/", "file-to-dir/new.txt = new", "file-to-link -> new-target",
            "link-to-dir/", "link-to-dir/new.txt = new", "link-to-file = new file", "sub/", "sub/file-to-dir/",
            "sub/file-to-dir/new.txt = new",
        ];
        let beside = [
            "dir-to-file~/", "dir-to-file~/inside.txt = old inside", "file-to-dir~ = old file",
            "file-to-link~ = old file", "link-to-dir~ -> old-target", "link-to-file~ -> old-target",
            "sub/file-to-dir~ = old deep file",
        ];
        let mut expected = lines(&new);
        expected.extend(lines(&beside));
        expected.sort();
        assert_eq!(contents(&env.path("dst")), expected);
        // Without --force (nor --delete) a full directory in the way of a
        // file stays, -b or not, as with rsync.
        fs::remove_file(env.path("dst/dir-to-file")).unwrap();
        env.write("dst/dir-to-file/inside.txt", "stays");
        env.write("src/dir-to-file", "newer file");
        let output = env.run(["-a", "-b", "src/", "dst"]);
        assert_status(&output, 23);
        assert!(normalized_stderr(&output).contains("destination is a non-empty directory"), "{}", describe(&output));
        assert_eq!(fs::read_to_string(env.path("dst/dir-to-file/inside.txt")).unwrap(), "stays");
        assert_eq!(fs::read_to_string(env.path("dst/dir-to-file~/inside.txt")).unwrap(), "old inside");
        env.write("src/dir-to-file", "new file");
        // The same below a --backup-dir, with --delete making the way.
        old(&env, "mirror");
        assert_status(&env.run(["-a", "--backup-dir=../old", "--delete", "src/", "mirror"]), 0);
        assert_eq!(contents(&env.path("mirror")), lines(&new));
        assert_eq!(contents(&env.path("old")), lines(&[
            "dir-to-file/", "dir-to-file/inside.txt = old inside", "file-to-dir = old file", "file-to-link = old file",
            "link-to-dir -> old-target", "link-to-file -> old-target", "sub/", "sub/file-to-dir = old deep file",
        ]));
    }

    fn delete_spares_earlier_backups_wherever_they_are(env: TestEnv) {
        env.write("src/f.txt", "f1");
        env.write("src/gone/x.txt", "x1");
        env.write("src/kept~/k.txt", "k1");
        assert_status(&env.run(["src/", "dst"]), 0);
        env.write("dst/kept~/stale.txt", "stale");
        env.write("src/f.txt", "f2, longer");
        fs::remove_dir_all(env.path("src/gone")).unwrap();
        let expected = lines(&[
            "f.txt = f2, longer", "f.txt~ = f1", "gone/", "gone/x.txt~ = x1", "kept~/", "kept~/k.txt = k1",
            "kept~/stale.txt~ = stale",
        ]);
        assert_status(&env.run(["-b", "--delete", "src/", "dst"]), 0);
        // A directory the sources have is gone through even when its name
        // ends in the suffix; the gone directory stays, holding a backup.
        assert_eq!(contents(&env.path("dst")), expected);
        // A rerun neither deletes nor backs up again what is a backup.
        for _ in 0..2 {
            let output = env.run(["-b", "--delete", "-v", "src/", "dst"]);
            assert_status(&output, 0);
            assert!(!String::from_utf8_lossy(&output.stdout).contains("deleting"), "{}", describe(&output));
            assert_eq!(contents(&env.path("dst")), expected);
        }
    }

    fn a_protected_directory_the_sources_have_is_still_cleaned(env: TestEnv) {
        env.write("src/prot/a.txt", "a");
        env.write("dst/prot/stale.txt", "stale");
        env.write("dst/other/kept.txt", "protected by its directory");
        let output = env.run(["--delete", "--filter=P prot/", "--filter=P other/", "src/", "dst"]);
        assert_status(&output, 0);
        assert_eq!(contents(&env.path("dst")), lines(&[
            "other/", "other/kept.txt = protected by its directory", "prot/", "prot/a.txt = a",
        ]));
    }

    fn delete_excluded_never_removes_the_backup_dir(env: TestEnv) {
        two_versions(&env);
        env.write("src/skip.log", "excluded");
        env.write("dst/skip.log", "excluded");
        env.write("dst/old/extra.txt", "extraneous beside the backup dir");
        let args = ["--backup-dir=old/bak", "--delete", "--delete-excluded", "--exclude=*.log", "src/", "dst"];
        assert_status(&env.run(args), 0);
        let expected = lines(&[
            "f.txt = f2, longer", "old/", "old/bak/", "old/bak/f.txt = f1", "old/bak/skip.log = excluded",
            "old/bak/sub/", "old/bak/sub/g.txt = g1", "old/extra.txt = extraneous beside the backup dir", "sub/",
            "sub/g.txt = g2, longer",
        ]);
        assert_eq!(contents(&env.path("dst")), expected);
        assert_status(&env.run(args), 0);
        assert_eq!(contents(&env.path("dst")), expected);
    }

    fn delete_knows_the_backup_dir_however_it_is_spelled(env: TestEnv) {
        env.symlink("dst", "link-to-dst");
        let dst = arg(&env.path("dst"));
        let through_link = arg(&env.path("link-to-dst"));
        let spellings = [
            "x/../bak".to_string(),
            ".//bak/".to_string(),
            format!("{dst}/bak"),
            format!("{dst}//./bak/"),
            format!("{through_link}/bak"),
        ];
        for (run, spelling) in spellings.iter().enumerate() {
            env.write("src/f.txt", format!("version {run}"));
            let flag = format!("--backup-dir={spelling}");
            let output = env.run([flag.as_str(), "--delete", "src/", "dst"]);
            assert_status(&output, 0);
            assert!(!String::from_utf8_lossy(&output.stdout).contains("bak"), "{flag}: {}", describe(&output));
            // The backup directory is made before the copy, empty at first.
            let mut expected = vec!["bak/".to_string(), format!("f.txt = version {run}")];
            if run > 0 {
                expected.push(format!("bak/f.txt = version {}", run - 1));
            }
            expected.sort();
            assert_eq!(contents(&env.path("dst")), expected, "{flag}");
        }
    }

    fn a_backup_dir_holding_dst_is_refused(env: TestEnv) {
        env.write("src/dst/f.txt", "would be backed up over DST's own f.txt");
        env.write("src/f.txt", "new");
        env.write("top/dst/f.txt", "old");
        env.symlink("top", "link-to-top");
        let before = snapshot(env.root());
        let top = arg(&env.path("top"));
        let through_link = arg(&env.path("link-to-top"));
        for flag in ["--backup-dir=..".to_string(), format!("--backup-dir={top}"), format!("--backup-dir={through_link}/")] {
            let output = env.run([flag.as_str(), "--delete", "src/", "top/dst"]);
            assert_status(&output, 3);
            let stderr = normalized_stderr(&output);
            assert!(stderr.contains("--backup-dir holds the destination directory"), "{flag}: {stderr}");
            assert_unchanged(&before, env.root(), &flag);
        }
    }

    fn a_backup_dir_through_a_link_inside_dst_is_refused(env: TestEnv) {
        two_versions(&env);
        let before = outside(&env);
        env.symlink("../outside", "dst/bak");
        env.mkdir("dst/vers");
        env.symlink("../../outside", "dst/vers/1");
        let dst_before = snapshot(&env.path("dst"));
        let absolute = format!("--backup-dir={}/bak", arg(&env.path("dst")));
        for flag in ["--backup-dir=bak", "--backup-dir=./bak/new", &absolute, "--backup-dir=vers/1/x"] {
            let output = env.run([flag, "src/", "dst"]);
            assert_status(&output, 3);
            let stderr = normalized_stderr(&output);
            assert!(stderr.contains("not a directory: --backup-dir is never followed out of DST"), "{flag}: {stderr}");
            assert_unchanged(&before, &env.path("outside"), flag);
            assert_unchanged(&dst_before, &env.path("dst"), flag);
        }
    }

    fn a_link_below_the_backup_dir_is_never_followed(env: TestEnv) {
        two_versions(&env);
        let before = outside(&env);
        env.mkdir("dst/bak");
        env.symlink("../../outside", "dst/bak/sub");
        let output = env.run(["--backup-dir=bak", "src/", "dst"]);
        // The file whose backup cannot be made is not replaced.
        assert_status(&output, 23);
        assert_unchanged(&before, &env.path("outside"), "after the run");
        assert_eq!(contents(&env.path("dst")), lines(&[
            "bak/", "bak/f.txt = f1", "bak/sub -> ../../outside", "f.txt = f2, longer", "sub/", "sub/g.txt = g1",
        ]));
    }

    fn a_backup_dir_that_becomes_a_link_is_not_followed_by_delete(env: TestEnv) {
        if !hook_available() {
            return;
        }
        two_versions(&env);
        env.write("dst/gone.txt", "extraneous");
        let before = outside(&env);
        env.mkdir("dst/bak");
        let mut gate = Gate::new(env.root(), "open", "f.txt");
        let (key, value) = gate.env();
        let args = ["--backup-dir=bak", "--delete", "-j1", "src/", "dst"];
        let child = Guarded::spawn(env.pcopy().args(args).env(key, value).stderr(Stdio::piped()).stdout(Stdio::piped()));
        gate.wait_reached();
        // The backup directory becomes a link out of DST once the
        // workers hold it open.
        fs::rename(env.path("dst/bak"), env.path("dst/bak-real")).unwrap();
        env.symlink("../outside", "dst/bak");
        gate.release();
        let output = child.wait();
        assert_status(&output, 23);
        assert!(normalized_stderr(&output).contains("cannot open backup directory"), "{}", describe(&output));
        assert_unchanged(&before, &env.path("outside"), "after the run");
        assert_eq!(contents(&env.path("dst")), lines(&[
            "bak -> ../outside", "bak-real/", "bak-real/f.txt = f1", "bak-real/sub/", "bak-real/sub/g.txt = g1",
            "f.txt = f2, longer", "gone.txt = extraneous", "sub/", "sub/g.txt = g2, longer",
        ]));
    }
}
