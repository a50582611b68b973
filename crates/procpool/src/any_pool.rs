//! A pool whose worker kind is chosen at run time. Owns [`AnyPool`] and
//! [`WorkerKind`]; calls only the public methods of [`WorkerPool`](crate::WorkerPool).
//!
//! `WorkerPool<K>` fixes the kind in the type, which suits code that always
//! wants one kind. A program that takes the kind from a flag would
//! otherwise hold an enum of both pools and match on it with identical arms
//! at every call. `AnyPool` is that enum, hidden the way crossbeam hides its
//! channel flavors behind one `Sender`, with the dispatch written once.

use std::fmt;

use crate::error::Error;
use crate::kind::{Process, Runs, Thread};
use crate::map::{IMap, IMapUnordered};
use crate::pool::{Pool, ThreadPool};
use crate::result::AsyncResult;
use crate::task::TaskFn;

/// Which kind of worker an [`AnyPool`] runs: [`Pool`]'s processes or
/// [`ThreadPool`]'s threads.
///
/// ```
/// let kind = procpool::WorkerKind::Thread;
/// assert_eq!(procpool::AnyPool::with_workers(kind, 1)?.kind(), kind);
/// # Ok::<(), procpool::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerKind {
    /// Worker processes: this executable started again (see [`Pool`]).
    Process,
    /// Worker threads in this process (see [`ThreadPool`]).
    Thread,
}

/// A pool of either kind of worker, chosen at run time.
///
/// It has the methods of [`WorkerPool`](crate::WorkerPool) for every task
/// that both kinds can run: a [`register!`](crate::register)ed function
/// whose arguments and result serialize. (A closure compiles too, but a
/// process pool refuses it with [`Error::Unregistered`].) Dropping it is
/// `close()` then `join()`, as for `WorkerPool`.
///
/// ```
/// fn square(x: u64) -> u64 { x * x }
/// procpool::register!(square);
///
/// fn main() -> Result<(), procpool::Error> {
///     procpool::init();
///     for kind in [procpool::WorkerKind::Process, procpool::WorkerKind::Thread] {
///         let pool = procpool::AnyPool::with_workers(kind, 2)?;
///         assert_eq!(pool.map(square, 0..4, None)?, vec![0, 1, 4, 9]);
///     }
///     Ok(())
/// }
/// ```
pub struct AnyPool {
    flavor: Flavor,
}

/// The pool inside an [`AnyPool`].
enum Flavor {
    Process(Pool),
    Thread(ThreadPool),
}

/// Runs `$body` with `$pool` bound to the pool inside `$flavor`, whichever
/// kind it is. The body is written once and compiled once per kind, so each
/// arm calls the kind's own (monomorphic) method.
macro_rules! dispatch {
    ($flavor:expr, $pool:ident => $body:expr) => {
        match $flavor {
            Flavor::Process($pool) => $body,
            Flavor::Thread($pool) => $body,
        }
    };
}

impl fmt::Debug for AnyPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        dispatch!(&self.flavor, pool => fmt::Debug::fmt(pool, f))
    }
}

impl From<Pool> for AnyPool {
    /// Wraps a process pool, for instance one built with
    /// [`Pool::builder`](crate::WorkerPool::builder) and an initializer.
    ///
    /// ```
    /// procpool::init();
    /// let pool = procpool::AnyPool::from(procpool::Pool::builder().workers(1).maxtasksperchild(5).build()?);
    /// assert_eq!(pool.kind(), procpool::WorkerKind::Process);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    fn from(pool: Pool) -> AnyPool {
        AnyPool {
            flavor: Flavor::Process(pool),
        }
    }
}

impl From<ThreadPool> for AnyPool {
    /// Wraps a thread pool.
    ///
    /// ```
    /// let pool = procpool::AnyPool::from(procpool::ThreadPool::with_workers(3)?);
    /// assert_eq!((pool.kind(), pool.workers()), (procpool::WorkerKind::Thread, 3));
    /// # Ok::<(), procpool::Error>(())
    /// ```
    fn from(pool: ThreadPool) -> AnyPool {
        AnyPool {
            flavor: Flavor::Thread(pool),
        }
    }
}

