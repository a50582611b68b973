//! Starting one worker process and talking to it.

use std::ffi::OsString;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, describe_exit};
use crate::frame::{self, FrameError};
use crate::mailbox::Mailboxes;
use crate::task::table_fingerprint;
use crate::wire::{FromWorker, ToWorker};

/// How long `terminate()` lets a worker handle SIGTERM before SIGKILL.
pub(crate) const GRACE: Duration = Duration::from_millis(300);

/// How long a new worker may take to start and run its initializer.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Tells a re-executed process that it is a worker, which inherited fd is
/// its socket and which its mailboxes: `FD:PARENT_PID:MAIL_FD`.
pub(crate) const ENV_WORKER: &str = "PROCPOOL_WORKER_FD";

/// A running worker process and the parent's end of its socket.
pub(crate) struct Child {
    process: std::process::Child,
    stream: UnixStream,
    /// Every read of the socket goes through this buffer, so a small
    /// frame, length and body, costs one `recv`.
    reader: io::BufReader<UnixStream>,
    scratch: Vec<u8>,
    /// Small frames both ways, beside the socket (see `crate::mailbox`).
    mail: Mailboxes,
}

impl Child {
    /// Starts the executable again as a worker and waits until it is ready
    /// (start-up checks and initializer done).
    pub(crate) fn spawn(init: Option<&(u32, Vec<u8>)>) -> Result<Child, Error> {
        let spawn_error = |e: io::Error| Error::Worker {
            message: format!("cannot start a worker process: {e}"),
        };
        let (stream, child_end) = UnixStream::pair().map_err(spawn_error)?;
        let child_fd = child_end.as_raw_fd();
        let (mail, mail_fd) = Mailboxes::create().map_err(spawn_error)?;
        let mail_fd_raw = mail_fd.as_raw_fd();
        let parent_pid = std::process::id();
        // /proc/self/exe, not current_exe(): it still works if the binary
        // was replaced or deleted since start (say, by a rebuild).
        let mut command = Command::new("/proc/self/exe");
        command
            .arg0(
                std::env::args_os()
                    .next()
                    .unwrap_or_else(|| OsString::from("procpool-worker")),
            )
            .env(ENV_WORKER, format!("{child_fd}:{parent_pid}:{mail_fd_raw}"))
            .stdin(Stdio::null());
        // SAFETY: the closure runs in the forked child before exec and only
        // makes async-signal-safe calls (fcntl, prctl, getppid); it touches
        // no lock and allocates nothing.
        unsafe { command.pre_exec(move || prepare_child([child_fd, mail_fd_raw], parent_pid)) };
        let process = command.spawn().map_err(spawn_error)?;
        drop(child_end);
        drop(mail_fd);
        let reader = match stream.try_clone() {
            Ok(read_end) => io::BufReader::with_capacity(1 << 16, read_end),
            Err(e) => {
                let mut process = process;
                let _ = process.kill();
                let _ = process.wait();
                return Err(spawn_error(e));
            }
        };
        let mut child = Child {
            process,
            stream,
            reader,
            scratch: Vec::new(),
            mail,
        };
        match child.handshake(init) {
            Ok(()) => Ok(child),
            Err(message) => {
                child.kill();
                let status = child.wait();
                let hint = "is procpool::init() the first call in main?";
                Err(match (message, status) {
                    (Some(m), _) => Error::Initializer { message: m },
                    (None, Some(s)) => Error::Worker {
                        message: format!("worker {s} before it was ready; {hint}"),
                    },
                    (None, None) => Error::Worker {
                        message: format!("worker did not start; {hint}"),
                    },
                })
            }
        }
    }

