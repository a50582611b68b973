//! The source side of the walk: each directory opened beneath its parent's
//! descriptor and listed with `getdents64`, and the stack of directories
//! the walk is in, holding open no more of them than its descriptor budget.
//!
//! No full path is resolved below a root, so depth is bounded by memory,
//! not by `PATH_MAX`. A directory is listed whole when it is entered, so
//! its descriptor is free to be closed while the walk is deeper down; when
//! the walk climbs back to a directory whose descriptors were closed, they
//! are opened again beneath the nearest ancestor still open (the root's are
//! never closed), for that directory and a few above it at once.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{FileType, Mode, OFlags, RawDir};
use rustix::io::Errno;

use super::case::Collisions;
use super::dest::{DestDir, DestNames};
use super::entry_stat::EntryStat;
use super::readers::Ticket;
use crate::relpath;
use crate::select::dir_rules::DirRules;

/// One name in a listed directory, and its type as `getdents64` gave it
/// (`Unknown` on file systems that do not say).
#[derive(Debug, Clone)]
pub(super) struct Listed {
    pub(super) name: OsString,
    pub(super) file_type: FileType,
    /// Its stat, when a reader took it ahead of the walk (see
    /// [`stat_entries`]).
    pub(super) stat: Option<EntryStat>,
}

/// Opens the directory `name` beneath `parent` for listing; a symlink
/// there is followed only if `follow`.
pub(super) fn open_dir(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    follow: bool,
) -> Result<OwnedFd, Errno> {
    let mut flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    if !follow {
        flags |= OFlags::NOFOLLOW;
    }
    rustix::fs::openat(parent, name, flags, Mode::empty())
}

/// Opens a root named on the command line (followed if it is a symlink:
/// the user named it, and `plan` decided it is a directory).
pub(super) fn open_root(path: &Path) -> Result<OwnedFd, Errno> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    rustix::fs::open(path, flags, Mode::empty())
}

/// A directory's entries, as listed.
#[derive(Debug, Default, Clone)]
pub(super) struct Listing {
    pub(super) entries: Vec<Listed>,
    /// The listing stopped part way: what came before is in `entries`.
    pub(super) err: Option<Errno>,
    /// Listed by the count-ahead and kept for the walk (see
    /// [`super::listings`]): the entries' stats may be older than the
    /// walk's own would be.
    pub(super) early: bool,
}

/// Every entry of `dir` but `.` and `..`, in the order the file system
/// gives them. An error part way keeps what was read before it.
pub(super) fn list(dir: BorrowedFd<'_>) -> Listing {
    let mut buffer = [MaybeUninit::<u8>::uninit(); 32 << 10];
    let mut entries = RawDir::new(dir, &mut buffer);
    let mut listed = Vec::new();
    while let Some(entry) = entries.next() {
        let entry = match entry {
            Ok(entry) => entry,
            Err(err) => {
                return Listing {
                    entries: listed,
                    err: Some(err),
                    early: false,
                };
            }
        };
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        listed.push(Listed {
            name: OsStr::from_bytes(name).to_os_string(),
            file_type: entry.file_type(),
            stat: None,
        });
    }
    Listing {
        entries: listed,
        err: None,
        early: false,
    }
}

/// Stats, beneath `dir`, every listed entry that is not a directory (or
/// whose type the listing did not give), through symlinks if `follow`:
/// what the walk would stat one by one. An entry that cannot be stat'ed
/// is left without, for the walk to stat and report.
pub(super) fn stat_entries(dir: BorrowedFd<'_>, listed: &mut [Listed], follow: bool) {
    for entry in listed.iter_mut() {
        if entry.file_type != FileType::Directory {
            entry.stat = EntryStat::at(dir, &entry.name, follow).ok();
        }
    }
}

