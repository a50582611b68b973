//! The walk: a thread of the parent that walks the sources, creates the
//! directories in the destination and hands every other entry to the
//! workers, in batches, on the bounded jobs queue.
//!
//! This file walks; its others: the source directories, opened beneath
//! their parent and listed, and the stack of them within the descriptor
//! budget ([`tree`]), the count-ahead that tells the totals early
//! ([`count`]) and the listings it keeps for the walk ([`listings`]),
//! what the walk sends and how ([`batch`]: the jobs queue's producer
//! side, and [`WalkEvent`]s for the main thread, each batch announced
//! before it is queued), the destination side of each
//! directory ([`dest`]), the source side's stats ([`entry_stat`]), the
//! threads that read directories ahead of the walk ([`readers`]), the
//! directories above a root kept by path ([`implied`]), and the walker's
//! halves of split files ([`split`]) and hard links ([`links`]).
//!
//! It may call the selection (`select`), the engine's helpers for temp
//! files (`copy`) and the path helpers, and it makes the records the
//! finish stage applies (`finish::dirmeta`, `finish::links`); it never
//! calls the run stage or the reporter: all it tells goes on the channel.

mod batch;
mod case;
mod claims;
pub(crate) mod count;
mod dest;
mod entry_stat;
mod implied;
mod links;
mod listings;
mod readers;
pub(crate) mod split;
mod tree;

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

use procpool::Queue;
use rustix::fs::Mode;
use rustix::io::Errno;

use crate::copy::chmod::Chmod;
use crate::finish::dirmeta::DirMeta;
use crate::finish::links::LinkJob;
use crate::job::{EntryKind, FailKind, FileJob, Preserve, WorkerEvent};
use crate::plan::Root;
use crate::relpath;
use crate::select::dir_rules::{BadRulesFile, DirRules};
use crate::select::filter::{Chain, Filter};
use crate::select::shard::Shard;
use crate::ui::escape::io_reason;
pub(crate) use batch::{BATCH_FILES, WalkEvent};
use batch::{Batcher, NewJob, Stopped};
use claims::{Claim, Claims};
use dest::{DestDir, DestDirs, DestNames, DirFailure, Parent};
use entry_stat::EntryStat;
use implied::ImpliedChain;
use links::LinkTracker;
use listings::{For, Listings};
pub(crate) use readers::MOST_READERS;
use readers::{ReadDir, Readers};
use split::{SplitStart, Splitter};
use tree::{Ahead, Listed, Listing, NewFrame, Stack};

/// What the walk does with each entry: the same for every run of one
/// command line. Built by `Config::walk_setup`.
#[derive(Debug, Clone)]
pub(crate) struct WalkSetup {
    /// `-L`: follow symlinks in the sources.
    pub(crate) dereference: bool,
    pub(crate) dry_run: bool,
    /// The parts of `-a` in force: hard links are keyed, directory
    /// attributes recorded, directory modes kept or not.
    pub(crate) keep: Preserve,
    /// The umask: what a new directory's mode loses under `--no-perms`.
    pub(crate) umask: u32,
    /// The owner and group directories get (`-a`, `--chown`).
    pub(crate) owners: crate::copy::owners::Owners,
    /// `-A`: record directory ACLs.
    pub(crate) acls: bool,
    pub(crate) filter: Option<Arc<Filter>>,
    /// Only this shard's files are queued; every directory is made.
    pub(crate) shard: Option<Shard>,
    /// Splits large files over the workers; `None`: never.
    pub(crate) splitter: Option<Splitter>,
    /// Spares other shards' temp files (see `CopyOptions::temp_tag`).
    pub(crate) temp_tag: String,
    /// Levels of directories below a root the walk holds open (two
    /// descriptors each, source and destination), from the descriptor
    /// budget; deeper ones are reopened when the walk climbs back.
    pub(crate) open_levels: usize,
    /// The workers the jobs are for.
    pub(crate) workers: usize,
    /// The most threads that read directories ahead of the walk (see
    /// [`readers`]: fewer to start with, more while requests are slow),
    /// from the descriptor budget; 0: the walk reads every one itself.
    pub(crate) readers: usize,
    /// Run the count-ahead (see [`count`]): only for a progress display.
    pub(crate) count_ahead: bool,
    /// `--max-size`/`--min-size`: a file's size decides whether it is
    /// copied.
    pub(crate) size_limits: bool,
    /// `-i`: say how each existing destination directory differs from its
    /// source ([`WalkEvent::DirChanged`]).
    pub(crate) itemize: bool,
    /// `--existing`: enter only directories already in the destination.
    pub(crate) existing: bool,
    /// `--chmod`: changes to each directory's recorded mode.
    pub(crate) chmod: Chmod,
    /// `-x`: a directory on another filesystem than its root is made
    /// empty (1) or left out (2); 0 crosses.
    pub(crate) one_file_system: u8,
    /// `-b`: a non-directory making way for a directory is kept under
    /// its backup name.
    pub(crate) backup: Option<crate::job::BackupOptions>,
}

