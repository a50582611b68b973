//! `--delete`: after the copy, removes what is in the destination but not
//! in the sources, directory by directory.
//!
//! Each destination directory is listed beside its source directories (the
//! union, when several sources go into one directory) and every name the
//! sources lack is removed. Everything is reached relative to a directory
//! descriptor, one component at a time, with `O_NOFOLLOW`: a symlink in the
//! destination is removed as a link, never followed, so nothing outside
//! the destination can be touched. Excluded names are protected unless
//! `--delete-excluded`; names of pcopy's temp files are left to the
//! stale-temp cleanup. With `--max-delete N` the N+1st removal is not done
//! and the run ends with status 25.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::copy::TEMP_PREFIX;
use crate::copy::backup::Backup;
use crate::copy::backup_dir::{self, DirId, Place};
use crate::job::BackupOptions;
use crate::plan::Root;
use crate::relpath::{self, open_beneath};
use crate::select::dir_rules::{BadRulesFile, DirRules};
use crate::select::filter::Filter;
use crate::select::shard::Shard;
use crate::ui::escape::io_reason;

/// Where the removals and problems of the pass are reported.
pub(crate) trait DeleteSink {
    /// `rel` (below the destination root) was removed, or would be.
    fn deleted(&mut self, rel: &OsStr, is_dir: bool);
    /// Something could not be listed or removed; the pass goes on.
    fn delete_failed(&mut self, path: &Path, reason: &str);
}

/// How `--delete` may remove destination entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeleteOptions {
    /// `--max-delete N`: stop after N removals (status 25).
    pub(crate) max: Option<u64>,
    /// `--delete-excluded`: excluded entries are removed too.
    pub(crate) excluded: bool,
}

/// What `--delete` does besides its limits; built by `Config::finish_setup`.
#[derive(Debug, Clone)]
pub(crate) struct DeleteSetup {
    pub(crate) opts: DeleteOptions,
    pub(crate) filter: Option<Arc<Filter>>,
    /// Follow symlinks in the sources, as the copy did (`-L`).
    pub(crate) dereference: bool,
    pub(crate) dry_run: bool,
    /// Removes only the names of this shard (`--shard`); directories
    /// both sides have are gone through by every shard.
    pub(crate) shard: Option<Shard>,
    /// `-b`: what would be removed is moved to its backup name instead;
    /// backups beside their files and the backup directory are spared.
    pub(crate) backup: Option<BackupOptions>,
}

/// How the pass ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DeleteEnd {
    pub(crate) deleted: u64,
    /// `--max-delete` stopped the pass.
    pub(crate) limited: bool,
}

/// The `--max-delete` limit was reached.
struct Limit;

/// One name in a destination directory.
struct Entry<'n> {
    name: &'n [u8],
    /// Relative to the destination root.
    rel: &'n OsStr,
    is_dir: bool,
}

/// What a destination directory's names are measured against.
struct Claims {
    /// The names on the way to another source's destination, and whether
    /// a directory goes there (see [`claims`]).
    claimed: HashMap<Vec<u8>, bool>,
    /// The names the sources have, and whether each is a directory.
    wanted: HashMap<Vec<u8>, bool>,
}

/// What the pass does with a name in a destination directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Keep,
    /// A directory both sides have (or on the way to another source's
    /// destination): its contents are judged in turn.
    Descend,
    Remove,
}

/// What became of a directory whose contents were removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Emptied {
    /// Emptied, or as far as errors allowed (each reported).
    Done,
    /// Something in it is protected, so it stays.
    KeptProtected,
}

/// Removes the extraneous entries below every directory root of the run;
/// `root` is the destination root, `dst_root` its path for messages.
pub(crate) fn delete_extraneous(
    root: BorrowedFd<'_>,
    dst_root: &Path,
    roots: &[Root],
    setup: &DeleteSetup,
    sink: &mut dyn DeleteSink,
) -> DeleteEnd {
    let groups = top_groups(roots);
    let backup = match &setup.backup {
        Some(opts) if !setup.dry_run => match Backup::open(root, opts, "") {
            Ok(backup) => Some(backup),
            Err(err) => {
                let why = format!("cannot open backup directory: {}", io_reason(&err));
                sink.delete_failed(dst_root, &why);
                return DeleteEnd::default();
            }
        },
        _ => None,
    };
    let mut pass = Pass {
        setup,
        roots,
        dst_root,
        sink,
        end: DeleteEnd::default(),
        backup,
        backup_dir: setup
            .backup
            .as_ref()
            .and_then(|opts| BackupDir::find(root, opts)),
        rules: Vec::new(),
        sent_rules: Vec::new(),
    };
    for (rel, sources) in groups {
        if pass.group(root, rel, &sources).is_err() {
            pass.end.limited = true;
            break;
        }
    }
    pass.end
}

