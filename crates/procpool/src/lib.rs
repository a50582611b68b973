//! Python's `multiprocessing.Pool`, in Rust, on worker processes or threads,
//! with a `Manager().Queue()` that workers of either kind can share.
//!
//! ```
//! fn square(x: u64) -> u64 { x * x }
//! procpool::register!(square);
//!
//! fn main() -> Result<(), procpool::Error> {
//!     procpool::init(); // workers branch off here
//!     let pool = procpool::Pool::with_workers(2)?;
//!     assert_eq!(pool.map(square, 0..10, None)?, vec![0, 1, 4, 9, 16, 25, 36, 49, 64, 81]);
//!     Ok(())
//! }
//! ```
//!
//! # From Python
//!
//! | Python | procpool | difference |
//! |---|---|---|
//! | `Pool(processes)` | [`Pool::with_workers`](WorkerPool::with_workers), [`Pool::new`](WorkerPool::new) | workers are this executable re-run; call [`init`] first in `main` |
//! | `ThreadPool(processes)` | [`ThreadPool`] | same methods; closures allowed, no serialization |
//! | `Pool(initializer=f, initargs=a, maxtasksperchild=n)` | [`Pool::builder()`](WorkerPool::builder)`.initializer(f, a).maxtasksperchild(n)` | a failing initializer is an error from `build`, not an endless respawn loop; a retired worker is replaced at once, also while the pool is idle |
//! | `pickle` of a function | [`register!`] | only named `fn` items, as only named functions pickle |
//! | `apply(f, args)` | [`apply`](WorkerPool::apply) | returns `Result`; a panic is `Err(Panicked)` with its message, file and line |
//! | `apply_async(f, args, callback, error_callback)` | [`apply_async`](WorkerPool::apply_async), [`apply_async_with_callbacks`](WorkerPool::apply_async_with_callbacks) | callbacks may call `terminate()` without deadlock |
//! | `AsyncResult.get/wait/ready/successful` | [`AsyncResult`] | `get` consumes; `successful` is `None` when not ready |
//! | `map(f, it, chunksize)` | [`map`](WorkerPool::map) | `chunksize: None` is Python's `ceil(len / (4 * workers))` |
//! | `map_async`, `starmap`, `starmap_async` | [`map_async`](WorkerPool::map_async), [`starmap`](WorkerPool::starmap), [`starmap_async`](WorkerPool::starmap_async) | |
//! | `imap`, `imap_unordered` | [`imap`](WorkerPool::imap), [`imap_unordered`](WorkerPool::imap_unordered) | lazy: a bounded window of chunks ahead, not the whole input; an item that cannot be encoded fails in its place and the rest still run (Python: 1, 2, error, 4) |
//! | `MaybeEncodingError` | [`Error::Codec`], [`Error::TooLarge`] | only that task fails, its worker and the tasks sent with it go on; a value over a frame's 1 GiB names its size and the limit |
//! | pickled `bytes` | `Vec<u8>` | a task's `Vec<u8>` argument or result crosses as one block (bytes inside your own types: `#[serde(with = "serde_bytes")]`) |
//! | `close()`, `join()` | [`close`](WorkerPool::close), [`join`](WorkerPool::join) | `join` while running is `Err(StillRunning)` |
//! | `terminate()` | [`terminate`](WorkerPool::terminate) | pending results resolve to `Err(Terminated)` instead of hanging |
//! | `with Pool() as p:` | drop | drop is close + join, not terminate |
//! | a worker killed by SIGKILL or OOM | [`Error::WorkerLost`] | Python hangs; here its tasks fail, a new worker starts |
//! | `AsyncResult.get(timeout)`: stops waiting, the task runs on | [`Pool::builder()`](WorkerPool::builder)`.task_timeout(limit)` | the task itself stops: `Err(TimedOut)`; a worker process is killed and replaced, a thread's late result is discarded |
//! | `concurrent.futures.Future.cancel()` (queued tasks only) | [`AsyncResult::cancel`] | a queued task never runs; a task running on a worker process is stopped and the worker replaced; `Err(Cancelled)` |
//! | billiard's `max_memory_per_child` | [`Pool::builder()`](WorkerPool::builder)`.max_memory_per_child(bytes)` | a worker process over the cap (RSS) is retired after its task, whose result stands, and replaced |
//! | none: a pool's size is fixed | [`resize`](WorkerPool::resize), also on [`AnyPool`] | grows at once; shrinks as busy workers finish their task in hand; no queued task is lost |
//! | `await asyncio.wrap_future(...)` | `pool.apply_async(f, args)?.await` ([`ResultFuture`]) | [`AsyncResult`] is `IntoFuture`, under any executor; procpool depends on no runtime |
//! | `Pool` or `ThreadPool` picked at run time | [`AnyPool`] with a [`WorkerKind`] | one type for both kinds; the methods of both, for registered functions |
//!
//! # Choosing the kind at run time
//!
//! [`Pool`] and [`ThreadPool`] are two types. A program that takes the kind
//! from a flag holds an [`AnyPool`] instead: one type, built from a
//! [`WorkerKind`], with the same methods for tasks both kinds can run.
//!
//! ```
//! fn square(x: u64) -> u64 { x * x }
//! procpool::register!(square);
//!
//! fn main() -> Result<(), procpool::Error> {
//!     procpool::init();
//!     let kind = if std::env::var_os("USE_THREADS").is_some() {
//!         procpool::WorkerKind::Thread
//!     } else {
//!         procpool::WorkerKind::Process
//!     };
//!     let pool = procpool::AnyPool::with_workers(kind, 2)?;
//!     assert_eq!(pool.apply(square, (12,))?, 144);
//!     Ok(())
//! }
//! ```
//!
//! # Worker processes
//!
//! A process worker is the running executable started again
//! (`/proc/self/exe`) with a socket to the parent. [`init`] recognises it
//! and runs the worker loop instead of `main`. The parent sends the index
//! of a [`register!`]ed function and postcard-encoded arguments; nothing
//! but data crosses. The worker's stdout and stderr are the parent's, and
//! the protocol has its own socket (and, for small frames, a shared-memory
//! mailbox), so printing cannot corrupt it. Workers
//! die with the parent (`PR_SET_PDEATHSIG`) and ignore SIGINT, leaving the
//! decision about Ctrl-C to the parent.
#![deny(missing_docs, missing_debug_implementations)]