/// A directory the walk is in.
pub(super) struct Frame {
    /// Its entries not handled yet, last first.
    pub(super) pending: Vec<Listed>,
    /// Its name in its parent (empty for a root).
    pub(super) name: OsString,
    /// Its source path, for messages and the workers.
    pub(super) path: PathBuf,
    /// Its destination path below DST.
    pub(super) rel: OsString,
    /// (device, inode), for `-L`'s loop detection.
    pub(super) id: (u64, u64),
    /// Open for listing and for `*at` calls on its entries; `None` while
    /// closed for the budget. The readers hold weak references to it
    /// while its subdirectories wait to be read.
    src: Option<Arc<OwnedFd>>,
    /// The destination directory; its `fd` is taken while closed for the
    /// budget (`closed` says so: a dry run has directories without one).
    pub(super) dest: DestDir,
    closed: bool,
    /// Its names that collide when case is ignored, when its destination
    /// ignores case.
    pub(super) collisions: Option<Collisions>,
    /// Its subdirectories asked of the readers, and those to ask next.
    pub(super) ahead: Ahead,
    /// The rules of its dir-merge files; `None` without any.
    rules: Option<DirRules>,
    /// Its listing is the count-ahead's (see [`Listing::early`]).
    pub(super) early: bool,
}

/// What a new frame is made of.
pub(super) struct NewFrame {
    pub(super) listed: Vec<Listed>,
    pub(super) name: OsString,
    pub(super) path: PathBuf,
    pub(super) rel: OsString,
    pub(super) stat: EntryStat,
    pub(super) src: OwnedFd,
    pub(super) dest: DestDir,
    pub(super) ahead: Ahead,
    pub(super) rules: Option<DirRules>,
    /// See [`Frame::early`].
    pub(super) early: bool,
}

/// How the destination side reopens a directory closed for the budget.
pub(super) trait DestReopen {
    /// Opens the existing destination directory `rel` beneath DST.
    fn reopen(&self, rel: &OsStr) -> Result<OwnedFd, Errno>;
}

/// The directories the walk is in, root first, at most `open_levels` of
/// them (besides the root) holding descriptors.
pub(super) struct Stack {
    frames: Vec<Frame>,
    /// Frames `1..open_from` are closed; the root and the rest are open.
    open_from: usize,
    open_levels: usize,
    follow: bool,
}

impl Stack {
    /// `open_levels` is at least 1: the directory being read.
    pub(super) fn new(open_levels: usize, follow: bool) -> Stack {
        Stack {
            frames: Vec::new(),
            open_from: 1,
            open_levels: open_levels.max(1),
            follow,
        }
    }

    pub(super) fn push(&mut self, new: NewFrame) {
        let collisions = (new.dest.folds_case)
            .then(|| Collisions::of_names(new.listed.iter().map(|l| l.name.as_os_str())));
        let mut pending = new.listed;
        pending.reverse();
        self.frames.push(Frame {
            pending,
            name: new.name,
            path: new.path,
            rel: new.rel,
            id: (new.stat.dev(), new.stat.ino()),
            src: Some(Arc::new(new.src)),
            dest: new.dest,
            closed: false,
            collisions,
            ahead: new.ahead,
            rules: new.rules,
            early: new.early,
        });
        if self.frames.len() - self.open_from > self.open_levels {
            self.frames[self.open_from].close();
            self.open_from += 1;
        }
    }

    /// The directory being read, open.
    pub(super) fn top(&mut self) -> Option<&mut Frame> {
        self.frames.last_mut()
    }

    /// The device of the root being walked, for `-x`.
    pub(super) fn root_dev(&self) -> Option<u64> {
        self.frames.first().map(|f| f.id.0)
    }

    /// The directory being read.
    pub(super) fn peek(&self) -> Option<&Frame> {
        self.frames.last()
    }