struct Pass<'a, 's> {
    setup: &'a DeleteSetup,
    /// Every source of the run: a name on the way to a source's
    /// destination is never extraneous.
    roots: &'a [Root],
    /// The destination root as named, for messages.
    dst_root: &'a Path,
    sink: &'s mut dyn DeleteSink,
    end: DeleteEnd,
    backup: Option<Backup>,
    /// The `--backup-dir`, spared.
    backup_dir: Option<BackupDir>,
    /// The dir-merge rules of the destination directories the pass is
    /// in that have any, outermost first: rsync's receiver reads them
    /// from the destination (where the copy put them), not the source.
    rules: Vec<DirRules>,
    /// The same read from the source directories (the first that has
    /// each): what the walk left out by them.
    sent_rules: Vec<DirRules>,
}

/// Where the `--backup-dir` is, to spare it however it was spelled.
struct BackupDir {
    /// Beneath DST: its path, single slashes, no `.` or `..`.
    rel: Option<Vec<u8>>,
    /// Its identity, for a directory met by another way; `None` while it
    /// does not exist (a dry run).
    id: Option<DirId>,
}

impl BackupDir {
    fn find(root: BorrowedFd<'_>, opts: &BackupOptions) -> Option<BackupDir> {
        let dir = opts.dir.as_ref()?;
        let rel = match backup_dir::locate(root, dir) {
            Ok(Place::Beneath(rel)) => Some(rel.into_vec()),
            _ => None,
        };
        let id = (backup_dir::open(root, dir).ok()).and_then(|fd| DirId::of(fd.as_fd()).ok());
        Some(BackupDir { rel, id })
    }

    /// Whether the open directory `fd` is the backup directory.
    fn is(&self, fd: BorrowedFd<'_>) -> bool {
        self.id.is_some() && DirId::of(fd).ok() == self.id
    }
}

