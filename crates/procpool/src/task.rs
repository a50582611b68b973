//! Tasks: what a pool can run, and how a worker process finds a function
//! by name.
//!
//! A thread worker calls the function directly. A process worker is the same
//! executable started again, so it has the same functions at (possibly)
//! different addresses; what crosses the socket is the function's index in
//! a table that [`register!`](crate::register) builds at link time, plus the
//! serialized arguments. No function pointer or code offset ever crosses.

use std::backtrace::{Backtrace, BacktraceStatus};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Once, OnceLock};

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::codec::{self, Cause, Unsent, serialize_cause};
use crate::error::{Error, PanicLocation, panic_message};
use crate::frame::MAX_VALUE;

/// A function a pool can run: any `Fn` of zero to four arguments, called
/// with its arguments as a tuple.
///
/// This mirrors Python's `apply(func, args=())`: `pool.apply(pow, (2, 10))`
/// becomes `pool.apply(pow, (2, 10))` with `fn pow(base: u64, exp: u32) -> u64`.
/// `map` passes each item as a one-tuple `(item,)`, `starmap` passes each
/// item as the whole tuple, exactly as in Python.
///
/// It is implemented for every suitable function and closure; you never
/// implement it yourself. Process pools additionally need the function to
/// be a plain `fn` item named in [`register!`](crate::register).
///
/// ```
/// use procpool::TaskFn;
/// fn add(a: u32, b: u32) -> u32 { a + b }
/// assert_eq!(TaskFn::call(&add, (2, 3)), 5);
/// ```
pub trait TaskFn<Args>: Send + Sync + 'static {
    /// What the function returns.
    type Output;
    /// Calls the function with the arguments unpacked from the tuple.
    fn call(&self, args: Args) -> Self::Output;
}

macro_rules! impl_task_fn {
    ($($arg:ident),*) => {
        impl<Func, Ret, $($arg),*> TaskFn<($($arg,)*)> for Func
        where
            Func: Fn($($arg),*) -> Ret + Send + Sync + 'static,
        {
            type Output = Ret;
            #[allow(non_snake_case, reason = "the type parameter names double as binding names")]
            fn call(&self, ($($arg,)*): ($($arg,)*)) -> Ret {
                self($($arg),*)
            }
        }
    };
}
impl_task_fn!();
impl_task_fn!(A);
impl_task_fn!(A, B);
impl_task_fn!(A, B, C);
impl_task_fn!(A, B, C, D);

/// Why one call failed inside a worker (or on a thread worker). Sent back
/// over the socket and turned into an [`Error`] in the parent.
/// Boxed, so that a call's results (`Result<Output, TaskFailure>`) take
/// no more room per item than the output and a pointer: a failure is rare
/// and large (a panic's message, place and backtrace).
pub(crate) type TaskFailure = Box<Failure>;

/// What a [`TaskFailure`] holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Failure {
    Panicked {
        message: String,
        location: Option<PanicLocation>,
        backtrace: Option<String>,
    },
    Codec {
        message: String,
        cause: String,
    },
    TooLarge {
        size: u64,
        limit: u64,
    },
}

impl From<TaskFailure> for Error {
    fn from(f: TaskFailure) -> Error {
        match *f {
            Failure::Panicked {
                message,
                location,
                backtrace,
            } => Error::Panicked {
                message,
                location,
                backtrace,
            },
            Failure::Codec { message, cause } => Error::Codec {
                message,
                source: Cause::new(cause),
            },
            Failure::TooLarge { size, limit } => Error::TooLarge { size, limit },
        }
    }
}

/// One row of the link-time task table.
#[doc(hidden)]
#[derive(Debug)]
pub struct TaskEntry {
    /// The function's type name, as `std::any::type_name` gives it. It is
    /// only compared within one executable, where it is stable.
    pub name: fn() -> &'static str,
    /// Decodes a `Vec<Args>`, calls the function on each, and encodes the
    /// `Vec<Result<Output, TaskFailure>>`.
    pub run: fn(&[u8]) -> Result<Vec<u8>, String>,
    /// Runs the function once as a worker initializer; `Err` carries why
    /// it could not run or its panic message.
    pub init: fn(&[u8]) -> Result<(), String>,
}

