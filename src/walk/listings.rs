//! Listings the count-ahead read, kept for the walk: so that with a
//! progress display each directory is listed, and each new file stat'ed,
//! once rather than twice.
//!
//! The count-ahead ([`super::count`]) lists every directory ahead of the
//! walk; it keeps what it listed here, keyed by the directory's (device,
//! inode) and stamped with its mtime and ctime. The walk (or a reader
//! reading for it, [`super::readers`]), about to list a directory, has
//! `fstat`ed it already; it takes the kept listing if the stamp is
//! unchanged, and lists the directory itself if not. Taking a listing
//! removes it, whatever the stamp said.
//!
//! Why the stamp is enough for the names and types: adding, removing or
//! renaming an entry sets the directory's mtime and ctime to the current
//! time, in the kernel's clock ticks. The count stamps the directory with
//! an `fstat` before it lists it, so a change after that `fstat` sets a
//! later stamp, unless it falls in the same tick as the change that set
//! the stamp. That is why a directory changed within [`FRESH`] of being
//! read is not kept (a tick is 1-10 ms on Linux; [`FRESH_WHOLE_SECONDS`]
//! where the file system keeps whole seconds only).
//!
//! The stamp says nothing of the entries' contents: the entries' stats
//! the count took may be older than the walk's own would be. The walk
//! uses them only where nothing is decided from them that a newer stat
//! would decide otherwise (see [`Listing::early`] and `Walker::early_stat`).
//!
//! The other way round too: a directory a reader lists for the walk
//! before the count has got there (at the start, the walk asks for
//! directories as the count does, and the readers serve the walk first)
//! is kept for the count, while it runs, which then counts that listing.
//!
//! Bounded: at most [`MOST_ENTRIES`] entries (about 7 MiB) are kept at
//! once, both ways together; beyond that nothing more is kept until some
//! are taken, and the other side lists those directories itself.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::FileType;

use super::entry_stat::EntryStat;
use super::tree::{Listed, Listing};

/// Entries kept at once, at most: about 7 MiB (an entry's stat, name and
/// type take some 220 bytes), enough for a tree of 20,000 files whole
/// and for the next 32,768 entries the walk needs in a larger one.
pub(super) const MOST_ENTRIES: usize = 32_768;
/// What is kept for the count is at most this share of the bound: a
/// reader cannot tell a directory the count has not reached from one it
/// listed and did not keep (the store full), and listings of the latter
/// are never taken, so they must not crowd out the walk's.
const COUNT_SHARE: usize = 8;
/// A directory changed this recently when the count read it is not
/// kept: a later change could fall in the same clock tick and leave the
/// stamp as it was. Linux stamps with a coarse clock that ticks every
/// 1-10 ms (`CONFIG_HZ` 1000 to 100); three ticks at the slowest.
const FRESH: Duration = Duration::from_millis(30);
/// As [`FRESH`], on a file system that keeps whole seconds only (both
/// times' nanoseconds zero: FAT, some network file systems): FAT's
/// mtimes go in steps of two seconds.
const FRESH_WHOLE_SECONDS: Duration = Duration::from_secs(3);

/// A directory's times when it was listed, in nanoseconds since the
/// epoch: any change to its entries moves both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Stamp {
    fn of(dir: &EntryStat) -> Stamp {
        let st = dir.raw();
        let ns = |secs: i64, nanos: i64| i128::from(secs) * 1_000_000_000 + i128::from(nanos);
        // A nanosecond count fits any of the kernel's widths.
        Stamp {
            mtime_ns: ns(st.st_mtime, st.st_mtime_nsec as i64),
            ctime_ns: ns(st.st_ctime, st.st_ctime_nsec as i64),
        }
    }

    /// Whether the file system gave whole seconds only.
    fn whole_seconds(&self) -> bool {
        self.mtime_ns % 1_000_000_000 == 0 && self.ctime_ns % 1_000_000_000 == 0
    }

    /// Whether a listing read at `read_at` (taken before the `fstat` that
    /// gave this stamp) is safe to keep: the last change was at least
    /// `fresh` (or, on whole seconds, [`FRESH_WHOLE_SECONDS`]) before.
    fn settled(&self, read_at: SystemTime, fresh: Duration) -> bool {
        let fresh = match self.whole_seconds() {
            true => fresh.max(FRESH_WHOLE_SECONDS),
            false => fresh,
        };
        let Ok(since_epoch) = read_at.duration_since(UNIX_EPOCH) else {
            return false;
        };
        let read_ns = i128::try_from(since_epoch.as_nanos()).unwrap_or(i128::MAX);
        let changed = self.mtime_ns.max(self.ctime_ns);
        read_ns.saturating_sub(changed) >= i128::try_from(fresh.as_nanos()).unwrap_or(i128::MAX)
    }
}

