//! Helpers of the reliability tests: the engine's test hook seen from the
//! test side, process-group kills that wait until every process is gone, a
//! watchdog against hangs, and snapshots of directories that must not change.
#![allow(
    dead_code,
    reason = "each reliability test crate uses a different part of the helper"
)]

use std::ffi::{CString, OsString};
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long a test waits for an event before it fails instead of hanging.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether the pcopy binary under test honours `PCOPY_TEST_HOOK` (debug
/// builds only; the tests are built with the same profile). Says why not.
pub fn hook_available() -> bool {
    if !cfg!(debug_assertions) {
        eprintln!("skipped: PCOPY_TEST_HOOK is compiled into debug builds only");
    }
    cfg!(debug_assertions)
}

/// The test's side of the engine's pause point (`src/copy/test_hook.rs`):
/// two fifos this side keeps open for reading and writing, so neither end
/// ever blocks on open and a worker that dies cannot leave the test waiting
/// for a writer.
pub struct Gate {
    prefix: PathBuf,
    spec: String,
    reached: fs::File,
    release: fs::File,
    pending: Vec<u8>,
}

impl Gate {
    /// A gate for `stage` (`open` or `data`) of the job whose destination
    /// path is `rel_dst`, with its fifos in `dir`.
    pub fn new(dir: &Path, stage: &str, rel_dst: &str) -> Gate {
        let prefix = dir.join("gate");
        let fifo = |suffix: &str| {
            let path = PathBuf::from(format!("{}.{suffix}", prefix.display()));
            let made = rustix::fs::mknodat(
                rustix::fs::CWD,
                &path,
                rustix::fs::FileType::Fifo,
                rustix::fs::Mode::from_raw_mode(0o600),
                0,
            );
            made.expect("mkfifo");
            // Read and write: opening never blocks and never sees EOF.
            let opened = fs::OpenOptions::new().read(true).write(true).open(&path);
            opened.expect("open fifo")
        };
        let (reached, release) = (fifo("reached"), fifo("release"));
        let spec = format!("{stage}:{rel_dst}:{}", prefix.display());
        Gate {
            prefix,
            spec,
            reached,
            release,
            pending: Vec::new(),
        }
    }

    /// The environment variable that arms the hook in pcopy.
    pub fn env(&self) -> (&'static str, &str) {
        ("PCOPY_TEST_HOOK", &self.spec)
    }

    /// Waits until a job reaches the gate and returns the pid of the
    /// process running it (a worker process, or pcopy with thread workers).
    pub fn wait_reached(&mut self) -> u32 {
        assert!(
            self.poll_reached(EVENT_TIMEOUT),
            "no job reached the gate within {EVENT_TIMEOUT:?}"
        );
        let line_end = self.pending.iter().position(|&b| b == b'\n').expect("line");
        let line: Vec<u8> = self.pending.drain(..=line_end).collect();
        let text = std::str::from_utf8(&line).expect("pid line");
        text.trim().parse().expect("pid")
    }

    /// Whether another job reached the gate (without waiting).
    pub fn reached_again(&mut self) -> bool {
        self.poll_reached(Duration::ZERO)
    }

    fn poll_reached(&mut self, timeout: Duration) -> bool {
        while !self.pending.contains(&b'\n') {
            if !readable(self.reached.as_fd(), timeout) {
                return false;
            }
            let mut buf = [0u8; 64];
            let n = self.reached.read(&mut buf).expect("read gate");
            self.pending.extend_from_slice(&buf[..n]);
        }
        true
    }

    /// Lets the job waiting at the gate go on.
    pub fn release(&mut self) {
        self.release.write_all(b"x").expect("release gate");
    }

    pub fn prefix(&self) -> &Path {
        &self.prefix
    }
}

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

/// Every entry below `root`, and `root` itself, with everything a write,
/// chmod, chown, create or delete would change: type, mode, owner, size,
/// mtime, ctime, and the content or link target.
pub fn snapshot(root: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    snapshot_into(root, &PathBuf::new(), &mut lines);
    lines.sort();
    lines
}

fn snapshot_into(root: &Path, rel: &Path, lines: &mut Vec<String>) {
    let path = root.join(rel);
    let meta = fs::symlink_metadata(&path).expect("lstat");
    let what = if meta.is_symlink() {
        let target = fs::read_link(&path).expect("readlink");
        format!("link {:?}", target.as_os_str().as_bytes())
    } else if meta.is_file() {
        format!("file {:?}", fs::read(&path).expect("read"))
    } else {
        "dir".to_string()
    };
    lines.push(format!(
        "{:?} {what} mode {:o} owner {}:{} size {} mtime {}.{} ctime {}.{}",
        rel.as_os_str().as_bytes(),
        meta.mode(),
        meta.uid(),
        meta.gid(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec()
    ));
    if meta.is_dir() {
        let mut names: Vec<OsString> = fs::read_dir(&path)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        names.sort();
        for name in names {
            snapshot_into(root, &rel.join(name), lines);
        }
    }
}

/// A deterministic pseudo-random sequence (SplitMix64), so a failing
/// schedule of kills or sizes can be replayed from its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `low..high`.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next_u64() % (high - low)
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

/// A mount made by the test, unmounted on drop even when an assertion
/// fails, so no test leaves a mount behind.
pub struct Mount(CString);

impl Drop for Mount {
    fn drop(&mut self) {
        // SAFETY: the pointer is a valid NUL-terminated path for the call.
        unsafe { libc::umount2(self.0.as_ptr(), libc::MNT_DETACH) };
    }
}

/// `mount(2)`; `Err` says why it could not (not root, no permission in
/// this container), so the caller can skip.
pub fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> std::io::Result<Mount> {
    let c = |bytes: &[u8]| CString::new(bytes).expect("no NUL in test paths");
    let source = source.map(|p| c(p.as_os_str().as_bytes()));
    let target = c(target.as_os_str().as_bytes());
    let fstype = fstype.map(|s| c(s.as_bytes()));
    let data = data.map(|s| c(s.as_bytes()));
    let ptr = |s: &Option<CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: every pointer is null or a valid NUL-terminated string that
    // outlives the call.
    let rc = unsafe {
        libc::mount(
            ptr(&source),
            target.as_ptr(),
            ptr(&fstype),
            flags,
            ptr(&data).cast(),
        )
    };
    if rc == 0 {
        Ok(Mount(target))
    } else {
        Err(std::io::Error::last_os_error())
    }
}
