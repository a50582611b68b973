//! The walk: a thread of the parent that walks the sources, creates the
//! directories in the destination and hands every other entry to the
//! workers, in batches, on the bounded jobs queue.
//!
//! It owns the producer side of the jobs queue and closes it when the walk
//! ends (or is stopped). Everything the main thread must know travels on
//! an event channel ([`WalkEvent`]); a batch is announced there *before* it
//! is put on the queue, so the main thread knows every job a completion
//! can refer to. Its files: the destination side of each directory
//! ([`dest`]), the source side's stats ([`entry_stat`]), and the walker's
//! halves of split files ([`split`]) and hard links ([`links`]).
//!
//! It may call the selection (`select`), the engine's helpers for temp
//! files (`copy`), and makes the records the finish stage applies
//! (`finish::dirmeta`, `finish::links`); it never calls the run stage or
//! the reporter.

pub(crate) mod dest;
pub(crate) mod entry_stat;
pub(crate) mod links;
pub(crate) mod split;

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs::Metadata;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use procpool::Queue;
use walkdir::WalkDir;

use crate::finish::dirmeta::DirMeta;
use crate::finish::links::LinkJob;
use crate::job::{EntryKind, FailKind, FileJob, FileRange, SourceMeta, WorkerEvent};
use crate::plan::Root;
use crate::select::filter::Filter;
use crate::select::shard::Shard;
use crate::ui::escape::io_reason;
use dest::{DestDir, DestDirs, DestNames, Parent};
use entry_stat::{EntryStat, SourceDirs};
use links::LinkTracker;
use split::{HeldParts, SplitStart, Splitter};

/// Jobs per batch: large enough that queue round trips vanish in the cost
/// of copying, small enough to spread a directory over the workers.
pub(crate) const BATCH_FILES: usize = 128;
/// A batch is sent early once it holds this much data, so big files are
/// spread over workers instead of landing in one batch.
const BATCH_BYTES: u64 = 32 << 20;
/// A batch is sent early if the walk is slow, so workers do not idle.
const BATCH_AGE: Duration = Duration::from_millis(20);
/// How many entries go into a batch between looks at its age.
const AGE_CHECK_EVERY: usize = 8;

/// What the walker tells the main thread.
#[derive(Debug)]
pub(crate) enum WalkEvent {
    /// These jobs are about to be put on the jobs queue.
    Queued { jobs: Vec<FileJob>, bytes: u64 },
    /// A destination directory was created (or, dry running, would be).
    DirCreated { rel: OsString },
    /// A later name of a multiply-linked file (`-a`), to link after the copy.
    HardLink(LinkJob),
    /// An entry that will not be copied, and why.
    Failed {
        path: PathBuf,
        reason: String,
        kind: FailKind,
    },
    /// The walk is over; the directories whose metadata is still to apply.
    Finished { dirs: Vec<DirMeta> },
}

/// What the walker starts from.
#[derive(Debug)]
pub(crate) struct WalkSetup {
    pub(crate) roots: Vec<Root>,
    /// The open destination root; `None` only when dry running into a
    /// destination that does not exist.
    pub(crate) dst_root: Option<OwnedFd>,
    /// The destination root was created by this run: it is empty.
    pub(crate) dst_root_new: bool,
    pub(crate) dereference: bool,
    pub(crate) dry_run: bool,
    /// `-a`: record directory owners and attributes, keep hard links.
    pub(crate) archive: bool,
    pub(crate) filter: Option<Arc<Filter>>,
    /// Only this shard's files are queued; every directory is made.
    pub(crate) shard: Option<Shard>,
    /// Splits large files over the workers; `None`: never.
    pub(crate) splitter: Option<Splitter>,
    pub(crate) jobs: Queue<Vec<FileJob>>,
    /// The done queue, only to wake the main thread when the walk ends.
    pub(crate) wake: Queue<Vec<WorkerEvent>>,
    pub(crate) events: Sender<WalkEvent>,
    /// Set by the main thread to stop the walk early.
    pub(crate) stop: Arc<AtomicBool>,
}

