//! The pool's one error type, and what it says about a panic. Owns
//! [`Error`] and [`PanicLocation`]; calls nothing of the pool.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::codec::Cause;

/// Everything that can go wrong with a pool call or a task's result.
///
/// Python raises a mix of `ValueError`, `TimeoutError`, the task's own
/// exception and, for a dead worker, nothing at all (the call hangs). Here
/// every failure is a value of this type, and every `AsyncResult` resolves
/// to one eventually.
///
/// `Error` is `Clone` so that one failure (a lost worker, say) can resolve
/// every result that depended on it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The task panicked. The message is the panic payload, when it was a
    /// string (as it is for `panic!("...")`, `unwrap` and `expect`). Its
    /// `Display` says where, as Python shows the worker's traceback.
    Panicked {
        /// The panic message.
        message: String,
        /// Where the `panic!` (or `unwrap`, ...) is in the source. `None`
        /// for a panic that did not go through the panic hook
        /// (`std::panic::resume_unwind`), or when the program replaced the
        /// hook the pool installs.
        location: Option<PanicLocation>,
        /// The worker's backtrace at the panic, when `RUST_BACKTRACE` (or
        /// `RUST_LIB_BACKTRACE`) asks for one. The alternate `Display`
        /// (`{:#}`) shows it.
        backtrace: Option<String>,
    },
    /// The worker process running the task died before answering: killed
    /// by a signal, out of memory, aborted, or it exited. Python's `Pool`
    /// hangs forever here (bpo-22393); procpool resolves only the dead
    /// worker's in-flight tasks to this error, starts a new worker and goes
    /// on.
    WorkerLost {
        /// The process id of the worker that died.
        pid: u32,
        /// How it ended, e.g. `killed by signal 9 (SIGKILL)` or `exited with status 3`.
        status: String,
    },
    /// The pool was terminated before the task finished or before it
    /// started. Python leaves such results pending forever.
    Terminated,
    /// A task was submitted after `close()` or `terminate()` (Python's
    /// `ValueError: Pool not running`).
    Closed,
    /// `join()` was called while the pool is still running, that is before
    /// `close()` or `terminate()` (Python's `ValueError: Pool is still running`).
    StillRunning,
    /// `get_timeout` ran out of time (Python's `multiprocessing.TimeoutError`).
    Timeout,
    /// The task ran longer than the pool's
    /// [`task_timeout`](crate::Builder::task_timeout). A process worker
    /// running it was killed and replaced; a thread cannot be stopped, so
    /// its late result is discarded. Python's `Pool` has no such limit.
    TimedOut {
        /// The pool's time limit.
        limit: std::time::Duration,
        /// The worker process that was killed; `None` for a thread.
        pid: Option<u32>,
    },
    /// The task was cancelled with
    /// [`AsyncResult::cancel`](crate::AsyncResult::cancel): it never ran, or
    /// its worker process was stopped.
    Cancelled,
    /// The function was not registered with [`register!`](crate::register),
    /// so a worker process could not find it by name.
    Unregistered {
        /// The function's type name.
        name: String,
    },
    /// An argument or a result could not be serialized or deserialized
    /// for the trip between processes.
    Codec {
        /// What failed and why.
        message: String,
        /// The underlying error (the `Serialize` impl's own message, say),
        /// also given by [`source`](std::error::Error::source).
        source: Cause,
    },
    /// A task's encoded arguments or results are larger than one frame
    /// carries (1 GiB). Only that task fails: its worker and the tasks sent
    /// with it go on. (A `map` chunk counts as one task, as for
    /// `maxtasksperchild`.) Python raises `MaybeEncodingError` here.
    TooLarge {
        /// The encoded size, in bytes.
        size: u64,
        /// The most a frame carries, in bytes.
        limit: u64,
    },
    /// A bad argument to a pool call, such as `chunksize` of zero or no workers.
    InvalidArgument {
        /// What was wrong.
        message: String,
    },
    /// The worker could not be initialized: its initializer panicked (the
    /// message is the panic message) or the worker refused to start it.
    Initializer {
        /// Why it failed.
        message: String,
    },
    /// A worker process could not be started, or it broke the protocol.
    Worker {
        /// What happened.
        message: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Panicked {
                message,
                location,
                backtrace,
            } => {
                match location {
                    Some(at) => write!(f, "task panicked at {at}: {message}")?,
                    None => write!(f, "task panicked: {message}")?,
                }
                // The backtrace is many lines: only the alternate form
                // (`{:#}`) shows it, so that `{}` stays one line.
                match backtrace {
                    Some(trace) if f.alternate() => write!(f, "\nworker backtrace:\n{trace}"),
                    _ => Ok(()),
                }
            }
            Error::WorkerLost { pid, status } => {
                write!(f, "worker process {pid} was lost: {status}")
            }
            Error::Terminated => f.write_str("the pool was terminated"),
            Error::Closed => f.write_str("the pool is not running (closed or terminated)"),
            Error::StillRunning => {
                f.write_str("the pool is still running: call close() or terminate() before join()")
            }
            Error::Timeout => f.write_str("timed out waiting for the result"),
            Error::TimedOut {
                limit,
                pid: Some(pid),
            } => write!(
                f,
                "the task ran longer than its {limit:?} limit: worker process {pid} was stopped"
            ),
            Error::TimedOut { limit, pid: None } => write!(
                f,
                "the task ran longer than its {limit:?} limit: its thread's late result will be discarded"
            ),
            Error::Cancelled => f.write_str("the task was cancelled"),
            Error::Unregistered { name } => write!(
                f,
                "function `{name}` is not registered for process workers: add `procpool::register!({name});`"
            ),
            Error::Codec { message, .. } => write!(f, "encoding error: {message}"),
            Error::TooLarge { size, limit } => write!(
                f,
                "a value of {size} bytes is larger than the {limit} bytes one frame carries"
            ),
            Error::InvalidArgument { message } => write!(f, "invalid argument: {message}"),
            Error::Initializer { message } => write!(f, "worker initializer failed: {message}"),
            Error::Worker { message } => write!(f, "worker process error: {message}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Codec { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Where in the source a task panicked: `std::panic::Location`, owned, so
/// that it can travel back from a worker process.
///
/// ```
/// let at = procpool::PanicLocation { file: "src/main.rs".into(), line: 7, column: 5 };
/// assert_eq!(at.to_string(), "src/main.rs:7:5");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PanicLocation {
    /// The source file, as the compiler names it.
    pub file: String,
    /// The line, from 1.
    pub line: u32,
    /// The column, from 1.
    pub column: u32,
}

impl fmt::Display for PanicLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// Describes how a child ended, for [`Error::WorkerLost`].
pub(crate) fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(sig) = status.signal() {
        format!("killed by signal {sig} ({})", signal_name(sig))
    } else if let Some(code) = status.code() {
        format!("exited with status {code}")
    } else {
        format!("ended with {status}")
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGINT => "SIGINT",
        libc::SIGPIPE => "SIGPIPE",
        _ => "signal",
    }
}

/// Turns a caught panic payload into its message.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn exit_descriptions_name_the_signal_or_code() {
        assert_eq!(
            describe_exit(ExitStatusExt::from_raw(9)),
            "killed by signal 9 (SIGKILL)"
        );
        assert_eq!(
            describe_exit(ExitStatusExt::from_raw(3 << 8)),
            "exited with status 3"
        );
    }

    #[test]
    fn panic_messages_survive_both_payload_kinds() {
        let s = std::panic::catch_unwind(|| panic!("boom {}", 1)).unwrap_err();
        assert_eq!(panic_message(&*s), "boom 1");
        let s = std::panic::catch_unwind(|| panic!("static")).unwrap_err();
        assert_eq!(panic_message(&*s), "static");
    }

    #[test]
    fn unregistered_error_says_how_to_fix_it() {
        let e = Error::Unregistered {
            name: "app::square".into(),
        };
        assert!(e.to_string().contains("procpool::register!(app::square)"));
    }
}