/// Where a walk starts, and the queues it feeds.
#[derive(Debug)]
pub(crate) struct WalkStart {
    pub(crate) roots: Vec<Root>,
    /// The open destination root; `None` only when dry running into a
    /// destination that does not exist.
    pub(crate) dst_root: Option<OwnedFd>,
    /// The destination root was created by this run: it is empty.
    pub(crate) dst_root_new: bool,
    /// The destination filesystem tells no names apart by case (exFAT,
    /// FAT); directories with ext4's casefold attribute are found by
    /// the walk itself.
    pub(crate) case_insensitive: bool,
    pub(crate) jobs: Queue<Vec<FileJob>>,
    /// The done queue, only to wake the main thread when the walk ends.
    pub(crate) wake: Queue<Vec<WorkerEvent>>,
}

/// The walk running in its thread, as the main thread holds it.
#[derive(Debug)]
pub(crate) struct Walking {
    /// What the walk tells; disconnected once the thread is gone.
    pub(crate) events: Receiver<WalkEvent>,
    /// Set by the main thread, read by the walk before each entry.
    stop: Arc<AtomicBool>,
    /// Set by the main thread or by the walk when it ends, read by the
    /// count-ahead before each directory.
    count_stop: Arc<AtomicBool>,
    /// `None` once joined.
    thread: Option<JoinHandle<()>>,
}

