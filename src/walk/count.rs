//! The count-ahead: a thread that lists the sources ahead of the walk
//! (names, types and the sizes of regular files, nothing kept per entry)
//! so the progress display has final totals long before the walk, held
//! back by the bounded jobs queue, has found every file.
//!
//! It counts what the walk will queue: entries that are not directories,
//! left out by no filter, of this shard, not beyond a mount point under
//! `-x`; and bytes of regular files (each
//! multiply-linked file once under `-a`). It holds one descriptor per
//! level it is in and gives up, telling nothing, deeper than its budget
//! or when stopped; the display then keeps showing growing totals, as
//! without it.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;

use rustix::fs::FileType;

use super::WalkSetup;
use super::batch::WalkEvent;
use super::entry_stat::EntryStat;
use super::tree;
use crate::plan::Root;
use crate::relpath;
use crate::select::dir_rules::DirRules;

/// What the count found: the walk's totals, known ahead.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counted {
    pub(crate) files: u64,
    pub(crate) bytes: u64,
}

/// The count stopped early: asked to, or beyond its descriptor budget.
struct GaveUp;

/// Stops the count-ahead when dropped: held by the walk for its whole
/// life, so the count ends with it however it ends, a panic included.
/// A count left running would keep the event channel open, and the main
/// thread would wait for it to see that the walk is gone.
pub(super) struct StopOnDrop(pub(super) Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Starts counting `roots` in a thread of its own; `Counted` goes on
/// `events` when done. `stop` ends it early (the walk sets it when it
/// is over: then the count is of no use).
pub(crate) fn spawn(
    setup: &WalkSetup,
    roots: &[Root],
    events: Sender<WalkEvent>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let mut counter = Counter {
        setup: setup.clone(),
        stop,
        counted: Counted::default(),
        linked: HashSet::new(),
        ancestors: Vec::new(),
        rules: Vec::new(),
    };
    let roots = roots.to_vec();
    std::thread::Builder::new()
        .name("pcopy-count".into())
        .spawn(move || {
            if roots.iter().all(|root| counter.root(root).is_ok()) {
                let _ = events.send(WalkEvent::Counted(counter.counted));
            }
        })
        .map(drop)
}

struct Counter {
    setup: WalkSetup,
    stop: Arc<AtomicBool>,
    counted: Counted,
    /// (device, inode) of multiply-linked files counted, under `-a`.
    linked: HashSet<(u64, u64)>,
    /// (device, inode) of the directories the count is in, for `-L`.
    ancestors: Vec<(u64, u64)>,
    /// The dir-merge rules of the directories the count is in that have
    /// any, outermost first.
    rules: Vec<DirRules>,
}

impl Counter {
    fn root(&mut self, root: &Root) -> Result<(), GaveUp> {
        if !root.is_dir {
            let stat = EntryStat::of_path(&root.src, self.setup.dereference).ok();
            self.entry(&root.rel_dst, stat.as_ref());
            return Ok(());
        }
        if root.flat {
            // Made, never listed: nothing in it counts.
            return Ok(());
        }
        // A root that cannot be opened is the walk's to report.
        let Ok(dir) = tree::open_root(&root.src) else {
            return Ok(());
        };
        self.dir(dir.as_fd(), &root.rel_dst)
    }

    /// Counts the directory `dir`, whose destination is `rel`.
    fn dir(&mut self, dir: BorrowedFd<'_>, rel: &OsStr) -> Result<(), GaveUp> {
        if self.stop.load(Ordering::Relaxed) || self.ancestors.len() > self.setup.open_levels {
            return Err(GaveUp);
        }
        let id = EntryStat::of_fd(dir).map(|st| (st.dev(), st.ino()));
        if self.setup.dereference && id.is_ok_and(|id| self.ancestors.contains(&id)) {
            return Ok(());
        }
        if self.other_file_system(id.as_ref().ok()) {
            return Ok(());
        }
        self.ancestors.push(id.unwrap_or_default());
        let (listed, _) = tree::list(dir);
        // Bad merge files are the walk's to report.
        let rules = self.setup.filter.as_ref().and_then(|filter| {
            let present = |name: &OsStr| listed.iter().any(|entry| entry.name == name);
            DirRules::read(dir, rel, filter.dir_merges(), &present, &mut Vec::new())
        });
        let pushed = rules.is_some();
        self.rules.extend(rules);
        let mut subdirs: Vec<OsString> = Vec::new();
        for entry in listed {
            let child = relpath::join(rel, &entry.name);
            let follow = self.setup.dereference && entry.file_type == FileType::Symlink;
            let stat = match entry.file_type {
                FileType::RegularFile | FileType::Unknown => {
                    EntryStat::at(dir, &entry.name, self.setup.dereference).ok()
                }
                _ if follow => EntryStat::at(dir, &entry.name, true).ok(),
                _ => None,
            };
            let is_dir = match &stat {
                Some(stat) => stat.file_type() == FileType::Directory,
                None => entry.file_type == FileType::Directory,
            };
            if self.excluded(&child, is_dir) {
                continue;
            }
            match is_dir {
                true => subdirs.push(entry.name),
                false => self.entry(&child, stat.as_ref()),
            }
        }
        for name in subdirs {
            let follow = self.setup.dereference;
            if let Ok(sub) = tree::open_dir(dir, &name, follow) {
                self.dir(sub.as_fd(), &relpath::join(rel, &name))?;
            }
        }
        self.ancestors.pop();
        if pushed {
            self.rules.pop();
        }
        Ok(())
    }

    /// Whether a directory of device and inode `id` is on another file
    /// system than its root, under `-x`: the walk makes it (`-x`) or
    /// leaves it out (`-xx`), but never lists it, so nothing in it counts.
    fn other_file_system(&self, id: Option<&(u64, u64)>) -> bool {
        let root_dev = self.ancestors.first().map(|&(dev, _)| dev);
        self.setup.one_file_system > 0
            && matches!((root_dev, id), (Some(root), Some(&(dev, _))) if root != dev)
    }

    /// Counts an entry that is not a directory, as the walk would queue it.
    fn entry(&mut self, rel: &OsStr, stat: Option<&EntryStat>) {
        let linked = stat.filter(|st| self.setup.keep.hard_links && st.nlink() > 1);
        let owned = match (self.setup.shard, linked) {
            (None, _) => true,
            (Some(shard), Some(st)) => shard.owns_key(&st.ino().to_le_bytes()),
            (Some(shard), None) => shard.owns(rel),
        };
        if !owned {
            return;
        }
        self.counted.files += 1;
        let first_name = linked.is_none_or(|st| self.linked.insert((st.dev(), st.ino())));
        if let Some(stat) = stat.filter(|st| st.is_file() && first_name) {
            self.counted.bytes += stat.len();
        }
    }

    fn excluded(&self, rel: &OsStr, is_dir: bool) -> bool {
        let Some(filter) = &self.setup.filter else {
            return false;
        };
        let dirs: Vec<&DirRules> = self.rules.iter().rev().collect();
        filter.excludes(rel, is_dir, &dirs)
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::sync::mpsc;

    use super::*;
    use crate::job::CopyOptions;
    use crate::walk::split::Splitter;

    /// Counts the tree `src` holding at most `open_levels` levels open;
    /// `None` if the count told nothing.
    fn count_with(src: &std::path::Path, archive: bool, open_levels: usize) -> Option<Counted> {
        let stop = Arc::new(AtomicBool::new(false));
        count_stoppable(src, archive, open_levels, stop)
    }

    /// As [`count_with`], stopped by `stop`.
    fn count_stoppable(
        src: &std::path::Path,
        archive: bool,
        open_levels: usize,
        stop: Arc<AtomicBool>,
    ) -> Option<Counted> {
        let setup = WalkSetup {
            dereference: false,
            dry_run: false,
            keep: crate::job::Preserve {
                hard_links: archive,
                ..Default::default()
            },
            umask: 0o022,
            acls: false,
            owners: Default::default(),
            filter: None,
            shard: None,
            splitter: Splitter::new(Some(0), 1, &CopyOptions::default()),
            temp_tag: String::new(),
            open_levels,
            count_ahead: true,
            itemize: false,
            existing: false,
            chmod: Default::default(),
            one_file_system: 0,
        };
        let roots = [Root {
            src: src.to_path_buf(),
            rel_dst: OsString::new(),
            is_dir: true,
            flat: false,
        }];
        let (events, received) = mpsc::channel();
        spawn(&setup, &roots, events, stop).expect("spawn");
        // The thread ends without a word when it gives up: the sender is
        // dropped.
        match received.recv() {
            Ok(WalkEvent::Counted(counted)) => Some(counted),
            Ok(other) => panic!("{other:?}"),
            Err(_) => None,
        }
    }

    fn count(src: &std::path::Path, archive: bool) -> Counted {
        count_with(src, archive, 8).expect("counted")
    }

    #[test]
    fn files_and_links_count_once_each_and_bytes_once_per_file() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let src = tmp.path();
        fs::create_dir_all(src.join("a/b")).expect("mkdir");
        fs::write(src.join("a/b/one"), [0; 10]).expect("write");
        fs::write(src.join("two"), [0; 100]).expect("write");
        fs::hard_link(src.join("two"), src.join("a/two-again")).expect("link");
        std::os::unix::fs::symlink("two", src.join("a/link")).expect("symlink");
        // Without -a a second name is a file of its own, bytes and all.
        assert_eq!(
            count(src, false),
            Counted {
                files: 4,
                bytes: 210
            }
        );
        // With -a it is linked after the copy: it moves no bytes.
        assert_eq!(
            count(src, true),
            Counted {
                files: 4,
                bytes: 110
            }
        );
    }

    #[test]
    fn a_tree_deeper_than_its_budget_is_not_counted() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut deep = tmp.path().to_path_buf();
        for level in 0..10 {
            deep.push(format!("d{level}"));
        }
        fs::create_dir_all(&deep).expect("mkdir");
        assert_eq!(count_with(tmp.path(), false, 3), None);
        assert_eq!(count_with(tmp.path(), false, 12), Some(Counted::default()));
    }

    #[test]
    fn a_walk_that_unwinds_stops_the_count() {
        let tmp = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(tmp.path().join("a/b")).expect("mkdir");
        fs::write(tmp.path().join("a/b/one"), [0; 10]).expect("write");
        let stop = Arc::new(AtomicBool::new(false));
        let guard_stop = Arc::clone(&stop);
        let unwound = std::panic::catch_unwind(move || {
            let _guard = StopOnDrop(guard_stop);
            panic!("the walk fails");
        });
        assert!(unwound.is_err());
        assert!(stop.load(Ordering::Relaxed), "the guard set the stop flag");
        // A count told to stop gives up and closes its end of the channel
        // at once, which is what lets the main thread see the walk gone.
        assert_eq!(count_stoppable(tmp.path(), false, 8, stop), None);
        let not_stopped = Arc::new(AtomicBool::new(false));
        assert_eq!(
            count_stoppable(tmp.path(), false, 8, not_stopped),
            Some(Counted {
                files: 1,
                bytes: 10
            })
        );
    }
}
