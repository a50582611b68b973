//! Process workers, worker side: the loop a re-executed process runs
//! instead of the program's `main`.

use std::ffi::OsStr;
use std::io::{BufReader, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;

use crate::error::Error;
use crate::frame::{self, FrameError};
use crate::frame::{HEAD_ROOM, MAX_FRAME};
use crate::mailbox::Mailboxes;
use crate::spawn::ENV_WORKER;
use crate::task::{init_by_index, run_by_index, table_fingerprint};
use crate::wire::{self, FromWorker, ToWorker};

/// Makes this process serve as a pool worker if it was started as one, and
/// returns at once otherwise.
///
/// Call it first thing in `main`, before any other thread starts, in every
/// program that creates a [`Pool`](crate::Pool): workers are the program
/// itself started again, and this call is where they branch off into the
/// worker loop (and exit when the pool is done with them) instead of running
/// your `main`. Python does the same with its `if __name__ == "__main__":`
/// guard. In a test binary, whose `main` belongs to the test harness, use
/// [`test_support!`](crate::test_support) instead.
///
/// ```
/// fn double(x: u32) -> u32 { x * 2 }
/// procpool::register!(double);
///
/// fn main() {
///     procpool::init(); // a worker never gets past this line
///     let pool = procpool::Pool::with_workers(1).unwrap();
///     assert_eq!(pool.apply(double, (21,)), Ok(42));
/// }
/// ```
pub fn init() {
    let Some(spec) = std::env::var_os(ENV_WORKER) else {
        return;
    };
    // SAFETY: init() runs first in main (or from a constructor before
    // main), when no other thread can be reading the environment.
    unsafe { std::env::remove_var(ENV_WORKER) };
    let code = match serve(&spec) {
        Ok(()) => 0,
        Err(why) => {
            eprintln!("procpool worker {}: {why}", std::process::id());
            1
        }
    };
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}

/// Refuses to create a process pool inside a worker whose `main` did not
/// call [`init`]: otherwise each worker would start a pool of its own, and
/// so on without end.
pub(crate) fn refuse_if_uninitialized_worker() -> Result<(), Error> {
    match std::env::var_os(ENV_WORKER) {
        None => Ok(()),
        Some(_) => Err(Error::Worker {
            message: "this process was started as a pool worker, but procpool::init() \
                      was not called at the top of main"
                .into(),
        }),
    }
}

/// The worker loop: start-up handshake, then batches until `Exit` or until
/// the parent goes away.
fn serve(spec: &OsStr) -> Result<(), String> {
    let (fd, mail_fd) = parse_spec(spec)?;
    // SAFETY: the parent passed this fd open across exec for this process
    // alone, and nothing else in this process has claimed it.
    let stream = unsafe { UnixStream::from_raw_fd(fd) };
    let mail = match mail_fd {
        Some(fd) => {
            Some(Mailboxes::open(fd).map_err(|e| format!("cannot map the mailboxes: {e}"))?)
        }
        None => None,
    };
    // Tasks that start programs of their own must not leak the socket.
    // SAFETY: fcntl on an fd this process owns.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    // Ctrl-C reaches the whole process group; the parent decides what an
    // interrupt means (finish, or terminate), so workers do not die of it.
    // SAFETY: setting a signal to SIG_IGN installs no handler code.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };

    crate::task::record_task_panics(true);
    let mut reader = BufReader::with_capacity(1 << 16, &stream);
    let mut buf = Vec::new();
    let mut out = Vec::new();
    frame::read_frame(&mut reader, &mut buf).map_err(|e| e.to_string())?;
    let hello = frame::decode(&buf).map_err(|e| e.to_string())?;
    let ready = start(hello);
    let failed = matches!(ready, FromWorker::StartFailed(_));
    frame::write_message(&mut &stream, &ready, &mut out).map_err(|e| e.to_string())?;
    if failed {
        return Ok(());
    }
    loop {
        // The next batch of a caller that waits for each result comes
        // microseconds after this one's replies, through the mailbox while
        // this worker still looks there: no system call, no wake-up.
        let mailed = match &mail {
            Some(mail) if reader.buffer().is_empty() => {
                mail.take(&mut buf).map_err(|e| e.to_string())?
            }
            _ => false,
        };
        if !mailed {
            let read = frame::read_frame(&mut reader, &mut buf);
            mail.iter().for_each(Mailboxes::read_from_socket);
            match read {
                Ok(()) => {}
                // The parent hung up between frames: the pool is gone.
                Err(FrameError::Eof) => return Ok(()),
                Err(e) => return Err(format!("protocol error: {e}")),
            }
        }
        if !serve_frame(&buf, fd, mail.as_ref(), &mut out)? {
            return Ok(());
        }
    }
}

/// Runs one frame from the parent: a batch (its replies sent) or `Exit`.
/// Returns whether to go on.
fn serve_frame(
    frame: &[u8],
    fd: RawFd,
    mail: Option<&Mailboxes>,
    out: &mut Vec<u8>,
) -> Result<bool, String> {
    let (message, rest) = frame::decode_head(frame).map_err(|e| format!("protocol error: {e}"))?;
    match message {
        ToWorker::Batch(calls) => {
            let payloads = wire::split_blocks(rest, calls.iter().map(|c| c.len))
                .map_err(|e| format!("protocol error: {e}"))?;
            let replies: Vec<_> = calls
                .iter()
                .zip(payloads)
                .map(|(call, args)| run_by_index(call.task, args))
                .collect();
            // Puts a task made on a shared queue must be settled before
            // the parent learns the task is done, or it could close the
            // queue under them.
            crate::manager::settle_all();
            send_replies(fd, mail, &replies, out)
                .map_err(|e| format!("cannot send results: {e}"))?;
            Ok(true)
        }
        // Only a batch carries blocks: anything after another head is as
        // malformed as trailing bytes anywhere.
        _ if !rest.is_empty() => Err(format!(
            "protocol error: malformed frame: {} trailing bytes",
            rest.len()
        )),
        ToWorker::Exit => Ok(false),
        ToWorker::Hello { .. } => Err("protocol error: second hello".into()),
    }
}

/// Sends a batch's replies, in as many frames as their size needs: each
/// reply is at most [`MAX_VALUE`](crate::frame::MAX_VALUE) (see
/// `task::run_encoded`), a frame at most one such value and its head. A
/// single small frame goes through the mailbox when the parent is awake;
/// a message of several frames goes wholly by the socket, so that its
/// frames cannot overtake one another (see `crate::mailbox`).
fn send_replies(
    fd: RawFd,
    mail: Option<&Mailboxes>,
    replies: &[Result<Vec<u8>, String>],
    scratch: &mut Vec<u8>,
) -> std::io::Result<()> {
    let mut rest = replies;
    loop {
        let mut room = MAX_FRAME - HEAD_ROOM;
        let mut take = 0;
        for reply in rest {
            let len = reply.as_ref().map_or(0, Vec::len);
            if take > 0 && len > room {
                break;
            }
            room = room.saturating_sub(len);
            take += 1;
        }
        let (now, later) = rest.split_at(take);
        let head = FromWorker::Replies(
            now.iter()
                .map(|r| r.as_ref().map(|v| v.len() as u64).map_err(Clone::clone))
                .collect(),
        );
        let blocks: Vec<&[u8]> = now.iter().filter_map(|r| r.as_deref().ok()).collect();
        frame::encode_with_blocks(&head, &blocks, scratch)?;
        let whole = later.is_empty() && rest.len() == replies.len();
        let mut parts = Vec::with_capacity(1 + blocks.len());
        parts.push(&scratch[4..]);
        parts.extend_from_slice(&blocks);
        if !mail.is_some_and(|mail| mail.post(&parts, whole)) {
            parts[0] = scratch.as_slice();
            frame::send_all(fd, &parts)?;
        }
        if later.is_empty() {
            return Ok(());
        }
        rest = later;
    }
}

fn start(hello: ToWorker<'_>) -> FromWorker {
    let ToWorker::Hello { fingerprint, init } = hello else {
        return FromWorker::StartFailed("protocol error: expected hello".into());
    };
    if fingerprint != table_fingerprint() {
        return FromWorker::StartFailed(
            "the worker's task table differs from the parent's executable".into(),
        );
    }
    match init.map(|(task, args)| init_by_index(task, args)) {
        Some(Err(why)) => FromWorker::StartFailed(why),
        _ => FromWorker::Ready,
    }
}

/// The socket's and the mailboxes' fds from `FD:PARENT_PID[:MAIL_FD]`.
/// Without mailboxes (a worker started by hand), every frame goes by the
/// socket.
fn parse_spec(spec: &OsStr) -> Result<(RawFd, Option<RawFd>), String> {
    let text = std::str::from_utf8(spec.as_bytes()).map_err(|_| "bad worker spec")?;
    let mut fields = text.split(':');
    let (Some(fd), Some(_parent), mail, None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(format!("bad worker spec {text:?}"));
    };
    let fd = fd.parse().map_err(|_| format!("bad worker fd {fd:?}"))?;
    let mail = mail
        .map(|m| m.parse().map_err(|_| format!("bad mailbox fd {m:?}")))
        .transpose()?;
    Ok((fd, mail))
}
