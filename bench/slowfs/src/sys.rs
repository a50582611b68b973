//! Thin wrappers over the system calls the passthrough makes on the
//! backing directory, each relative to an open descriptor, and the
//! conversions between their results and FUSE's.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirEntryExt, FileTypeExt};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{Errno, FileAttr, FileType, INodeNo, TimeOrNow};

pub type Result<T> = std::result::Result<T, Errno>;

/// The error of the last failed system call.
pub fn last_errno() -> Errno {
    Errno::from(io::Error::last_os_error())
}

pub fn io_error(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e.code())
}

/// A system call's `-1` as its errno, anything else as the value.
pub fn check(ret: libc::c_int) -> Result<libc::c_int> {
    if ret == -1 {
        Err(last_errno())
    } else {
        Ok(ret)
    }
}

fn check_size(ret: libc::ssize_t) -> Result<usize> {
    usize::try_from(ret).map_err(|_| last_errno())
}

pub fn cstr(bytes: &[u8]) -> Result<CString> {
    CString::new(bytes).map_err(|_| Errno::EINVAL)
}

pub fn name(name: &OsStr) -> Result<CString> {
    cstr(name.as_bytes())
}

/// The `/proc/self/fd` name of `fd`: where a call has no `*at` form that
/// takes an `O_PATH` descriptor, this reaches the same inode.
pub fn proc_path(fd: &impl AsRawFd) -> CString {
    CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("no NUL in a number")
}

pub fn owned(fd: libc::c_int) -> Result<OwnedFd> {
    check(fd)?;
    // SAFETY: `fd` was just returned by a successful open and is owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `name` beneath `dir`, not followed: the handle the inode table keeps.
pub fn open_path(dir: &impl AsRawFd, name: &CString) -> Result<OwnedFd> {
    let flags = libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: `name` is a valid C string; the descriptor is checked by `owned`.
    owned(unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags) })
}

/// Opens the inode behind an `O_PATH` descriptor for I/O.
pub fn reopen(fd: &impl AsRawFd, flags: i32) -> Result<OwnedFd> {
    let flags = (flags & !(libc::O_NOFOLLOW | libc::O_CREAT | libc::O_EXCL)) | libc::O_CLOEXEC;
    let path = proc_path(fd);
    // SAFETY: `path` is a valid C string; the descriptor is checked by `owned`.
    owned(unsafe { libc::open(path.as_ptr(), flags) })
}

pub fn stat_at(dir: RawFd, name: &CString, flags: i32) -> Result<libc::stat> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is written by the call on success, which `check` tells.
    check(unsafe { libc::fstatat(dir, name.as_ptr(), st.as_mut_ptr(), flags) })?;
    // SAFETY: the call succeeded, so it filled `st`.
    Ok(unsafe { st.assume_init() })
}

/// The inode's own attributes (a symlink's, not its target's).
pub fn fstat(fd: &impl AsRawFd) -> Result<libc::stat> {
    let empty = CString::default();
    stat_at(
        fd.as_raw_fd(),
        &empty,
        libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
    )
}

pub fn kind(mode: libc::mode_t) -> FileType {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFSOCK => FileType::Socket,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        _ => FileType::RegularFile,
    }
}

fn time(secs: i64, nsec: i64) -> SystemTime {
    let nanos = Duration::from_nanos(u64::try_from(nsec).unwrap_or(0));
    match u64::try_from(secs) {
        Ok(secs) => UNIX_EPOCH + Duration::from_secs(secs) + nanos,
        Err(_) => UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + nanos,
    }
}

/// FUSE's attributes for a backing inode known as node `node`.
pub fn attr(st: &libc::stat, node: u64) -> FileAttr {
    FileAttr {
        ino: INodeNo(node),
        size: u64::try_from(st.st_size).unwrap_or(0),
        blocks: u64::try_from(st.st_blocks).unwrap_or(0),
        atime: time(st.st_atime, st.st_atime_nsec),
        mtime: time(st.st_mtime, st.st_mtime_nsec),
        ctime: time(st.st_ctime, st.st_ctime_nsec),
        crtime: UNIX_EPOCH,
        kind: kind(st.st_mode),
        perm: (st.st_mode & 0o7777) as u16,
        nlink: u32::try_from(st.st_nlink).unwrap_or(u32::MAX),
        uid: st.st_uid,
        gid: st.st_gid,
        // FUSE carries the 32-bit encoding of the device number.
        rdev: st.st_rdev as u32,
        blksize: u32::try_from(st.st_blksize).unwrap_or(4096),
        flags: 0,
    }
}

/// A time for `utimensat`: the given one, now, or left as it is.
pub fn timespec(time: Option<TimeOrNow>) -> libc::timespec {
    let (tv_sec, tv_nsec) = match time {
        None => (0, libc::UTIME_OMIT),
        Some(TimeOrNow::Now) => (0, libc::UTIME_NOW),
        Some(TimeOrNow::SpecificTime(t)) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => (d.as_secs() as i64, i64::from(d.subsec_nanos())),
            Err(before) => {
                let d = before.duration();
                let ns = i64::from(d.subsec_nanos());
                let secs = -(d.as_secs() as i64);
                if ns == 0 {
                    (secs, 0)
                } else {
                    (secs - 1, 1_000_000_000 - ns)
                }
            }
        },
    };
    libc::timespec { tv_sec, tv_nsec }
}