impl Pass<'_, '_> {
    fn group(&mut self, root: BorrowedFd<'_>, rel: &OsStr, sources: &[&Path]) -> Result<(), Limit> {
        let dst = match open_beneath(root, rel) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(()),
            Err(err) => {
                self.failed(rel, "cannot open directory", err);
                return Ok(());
            }
        };
        let mut fds = Vec::with_capacity(sources.len());
        if self.open_sources(sources, &mut fds) {
            self.sync_dir(dst.as_fd(), rel, &fds)?;
        }
        Ok(())
    }

    /// Opens the source directories `paths` into `fds`; false (reported)
    /// when one cannot be: without its listing nothing can be judged.
    fn open_sources(&mut self, paths: &[&Path], fds: &mut Vec<OwnedFd>) -> bool {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        for source in paths {
            match rustix::fs::open(*source, flags, Mode::empty()) {
                Ok(fd) => fds.push(fd),
                Err(err) => {
                    let why = format!("cannot read source directory: {}", reason(err));
                    self.sink.delete_failed(source, &why);
                    return false;
                }
            }
        }
        true
    }

    /// Removes the names in `dst` that no source directory has, and goes
    /// into the directories both sides have. Without sources (a directory
    /// only on the way to another source's destination) nothing is removed.
    fn sync_dir(
        &mut self,
        dst: BorrowedFd<'_>,
        rel: &OsStr,
        sources: &[OwnedFd],
    ) -> Result<(), Limit> {
        let Some(wanted) = self.wanted(rel, sources) else {
            return Ok(());
        };
        let claimed = claims(self.roots, rel);
        let present = match list(dst, false) {
            Ok(names) => names,
            Err(err) => {
                self.failed(rel, "cannot list directory", err);
                return Ok(());
            }
        };
        let Some(pushed) = self.enter_rules(dst, rel, &present) else {
            return Ok(());
        };
        let sent = self.enter_sent_rules(rel, sources, &wanted);
        let synced = self.sync_names(dst, rel, sources, present, &Claims { claimed, wanted });
        if pushed {
            self.rules.pop();
        }
        if sent {
            self.sent_rules.pop();
        }
        synced
    }

    /// [`Pass::sync_dir`] for the names `present` in `dst`.
    fn sync_names(
        &mut self,
        dst: BorrowedFd<'_>,
        rel: &OsStr,
        sources: &[OwnedFd],
        present: Vec<Listed>,
        claims: &Claims,
    ) -> Result<(), Limit> {
        for Listed { name, is_dir } in present {
            let child = relpath::join(rel, OsStr::from_bytes(&name));
            let entry = Entry {
                name: &name,
                rel: &child,
                is_dir,
            };
            match self.verdict(&entry, claims, sources.is_empty()) {
                Verdict::Keep => {}
                Verdict::Descend => self.descend(dst, &name, &child, sources)?,
                Verdict::Remove => self.remove(dst, &name, &child, is_dir)?,
            }
        }
        Ok(())
    }

    /// Reads the dir-merge files of the first source directory of `rel`
    /// onto the sender's rules, as the walk read them (a bad one is the
    /// walk's to report, and failed the run); whether any were.
    fn enter_sent_rules(
        &mut self,
        rel: &OsStr,
        sources: &[OwnedFd],
        wanted: &HashMap<Vec<u8>, bool>,
    ) -> bool {
        let (Some(filter), Some(source)) = (&self.setup.filter, sources.first()) else {
            return false;
        };
        let present = |name: &OsStr| wanted.contains_key(name.as_bytes());
        let read = DirRules::read(
            source.as_fd(),
            rel,
            filter.dir_merges(),
            &present,
            &mut Vec::new(),
        );
        let pushed = read.is_some();
        self.sent_rules.extend(read);
        pushed
    }

    /// What becomes of `entry` of a destination directory, given the
    /// names claimed by other sources and those the sources have.
    fn verdict(&self, entry: &Entry<'_>, claims: &Claims, no_sources: bool) -> Verdict {
        let Claims { claimed, wanted } = claims;
        if entry.name.starts_with(TEMP_PREFIX.as_bytes()) {
            return Verdict::Keep;
        }
        if let Some(&leads_to_dir) = claimed.get(entry.name) {
            // Another source's destination, or the way to it.
            return match entry.is_dir && leads_to_dir {
                true => Verdict::Descend,
                false => Verdict::Keep,
            };
        }
        if no_sources || self.is_backup_dir(entry.rel) {
            return Verdict::Keep;
        }
        let excluded = self.excluded(entry.rel, entry.is_dir);
        let both_dirs = entry.is_dir && wanted.get(entry.name) == Some(&true);
        // A directory the copy went through is gone through here too,
        // whatever protects its name: rsync cleans every directory of the
        // transfer, and a protect rule spares only the names it matches.
        if both_dirs && !excluded {
            return Verdict::Descend;
        }
        if self.protects(entry) || self.leads_to_backup_dir(entry.rel) {
            return Verdict::Keep;
        }
        match wanted.contains_key(entry.name) && !excluded {
            true => Verdict::Keep,
            false if self.setup.shard.is_none_or(|s| s.owns(entry.rel)) => Verdict::Remove,
            false => Verdict::Keep,
        }
    }

    /// The names the source directories of `rel` have, and whether each is
    /// a directory; `None` (reported) when one cannot be listed.
    fn wanted(&mut self, rel: &OsStr, sources: &[OwnedFd]) -> Option<HashMap<Vec<u8>, bool>> {
        let mut wanted: HashMap<Vec<u8>, bool> = HashMap::new();
        for source in sources {
            match list(source.as_fd(), self.setup.dereference) {
                // The first source that has a name decides its type, as
                // in the copy.
                Ok(names) => {
                    for Listed { name, is_dir } in names {
                        wanted.entry(name).or_insert(is_dir);
                    }
                }
                Err(err) => {
                    let why = format!("cannot list source directory: {}", reason(err));
                    self.sink.delete_failed(&self.path(rel), &why);
                    return None;
                }
            }
        }
        Some(wanted)
    }

    fn descend(
        &mut self,
        dst: BorrowedFd<'_>,
        name: &[u8],
        rel: &OsStr,
        sources: &[OwnedFd],
    ) -> Result<(), Limit> {
        let Ok(child) = open_dir(dst, name, true) else {
            return Ok(());
        };
        if self
            .backup_dir
            .as_ref()
            .is_some_and(|dir| dir.is(child.as_fd()))
        {
            return Ok(());
        }
        let follow = self.setup.dereference;
        let mut children: Vec<OwnedFd> = sources
            .iter()
            .filter_map(|source| open_dir(source.as_fd(), name, !follow).ok())
            .collect();
        // Sources copied straight into this directory join those of its
        // parent.
        let joining: Vec<&Path> = (self.roots.iter())
            .filter(|root| root.is_dir && !root.flat && root.rel_dst == rel)
            .map(|root| root.src.as_path())
            .collect();
        if self.open_sources(&joining, &mut children) {
            self.sync_dir(child.as_fd(), rel, &children)?;
        }
        Ok(())
    }

    /// Removes `name` from `dir`, a directory with all its contents first.
    fn remove(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        rel: &OsStr,
        is_dir: bool,
    ) -> Result<(), Limit> {
        self.remove_entry(dir, name, rel, is_dir).map(drop)
    }

    /// Removes one entry (a directory with what it holds): whether it is
    /// gone, or left holding what a filter rule protects.
    fn remove_entry(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        rel: &OsStr,
        is_dir: bool,
    ) -> Result<Emptied, Limit> {
        let mut is_dir = is_dir;
        if is_dir {
            match open_dir(dir, name, true) {
                Ok(fd) if self.backup_dir.as_ref().is_some_and(|d| d.is(fd.as_fd())) => {
                    return Ok(Emptied::KeptProtected);
                }
                // rsync leaves a directory holding protected entries too.
                Ok(fd) => match self.empty_dir(fd, rel)? {
                    Emptied::KeptProtected => return Ok(Emptied::KeptProtected),
                    Emptied::Done => {}
                },
                // Swapped for something else since the listing.
                Err(Errno::NOTDIR | Errno::LOOP) => is_dir = false,
                Err(Errno::NOENT) => return Ok(Emptied::Done),
                Err(err) => {
                    self.failed(rel, "cannot open directory", err);
                    return Ok(Emptied::Done);
                }
            }
        }
        if let Some(max) = self.setup.opts.max {
            if self.end.deleted >= max {
                return Err(Limit);
            }
        }
        if !self.setup.dry_run && !self.unlink(dir, name, rel, is_dir) {
            return Ok(Emptied::Done);
        }
        self.end.deleted += 1;
        self.sink.deleted(rel, is_dir);
        Ok(Emptied::Done)
    }

    /// Removes the entry `name` (a directory emptied already), or with
    /// `-b` moves a non-directory to its backup name: whether it is gone
    /// (a failure is reported).
    fn unlink(&mut self, dir: BorrowedFd<'_>, name: &[u8], rel: &OsStr, is_dir: bool) -> bool {
        let flags = match is_dir {
            true => AtFlags::REMOVEDIR,
            false => AtFlags::empty(),
        };
        let removed = match &self.backup {
            Some(backup) if !is_dir => {
                let parent = relpath::parent(rel).as_bytes();
                backup.move_aside(dir, parent, OsStr::from_bytes(name))
            }
            _ => rustix::fs::unlinkat(dir, name, flags),
        };
        match removed {
            Ok(()) | Err(Errno::NOENT) => true,
            // The backups made beside the files keep their directory, as
            // with rsync.
            Err(Errno::NOTEMPTY) if self.backup.is_some() => false,
            Err(err) => {
                self.failed(rel, "cannot delete", err);
                false
            }
        }
    }

    /// Removes what a directory that is going holds, but what a filter
    /// rule protects (a `P` rule, or an exclude without
    /// `--delete-excluded`).
    fn empty_dir(&mut self, fd: OwnedFd, rel: &OsStr) -> Result<Emptied, Limit> {
        let entries = match list(fd.as_fd(), false) {
            Ok(entries) => entries,
            Err(err) => {
                self.failed(rel, "cannot list directory", err);
                return Ok(Emptied::Done);
            }
        };
        if !self.setup.dry_run && !entries.is_empty() {
            make_writable(fd.as_fd());
        }
        let Some(pushed) = self.enter_rules(fd.as_fd(), rel, &entries) else {
            return Ok(Emptied::KeptProtected);
        };
        let emptied = self.empty_names(fd.as_fd(), rel, entries);
        if pushed {
            self.rules.pop();
        }
        emptied
    }

    /// [`Pass::empty_dir`] for its `entries`.
    fn empty_names(
        &mut self,
        fd: BorrowedFd<'_>,
        rel: &OsStr,
        entries: Vec<Listed>,
    ) -> Result<Emptied, Limit> {
        let mut emptied = Emptied::Done;
        for Listed { name, is_dir } in entries {
            let child = relpath::join(rel, OsStr::from_bytes(&name));
            let entry = Entry {
                name: &name,
                rel: &child,
                is_dir,
            };
            if self.protects(&entry) || self.is_backup_dir(&child) {
                emptied = Emptied::KeptProtected;
                continue;
            }
            if self.remove_entry(fd.as_fd(), &name, &child, is_dir)? == Emptied::KeptProtected {
                emptied = Emptied::KeptProtected;
            }
        }
        Ok(emptied)
    }

    /// Whether a filter rule (`P`, or an exclude without
    /// `--delete-excluded`) or the backup suffix spares `entry`.
    fn protects(&self, entry: &Entry<'_>) -> bool {
        let protected = self.setup.filter.as_ref().is_some_and(|filter| {
            let dirs: Vec<&DirRules> = self.rules.iter().rev().collect();
            filter.protects(entry.rel, entry.is_dir, self.setup.opts.excluded, &dirs)
        });
        protected || self.is_backup_name(entry.name)
    }

    /// Whether the walk left `child` out.
    fn excluded(&self, child: &OsStr, is_dir: bool) -> bool {
        let Some(filter) = &self.setup.filter else {
            return false;
        };
        let dirs: Vec<&DirRules> = self.sent_rules.iter().rev().collect();
        filter.excludes(child, is_dir, &dirs)
    }

    /// Reads the dir-merge files of the destination directory `dir`
    /// (`rel`), whose entries are `names`, onto the rules; whether any
    /// were. `None` (reported) when one is bad: nothing in the directory
    /// may then be removed, as what it protects is unknown.
    fn enter_rules(&mut self, dir: BorrowedFd<'_>, rel: &OsStr, names: &[Listed]) -> Option<bool> {
        let merges = (self.setup.filter.as_ref()).map_or(&[][..], |f| f.dir_merges());
        if merges.is_empty() {
            return Some(false);
        }
        let present = |name: &OsStr| names.iter().any(|n| n.name == name.as_bytes());
        let mut bad = Vec::new();
        let rules = DirRules::read(dir, rel, merges, &present, &mut bad);
        if let Some(BadRulesFile { name, reason }) = bad.into_iter().next() {
            let path = self.path(rel).join(name);
            self.sink
                .delete_failed(&path, &format!("{reason}: nothing removed beside it"));
            return None;
        }
        let pushed = rules.is_some();
        self.rules.extend(rules);
        Some(pushed)
    }

    /// A backup made beside its file by an earlier run: without
    /// `--backup-dir`, a name ending in the suffix, spared unless
    /// `--delete-excluded` (rsync's `P *~` rule).
    fn is_backup_name(&self, name: &[u8]) -> bool {
        match &self.setup.backup {
            Some(opts) if opts.dir.is_none() => {
                !self.setup.opts.excluded && name.ends_with(opts.suffix.as_bytes())
            }
            _ => false,
        }
    }

    /// The backup directory itself, always spared (also recognised by
    /// identity once opened, see [`BackupDir::is`]).
    fn is_backup_dir(&self, child: &OsStr) -> bool {
        self.backup_rel().is_some_and(|dir| dir == child.as_bytes())
    }

    /// A directory on the way to the backup directory: kept when the
    /// sources lack it, so the backups below stay.
    fn leads_to_backup_dir(&self, child: &OsStr) -> bool {
        self.backup_rel().is_some_and(|dir| {
            (dir.strip_prefix(child.as_bytes())).is_some_and(|rest| rest.first() == Some(&b'/'))
        })
    }

    fn backup_rel(&self) -> Option<&[u8]> {
        self.backup_dir.as_ref()?.rel.as_deref()
    }

    fn failed(&mut self, rel: &OsStr, what: &str, err: Errno) {
        let why = format!("{what}: {}", reason(err));
        self.sink.delete_failed(&self.path(rel), &why);
    }

    fn path(&self, rel: &OsStr) -> PathBuf {
        self.dst_root.join(rel)
    }
}

