//! pcopy's processes seen from the test: polling a descriptor,
//! process-group kills that wait until every process is gone, and a
//! watchdog against hangs.

use std::fs;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::EVENT_TIMEOUT;

/// `poll(2)` for input on `fd` for up to `timeout`.
pub fn readable(fd: std::os::fd::BorrowedFd<'_>, timeout: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    loop {
        // SAFETY: `pfd` is one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n >= 0 {
            return n > 0;
        }
        let err = std::io::Error::last_os_error();
        assert_eq!(err.kind(), std::io::ErrorKind::Interrupted, "poll: {err}");
    }
}

/// A pidfd for `pid`, or `None` if the process is already gone.
fn pidfd(pid: u32) -> Option<OwnedFd> {
    let pid = rustix::process::Pid::from_raw(pid as i32)?;
    rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
}

/// Kills the process group of `leader` (started with `process_group(0)`)
/// and `sig`-nals it, then waits until every process of the group has
/// exited, so nothing can still be writing when the test looks.
pub fn kill_group_and_wait(leader: &mut std::process::Child) -> std::process::ExitStatus {
    let pgid = leader.id();
    let mut members: Vec<OwnedFd> = group_members(pgid).into_iter().filter_map(pidfd).collect();
    // SAFETY: kill has no memory-safety preconditions; the group is our
    // child's, which is not reaped yet, so its id is not reused.
    let sent = unsafe { libc::kill(-(pgid as libc::pid_t), libc::SIGKILL) };
    assert_eq!(sent, 0, "kill: {}", std::io::Error::last_os_error());
    let status = leader.wait().expect("wait for pcopy");
    loop {
        for fd in members.drain(..) {
            assert!(
                readable(fd.as_fd(), EVENT_TIMEOUT),
                "a killed process lingers"
            );
        }
        // A worker forked while the signal was on its way: find and wait.
        members = group_members(pgid).into_iter().filter_map(pidfd).collect();
        if members.is_empty() {
            return status;
        }
        // SAFETY: as above; the group id is still held by these members.
        unsafe { libc::kill(-(pgid as libc::pid_t), libc::SIGKILL) };
    }
}

/// Live (not zombie) processes whose process group is `pgid`.
pub fn group_members(pgid: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((_, after)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = after.split_whitespace().collect();
        if fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string() {
            pids.push(pid);
        }
    }
    pids
}

/// Kills the process group of a child that runs longer than a limit, so a
/// hang fails the test (the child dies of SIGKILL) instead of blocking it.
pub struct Watchdog {
    fired: Arc<AtomicBool>,
}

impl Watchdog {
    pub fn new(child: &std::process::Child, limit: Duration) -> Watchdog {
        let fired = Arc::new(AtomicBool::new(false));
        let pid = child.id();
        let fd = pidfd(pid).expect("pidfd of a running child");
        let flag = Arc::clone(&fired);
        std::thread::spawn(move || {
            if !readable(fd.as_fd(), limit) {
                flag.store(true, Ordering::SeqCst);
                // SAFETY: kill has no memory-safety preconditions; the
                // child is not reaped (the pidfd says it is running). Its
                // group, if it leads one, goes too.
                unsafe {
                    libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
                    libc::kill(pid as libc::pid_t, libc::SIGKILL);
                }
            }
        });
        Watchdog { fired }
    }

    /// Panics if the child had to be killed.
    pub fn assert_quiet(&self) {
        assert!(
            !self.fired.load(Ordering::SeqCst),
            "pcopy hung and was killed"
        );
    }
}
