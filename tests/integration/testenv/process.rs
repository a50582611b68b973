//! pcopy's processes seen from the test: children under a watchdog
//! against hangs, signals, process-group kills that wait until every
//! process is gone, and the unnamed files a process holds.

use std::fs;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{EVENT_TIMEOUT, TestEnv};

/// `poll(2)` for input on `fd` for up to `timeout`.
pub(super) fn readable(fd: std::os::fd::BorrowedFd<'_>, timeout: Duration) -> bool {
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

/// SIGKILLs the process group of `leader` (started with
/// `process_group(0)`), then waits until every process of the group has
/// exited, so nothing can still be writing when the test looks.
fn kill_group_and_wait(leader: &mut Child) -> ExitStatus {
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

/// Sends `signal` to process `pid`, which must be a live child or
/// grandchild the test has not reaped.
pub fn send_signal(pid: u32, signal: i32) {
    // SAFETY: kill has no memory-safety preconditions; the caller names a
    // process it has not reaped, so the pid is not reused.
    let sent = unsafe { libc::kill(pid as libc::pid_t, signal) };
    assert_eq!(sent, 0, "kill {pid}: {}", std::io::Error::last_os_error());
}

/// The `/proc/PID/fd` links of the files without a name (an `O_TMPFILE`
/// being filled) that process `pid` holds open in `dir`.
pub fn unnamed_files(pid: u32, dir: &Path) -> Vec<PathBuf> {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    fds.flatten()
        .filter(|fd| {
            fs::read_link(fd.path()).is_ok_and(|target| {
                let unnamed = target
                    .as_os_str()
                    .as_encoded_bytes()
                    .ends_with(b" (deleted)");
                unnamed && target.starts_with(dir)
            })
        })
        .map(|fd| fd.path())
        .collect()
}

/// A child that may not outlive its test: a watchdog kills it (and its
/// process group, if it leads one) when it runs longer than
/// [`EVENT_TIMEOUT`], so a hang fails the test instead of blocking it, and
/// dropping it unwaited (the test failed first) kills it too.
pub struct Guarded {
    /// `None` once waited for.
    child: Option<Child>,
    /// Set by the watchdog thread when it had to kill the child.
    fired: Arc<AtomicBool>,
}

impl Guarded {
    /// Spawns `command` under a watchdog.
    pub fn spawn(command: &mut Command) -> Guarded {
        let child = command.spawn().expect("spawn");
        let fired = Arc::new(AtomicBool::new(false));
        let pid = child.id();
        let fd = pidfd(pid).expect("pidfd of a running child");
        let flag = Arc::clone(&fired);
        // The thread owns the pidfd: it wakes when the child exits, or
        // kills it after the timeout; it never outlives the child by more.
        std::thread::spawn(move || {
            if !readable(fd.as_fd(), EVENT_TIMEOUT) {
                flag.store(true, Ordering::SeqCst);
                kill_with_group(pid, &fd);
            }
        });
        Guarded {
            child: Some(child),
            fired,
        }
    }

    pub fn id(&self) -> u32 {
        self.running().id()
    }

    /// The child, to take its pipes.
    pub fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("not waited for yet")
    }

    /// Waits for the child and collects what it wrote to its pipes;
    /// panics if the watchdog had to kill it.
    pub fn wait(mut self) -> Output {
        let child = self.child.take().expect("not waited for yet");
        let output = child.wait_with_output().expect("wait for the child");
        self.assert_quiet();
        output
    }

    /// Kills the child's process group (it was started with
    /// `process_group(0)`) with [`kill_group_and_wait`].
    pub fn kill_group(mut self) -> ExitStatus {
        let status = kill_group_and_wait(self.child());
        self.child = None;
        self.assert_quiet();
        status
    }

    fn running(&self) -> &Child {
        self.child.as_ref().expect("not waited for yet")
    }

    fn assert_quiet(&self) {
        assert!(
            !self.fired.load(Ordering::SeqCst),
            "pcopy hung and was killed after {EVENT_TIMEOUT:?}"
        );
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(fd) = pidfd(child.id()) {
                kill_with_group(child.id(), &fd);
            }
            let _ = child.wait();
        }
    }
}

/// SIGKILL for `pid` (through its pidfd, so never another process) and
/// for its process group if it leads one.
fn kill_with_group(pid: u32, fd: &OwnedFd) {
    // SAFETY: kill has no memory-safety preconditions. The group id is
    // the unreaped child's own pid; if it leads no group this is ESRCH.
    unsafe { libc::kill(-(pid as libc::pid_t), libc::SIGKILL) };
    let _ = rustix::process::pidfd_send_signal(fd, rustix::process::Signal::KILL);
}

/// Sets an open-file limit of `limit` (soft and hard) in the child alone.
pub fn limit_fds(command: &mut std::process::Command, limit: u64) {
    // SAFETY: between fork and exec the closure makes one system call,
    // setrlimit, which is async-signal-safe, and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            let rlimit = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            match libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        });
    }
}

/// Runs pcopy with `args` under an open-file limit of `limit`.
pub fn run_with_fd_limit(env: &TestEnv, limit: u64, args: &[&str]) -> Output {
    let mut command = env.pcopy();
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    limit_fds(&mut command, limit);
    Guarded::spawn(&mut command).wait()
}
