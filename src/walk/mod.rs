//! The walk: a thread of the parent that walks the sources, creates the
//! directories in the destination and hands every other entry to the
//! workers, in batches, on the bounded jobs queue.
//!
//! This file walks; its others: what the walk sends and how ([`batch`]:
//! the jobs queue's producer side, and [`WalkEvent`]s for the main thread,
//! each batch announced before it is queued), the destination side of each
//! directory ([`dest`]), the source side's stats ([`entry_stat`]), the
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
mod dest;
mod entry_stat;
mod implied;
mod links;
pub(crate) mod split;

use std::ffi::{OsStr, OsString};
use std::fs::Metadata;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

use procpool::Queue;
use walkdir::WalkDir;

use crate::copy::chmod::Chmod;
use crate::finish::dirmeta::DirMeta;
use crate::finish::links::LinkJob;
use crate::job::{EntryKind, FailKind, FileJob, WorkerEvent};
use crate::plan::Root;
use crate::relpath;
use crate::select::filter::Filter;
use crate::select::shard::Shard;
use crate::ui::escape::io_reason;
pub(crate) use batch::{BATCH_FILES, WalkEvent};
use batch::{Batcher, NewJob, Stopped};
use case::Collisions;
use claims::{Claim, Claims};
use dest::{DestDir, DestDirs, DestNames, DirFailure, Parent};
use entry_stat::{EntryStat, SourceDirs};
use implied::ImpliedChain;
use links::LinkTracker;
use split::{SplitStart, Splitter};

/// What the walk does with each entry: the same for every run of one
/// command line. Built by `Config::walk_setup`.
#[derive(Debug, Clone)]
pub(crate) struct WalkSetup {
    /// `-L`: follow symlinks in the sources.
    pub(crate) dereference: bool,
    pub(crate) dry_run: bool,
    /// `-a`: record directory owners and attributes, keep hard links.
    pub(crate) archive: bool,
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
    /// `None` once joined.
    thread: Option<JoinHandle<()>>,
}

impl Walking {
    /// Asks the walk to stop at its next entry.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
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
    let task = WalkTask {
        setup,
        start,
        events,
        stop: Arc::clone(&stop),
    };
    let thread = std::thread::Builder::new()
        .name("pcopy-walk".into())
        .spawn(move || walk(task))?;
    Ok(Walking {
        events: received,
        stop,
        thread: Some(thread),
    })
}

/// What the walk's thread runs with.
#[derive(Debug)]
struct WalkTask {
    setup: WalkSetup,
    start: WalkStart,
    events: Sender<WalkEvent>,
    /// Set by the main thread to stop the walk early.
    stop: Arc<AtomicBool>,
}

/// Walks every root, then closes the jobs queue and reports `Finished`.
fn walk(task: WalkTask) {
    let WalkTask {
        mut setup,
        start,
        events,
        stop,
    } = task;
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
    let turns = setup.splitter.as_ref().map_or(1, Splitter::workers);
    let mut walker = Walker {
        dest,
        setup,
        links: LinkTracker::default(),
        stop,
        out: Batcher::new(start.jobs, events, start.wake, turns),
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
    walker.out.finish(walker.dirs);
}

/// The walker's state: the destination side, the hard links seen, where
/// jobs go, and the directories walked.
struct Walker {
    dest: DestDirs,
    setup: WalkSetup,
    links: LinkTracker,
    stop: Arc<AtomicBool>,
    out: Batcher,
    dirs: Vec<DirMeta>,
    /// The names handed out so far, when several sources share DST.
    claims: Option<Claims>,
}

/// Where a walked directory is, for [`Walker::walk_dir`].
#[derive(Clone, Copy)]
struct DirAt<'a> {
    /// What another source's walk left at its path.
    claim: Claim,
    /// Where a root directory goes (its implied parent, or the root).
    base: Parent<'a>,
    /// `-x`: the device of the walk's root.
    root_dev: Option<u64>,
}

