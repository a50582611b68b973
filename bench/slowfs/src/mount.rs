//! The mount's life: set up the process, mount, serve on many threads,
//! answer signals, unmount cleanly and leave the counters behind.

use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fuser::{MountOption, Session};

use crate::cli::{MountConfig, UnmountConfig};
use crate::fs::{Settings, SlowFs};
use crate::stats::Stats;
use crate::sys;

/// The source the mount shows in /proc/self/mountinfo (its type is
/// `fuse`, or `fuse.slowfs` where the subtype is kept).
const FSNAME: &str = "slowfs";

pub fn serve(config: &MountConfig) -> Result<(), String> {
    let backing = CString::new(config.backing.as_os_str().as_bytes())
        .map_err(|_| "BACKING has a NUL byte")?;
    let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC;
    // SAFETY: `backing` is a valid C string; the descriptor is checked by `owned`.
    let root = sys::owned(unsafe { libc::open(backing.as_ptr(), flags) }).map_err(|e| {
        format!(
            "cannot open {}: {}",
            config.backing.display(),
            sys::io_error(e)
        )
    })?;
    prepare_process();
    let ready = if config.background {
        Some(fork_background()?)
    } else {
        None
    };
    let signals = block_signals();
    let stats = Arc::new(Stats::new(config.delay));
    let settings = Settings {
        ttl: config.ttl,
        xattrs: config.xattrs,
        max_background: config.max_background,
        readdirplus: config.readdirplus,
    };
    let fs = SlowFs::new(root, stats.clone(), settings)
        .map_err(|e| format!("{}: {e}", config.backing.display()))?;
    let mut options = fuser::Config::default();
    options.mount_options = vec![
        MountOption::FSName(FSNAME.into()),
        MountOption::Subtype("slowfs".into()),
    ];
    if config.read_only {
        options.mount_options.push(MountOption::RO);
    }
    options.n_threads = Some(config.threads);
    options.clone_fd = true;
    let mut session = Session::new(fs, &config.mountpoint, &options)
        .map_err(|e| format!("cannot mount on {}: {e}", config.mountpoint.display()))?;
    let unmounter = session.unmount_callable();
    if let Some(pidfile) = &config.pidfile {
        std::fs::write(pidfile, format!("{}\n", std::process::id()))
            .map_err(|e| format!("cannot write {}: {e}", pidfile.display()))?;
    }
    if let Some(ready) = ready {
        detach(ready, config.log.as_deref())?;
    }
    let serving = std::thread::spawn(move || {
        let result = session.run();
        // Wakes the signal loop: the session is over.
        // SAFETY: sending a signal to this process has no memory effects.
        unsafe { libc::kill(libc::getpid(), libc::SIGUSR2) };
        result
    });
    answer_signals(&signals, unmounter, &stats, config.stats.as_deref());
    let result = serving
        .join()
        .map_err(|_| "the session thread panicked".to_string());
    if let Some(path) = &config.stats {
        stats
            .write(path)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    if let Some(pidfile) = &config.pidfile {
        let _ = std::fs::remove_file(pidfile);
    }
    result?.map_err(|e| format!("session ended with an error: {e}"))
}

/// Modes are created exactly as asked (the kernel has applied the
/// client's umask), every inode of a large tree may hold a descriptor, and
/// a 1 ms sleep should not overshoot by the default 50 µs timer slack.
fn prepare_process() {
    // SAFETY: these calls change only process settings and write no memory of ours
    // but `lim`, which outlives them.
    unsafe {
        libc::umask(0);
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
    }
}

/// Forks before any thread exists. The parent waits until the child says
/// the mount is live (a byte on the pipe) and exits 0, or 1 if the child
/// failed first (end of file); the child returns the pipe's write end.
fn fork_background() -> Result<OwnedFd, String> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    sys::check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })
        .map_err(|e| format!("pipe: {}", sys::io_error(e)))?;
    // SAFETY: both descriptors were just created and are owned here only.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: no other thread exists yet, so the child inherits a consistent process.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid > 0 {
        drop(write_end);
        let mut byte = [0u8; 1];
        let live = File::from(read_end).read(&mut byte).is_ok_and(|n| n == 1);
        std::process::exit(if live { 0 } else { 1 });
    }
    drop(read_end);
    // SAFETY: a new session so the terminal's signals do not reach the server.
    unsafe { libc::setsid() };
    Ok(write_end)
}

/// The child of `--background`, mounted: stdio off the caller's pipes
/// (so a caller reading them sees the end), then the parent is released.
fn detach(ready: OwnedFd, log: Option<&Path>) -> Result<(), String> {
    let null = File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| format!("/dev/null: {e}"))?;
    let err = match log {
        Some(path) => File::options()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?,
        None => null.try_clone().map_err(|e| format!("/dev/null: {e}"))?,
    };
    // SAFETY: dup2 onto the standard descriptors; both sources are open.
    unsafe {
        libc::dup2(null.as_raw_fd(), 0);
        libc::dup2(null.as_raw_fd(), 1);
        libc::dup2(err.as_raw_fd(), 2);
    }
    File::from(ready)
        .write_all(b"1")
        .map_err(|e| format!("cannot tell the parent: {e}"))
}