    /// The source descriptor of the top frame (open whenever it is the
    /// top, see [`Stack::pop`]).
    pub(super) fn top_src(&self) -> Option<BorrowedFd<'_>> {
        self.frames
            .last()
            .and_then(|f| f.src.as_ref())
            .map(|fd| fd.as_fd())
    }

    /// The frames, root first, for the look-ahead.
    pub(super) fn frames_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut Frame> {
        self.frames.iter_mut()
    }

    /// The path of an ancestor with this (device, inode), if any: under
    /// `-L`, entering it again would loop.
    pub(super) fn loop_to(&self, id: (u64, u64)) -> Option<&Path> {
        self.frames
            .iter()
            .find(|f| f.id == id)
            .map(|f| f.path.as_path())
    }

    /// The dir-merge rules of the directories the walk is in, the top
    /// one's first (see `Filter::excludes`).
    pub(super) fn dir_rules(&self) -> Vec<&DirRules> {
        self.frames
            .iter()
            .rev()
            .filter_map(|f| f.rules.as_ref())
            .collect()
    }

    /// Leaves the top directory.
    pub(super) fn pop(&mut self) {
        self.frames.pop();
        self.open_from = self.open_from.min(self.frames.len()).max(1);
    }

    /// Opens the top directory again if it was closed for the budget. An
    /// error: it could not be (removed or replaced meanwhile); the caller
    /// reports it and pops it.
    pub(super) fn reopen_top(&mut self, dest: &dyn DestReopen) -> Result<(), Errno> {
        let top = self.frames.len();
        if top <= 1 || top > self.open_from {
            return Ok(());
        }
        // Reopen up to half the budget of levels at once, so climbing a
        // deep chain costs one walk down from the open root per that many
        // levels rather than one per level.
        let from = (top - 1).saturating_sub(self.open_levels / 2).max(1);
        let reopened = self.reopen(from, dest);
        match reopened {
            Ok(()) => self.open_from = from,
            Err(_) => self.frames[from..].iter_mut().for_each(Frame::close),
        }
        reopened
    }

    /// The path of the top directory.
    pub(super) fn top_path(&self) -> PathBuf {
        self.frames
            .last()
            .map(|f| f.path.clone())
            .unwrap_or_default()
    }

    /// Opens frames `from..` again (`from` at least 1): the sources
    /// component by component beneath the root, as the walk first went
    /// (following links only under `-L`), the destinations beneath DST.
    fn reopen(&mut self, from: usize, dest: &dyn DestReopen) -> Result<(), Errno> {
        let follow = self.follow;
        let (root, below) = self.frames.split_at_mut(1);
        let root = root[0].src.as_deref().ok_or(Errno::BADF)?;
        let mut held: Option<OwnedFd> = None;
        for (i, frame) in below.iter_mut().enumerate() {
            let parent = held.as_ref().map_or(root.as_fd(), AsFd::as_fd);
            let fd = match &frame.src {
                Some(fd) => rustix::io::fcntl_dupfd_cloexec(fd.as_fd(), 0)?,
                None => open_dir(parent, &frame.name, follow)?,
            };
            if i + 1 >= from && frame.src.is_none() {
                let dup = rustix::io::fcntl_dupfd_cloexec(&fd, 0)?;
                frame.src = Some(Arc::new(dup));
            }
            if i + 1 >= from && frame.closed {
                frame.dest.fd = Some(dest.reopen(&frame.rel)?);
                frame.closed = false;
            }
            held = Some(fd);
        }
        Ok(())
    }
}

/// A directory's subdirectories for the readers (see [`super::readers`]):
/// those asked for, oldest first, and those still to ask, next last.
#[derive(Debug, Default)]
pub(super) struct Ahead {
    pub(super) asked: VecDeque<(OsString, Ticket)>,
    pub(super) later: Vec<OsString>,
}

impl Frame {
    /// The descriptor the readers open its subdirectories beneath.
    pub(super) fn src_shared(&self) -> Option<&Arc<OwnedFd>> {
        self.src.as_ref()
    }

    fn close(&mut self) {
        self.src = None;
        if self.dest.fd.take().is_some() {
            self.closed = true;
        }
    }

    /// What the destination directory held when the walk entered it.
    pub(super) fn dest_names(&self) -> Option<&DestNames> {
        self.dest.names.as_ref()
    }

    /// The name `name` collides with here, where the destination ignores
    /// case.
    pub(super) fn collision(&self, name: &OsStr) -> Option<&OsStr> {
        self.collisions.as_ref()?.other(name)
    }

    /// The source path and destination path of the entry `name` here.
    pub(super) fn child(&self, name: &OsStr) -> (PathBuf, OsString) {
        (self.path.join(name), relpath::join(&self.rel, name))
    }
}
