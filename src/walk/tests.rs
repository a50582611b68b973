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
    let budget = Budget {
        open_levels: 64,
        readers: 0,
    };
    walk_setup(src, dst, dst_new, split_min, budget)
}

/// Walks `src` into `dst` holding at most `open_levels` levels open.
fn walk_with(src: &Path, dst: &Path, dst_new: bool, open_levels: usize) -> Walked {
    let budget = Budget {
        open_levels,
        readers: 0,
    };
    walk_setup(src, dst, dst_new, 1 << 30, budget)
}

/// What the descriptor budget gave the walk.
#[derive(Debug, Clone, Copy)]
struct Budget {
    open_levels: usize,
    readers: usize,
}

fn walk_setup(src: &Path, dst: &Path, dst_new: bool, split_min: u64, budget: Budget) -> Walked {
    let manager = procpool::Manager::new().expect("manager");
    let (events, walked) = mpsc::channel();
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let dst_root = rustix::fs::open(dst, flags, Mode::empty()).expect("open dst");
    let setup = WalkSetup {
        dereference: false,
        dry_run: false,
        keep: Default::default(),
        umask: 0o022,
        acls: false,
        owners: Default::default(),
        filter: None,
        shard: None,
        splitter: Splitter::new(Some(split_min), 2, &CopyOptions::default()),
        temp_tag: String::new(),
        open_levels: budget.open_levels,
        workers: 2,
        readers: budget.readers,
        count_ahead: false,
        size_limits: false,
        itemize: false,
        existing: false,
        chmod: Default::default(),
        one_file_system: 0,
        backup: None,
    };
    let start = WalkStart {
        roots: vec![Root {
            src: src.to_path_buf(),
            rel_dst: OsString::new(),
            is_dir: true,
            flat: false,
        }],
        dst_root: Some(dst_root),
        dst_root_new: dst_new,
        case_insensitive: false,
        jobs: manager.queue(0).expect("jobs queue"),
        wake: manager.queue(0).expect("wake queue"),
    };
    let readers = Readers::start(
        budget.readers,
        budget.readers,
        budget.readers > 0,
        false,
        None,
    );
    walk(WalkTask {
        readers,
        listings: None,
        setup,
        start,
        events,
        stop: Arc::new(AtomicBool::new(false)),
        count_stop: Arc::new(AtomicBool::new(false)),
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

/// Makes `levels` nested directories of 250-byte names below `root`, each
/// holding a file `f` of its depth in bytes, through directory descriptors
/// (the whole path is longer than `PATH_MAX`).
fn deep_tree(root: &Path, levels: usize) {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut dir = rustix::fs::open(root, flags, Mode::empty()).expect("open root");
    for depth in 0..levels {
        let name = format!("{depth:03}{}", "d".repeat(247));
        rustix::fs::mkdirat(&dir, name.as_str(), Mode::RWXU).expect("mkdirat");
        dir = rustix::fs::openat(&dir, name.as_str(), flags, Mode::empty()).expect("openat");
        let file = rustix::fs::openat(&dir, "f", OFlags::CREATE | OFlags::WRONLY, Mode::RUSR)
            .expect("create f");
        rustix::io::write(&file, &vec![b'x'; depth]).expect("write f");
    }
}

fn sorted_rels(walked: &Walked) -> Vec<(OsString, Option<u64>)> {
    let mut rels: Vec<_> = (walked.jobs.iter())
        .map(|job| (job.rel_dst.clone(), job.meta.map(|m| m.size)))
        .collect();
    rels.sort();
    rels
}

#[test]
fn a_tree_deeper_than_path_max_is_walked_whole_within_any_budget() {
    let (_tmp, src, dst) = trees(&[]);
    deep_tree(&src, 30);
    let roomy = walk_with(&src, &dst, true, 64);
    assert_eq!(roomy.jobs.len(), 30);
    let deepest = roomy.jobs.iter().map(|job| job.rel_dst.len()).max();
    assert!(deepest > Some(libc::PATH_MAX as usize), "{deepest:?}");
    assert_eq!(roomy.bytes, (0..30).sum::<u64>());
    // One level open at a time: every climb reopens the parents, and the
    // walk finds the same entries.
    for levels in [1, 2, 5] {
        let (_tmp2, _, dst2) = trees(&[]);
        let tight = walk_with(&src, &dst2, true, levels);
        assert_eq!(sorted_rels(&tight), sorted_rels(&roomy), "{levels} levels");
    }
}

#[test]
fn a_budget_of_one_level_walks_every_branch() {
    // Climbing from c to b to a reopens each, and a's next entry is found.
    let (_tmp, src, dst) = trees(&[("src/a/b/c/f", 1), ("src/a/g", 2)]);
    let walked = walk_with(&src, &dst, true, 1);
    let mut rels: Vec<_> = walked.jobs.iter().map(|j| j.rel_dst.clone()).collect();
    rels.sort();
    assert_eq!(rels, ["a/b/c/f", "a/g"]);
}

/// A tree both deep and wide: `wide` directories of `wide` files each, a
/// chain of 30 levels, and files of every kind of name order.
fn deep_and_wide(src: &Path, wide: usize) {
    for dir in 0..wide {
        for file in 0..wide {
            write(&src.join(format!("w{dir:02}/x/f{file:02}")), dir + file);
        }
        fs::create_dir_all(src.join(format!("w{dir:02}/empty"))).expect("mkdir");
    }
    deep_tree(src, 30);
}

#[test]
fn several_readers_walk_a_deep_and_wide_tree_as_the_walk_alone_does() {
    let (_tmp, src, _) = trees(&[]);
    deep_and_wide(&src, 12);
    let alone = {
        let (_tmp2, _, dst) = trees(&[]);
        let budget = Budget {
            open_levels: 64,
            readers: 0,
        };
        walk_setup(&src, &dst, true, 1 << 30, budget)
    };
    assert_eq!(alone.jobs.len(), 12 * 12 + 30);
    // Levels closed for the budget while readers wait to open beneath
    // them, and several runs of each: the same jobs every time.
    for (open_levels, readers) in [(64, 4), (64, 1), (2, 4), (1, 8), (64, 4), (64, 4)] {
        let (_tmp2, _, dst) = trees(&[]);
        let budget = Budget {
            open_levels,
            readers,
        };
        let walked = walk_setup(&src, &dst, true, 1 << 30, budget);
        assert_eq!(sorted_rels(&walked), sorted_rels(&alone), "{budget:?}");
        assert_eq!(walked.bytes, alone.bytes, "{budget:?}");
    }
}

#[test]
fn with_readers_names_in_the_destination_are_still_the_workers_to_stat() {
    let (_tmp, src, dst) = trees(&[("src/d/old", 5), ("src/d/new", 7), ("dst/d/old", 1)]);
    let budget = Budget {
        open_levels: 64,
        readers: 2,
    };
    let walked = walk_setup(&src, &dst, false, 1 << 30, budget);
    let old = walked.job("d/old");
    assert!(!old.size_known(), "the worker compares it");
    // A reader may have stat'ed it first: that stat goes along, uncounted.
    assert!(old.meta.is_none_or(|m| m.size == 5), "{old:?}");
    assert!(walked.job("d/new").size_known());
    assert_eq!(walked.job("d/new").meta.map(|m| m.size), Some(7));
    assert_eq!(walked.bytes, 7, "the same totals whichever thread stat'ed");
}