impl Walking {
    /// Asks the walk to stop at its next entry.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.count_stop.store(true, Ordering::Relaxed);
    }

    /// Waits for the walk's thread to end.
    pub(crate) fn join(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts the walk in a thread of its own.
pub(crate) fn spawn(setup: WalkSetup, start: WalkStart) -> std::io::Result<Walking> {
    let (events, received) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let count_stop = Arc::new(AtomicBool::new(false));
    // The count-ahead runs on the readers: one at least, when it runs.
    let most = setup.readers.max(usize::from(setup.count_ahead));
    let first = Readers::first(most, setup.count_ahead);
    // What the count-ahead lists it keeps for the walk, which then lists
    // each directory once (see `listings`).
    let listings = (setup.count_ahead).then(|| Arc::new(Listings::new(listings::MOST_ENTRIES)));
    let follow = setup.dereference;
    let readers = Readers::start(first, most, setup.readers > 0, follow, listings.clone());
    let listings = listings.filter(|_| readers.is_some());
    if let Some(readers) = readers.as_ref().filter(|_| setup.count_ahead) {
        let stop = Arc::clone(&count_stop);
        let kept = listings.clone();
        count::start(&setup, &start.roots, events.clone(), stop, readers, kept);
    }
    let task = WalkTask {
        readers,
        listings,
        setup,
        start,
        events,
        stop: Arc::clone(&stop),
        count_stop: Arc::clone(&count_stop),
    };
    let thread = std::thread::Builder::new()
        .name("pcopy-walk".into())
        .spawn(move || walk(task))?;
    Ok(Walking {
        events: received,
        stop,
        count_stop,
        thread: Some(thread),
    })
}

/// What the walk's thread runs with.
#[derive(Debug)]
struct WalkTask {
    /// The directory readers, when there are any: the walk's to drop.
    readers: Option<Readers>,
    /// The count-ahead's listings, when it runs.
    listings: Option<Arc<Listings>>,
    setup: WalkSetup,
    start: WalkStart,
    events: Sender<WalkEvent>,
    /// Set by the main thread to stop the walk early.
    stop: Arc<AtomicBool>,
    /// Set here when the walk ends, panics included (see
    /// [`count::StopOnDrop`]): the count-ahead is of no use then.
    count_stop: Arc<AtomicBool>,
}

/// Walks every root, then closes the jobs queue and reports `Finished`.
fn walk(task: WalkTask) {
    let WalkTask {
        readers,
        listings,
        mut setup,
        start,
        events,
        stop,
        count_stop,
    } = task;
    let count_stop = count::StopOnDrop(count_stop);
    let temp_tag = std::mem::take(&mut setup.temp_tag);
    let keep_partial = setup.splitter.as_ref().is_some_and(Splitter::partial);
    let mut dest = DestDirs::new(
        start.dst_root,
        start.dst_root_new,
        setup.dry_run,
        temp_tag,
        keep_partial,
    );
    if start.roots.len() > 1 {
        dest.track_new_dirs();
    }
    if start.case_insensitive {
        dest.ignore_case();
    }
    if let Some(opts) = &setup.backup {
        dest.keep_backups(opts);
    }
    let turns = setup.splitter.as_ref().map_or(1, Splitter::workers);
    let workers = setup.workers;
    let mut walker = Walker {
        readers,
        listings,
        dest,
        setup,
        links: LinkTracker::default(),
        stop,
        out: Batcher::new(start.jobs, events, start.wake, turns, workers),
        dirs: Vec::new(),
        claims: (start.roots.len() > 1).then(Claims::new),
    };
    let mut chain = ImpliedChain::default();
    let walked = start
        .roots
        .iter()
        .try_for_each(|root| walker.walk_root(root, &mut chain));
    if walked.is_ok() {
        let _ = walker.out.drain();
    }
    drop(count_stop);
    walker.out.finish(walker.dirs);
}

/// The walker's state: the destination side, the hard links seen, where
/// jobs go, and the directories walked.
struct Walker {
    /// `None`: no readers; the walk reads every directory itself (as it
    /// does when they only count, see [`Readers::read_ahead`]).
    readers: Option<Readers>,
    /// The count-ahead's listings, taken before listing a directory anew.
    listings: Option<Arc<Listings>>,
    dest: DestDirs,
    setup: WalkSetup,
    links: LinkTracker,
    stop: Arc<AtomicBool>,
    out: Batcher,
    dirs: Vec<DirMeta>,
    /// The names handed out so far, when several sources share DST.
    claims: Option<Claims>,
}

impl Walker {
    fn walk_root(&mut self, root: &Root, chain: &mut ImpliedChain) -> Result<(), Stopped> {
        if !self.enter_implied(root, chain)? {
            return Ok(());
        }
        if !root.is_dir {
            return self.add_single(root);
        }
        let base = chain.parent();
        let mut stack = Stack::new(self.setup.open_levels, self.setup.dereference);
        self.enter_root(root, base, &mut stack)?;
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Err(Stopped);
            }
            let Some(top) = stack.top() else {
                return Ok(());
            };
            match top.pending.pop() {
                Some(entry) => self.walk_entry(entry, &mut stack)?,
                None => self.leave_dir(&mut stack)?,
            }
        }
    }

    /// Done with the top directory: back to its parent, reopened if the
    /// budget had closed it (or left out, reported, if it is gone).
    fn leave_dir(&mut self, stack: &mut Stack) -> Result<(), Stopped> {
        if let (Some(readers), Some(top)) = (&mut self.readers, stack.top()) {
            for (_, ticket) in top.ahead.asked.drain(..) {
                readers.cancel(ticket);
            }
        }
        stack.pop();
        while let Err(err) = stack.reopen_top(&self.dest) {
            let path = stack.top_path();
            stack.pop();
            let err = std::io::Error::from(err);
            self.fail(
                &path,
                io_reason(&err),
                vanished_or(&err, FailKind::SourceIo),
            )?;
        }
        Ok(())
    }

    /// Enters a root directory, made in `base` (its implied parent, or
    /// the destination root).
    fn enter_root(
        &mut self,
        root: &Root,
        base: Parent<'_>,
        stack: &mut Stack,
    ) -> Result<(), Stopped> {
        let claim = self.claim(&root.rel_dst, true);
        if claim == Claim::Taken {
            return Ok(());
        }
        let opened = tree::open_root(&root.src)
            .and_then(|fd| EntryStat::of_fd(fd.as_fd()).map(|stat| (stat, fd)));
        match opened {
            Ok((stat, fd)) => {
                let dir = OpenedDir {
                    name: OsString::new(),
                    path: root.src.clone(),
                    rel: root.rel_dst.clone(),
                    stat,
                    fd,
                    merge: claim == Claim::Merge,
                    unlisted: root.flat,
                    listing: None,
                };
                self.enter_opened(dir, base, stack)
            }
            Err(err) => {
                let err = std::io::Error::from(err);
                let kind = vanished_or(&err, FailKind::SourceIo);
                self.fail(&root.src, io_reason(&err), kind)
            }
        }
    }

    /// One entry of the top directory.
    fn walk_entry(&mut self, mut entry: Listed, stack: &mut Stack) -> Result<(), Stopped> {
        let Some(top) = stack.peek() else {
            return Ok(());
        };
        let (path, rel) = top.child(&entry.name);
        let Some(src_dir) = stack.top_src() else {
            return Ok(());
        };
        let follow = self.setup.dereference;
        let typed = match self.entry_type(src_dir, &mut entry, &path)? {
            Some(typed) => typed,
            None => return Ok(()),
        };
        if self.excluded_in(&rel, typed.is_dir, stack) {
            return Ok(());
        }
        let claim = self.claim(&rel, typed.is_dir);
        if claim == Claim::Taken {
            return Ok(());
        }
        let collision = stack.peek().and_then(|top| top.collision(&entry.name));
        if let Some(other) = collision {
            let why = format!(
                "name collides with \"{}\" on this case-insensitive destination; neither copied",
                crate::ui::escape::Escaped::os(other)
            );
            return self.fail(&path, why, FailKind::DestIo);
        }
        if typed.is_dir {
            let merge = claim == Claim::Merge;
            return self.enter_child(
                stack,
                ChildDir {
                    name: entry.name,
                    path,
                    rel,
                    merge,
                },
            );
        }
        let kind = typed.kind;
        let Some(top) = stack.peek() else {
            return Ok(());
        };
        let place = Place::of(&top.dest, top.dest_names());
        let early = top.early;
        let stat =
            (typed.stat).filter(|st| !early || self.early_stat_serves(&place, &entry.name, st));
        // A name the worker compares is not stat'ed here, but a stat a
        // reader already took goes along: the worker then makes one stat
        // (of the destination) where it would make two.
        let (md, seen) = match self.worker_stats(&place, &kind, &entry.name) {
            true => (None, stat.as_ref().map(EntryStat::source_meta)),
            false => (
                stat.or_else(|| EntryStat::at(src_dir, &entry.name, follow).ok()),
                None,
            ),
        };
        let found = Found {
            src: path,
            rel,
            kind,
            md,
            seen,
        };
        self.add_entry(found, place)
    }

    /// What an entry is: from the listing when it says (and `-L` need not
    /// look through a link), else from a `stat` beneath its directory.
    /// `None`: it could not be told, and was reported.
    fn entry_type(
        &mut self,
        dir: BorrowedFd<'_>,
        entry: &mut Listed,
        path: &Path,
    ) -> Result<Option<Typed>, Stopped> {
        use rustix::fs::FileType;
        let follow = self.setup.dereference;
        let listed = entry.file_type;
        let ahead = entry.stat.take();
        if listed != FileType::Unknown && !(follow && listed == FileType::Symlink) {
            return Ok(Some(Typed::of(listed, ahead)));
        }
        if let Some(stat) = ahead {
            return Ok(Some(Typed::of(stat.file_type(), Some(stat))));
        }
        match EntryStat::at(dir, &entry.name, follow) {
            Ok(stat) => Ok(Some(Typed::of(stat.file_type(), Some(stat)))),
            Err(err) => {
                // Under -L a dangling symlink is NotFound, but it did not
                // vanish: it never pointed anywhere.
                let dangling = follow
                    && err.kind() == std::io::ErrorKind::NotFound
                    && EntryStat::at(dir, &entry.name, false).is_ok();
                let kind = match dangling {
                    true => FailKind::SourceIo,
                    false => vanished_or(&err, FailKind::SourceIo),
                };
                self.fail(path, io_reason(&err), kind)?;
                Ok(None)
            }
        }
    }

    /// Enters the subdirectory `name` of the top directory: opened beneath
    /// it, made at the destination, listed and pushed. One that cannot be
    /// opened is still made (with its metadata) and reported.
    fn enter_child(&mut self, stack: &mut Stack, child: ChildDir) -> Result<(), Stopped> {
        let ChildDir {
            name,
            path,
            rel,
            merge,
        } = child;
        let follow = self.setup.dereference;
        let read = self.take_ahead(stack, &name);
        let Some(src_dir) = stack.top_src() else {
            return Ok(());
        };
        let (fd, stat, listing) = match read {
            Some(ReadDir { fd, stat, listing }) => (fd, stat, Some(listing)),
            None => {
                let fd = match tree::open_dir(src_dir, &name, follow) {
                    Ok(fd) => fd,
                    Err(err) => return self.unreadable_dir(stack, &name, &path, &rel, err),
                };
                match EntryStat::of_fd(fd.as_fd()) {
                    Ok(stat) => (fd, stat, None),
                    Err(err) => {
                        return self.fail(&path, io_reason(&err.into()), FailKind::SourceIo);
                    }
                }
            }
        };
        let mount =
            self.setup.one_file_system > 0 && stack.root_dev().is_some_and(|dev| dev != stat.dev());
        if mount && self.setup.one_file_system > 1 {
            return Ok(());
        }
        if follow {
            if let Some(ancestor) = stack.loop_to((stat.dev(), stat.ino())) {
                let reason = format!(
                    "symbolic link loop back to {}",
                    crate::ui::escape::Escaped::path(ancestor)
                );
                return self.fail(&path, reason, FailKind::SourceIo);
            }
        }
        let dir = OpenedDir {
            name,
            path,
            rel,
            stat,
            fd,
            merge,
            unlisted: mount,
            listing,
        };
        self.enter_opened(dir, Parent::Root, stack)
    }

    /// A directory that cannot be opened: made at the destination with its
    /// metadata if it can be stat'ed, and its contents reported missing.
    fn unreadable_dir(
        &mut self,
        stack: &mut Stack,
        name: &OsStr,
        path: &Path,
        rel: &OsStr,
        err: Errno,
    ) -> Result<(), Stopped> {
        let err = std::io::Error::from(err);
        let (Some(src_dir), Some(top)) = (stack.top_src(), stack.peek()) else {
            return Ok(());
        };
        if let Ok(stat) = EntryStat::at(src_dir, name, self.setup.dereference) {
            if stat.file_type() == rustix::fs::FileType::Directory {
                if let Err(failure) = self.enter_dir(Parent::Dir(&top.dest), None, rel, &stat) {
                    return self.fail(path, failure.reason, failure.kind);
                }
            }
        }
        self.fail(path, io_reason(&err), vanished_or(&err, FailKind::SourceIo))
    }

    /// Makes the destination of an opened directory, records its metadata,
    /// lists it and pushes it on the stack.
    fn enter_opened(
        &mut self,
        mut dir: OpenedDir,
        base: Parent<'_>,
        stack: &mut Stack,
    ) -> Result<(), Stopped> {
        let parent = match stack.peek() {
            Some(top) => Parent::Dir(&top.dest),
            None => base,
        };
        if self.setup.existing && !self.dest.has(parent, &dir.rel) {
            return Ok(());
        }
        let dest = match self.enter_dir(parent, Some(dir.fd.as_fd()), &dir.rel, &dir.stat) {
            Ok(dest) => dest,
            Err(failure) => return self.fail(&dir.path, failure.reason, failure.kind),
        };
        if dir.merge {
            // The earlier source's directory keeps its metadata.
            self.dirs.pop();
        }
        // A mount point under -x, or a flat root, is made, but its
        // contents are left out.
        let kept = || (self.listings.as_ref()).and_then(|kept| kept.take(For::Walk, &dir.stat));
        let listing = match (dir.unlisted, dir.listing.take()) {
            (true, _) => Listing::default(),
            (false, Some(listing)) => listing,
            (false, None) => kept().unwrap_or_else(|| tree::list(dir.fd.as_fd())),
        };
        if let Some(err) = listing.err {
            let err = std::io::Error::from(err);
            self.fail(
                &dir.path,
                io_reason(&err),
                vanished_or(&err, FailKind::SourceIo),
            )?;
        }
        let rules = self.read_dir_rules(&dir, &listing.entries)?;
        let ahead = self.plan_ahead(&listing.entries, &dir.rel, stack, rules.as_ref());
        stack.push(NewFrame {
            early: listing.early,
            listed: listing.entries,
            rules,
            name: dir.name,
            path: dir.path,
            rel: dir.rel,
            stat: dir.stat,
            src: dir.fd,
            dest,
            ahead,
        });
        self.ask_ahead(stack);
        Ok(())
    }

    /// The subdirectories of a directory being entered that the readers
    /// are to read: those the listing says are directories and no filter
    /// leaves out (others the walk opens itself, if it enters them).
    /// `rules` are the directory's own dir-merge rules.
    fn plan_ahead(
        &self,
        entries: &[Listed],
        rel: &OsStr,
        stack: &Stack,
        rules: Option<&DirRules>,
    ) -> Ahead {
        if !self.readers.as_ref().is_some_and(Readers::read_ahead) {
            return Ahead::default();
        }
        let mut dirs: Vec<&DirRules> = rules.into_iter().collect();
        if self
            .setup
            .filter
            .as_ref()
            .is_some_and(|f| !f.dir_merges().is_empty())
        {
            dirs.extend(stack.dir_rules());
        }
        let mut later: Vec<OsString> = entries
            .iter()
            .filter(|e| e.file_type == rustix::fs::FileType::Directory)
            .filter(|e| !self.excluded(&relpath::join(rel, &e.name), true, &dirs))
            .map(|e| e.name.clone())
            .collect();
        later.reverse();
        Ahead {
            asked: Default::default(),
            later,
        }
    }

    /// Asks the readers for more directories while their window has room:
    /// the deepest directory's subdirectories first, as the walk, depth
    /// first, needs them first.
    fn ask_ahead(&mut self, stack: &mut Stack) {
        let Some(readers) = &mut self.readers else {
            return;
        };
        for frame in stack.frames_mut().rev() {
            if !readers.has_room() {
                return;
            }
            // A frame closed for the budget is asked for again once the
            // walk climbs back and reopens it.
            let Some(src) = frame.src_shared().cloned() else {
                continue;
            };
            while readers.has_room() {
                let Some(name) = frame.ahead.later.pop() else {
                    break;
                };
                let ticket = readers.submit(&src, name.clone());
                frame.ahead.asked.push_back((name, ticket));
            }
        }
    }

    /// The readers' result for the subdirectory `name` of the top
    /// directory, if they have it; the walk's names are in the order it
    /// asked for them, so those it passed by are withdrawn.
    fn take_ahead(&mut self, stack: &mut Stack, name: &OsStr) -> Option<ReadDir> {
        let readers = self.readers.as_mut()?;
        let top = stack.top()?;
        let mut read = None;
        while let Some((asked, ticket)) = top.ahead.asked.pop_front() {
            if asked == name {
                read = readers.take(ticket);
                break;
            }
            readers.cancel(ticket);
        }
        if read.is_none() {
            // Not asked yet: the names up to it are passed by too.
            let later = &mut top.ahead.later;
            if let Some(at) = later.iter().rposition(|n| n == name) {
                later.truncate(at);
            }
        }
        self.ask_ahead(stack);
        read
    }

    /// Whether the stat the count-ahead took of the entry `name`, perhaps
    /// long before (see [`listings`]), may stand for the walk's own. Its
    /// type may: a name changes type only by being replaced, which the
    /// directory's stamp covers (and under `-L` links' stats are not
    /// kept). Its size and times may be older than the walk's would be:
    /// they decide nothing where nothing can be at the name in the
    /// destination (its directory is new, or did not hold the name when
    /// the walk entered it), since the copy reads its own `fstat` of the
    /// source and they only count in the totals and size the batches. So
    /// the entry is stat'ed anew where the quick check could compare them
    /// with a destination and skip a file changed since, where a size
    /// limit (`--max-size`, `--min-size`) would judge them, and for a
    /// file to split, whose temp takes its length and times from them.
    /// Under `-a` a link count that changed since (a name linked to a
    /// file elsewhere while pcopy runs) makes the file copied rather than
    /// linked, or linked to a name that is gone (then copied), as a
    /// link made just after the walk's own stat would.
    fn early_stat_serves(&self, place: &Place<'_>, name: &OsStr, stat: &EntryStat) -> bool {
        let nothing_there = place.fresh || place.names.is_some_and(|names| !names.contains(name));
        let splits = (self.setup.splitter.as_ref()).is_some_and(|s| s.wants(stat));
        nothing_there && !splits && !self.setup.size_limits
    }

    /// Whether the worker, rather than the walker, stats this source entry:
    /// when something of that name is in the destination, the worker looks
    /// at both anyway to compare them, and the walk, the critical path of
    /// an incremental run, gets shorter. New names are stat'ed here, as
    /// their sizes count in the progress totals, the batches and splitting;
    /// so are special files, and all entries under `-a` (hard links need
    /// the link count) or `-L` (the type is the target's).
    fn worker_stats(&self, place: &Place<'_>, kind: &EntryKind, name: &OsStr) -> bool {
        !self.setup.keep.hard_links
            && !self.setup.dereference
            && *kind != EntryKind::Special
            && place.names.is_some_and(|names| names.contains(name))
    }

    /// Whether an earlier source already has `rel` (see [`Claims`]).
    fn claim(&mut self, rel: &OsStr, is_dir: bool) -> Claim {
        match &mut self.claims {
            Some(claims) => claims.claim(rel, is_dir),
            None => Claim::Mine,
        }
    }

    /// [`Walker::excluded`] for an entry of the top directory of `stack`,
    /// under the dir-merge rules of the directories it is in.
    fn excluded_in(&self, rel: &OsStr, is_dir: bool, stack: &Stack) -> bool {
        let Some(filter) = &self.setup.filter else {
            return false;
        };
        match filter.dir_merges().is_empty() {
            true => filter.excludes(rel, is_dir, &[]),
            false => filter.excludes(rel, is_dir, &stack.dir_rules()),
        }
    }

    fn excluded(&self, rel: &OsStr, is_dir: bool, dirs: Chain<'_>) -> bool {
        (self.setup.filter)
            .as_ref()
            .is_some_and(|filter| filter.excludes(rel, is_dir, dirs))
    }

    /// The rules of the dir-merge files in the directory `dir` just listed
    /// (`rel` below DST), read beneath its descriptor; a file that cannot
    /// be read or holds a bad rule is reported and left out.
    fn read_dir_rules(
        &mut self,
        dir: &OpenedDir,
        listed: &[Listed],
    ) -> Result<Option<DirRules>, Stopped> {
        let Some(filter) = self
            .setup
            .filter
            .clone()
            .filter(|f| !f.dir_merges().is_empty())
        else {
            return Ok(None);
        };
        let present = |name: &OsStr| listed.iter().any(|entry| entry.name == name);
        let mut bad = Vec::new();
        let rules = DirRules::read(
            dir.fd.as_fd(),
            &dir.rel,
            filter.dir_merges(),
            &present,
            &mut bad,
        );
        for BadRulesFile { name, reason } in bad {
            self.fail(&dir.path.join(name), reason, FailKind::SourceIo)?;
        }
        Ok(rules)
    }

    /// A source that is not a directory: one job.
    fn add_single(&mut self, root: &Root) -> Result<(), Stopped> {
        match EntryStat::of_path(&root.src, self.setup.dereference) {
            Ok(meta) => {
                let kind = entry_kind(meta.is_file(), meta.is_symlink());
                let rel = root.rel_dst.clone();
                if self.excluded(&rel, false, &[]) || self.claim(&rel, false) == Claim::Taken {
                    return Ok(());
                }
                // Not split: the parent may be below the root, and a single
                // file's directory is never cleared of stale temps.
                let place = Place {
                    fresh: self.dest.root_is_new(),
                    dir: None,
                    names: None,
                };
                let found = Found {
                    src: root.src.clone(),
                    rel,
                    kind,
                    md: Some(meta),
                    seen: None,
                };
                self.add_entry(found, place)
            }
            Err(err) => {
                let kind = vanished_or(&err, FailKind::SourceIo);
                self.fail(&root.src, io_reason(&err), kind)
            }
        }
    }

    /// Queues an entry of this shard, or with `-a` announces a later name
    /// of a multiply-linked file as a link to its first name.
    fn add_entry(&mut self, found: Found, place: Place<'_>) -> Result<(), Stopped> {
        let Found {
            src,
            rel,
            kind,
            md,
            seen,
        } = found;
        let fresh = place.fresh;
        let counted = md.is_some();
        let meta = md.as_ref().map(EntryStat::source_meta).or(seen);
        // Any non-directory can have several names: files, symlinks,
        // fifos, sockets and device nodes alike (as `rsync -aH` keeps).
        let linked = md
            .as_ref()
            .filter(|m| self.setup.keep.hard_links && m.nlink() > 1);
        // All names of a linked file go to one shard: the inode's.
        let owned = match (self.setup.shard, linked) {
            (None, _) => true,
            (Some(shard), Some(md)) => shard.owns_key(&md.ino().to_le_bytes()),
            (Some(shard), None) => shard.owns(&rel),
        };
        if !owned {
            return Ok(());
        }
        let target = linked.and_then(|md| self.links.target_for(md, &rel));
        let Some(target) = target else {
            if let (Some(dir), Some(md)) = (place.dir, &md) {
                if let Some(split) = self.try_split(dir, &rel, md, fresh)? {
                    return self.out.add_split(&src, rel, md, fresh, split);
                }
            }
            let new = NewJob {
                src,
                rel_dst: rel,
                kind,
                meta,
                counted,
                fresh,
            };
            return self.out.add(new);
        };
        // A link moves no data: no size to count in the progress totals.
        let job = FileJob {
            id: self.out.take_id(),
            src: src.into_os_string(),
            rel_dst: rel,
            kind,
            meta: None,
            counted: false,
            fresh,
            range: None,
        };
        self.out.send(WalkEvent::HardLink(LinkJob { job, target }))
    }

    /// Makes the temp of a file to split, if it is one (see `Splitter`).
    fn try_split(
        &mut self,
        dir: BorrowedFd<'_>,
        rel: &OsStr,
        md: &EntryStat,
        fresh: bool,
    ) -> Result<Option<SplitStart>, Stopped> {
        if !self.setup.splitter.as_ref().is_some_and(|s| s.wants(md)) {
            return Ok(None);
        }
        // What is batched goes first: from the temp's creation on, nothing
        // may stop the walk before the main thread hears of the temp. No
        // round of parts here: the new file's first part goes next.
        self.out.flush_batch()?;
        let splitter = self.setup.splitter.as_ref();
        Ok(splitter.and_then(|s| s.start(dir, relpath::last_name(rel), md, fresh)))
    }

    /// Creates (or reuses) the destination directory `rel` beneath
    /// `parent` without following a symlink there, and records the
    /// metadata of its source: `stat`, and under `-a` the attributes of
    /// `src` when it could be opened.
    fn enter_dir(
        &mut self,
        parent: Parent<'_>,
        src: Option<BorrowedFd<'_>>,
        rel: &OsStr,
        stat: &EntryStat,
    ) -> Result<DestDir, DirFailure> {
        let dir = self.dest.enter(parent, rel, self.new_dir_mode(stat))?;
        if dir.created && !rel.is_empty() {
            let created = WalkEvent::DirCreated {
                rel: rel.to_os_string(),
            };
            // A closed channel means the run is over; the walk notices at
            // its next send.
            let _ = self.out.send(created);
        }
        let mut record = DirMeta::from_source(rel.to_os_string(), stat.raw());
        record.mode = self.setup.chmod.apply(record.mode, true);
        if !self.setup.keep.perms {
            record.mode = self.unkept_mode(record.mode, &dir);
        }
        if self.setup.keep.xattrs || self.setup.owners.any() {
            let (owners, xattrs) = (self.setup.owners, self.setup.keep.xattrs);
            record = record.with_archive(stat.raw(), src, owners, xattrs);
        }
        if self.setup.acls {
            record = record.with_acls(src);
        }
        if let Some(fd) = dir
            .fd
            .as_ref()
            .filter(|_| self.setup.itemize && !dir.created)
        {
            // Judged before the copy changes it, as rsync itemizes it.
            if let Ok(st) = rustix::fs::fstat(fd) {
                let mut changes = record.differences(&st);
                changes.time &= self.setup.keep.times;
                let rel = rel.to_os_string();
                let _ = self.out.send(WalkEvent::DirChanged { rel, changes });
            }
        }
        self.dirs.push(record);
        Ok(dir)
    }

    /// The mode a directory this walk creates is made with: its final one
    /// where `mkdir` gives exactly that and its owner can fill it, which
    /// saves the finish stage a `chmod` (a request on a network mount);
    /// else owner-only until the finish stage sets it. Either way the
    /// finish stage compares and sets what differs (a default ACL, say).
    fn new_dir_mode(&self, stat: &EntryStat) -> Mode {
        let mode = self.setup.chmod.apply(stat.raw().st_mode & 0o7777, true);
        let exact = self.setup.keep.perms
            && mode & 0o700 == 0o700
            && mode & 0o7000 == 0
            && mode & self.setup.umask == 0;
        Mode::from_raw_mode(if exact { mode } else { 0o700 })
    }

    /// `--no-perms`, as rsync: an existing directory keeps the mode it
    /// had; a new one gets its source's permission bits less the umask,
    /// without setuid, setgid or sticky, but with the setgid bit it
    /// inherited from its parent.
    fn unkept_mode(&self, source_mode: u32, dir: &DestDir) -> u32 {
        if let Some(mode) = dir.mode.filter(|_| !dir.created) {
            return mode;
        }
        let inherited = (dir.fd.as_ref())
            .and_then(|fd| rustix::fs::fstat(fd).ok())
            .map_or(0, |st| st.st_mode & libc::S_ISGID);
        source_mode & 0o777 & !self.setup.umask | inherited
    }

    fn fail(&mut self, path: &Path, reason: String, kind: FailKind) -> Result<(), Stopped> {
        self.out.send(WalkEvent::Failed {
            path: path.to_path_buf(),
            reason,
            kind,
        })
    }
}