mod any_pool;
mod codec;
mod error;
mod frame;
mod future;
mod kind;
mod mailbox;
mod manager;
mod map;
mod pool;
mod process;
mod result;
mod shared;
mod spawn;
mod spin;
mod task;
mod thread;
mod ticket;
mod timer;
mod wire;
mod worker;

pub use any_pool::{AnyPool, WorkerKind};
pub use codec::Cause;
pub use error::{Error, PanicLocation};
pub use future::ResultFuture;
pub use kind::{Kind, Process, Runs, Thread};
pub use manager::{
    GetError, GetTimeoutError, Manager, ManagerError, PutError, PutTimeoutError, Queue,
    TryGetError, TryPutError,
};
pub use map::{IMap, IMapUnordered};
pub use pool::{Builder, Pool, ThreadPool, WorkerPool};
pub use result::AsyncResult;
pub use task::TaskFn;
pub use worker::init;

/// Makes process pools work in a test binary.
///
/// `cargo test` owns `main`, so [`init`] cannot be its first call. This
/// macro registers a constructor that runs before the test harness starts
/// and calls [`init`], so a re-executed test binary becomes a worker instead
/// of running the tests again. Put it once at the top level of each test
/// crate (an integration test file, or the library's `lib.rs` under
/// `#[cfg(test)]`) that creates process pools.
///
/// ```
/// procpool::test_support!();
/// ```
#[macro_export]
macro_rules! test_support {
    () => {
        $crate::__private::ctor::declarative::ctor! {
            #[ctor(unsafe, anonymous, crate_path = $crate::__private::ctor)]
            fn procpool_worker_entry() {
                $crate::init();
            }
        }
    };
}

/// Reads `bytes` as a worker socket would: frame after frame until one
/// fails, each decoded as both directions' messages. Returns how many whole
/// frames were read. For the fuzz target in `fuzz/`; not part of the API.
///
/// ```
/// // Two frames (an `Exit`, then a body that is not a message), then a cut one.
/// assert_eq!(procpool::__fuzz_decode_frame(&[1, 0, 0, 0, 2, 1, 0, 0, 0, 9, 5, 0]), 2);
/// ```
#[doc(hidden)]
pub fn __fuzz_decode_frame(bytes: &[u8]) -> usize {
    let mut reader = bytes;
    let mut buf = Vec::new();
    let mut frames = 0;
    while frame::read_frame(&mut reader, &mut buf).is_ok() {
        let _ = frame::decode::<wire::ToWorker<'_>>(&buf);
        let _ = frame::decode::<wire::FromWorker>(&buf);
        frames += 1;
    }
    frames
}

#[doc(hidden)]
pub mod __private {
    pub use crate::task::{TASKS, TaskEntry, name_of, run_encoded, run_initializer};
    pub use ctor;
    pub use linkme;
}

#[cfg(test)]
test_support!();