/// The walked directories above the current entry, by depth: `dirs[d]` is
/// the destination directory of the walked directory at depth `d`,
/// `sources[d]` and `rels[d]` its source and its destination path, pushed
/// and truncated together.
#[derive(Default)]
struct Ancestors {
    dirs: Vec<DestDir>,
    sources: SourceDirs,
    rels: Vec<OsString>,
    /// Names that collide when case is ignored, for directories whose
    /// destination ignores case.
    collisions: Vec<Option<Collisions>>,
}

impl Ancestors {
    /// Back at an entry of `depth`: leaves the directories below.
    fn truncate(&mut self, depth: usize) {
        self.dirs.truncate(depth);
        self.sources.truncate(depth);
        self.rels.truncate(depth);
        self.collisions.truncate(depth);
    }

    /// The name an entry at `depth` collides with in a destination
    /// directory that ignores case.
    fn collision(&self, depth: usize, name: &OsStr) -> Option<&OsStr> {
        let parent = self.collisions.get(depth.checked_sub(1)?)?;
        parent.as_ref()?.other(name)
    }

    /// The destination path of `entry`, from its parent's when the walk
    /// holds it.
    fn rel_of(&self, entry: &walkdir::DirEntry, root: &Root) -> OsString {
        match entry.depth().checked_sub(1).and_then(|d| self.rels.get(d)) {
            Some(parent) => relpath::join(parent, entry.file_name()),
            None => rel_dst(&root.rel_dst, entry.path(), &root.src),
        }
    }
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
        let mut entries = WalkDir::new(&root.src)
            .follow_links(self.setup.dereference)
            .into_iter();
        let mut ancestors = Ancestors::default();
        let root_dev = match self.setup.one_file_system {
            0 => None,
            _ => std::fs::metadata(&root.src).ok().map(|m| m.dev()),
        };
        while let Some(entry) = entries.next() {
            if self.stop.load(Ordering::Relaxed) {
                return Err(Stopped);
            }
            let entry = match entry {
                Ok(entry) => entry,
                Err(err) => {
                    self.walk_error(err)?;
                    continue;
                }
            };
            let depth = entry.depth();
            ancestors.truncate(depth);
            let rel = ancestors.rel_of(&entry, root);
            let file_type = entry.file_type();
            let Some(claim) = self.admit(&entry, &rel, &ancestors)? else {
                if file_type.is_dir() {
                    entries.skip_current_dir();
                }
                continue;
            };
            if file_type.is_dir() {
                let at = DirAt {
                    claim,
                    base,
                    root_dev,
                };
                if !self.walk_dir(&entry, rel, &mut ancestors, at)? {
                    entries.skip_current_dir();
                }
                continue;
            }
            self.walk_file(entry, rel, &ancestors)?;
        }
        Ok(())
    }

    /// Whether the walk takes `entry` (going to `rel`), and as what (see
    /// [`Claims`]); `None` leaves it out: excluded, an earlier source's
    /// name, or one that differs only in case from a sibling's where the
    /// destination ignores case (reported, for both names).
    fn admit(
        &mut self,
        entry: &walkdir::DirEntry,
        rel: &OsStr,
        ancestors: &Ancestors,
    ) -> Result<Option<Claim>, Stopped> {
        let is_dir = entry.file_type().is_dir();
        if self.excluded(rel, is_dir) {
            return Ok(None);
        }
        let claim = self.claim(rel, is_dir);
        if claim == Claim::Taken {
            return Ok(None);
        }
        if let Some(other) = ancestors.collision(entry.depth(), entry.file_name()) {
            let why = format!(
                "name collides with \"{}\" on this case-insensitive destination; neither copied",
                crate::ui::escape::Escaped::os(other)
            );
            self.fail(entry.path(), why, FailKind::DestIo)?;
            return Ok(None);
        }
        Ok(Some(claim))
    }

    /// A walked entry that is not a directory: stat'ed here or by the
    /// worker (see [`Walker::worker_stats`]), then queued.
    fn walk_file(
        &mut self,
        entry: walkdir::DirEntry,
        rel: OsString,
        ancestors: &Ancestors,
    ) -> Result<(), Stopped> {
        let depth = entry.depth();
        let file_type = entry.file_type();
        let kind = entry_kind(file_type.is_file(), file_type.is_symlink());
        let place = Place::in_parent(&ancestors.dirs, depth);
        let md = match self.worker_stats(&place, &kind, entry.file_name()) {
            true => None,
            false => {
                let follow = self.setup.dereference;
                (ancestors.sources).stat(depth, entry.file_name(), entry.path(), follow)
            }
        };
        let found = Found {
            src: entry.into_path(),
            rel,
            kind,
            md,
        };
        self.add_entry(found, place)
    }

    /// A walked directory: made (unless `-xx` leaves a mount point out) and
    /// entered. False: skip its contents (a mount point under `-x`, or a
    /// directory that could not be made).
    fn walk_dir(
        &mut self,
        entry: &walkdir::DirEntry,
        rel: OsString,
        ancestors: &mut Ancestors,
        at: DirAt<'_>,
    ) -> Result<bool, Stopped> {
        let mount = at
            .root_dev
            .is_some_and(|dev| entry.metadata().is_ok_and(|m| m.dev() != dev));
        if mount && self.setup.one_file_system > 1 {
            return Ok(false);
        }
        if !self.enter_walked_dir(entry, rel, ancestors, at.base)? {
            return Ok(false);
        }
        if at.claim == Claim::Merge {
            // The earlier source's directory keeps its metadata.
            self.dirs.pop();
        }
        Ok(!mount)
    }

    /// Creates the destination of a walked directory and pushes it, its
    /// source and `rel` on the stacks. False: skip its contents, because
    /// it could not be made or its parent was skipped (so a parent is
    /// always there).
    fn enter_walked_dir(
        &mut self,
        entry: &walkdir::DirEntry,
        rel: OsString,
        ancestors: &mut Ancestors,
        base: Parent<'_>,
    ) -> Result<bool, Stopped> {
        let depth = entry.depth();
        let parent = match depth {
            0 => base,
            _ => match ancestors.dirs.get(depth - 1) {
                Some(dir) => Parent::Dir(dir),
                None => return Ok(false),
            },
        };
        if self.setup.existing && !self.dest.has(parent, &rel) {
            return Ok(false);
        }
        match self.enter_dir(parent, entry.path(), &rel, entry.metadata()) {
            Ok(dir) => {
                let collisions = dir.folds_case.then(|| Collisions::in_dir(entry.path()));
                ancestors.collisions.push(collisions);
                ancestors.dirs.push(dir);
                ancestors.sources.enter(entry.path());
                ancestors.rels.push(rel);
                Ok(true)
            }
            Err(failure) => {
                self.fail(entry.path(), failure.reason, failure.kind)?;
                Ok(false)
            }
        }
    }

    /// Whether the worker, rather than the walker, stats this source entry:
    /// when something of that name is in the destination, the worker looks
    /// at both anyway to compare them, and the walk, the critical path of
    /// an incremental run, gets shorter. New names are stat'ed here, as
    /// their sizes count in the progress totals, the batches and splitting;
    /// so are special files, and all entries under `-a` (hard links need
    /// the link count) or `-L` (the type is the target's).
    fn worker_stats(&self, place: &Place<'_>, kind: &EntryKind, name: &OsStr) -> bool {
        !self.setup.archive
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

    fn excluded(&self, rel: &OsStr, is_dir: bool) -> bool {
        (self.setup.filter)
            .as_ref()
            .is_some_and(|filter| filter.excludes(rel, is_dir))
    }

    /// A source that is not a directory: one job.
    fn add_single(&mut self, root: &Root) -> Result<(), Stopped> {
        match EntryStat::of_path(&root.src, self.setup.dereference) {
            Ok(meta) => {
                let kind = entry_kind(meta.is_file(), meta.is_symlink());
                let rel = root.rel_dst.clone();
                if self.excluded(&rel, false) || self.claim(&rel, false) == Claim::Taken {
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
        let Found { src, rel, kind, md } = found;
        let fresh = place.fresh;
        let meta = md.as_ref().map(EntryStat::source_meta);
        // Any non-directory can have several names: files, symlinks,
        // fifos, sockets and device nodes alike (as `rsync -aH` keeps).
        let linked = md.as_ref().filter(|m| self.setup.archive && m.nlink() > 1);
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
    /// `parent` without following a symlink there, and records its
    /// metadata; `path` is its source.
    fn enter_dir(
        &mut self,
        parent: Parent<'_>,
        path: &Path,
        rel: &OsStr,
        meta: Result<Metadata, walkdir::Error>,
    ) -> Result<DestDir, DirFailure> {
        let meta = meta.map_err(|err| {
            let kind = err
                .io_error()
                .map_or(FailKind::SourceIo, |e| vanished_or(e, FailKind::SourceIo));
            DirFailure {
                reason: walk_reason(&err),
                kind,
            }
        })?;
        let dir = self.dest.enter(parent, rel)?;
        if dir.created && !rel.is_empty() {
            let created = WalkEvent::DirCreated {
                rel: rel.to_os_string(),
            };
            // A closed channel means the run is over; the walk notices at
            // its next send.
            let _ = self.out.send(created);
        }
        let mut record = DirMeta::from_source(rel.to_os_string(), &meta);
        record.mode = self.setup.chmod.apply(record.mode, true);
        if self.setup.archive || self.setup.owners.any() {
            let (owners, xattrs) = (self.setup.owners, self.setup.archive);
            record = record.with_archive(&meta, path, owners, xattrs);
        }
        if self.setup.acls {
            record = record.with_acls(path);
        }
        if let Some(fd) = dir
            .fd
            .as_ref()
            .filter(|_| self.setup.itemize && !dir.created)
        {
            // Judged before the copy changes it, as rsync itemizes it.
            if let Ok(st) = rustix::fs::fstat(fd) {
                let changes = record.differences(&st);
                let rel = rel.to_os_string();
                let _ = self.out.send(WalkEvent::DirChanged { rel, changes });
            }
        }
        self.dirs.push(record);
        Ok(dir)
    }

    fn walk_error(&mut self, err: walkdir::Error) -> Result<(), Stopped> {
        let path = err.path().map(Path::to_path_buf).unwrap_or_default();
        let kind = match err.io_error() {
            // Under -L a dangling symlink is reported as NotFound, but
            // it did not vanish: it never pointed anywhere.
            Some(io)
                if io.kind() == std::io::ErrorKind::NotFound
                    && std::fs::symlink_metadata(&path).is_ok() =>
            {
                FailKind::SourceIo
            }
            Some(io) => vanished_or(io, FailKind::SourceIo),
            None => FailKind::SourceIo,
        };
        self.fail(&path, walk_reason(&err), kind)
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

impl Place<'_> {
    /// Where an entry at `depth` goes: into the directory the walk holds
    /// at `depth - 1`.
    fn in_parent(dirs: &[DestDir], depth: usize) -> Place<'_> {
        let parent = dirs.get(depth.wrapping_sub(1));
        Place {
            fresh: parent.is_some_and(|d| d.created),
            dir: parent.and_then(|d| d.fd.as_ref()).map(AsFd::as_fd),
            names: parent.and_then(|d| d.names.as_ref()),
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

/// The destination path of `path` (beneath the walked `root`): the root's
/// own destination and then the components below it, joined by single
/// slashes, as the engine expects.
fn rel_dst(root_rel: &OsStr, path: &Path, root: &Path) -> OsString {
    let mut rel = root_rel.as_bytes().to_vec();
    let below = path.strip_prefix(root).unwrap_or(Path::new(""));
    for component in below.components() {
        if let Component::Normal(name) = component {
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(name.as_bytes());
        }
    }
    OsString::from(std::ffi::OsStr::from_bytes(&rel))
}

fn vanished_or(err: &std::io::Error, otherwise: FailKind) -> FailKind {
    if err.kind() == std::io::ErrorKind::NotFound {
        FailKind::Vanished
    } else {
        otherwise
    }
}

fn walk_reason(err: &walkdir::Error) -> String {
    match (err.io_error(), err.loop_ancestor()) {
        (_, Some(ancestor)) => format!(
            "symbolic link loop back to {}",
            crate::ui::escape::Escaped::path(ancestor)
        ),
        (Some(io), None) => io_reason(io),
        (None, None) => err.to_string(),
    }
}

#[cfg(test)]
mod tests;