#[doc(hidden)]
#[linkme::distributed_slice]
pub static TASKS: [TaskEntry];

/// The name a function is registered under: its type name. Every `fn` item
/// has its own type, so the name is unique within the program.
#[doc(hidden)]
pub fn name_of<F>(_: &F) -> &'static str {
    std::any::type_name::<F>()
}

/// Runs a registered function over a batch of encoded arguments.
/// Instantiated by [`register!`](crate::register) for each function.
#[doc(hidden)]
pub fn run_encoded<F, Args>(f: &F, payload: &[u8]) -> Result<Vec<u8>, String>
where
    F: TaskFn<Args>,
    Args: DeserializeOwned + 'static,
    F::Output: Serialize + 'static,
{
    let args: Vec<Args> =
        codec::decode_args(payload).map_err(|e| format!("cannot decode arguments: {e}"))?;
    let results: Vec<Result<F::Output, TaskFailure>> =
        args.into_iter().map(|a| call_caught(f, a)).collect();
    match codec::encode_results(&results) {
        Ok(bytes) => Ok(bytes),
        // One bad or huge result should not take its neighbours with it:
        // report the failure on every result that cannot travel.
        Err(_) => Ok(encode_each(results)),
    }
}

/// Runs a registered function once as an initializer, keeping its panic.
#[doc(hidden)]
pub fn run_initializer<F, Args>(f: &F, payload: &[u8]) -> Result<(), String>
where
    F: TaskFn<Args>,
    Args: DeserializeOwned,
{
    let mut args: Vec<Args> =
        postcard::from_bytes(payload).map_err(|e| format!("cannot decode arguments: {e}"))?;
    let args = args.pop().ok_or("no initializer arguments")?;
    call_caught(f, args)
        .map(drop)
        .map_err(|failure| match *failure {
            Failure::Panicked { message, .. } | Failure::Codec { message, .. } => message,
            other => Error::from(Box::new(other)).to_string(),
        })
}

/// Encodes results one by one, putting in place of each that cannot be
/// encoded, or is larger than a frame carries, its failure.
fn encode_each<R: Serialize + 'static>(results: Vec<Result<R, TaskFailure>>) -> Vec<u8> {
    let mut items: Vec<Vec<u8>> = results
        .into_iter()
        .map(|r| {
            let one = vec![r];
            match codec::encode_results(&one) {
                Ok(bytes) => codec::sole_element(bytes),
                Err(Unsent::TooLarge(size)) => failure_element(Failure::TooLarge {
                    size: (size - 1) as u64,
                    limit: MAX_VALUE as u64,
                }),
                Err(Unsent::Codec(e)) => {
                    let cause = serialize_cause(&e, &one);
                    failure_element(Failure::Codec {
                        message: format!("cannot encode the result: {cause}"),
                        cause,
                    })
                }
            }
        })
        .collect();
    let size: usize = items.iter().map(Vec::len).sum();
    if size > MAX_VALUE {
        // Each fits, but not all together: the chunk is the task, and fails.
        let failure = Failure::TooLarge {
            size: size as u64,
            limit: MAX_VALUE as u64,
        };
        items
            .iter_mut()
            .for_each(|item| *item = failure_element(failure.clone()));
    }
    codec::vec_of(&items)
}

/// A failed result, encoded as an element of `Vec<Result<R, TaskFailure>>`
/// (whatever `R`: a `Result`'s `Err` does not depend on it).
fn failure_element(failure: Failure) -> Vec<u8> {
    postcard::to_allocvec(&Err::<(), _>(failure)).expect("a failure always encodes")
}

