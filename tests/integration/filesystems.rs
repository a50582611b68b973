//! pcopy onto each filesystem the tests can mount: a tree copied onto a
//! fresh tmpfs, ext4, casefolded ext4 directory, xfs, btrfs or exfat equals
//! its source as far as that filesystem can hold it, and a rerun copies
//! nothing. Where a filesystem cannot be mounted here, its test says why
//! it is skipped.

use std::ffi::OsStr;
use std::path::Path;

use crate::testenv::{
    Detail, Fs, Mounted, TestEnv, assert_listings_equal, assert_status, assert_unchanged, json_of,
    listing_with, set_mtime, skipped, snapshot,
};

both_kinds! {
    fn a_tree_copied_onto_tmpfs_is_exact(env: TestEnv) {
        copy_onto(&env, Fs::Tmpfs);
    }

    fn a_tree_copied_onto_ext4_is_exact(env: TestEnv) {
        copy_onto(&env, Fs::Ext4);
    }

    fn a_tree_copied_into_a_casefolded_ext4_directory_is_exact(env: TestEnv) {
        copy_onto(&env, Fs::Ext4Casefold);
    }

    fn a_tree_copied_onto_xfs_is_exact(env: TestEnv) {
        copy_onto(&env, Fs::Xfs);
    }

    fn a_tree_copied_onto_btrfs_is_exact(env: TestEnv) {
        copy_onto(&env, Fs::Btrfs);
    }

    fn a_tree_copied_onto_exfat_keeps_names_contents_and_times(env: TestEnv) {
        copy_onto(&env, Fs::Exfat);
    }
}

/// Mounts `fs`, copies the source tree onto it, compares, and reruns.
fn copy_onto(env: &TestEnv, fs: Fs) {
    env.mkdir("mnt");
    let mounted = match Mounted::new(fs, &env.path("mnt")) {
        Ok(mounted) => mounted,
        Err(why) => return skipped(why),
    };
    let (files, detail) = source_tree(env, fs);
    let dst = mounted.dir().join("copy");
    let args = [OsStr::new("src/"), dst.as_os_str()];
    assert_status(&env.run(args), 0);
    let src = env.path("src");
    assert_listings_equal(&listing_with(&src, detail), &listing_with(&dst, detail));
    if fs == Fs::Ext4Casefold {
        assert!(dst.join("TOP.TXT").is_file(), "the copy is not casefolded");
    }
    let before = snapshot(&dst);
    let again = env.run([OsStr::new("--json")].into_iter().chain(args));
    assert_status(&again, 0);
    let summary = json_of(&again);
    assert_eq!(summary["files_copied"], 0, "{summary}");
    assert_eq!(summary["files_skipped"], files, "{summary}");
    if fs.is_unix() {
        assert_unchanged(&before, &dst, "by a rerun");
    }
    eprintln!("{} workers: copied onto {}", env.kind, fs.name());
}

/// The sample tree at `src`, or what `fs` can hold of it, with its
/// number of files and what a listing of the copy can show.
fn source_tree(env: &TestEnv, fs: Fs) -> (u64, Detail) {
    env.sample_tree("src");
    if fs.is_unix() {
        return (9, Detail::Copy);
    }
    // No symlinks; times kept in steps of 2 s, so the rerun's quick check
    // sees equal times; modes are not kept, so listings show contents.
    for link in ["src/link", "src/dangling"] {
        std::fs::remove_file(env.path(link)).unwrap();
    }
    set_times_below(&env.path("src"), 1_600_000_000);
    (7, Detail::Contents)
}

/// Sets the mtime of every entry below `root`, and of `root`, to `secs`.
fn set_times_below(root: &Path, secs: i64) {
    for entry in walkdir::WalkDir::new(root) {
        set_mtime(entry.unwrap().path(), secs, 0);
    }
}
