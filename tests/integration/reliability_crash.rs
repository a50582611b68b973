//! Crash consistency: pcopy killed with SIGKILL (all of its processes at
//! once) at many moments while it copies one version of a tree over
//! another. At every kill each destination name holds a whole old or a
//! whole new version, contents and metadata alike; a rerun converges to an
//! exact copy and leaves no temp file.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::testenv::{
    Gate, Guarded, Rng, TestEnv, assert_same_tree, assert_status, group_members, hook_available,
    set_mtime, temp_files, unnamed_files,
};

/// Fixed, so a failing kill schedule can be replayed.
const SEED: u64 = 0x5eed_c0de_2024;
/// Kills that must land while pcopy is still running.
const KILLS: usize = 22;
/// Runs at most, counting the ones that finished before their kill.
const MAX_RUNS: usize = 80;

/// What a destination name may hold: a file's bytes, mode and mtime, or a
/// symlink's target and mtime.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Version {
    File {
        data: Vec<u8>,
        mode: u32,
        mtime: (i64, i64),
    },
    Link {
        target: PathBuf,
        mtime: (i64, i64),
    },
}

/// The two versions of each path: `old` is `None` for paths new in `new`.
#[derive(Debug, Default)]
struct Versions {
    by_path: BTreeMap<PathBuf, (Option<Version>, Version)>,
    small_files: usize,
}

fn version_of(path: &Path) -> Version {
    let meta = fs::symlink_metadata(path).unwrap();
    let mtime = (meta.mtime(), meta.mtime_nsec());
    if meta.is_symlink() {
        Version::Link {
            target: fs::read_link(path).unwrap(),
            mtime,
        }
    } else {
        Version::File {
            data: fs::read(path).unwrap(),
            mode: meta.mode() & 0o7777,
            mtime,
        }
    }
}

