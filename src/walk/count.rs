//! The count-ahead: the directory readers list the sources ahead of the
//! walk (names, types and the sizes of regular files), in background
//! tasks, so the progress display has final totals long before the walk,
//! held back by the bounded jobs queue, has found every file. What it
//! lists it keeps, within a bound, for the walk to take rather than list
//! and stat again ([`super::listings`]).
//!
//! It counts what the walk will queue: entries that are not directories,
//! left out by no filter, of this shard, not beyond a mount point under
//! `-x`; and bytes of regular files (each multiply-linked file once under
//! `-a`). Each directory is a task of the readers ([`super::readers`]),
//! which adds a task for each subdirectory, holding the directory open
//! until they have opened beneath it. It holds no more directories open
//! than its budget allows (one fewer than the walk's levels, as opening
//! beneath one takes two): beyond that a directory is closed
//! once listed, and its subdirectories are opened name by name beneath
//! the nearest directory still held (or their root), so any depth and any
//! descriptor limit that fits the workers is counted to the end. It gives
//! up, telling nothing, only when stopped; the display then keeps showing
//! growing totals, as without it.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustix::fs::FileType;
use rustix::io::Errno;

use super::WalkSetup;
use super::batch::WalkEvent;
use super::entry_stat::EntryStat;
use super::listings::{For, Listings};
use super::readers::{self, Background, Readers, RequestTimer};
use super::tree::{self, Listed, Listing};
use crate::plan::Root;
use crate::relpath;
use crate::select::dir_rules::DirRules;

/// What the count found: the walk's totals, known ahead.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counted {
    pub(crate) files: u64,
    pub(crate) bytes: u64,
}

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

/// Starts counting `roots` on `readers`; `Counted` goes on `events` when
/// done. `stop` ends it early (the walk sets it when it is over: then the
/// count is of no use). What it lists it keeps in `listings`, if given,
/// for the walk.
pub(super) fn start(
    setup: &WalkSetup,
    roots: &[Root],
    events: Sender<WalkEvent>,
    stop: Arc<AtomicBool>,
    readers: &Readers,
    listings: Option<Arc<Listings>>,
) {
    // A flat root is made, never listed: nothing in it counts.
    let listed = |root: &&Root| root.is_dir && !root.flat;
    let dirs = roots.iter().filter(listed).count();
    let count = Arc::new(Count {
        setup: setup.clone(),
        stop,
        tally: Mutex::new(Tally::default()),
        pending: AtomicUsize::new(dirs),
        open: AtomicUsize::new(0),
        events: Mutex::new(Some(events)),
        listings,
    });
    for root in roots.iter().filter(|root| !root.is_dir) {
        let stat = EntryStat::of_path(&root.src, setup.dereference).ok();
        count
            .tally()
            .entry(&count.setup, &root.rel_dst, stat.as_ref());
    }
    if dirs == 0 {
        count.finish();
    }
    for root in roots.iter().filter(listed) {
        let task = DirTask {
            count: Arc::clone(&count),
            at: At::Root {
                path: Arc::new(root.src.clone()),
                below: None,
            },
            rel: root.rel_dst.clone(),
            ancestors: None,
            rules: None,
        };
        readers.spawn(Box::new(move |more| task.run(more)));
    }
}

/// The count, shared by its tasks.
struct Count {
    setup: WalkSetup,
    stop: Arc<AtomicBool>,
    tally: Mutex<Tally>,
    /// Directory tasks added and not yet done: the count is final when
    /// the last is.
    pending: AtomicUsize,
    /// Directories held open for their subdirectories' tasks.
    open: AtomicUsize,
    /// Taken by the task that finishes the count, or dropped when it gives
    /// up, so the channel closes with the walk.
    events: Mutex<Option<Sender<WalkEvent>>>,
    /// Where the listings go for the walk; `None`: they are dropped.
    listings: Option<Arc<Listings>>,
}

impl Count {
    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        // Tally's updates cannot panic half way; a poisoned one is whole.
        self.tally
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn events(&self) -> Option<Sender<WalkEvent>> {
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        events.take()
    }

    /// Tells nothing from now on.
    fn give_up(&self) {
        drop(self.events());
    }

