//! The walker: a thread of the parent that walks the sources, creates the
//! directories in the destination and hands every other entry to the
//! workers, in batches, on the bounded jobs queue.
//!
//! It owns the producer side of the jobs queue and closes it when the walk
//! ends (or is stopped). Everything the main thread must know travels on
//! an event channel; a batch is announced there *before* it is put on the
//! queue, so the main thread knows every job a completion can refer to.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs::Metadata;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use procpool::Queue;
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use walkdir::WalkDir;

use crate::copy;
use crate::dirmeta::DirMeta;
use crate::escape::io_reason;
use crate::job::{EntryKind, FailKind, FileJob};
use crate::plan::Root;

/// Jobs per batch: large enough that queue round trips vanish in the cost
/// of copying, small enough to spread a directory over the workers.
pub(crate) const BATCH_FILES: usize = 128;
/// A batch is sent early once it holds this much data, so big files are
/// spread over workers instead of landing in one batch.
const BATCH_BYTES: u64 = 32 << 20;
/// A batch is sent early if the walk is slow, so workers do not idle.
const BATCH_AGE: Duration = Duration::from_millis(20);

/// What the walker tells the main thread.
#[derive(Debug)]
pub(crate) enum WalkEvent {
    /// These jobs are about to be put on the jobs queue.
    Queued { jobs: Vec<FileJob>, bytes: u64 },
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
    /// The open destination root.
    pub(crate) dst_root: OwnedFd,
    pub(crate) dereference: bool,
    pub(crate) jobs: Queue<Vec<FileJob>>,
    pub(crate) events: Sender<WalkEvent>,
    /// Set by the main thread to stop the walk early.
    pub(crate) stop: Arc<AtomicBool>,
}

/// Walks every root, then closes the jobs queue and reports `Finished`.
pub(crate) fn walk(setup: WalkSetup) {
    let WalkSetup {
        roots,
        dst_root,
        dereference,
        jobs,
        events,
        stop,
    } = setup;
    let mut walker = Walker {
        dst_root,
        dereference,
        jobs,
        events,
        stop,
        batch: Vec::with_capacity(BATCH_FILES),
        batch_bytes: 0,
        batch_started: Instant::now(),
        next_id: 0,
        dirs: Vec::new(),
        cleaned: HashSet::new(),
    };
    let walked = roots.iter().try_for_each(|root| walker.walk_root(root));
    if walked.is_ok() {
        let _ = walker.flush();
    }
    // Closing lets workers finish once the queue is drained; failure means
    // the manager is gone, which the main thread sees for itself.
    let _ = walker.jobs.close();
    let dirs = std::mem::take(&mut walker.dirs);
    let _ = walker.events.send(WalkEvent::Finished { dirs });
}

/// The walk was stopped: by the main thread, or because the jobs queue or
/// the event channel is gone.
#[derive(Debug)]
struct Stopped;

struct Walker {
    dst_root: OwnedFd,
    dereference: bool,
    jobs: Queue<Vec<FileJob>>,
    events: Sender<WalkEvent>,
    stop: Arc<AtomicBool>,
    batch: Vec<FileJob>,
    batch_bytes: u64,
    batch_started: Instant,
    next_id: u64,
    dirs: Vec<DirMeta>,
    /// Existing destination directories (device, inode) already cleared of
    /// stale temp files: each only once, before any job of this run can
    /// have a temp file in it.
    cleaned: HashSet<(u64, u64)>,
}