/// An entry that is not a directory, as the walk found it: where it is and
/// goes, its type, and its stat unless the worker is to take it.
struct Found {
    src: PathBuf,
    rel: OsString,
    kind: EntryKind,
    md: Option<EntryStat>,
    /// When the worker takes the stat: one a reader took anyway, for the
    /// worker's quick check only (see [`FileJob::counted`]).
    seen: Option<crate::job::SourceMeta>,
}

/// Where an entry goes: the destination directory, when the walk holds
/// it open, and whether this run created it (so nothing is in it yet).
#[derive(Debug, Clone, Copy)]
struct Place<'d> {
    fresh: bool,
    dir: Option<BorrowedFd<'d>>,
    /// What the directory held when the walk entered it, if it existed.
    names: Option<&'d DestNames>,
}

impl<'d> Place<'d> {
    /// Where an entry of the directory whose destination is `dest` goes.
    fn of(dest: &'d DestDir, names: Option<&'d DestNames>) -> Place<'d> {
        Place {
            fresh: dest.created,
            dir: dest.fd.as_ref().map(AsFd::as_fd),
            names,
        }
    }
}

/// A directory opened for the walk, before it is entered.
struct OpenedDir {
    /// Its name in its parent (empty for a root).
    name: OsString,
    path: PathBuf,
    rel: OsString,
    stat: EntryStat,
    fd: OwnedFd,
    /// An earlier source made this directory: it keeps that one's metadata.
    merge: bool,
    /// Made, not listed: on another file system than its root under
    /// `-x`, or listed in `--files-from` without `-r`.
    unlisted: bool,
    /// Its listing, when a reader took it; `None`: listed when entered.
    listing: Option<Listing>,
}

/// A subdirectory found in the directory being read.
struct ChildDir {
    name: OsString,
    path: PathBuf,
    rel: OsString,
    /// See [`OpenedDir::merge`].
    merge: bool,
}

/// What an entry is, and its stat if one was needed to tell.
struct Typed {
    is_dir: bool,
    kind: EntryKind,
    stat: Option<EntryStat>,
}

impl Typed {
    fn of(file_type: rustix::fs::FileType, stat: Option<EntryStat>) -> Typed {
        use rustix::fs::FileType;
        Typed {
            is_dir: file_type == FileType::Directory,
            kind: entry_kind(
                file_type == FileType::RegularFile,
                file_type == FileType::Symlink,
            ),
            stat,
        }
    }
}

fn entry_kind(is_file: bool, is_symlink: bool) -> EntryKind {
    if is_file {
        EntryKind::File
    } else if is_symlink {
        EntryKind::Symlink
    } else {
        EntryKind::Special
    }
}

fn vanished_or(err: &std::io::Error, otherwise: FailKind) -> FailKind {
    if err.kind() == std::io::ErrorKind::NotFound {
        FailKind::Vanished
    } else {
        otherwise
    }
}

#[cfg(test)]
mod tests;