/// Builds `old` and `new`: the same nested paths with other contents,
/// modes and times, a few paths only in `new`, and large files of 1-4 MiB
/// so kills land in the middle of a file's data.
fn build_versions(env: &TestEnv, rng: &mut Rng) -> Versions {
    let mut versions = Versions::default();
    let mut paths: Vec<(String, u64)> = Vec::new();
    for i in 0..160 {
        let size = match i % 5 {
            0 => 0,
            1 => rng.range(1, 64),
            _ => rng.range(64, 32 << 10),
        };
        paths.push((format!("d{}/s{}/small-{i:03}.txt", i % 6, i % 3), size));
    }
    versions.small_files = paths.len();
    for i in 0..7 {
        paths.push((
            format!("d{}/large-{i}.bin", i % 3),
            rng.range(1 << 20, 4 << 20),
        ));
    }
    for (tree, is_new) in [("old", false), ("new", true)] {
        for (i, (rel, size)) in paths.iter().enumerate() {
            if !is_new && i % 17 == 3 {
                continue; // only in the new version
            }
            let len = if is_new {
                *size as usize + i % 7
            } else {
                *size as usize
            };
            let path = env.path(tree).join(rel);
            env.write(&path, rng.bytes(len));
            let mode = if is_new && i % 2 == 0 { 0o640 } else { 0o644 };
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            set_mtime(
                &path,
                1_500_000_000 + i as i64 + if is_new { 10_000 } else { 0 },
                123,
            );
        }
        for i in 0..5 {
            let link = env.path(tree).join(format!("d{i}/link-{i}"));
            std::os::unix::fs::symlink(format!("{tree}-target-{i}"), &link).unwrap();
            set_mtime(&link, 1_400_000_000 + i + if is_new { 7 } else { 0 }, 9);
        }
    }
    for entry in walkdir::WalkDir::new(env.path("new")) {
        let entry = entry.unwrap();
        if entry.file_type().is_dir() {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(env.path("new"))
            .unwrap()
            .to_path_buf();
        let old_path = env.path("old").join(&rel);
        let old = fs::symlink_metadata(&old_path)
            .is_ok()
            .then(|| version_of(&old_path));
        versions
            .by_path
            .insert(rel, (old, version_of(entry.path())));
    }
    versions
}

/// The names in `dst` that break the invariant at a kill: each final name
/// holds exactly the old or the new version of its path, and every old
/// path still has a name.
fn names_neither_old_nor_new(dst: &Path, versions: &Versions) -> Vec<PathBuf> {
    let mut bad = Vec::new();
    for (rel, (old, new)) in &versions.by_path {
        let path = dst.join(rel);
        let found = fs::symlink_metadata(&path)
            .is_ok()
            .then(|| version_of(&path));
        let whole = match &found {
            Some(found) => found == new || old.as_ref() == Some(found),
            None => old.is_none(),
        };
        if !whole {
            bad.push(rel.clone());
        }
    }
    for entry in walkdir::WalkDir::new(dst) {
        let entry = entry.unwrap();
        let name = entry.file_name().as_encoded_bytes();
        let rel = entry.path().strip_prefix(dst).unwrap();
        let temp = name.starts_with(b".pcopy-tmp.");
        if !entry.file_type().is_dir() && !temp && !versions.by_path.contains_key(rel) {
            bad.push(rel.to_path_buf());
        }
    }
    bad
}

fn assert_each_name_is_old_or_new(dst: &Path, versions: &Versions, run: usize) {
    let bad = names_neither_old_nor_new(dst, versions);
    assert!(
        bad.is_empty(),
        "after kill {run}, neither whole old nor whole new: {bad:?}"
    );
}

/// How a run with a kill ended.
#[derive(Debug, PartialEq, Eq)]
enum Killed {
    /// The run had finished, successfully, before the kill.
    TooLate,
    /// Killed while running.
    Running,
    /// Killed while a process held a new file that had no name yet.
    MidFile,
}

/// Whether a process of the group holds a file in `dst` that has no name
/// (an `O_TMPFILE` being filled). A diagnostic only: the moment is racy.
fn holds_unnamed_file(pgid: u32, dst: &Path) -> bool {
    group_members(pgid)
        .into_iter()
        .any(|pid| !unnamed_files(pid, dst).is_empty())
}

/// Runs pcopy in its own process group and kills the whole group after the
/// `k`-th file it lists.
fn run_and_kill_after(env: &TestEnv, source: &str, k: usize) -> Killed {
    let mut child = Guarded::spawn(
        env.pcopy()
            .args(["-v", "-j", "2", source, "dst"])
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let mut stdout = BufReader::new(child.child().stdout.take().unwrap());
    let mut line = String::new();
    for _ in 0..k {
        line.clear();
        if stdout.read_line(&mut line).unwrap() == 0 {
            // It finished first: then it must have succeeded.
            assert_eq!(child.wait().status.code(), Some(0));
            return Killed::TooLate;
        }
    }
    let mid_file = holds_unnamed_file(child.id(), &env.path("dst"));
    let status = child.kill_group();
    match (status.signal(), mid_file) {
        (Some(libc::SIGKILL), true) => Killed::MidFile,
        (Some(libc::SIGKILL), false) => Killed::Running,
        _ => Killed::TooLate,
    }
}

/// Kills the whole run while a worker is stopped at the test hook with the
/// new data file of a large file open: the kill lands mid-file for sure.
fn run_and_kill_mid_file(env: &TestEnv, versions: &Versions, large: &str, round: usize) {
    let gate_dir = env.path(format!("gate-{round}"));
    fs::create_dir(&gate_dir).unwrap();
    let mut gate = Gate::new(&gate_dir, "data", large);
    let (key, value) = gate.env();
    // The version the destination does not hold yet, so the file is copied.
    let (_, new) = &versions.by_path[Path::new(large)];
    let holds_new = version_of(&env.path("dst").join(large)) == *new;
    let source = if holds_new { "old/" } else { "new/" };
    let child = Guarded::spawn(
        env.pcopy()
            .args(["-j", "2", source, "dst"])
            .env(key, value)
            .process_group(0)
            .stderr(Stdio::null()),
    );
    gate.wait_reached();
    let status = child.kill_group();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
}

/// Names in `dst` that do not hold the `new` (or else the old) version yet:
/// the files a run from that version will copy.
fn still_to_copy(dst: &Path, versions: &Versions, new: bool) -> usize {
    // Every version has its own mtime, so the mtime tells them apart.
    let mtime = |version: &Version| match version {
        Version::File { mtime, .. } | Version::Link { mtime, .. } => *mtime,
    };
    let differs = |(rel, (old, latest)): (&PathBuf, &(Option<Version>, Version))| {
        let want = if new { Some(latest) } else { old.as_ref() };
        let found = fs::symlink_metadata(dst.join(rel)).map(|m| (m.mtime(), m.mtime_nsec()));
        want.is_some_and(|want| found.ok() != Some(mtime(want)))
    };
    versions
        .by_path
        .iter()
        .filter(|entry| differs(*entry))
        .count()
}

fn crash_and_converge(env: TestEnv) {
    if !hook_available() {
        return;
    }
    let mut rng = Rng::new(SEED ^ env.kind.len() as u64);
    let versions = build_versions(&env, &mut rng);
    assert_status(&env.run(["old/", "dst"]), 0);
    assert_same_tree(&env.path("old"), &env.path("dst"));
    // Copy the new version over the old one, killing each run after a
    // random number of listed files; once a run gets through, go back.
    let mut towards_new = true;
    let (mut kills, mut mid_file, mut runs) = (0, 0, 0);
    while kills < KILLS {
        assert!(
            runs < MAX_RUNS,
            "only {kills} of {runs} kills landed during a run"
        );
        let left = still_to_copy(&env.path("dst"), &versions, towards_new) as u64;
        let k = rng.range(1, left.max(2)) as usize;
        let source = if towards_new { "new/" } else { "old/" };
        match run_and_kill_after(&env, source, k) {
            Killed::TooLate => towards_new = !towards_new,
            Killed::Running => kills += 1,
            Killed::MidFile => (kills, mid_file) = (kills + 1, mid_file + 1),
        }
        runs += 1;
        assert_each_name_is_old_or_new(&env.path("dst"), &versions, runs);
    }
    for (round, large) in ["d0/large-0.bin", "d1/large-4.bin"].into_iter().enumerate() {
        run_and_kill_mid_file(&env, &versions, large, round);
        assert_each_name_is_old_or_new(&env.path("dst"), &versions, runs + round);
    }
    let output = env.run(["new/", "dst"]);
    assert_status(&output, 0);
    assert_same_tree(&env.path("new"), &env.path("dst"));
    assert_eq!(temp_files(&env.path("dst")), Vec::<PathBuf>::new());
    // The check itself catches a torn file.
    let torn = env.path("dst/d0/large-0.bin");
    fs::OpenOptions::new()
        .write(true)
        .open(&torn)
        .unwrap()
        .set_len(1000)
        .unwrap();
    let bad = names_neither_old_nor_new(&env.path("dst"), &versions);
    assert_eq!(bad, [PathBuf::from("d0/large-0.bin")]);
    eprintln!(
        "{} workers: {kills} kills in {runs} runs ({mid_file} seen mid-file), then converged",
        env.kind
    );
}

both_kinds! {
    fn every_name_is_whole_old_or_whole_new_at_each_kill_and_a_rerun_converges(env: TestEnv) {
        crash_and_converge(env);
    }
}
