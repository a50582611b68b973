//! Creating the new file without a final name and naming it only when
//! complete, so a final name always holds a whole old or a whole new version.

use std::ffi::{CStr, CString, OsStr};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, CWD, Mode, OFlags, Stat, Timestamps};
use rustix::io::Errno;

use super::archive;
use super::backup::Backup;
use super::clear;
use super::fail::Failure;
use super::owners::Owners;
use crate::job::FailKind;

/// Names of temp files start with this; a later run removes leftovers with
/// `copy::remove_stale_temps_in`.
pub(crate) const TEMP_PREFIX: &str = ".pcopy-tmp.";

/// Attempts at a fresh temp name before giving up; a collision needs another
/// process with our pid and counter value, or a stale temp that was not removed.
pub(super) const TEMP_NAME_ATTEMPTS: u32 = 16;

/// Shared by all engines of the process (threads may each run one), so two
/// engines in one process never pick the same temp name.
static TEMP_SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// The stem (a shard's tag and the pid of the engine's process, looked up
/// once) and a sequence number make names unique between concurrent
/// workers; `O_EXCL` catches the rest.
pub(super) fn next_temp_name(stem: &str) -> CString {
    let seq = TEMP_SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let name = format!("{TEMP_PREFIX}{stem}.{seq}");
    // The formatted name is ASCII digits and the prefix: no NUL inside.
    CString::new(name).unwrap_or_default()
}

/// A named temp file or link in the destination directory, removed on drop
/// unless [`NamedTemp::renamed_to`] succeeded. This is what keeps failed
/// jobs from leaving `TEMP_PREFIX` names behind.
pub(super) struct NamedTemp<'dir> {
    dir: BorrowedFd<'dir>,
    name: CString,
    live: bool,
}

impl NamedTemp<'_> {
    /// Atomically replaces `final_name` (a file or a symlink, never followed)
    /// with the temp entry. A directory there is removed first (as rsync
    /// does): an empty one always, one with contents only when `force`
    /// (`--force`, `--delete`); otherwise it stays and the entry fails.
    fn renamed_to(mut self, final_name: &OsStr, force: bool) -> Result<(), Failure> {
        let mut cleared = false;
        loop {
            match rustix::fs::renameat(self.dir, self.name.as_c_str(), self.dir, final_name) {
                Ok(()) => {
                    self.live = false;
                    return Ok(());
                }
                Err(Errno::ISDIR | Errno::NOTEMPTY | Errno::EXIST) if !cleared => {
                    clear_directory(self.dir, final_name, force)?;
                    cleared = true;
                }
                Err(Errno::ISDIR | Errno::NOTEMPTY | Errno::EXIST) => {
                    return Err(directory_in_the_way());
                }
                // The temp is there, so it is the final name the
                // filesystem refuses (exFAT: `:`, `?`, `"` and others).
                Err(Errno::NOENT | Errno::INVAL) if self.exists() => {
                    return Err(name_not_allowed());
                }
                Err(err) => {
                    return Err(Failure::dest("cannot rename temp file to destination", err));
                }
            }
        }
    }
}

impl NamedTemp<'_> {
    fn exists(&self) -> bool {
        rustix::fs::statat(self.dir, self.name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW).is_ok()
    }
}

/// A name the destination filesystem cannot hold.
pub(super) fn name_not_allowed() -> Failure {
    Failure::new(FailKind::Unsupported, "name not allowed on this filesystem")
}

/// Removes the directory `name` in `dir` for an entry of another type:
/// with its contents when `force`, else only when it is empty.
fn clear_directory(dir: BorrowedFd<'_>, name: &OsStr, force: bool) -> Result<(), Failure> {
    match clear::make_way_at(dir, name, force) {
        Ok(()) => Ok(()),
        Err(Errno::NOTEMPTY) => Err(directory_in_the_way()),
        Err(err) => Err(Failure::dest("cannot remove directory in the way", err)),
    }
}

fn directory_in_the_way() -> Failure {
    Failure::new(
        FailKind::DestIo,
        "destination is a non-empty directory; not replacing it (--force or --delete would)",
    )
}

impl Drop for NamedTemp<'_> {
    fn drop(&mut self) {
        if self.live {
            // Best effort: the job already failed for a reason worth reporting
            // more than this one, and a later run removes leftovers.
            let _ = rustix::fs::unlinkat(self.dir, self.name.as_c_str(), AtFlags::empty());
        }
    }
}