/// Walks every root, then closes the jobs queue and reports `Finished`.
pub(crate) fn walk(setup: WalkSetup) {
    let setup_wake = setup.wake;
    let temp_tag = setup.shard.map(|s| s.temp_tag()).unwrap_or_default();
    let dest = DestDirs::new(setup.dst_root, setup.dst_root_new, setup.dry_run, temp_tag);
    let turns = setup.splitter.as_ref().map_or(1, Splitter::workers);
    let mut walker = Walker {
        dest,
        dereference: setup.dereference,
        archive: setup.archive,
        filter: setup.filter,
        shard: setup.shard,
        splitter: setup.splitter,
        links: LinkTracker::default(),
        jobs: setup.jobs,
        events: setup.events,
        stop: setup.stop,
        batch: Vec::with_capacity(BATCH_FILES),
        held: HeldParts::new(turns),
        batch_bytes: 0,
        batch_started: Instant::now(),
        next_id: 0,
        dirs: Vec::new(),
    };
    let walked = setup
        .roots
        .iter()
        .try_for_each(|root| walker.walk_root(root));
    if walked.is_ok() {
        let _ = walker.flush().and_then(|()| walker.drain_held());
    }
    // Closing lets workers finish once the queue is drained; failure means
    // the manager is gone, which the main thread sees for itself.
    let _ = walker.jobs.close();
    let dirs = std::mem::take(&mut walker.dirs);
    let _ = walker.events.send(WalkEvent::Finished { dirs });
    // The main thread may be waiting on the done queue, not on the event
    // channel: an empty batch wakes it to see the end of the walk now
    // rather than at its next poll.
    let _ = setup_wake.put(Vec::new());
}

/// The walk was stopped: by the main thread, or because the jobs queue or
/// the event channel is gone.
#[derive(Debug)]
struct Stopped;

struct Walker {
    dest: DestDirs,
    dereference: bool,
    archive: bool,
    filter: Option<Arc<Filter>>,
    shard: Option<Shard>,
    splitter: Option<Splitter>,
    links: LinkTracker,
    jobs: Queue<Vec<FileJob>>,
    events: Sender<WalkEvent>,
    stop: Arc<AtomicBool>,
    batch: Vec<FileJob>,
    /// Parts of split files announced but not queued yet.
    held: HeldParts,
    batch_bytes: u64,
    batch_started: Instant,
    next_id: u64,
    dirs: Vec<DirMeta>,
}