/// The destination directories gone through from the top: those of the
/// directory sources, but those lying beneath another source's
/// destination, which the pass joins when it gets there.
fn top_groups(roots: &[Root]) -> BTreeMap<&OsStr, Vec<&Path>> {
    let mut groups: BTreeMap<&OsStr, Vec<&Path>> = BTreeMap::new();
    // A flat root's contents are not copied, so not synchronized either.
    for source in roots.iter().filter(|r| r.is_dir && !r.flat) {
        let nested = (roots.iter())
            .any(|other| other.is_dir && beneath(&other.rel_dst, &source.rel_dst).is_some());
        if !nested {
            groups.entry(&source.rel_dst).or_default().push(&source.src);
        }
    }
    groups
}

/// The names in the destination directory `rel` on the way to a source's
/// destination (or that destination itself), and whether a directory
/// goes there: these are never extraneous.
fn claims(roots: &[Root], rel: &OsStr) -> HashMap<Vec<u8>, bool> {
    let mut claimed: HashMap<Vec<u8>, bool> = HashMap::new();
    for root in roots {
        let Some(rest) = beneath(rel, &root.rel_dst) else {
            continue;
        };
        let (name, deeper) = match rest.iter().position(|&b| b == b'/') {
            Some(slash) => (&rest[..slash], true),
            None => (rest, false),
        };
        *claimed.entry(name.to_vec()).or_default() |= deeper || root.is_dir;
    }
    claimed
}

