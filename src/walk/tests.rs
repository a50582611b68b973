//! Walker tests: which jobs a walk queues, and what it knows of them.

use std::fs;
use std::sync::mpsc;

use rustix::fs::{Mode, OFlags};

use super::*;
use crate::job::CopyOptions;
use crate::plan::Root;

/// What a walk queued, by destination path, and the bytes it counted.
struct Walked {
    jobs: Vec<FileJob>,
    bytes: u64,
}

impl Walked {
    fn jobs_for(&self, rel: &str) -> Vec<&FileJob> {
        self.jobs.iter().filter(|job| job.rel_dst == rel).collect()
    }

    /// The one job for `rel`, which is not split.
    fn job(&self, rel: &str) -> &FileJob {
        let jobs = self.jobs_for(rel);
        assert_eq!(jobs.len(), 1, "jobs for {rel}: {jobs:?}");
        jobs[0]
    }
}

/// Walks `src` into the existing directory `dst` (`dst_new`: made by this
/// run) with two workers, splitting files from `split_min` bytes on.
fn walk_into(src: &Path, dst: &Path, dst_new: bool, split_min: u64) -> Walked {
    let manager = procpool::Manager::new().expect("manager");
    let (events, walked) = mpsc::channel();
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let dst_root = rustix::fs::open(dst, flags, Mode::empty()).expect("open dst");
    let setup = WalkSetup {
        dereference: false,
        dry_run: false,
        archive: false,
        acls: false,
        owners: Default::default(),
        filter: None,
        shard: None,
        splitter: Splitter::new(Some(split_min), 2, &CopyOptions::default()),
        temp_tag: String::new(),
        itemize: false,
        existing: false,
        chmod: Default::default(),
        one_file_system: 0,
    };
    let start = WalkStart {
        roots: vec![Root {
            src: src.to_path_buf(),
            rel_dst: OsString::new(),
            is_dir: true,
        }],
        dst_root: Some(dst_root),
        dst_root_new: dst_new,
        case_insensitive: false,
        jobs: manager.queue(0).expect("jobs queue"),
        wake: manager.queue(0).expect("wake queue"),
    };
    walk(WalkTask {
        setup,
        start,
        events,
        stop: Arc::new(AtomicBool::new(false)),
    });
    let mut out = Walked {
        jobs: Vec::new(),
        bytes: 0,
    };
    for event in walked.try_iter() {
        if let WalkEvent::Queued { jobs, bytes } = event {
            out.jobs.extend(jobs);
            out.bytes += bytes;
        }
    }
    out
}

fn write(path: &Path, len: usize) {
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(path, vec![b'x'; len]).expect("write");
}

/// A temp dir holding `src/` and `dst/` (both made), and in them files of
/// the given paths and sizes.
fn trees(files: &[(&str, usize)]) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    for dir in [&src, &dst] {
        fs::create_dir_all(dir).expect("mkdir");
    }
    for &(rel, len) in files {
        write(&tmp.path().join(rel), len);
    }
    (tmp, src, dst)
}

#[test]
fn names_already_in_the_destination_are_stat_ed_by_the_worker() {
    let (_tmp, src, dst) = trees(&[
        ("src/d/old", 5),
        ("src/d/new", 7),
        ("src/top", 3),
        ("dst/d/old", 1),
    ]);
    let stale = dst.join(format!("d/{}123.4", crate::copy::TEMP_PREFIX));
    write(&stale, 1);

    let walked = walk_into(&src, &dst, false, 1 << 30);
    assert_eq!(walked.job("d/old").meta, None, "the worker compares it");
    assert_eq!(walked.job("d/new").meta.map(|m| m.size), Some(7));
    assert_eq!(walked.job("top").meta.map(|m| m.size), Some(3));
    assert_eq!(walked.bytes, 10, "only the sizes the walker knows");
    assert!(!stale.exists(), "the listing also removes stale temps");
}

#[test]
fn a_new_destination_has_every_entry_stat_ed_by_the_walker() {
    let (_tmp, src, dst) = trees(&[("src/d/a", 5), ("src/b", 2)]);

    let walked = walk_into(&src, &dst, true, 1 << 30);
    assert_eq!(walked.job("d/a").meta.map(|m| m.size), Some(5));
    assert_eq!(walked.job("b").meta.map(|m| m.size), Some(2));
    assert_eq!(walked.bytes, 7);
}

#[test]
fn a_new_large_file_in_an_existing_directory_is_still_split() {
    let (_tmp, src, dst) = trees(&[
        ("src/d/big", 3 << 20),
        ("src/d/changed", 3 << 20),
        ("dst/d/changed", 1),
    ]);

    let walked = walk_into(&src, &dst, false, 1 << 20);
    let parts = walked.jobs_for("d/big");
    assert!(parts.len() > 1, "{parts:?}");
    assert!(parts.iter().all(|part| part.range.is_some()));
    // Something is at the name: the worker decides, and copies it whole.
    let changed = walked.job("d/changed");
    assert_eq!((changed.meta, &changed.range), (None, &None));
    assert_eq!(walked.bytes, 3 << 20);
}

#[test]
fn destination_paths_join_components_with_single_slashes() {
    let root = Path::new("src/");
    assert_eq!(rel_dst(OsStr::new(""), Path::new("src/a/b"), root), "a/b");
    assert_eq!(
        rel_dst(OsStr::new("src"), Path::new("src/a"), Path::new("src")),
        "src/a"
    );
    assert_eq!(
        rel_dst(OsStr::new("x"), Path::new("./y"), Path::new(".")),
        "x/y"
    );
    assert_eq!(rel_dst(OsStr::new(""), root, root), "");
}

#[test]
fn a_child_path_joins_its_parent_path_like_a_walked_path() {
    let root = Path::new("src");
    for (parent, name) in [("", "a"), ("x", "b"), ("x/y", "c")] {
        let walked = Path::new("src").join(parent).join(name);
        assert_eq!(
            relpath::join(OsStr::new(parent), OsStr::new(name)),
            rel_dst(OsStr::new(""), &walked, root)
        );
    }
}