impl AnyPool {
    /// A pool of `kind` with one worker per available CPU (Python's `Pool()`).
    ///
    /// ```
    /// let pool = procpool::AnyPool::new(procpool::WorkerKind::Thread)?;
    /// assert!(pool.workers() >= 1);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn new(kind: WorkerKind) -> Result<AnyPool, Error> {
        Ok(match kind {
            WorkerKind::Process => Pool::new()?.into(),
            WorkerKind::Thread => ThreadPool::new()?.into(),
        })
    }

    /// A pool of `kind` with `n` workers (Python's `Pool(n)`).
    ///
    /// ```
    /// procpool::init();
    /// let pool = procpool::AnyPool::with_workers(procpool::WorkerKind::Process, 2)?;
    /// assert_eq!(pool.workers(), 2);
    /// assert_eq!(pool.worker_pids().len(), 2);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn with_workers(kind: WorkerKind, n: usize) -> Result<AnyPool, Error> {
        Ok(match kind {
            WorkerKind::Process => Pool::with_workers(n)?.into(),
            WorkerKind::Thread => ThreadPool::with_workers(n)?.into(),
        })
    }

    /// The kind of worker this pool runs.
    ///
    /// ```
    /// let pool = procpool::AnyPool::with_workers(procpool::WorkerKind::Thread, 1)?;
    /// assert_eq!(pool.kind(), procpool::WorkerKind::Thread);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn kind(&self) -> WorkerKind {
        match self.flavor {
            Flavor::Process(_) => WorkerKind::Process,
            Flavor::Thread(_) => WorkerKind::Thread,
        }
    }

    /// The number of workers.
    ///
    /// ```
    /// assert_eq!(procpool::AnyPool::with_workers(procpool::WorkerKind::Thread, 4)?.workers(), 4);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn workers(&self) -> usize {
        dispatch!(&self.flavor, pool => pool.workers())
    }

    /// Changes the number of workers while the pool runs; see
    /// [`WorkerPool::resize`](crate::WorkerPool::resize).
    ///
    /// ```
    /// procpool::init();
    /// let pool = procpool::AnyPool::with_workers(procpool::WorkerKind::Process, 1)?;
    /// pool.resize(2)?;
    /// assert_eq!((pool.workers(), pool.worker_pids().len()), (2, 2));
    /// assert!(pool.resize(0).is_err());
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn resize(&self, workers: usize) -> Result<(), Error> {
        dispatch!(&self.flavor, pool => pool.resize(workers))
    }

    /// The pids of the live worker processes, in slot order (see
    /// [`Pool::worker_pids`](crate::WorkerPool::worker_pids)); empty for a
    /// thread pool, whose workers are threads of this process.
    ///
    /// ```
    /// let pool = procpool::AnyPool::with_workers(procpool::WorkerKind::Thread, 2)?;
    /// assert!(pool.worker_pids().is_empty());
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn worker_pids(&self) -> Vec<u32> {
        match &self.flavor {
            Flavor::Process(pool) => pool.worker_pids(),
            Flavor::Thread(_) => Vec::new(),
        }
    }

    /// Runs `f(args...)` on a worker and waits for the result (Python's
    /// `apply`); see [`WorkerPool::apply`](crate::WorkerPool::apply).
    ///
    /// ```
    /// fn add(a: u32, b: u32) -> u32 { a + b }
    /// procpool::register!(add);
    /// fn main() -> Result<(), procpool::Error> {
    ///     procpool::init();
    ///     let pool = procpool::AnyPool::with_workers(procpool::WorkerKind::Process, 1)?;
    ///     assert_eq!(pool.apply(add, (40, 2))?, 42);
    ///     Ok(())
    /// }
    /// ```
    pub fn apply<F, Args>(&self, f: F, args: Args) -> Result<F::Output, Error>
    where
        F: TaskFn<Args>,
        Process: Runs<F, Args>,
        Thread: Runs<F, Args>,
    {
        dispatch!(&self.flavor, pool => pool.apply(f, args))
    }

    /// Queues `f(args...)` and returns at once (Python's `apply_async`);
    /// see [`WorkerPool::apply_async`](crate::WorkerPool::apply_async).
    ///
    /// ```
    /// fn double(x: u64) -> u64 { 2 * x }
    /// procpool::register!(double);
    /// fn main() -> Result<(), procpool::Error> {
    ///     procpool::init();
    ///     let pool = procpool::AnyPool::with_workers(procpool::WorkerKind::Thread, 2)?;
    ///     let pending: Vec<_> = (0..3).map(|i| pool.apply_async(double, (i,))).collect::<Result<_, _>>()?;
    ///     let doubled: Vec<u64> = pending.into_iter().map(|r| r.get()).collect::<Result<_, _>>()?;
    ///     assert_eq!(doubled, vec![0, 2, 4]);
    ///     Ok(())
    /// }
    /// ```
    pub fn apply_async<F, Args>(&self, f: F, args: Args) -> Result<AsyncResult<F::Output>, Error>
    where
        F: TaskFn<Args>,
        Process: Runs<F, Args>,
        Thread: Runs<F, Args>,
    {
        dispatch!(&self.flavor, pool => pool.apply_async(f, args))
    }

    /// Applies `f` to every item and returns the results in order (Python's
    /// `map`); see [`WorkerPool::map`](crate::WorkerPool::map).
    ///
    /// ```
    /// fn negate(x: i64) -> i64 { -x }
    /// procpool::register!(negate);
    /// fn main() -> Result<(), procpool::Error> {
    ///     procpool::init();
    ///     let pool = procpool::AnyPool::with_workers(procpool::WorkerKind::Process, 2)?;
    ///     assert_eq!(pool.map(negate, 1..4, Some(2))?, vec![-1, -2, -3]);
    ///     Ok(())
    /// }
    /// ```
    pub fn map<F, A>(
        &self,
        f: F,
        iterable: impl IntoIterator<Item = A>,
        chunksize: Option<usize>,
    ) -> Result<Vec<F::Output>, Error>
    where
        F: TaskFn<(A,)>,
        F::Output: Send + 'static,
        Process: Runs<F, (A,)>,
        Thread: Runs<F, (A,)>,
    {
        dispatch!(&self.flavor, pool => pool.map(f, iterable, chunksize))
    }

    /// [`map`](Self::map) without waiting (Python's `map_async`).
    ///
    /// ```
    /// fn len(s: String) -> usize { s.len() }
    /// procpool::register!(len);
    /// fn main() -> Result<(), procpool::Error> {
    ///     procpool::init();
    ///     let pool = procpool::AnyPool::with_workers(procpool::WorkerKind::Thread, 2)?;
    ///     let pending = pool.map_async(len, vec!["ab".to_string(), "c".into()], None)?;
    ///     assert_eq!(pending.get()?, vec![2, 1]);
    ///     Ok(())
    /// }
    /// ```
    pub fn map_async<F, A>(
        &self,
        f: F,
        iterable: impl IntoIterator<Item = A>,
        chunksize: Option<usize>,
    ) -> Result<AsyncResult<Vec<F::Output>>, Error>
    where
        F: TaskFn<(A,)>,
        F::Output: Send + 'static,
        Process: Runs<F, (A,)>,
        Thread: Runs<F, (A,)>,
    {
        dispatch!(&self.flavor, pool => pool.map_async(f, iterable, chunksize))
    }

    /// Like [`map`](Self::map), each item a tuple of arguments (Python's
    /// `starmap`).
    ///
    /// ```
    /// fn add(a: u8, b: u8) -> u8 { a + b }
    /// procpool::register!(add);
    /// fn main() -> Result<(), procpool::Error> {
    ///     procpool::init();
    ///     let pool = procpool::AnyPool::with_workers(procpool::WorkerKind::Process, 1)?;
    ///     assert_eq!(pool.starmap(add, vec![(1, 2), (3, 4)], None)?, vec![3, 7]);
    ///     Ok(())
    /// }
    /// ```
    pub fn starmap<F, Args>(
        &self,
        f: F,
        iterable: impl IntoIterator<Item = Args>,
        chunksize: Option<usize>,
    ) -> Result<Vec<F::Output>, Error>
    where
        F: TaskFn<Args>,
        F::Output: Send + 'static,
        Process: Runs<F, Args>,
        Thread: Runs<F, Args>,
    {
        dispatch!(&self.flavor, pool => pool.starmap(f, iterable, chunksize))
    }

    /// A lazy, ordered map (Python's `imap`); see
    /// [`WorkerPool::imap`](crate::WorkerPool::imap).
    ///
    /// ```
    /// fn tenfold(x: u64) -> u64 { x * 10 }
    /// procpool::register!(tenfold);
    /// fn main() -> Result<(), procpool::Error> {
    ///     procpool::init();
    ///     let pool = procpool::AnyPool::with_workers(procpool::WorkerKind::Process, 2)?;
    ///     let firsts: Vec<u64> = pool.imap(tenfold, 0.., None)?.take(3).collect::<Result<_, _>>()?;
    ///     assert_eq!(firsts, vec![0, 10, 20]);
    ///     Ok(())
    /// }
    /// ```
    pub fn imap<'p, F, A>(
        &'p self,
        f: F,
        iterable: impl IntoIterator<Item = A, IntoIter: 'p>,
        chunksize: Option<usize>,
    ) -> Result<IMap<'p, F::Output>, Error>
    where
        F: TaskFn<(A,)>,
        F::Output: Send + 'static,
        Process: Runs<F, (A,)>,
        Thread: Runs<F, (A,)>,
    {
        dispatch!(&self.flavor, pool => pool.imap(f, iterable, chunksize))
    }

    /// Like [`imap`](Self::imap), yielding results as they complete
    /// (Python's `imap_unordered`).
    ///
    /// ```
    /// fn inc(x: u32) -> u32 { x + 1 }
    /// procpool::register!(inc);
    /// fn main() -> Result<(), procpool::Error> {
    ///     procpool::init();
    ///     let pool = procpool::AnyPool::with_workers(procpool::WorkerKind::Thread, 2)?;
    ///     let mut got: Vec<u32> = pool.imap_unordered(inc, 0..10, Some(3))?.collect::<Result<_, _>>()?;
    ///     got.sort();
    ///     assert_eq!(got, (1..=10).collect::<Vec<_>>());
    ///     Ok(())
    /// }
    /// ```
    pub fn imap_unordered<'p, F, A>(
        &'p self,
        f: F,
        iterable: impl IntoIterator<Item = A, IntoIter: 'p>,
        chunksize: Option<usize>,
    ) -> Result<IMapUnordered<'p, F::Output>, Error>
    where
        F: TaskFn<(A,)>,
        F::Output: Send + 'static,
        Process: Runs<F, (A,)>,
        Thread: Runs<F, (A,)>,
    {
        dispatch!(&self.flavor, pool => pool.imap_unordered(f, iterable, chunksize))
    }

    /// Stops accepting tasks; queued tasks still run (Python's `close`).
    ///
    /// ```
    /// let pool = procpool::AnyPool::with_workers(procpool::WorkerKind::Thread, 1)?;
    /// pool.close();
    /// assert_eq!(pool.workers(), 1);
    /// assert_eq!(pool.apply_async(|| 1, ()).unwrap_err(), procpool::Error::Closed);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn close(&self) {
        dispatch!(&self.flavor, pool => pool.close())
    }

    /// Stops the workers now (Python's `terminate`); see
    /// [`WorkerPool::terminate`](crate::WorkerPool::terminate).
    ///
    /// ```
    /// let mut pool = procpool::AnyPool::with_workers(procpool::WorkerKind::Thread, 1)?;
    /// pool.terminate();
    /// assert_eq!(pool.apply_async(|| 1, ()).unwrap_err(), procpool::Error::Closed);
    /// pool.join()?;
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn terminate(&self) {
        dispatch!(&self.flavor, pool => pool.terminate())
    }

    /// Waits for every worker to exit (Python's `join`); call
    /// [`close`](Self::close) or [`terminate`](Self::terminate) first.
    ///
    /// ```
    /// procpool::init();
    /// let mut pool = procpool::AnyPool::with_workers(procpool::WorkerKind::Process, 1)?;
    /// assert_eq!(pool.join(), Err(procpool::Error::StillRunning));
    /// pool.close();
    /// pool.join()?;
    /// assert!(pool.worker_pids().is_empty());
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn join(&mut self) -> Result<(), Error> {
        dispatch!(&mut self.flavor, pool => pool.join())
    }
}
