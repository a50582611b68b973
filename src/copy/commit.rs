//! Creating the new file without a final name and naming it only when
//! complete, so a final name always holds a whole old or a whole new version.

use std::ffi::{CStr, CString, OsStr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, CWD, Mode, OFlags, Stat, Timestamps};
use rustix::io::Errno;

use super::TEMP_PREFIX;
use super::fail::Failure;
use crate::job::FailKind;

/// Attempts at a fresh temp name before giving up; a collision needs another
/// process with our pid and counter value, or a stale temp that was not removed.
const TEMP_NAME_ATTEMPTS: u32 = 16;

/// Shared by all engines of the process (threads may each run one), so two
/// engines in one process never pick the same temp name.
static TEMP_SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// `pid` (of the engine's process, looked up once) and a sequence number make
/// names unique between concurrent workers; `O_EXCL` catches the rest.
fn next_temp_name(pid: u32) -> CString {
    let seq = TEMP_SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let name = format!("{TEMP_PREFIX}{pid}.{seq}");
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
    /// with the temp entry.
    fn renamed_to(mut self, final_name: &OsStr) -> Result<(), Failure> {
        match rustix::fs::renameat(self.dir, self.name.as_c_str(), self.dir, final_name) {
            Ok(()) => {
                self.live = false;
                Ok(())
            }
            Err(Errno::ISDIR | Errno::NOTEMPTY | Errno::EXIST) => Err(Failure::new(
                FailKind::DestIo,
                "destination is a directory; not replacing it",
            )),
            Err(err) => Err(Failure::dest("cannot rename temp file to destination", err)),
        }
    }
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
}

impl NewFile<'_> {
    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        match self {
            NewFile::Anonymous(fd) | NewFile::Named(fd, _) => fd.as_fd(),
        }
    }
}

/// Remembers what the destination supports and how names are usually found.
#[derive(Debug)]
pub(super) struct Namer {
    pid: u32,
    tmpfile_unsupported: bool,
    /// Set once a final name already existed: on a rerun nearly every name
    /// exists, so linking under a temp name and renaming is tried first.
    expect_existing: bool,
}

impl Namer {
    /// `O_TMPFILE` files are named through `/proc/self/fd`; without procfs
    /// only named temps work.
    pub(super) fn new() -> Self {
        let proc_fd = rustix::fs::statat(CWD, "/proc/self/fd", AtFlags::empty());
        Namer {
            pid: std::process::id(),
            tmpfile_unsupported: proc_fd.is_err(),
            expect_existing: false,
        }
    }

    /// Makes [`Namer::create`] use named temps, as on filesystems without
    /// `O_TMPFILE`.
    #[cfg(test)]
    pub(super) fn force_named_temps(&mut self) {
        self.tmpfile_unsupported = true;
    }

    /// Creates the file the data goes into, mode 0600 until it is complete.
    pub(super) fn create<'dir>(&mut self, dir: BorrowedFd<'dir>) -> Result<NewFile<'dir>, Failure> {
        let mode = Mode::from_raw_mode(0o600);
        if !self.tmpfile_unsupported {
            let flags = OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC;
            match rustix::fs::openat(dir, ".", flags, mode) {
                Ok(fd) => return Ok(NewFile::Anonymous(fd)),
                Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL) => {
                    self.tmpfile_unsupported = true;
                }
                Err(err) => return Err(Failure::dest("cannot create file in destination", err)),
            }
        }
        let flags =
            OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::WRONLY | OFlags::CLOEXEC;
        let (fd, temp) = create_named(dir, self.pid, |name| {
            rustix::fs::openat(dir, name, flags, mode)
        })?;
        Ok(NewFile::Named(fd, temp))
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
            NewFile::Named(_fd, temp) => return temp.renamed_to(name),
            NewFile::Anonymous(fd) => fd,
        };
        let proc_path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let link = |new_name: &CStr| {
            rustix::fs::linkat(
                CWD,
                proc_path.as_str(),
                dir,
                new_name,
                AtFlags::SYMLINK_FOLLOW,
            )
        };
        if !self.expect_existing {
            let final_c = path_cstring(name)?;
            match link(&final_c) {
                Ok(()) => return Ok(()),
                Err(Errno::EXIST) => self.expect_existing = true,
                Err(err) => return Err(Failure::dest("cannot create destination", err)),
            }
        }
        let ((), temp) = create_named(dir, self.pid, |temp_name| link(temp_name))?;
        temp.renamed_to(name)
    }

    /// Creates the symlink under a temp name, sets its times, then renames it
    /// over `name` so the final name is replaced atomically.
    pub(super) fn place_symlink(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        target: &CStr,
        times: &Timestamps,
    ) -> Result<(), Failure> {
        let ((), temp) = create_named(dir, self.pid, |temp_name| {
            rustix::fs::symlinkat(target, dir, temp_name)
        })?;
        rustix::fs::utimensat(dir, temp.name.as_c_str(), times, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|err| Failure::dest("cannot set symbolic link times", err))?;
        temp.renamed_to(name)
    }
}

/// Runs `create` with fresh temp names until one does not exist yet.
fn create_named<'dir, T>(
    dir: BorrowedFd<'dir>,
    pid: u32,
    mut create: impl FnMut(&CStr) -> Result<T, Errno>,
) -> Result<(T, NamedTemp<'dir>), Failure> {
    let mut last = Errno::EXIST;
    for _ in 0..TEMP_NAME_ATTEMPTS {
        let name = next_temp_name(pid);
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

/// Gives the finished file its final mode and times, while it is still
/// unnamed or under a temp name. Setuid and setgid are dropped because
/// ownership is not kept (as `cp` does without `-p`).
pub(super) fn apply_metadata(fd: BorrowedFd<'_>, st: &Stat) -> Result<(), Failure> {
    let mode = st.st_mode & 0o7777 & !(libc::S_ISUID | libc::S_ISGID);
    rustix::fs::fchmod(fd, Mode::from_raw_mode(mode))
        .map_err(|err| Failure::dest("cannot set mode", err))?;
    rustix::fs::futimens(fd, &source_times(st))
        .map_err(|err| Failure::dest("cannot set times", err))
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
/// Directories with such names are left alone. Must not run on a directory
/// that another pcopy run is writing into at the same time.
pub(super) fn remove_stale_temps_at(dir: BorrowedFd<'_>) -> std::io::Result<u64> {
    let mut entries = rustix::fs::Dir::read_from(dir)?;
    let mut removed = 0;
    while let Some(entry) = entries.read() {
        let entry = entry?;
        if !entry
            .file_name()
            .to_bytes()
            .starts_with(TEMP_PREFIX.as_bytes())
        {
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