/// What `path` has after `dir/` when it lies strictly beneath `dir` (both
/// relative to the destination root; empty is the root).
fn beneath<'p>(dir: &OsStr, path: &'p OsStr) -> Option<&'p [u8]> {
    let (dir, path) = (dir.as_bytes(), path.as_bytes());
    let rest = match dir.is_empty() {
        true => path,
        false => path.strip_prefix(dir)?.strip_prefix(b"/")?,
    };
    (!rest.is_empty()).then_some(rest)
}

/// A name in a directory.
struct Listed {
    name: Vec<u8>,
    is_dir: bool,
}

/// The names in `dir` and whether each is a directory (following
/// symlinks when `follow`), without `.` and `..`.
fn list(dir: BorrowedFd<'_>, follow: bool) -> Result<Vec<Listed>, Errno> {
    let mut entries = Dir::read_from(dir)?;
    let mut names = Vec::new();
    while let Some(entry) = entries.read() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let is_dir = match entry.file_type() {
            FileType::Directory => true,
            FileType::Symlink if follow => statat_is_dir(dir, name, AtFlags::empty()),
            FileType::Unknown => statat_is_dir(dir, name, AtFlags::SYMLINK_NOFOLLOW),
            _ => false,
        };
        names.push(Listed {
            name: name.to_vec(),
            is_dir,
        });
    }
    Ok(names)
}