/// The (device, inode) of a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct DirId {
    dev: u64,
    ino: u64,
}

impl DirId {
    fn of(dir: &EntryStat) -> DirId {
        DirId {
            dev: dir.dev(),
            ino: dir.ino(),
        }
    }
}

/// One kept listing.
struct Kept {
    stamp: Stamp,
    entries: Vec<Listed>,
}

/// Who a listing is kept for: the side that did not list it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum For {
    /// Listed by the count-ahead.
    Walk,
    /// Listed by a reader for the walk, before the count got there.
    Count,
}

/// What is kept, under the store's lock.
#[derive(Default)]
struct Stored {
    for_walk: HashMap<DirId, Kept>,
    for_count: HashMap<DirId, Kept>,
    /// Entries in both maps, all listings together.
    entries: usize,
    /// Of those, the entries in `for_count`.
    count_entries: usize,
}

impl Stored {
    fn side(&mut self, side: For) -> &mut HashMap<DirId, Kept> {
        match side {
            For::Walk => &mut self.for_walk,
            For::Count => &mut self.for_count,
        }
    }

    /// Counts `entries` more in `side`.
    fn add(&mut self, side: For, entries: usize) {
        self.entries += entries;
        if side == For::Count {
            self.count_entries += entries;
        }
    }

    /// Counts `entries` fewer in `side`.
    fn remove(&mut self, side: For, entries: usize) {
        self.entries -= entries;
        if side == For::Count {
            self.count_entries -= entries;
        }
    }

    /// Whether `entries` more fit for `side` within `most` in all.
    fn fits(&self, side: For, entries: usize, most: usize) -> bool {
        let fits = self.entries + entries <= most;
        match side {
            For::Walk => fits,
            For::Count => fits && self.count_entries + entries <= most / COUNT_SHARE,
        }
    }
}

/// The store: shared by the count's tasks (which keep), the readers and
/// the walk (which take); everything under one lock, held only to move
/// a listing in or out (a listing is dropped after the lock is let go).
pub(super) struct Listings {
    stored: Mutex<Stored>,
    most: usize,
    fresh: Duration,
    /// Set by the count's last task: nothing more is kept for it. Read
    /// by the readers before they copy a listing for it.
    count_over: AtomicBool,
}