impl Walker {
    fn walk_root(&mut self, root: &Root) -> Result<(), Stopped> {
        if !root.is_dir {
            return self.add_single(root);
        }
        let mut entries = WalkDir::new(&root.src)
            .follow_links(self.dereference)
            .into_iter();
        // dirs[d]: the destination directory of the walked directory at depth d.
        let mut dirs: Vec<OwnedFd> = Vec::new();
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
            let rel = rel_dst(&root.rel_dst, entry.path(), &root.src);
            let file_type = entry.file_type();
            if file_type.is_dir() {
                // Entries below a directory that could not be entered are
                // skipped, so the parent is always there.
                let parent = match depth {
                    0 => Parent::Root,
                    _ => match dirs.get(depth - 1) {
                        Some(fd) => Parent::Dir(fd.as_fd()),
                        None => {
                            entries.skip_current_dir();
                            continue;
                        }
                    },
                };
                match self.enter_dir(parent, &rel, entry.metadata()) {
                    Ok(fd) => dirs.push(fd),
                    Err((reason, kind)) => {
                        self.fail(entry.path(), reason, kind)?;
                        entries.skip_current_dir();
                    }
                }
                continue;
            }
            let kind = entry_kind(file_type);
            let size = match kind {
                EntryKind::File => entry.metadata().map_or(0, |m| m.len()),
                _ => 0,
            };
            self.add(entry.path(), rel, kind, size)?;
        }
        Ok(())
    }

    /// A source that is not a directory: one job.
    fn add_single(&mut self, root: &Root) -> Result<(), Stopped> {
        let meta = if self.dereference {
            std::fs::metadata(&root.src)
        } else {
            std::fs::symlink_metadata(&root.src)
        };
        match meta {
            Ok(meta) => {
                let kind = entry_kind(meta.file_type());
                let size = if kind == EntryKind::File {
                    meta.len()
                } else {
                    0
                };
                self.add(&root.src, root.rel_dst.clone(), kind, size)
            }
            Err(err) => {
                let kind = vanished_or(&err, FailKind::SourceIo);
                self.fail(&root.src, io_reason(&err), kind)
            }
        }
    }

    fn add(
        &mut self,
        src: &Path,
        rel_dst: OsString,
        kind: EntryKind,
        size: u64,
    ) -> Result<(), Stopped> {
        if self.batch.is_empty() {
            self.batch_started = Instant::now();
        }
        self.batch.push(FileJob {
            id: self.next_id,
            src: src.as_os_str().to_os_string(),
            rel_dst,
            kind,
        });
        self.next_id += 1;
        self.batch_bytes += size;
        if self.batch.len() >= BATCH_FILES
            || self.batch_bytes >= BATCH_BYTES
            || self.batch_started.elapsed() >= BATCH_AGE
        {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Stopped> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let jobs = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH_FILES));
        let bytes = std::mem::take(&mut self.batch_bytes);
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
        rel: &OsStr,
        meta: Result<Metadata, walkdir::Error>,
    ) -> Result<OwnedFd, (String, FailKind)> {
        let meta = meta.map_err(|err| {
            let kind = err
                .io_error()
                .map_or(FailKind::SourceIo, |e| vanished_or(e, FailKind::SourceIo));
            (walk_reason(&err), kind)
        })?;
        let fd = if rel.is_empty() {
            let fd = self
                .dst_root
                .try_clone()
                .map_err(|e| dest_failure("cannot open destination directory", &e))?;
            self.prepare_existing(&fd)?;
            fd
        } else {
            let name = last_name(rel);
            let parent = match parent {
                Parent::Root => self.dst_root.as_fd(),
                Parent::Dir(fd) => fd,
            };
            match rustix::fs::mkdirat(parent, name, Mode::RWXU) {
                Ok(()) => open_dir(parent, name)
                    .map_err(|e| dest_failure("cannot open new directory", &e.into()))?,
                Err(Errno::EXIST) => {
                    let fd = open_dir(parent, name).map_err(|e| match e {
                        Errno::NOTDIR | Errno::LOOP => (
                            "destination exists and is not a directory".to_string(),
                            FailKind::DestIo,
                        ),
                        e => dest_failure("cannot open destination directory", &e.into()),
                    })?;
                    self.prepare_existing(&fd)?;
                    fd
                }
                Err(e) => return Err(dest_failure("cannot create directory", &e.into())),
            }
        };
        self.dirs
            .push(DirMeta::from_source(rel.to_os_string(), &meta));
        Ok(fd)
    }

    /// Makes an existing directory writable for the run (its final mode is
    /// applied at the end) and removes temp files of an earlier killed run.
    fn prepare_existing(&mut self, dir: &OwnedFd) -> Result<(), (String, FailKind)> {
        let st =
            rustix::fs::fstat(dir).map_err(|e| dest_failure("cannot stat directory", &e.into()))?;
        if st.st_mode & 0o700 != 0o700 {
            rustix::fs::fchmod(dir, Mode::from_raw_mode(st.st_mode | 0o700))
                .map_err(|e| dest_failure("cannot make directory writable", &e.into()))?;
        }
        if self.cleaned.insert((st.st_dev, st.st_ino)) {
            // The engine's helper takes a path; the fd's /proc name reaches
            // exactly this directory, whatever happened to its path since.
            let by_fd = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
            // Best effort: a leftover that cannot be removed is harmless,
            // as no final name ever refers to it.
            let _ = copy::remove_stale_temps(&by_fd);
        }
        Ok(())
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

/// The destination directory to create a walked directory in.
#[derive(Clone, Copy)]
enum Parent<'fd> {
    /// The destination root (for a walked root named in the destination).
    Root,
    Dir(BorrowedFd<'fd>),
}

fn open_dir(parent: BorrowedFd<'_>, name: &OsStr) -> Result<OwnedFd, Errno> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::openat(parent, name, flags, Mode::empty())
}

fn entry_kind(file_type: std::fs::FileType) -> EntryKind {
    if file_type.is_file() {
        EntryKind::File
    } else if file_type.is_symlink() {
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

fn last_name(rel: &OsStr) -> &OsStr {
    let bytes = rel.as_bytes();
    let start = bytes.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
    OsStr::from_bytes(&bytes[start..])
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
            crate::escape::Escaped::path(ancestor)
        ),
        (Some(io), None) => io_reason(io),
        (None, None) => err.to_string(),
    }
}

fn dest_failure(what: &str, err: &std::io::Error) -> (String, FailKind) {
    (format!("{what}: {}", io_reason(err)), FailKind::DestIo)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn last_name_is_the_final_component() {
        assert_eq!(last_name(OsStr::new("a/b/c")), "c");
        assert_eq!(last_name(OsStr::new("c")), "c");
    }
}
