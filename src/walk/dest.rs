//! The walker's side of the destination: creating (or, dry running,
//! looking for) each directory beneath its parent's descriptor without
//! following a symlink, and preparing existing ones for the run.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::hash::{BuildHasher, BuildHasherDefault};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

use crate::copy;
use crate::copy::backup::Backup;
use crate::job::{BackupOptions, FailKind, IdHasher};
use crate::relpath;
use crate::ui::escape::io_reason;
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// A destination directory as the walk holds it.
#[derive(Debug)]
pub(crate) struct DestDir {
    /// `None` while dry running, for a directory that does not exist yet.
    pub(crate) fd: Option<OwnedFd>,
    /// Created by this run (or would be): nothing in it can exist yet.
    pub(crate) created: bool,
    /// What an existing directory held when the walk entered it; `None`
    /// when it was not listed (created, dry run, listed before, too big).
    pub(crate) names: Option<DestNames>,
    /// Names in it are looked up without regard to case.
    pub(crate) folds_case: bool,
    /// The permission bits an existing directory had when the walk
    /// entered it, before it was made writable for the run; `None` when
    /// not looked at (created, dry run).
    pub(crate) mode: Option<u32>,
}

/// Directories with more entries than this are not remembered by name:
/// the set would cost more memory than the stats it saves are worth.
const MAX_REMEMBERED_NAMES: usize = 1 << 20;

/// The names (temps aside) in an existing destination directory, from the
/// listing that clears it of stale temps. A source entry whose name is
/// there has something to be compared with, so the worker that compares
/// also stats the source; the walker stats only new names, whose sizes
/// it needs (progress totals, batches, splitting).
///
/// Names are kept as 64-bit digests, seeded per run so that nobody can
/// pick names that collide: no allocation per name. Two names with one
/// digest would make a new name look present, which costs only its size
/// being learnt from the worker rather than the walker: the worker still
/// finds nothing at the name and copies it.
#[derive(Debug)]
pub(crate) struct DestNames {
    seed: u64,
    digests: HashSet<u64, BuildHasherDefault<IdHasher>>,
}

impl DestNames {
    pub(crate) fn contains(&self, name: &OsStr) -> bool {
        let digest = xxh3_64_with_seed(name.as_bytes(), self.seed);
        self.digests.contains(&digest)
    }
}

/// Where a walked directory goes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Parent<'a> {
    /// The destination root itself (a walked root named in DST).
    Root,
    Dir(&'a DestDir),
}

/// Whether the directory `rel` is already in the destination beneath
/// `parent` (`--existing` creates nothing new); the root always is.
pub(crate) fn exists(root: Option<&OwnedFd>, parent: Parent<'_>, rel: &OsStr) -> bool {
    if rel.is_empty() {
        return true;
    }
    let parent_fd = match parent {
        Parent::Root => root,
        Parent::Dir(dir) => dir.fd.as_ref(),
    };
    let Some(fd) = parent_fd else {
        return false;
    };
    let name = relpath::last_name(rel);
    rustix::fs::statat(fd, name, AtFlags::SYMLINK_NOFOLLOW).is_ok()
}

/// Creates and opens destination directories for the walker.
#[derive(Debug)]
pub(crate) struct DestDirs {
    /// `None` only when dry running into a DST that does not exist.
    root: Option<OwnedFd>,
    root_new: bool,
    dry_run: bool,
    /// Existing destination directories (device, inode) already cleared of
    /// stale temp files: each only once, before any job of this run can
    /// have a temp file in it.
    cleaned: HashSet<(u64, u64)>,
    /// Spares other shards' temp files (see `copy::remove_stale_temps`).
    temp_tag: String,
    /// `--partial`: resumable temps are left for the splitter.
    keep_partial: bool,
    /// Seeds the digests of [`DestNames`].
    name_seed: u64,
    /// Created directories go into `cleaned` too (several sources).
    track_new: bool,
    /// The whole destination filesystem ignores case (see `copy::caps`).
    case_insensitive: bool,
    /// `-b`: where a non-directory in the way of a directory goes.
    aside: Aside,
}

/// What becomes of a non-directory where a directory goes.
#[derive(Debug)]
enum Aside {
    /// Removed, as without `-b`.
    Remove,
    /// Kept under its backup name.
    Keep(Backup),
    /// `-b` was asked for but the backup directory could not be opened:
    /// nothing is replaced.
    Broken(String),
}

/// Why a directory could not be had, ready for the walker's report.
#[derive(Debug)]
pub(crate) struct DirFailure {
    pub(crate) reason: String,
    pub(crate) kind: FailKind,
}