/// A new file being written in the destination directory.
pub(super) enum NewFile<'dir> {
    /// `O_TMPFILE`: has no name, vanishes by itself if never linked.
    Anonymous(OwnedFd),
    /// Fallback: a `TEMP_PREFIX` name, unlinked if the job fails.
    Named(OwnedFd, NamedTemp<'dir>),
    /// `--inplace`: the file at the final name itself, written over.
    InPlace(OwnedFd),
}

impl NewFile<'_> {
    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        match self {
            NewFile::Anonymous(fd) | NewFile::Named(fd, _) | NewFile::InPlace(fd) => fd.as_fd(),
        }
    }
}

/// Remembers what the destination supports and how names are usually found.
#[derive(Debug)]
pub(super) struct Namer {
    /// What temp names start with after [`TEMP_PREFIX`]: the shard's tag
    /// (see [`remove_stale_temps_at`]) and the pid.
    stem: String,
    tmpfile_unsupported: bool,
    /// Set once a final name already existed: on a rerun nearly every name
    /// exists, so linking under a temp name and renaming is tried first.
    expect_existing: bool,
    /// Whether the next file's final name exists, when the caller knows;
    /// overrides `expect_existing` for that file.
    exists: Option<bool>,
    /// Whether `linkat(AT_EMPTY_PATH)` names `O_TMPFILE` files here: it needs
    /// `CAP_DAC_READ_SEARCH`, and saves the `/proc/self/fd` lookup, which
    /// costs about a tenth of a small file's copy. `None` until tried.
    empty_path_links: Option<bool>,
    /// A directory at a final name is removed (see [`NamedTemp::renamed_to`]).
    force: bool,
    /// `-b`: where a replaced version goes, and the current job's
    /// directory below the destination root (kept only with a backup).
    backup: Option<Backup>,
    parent: Vec<u8>,
}

impl Namer {
    /// `O_TMPFILE` files are named through `/proc/self/fd`; without procfs
    /// only named temps work.
    pub(super) fn new(tag: &str, force: bool) -> Self {
        let proc_fd = rustix::fs::statat(CWD, "/proc/self/fd", AtFlags::empty());
        Namer {
            stem: format!("{tag}{}", std::process::id()),
            tmpfile_unsupported: proc_fd.is_err(),
            expect_existing: false,
            exists: None,
            empty_path_links: None,
            force,
            backup: None,
            parent: Vec::new(),
        }
    }

    /// Keeps the old version of every name replaced from now on (`-b`).
    pub(super) fn keep_backups(&mut self, backup: Backup) {
        self.backup = Some(backup);
    }

    /// The directory of the next job below the destination root, for
    /// its backup's place.
    pub(super) fn job_parent(&mut self, parent: &[u8]) {
        if self.backup.is_some() {
            self.parent.clear();
            self.parent.extend_from_slice(parent);
        }
    }

    /// Whether the caller knows nothing is at the next file's name.
    pub(super) fn known_new(&self) -> bool {
        self.exists == Some(false)
    }

    /// `-b`: keeps what is at `name` before it is replaced.
    fn keep_old(&self, dir: BorrowedFd<'_>, name: &OsStr) -> Result<(), Failure> {
        match &self.backup {
            Some(backup) => backup.keep(dir, &self.parent, name, self.force),
            None => Ok(()),
        }
    }

    /// Names the existing file `fd` (a hard link to it) as `name` in
    /// `dir`, where nothing is expected. `false`: this filesystem cannot
    /// link it there (another filesystem, too many links, no hard links).
    pub(super) fn link_existing(
        &mut self,
        fd: BorrowedFd<'_>,
        dir: BorrowedFd<'_>,
        name: &OsStr,
    ) -> Result<bool, Failure> {
        let final_c = path_cstring(name)?;
        match self.link_anonymous(fd, dir, &final_c) {
            Ok(()) => Ok(true),
            Err(Errno::XDEV | Errno::MLINK | Errno::PERM | Errno::OPNOTSUPP) => Ok(false),
            Err(err) => Err(Failure::dest("cannot link to the --link-dest file", err)),
        }
    }

    /// Tells whether the next file's final name exists (`None`: unknown),
    /// so [`Namer::commit`] takes the right path at the first try.
    pub(super) fn expect_existing(&mut self, exists: Option<bool>) {
        self.exists = exists;
    }

    /// Makes [`Namer::create`] use named temps, as on filesystems without
    /// `O_TMPFILE`.
    #[cfg(test)]
    pub(super) fn force_named_temps(&mut self) {
        self.tmpfile_unsupported = true;
    }

