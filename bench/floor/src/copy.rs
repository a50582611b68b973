//! The timed part: directories first, then the files on N threads.

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::list::{DirGroup, FileEntry};

/// Which system calls a file costs.
#[derive(Debug, Clone, Copy)]
pub enum CopyMode {
    /// open, open(O_CREAT), copy_file_range, close, close.
    Plain,
    /// open, open(O_TMPFILE), copy_file_range, fchmod, futimens, linkat,
    /// close, close. `proc_link` names the file through `/proc/self/fd`.
    Atomic { proc_link: bool },
}

/// Creates `dst` and the listed directories, then copies the files.
pub fn copy_tree(
    groups: &[DirGroup],
    src: &Path,
    dst: &Path,
    mode: CopyMode,
    threads: usize,
) -> Result<(), String> {
    let src_root = open_dir(libc::AT_FDCWD, &path_c(src)?)?;
    let dst_c = path_c(dst)?;
    // SAFETY: dst_c is a valid NUL-terminated string.
    if unsafe { libc::mkdir(dst_c.as_ptr(), 0o755) } != 0 {
        return Err(errno_message("mkdir", dst_c.as_c_str()));
    }
    let dst_root = open_dir(libc::AT_FDCWD, &dst_c)?;
    for group in groups.iter().filter(|g| g.rel.as_bytes() != b".") {
        // SAFETY: dst_root is an open directory fd; rel is NUL-terminated.
        if unsafe { libc::mkdirat(dst_root.as_raw_fd(), group.rel.as_ptr(), 0o755) } != 0 {
            return Err(errno_message("mkdirat", &group.rel));
        }
    }
    // Threads take whole directories in list order from this index, so each
    // opens a directory pair once and the work spreads like a shared queue.
    let next = AtomicUsize::new(0);
    let roots = (src_root.as_raw_fd(), dst_root.as_raw_fd());
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| scope.spawn(|| copy_groups(groups, &next, roots, mode)))
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().unwrap_or_else(|_| Err("thread panicked".into())))
    })
}

fn copy_groups(
    groups: &[DirGroup],
    next: &AtomicUsize,
    (src_root, dst_root): (RawFd, RawFd),
    mode: CopyMode,
) -> Result<(), String> {
    loop {
        let Some(group) = groups.get(next.fetch_add(1, Ordering::Relaxed)) else {
            return Ok(());
        };
        if group.files.is_empty() {
            continue;
        }
        let src_dir = open_dir(src_root, &group.rel)?;
        let dst_dir = open_dir(dst_root, &group.rel)?;
        for file in &group.files {
            let dirs = (src_dir.as_raw_fd(), dst_dir.as_raw_fd());
            copy_file(file, dirs, mode).map_err(|e| format!("{e} ({:?})", file.name))?;
        }
    }
}

fn copy_file(
    file: &FileEntry,
    (src_dir, dst_dir): (RawFd, RawFd),
    mode: CopyMode,
) -> Result<(), String> {
    let name = file.name.as_c_str();
    let src = open_at(src_dir, name, libc::O_RDONLY, 0)?;
    let dst = match mode {
        CopyMode::Plain => open_at(
            dst_dir,
            name,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
            0o600,
        )?,
        CopyMode::Atomic { .. } => open_at(dst_dir, c".", libc::O_WRONLY | libc::O_TMPFILE, 0o600)?,
    };
    copy_data(src.as_raw_fd(), dst.as_raw_fd(), file.size)?;
    let CopyMode::Atomic { proc_link } = mode else {
        return Ok(());
    };
    let times = file.times.map(|(sec, nsec)| libc::timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    });
    let fd = dst.as_raw_fd();
    // SAFETY: fd is open and owned by `dst`; `times` holds two timespecs.
    if unsafe { libc::fchmod(fd, file.mode) } != 0
        || unsafe { libc::futimens(fd, times.as_ptr()) } != 0
    {
        return Err(errno_message("fchmod/futimens", name));
    }
    link_at(fd, dst_dir, name, proc_link)
}

/// Names the O_TMPFILE `fd` `name` in `dir`; `AT_EMPTY_PATH` where allowed,
/// else through `/proc/self/fd` as pcopy does.
fn link_at(fd: RawFd, dir: RawFd, name: &CStr, proc_link: bool) -> Result<(), String> {
    if !proc_link {
        // SAFETY: fd and dir are open; both strings are NUL-terminated.
        if unsafe { libc::linkat(fd, c"".as_ptr(), dir, name.as_ptr(), libc::AT_EMPTY_PATH) } == 0 {
            return Ok(());
        }
    }
    let proc_path = CString::new(format!("/proc/self/fd/{fd}")).map_err(|e| e.to_string())?;
    let flags = libc::AT_SYMLINK_FOLLOW;
    // SAFETY: as above.
    if unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            proc_path.as_ptr(),
            dir,
            name.as_ptr(),
            flags,
        )
    } != 0
    {
        return Err(errno_message("linkat", name));
    }
    Ok(())
}

fn copy_data(src: RawFd, dst: RawFd, size: u64) -> Result<(), String> {
    let mut left = size as usize;
    while left > 0 {
        let null = std::ptr::null_mut();
        // SAFETY: both fds are open; null offsets use the file positions.
        let n = unsafe { libc::copy_file_range(src, null, dst, null, left, 0) };
        match n {
            n if n > 0 => left -= n as usize,
            0 => return Err("source shrank".into()),
            _ => return Err(errno_message("copy_file_range", c"")),
        }
    }
    Ok(())
}

fn open_dir(base: RawFd, path: &CStr) -> Result<OwnedFd, String> {
    open_at(base, path, libc::O_RDONLY | libc::O_DIRECTORY, 0)
}

fn open_at(base: RawFd, path: &CStr, flags: i32, mode: libc::mode_t) -> Result<OwnedFd, String> {
    // SAFETY: path is NUL-terminated; base is AT_FDCWD or an open fd.
    let fd = unsafe { libc::openat(base, path.as_ptr(), flags | libc::O_CLOEXEC, mode) };
    if fd < 0 {
        return Err(errno_message("openat", path));
    }
    // SAFETY: openat returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn path_c(path: &Path) -> Result<CString, String> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| format!("{}: NUL in path", path.display()))
}

fn errno_message(call: &str, path: &CStr) -> String {
    format!("{call} {path:?}: {}", std::io::Error::last_os_error())
}