impl Listings {
    /// A store for at most `most` entries.
    pub(super) fn new(most: usize) -> Listings {
        Listings {
            stored: Mutex::new(Stored::default()),
            most,
            fresh: fresh_window(),
            count_over: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Stored> {
        // Nothing under the lock can panic half way (inserts and removals
        // of whole listings with their count), so a poisoned one is whole.
        self.stored
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Keeps `listing` of the directory `dir` for `side` (its `fstat`
    /// taken before it was listed, the clock read at `read_at` before
    /// that), if it was listed whole, had settled, and fits. For the walk
    /// under `follow` (`-L`) the stats of symlinks are left out: what a
    /// link points to can change without its directory changing.
    pub(super) fn keep(
        &self,
        side: For,
        dir: &EntryStat,
        read_at: SystemTime,
        mut listing: Listing,
        follow: bool,
    ) {
        let stamp = Stamp::of(dir);
        if listing.err.is_some() || !stamp.settled(read_at, self.fresh) {
            return;
        }
        if side == For::Count && self.count_over.load(Ordering::Acquire) {
            return;
        }
        if follow && side == For::Walk {
            let links = listing.entries.iter_mut();
            links
                .filter(|entry| entry.file_type == FileType::Symlink)
                .for_each(|entry| entry.stat = None);
        }
        let kept = Kept {
            stamp,
            entries: listing.entries,
        };
        let mut stored = self.lock();
        if !stored.fits(side, kept.entries.len(), self.most) {
            // Full: the other side lists this one itself.
            return;
        }
        stored.add(side, kept.entries.len());
        // The same directory twice (reached through a link under -L, or
        // a bind mount): the newer listing stays.
        let replaced = stored.side(side).insert(DirId::of(dir), kept);
        if let Some(old) = &replaced {
            stored.remove(side, old.entries.len());
        }
        drop(stored);
        drop(replaced);
    }

    /// Whether a listing of `entries` entries for the count would be
    /// kept and could still be taken: a reader copies one only then.
    pub(super) fn count_wants(&self, entries: usize) -> bool {
        !self.count_over.load(Ordering::Acquire) && self.lock().fits(For::Count, entries, self.most)
    }

    /// The count is over: what is kept for it is dropped, and nothing
    /// more is kept for it.
    pub(super) fn count_over(&self) {
        self.count_over.store(true, Ordering::Release);
        let mut stored = self.lock();
        let dropped = std::mem::take(&mut stored.for_count);
        let entries = stored.count_entries;
        stored.remove(For::Count, entries);
        drop(stored);
        drop(dropped);
    }

    /// The listing kept for `side` of the directory whose `fstat` is
    /// `dir`, if its stamp is unchanged; removed either way.
    pub(super) fn take(&self, side: For, dir: &EntryStat) -> Option<Listing> {
        let mut stored = self.lock();
        let kept = stored.side(side).remove(&DirId::of(dir))?;
        stored.remove(side, kept.entries.len());
        drop(stored);
        let unchanged = kept.stamp == Stamp::of(dir);
        unchanged.then_some(Listing {
            entries: kept.entries,
            err: None,
            early: true,
        })
    }

    /// Entries kept now.
    #[cfg(test)]
    pub(super) fn entries(&self) -> usize {
        self.lock().entries
    }
}

impl std::fmt::Debug for Listings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stored = self.lock();
        f.debug_struct("Listings")
            .field("for_walk", &stored.for_walk.len())
            .field("for_count", &stored.for_count.len())
            .field("entries", &stored.entries)
            .finish()
    }
}

/// [`FRESH`]; in debug builds (what the tests run) the milliseconds in
/// `PCOPY_TEST_FRESH_LISTINGS` if set: `0` keeps the listings of the
/// trees a test has just made, whose directories are all fresh. Not a
/// user interface.
fn fresh_window() -> Duration {
    #[cfg(debug_assertions)]
    if let Some(ms) = std::env::var("PCOPY_TEST_FRESH_LISTINGS")
        .ok()
        .and_then(|ms| ms.parse().ok())
    {
        return Duration::from_millis(ms);
    }
    FRESH
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::fs;
    use std::os::fd::AsFd;

    use super::*;

    fn dir_stat(path: &std::path::Path) -> EntryStat {
        let dir = fs::File::open(path).expect("open");
        EntryStat::of_fd(dir.as_fd()).expect("fstat")
    }

    fn listing(names: usize) -> Listing {
        let entry = |i: usize| Listed {
            name: OsString::from(format!("f{i}")),
            file_type: FileType::RegularFile,
            stat: None,
        };
        Listing {
            entries: (0..names).map(entry).collect(),
            err: None,
            early: false,
        }
    }

    /// A store that keeps listings however fresh, as the tests' trees are.
    fn store(most: usize) -> Listings {
        Listings {
            fresh: Duration::ZERO,
            ..Listings::new(most)
        }
    }

    fn later() -> SystemTime {
        SystemTime::now() + Duration::from_secs(10)
    }

    #[test]
    fn a_listing_is_taken_once_while_its_directory_is_unchanged() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let listings = store(100);
        let stat = dir_stat(tmp.path());
        listings.keep(For::Walk, &stat, later(), listing(3), false);
        assert_eq!(listings.entries(), 3);
        let taken = listings
            .take(For::Walk, &dir_stat(tmp.path()))
            .expect("kept");
        assert_eq!(taken.entries.len(), 3);
        assert!(taken.early);
        assert_eq!(listings.entries(), 0);
        assert!(
            listings.take(For::Walk, &stat).is_none(),
            "taken means removed"
        );
    }

    #[test]
    fn a_changed_directory_is_listed_again_and_its_listing_dropped() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let listings = store(100);
        listings.keep(For::Walk, &dir_stat(tmp.path()), later(), listing(2), false);
        // A new name, and a time no clock tick can have given already.
        fs::write(tmp.path().join("new"), "x").expect("write");
        let old = filetime_secs_ago(tmp.path(), 100);
        assert!(listings.take(For::Walk, &old).is_none());
        assert_eq!(listings.entries(), 0, "dropped, not kept");
    }

    /// The directory's stat after setting its mtime `secs` before now:
    /// both its mtime and its ctime then differ from before.
    fn filetime_secs_ago(path: &std::path::Path, secs: u64) -> EntryStat {
        let then = SystemTime::now() - Duration::from_secs(secs);
        let file = fs::File::open(path).expect("open");
        file.set_modified(then).expect("set mtime");
        dir_stat(path)
    }

