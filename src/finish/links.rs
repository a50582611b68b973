//! Hard links under `-a`, the main thread's half: every later name of a
//! multiply-linked source file becomes a name of the one destination file.
//!
//! The walker sees every name, so it decides (`walk::links`): the first
//! name of an inode is copied like any file, by whichever worker takes it;
//! each later name becomes a [`LinkJob`] that this pass carries out once
//! every worker is done, linking it to the finished first copy. So names
//! handled by different workers still end up as one file, and a link never
//! points at a half-written one. A first name that left no copy has the
//! group's next name copied in its place ([`StandIns`]).

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, Stat};
use rustix::io::Errno;

use crate::copy::backup::Backup;
use crate::copy::{self, TEMP_PREFIX};
use crate::job::{FailKind, FileJob, Outcome, SkipReason};
use crate::relpath::{self, open_beneath};
use crate::ui::escape::io_reason;

/// A later name of a file whose first name is copied as usual.
#[derive(Debug, Clone)]
pub(crate) struct LinkJob {
    /// The later name, as a job (for counting and messages).
    pub(crate) job: FileJob,
    /// The first name's path below the destination root.
    pub(crate) target: OsString,
}

/// What the link phase needs to know.
#[derive(Debug)]
pub(crate) struct LinkPhase<'a> {
    pub(crate) root: BorrowedFd<'a>,
    pub(crate) dry_run: bool,
    /// The shard's temp-name tag (see `CopyOptions::temp_tag`).
    pub(crate) temp_tag: &'a str,
    /// A directory at a later name goes with its contents (`--force`).
    pub(crate) force: bool,
    /// `-b`: where a replaced name's old version goes.
    pub(crate) backup: Option<&'a Backup>,
    /// `--existing`: a later name not in DST is not made.
    pub(crate) existing: bool,
}

/// The first names that left no version in DST (failed, or skipped by
/// `--existing`, `--max-size` and the like), and for each the later name
/// copied in its place: the first of the group that is copied, to which
/// the rest of the group is linked (rsync's `-H` too).
#[derive(Debug)]
pub(crate) struct StandIns<'a> {
    not_copied: &'a HashSet<OsString>,
    found: HashMap<OsString, OsString>,
}

impl<'a> StandIns<'a> {
    /// `not_copied`: the destination paths left without a version.
    pub(crate) fn new(not_copied: &'a HashSet<OsString>) -> StandIns<'a> {
        StandIns {
            not_copied,
            found: HashMap::new(),
        }
    }

    /// What `link` is linked to: its first name, or the name copied in
    /// its place; `None` when it is to be copied itself.
    pub(crate) fn target<'l>(&'l self, link: &'l LinkJob) -> Option<&'l OsStr> {
        if !self.not_copied.contains(&link.target) {
            return Some(&link.target);
        }
        self.found.get(&link.target).map(OsString::as_os_str)
    }

    /// `link` was copied itself with `outcome`: when that left a version,
    /// the rest of its group is linked to it.
    pub(crate) fn copied(&mut self, link: &LinkJob, outcome: &Outcome) {
        if outcome.leaves_a_version() {
            let stand_in = link.job.rel_dst.clone();
            self.found.insert(link.target.clone(), stand_in);
        }
    }
}

/// Makes `link.job.rel_dst` a name of the destination file at `target`
/// (its first name's, or a stand-in's), replacing whatever is there
/// atomically; skipped when it already is one.
pub(crate) fn make_link(phase: &LinkPhase<'_>, link: &LinkJob, target: &OsStr) -> Outcome {
    if phase.dry_run {
        return copied(false);
    }
    match link_beneath(phase, target, &link.job.rel_dst) {
        Ok(outcome) => outcome,
        Err(LinkError { what, errno }) => failed(
            &format!("{what}: {}", io_reason(&errno.into())),
            FailKind::DestIo,
        ),
    }
}

/// The step of making a link that failed, and why.
struct LinkError {
    what: &'static str,
    errno: Errno,
}

/// The failure of the step `what`, for `map_err`.
fn failing(what: &'static str) -> impl Fn(Errno) -> LinkError {
    move |errno| LinkError { what, errno }
}

fn link_beneath(phase: &LinkPhase<'_>, target: &OsStr, rel: &OsStr) -> Result<Outcome, LinkError> {
    let (target_dir, target_name) = relpath::split(target);
    let (link_dir, link_name) = relpath::split(rel);
    let open = |dir| open_beneath(phase.root, dir).map_err(failing("cannot open directory"));
    let (tdir, ldir) = (open(target_dir)?, open(link_dir)?);
    let first = lstat(tdir.as_fd(), target_name).map_err(failing("cannot find its first name"))?;
    let existing = match lstat(ldir.as_fd(), link_name) {
        Ok(st) if (st.st_dev, st.st_ino) == (first.st_dev, first.st_ino) => {
            return Ok(Outcome::Skipped {
                reason: SkipReason::UpToDate,
            });
        }
        Ok(_) => true,
        Err(Errno::NOENT) if phase.existing => {
            return Ok(Outcome::Skipped {
                reason: SkipReason::Missing,
            });
        }
        Err(Errno::NOENT) => false,
        Err(err) => return Err(failing("cannot stat destination")(err)),
    };
    let ends = Ends {
        tdir: tdir.as_fd(),
        target_name,
        ldir: ldir.as_fd(),
        link_dir,
        link_name,
    };
    if !existing {
        match ends.link_as(link_name) {
            Ok(()) => return Ok(copied(false)),
            Err(Errno::EXIST) => {}
            Err(err) => return Err(failing("cannot link")(err)),
        }
    }
    ends.replace(phase)
}

/// The first name's file and the later name to link to it, each in its
/// open directory.
struct Ends<'a> {
    tdir: BorrowedFd<'a>,
    target_name: &'a OsStr,
    ldir: BorrowedFd<'a>,
    /// The later name's directory below the destination root.
    link_dir: &'a OsStr,
    link_name: &'a OsStr,
}