    /// One directory task done: the last sends the totals.
    fn done_one(&self) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.finish();
        }
    }

    fn finish(&self) {
        if let Some(listings) = &self.listings {
            listings.count_over();
        }
        // Stopped, some directories went uncounted.
        if self.stop.load(Ordering::Relaxed) {
            return self.give_up();
        }
        let counted = self.tally().counted;
        if let Some(events) = self.events() {
            let _ = events.send(WalkEvent::Counted(counted));
        }
    }

    fn gave_up(&self) -> bool {
        let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        events.is_none() || self.stop.load(Ordering::Relaxed)
    }
}

/// What is counted so far.
#[derive(Default)]
struct Tally {
    counted: Counted,
    /// (device, inode) of multiply-linked files counted, under `-a`.
    linked: HashSet<(u64, u64)>,
}

impl Tally {
    /// Counts an entry that is not a directory, as the walk would queue it.
    fn entry(&mut self, setup: &WalkSetup, rel: &OsStr, stat: Option<&EntryStat>) {
        let linked = stat.filter(|st| setup.keep.hard_links && st.nlink() > 1);
        let owned = match (setup.shard, linked) {
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
}

/// A directory held open while its subdirectories' tasks open beneath it.
struct Held {
    fd: OwnedFd,
    count: Arc<Count>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.count.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Where a directory to count is: beneath its root, or beneath the
/// nearest directory above it that the count holds open.
enum At {
    Root {
        path: Arc<PathBuf>,
        /// `None`: the root itself.
        below: Option<Arc<Names>>,
    },
    Beneath {
        held: Arc<Held>,
        below: Arc<Names>,
    },
}

/// The names from an open directory (or a root) down to a directory to
/// count, nearest last: a chain shared by siblings, so a directory the
/// budget could not hold costs its subdirectories a name each, not a
/// descriptor.
struct Names {
    name: OsString,
    up: Option<Arc<Names>>,
}

impl Drop for Names {
    fn drop(&mut self) {
        unlink(self.up.take(), |names| names.up.take());
    }
}

impl Names {
    fn len(&self) -> usize {
        std::iter::successors(Some(self), |names| names.up.as_deref()).count()
    }

    /// The names, from the one nearest the open directory down.
    fn top_down(&self) -> Vec<&OsStr> {
        let links = std::iter::successors(Some(self), |names| names.up.as_deref());
        let mut names: Vec<&OsStr> = links.map(|names| names.name.as_os_str()).collect();
        names.reverse();
        names
    }
}

impl At {
    /// Opens the directory, one name at a time below where it starts,
    /// with at most two descriptors of the task's own open at once.
    fn open(&self, follow: bool) -> Result<OwnedFd, Errno> {
        let (first, below) = match self {
            At::Root { path, below: None } => return tree::open_root(path),
            At::Root {
                path,
                below: Some(below),
            } => {
                let names = below.top_down();
                let root = tree::open_root(path)?;
                // A chain always holds a name: the directory's own.
                let first = tree::open_dir(root.as_fd(), names[0], follow)?;
                (first, names)
            }
            At::Beneath { held, below } => {
                let names = below.top_down();
                (tree::open_dir(held.fd.as_fd(), names[0], follow)?, names)
            }
        };
        let mut fd = first;
        for name in &below[1..] {
            fd = tree::open_dir(fd.as_fd(), name, follow)?;
        }
        Ok(fd)
    }

    /// The directories opened to open this one, itself included.
    fn opens(&self) -> usize {
        match self {
            At::Root { below, .. } => 1 + below.as_deref().map_or(0, Names::len),
            At::Beneath { below, .. } => below.len(),
        }
    }

    /// Where the subdirectory `name` of this directory is, when this one
    /// is not held open.
    fn child(&self, name: OsString) -> At {
        let link = |up: Option<&Arc<Names>>| {
            Arc::new(Names {
                name,
                up: up.cloned(),
            })
        };
        match self {
            At::Root { path, below } => At::Root {
                path: Arc::clone(path),
                below: Some(link(below.as_ref())),
            },
            At::Beneath { held, below } => At::Beneath {
                held: Arc::clone(held),
                below: link(Some(below)),
            },
        }
    }
}

/// The directories a counted directory is in, for `-L`'s loop detection
/// and `-x`'s root device: a chain shared by siblings.
struct Ancestor {
    id: (u64, u64),
    up: Option<Arc<Ancestor>>,
}

impl Drop for Ancestor {
    fn drop(&mut self) {
        unlink(self.up.take(), |ancestor| ancestor.up.take());
    }
}

impl Ancestor {
    fn chain(&self) -> impl Iterator<Item = &Ancestor> {
        std::iter::successors(Some(self), |a| a.up.as_deref())
    }
}

/// The dir-merge rules of the directories a counted directory is in that
/// have any, nearest last: a chain shared by siblings.
struct RulesUp {
    rules: DirRules,
    up: Option<Arc<RulesUp>>,
}

impl Drop for RulesUp {
    fn drop(&mut self) {
        unlink(self.up.take(), |rules| rules.up.take());
    }
}

impl RulesUp {
    /// The rules from the nearest directory up, as `Filter` takes them.
    fn nearest_first(chain: Option<&Arc<RulesUp>>) -> Vec<&DirRules> {
        let links = std::iter::successors(chain.map(Arc::as_ref), |r| r.up.as_deref());
        links.map(|link| &link.rules).collect()
    }
}

/// Drops the links of a chain one after the other, where dropping the
/// first would drop the next from inside its own drop: a chain as long as
/// a tree is deep would overflow a reader's stack. A link another task
/// still shares ends the walk up; [`Arc::into_inner`] hands each link to
/// exactly one of the tasks that drop their shares at once.
fn unlink<T>(mut up: Option<Arc<T>>, next: impl Fn(&mut T) -> Option<Arc<T>>) {
    while let Some(link) = up {
        up = Arc::into_inner(link).and_then(|mut link| next(&mut link));
    }
}

/// Counting one directory.
struct DirTask {
    count: Arc<Count>,
    at: At,
    /// Its destination path below DST.
    rel: OsString,
    ancestors: Option<Arc<Ancestor>>,
    rules: Option<Arc<RulesUp>>,
}

impl DirTask {
    fn run(self, more: &Background<'_>) {
        let count = Arc::clone(&self.count);
        if !count.gave_up() {
            self.count_dir(more);
        }
        count.done_one();
    }

    fn count_dir(self, more: &Background<'_>) {
        let DirTask {
            count,
            at,
            rel,
            ancestors,
            rules,
        } = self;
        let setup = &count.setup;
        let mut timer = RequestTimer::start();
        let fd = match at.open(setup.dereference) {
            Ok(fd) => fd,
            // Out of descriptors (something outside the budget holds
            // them): a total without this directory would be wrong.
            Err(Errno::MFILE | Errno::NFILE) => return count.give_up(),
            // A directory that cannot be opened is the walk's to report.
            Err(_) => return,
        };
        // The clock before the stamp, the stamp before the listing: see
        // `listings` for why that order keeps only what is safe.
        let read_at = SystemTime::now();
        let dir = EntryStat::of_fd(fd.as_fd()).ok();
        let id = dir.map_or((0, 0), |st| (st.dev(), st.ino()));
        timer.mark(at.opens() + 1);
        let chain = || ancestors.as_deref().into_iter().flat_map(Ancestor::chain);
        if setup.dereference && chain().any(|a| a.id == id) {
            return;
        }
        let root_dev = chain().last().map(|root| root.id.0);
        if setup.one_file_system > 0 && root_dev.is_some_and(|dev| dev != id.0) {
            return;
        }
        let kept = (count.listings.as_deref()).zip(dir.as_ref());
        let taken = kept.and_then(|(listings, dir)| listings.take(For::Count, dir));
        // Taken: a reader listed it for the walk first, and the walk has it.
        let keep = kept.filter(|_| taken.is_none());
        let listing = taken.unwrap_or_else(|| list_timed(&count, fd.as_fd(), timer, more));
        let rules = read_rules(&count, fd.as_fd(), &rel, &listing.entries, rules);
        let subdirs = count_entries(&count, &rel, &listing.entries, rules.as_ref());
        if let Some((listings, dir)) = keep {
            listings.keep(For::Walk, dir, read_at, listing, setup.dereference);
        }
        if subdirs.is_empty() {
            return;
        }
        let parent = Subdirs {
            at: hold_or_close(&count, fd, at),
            ancestors: Arc::new(Ancestor { id, up: ancestors }),
            count,
            rel,
            rules,
        };
        parent.spawn(subdirs, more);
    }
}

/// Lists `dir` and stats its entries, timing each kind of request.
fn list_timed(
    count: &Count,
    dir: BorrowedFd<'_>,
    mut timer: RequestTimer,
    more: &Background<'_>,
) -> Listing {
    let mut listing = tree::list(dir);
    timer.mark(1);
    tree::stat_entries(dir, &mut listing.entries, count.setup.dereference);
    timer.mark(readers::stats_made(&listing));
    more.timed(timer.slowest());
    listing
}

/// Where the subdirectories of the directory `fd`, found `at`, are
/// opened beneath: `fd` itself, held, while the budget has room (the
/// parent is then closed once no other task needs it); else where `fd`
/// was, and `fd` is closed.
fn hold_or_close(count: &Arc<Count>, fd: OwnedFd, at: At) -> Hold {
    // Of the count's part of the budget (a descriptor a level the walk
    // holds, and one), two are for the directory being opened and the one
    // above it on the way down; the rest may be held.
    let most = count.setup.open_levels.saturating_sub(1);
    if count.open.fetch_add(1, Ordering::Relaxed) >= most {
        count.open.fetch_sub(1, Ordering::Relaxed);
        return Hold::Closed(at);
    }
    Hold::Held(Arc::new(Held {
        fd,
        count: Arc::clone(count),
    }))
}

/// Where a counted directory's subdirectories are opened beneath.
enum Hold {
    Held(Arc<Held>),
    /// The budget held no more: where the directory itself was.
    Closed(At),
}

/// A counted directory whose subdirectories are to be counted: where
/// they are, and what they inherit.
struct Subdirs {
    count: Arc<Count>,
    at: Hold,
    rel: OsString,
    ancestors: Arc<Ancestor>,
    rules: Option<Arc<RulesUp>>,
}

impl Subdirs {
    /// Adds a task for each of `names`, the subdirectories.
    fn spawn(self, names: Vec<OsString>, more: &Background<'_>) {
        let count = &self.count;
        count.pending.fetch_add(names.len(), Ordering::AcqRel);
        // Added in reverse, so the first runs first (last in, first out).
        for name in names.into_iter().rev() {
            let rel = relpath::join(&self.rel, &name);
            let at = match &self.at {
                Hold::Held(held) => At::Beneath {
                    held: Arc::clone(held),
                    below: Arc::new(Names { name, up: None }),
                },
                Hold::Closed(at) => at.child(name),
            };
            let task = DirTask {
                count: Arc::clone(count),
                rel,
                at,
                ancestors: Some(Arc::clone(&self.ancestors)),
                rules: self.rules.clone(),
            };
            more.spawn(Box::new(move |more| task.run(more)));
        }
    }
}

/// The rules for the entries of the directory `rel`: those `up` from the
/// directories above, and its own dir-merge files (a bad one is the
/// walk's to report).
fn read_rules(
    count: &Count,
    dir: BorrowedFd<'_>,
    rel: &OsStr,
    entries: &[Listed],
    up: Option<Arc<RulesUp>>,
) -> Option<Arc<RulesUp>> {
    let Some(filter) = &count.setup.filter else {
        return up;
    };
    let present = |name: &OsStr| entries.iter().any(|entry| entry.name == name);
    match DirRules::read(dir, rel, filter.dir_merges(), &present, &mut Vec::new()) {
        Some(rules) => Some(Arc::new(RulesUp { rules, up })),
        None => up,
    }
}

/// Counts the entries of the directory `rel` that are not directories;
/// the names of the subdirectories to count.
fn count_entries(
    count: &Count,
    rel: &OsStr,
    entries: &[Listed],
    rules: Option<&Arc<RulesUp>>,
) -> Vec<OsString> {
    let setup = &count.setup;
    let dirs = RulesUp::nearest_first(rules);
    let mut subdirs = Vec::new();
    let mut tally = count.tally();
    for entry in entries {
        let child = relpath::join(rel, &entry.name);
        let is_dir = match &entry.stat {
            Some(stat) => stat.file_type() == FileType::Directory,
            None => entry.file_type == FileType::Directory,
        };
        let excluded = (setup.filter.as_ref()).is_some_and(|f| f.excludes(&child, is_dir, &dirs));
        match (excluded, is_dir) {
            (true, _) => {}
            (false, true) => subdirs.push(entry.name.clone()),
            (false, false) => tally.entry(setup, &child, entry.stat.as_ref()),
        }
    }
    subdirs
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
        count_stoppable(src, archive, open_levels, stop, 3)
    }

    /// As [`count_with`], stopped by `stop`.
    fn count_stoppable(
        src: &std::path::Path,
        archive: bool,
        open_levels: usize,
        stop: Arc<AtomicBool>,
        readers: usize,
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
            workers: 1,
            readers: 0,
            count_ahead: true,
            size_limits: false,
            itemize: false,
            existing: false,
            chmod: Default::default(),
            one_file_system: 0,
            backup: None,
        };
        let roots = [Root {
            src: src.to_path_buf(),
            rel_dst: OsString::new(),
            is_dir: true,
            flat: false,
        }];
        let (events, received) = mpsc::channel();
        let readers = Readers::start(readers, readers, false, false, None).expect("readers");
        start(&setup, &roots, events, stop, &readers, None);
        // The count ends without a word when it gives up: the sender is
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
    fn a_tree_deeper_and_wider_than_its_budget_is_counted_to_the_end() {
        let tmp = tempfile::tempdir().expect("tempdir");
        // Three chains of ten levels, a file of `level` bytes at each
        // level and an empty directory beside each level's next.
        let mut expected = Counted::default();
        for chain in 0..3 {
            let mut deep = tmp.path().join(format!("c{chain}"));
            for level in 0..10 {
                deep.push(format!("d{level}"));
                fs::create_dir_all(deep.join("empty")).expect("mkdir");
                fs::write(deep.join("f"), vec![0; level]).expect("write");
                expected.files += 1;
                expected.bytes += level as u64;
            }
        }
        // One level held open: every directory below the root is closed
        // once listed, and its subdirectories reopened from the root.
        for (open_levels, readers) in [(1, 1), (1, 4), (2, 3), (3, 6), (1, 6), (1, 6)] {
            let stop = Arc::new(AtomicBool::new(false));
            let counted = count_stoppable(tmp.path(), false, open_levels, stop, readers);
            assert_eq!(
                counted,
                Some(expected),
                "{open_levels} levels, {readers} readers"
            );
        }
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
        assert_eq!(count_stoppable(tmp.path(), false, 8, stop, 3), None);
        let not_stopped = Arc::new(AtomicBool::new(false));
        assert_eq!(
            count_stoppable(tmp.path(), false, 8, not_stopped, 3),
            Some(Counted {
                files: 1,
                bytes: 10
            })
        );
    }

    #[test]
    fn several_readers_count_a_wide_tree_the_same_every_time() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let src = tmp.path();
        for dir in 0..20 {
            fs::create_dir_all(src.join(format!("d{dir}/sub/deeper"))).expect("mkdir");
            for file in 0..3 {
                fs::write(src.join(format!("d{dir}/f{file}")), vec![0; file]).expect("write");
            }
            fs::write(src.join(format!("d{dir}/sub/deeper/g")), [0; 7]).expect("write");
            fs::hard_link(src.join("d0/sub/deeper/g"), src.join(format!("d{dir}/h")))
                .expect("link");
        }
        // 20 directories of 3 files (0 + 1 + 2 bytes), a g of 7 bytes
        // and a second name h of d0's g.
        let plain = Counted {
            files: 20 * 5,
            bytes: 20 * (3 + 7) + 20 * 7,
        };
        let archive = Counted {
            files: 20 * 5,
            bytes: 20 * (3 + 7),
        };
        for readers in [1, 2, 6, 6, 6] {
            let stop = || Arc::new(AtomicBool::new(false));
            let counted = count_stoppable(src, false, 64, stop(), readers);
            assert_eq!(counted, Some(plain), "{readers} readers");
            let counted = count_stoppable(src, true, 64, stop(), readers);
            assert_eq!(counted, Some(archive), "{readers} readers, -a");
        }
    }

    #[test]
    fn chains_as_deep_as_any_tree_drop_without_recursion() {
        // A million links dropped on a 64 KiB stack: one frame a link
        // would need tens of MiB.
        const LINKS: usize = 1_000_000;
        let dropped = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(|| {
                let mut names: Option<Arc<Names>> = None;
                let mut ancestors: Option<Arc<Ancestor>> = None;
                for i in 0..LINKS {
                    let up = names.take();
                    names = Some(Arc::new(Names {
                        name: OsString::from("d"),
                        up,
                    }));
                    let up = ancestors.take();
                    ancestors = Some(Arc::new(Ancestor {
                        id: (0, i as u64),
                        up,
                    }));
                }
                let names = names.expect("built");
                let depth = names.len();
                // A share held elsewhere keeps its part of the chain.
                let kept = Arc::clone(names.up.as_ref().expect("a parent"));
                drop(names);
                drop(ancestors);
                (depth, kept.len())
            })
            .expect("thread")
            .join()
            .expect("no overflow");
        assert_eq!(dropped, (LINKS, LINKS - 1));
    }
}