    #[test]
    fn a_directory_changed_just_before_it_was_read_is_not_kept() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let listings = Listings {
            fresh: FRESH,
            ..Listings::new(100)
        };
        let stat = dir_stat(tmp.path());
        let changed =
            UNIX_EPOCH + Duration::new(stat.raw().st_mtime as u64, stat.raw().st_mtime_nsec as u32);
        listings.keep(
            For::Walk,
            &stat,
            changed + Duration::from_millis(29),
            listing(1),
            false,
        );
        assert_eq!(listings.entries(), 0, "29 ms after its change");
        listings.keep(
            For::Walk,
            &stat,
            changed + Duration::from_millis(31),
            listing(1),
            false,
        );
        assert_eq!(listings.entries(), 1, "31 ms after");
    }

    #[test]
    fn whole_second_stamps_need_three_seconds_to_settle() {
        let stamp = Stamp {
            mtime_ns: 1_000_000_000_000,
            ctime_ns: 1_000_000_000_000,
        };
        let at = |ms: u64| UNIX_EPOCH + Duration::from_secs(1000) + Duration::from_millis(ms);
        assert!(!stamp.settled(at(2_999), FRESH));
        assert!(stamp.settled(at(3_000), FRESH));
        let fine = Stamp {
            mtime_ns: 1_000_000_000_001,
            ..stamp
        };
        assert!(fine.settled(at(31), FRESH));
        assert!(!fine.settled(at(29), FRESH));
    }

    #[test]
    fn the_store_keeps_no_more_than_its_bound_and_takes_free_room() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let listings = store(10);
        let dirs: Vec<_> = (0..4)
            .map(|i| {
                let path = tmp.path().join(format!("d{i}"));
                fs::create_dir(&path).expect("mkdir");
                dir_stat(&path)
            })
            .collect();
        listings.keep(For::Walk, &dirs[0], later(), listing(6), false);
        listings.keep(For::Walk, &dirs[1], later(), listing(5), false);
        assert_eq!(listings.entries(), 6, "the second would not fit");
        listings.keep(For::Walk, &dirs[2], later(), listing(4), false);
        assert_eq!(listings.entries(), 10, "a smaller one fits");
        assert!(listings.take(For::Walk, &dirs[1]).is_none(), "never kept");
        assert!(listings.take(For::Walk, &dirs[0]).is_some());
        listings.keep(For::Walk, &dirs[3], later(), listing(5), false);
        assert_eq!(listings.entries(), 9, "room again");
        let whole = |i: usize| listings.take(For::Walk, &dirs[i]).map(|l| l.entries.len());
        assert_eq!((whole(2), whole(3)), (Some(4), Some(5)));
    }

    #[test]
    fn a_listing_for_the_count_is_its_alone_and_dropped_when_it_is_over() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        fs::create_dir(&a).expect("mkdir");
        fs::create_dir(&b).expect("mkdir");
        let listings = store(100);
        listings.keep(For::Count, &dir_stat(&a), later(), listing(2), false);
        listings.keep(For::Count, &dir_stat(&b), later(), listing(3), false);
        assert!(listings.take(For::Walk, &dir_stat(&a)).is_none());
        assert!(listings.take(For::Count, &dir_stat(&a)).is_some());
        assert!(listings.count_wants(1));
        assert!(
            !listings.count_wants(100 / COUNT_SHARE),
            "a share of the bound"
        );
        listings.count_over();
        assert!(!listings.count_wants(1));
        assert_eq!(listings.entries(), 0, "b's listing dropped");
        listings.keep(For::Count, &dir_stat(&a), later(), listing(2), false);
        assert_eq!(
            listings.entries(),
            0,
            "nothing kept for a count that is over"
        );
        listings.keep(For::Walk, &dir_stat(&a), later(), listing(2), false);
        assert_eq!(listings.entries(), 2);
    }

    #[test]
    fn a_listing_cut_short_is_not_kept_and_links_lose_their_stats_under_follow() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let listings = store(100);
        let stat = dir_stat(tmp.path());
        let mut cut = listing(2);
        cut.err = Some(rustix::io::Errno::IO);
        listings.keep(For::Walk, &stat, later(), cut, false);
        assert_eq!(listings.entries(), 0);
        let mut linked = listing(2);
        let file_stat = Some(stat);
        linked.entries[0].stat = file_stat;
        linked.entries[1].stat = file_stat;
        linked.entries[1].file_type = FileType::Symlink;
        listings.keep(For::Walk, &stat, later(), linked, true);
        let taken = listings.take(For::Walk, &stat).expect("kept");
        let stats: Vec<bool> = taken.entries.iter().map(|e| e.stat.is_some()).collect();
        assert_eq!(stats, [true, false]);
    }
}