impl DestDirs {
    pub(crate) fn new(
        root: Option<OwnedFd>,
        root_new: bool,
        dry_run: bool,
        temp_tag: String,
        keep_partial: bool,
    ) -> DestDirs {
        DestDirs {
            root_new: root_new || dry_run && root.is_none(),
            root,
            dry_run,
            cleaned: HashSet::new(),
            temp_tag,
            keep_partial,
            name_seed: std::collections::hash_map::RandomState::new().hash_one(0u8),
            track_new: false,
            case_insensitive: false,
            aside: Aside::Remove,
        }
    }

    /// `-b`: a non-directory replaced by a directory is kept under its
    /// backup name (see [`Backup`]), never removed.
    pub(crate) fn keep_backups(&mut self, opts: &BackupOptions) {
        let Some(root) = self.root.as_ref().filter(|_| !self.dry_run) else {
            return;
        };
        self.aside = match Backup::open(root.as_fd(), opts, &self.temp_tag) {
            Ok(backup) => Aside::Keep(backup),
            Err(err) => Aside::Broken(format!("cannot open backup directory: {}", io_reason(&err))),
        };
    }

    /// Whether single entries copied straight into the root are new.
    pub(crate) fn root_is_new(&self) -> bool {
        self.root_new
    }

    /// Remembers the directories this run creates as cleared of stale
    /// temps: with several sources a later one may enter a directory an
    /// earlier one made, whose temps are this run's own and in use.
    pub(crate) fn track_new_dirs(&mut self) {
        self.track_new = true;
    }

    /// Tells that the destination filesystem ignores case in every
    /// directory; otherwise each directory is asked for ext4's casefold
    /// attribute.
    pub(crate) fn ignore_case(&mut self) {
        self.case_insensitive = true;
    }

    /// The destination directory `rel` beneath `parent`: created, opened or
    /// (dry running) found absent.
    /// Whether `rel` is already there beneath `parent` (see [`exists`]).
    pub(crate) fn has(&self, parent: Parent<'_>, rel: &OsStr) -> bool {
        exists(self.root.as_ref(), parent, rel)
    }

    /// A directory this creates gets `new_mode` (which must let its owner
    /// fill it; the umask applies).
    pub(crate) fn enter(
        &mut self,
        parent: Parent<'_>,
        rel: &OsStr,
        new_mode: Mode,
    ) -> Result<DestDir, DirFailure> {
        let mut dir = self.find_or_make(parent, rel, new_mode)?;
        // A new directory inherits casefolding from its parent: asking it
        // would cost a request per directory on a network mount.
        dir.folds_case = self.case_insensitive
            || match (&dir.fd, parent) {
                (_, Parent::Dir(parent)) if dir.created => parent.folds_case,
                (_, Parent::Root) if dir.created => {
                    (self.root.as_ref()).is_some_and(|root| super::case::casefolded(root.as_fd()))
                }
                (Some(fd), _) => super::case::casefolded(fd.as_fd()),
                (None, Parent::Dir(parent)) => parent.folds_case,
                (None, Parent::Root) => false,
            };
        if let (true, true, Some(fd)) = (self.track_new, dir.created, &dir.fd) {
            if let Ok(st) = rustix::fs::fstat(fd) {
                self.cleaned.insert((st.st_dev, st.st_ino));
            }
        }
        Ok(dir)
    }

    fn find_or_make(
        &mut self,
        parent: Parent<'_>,
        rel: &OsStr,
        new_mode: Mode,
    ) -> Result<DestDir, DirFailure> {
        if rel.is_empty() {
            return self.enter_root();
        }
        let parent_fd = match parent {
            Parent::Root => self.root.as_ref(),
            Parent::Dir(dir) => dir.fd.as_ref(),
        };
        let Some(parent_fd) = parent_fd else {
            // Dry run below a directory that does not exist.
            return Ok(absent());
        };
        let parent_fd = parent_fd.as_fd();
        let name = relpath::last_name(rel);
        if self.dry_run {
            return match open_dir(parent_fd, name) {
                Ok(fd) => Ok(DestDir {
                    fd: Some(fd),
                    created: false,
                    names: None,
                    folds_case: false,
                    mode: None,
                }),
                // A non-directory there would be replaced.
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => Ok(absent()),
                Err(e) => Err(open_failure(e)),
            };
        }
        // Below an existing directory this one most likely exists too (an
        // incremental run): opening it first saves a failing `mkdirat`.
        let parent_new = match parent {
            Parent::Root => self.root_new,
            Parent::Dir(dir) => dir.created,
        };
        if !parent_new {
            match open_dir(parent_fd, name) {
                Ok(fd) => return self.existing(fd),
                Err(Errno::NOENT) => {}
                Err(Errno::NOTDIR | Errno::LOOP) => {
                    return replace_with_dir(parent_fd, rel, &self.aside);
                }
                Err(e) => return Err(open_failure(e)),
            }
        }
        match rustix::fs::mkdirat(parent_fd, name, new_mode) {
            Ok(()) => new_dir(parent_fd, name),
            Err(Errno::EXIST) => match open_dir(parent_fd, name) {
                Ok(fd) => self.existing(fd),
                Err(Errno::NOTDIR | Errno::LOOP) => replace_with_dir(parent_fd, rel, &self.aside),
                Err(e) => Err(open_failure(e)),
            },
            // The parent is open, so it is the name the filesystem refuses
            // (exFAT: `:`, `?`, `"` and others).
            Err(Errno::NOENT | Errno::INVAL) => Err(DirFailure {
                reason: "name not allowed on this filesystem".to_string(),
                kind: FailKind::Unsupported,
            }),
            Err(e) => Err(dest_failure("cannot create directory", e)),
        }
    }