impl Walker {
    fn walk_root(&mut self, root: &Root) -> Result<(), Stopped> {
        if !root.is_dir {
            return self.add_single(root);
        }
        let mut entries = WalkDir::new(&root.src)
            .follow_links(self.dereference)
            .into_iter();
        // dirs[d]: the destination directory of the walked directory at depth
        // d; sources[d] and rels[d]: its source and its destination path,
        // pushed and truncated in step with dirs.
        let mut dirs: Vec<DestDir> = Vec::new();
        let mut sources = SourceDirs::default();
        let mut rels: Vec<OsString> = Vec::new();
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
            dirs.truncate(depth);
            sources.truncate(depth);
            rels.truncate(depth);
            let rel = match depth.checked_sub(1).and_then(|d| rels.get(d)) {
                Some(parent) => join_rel(parent, entry.file_name()),
                None => rel_dst(&root.rel_dst, entry.path(), &root.src),
            };
            let file_type = entry.file_type();
            if self.excluded(&rel, file_type.is_dir()) {
                if file_type.is_dir() {
                    entries.skip_current_dir();
                }
                continue;
            }
            if file_type.is_dir() {
                match self.enter_walked_dir(&entry, &rel, (&mut dirs, &mut sources))? {
                    true => rels.push(rel),
                    false => entries.skip_current_dir(),
                }
                continue;
            }
            let kind = entry_kind(file_type.is_file(), file_type.is_symlink());
            let place = Place::in_parent(&dirs, depth);
            let md = match self.worker_stats(&place, &kind, entry.file_name()) {
                true => None,
                false => sources.stat(depth, (entry.file_name(), entry.path()), self.dereference),
            };
            self.add_entry(entry.into_path(), rel, (kind, md), place)?;
        }
        Ok(())
    }

    /// Creates the destination of a walked directory and pushes it and its
    /// source on the stacks. False: skip its contents, because it could not
    /// be made or its parent was skipped (so a parent is always there).
    fn enter_walked_dir(
        &mut self,
        entry: &walkdir::DirEntry,
        rel: &OsStr,
        (dirs, sources): (&mut Vec<DestDir>, &mut SourceDirs),
    ) -> Result<bool, Stopped> {
        let depth = entry.depth();
        let parent = match depth {
            0 => Parent::Root,
            _ => match dirs.get(depth - 1) {
                Some(dir) => Parent::Dir(dir),
                None => return Ok(false),
            },
        };
        match self.enter_dir(parent, (entry.path(), rel), entry.metadata()) {
            Ok(dir) => {
                dirs.push(dir);
                sources.enter(entry.path());
                Ok(true)
            }
            Err((reason, kind)) => {
                self.fail(entry.path(), reason, kind)?;
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
        !self.archive
            && !self.dereference
            && *kind != EntryKind::Special
            && place.names.is_some_and(|names| names.contains(name))
    }

    fn excluded(&self, rel: &OsStr, is_dir: bool) -> bool {
        self.filter
            .as_ref()
            .is_some_and(|filter| filter.excludes(rel, is_dir))
    }

    /// A source that is not a directory: one job.
    fn add_single(&mut self, root: &Root) -> Result<(), Stopped> {
        match EntryStat::of_path(&root.src, self.dereference) {
            Ok(meta) => {
                let kind = entry_kind(meta.is_file(), meta.is_symlink());
                let rel = root.rel_dst.clone();
                if self.excluded(&rel, false) {
                    return Ok(());
                }
                // Not split: the parent may be below the root, and a single
                // file's directory is never cleared of stale temps.
                let place = Place {
                    fresh: self.dest.root_is_new(),
                    dir: None,
                    names: None,
                };
                self.add_entry(root.src.clone(), rel, (kind, Some(meta)), place)
            }
            Err(err) => {
                let kind = vanished_or(&err, FailKind::SourceIo);
                self.fail(&root.src, io_reason(&err), kind)
            }
        }
    }

    /// Queues an entry of this shard, or with `-a` announces a later name
    /// of a multiply-linked file as a link to its first name.
    fn add_entry(
        &mut self,
        src: PathBuf,
        rel: OsString,
        (kind, md): (EntryKind, Option<EntryStat>),
        place: Place<'_>,
    ) -> Result<(), Stopped> {
        let fresh = place.fresh;
        let meta = md.as_ref().map(source_meta);
        let linked = md
            .as_ref()
            .filter(|m| self.archive && kind == EntryKind::File && m.nlink() > 1);
        // All names of a linked file go to one shard: the inode's.
        let owned = match (self.shard, linked) {
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
                    return self.add_split(&src, rel, md, fresh, split);
                }
            }
            return self.add(src, rel, kind, meta, fresh);
        };
        // A link moves no data: no size to count in the progress totals.
        let job = FileJob {
            id: self.next_id,
            src: src.into_os_string(),
            rel_dst: rel,
            kind,
            meta: None,
            fresh,
            range: None,
        };
        self.next_id += 1;
        let event = WalkEvent::HardLink(LinkJob { job, target });
        self.events.send(event).map_err(|_| Stopped)
    }

    fn add(
        &mut self,
        src: PathBuf,
        rel_dst: OsString,
        kind: EntryKind,
        meta: Option<SourceMeta>,
        fresh: bool,
    ) -> Result<(), Stopped> {
        if self.batch.is_empty() {
            self.batch_started = Instant::now();
        }
        let size = match kind {
            EntryKind::File => meta.map_or(0, |m| m.size),
            _ => 0,
        };
        self.batch.push(FileJob {
            id: self.next_id,
            src: src.into_os_string(),
            rel_dst,
            kind,
            meta,
            fresh,
            range: None,
        });
        self.next_id += 1;
        self.batch_bytes += size;
        // The clock is read every few entries only: on a fast walk that
        // read costs as much as the rest of queueing an entry.
        let age_check = self.batch.len() % AGE_CHECK_EVERY == 0;
        if self.batch.len() >= BATCH_FILES
            || self.batch_bytes >= BATCH_BYTES
            || age_check && self.batch_started.elapsed() >= BATCH_AGE
        {
            self.flush()?;
        }
        Ok(())
    }

    /// Makes the temp of a file to split, if it is one (see `Splitter`).
    fn try_split(
        &mut self,
        dir: BorrowedFd<'_>,
        rel: &OsStr,
        md: &EntryStat,
        fresh: bool,
    ) -> Result<Option<SplitStart>, Stopped> {
        if !self.splitter.as_ref().is_some_and(|s| s.wants(md)) {
            return Ok(None);
        }
        // What is batched goes first: from the temp's creation on, nothing
        // may stop the walk before the main thread hears of the temp. No
        // round of parts here: the new file's first part goes next.
        self.flush_batch()?;
        let splitter = self.splitter.as_ref();
        Ok(splitter.and_then(|s| s.start(dir, last_name(rel), md, fresh)))
    }

    /// Announces the parts of a split file and holds them, to be queued in
    /// turns with other split files' (see [`Walker::queue_round`]). The
    /// temp exists from here on: the main thread hears of it at once,
    /// before anything else can stop the walk, and accounts for parts
    /// that never get queued.
    fn add_split(
        &mut self,
        src: &Path,
        rel_dst: OsString,
        md: &EntryStat,
        fresh: bool,
        split: SplitStart,
    ) -> Result<(), Stopped> {
        let first = self.next_id;
        let parts = split.ranges.len() as u32;
        let mut jobs = VecDeque::with_capacity(split.ranges.len());
        for (part, &(offset, len)) in split.ranges.iter().enumerate() {
            let range = FileRange {
                split: first,
                part: part as u32,
                parts,
                offset,
                len,
                temp: split.temp.clone(),
                dev: md.dev(),
                ino: md.ino(),
            };
            jobs.push_back(FileJob {
                id: self.next_id,
                src: src.as_os_str().to_os_string(),
                rel_dst: rel_dst.clone(),
                kind: EntryKind::File,
                meta: Some(source_meta(md)),
                fresh,
                range: Some(range),
            });
            self.next_id += 1;
        }
        let announced = WalkEvent::Queued {
            jobs: jobs.iter().cloned().collect(),
            bytes: md.len(),
        };
        self.events.send(announced).map_err(|_| Stopped)?;
        self.held.add(jobs);
        self.queue_round()
    }

    /// Queues a round of held parts (see [`HeldParts::round`]), each part
    /// as a batch of its own so that different workers take them. A round
    /// after every batch moves big files along with the small ones.
    fn queue_round(&mut self) -> Result<(), Stopped> {
        for part in self.held.round() {
            // Announced with its file in `add_split`.
            self.jobs.put(vec![part]).map_err(|_| Stopped)?;
        }
        Ok(())
    }

    /// Queues every part still held (the walk is over).
    fn drain_held(&mut self) -> Result<(), Stopped> {
        while !self.held.is_empty() {
            self.queue_round()?;
        }
        Ok(())
    }

    /// Queues the batch, if any, then a round of held parts.
    fn flush(&mut self) -> Result<(), Stopped> {
        self.flush_batch()?;
        self.queue_round()
    }

    fn flush_batch(&mut self) -> Result<(), Stopped> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let jobs = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH_FILES));
        let bytes = std::mem::take(&mut self.batch_bytes);
        self.put(jobs, bytes)
    }

    /// Announces `jobs` to the main thread, then puts them on the queue.
    fn put(&mut self, jobs: Vec<FileJob>, bytes: u64) -> Result<(), Stopped> {
        let announced = WalkEvent::Queued {
            jobs: jobs.clone(),
            bytes,
        };
        self.events.send(announced).map_err(|_| Stopped)?;
        // Blocks while the queue is full: this is what keeps the walk
        // (and memory) only a few batches ahead of the workers.
        self.jobs.put(jobs).map_err(|_| Stopped)
    }

    /// Creates (or reuses) the destination directory `rel` beneath
    /// `parent` without following a symlink there, and records its metadata.
    fn enter_dir(
        &mut self,
        parent: Parent<'_>,
        (path, rel): (&Path, &OsStr),
        meta: Result<Metadata, walkdir::Error>,
    ) -> Result<DestDir, (String, FailKind)> {
        let meta = meta.map_err(|err| {
            let kind = err
                .io_error()
                .map_or(FailKind::SourceIo, |e| vanished_or(e, FailKind::SourceIo));
            (walk_reason(&err), kind)
        })?;
        let dir = self.dest.enter(parent, rel)?;
        if dir.created && !rel.is_empty() {
            let created = WalkEvent::DirCreated {
                rel: rel.to_os_string(),
            };
            // A closed channel means the run is over; the walk notices at
            // its next send.
            let _ = self.events.send(created);
        }
        let mut record = DirMeta::from_source(rel.to_os_string(), &meta);
        if self.archive {
            record = record.with_archive(&meta, path);
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
        let event = WalkEvent::Failed {
            path: path.to_path_buf(),
            reason,
            kind,
        };
        self.events.send(event).map_err(|_| Stopped)
    }
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

/// The last component of a destination path.
fn last_name(rel: &OsStr) -> &OsStr {
    let bytes = rel.as_bytes();
    let start = bytes.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
    OsStr::from_bytes(&bytes[start..])
}

/// What the quick check needs from a source `lstat`.
fn source_meta(meta: &EntryStat) -> SourceMeta {
    SourceMeta {
        size: meta.len(),
        mtime: (meta.mtime(), meta.mtime_nsec()),
        mode: meta.mode(),
        uid: meta.uid(),
        gid: meta.gid(),
        rdev: meta.rdev(),
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

/// The destination path of the entry `name` in the directory whose
/// destination path is `parent`.
fn join_rel(parent: &OsStr, name: &OsStr) -> OsString {
    let mut rel = OsString::with_capacity(parent.len() + 1 + name.len());
    rel.push(parent);
    if !parent.is_empty() {
        rel.push("/");
    }
    rel.push(name);
    rel
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