/// One directory entry as listed: the backing inode number, not a node id.
pub struct Dirent {
    pub name: OsString,
    pub ino: u64,
    pub kind: FileType,
}

/// The whole listing of the directory behind `fd`, `.` and `..` first: a
/// snapshot taken at opendir, so offsets are indexes into it.
pub fn list_dir(fd: &impl AsRawFd) -> Result<Vec<Dirent>> {
    let path = OsStr::from_bytes(proc_path(fd).as_bytes()).to_owned();
    let dots = |name: &str, st: libc::stat| Dirent {
        name: name.into(),
        ino: st.st_ino,
        kind: FileType::Directory,
    };
    let mut entries = vec![
        dots(".", fstat(fd)?),
        dots(
            "..",
            stat_at(fd.as_raw_fd(), &cstr(b"..")?, libc::AT_SYMLINK_NOFOLLOW)?,
        ),
    ];
    for entry in std::fs::read_dir(&path).map_err(Errno::from)? {
        let entry = entry.map_err(Errno::from)?;
        let file_type = entry.file_type().map_err(Errno::from)?;
        entries.push(Dirent {
            name: entry.file_name(),
            ino: entry.ino(),
            kind: kind_of(file_type),
        });
    }
    Ok(entries)
}

fn kind_of(t: std::fs::FileType) -> FileType {
    if t.is_dir() {
        FileType::Directory
    } else if t.is_symlink() {
        FileType::Symlink
    } else if t.is_fifo() {
        FileType::NamedPipe
    } else if t.is_socket() {
        FileType::Socket
    } else if t.is_char_device() {
        FileType::CharDevice
    } else if t.is_block_device() {
        FileType::BlockDevice
    } else {
        FileType::RegularFile
    }
}

/// Reads up to `size` bytes at `offset`, short only at end of file.
pub fn read_at(fd: &impl AsRawFd, offset: u64, size: u32) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; size as usize];
    let mut done = 0;
    while done < buf.len() {
        let at = libc::off_t::try_from(offset + done as u64).map_err(|_| Errno::EINVAL)?;
        let rest = &mut buf[done..];
        // SAFETY: `rest` is a live buffer of `rest.len()` bytes.
        let n = unsafe { libc::pread(fd.as_raw_fd(), rest.as_mut_ptr().cast(), rest.len(), at) };
        match check_size(n)? {
            0 => break,
            n => done += n,
        }
    }
    buf.truncate(done);
    Ok(buf)
}

/// Writes all of `data` at `offset`.
pub fn write_at(fd: &impl AsRawFd, offset: u64, data: &[u8]) -> Result<usize> {
    let mut done = 0;
    while done < data.len() {
        let at = libc::off_t::try_from(offset + done as u64).map_err(|_| Errno::EINVAL)?;
        let rest = &data[done..];
        // SAFETY: `rest` is a live buffer of `rest.len()` bytes.
        let n = unsafe { libc::pwrite(fd.as_raw_fd(), rest.as_ptr().cast(), rest.len(), at) };
        done += check_size(n)?;
    }
    Ok(done)
}

/// The target of the symlink behind an `O_PATH` descriptor.
pub fn read_link(fd: &impl AsRawFd) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    let empty = CString::default();
    // SAFETY: `buf` is a live buffer of `buf.len()` bytes.
    let n = unsafe {
        libc::readlinkat(
            fd.as_raw_fd(),
            empty.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    buf.truncate(check_size(n)?);
    Ok(buf)
}

/// Calls an xattr getter (`getxattr` or `listxattr` on a path) the FUSE
/// way: `size` 0 asks for the length, a value longer than `size` is `ERANGE`.
pub fn xattr_value(
    size: u32,
    get: impl Fn(*mut libc::c_void, usize) -> isize,
) -> Result<XattrReply> {
    if size == 0 {
        let n = check_size(get(std::ptr::null_mut(), 0))?;
        return Ok(XattrReply::Size(
            u32::try_from(n).map_err(|_| Errno::E2BIG)?,
        ));
    }
    let mut buf = vec![0u8; size as usize];
    let n = check_size(get(buf.as_mut_ptr().cast(), buf.len()))?;
    buf.truncate(n);
    Ok(XattrReply::Data(buf))
}

pub enum XattrReply {
    Size(u32),
    Data(Vec<u8>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_before_1970_keep_their_nanoseconds() {
        let t = UNIX_EPOCH - Duration::new(1, 250_000_000);
        let ts = timespec(Some(TimeOrNow::SpecificTime(t)));
        assert_eq!((ts.tv_sec, ts.tv_nsec), (-2, 750_000_000));
        assert_eq!(time(-2, 750_000_000), t);
        assert_eq!(timespec(None).tv_nsec, libc::UTIME_OMIT);
    }
}