    /// An existing directory, opened, made ready for the run.
    fn existing(&mut self, fd: OwnedFd) -> Result<DestDir, DirFailure> {
        let mut dir = DestDir {
            fd: Some(fd),
            created: false,
            names: None,
            folds_case: false,
            mode: None,
        };
        self.prepare_existing(&mut dir)?;
        Ok(dir)
    }

    fn enter_root(&mut self) -> Result<DestDir, DirFailure> {
        let Some(root) = &self.root else {
            return Ok(absent());
        };
        let fd = rustix::io::fcntl_dupfd_cloexec(root, 0)
            .map_err(|e| dest_failure("cannot open destination directory", e))?;
        let mut dir = DestDir {
            fd: Some(fd),
            created: self.root_new,
            names: None,
            folds_case: false,
            mode: None,
        };
        if !self.dry_run {
            self.prepare_existing(&mut dir)?;
        }
        Ok(dir)
    }

    /// Makes an existing directory writable for the run (its final mode is
    /// applied at the end) and removes temp files of an earlier killed run,
    /// remembering the other names it finds (see [`DestNames`]).
    fn prepare_existing(&mut self, entered: &mut DestDir) -> Result<(), DirFailure> {
        let Some(dir) = &entered.fd else {
            return Ok(());
        };
        let st = rustix::fs::fstat(dir).map_err(|e| dest_failure("cannot stat directory", e))?;
        entered.mode = Some(st.st_mode & 0o7777);
        // Only when this user cannot write otherwise (root can): a chmod,
        // even one undone at the end, would change the ctime of a
        // directory that an incremental run leaves alone.
        if st.st_mode & 0o700 != 0o700 && !writable(dir) {
            rustix::fs::fchmod(dir, Mode::from_raw_mode(st.st_mode | 0o700))
                .map_err(|e| dest_failure("cannot make directory writable", e))?;
        }
        if !self.cleaned.insert((st.st_dev, st.st_ino)) {
            return Ok(());
        }
        let seed = self.name_seed;
        let mut names = HashSet::default();
        let mut complete = true;
        let mut remember = |name: &[u8]| {
            if names.len() < MAX_REMEMBERED_NAMES {
                names.insert(xxh3_64_with_seed(name, seed));
            } else {
                complete = false;
            }
        };
        // Best effort: a leftover that cannot be removed is harmless, as
        // no final name ever refers to it; a listing cut short is not
        // remembered, so the walker stats every entry there.
        let listed = copy::remove_stale_temps_in(
            dir.as_fd(),
            &self.temp_tag,
            self.keep_partial,
            &mut remember,
        );
        let names = DestNames {
            seed,
            digests: names,
        };
        entered.names = (listed.is_ok() && complete).then_some(names);
        Ok(())
    }
}

impl super::tree::DestReopen for DestDirs {
    fn reopen(&self, rel: &OsStr) -> Result<OwnedFd, Errno> {
        let root = self.root.as_ref().ok_or(Errno::NOENT)?;
        relpath::open_beneath(root.as_fd(), rel)
    }
}

/// Opens the directory `name` this run just made in `parent`: `O_PATH`,
/// as nothing is read from it nor changed on it (it is empty, takes its
/// casefolding from its parent, and gets its metadata at the end); it is
/// only named beneath, and on a network or FUSE mount a full open is two
/// more requests (open and release).
fn new_dir(parent: BorrowedFd<'_>, name: &OsStr) -> Result<DestDir, DirFailure> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(parent, name, flags, Mode::empty())
        .map_err(|e| dest_failure("cannot open new directory", e))?;
    Ok(DestDir {
        fd: Some(fd),
        created: true,
        names: None,
        folds_case: false,
        mode: None,
    })
}