thread_local! {
    /// Whether this thread is running a task, whose panic the pool reports
    /// as [`Error::Panicked`].
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
    /// What the panic hook saw of this thread's task panic, for
    /// [`call_caught`] to pick up once the unwinding reaches it.
    static SEEN: RefCell<Option<Seen>> = const { RefCell::new(None) };
}

/// Whether the hook keeps task panics off stderr: in a worker process, as
/// Python's workers do not print a task's exception (the parent gets it).
/// Thread workers print them as before, through the program's own hook.
static QUIET_TASK_PANICS: AtomicBool = AtomicBool::new(false);

/// Where a task panicked and, if asked for, the backtrace.
struct Seen {
    location: Option<PanicLocation>,
    backtrace: Option<String>,
}

/// Installs, once per process, a panic hook that records where a task
/// panicked (and the backtrace when `RUST_BACKTRACE` asks for one), then
/// hands every panic to the hook that was there before, except a task's
/// panic in a worker process (`quiet`). The record travels with the task's
/// `Panicked` error; a program that replaces the hook afterwards only
/// loses the location.
pub(crate) fn record_task_panics(quiet: bool) {
    static INSTALLED: Once = Once::new();
    if quiet {
        QUIET_TASK_PANICS.store(true, Ordering::Relaxed);
    }
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_TASK.get() {
                return previous(info);
            }
            let location = info.location().map(|at| PanicLocation {
                file: at.file().to_string(),
                line: at.line(),
                column: at.column(),
            });
            let trace = Backtrace::capture();
            let backtrace =
                (trace.status() == BacktraceStatus::Captured).then(|| trace.to_string());
            SEEN.set(Some(Seen {
                location,
                backtrace,
            }));
            if !QUIET_TASK_PANICS.load(Ordering::Relaxed) {
                previous(info);
            }
        }));
    });
}

/// Calls `f`, turning a panic into a [`TaskFailure`] that keeps its
/// message and, through the hook of [`record_task_panics`], its location.
pub(crate) fn call_caught<F, Args>(f: &F, args: Args) -> Result<F::Output, TaskFailure>
where
    F: TaskFn<Args>,
{
    // A task may run a task of its own inline (a nested thread pool call
    // is not one, but a callback could be): restore the outer state.
    let outer = IN_TASK.replace(true);
    // Clear a record left by a panic the last task caught itself; looking
    // first keeps the common case (no panic) to a read.
    SEEN.with_borrow_mut(|seen| {
        if seen.is_some() {
            *seen = None;
        }
    });
    // AssertUnwindSafe: after a panic the arguments are dropped and the
    // function is only shared immutably, so no broken state is observed.
    let result = catch_unwind(AssertUnwindSafe(|| f.call(args)));
    IN_TASK.set(outer);
    result.map_err(|p| {
        let seen = SEEN.take();
        Box::new(Failure::Panicked {
            message: panic_message(&*p),
            location: seen.as_ref().and_then(|s| s.location.clone()),
            backtrace: seen.and_then(|s| s.backtrace),
        })
    })
}

/// The index of the function named `name` in `TASKS` (the registry `task!` fills), built once.
pub(crate) fn index_of(name: &str) -> Option<u32> {
    static INDEX: OnceLock<HashMap<&'static str, u32>> = OnceLock::new();
    INDEX
        .get_or_init(|| {
            TASKS
                .iter()
                .enumerate()
                .map(|(i, e)| ((e.name)(), i as u32))
                .collect()
        })
        .get(name)
        .copied()
}

/// Looks up the index of `f` in the task table, or says how to register it.
pub(crate) fn registered_index<F>(f: &F) -> Result<u32, Error> {
    let name = name_of(f);
    index_of(name).ok_or_else(|| Error::Unregistered {
        name: name.to_string(),
    })
}

/// Runs the task at `index` (worker side).
pub(crate) fn run_by_index(index: u32, payload: &[u8]) -> Result<Vec<u8>, String> {
    (entry(index)?.run)(payload)
}

/// Runs the task at `index` as an initializer (worker side).
pub(crate) fn init_by_index(index: u32, payload: &[u8]) -> Result<(), String> {
    (entry(index)?.init)(payload)
}