impl Ends<'_> {
    /// Links the first name's file as `name` in the later name's directory.
    fn link_as(&self, name: &OsStr) -> Result<(), Errno> {
        let (tdir, ldir) = (self.tdir, self.ldir);
        rustix::fs::linkat(tdir, self.target_name, ldir, name, AtFlags::empty())
    }

    /// Something else holds the later name: links under a temp name, then
    /// renames over it (its old version kept with `-b`), so the name never
    /// goes missing.
    fn replace(&self, phase: &LinkPhase<'_>) -> Result<Outcome, LinkError> {
        let (ldir, link_name) = (self.ldir, self.link_name);
        let temp = temp_name(phase.temp_tag);
        self.link_as(&temp).map_err(failing("cannot link"))?;
        if let Some(backup) = phase.backup {
            let parent = self.link_dir.as_encoded_bytes();
            if let Err(why) = backup.keep_old(ldir, parent, link_name, phase.force) {
                let _ = rustix::fs::unlinkat(ldir, &temp, AtFlags::empty());
                return Ok(failed(&why, FailKind::DestIo));
            }
        }
        let rename = || rustix::fs::renameat(ldir, &temp, ldir, link_name);
        let renamed = match rename() {
            // A directory where the link goes: an entry that changed type.
            Err(Errno::ISDIR | Errno::NOTEMPTY | Errno::EXIST) => {
                copy::clear::make_way_at(ldir, link_name, phase.force).and_then(|()| rename())
            }
            done => done,
        };
        if let Err(err) = renamed {
            let _ = rustix::fs::unlinkat(ldir, &temp, AtFlags::empty());
            return Err(failing("cannot rename link into place")(err));
        }
        Ok(copied(true))
    }
}

fn lstat(dir: BorrowedFd<'_>, name: &OsStr) -> Result<Stat, Errno> {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
}

/// A temp name that the stale-temp cleanup recognizes.
fn temp_name(tag: &str) -> OsString {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    OsString::from(format!(
        "{TEMP_PREFIX}{tag}{}.link{seq}",
        std::process::id()
    ))
}

fn copied(replaced: bool) -> Outcome {
    Outcome::Copied {
        bytes: 0,
        changed: false,
        replaced,
    }
}

fn failed(error: &str, kind: FailKind) -> Outcome {
    Outcome::Failed {
        error: error.to_string(),
        kind,
    }
}
