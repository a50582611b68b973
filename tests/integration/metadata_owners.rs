//! Owners and groups: the parts of `-a` that `--no-owner` and
//! `--no-group` turn off, and `--chown`, compared over whole trees.

use std::os::unix::fs::{MetadataExt, lchown};
use std::path::Path;

use crate::testenv::{
    Detail, NOBODY, TestEnv, assert_status, is_root, lines_of_tree, listing_with,
};

const UID: u32 = 12345;
const GID: u32 = 12346;

/// A tree owned by UID:GID throughout: a setuid and setgid program, a
/// plain file, a directory with a file, a symlink. `false` (with the
/// reason printed) when this user cannot give files away.
fn owned_tree(env: &TestEnv) -> bool {
    if !is_root("give files away") {
        return false;
    }
    env.write("src/run", "#!/bin/sh\n");
    env.write("src/plain", "plain\n");
    env.write("src/d/f", "f\n");
    env.symlink("plain", "src/link");
    env.chmod("src/run", 0o6755);
    env.chmod("src/d", 0o750);
    for rel in [
        "src/run",
        "src/plain",
        "src/d/f",
        "src/d",
        "src/link",
        "src",
    ] {
        lchown(env.path(rel), Some(UID), Some(GID)).unwrap();
    }
    true
}

/// Each entry's path, owner, group and mode (none for a symlink).
fn ids(root: &Path) -> Vec<String> {
    lines_of_tree(root, true, |rel, entry| {
        let meta = entry.metadata().unwrap();
        let mode = match meta.file_type().is_symlink() {
            true => String::new(),
            false => format!(" {:o}", meta.mode() & 0o7777),
        };
        format!("{rel} {}:{}{mode}", meta.uid(), meta.gid())
    })
}

/// The lines of `ids` expected of a copy of `src` whose owners are
/// `uid` and whose groups are `gid`; setuid and setgid are dropped from
/// files unless both were set (`both`).
fn expected(env: &TestEnv, uid: u32, gid: u32, both: bool) -> Vec<String> {
    ids(&env.path("src"))
        .into_iter()
        .map(|line| {
            let line = line.replace(&format!("{UID}:{GID}"), &format!("{uid}:{gid}"));
            match both {
                true => line,
                false => line.replace(" 6755", " 755"),
            }
        })
        .collect()
}

/// The user and group this test runs as.
fn me(env: &TestEnv) -> (u32, u32) {
    env.write("mine", "");
    let meta = std::fs::metadata(env.path("mine")).unwrap();
    (meta.uid(), meta.gid())
}

/// Runs pcopy with `flags` from `src/` to `dst`, then checks the whole
/// tree's ids and contents, and that a rerun finds nothing to change.
fn copy_and_check(env: &TestEnv, flags: &[&str], (uid, gid): (u32, u32), both: bool) {
    let mut args = flags.to_vec();
    args.extend(["src/", "dst"]);
    assert_status(&env.run(&args), 0);
    let want = expected(env, uid, gid, both);
    assert_eq!(ids(&env.path("dst")), want, "{flags:?}");
    assert_eq!(
        listing_with(&env.path("dst"), Detail::Contents),
        listing_with(&env.path("src"), Detail::Contents)
    );
    let mut again = vec!["-i"];
    again.extend(&args);
    let rerun = env.run(&again);
    assert_status(&rerun, 0);
    assert_eq!(String::from_utf8_lossy(&rerun.stdout), "", "{flags:?}");
}

both_kinds! {
    fn no_owner_and_no_group_turn_off_those_parts_of_archive(env: TestEnv) {
        if !owned_tree(&env) {
            return;
        }
        let (my_uid, my_gid) = me(&env);
        copy_and_check(&env, &["-a"], (UID, GID), true);
        std::fs::remove_dir_all(env.path("dst")).unwrap();
        copy_and_check(&env, &["-a", "--no-owner"], (my_uid, GID), false);
        std::fs::remove_dir_all(env.path("dst")).unwrap();
        copy_and_check(&env, &["-a", "--no-group"], (UID, my_gid), false);
        std::fs::remove_dir_all(env.path("dst")).unwrap();
        let neither = ["-a", "--no-owner", "--no-group", "--numeric-ids"];
        copy_and_check(&env, &neither, (my_uid, my_gid), false);
        // -a over that tree gives every up-to-date entry its owner, group
        // and setuid back.
        copy_and_check(&env, &["-a"], (UID, GID), true);
    }

    fn chown_gives_every_copy_its_owner_and_group(env: TestEnv) {
        if !owned_tree(&env) {
            return;
        }
        let (my_uid, my_gid) = me(&env);
        copy_and_check(&env, &["--chown=23456:23457"], (23456, 23457), true);
        std::fs::remove_dir_all(env.path("dst")).unwrap();
        copy_and_check(&env, &["--chown", ":23457"], (my_uid, 23457), false);
        // Over the same tree: up-to-date entries get the new ids.
        copy_and_check(&env, &["-a", "--chown=nobody"], (NOBODY, GID), true);
        copy_and_check(&env, &["-a", "--chown=root:"], (0, GID), true);
        std::fs::remove_dir_all(env.path("dst")).unwrap();
        copy_and_check(&env, &["--chown=23456"], (23456, my_gid), false);
    }

    fn a_bad_chown_is_a_usage_error_before_anything_is_written(env: TestEnv) {
        env.write("src/f", "f\n");
        for bad in ["", ":", "no-such-user-here", "0:no-such-group-here", "12x:0"] {
            let output = env.run([&format!("--chown={bad}"), "src/", "dst"]);
            assert_status(&output, 1);
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(stderr.contains("--chown"), "{bad}: {stderr}");
            assert!(!env.path("dst").exists(), "{bad}");
        }
    }
}