fn entry(index: u32) -> Result<&'static TaskEntry, String> {
    TASKS.get(index as usize).ok_or_else(|| {
        format!("no task at index {index}: the worker is not the parent's executable")
    })
}

/// A fingerprint of the task table, compared at worker start-up so that a
/// worker built from a different executable is refused before it runs
/// anything.
pub(crate) fn table_fingerprint() -> u64 {
    // FNV-1a: stable across processes, unlike std's randomly keyed hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for entry in TASKS.iter() {
        for byte in (entry.name)().bytes().chain(std::iter::once(0)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// Registers plain `fn` items so that process workers can run them.
///
/// Python pickles a function by its module and name, and the worker imports
/// it. procpool does the same with a table built at link time: each
/// registered function gets an entry, the parent sends its index and the
/// worker (the same executable, started again) calls it. Only named `fn`
/// items can be registered; closures cannot, just as lambdas cannot be
/// pickled. Thread pools need no registration.
///
/// Functions of zero to four arguments can be registered. Their arguments
/// and result must implement serde's `Serialize` and `Deserialize`.
///
/// ```
/// fn square(x: u64) -> u64 { x * x }
/// fn add(a: u64, b: u64) -> u64 { a + b }
/// procpool::register!(square, add);
///
/// fn main() -> Result<(), procpool::Error> {
///     procpool::init();
///     let pool = procpool::Pool::with_workers(2)?;
///     assert_eq!(pool.apply(square, (7,))?, 49);
///     assert_eq!(pool.starmap(add, vec![(1, 2), (3, 4)], None)?, vec![3, 7]);
///     Ok(())
/// }
/// ```
#[macro_export]
macro_rules! register {
    ($($task:path),+ $(,)?) => {$(
        const _: () = {
            #[$crate::__private::linkme::distributed_slice($crate::__private::TASKS)]
            #[linkme(crate = $crate::__private::linkme)]
            static ENTRY: $crate::__private::TaskEntry = $crate::__private::TaskEntry {
                name: || $crate::__private::name_of(&$task),
                run: |payload| $crate::__private::run_encoded(&$task, payload),
                init: |payload| $crate::__private::run_initializer(&$task, payload),
            };
        };
    )+};
}

#[cfg(test)]
mod tests {
    use super::*;

    fn triple(x: i32) -> i32 {
        x * 3
    }
    fn fails(x: i32) -> i32 {
        assert!(x < 2, "too big: {x}");
        x
    }
    crate::register!(triple, fails);

    #[test]
    fn registered_functions_run_by_index_with_their_panics_kept() {
        let i = registered_index(&triple).unwrap();
        let out = run_by_index(i, &postcard::to_allocvec(&vec![(1,), (2,)]).unwrap()).unwrap();
        let out: Vec<Result<i32, TaskFailure>> = postcard::from_bytes(&out).unwrap();
        assert_eq!(
            out.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
            vec![3, 6]
        );

        let i = registered_index(&fails).unwrap();
        let out = run_by_index(i, &postcard::to_allocvec(&vec![(1,), (5,)]).unwrap()).unwrap();
        let out: Vec<Result<i32, TaskFailure>> = postcard::from_bytes(&out).unwrap();
        assert!(matches!(&out[0], Ok(1)));
        assert!(
            matches!(out[1].as_ref().map_err(|f| &**f), Err(Failure::Panicked { message, .. }) if message == "too big: 5")
        );
    }

    #[test]
    fn unregistered_functions_and_bad_payloads_are_errors() {
        fn stranger() {}
        assert!(
            matches!(registered_index(&stranger), Err(Error::Unregistered { name }) if name.ends_with("stranger"))
        );
        let i = registered_index(&triple).unwrap();
        assert!(
            run_by_index(i, &[0xff, 0xff])
                .unwrap_err()
                .contains("cannot decode")
        );
        assert!(run_by_index(u32::MAX, &[]).is_err());
    }
}