    /// Creates the file the data goes into, with `final_mode` when the
    /// caller knows the kernel will give it exactly that (see
    /// [`Engine::preset_mode`](super::Engine)), which saves the `fchmod`
    /// afterwards (a request of its own on a network mount). Also returns
    /// whether it did. An unnamed file nobody else can open; a named temp
    /// is seen while it is written, so it gets no permission its final
    /// version will not have: `final_mode` if that lets its owner read and
    /// write, else 0600 until it is complete.
    pub(super) fn create<'dir>(
        &mut self,
        dir: BorrowedFd<'dir>,
        final_mode: Option<Mode>,
    ) -> Result<(NewFile<'dir>, bool), Failure> {
        let mode = Mode::from_raw_mode(0o600);
        if !self.tmpfile_unsupported {
            // Read and write: `--verify` reads the new file back.
            let flags = OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC;
            match rustix::fs::openat(dir, ".", flags, final_mode.unwrap_or(mode)) {
                Ok(fd) => return Ok((NewFile::Anonymous(fd), final_mode.is_some())),
                Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL) => {
                    self.tmpfile_unsupported = true;
                }
                Err(err) => return Err(Failure::dest("cannot create file in destination", err)),
            }
        }
        let flags =
            OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::RDWR | OFlags::CLOEXEC;
        let preset = final_mode.filter(|m| m.bits() & 0o600 == 0o600);
        let (fd, temp) = create_named(dir, &self.stem, |name| {
            rustix::fs::openat(dir, name, flags, preset.unwrap_or(mode))
        })?;
        Ok((NewFile::Named(fd, temp), preset.is_some()))
    }

    /// `--inplace`: the regular file at `name` in `dir`, opened for
    /// writing over (created when missing). `None` when it cannot be
    /// (a symlink, a fifo, a device, no write permission): the file is then
    /// written as usual, replacing what is there.
    pub(super) fn open_in_place<'dir>(
        &self,
        dir: BorrowedFd<'dir>,
        name: &OsStr,
    ) -> Result<Option<NewFile<'dir>>, Failure> {
        // Only a regular file is opened (a directory fails below): opening
        // a device can act on it (a tape rewinds, a terminal hangs up).
        if let Ok(st) = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            use rustix::fs::FileType;
            match FileType::from_raw_mode(st.st_mode) {
                FileType::RegularFile | FileType::Directory => {}
                _ => return Ok(None),
            }
        }
        // Something else may be put there meanwhile: the open must not wait
        // (a fifo) nor make a tty this process's controlling terminal, and
        // what it opened is looked at again. On a regular file the flags
        // change nothing.
        let flags = OFlags::CREATE
            | OFlags::NOFOLLOW
            | OFlags::RDWR
            | OFlags::NONBLOCK
            | OFlags::NOCTTY
            | OFlags::CLOEXEC;
        match rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(0o600)) {
            Ok(fd) => {
                let st = rustix::fs::fstat(&fd)
                    .map_err(|e| Failure::dest("cannot stat destination", e))?;
                let regular = rustix::fs::FileType::from_raw_mode(st.st_mode)
                    == rustix::fs::FileType::RegularFile;
                Ok(regular.then_some(NewFile::InPlace(fd)))
            }
            Err(Errno::LOOP | Errno::ACCESS | Errno::PERM | Errno::TXTBSY) => Ok(None),
            Err(Errno::ISDIR) => Err(Failure::new(
                FailKind::DestIo,
                "destination is a directory; not replacing it",
            )),
            Err(err) => Err(Failure::dest("cannot open destination", err)),
        }
    }

    /// Gives the complete file its final name in `dir`, replacing a file or
    /// symlink there (never following it); a directory there is an error.
    pub(super) fn commit(
        &mut self,
        file: NewFile<'_>,
        dir: BorrowedFd<'_>,
        name: &OsStr,
    ) -> Result<(), Failure> {
        let fd = match file {
            NewFile::Named(_fd, temp) => {
                self.keep_old(dir, name)?;
                return temp.renamed_to(name, self.force);
            }
            NewFile::Anonymous(fd) => fd,
            NewFile::InPlace(_) => return Ok(()),
        };
        if !self.exists.unwrap_or(self.expect_existing) {
            let final_c = path_cstring(name)?;
            match self.link_anonymous(fd.as_fd(), dir, &final_c) {
                Ok(()) => return Ok(()),
                // A hint that was wrong (a race) does not teach anything.
                Err(Errno::EXIST) if self.exists.is_some() => {}
                Err(Errno::EXIST) => self.expect_existing = true,
                Err(Errno::INVAL) => return Err(name_not_allowed()),
                Err(err) => return Err(Failure::dest("cannot create destination", err)),
            }
        }
        let stem = self.stem.clone();
        let ((), temp) = create_named(dir, &stem, |temp_name| {
            self.link_anonymous(fd.as_fd(), dir, temp_name)
        })?;
        self.keep_old(dir, name)?;
        temp.renamed_to(name, self.force)
    }

    /// Names the `O_TMPFILE` file `fd` as `new_name` in `dir`: directly where
    /// this process may, else through its `/proc/self/fd` link.
    fn link_anonymous(
        &mut self,
        fd: BorrowedFd<'_>,
        dir: BorrowedFd<'_>,
        new_name: &CStr,
    ) -> Result<(), Errno> {
        if self.empty_path_links != Some(false) {
            match rustix::fs::linkat(fd, c"", dir, new_name, AtFlags::EMPTY_PATH) {
                Ok(()) => {
                    self.empty_path_links = Some(true);
                    return Ok(());
                }
                // The kernel's answer without CAP_DAC_READ_SEARCH.
                Err(Errno::NOENT) if self.empty_path_links.is_none() => {}
                Err(err) => return Err(err),
            }
        }
        let proc_path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let linked = rustix::fs::linkat(
            CWD,
            proc_path.as_str(),
            dir,
            new_name,
            AtFlags::SYMLINK_FOLLOW,
        );
        if linked.is_ok() {
            self.empty_path_links = Some(false);
        }
        linked
    }

    /// Creates the symlink under a temp name, sets its times (and the
    /// owner `owners` asks for), then renames it over `name` so the final name
    /// is replaced atomically.
    pub(super) fn place_symlink(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        target: &CStr,
        st: &Stat,
        how: Placed,
    ) -> Result<(), Failure> {
        let ((), temp) = create_named(dir, &self.stem, |temp_name| {
            rustix::fs::symlinkat(target, dir, temp_name)
        })?;
        archive::copy_owner_at(dir, temp.name.as_c_str(), st, how.owners)?;
        if how.times {
            rustix::fs::utimensat(
                dir,
                temp.name.as_c_str(),
                &source_times(st),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|err| Failure::dest("cannot set symbolic link times", err))?;
        }
        self.keep_old(dir, name)?;
        temp.renamed_to(name, self.force)
    }

    /// Recreates the special file `st` (`-a`) under a temp name with its
    /// owner, mode and times, then renames it over `name`. Returns false,
    /// creating nothing, when this user may not make such a node.
    pub(super) fn place_node(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        st: &Stat,
        how: Placed,
    ) -> Result<bool, Failure> {
        let (made, mut temp) = create_named(dir, &self.stem, |temp_name| {
            archive::make_node(dir, temp_name, st)
        })?;
        if !made {
            temp.live = false;
            return Ok(false);
        }
        let node = temp.name.as_c_str();
        let owner_kept = archive::copy_owner_at(dir, node, st, how.owners)?;
        let mode = Mode::from_raw_mode(final_mode(st.st_mode, owner_kept));
        rustix::fs::chmodat(dir, node, mode, AtFlags::empty())
            .map_err(|err| Failure::dest("cannot set mode", err))?;
        if how.times {
            rustix::fs::utimensat(dir, node, &source_times(st), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|err| Failure::dest("cannot set times", err))?;
        }
        self.keep_old(dir, name)?;
        temp.renamed_to(name, self.force)?;
        Ok(true)
    }
}