/// A file, symlink or special file where the directory `rel` goes:
/// removed (a symlink as a link, whatever it points to: `unlinkat` never
/// follows), with `-b` once its backup holds it, and a directory made in
/// its place, as rsync does. Only that name in `parent`, an open
/// destination directory, is touched.
fn replace_with_dir(
    parent: BorrowedFd<'_>,
    rel: &OsStr,
    aside: &Aside,
) -> Result<DestDir, DirFailure> {
    let name = relpath::last_name(rel);
    let kept = match aside {
        Aside::Remove => Ok(()),
        // Never a directory here (that would have been entered).
        Aside::Keep(backup) => {
            backup.keep_old(parent, relpath::parent(rel).as_bytes(), name, false)
        }
        Aside::Broken(why) => Err(why.clone()),
    };
    if let Err(reason) = kept {
        return Err(DirFailure {
            reason,
            kind: FailKind::DestIo,
        });
    }
    match rustix::fs::unlinkat(parent, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => {}
        Err(e) => return Err(dest_failure("cannot remove non-directory in the way", e)),
    }
    match rustix::fs::mkdirat(parent, name, Mode::RWXU) {
        Ok(()) => new_dir(parent, name),
        Err(e) => Err(dest_failure("cannot create directory", e)),
    }
}

fn absent() -> DestDir {
    DestDir {
        fd: None,
        created: true,
        names: None,
        folds_case: false,
        mode: None,
    }
}

/// Whether this process may create entries in `dir` as it is.
fn writable(dir: &OwnedFd) -> bool {
    let by_fd = format!("/proc/self/fd/{}", dir.as_raw_fd());
    let wanted = rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK;
    rustix::fs::accessat(rustix::fs::CWD, by_fd.as_str(), wanted, AtFlags::EACCESS).is_ok()
}

fn open_dir(parent: BorrowedFd<'_>, name: &OsStr) -> Result<OwnedFd, Errno> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::openat(parent, name, flags, Mode::empty())
}

fn open_failure(err: Errno) -> DirFailure {
    match err {
        Errno::NOTDIR | Errno::LOOP => DirFailure {
            reason: "destination exists and is not a directory".to_string(),
            kind: FailKind::DestIo,
        },
        e => dest_failure("cannot open destination directory", e),
    }
}

fn dest_failure(what: &str, err: Errno) -> DirFailure {
    DirFailure {
        reason: format!("{what}: {}", io_reason(&err.into())),
        kind: FailKind::DestIo,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_of(dir: &std::path::Path) -> OwnedFd {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        rustix::fs::open(dir, flags, Mode::empty()).unwrap()
    }

    #[test]
    fn a_dry_run_creates_nothing_and_finds_what_exists() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("there")).unwrap();
        let mut dirs = DestDirs::new(Some(root_of(tmp.path())), false, true, String::new(), false);
        let there = dirs
            .enter(Parent::Root, OsStr::new("there"), Mode::RWXU)
            .unwrap();
        assert!(there.fd.is_some() && !there.created);
        let missing = dirs
            .enter(Parent::Root, OsStr::new("missing"), Mode::RWXU)
            .unwrap();
        assert!(missing.fd.is_none() && missing.created);
        let below = dirs
            .enter(Parent::Dir(&missing), OsStr::new("missing/x"), Mode::RWXU)
            .unwrap();
        assert!(below.fd.is_none());
        assert!(!tmp.path().join("missing").exists());
    }

    #[test]
    fn a_real_run_creates_and_reports_new_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let mut dirs = DestDirs::new(
            Some(root_of(tmp.path())),
            false,
            false,
            String::new(),
            false,
        );
        let made = dirs
            .enter(Parent::Root, OsStr::new("made"), Mode::RWXU)
            .unwrap();
        assert!(made.created && tmp.path().join("made").is_dir());
        let again = dirs
            .enter(Parent::Root, OsStr::new("made"), Mode::RWXU)
            .unwrap();
        assert!(!again.created);
        std::fs::write(tmp.path().join("file"), "f").unwrap();
        let replaced = dirs
            .enter(Parent::Root, OsStr::new("file"), Mode::RWXU)
            .unwrap();
        assert!(replaced.created && tmp.path().join("file").is_dir());
    }

    #[test]
    fn a_symlink_where_a_directory_goes_is_replaced_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("dst")).unwrap();
        std::fs::create_dir_all(tmp.path().join("outside")).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("outside"), tmp.path().join("dst/sub")).unwrap();
        let root = root_of(&tmp.path().join("dst"));
        let mut dirs = DestDirs::new(Some(root), false, false, String::new(), false);
        let sub = dirs
            .enter(Parent::Root, OsStr::new("sub"), Mode::RWXU)
            .unwrap();
        assert!(sub.created);
        let meta = std::fs::symlink_metadata(tmp.path().join("dst/sub")).unwrap();
        assert!(meta.is_dir());
        assert!(tmp.path().join("outside").is_dir());
    }
}
