//! Shared by the pool test binaries: the task functions, a fifo gate that
//! holds a task until the test lets it go, callbacks that record what
//! fired, and a guard that turns a hang into a test failure.
//!
//! Task functions are plain registered `fn`s, so that process and thread
//! workers run the very same code.
#![allow(
    dead_code,
    unused_macros,
    unused_imports,
    reason = "each test binary uses a different part"
)]

use std::ffi::{CString, OsString};
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use procpool::{Error, Kind, WorkerPool};

/// Far longer than any healthy wait in these tests: reaching it means a hang.
pub const HANG: Duration = Duration::from_secs(30);

pub fn square(x: u64) -> u64 {
    x * x
}

pub fn add(a: u64, b: u64) -> u64 {
    a + b
}

pub fn last_digit(x: u64) -> u64 {
    x % 10
}

/// Panics on odd input. It unwinds without calling the panic hook, so that
/// process workers, whose stderr is the test run's, do not print each of
/// these expected panics; the pool catches it like any other panic.
pub fn fail_if_odd(x: u64) -> u64 {
    if x % 2 == 1 {
        std::panic::resume_unwind(Box::new(format!("odd input {x}")));
    }
    x
}

/// Panics through the panic hook, with the line of its `panic!` in the
/// message, so a test can check the location the pool reports.
pub fn panic_here(x: u64) -> u64 {
    panic!("boom {x} at line {}", line!())
}

/// Which process and thread ran the task.
pub fn worker_identity() -> String {
    format!("{}/{:?}", std::process::id(), std::thread::current().id())
}

/// [`worker_identity`] for `map`, which passes each item.
pub fn item_identity(_item: u64) -> String {
    worker_identity()
}

pub fn reverse_bytes(mut data: Vec<u8>) -> Vec<u8> {
    data.reverse();
    data
}

/// Opens the fifo `gate` for reading, which is what lets the test's
/// [`Gate::wait_started`] return, then reads until the test releases the
/// gate. Returns what the test wrote.
pub fn hold_until_released(gate: OsString) -> String {
    let mut text = String::new();
    File::open(gate)
        .and_then(|mut fifo| fifo.read_to_string(&mut text))
        .expect("read the gate");
    text
}

procpool::register!(
    square,
    add,
    last_digit,
    fail_if_odd,
    panic_here,
    worker_identity,
    item_identity,
    reverse_bytes,
    hold_until_released
);

/// Generates `mod process` and `mod thread` with one `#[test]` per listed
/// generic test, each calling it with its kind and the listed task fns of
/// this module.
///
/// A generic test gets its task functions as arguments: a `fn` item's type
/// has no name, so this is how the test's bounds can say that the kind runs
/// that very function.
macro_rules! on_both_kinds {
    ($($test:ident($($task:ident),*);)+) => {
        mod process {
            $(#[test]
            fn $test() {
                super::$test(procpool::Process, $(crate::common::$task),*);
            })+
        }
        mod thread {
            $(#[test]
            fn $test() {
                super::$test(procpool::Thread, $(crate::common::$task),*);
            })+
        }
    };
}
pub(crate) use on_both_kinds;

pub fn pool<K: Kind>(workers: usize) -> WorkerPool<K> {
    WorkerPool::<K>::with_workers(workers).expect("start the pool")
}

pub fn squares(items: impl IntoIterator<Item = u64>) -> Vec<u64> {
    items.into_iter().map(|x| x * x).collect()
}

pub fn panicked(message: &str) -> Error {
    Error::Panicked {
        message: message.into(),
        location: None,
        backtrace: None,
    }
}

/// Checks that `err` is the panic of [`panic_here`] with `x`, located at
/// its `panic!`, and that its `Display` shows where.
#[track_caller]
pub fn assert_panicked_here(err: &Error, x: u64) {
    let Error::Panicked {
        message, location, ..
    } = err
    else {
        panic!("expected a panic, got {err:?}");
    };
    let prefix = format!("boom {x} at line ");
    let line: u32 = message
        .strip_prefix(&prefix)
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("unexpected message {message:?}"));
    let location = location.as_ref().expect("the panic's location");
    assert_eq!((location.file.as_str(), location.line), (file!(), line));
    let shown = err.to_string();
    let place = format!("{}:{}:{}", location.file, line, location.column);
    assert!(
        shown.contains(&place) && shown.contains(message.as_str()),
        "{shown}"
    );
}

#[track_caller]
pub fn assert_bad_chunksize<T: Debug>(result: Result<T, Error>) {
    match result {
        Err(Error::InvalidArgument { message }) => assert!(message.contains("chunksize")),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

#[track_caller]
pub fn assert_closed<T: Debug>(result: Result<T, Error>) {
    assert_eq!(result.unwrap_err(), Error::Closed);
}

/// A fifo that a [`hold_until_released`] task blocks on. One gate per task.
pub struct Gate {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

/// The test's end of a gate whose task is running. Dropping it (or
/// [`release`](Held::release)) lets the task return.
pub struct Held(File);

impl Gate {
    pub fn new() -> Gate {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let path = dir.path().join("gate");
        let c_path = CString::new(path.as_os_str().as_bytes()).expect("no NUL in a temp path");
        // SAFETY: `c_path` is a valid NUL-terminated string for the call.
        let rc = unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) };
        assert_eq!(rc, 0, "mkfifo: {}", io::Error::last_os_error());
        Gate { _dir: dir, path }
    }

    /// The argument for [`hold_until_released`].
    pub fn arg(&self) -> OsString {
        self.path.clone().into_os_string()
    }

    /// Waits until the task has opened the gate, that is until it runs:
    /// opening a fifo for writing blocks until a reader opens it.
    pub fn wait_started(&self) -> Held {
        let path = self.path.clone();
        let open = move || OpenOptions::new().write(true).open(path);
        Held(within("a task to open its gate", open).expect("open the gate"))
    }
}

impl Held {
    /// Lets the task return `text`.
    pub fn release(mut self, text: &str) {
        self.0
            .write_all(text.as_bytes())
            .expect("write to the gate");
    }
}

/// Runs `f` on a helper thread and returns its value, failing the test if
/// it takes longer than [`HANG`] (a deadlock) instead of hanging the run.
pub fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(HANG) {
        Ok(value) => value,
        Err(RecvTimeoutError::Timeout) => panic!("{what}: no answer within {HANG:?}"),
        Err(RecvTimeoutError::Disconnected) => panic!("{what}: panicked"),
    }
}

/// A callback and an error callback that report what they were called with
/// on the returned channel.
#[allow(
    clippy::type_complexity,
    reason = "the two callback types are unnameable"
)]
pub fn outcome_callbacks<T: Clone + Send + 'static>() -> (
    impl FnOnce(&T) + Send + 'static,
    impl FnOnce(&Error) + Send + 'static,
    mpsc::Receiver<Result<T, Error>>,
) {
    let (tx, rx) = mpsc::channel();
    let on_error = tx.clone();
    // A send fails only once the test stopped listening; nothing to report then.
    let callback = move |value: &T| drop(tx.send(Ok(value.clone())));
    let error_callback = move |e: &Error| drop(on_error.send(Err(e.clone())));
    (callback, error_callback, rx)
}

/// Everything the callbacks of [`outcome_callbacks`] reported, once both
/// are gone (called or dropped).
pub fn all_fired<T: Send + 'static>(
    fired: mpsc::Receiver<Result<T, Error>>,
) -> Vec<Result<T, Error>> {
    within("the callbacks to be dropped", move || {
        fired.iter().collect()
    })
}