const HANDLED: [libc::c_int; 5] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// Blocks the handled signals in this thread before any other starts, so
/// every thread inherits the mask and only `sigwait` here takes them.
fn block_signals() -> libc::sigset_t {
    // SAFETY: `set` is initialized by sigemptyset before use; pthread_sigmask
    // changes only this thread's mask.
    unsafe {
        let mut set = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut set);
        for sig in HANDLED {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Until the session is over: SIGUSR1 writes the counters, SIGTERM,
/// SIGINT and SIGHUP unmount (the session then ends and SIGUSR2 comes).
fn answer_signals(
    set: &libc::sigset_t,
    mut unmounter: fuser::SessionUnmounter,
    stats: &Stats,
    path: Option<&Path>,
) {
    loop {
        let mut sig = 0;
        // SAFETY: `set` holds blocked signals; `sig` receives the one taken.
        if unsafe { libc::sigwait(set, &mut sig) } != 0 {
            continue;
        }
        match sig {
            libc::SIGUSR2 => return,
            libc::SIGUSR1 => {
                if let Some(path) = path
                    && let Err(e) = stats.write(path)
                {
                    eprintln!("slowfs: cannot write {}: {e}", path.display());
                }
            }
            _ => {
                if let Err(e) = unmounter.unmount() {
                    eprintln!("slowfs: cannot unmount: {e}");
                }
            }
        }
    }
}

pub fn unmount(config: &UnmountConfig) -> Result<(), String> {
    let mountpoint = absolute(&config.mountpoint)?;
    let pid = match &config.pidfile {
        Some(path) => std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.trim().parse::<libc::pid_t>().ok()),
        None => None,
    };
    match mounted_type(&mountpoint)? {
        None => {}
        Some(mount) if mount.source == FSNAME && mount.fstype.starts_with("fuse") => {
            let path = CString::new(mountpoint.as_os_str().as_bytes())
                .map_err(|_| "MOUNTPOINT has a NUL byte")?;
            // SAFETY: `path` is a valid C string.
            sys::check(unsafe { libc::umount(path.as_ptr()) }).map_err(|e| {
                format!(
                    "cannot unmount {}: {}",
                    mountpoint.display(),
                    sys::io_error(e)
                )
            })?;
        }
        Some(other) => {
            return Err(format!(
                "{} is a {} mount of {}, not slowfs",
                mountpoint.display(),
                other.fstype,
                other.source
            ));
        }
    }
    match pid {
        Some(pid) => wait_gone(pid),
        None => Ok(()),
    }
}

/// The mount point as /proc/self/mountinfo spells it, found without
/// looking anything up inside the mount (its parent made canonical).
fn absolute(path: &Path) -> Result<PathBuf, String> {
    let name = path
        .file_name()
        .ok_or_else(|| format!("{}: not a mount point", path.display()))?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let parent = std::fs::canonicalize(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    Ok(parent.join(name))
}

/// What /proc/self/mountinfo says of a mount.
struct MountInfo {
    fstype: String,
    source: String,
}

/// The mount on top at `mountpoint`, if any.
fn mounted_type(mountpoint: &Path) -> Result<Option<MountInfo>, String> {
    let info =
        std::fs::read("/proc/self/mountinfo").map_err(|e| format!("/proc/self/mountinfo: {e}"))?;
    let mut found = None;
    for line in info.split(|&b| b == b'\n') {
        let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
        let Some(dash) = fields.iter().position(|f| *f == b"-") else {
            continue;
        };
        if fields.len() > dash + 2
            && fields.len() > 4
            && unescape(fields[4]) == mountpoint.as_os_str().as_bytes()
        {
            found = Some(MountInfo {
                fstype: String::from_utf8_lossy(fields[dash + 1]).into_owned(),
                source: String::from_utf8_lossy(&unescape(fields[dash + 2])).into_owned(),
            });
        }
    }
    Ok(found)
}

/// mountinfo's octal escapes (`\040` for a space) undone.
fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let octal = field
            .get(i + 1..i + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        match (field[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

/// Waits until process `pid` has exited (it writes its counters first).
/// An exited process may stay a zombie until whoever adopted it reaps it,
/// so a zombie counts as gone.
fn wait_gone(pid: libc::pid_t) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while running(pid) {
        if Instant::now() > deadline {
            return Err(format!(
                "slowfs process {pid} still running 30 s after unmount"
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

fn running(pid: libc::pid_t) -> bool {
    let Ok(stat) = std::fs::read(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses and may
    // itself hold any byte: take the last ')'.
    let state = stat
        .iter()
        .rposition(|&b| b == b')')
        .and_then(|i| stat.get(i + 2));
    !matches!(state, None | Some(b'Z' | b'X'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape(br"/a\040b\134c"), b"/a b\\c");
        assert_eq!(unescape(br"/trailing\04"), br"/trailing\04");
    }

    #[test]
    fn this_process_is_running_and_a_bogus_pid_is_not() {
        assert!(running(std::process::id() as libc::pid_t));
        assert!(!running(i32::MAX));
    }
}