/// Runs `create` with fresh temp names until one does not exist yet.
fn create_named<'dir, T>(
    dir: BorrowedFd<'dir>,
    stem: &str,
    mut create: impl FnMut(&CStr) -> Result<T, Errno>,
) -> Result<(T, NamedTemp<'dir>), Failure> {
    let mut last = Errno::EXIST;
    for _ in 0..TEMP_NAME_ATTEMPTS {
        let name = next_temp_name(stem);
        match create(&name) {
            Ok(made) => {
                let temp = NamedTemp {
                    dir,
                    name,
                    live: true,
                };
                return Ok((made, temp));
            }
            Err(Errno::EXIST) => last = Errno::EXIST,
            Err(err) => return Err(Failure::dest("cannot create temp file in destination", err)),
        }
    }
    Err(Failure::dest(
        "cannot find an unused temp name in destination",
        last,
    ))
}

fn path_cstring(name: &OsStr) -> Result<CString, Failure> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(name.as_bytes())
        .map_err(|_| Failure::new(FailKind::Other, "destination name contains a NUL byte"))
}

/// How a link or special file is placed: the owner and group it gets,
/// and whether it gets its source's times (`-t`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Placed {
    pub(super) owners: Owners,
    pub(super) times: bool,
}

/// What [`apply_metadata`] still has to do for a finished file.
#[derive(Debug, Clone, Copy)]
pub(super) struct Applied {
    /// Its owner was set as asked (see [`final_mode`]).
    pub(super) owner_kept: bool,
    /// It was created with its final mode.
    pub(super) mode_set: bool,
    /// It gets its source's times (`-t`).
    pub(super) times: bool,
}