    /// Sends `Hello` and waits for `Ready`. `Err(Some(reason))` is a start-up
    /// failure the worker reported; `Err(None)` means it never answered.
    fn handshake(&mut self, init: Option<&(u32, Vec<u8>)>) -> Result<(), Option<String>> {
        let hello = ToWorker::Hello {
            fingerprint: table_fingerprint(),
            init: init.map(|(task, args)| (*task, serde_bytes::Bytes::new(args))),
        };
        let mut buf = Vec::new();
        frame::write_message(&mut &self.stream, &hello, &mut buf).map_err(|_| None)?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(None);
            }
            if self.wait_readable(left).map_err(|_| None)? {
                break;
            }
        }
        match self.recv() {
            Ok(FromWorker::Ready) => Ok(()),
            Ok(FromWorker::StartFailed(why)) => Err(Some(why)),
            _ => Err(None),
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.process.id()
    }

    pub(crate) fn stream(&self) -> &UnixStream {
        &self.stream
    }

    /// Reads the next frame from the socket into `buf`.
    pub(crate) fn read_frame(&mut self, buf: &mut Vec<u8>) -> Result<(), FrameError> {
        let read = frame::read_frame(&mut self.reader, buf);
        self.mail.read_from_socket();
        read
    }

    /// Sends a frame of `head` and raw `blocks`: through the mailbox if
    /// it fits and the worker is awake, else by the socket.
    pub(crate) fn send_with_blocks<T: serde::Serialize + ?Sized>(
        &mut self,
        head: &T,
        blocks: &[&[u8]],
        scratch: &mut Vec<u8>,
    ) -> io::Result<()> {
        frame::encode_with_blocks(head, blocks, scratch)?;
        let mut parts = Vec::with_capacity(1 + blocks.len());
        parts.push(scratch.as_slice());
        parts.extend_from_slice(blocks);
        let mut body = parts.clone();
        body[0] = &scratch[4..];
        if self.mail.post(&body, true) {
            return Ok(());
        }
        frame::send_all(self.stream.as_raw_fd(), &parts)
    }

    /// Waits briefly for the next frame in the mailbox, read into `buf`:
    /// `Ok(true)`. `Ok(false)`: it comes by the socket ([`Self::read_frame`]).
    pub(crate) fn take_mail(&mut self, buf: &mut Vec<u8>) -> Result<bool, FrameError> {
        if !self.reader.buffer().is_empty() {
            return Ok(false);
        }
        self.mail.take(buf).map_err(FrameError::Io)
    }

    /// Whether the last frame sent through the mailbox was never taken:
    /// the worker died before it saw it.
    pub(crate) fn request_unread(&self) -> bool {
        self.mail.unread()
    }

    pub(crate) fn recv(&mut self) -> Result<FromWorker, FrameError> {
        frame::read_message(&mut self.reader, &mut self.scratch)
    }

    /// Waits up to `timeout` for the socket to have data or be closed.
    pub(crate) fn wait_readable(&self, timeout: Duration) -> io::Result<bool> {
        if !self.reader.buffer().is_empty() {
            return Ok(true);
        }
        poll_readable(self.stream.as_raw_fd(), timeout)
    }

    pub(crate) fn kill(&mut self) {
        // The child is not reaped until `wait`, so the pid is still ours.
        let _ = self.process.kill();
    }

    /// Waits up to `grace` for the child to close its socket (it exits),
    /// then kills it.
    pub(crate) fn wait_for_exit(&mut self, grace: Duration) {
        let deadline = Instant::now() + grace;
        let mut sink = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.wait_readable(left) {
                Ok(true) => match io::Read::read(&mut &self.stream, &mut sink) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                },
                _ => break,
            }
        }
        self.kill();
    }

    /// Reaps the child; returns how it ended.
    pub(crate) fn wait(mut self) -> Option<String> {
        let _ = self.stream.flush();
        self.process.wait().ok().map(describe_exit)
    }
}

/// Runs in the forked child, before exec.
fn prepare_child(keep: [RawFd; 2], parent_pid: u32) -> io::Result<()> {
    // SAFETY: fcntl and prctl on valid fds / this process; async-signal-safe.
    unsafe {
        // Keep the socket and the mailboxes across exec; every other fd of
        // ours is CLOEXEC.
        for fd in keep {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        // Die with the parent (its forking thread, which outlives us).
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0 {
            return Err(io::Error::last_os_error());
        }
        // The parent may have died before prctl took effect.
        if libc::getppid() as u32 != parent_pid {
            return Err(io::Error::other("parent exited during worker start-up"));
        }
    }
    Ok(())
}

/// `poll(2)` for readability (or hang-up) of one fd.
pub(crate) fn poll_readable(fd: RawFd, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    loop {
        // SAFETY: `pfd` is a valid pollfd array of length 1 for the call.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n >= 0 {
            return Ok(n > 0);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}