fn statat_is_dir(dir: BorrowedFd<'_>, name: &[u8], flags: AtFlags) -> bool {
    rustix::fs::statat(dir, name, flags)
        .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
}

fn open_dir(dir: BorrowedFd<'_>, name: &[u8], nofollow: bool) -> Result<OwnedFd, Errno> {
    let mut flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    if nofollow {
        flags |= OFlags::NOFOLLOW;
    }
    rustix::fs::openat(dir, name, flags, Mode::empty())
}

/// Best effort: lets a read-only extraneous directory be emptied (a
/// failure shows up as the removals failing).
fn make_writable(dir: BorrowedFd<'_>) {
    if let Ok(st) = rustix::fs::fstat(dir) {
        if st.st_mode & 0o300 != 0o300 {
            let _ = rustix::fs::fchmod(dir, Mode::from_raw_mode((st.st_mode | 0o700) & 0o7777));
        }
    }
}

fn reason(err: Errno) -> String {
    io_reason(&err.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;
    use std::fs;

    /// What a pass reported, and how it ended.
    #[derive(Default)]
    struct Recorded {
        deleted: Vec<String>,
        failed: Vec<String>,
        end: DeleteEnd,
    }

    impl DeleteSink for Recorded {
        fn deleted(&mut self, rel: &OsStr, is_dir: bool) {
            let slash = if is_dir { "/" } else { "" };
            self.deleted
                .push(format!("{}{slash}", rel.to_str().unwrap()));
        }
        fn delete_failed(&mut self, path: &Path, reason: &str) {
            self.failed.push(format!("{}: {reason}", path.display()));
        }
    }

    fn run(tmp: &Path, opts: DeleteOptions, dry_run: bool) -> Recorded {
        let root = rustix::fs::open(
            tmp.join("dst"),
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
        let roots = [Root {
            src: tmp.join("src"),
            rel_dst: OsString::new(),
            is_dir: true,
            flat: false,
        }];
        let setup = DeleteSetup {
            opts,
            filter: None,
            backup: None,
            dereference: false,
            dry_run,
            shard: None,
        };
        let mut sink = Recorded::default();
        let dst_root = tmp.join("dst");
        sink.end = delete_extraneous(root.as_fd(), &dst_root, &roots, &setup, &mut sink);
        sink.deleted.sort();
        sink
    }

    fn tree(tmp: &Path) {
        for dir in ["src/keep", "dst/keep/gone-dir/deeper", "dst/gone-top"] {
            fs::create_dir_all(tmp.join(dir)).unwrap();
        }
        fs::write(tmp.join("src/keep/file"), "").unwrap();
        fs::write(tmp.join("dst/keep/file"), "").unwrap();
        fs::write(tmp.join("dst/keep/extra"), "").unwrap();
        fs::write(tmp.join("dst/keep/gone-dir/deeper/x"), "").unwrap();
        fs::create_dir(tmp.join("outside")).unwrap();
        fs::write(tmp.join("outside/precious"), "").unwrap();
        std::os::unix::fs::symlink(tmp.join("outside"), tmp.join("dst/keep/link")).unwrap();
    }

    const ALL: DeleteOptions = DeleteOptions {
        max: None,
        excluded: false,
    };

    #[test]
    fn extraneous_entries_go_and_links_are_never_followed() {
        let tmp = tempfile::tempdir().unwrap();
        tree(tmp.path());
        let sink = run(tmp.path(), ALL, false);
        assert_eq!(
            sink.deleted,
            [
                "gone-top/",
                "keep/extra",
                "keep/gone-dir/",
                "keep/gone-dir/deeper/",
                "keep/gone-dir/deeper/x",
                "keep/link"
            ]
        );
        assert_eq!(
            sink.end,
            DeleteEnd {
                deleted: 6,
                limited: false
            }
        );
        assert!(sink.failed.is_empty(), "{:?}", sink.failed);
        assert!(tmp.path().join("outside/precious").exists());
        assert!(tmp.path().join("dst/keep/file").exists());
        assert!(!tmp.path().join("dst/keep/extra").exists());
    }

    #[test]
    fn a_dry_run_lists_without_removing_and_the_limit_stops_the_pass() {
        let tmp = tempfile::tempdir().unwrap();
        tree(tmp.path());
        let sink = run(tmp.path(), ALL, true);
        assert_eq!((sink.end.deleted, sink.deleted.len()), (6, 6));
        assert!(tmp.path().join("dst/keep/extra").exists());
        let limit = DeleteOptions {
            max: Some(2),
            excluded: false,
        };
        let sink = run(tmp.path(), limit, false);
        assert_eq!(
            sink.end,
            DeleteEnd {
                deleted: 2,
                limited: true
            }
        );
        assert_eq!(sink.deleted.len(), 2);
    }
}