/// Gives the finished file its final mode (unless it was created with it)
/// and times (with `-t`), while it is still unnamed or under a temp name.
/// Setuid and setgid stay only when the owner was kept (see [`final_mode`]).
pub(super) fn apply_metadata(fd: BorrowedFd<'_>, st: &Stat, how: Applied) -> Result<(), Failure> {
    if !how.mode_set {
        let mode = final_mode(st.st_mode, how.owner_kept);
        rustix::fs::fchmod(fd, Mode::from_raw_mode(mode))
            .map_err(|err| Failure::dest("cannot set mode", err))?;
    }
    if !how.times {
        return Ok(());
    }
    rustix::fs::futimens(fd, &source_times(st))
        .map_err(|err| Failure::dest("cannot set times", err))
}

/// `--no-perms`: `st` with the permission bits rsync gives a copy without
/// `-p`: those of the entry of the same type already at `name` in `dir`
/// (kept also when it is replaced), else the source's less the umask,
/// without setuid, setgid or sticky.
pub(super) fn unkept_perms(st: &Stat, dir: BorrowedFd<'_>, name: &OsStr) -> Stat {
    let file_type = st.st_mode & libc::S_IFMT;
    let existing = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .ok()
        .filter(|there| there.st_mode & libc::S_IFMT == file_type);
    let bits = match existing {
        Some(there) => there.st_mode & 0o7777,
        None => st.st_mode & 0o777 & !super::umask(),
    };
    let mut unkept = *st;
    unkept.st_mode = file_type | bits;
    unkept
}

/// The permission bits a copy of a source with `mode` gets: setuid and
/// setgid are dropped unless the owner was kept (as `cp` does without
/// `-p`), so a copy never runs as someone it was not meant to.
pub(super) fn final_mode(mode: u32, owner_kept: bool) -> u32 {
    match owner_kept {
        true => mode & 0o7777,
        false => mode & 0o7777 & !(libc::S_ISUID | libc::S_ISGID),
    }
}

/// Access and modification times of `st`, to the nanosecond.
pub(super) fn source_times(st: &Stat) -> Timestamps {
    Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: st.st_atime,
            tv_nsec: st.st_atime_nsec as _,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec as _,
        },
    }
}

/// Removes leftovers of interrupted runs (names starting with
/// [`TEMP_PREFIX`]) from the directory `dir`. Returns how many were removed.
/// With a shard's `tag` (`s1of3.`), only that shard's leftovers and those
/// of unsharded runs (a digit after the prefix) go: the other shards may
/// be writing into the same directory right now.
/// Directories with such names are left alone. Must not run on a directory
/// that another pcopy run (other than another shard) is writing into.
/// `other` sees the name of every entry that is not a temp, so one listing
/// also tells the caller what the directory holds.
pub(super) fn remove_stale_temps_at(
    dir: BorrowedFd<'_>,
    tag: &str,
    keep_partial: bool,
    other: &mut dyn FnMut(&[u8]),
) -> std::io::Result<u64> {
    // `dir` is read from the start without reopening it: it is otherwise
    // only used for `*at` calls, so moving its offset disturbs nobody. A
    // buffer that holds a typical directory whole makes that one
    // `getdents64` and one more to see the end.
    rustix::fs::seek(dir, rustix::fs::SeekFrom::Start(0))?;
    let mut buffer = [MaybeUninit::<u8>::uninit(); 32 << 10];
    let mut entries = rustix::fs::RawDir::new(dir, &mut buffer);
    let mut removed = 0;
    while let Some(entry) = entries.next() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        let Some(rest) = name.strip_prefix(TEMP_PREFIX.as_bytes()) else {
            if name != b"." && name != b".." {
                other(name);
            }
            continue;
        };
        if keep_partial && super::partial::is_partial(name) {
            continue;
        }
        let unsharded = rest.first().is_some_and(u8::is_ascii_digit);
        if !tag.is_empty() && !unsharded && !rest.starts_with(tag.as_bytes()) {
            continue;
        }
        match rustix::fs::unlinkat(dir, entry.file_name(), AtFlags::empty()) {
            Ok(()) => removed += 1,
            Err(Errno::NOENT | Errno::ISDIR | Errno::PERM) => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(removed)
}
