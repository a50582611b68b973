//! The pool handle: Python's `Pool` methods, shared by both worker kinds.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::kind::{Kind, Process, Runs, Thread, Threads, WorkerSpec, is_owned_by};
use crate::map::{self, IMap, IMapUnordered};
use crate::result::{AsyncResult, pair};
use crate::shared::{RunState, Shared};
use crate::task::TaskFn;
use crate::timer::Timer;

/// A pool of worker processes: Python's `multiprocessing.Pool`.
///
/// Workers are this executable started again; call [`init`](crate::init)
/// first thing in `main` and register task functions with
/// [`register!`](crate::register).
pub type Pool = WorkerPool<Process>;

/// A pool of worker threads: Python's `multiprocessing.pool.ThreadPool`.
/// Same methods as [`Pool`]; any closure can be a task.
pub type ThreadPool = WorkerPool<Thread>;

/// The pool, generic over the [`Kind`] of worker. Use it through the
/// [`Pool`] and [`ThreadPool`] aliases.
///
/// Dropping the pool means `close()` then `join()`: queued tasks still run
/// and their results are delivered. Python's `with Pool() as p:` calls
/// `terminate()` on exit instead, which silently cancels pending work; in
/// Rust a drop happens on every early return and `?`, so cancelling there
/// would lose work the caller never meant to give up. Call
/// [`terminate`](Self::terminate) to cancel explicitly.
pub struct WorkerPool<K: Kind> {
    shared: Arc<Shared<K::Job>>,
    threads: Threads,
    spec: Arc<WorkerSpec<K>>,
    _kind: PhantomData<K>,
}

impl<K: Kind> fmt::Debug for WorkerPool<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock().state;
        f.debug_struct("WorkerPool")
            .field("kind", &K::NAME)
            .field("workers", &self.workers())
            .field("state", &state)
            .finish()
    }
}

/// Configures a pool before it starts: Python's `Pool(processes,
/// initializer, initargs, maxtasksperchild)`.
pub struct Builder<K: Kind> {
    workers: Option<usize>,
    maxtasksperchild: Option<usize>,
    task_timeout: Option<Duration>,
    max_memory: Option<u64>,
    initializer: Result<Option<K::Init>, Error>,
}

impl<K: Kind> fmt::Debug for Builder<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("kind", &K::NAME)
            .field("workers", &self.workers)
            .field("maxtasksperchild", &self.maxtasksperchild)
            .field("task_timeout", &self.task_timeout)
            .field("max_memory", &self.max_memory)
            .finish_non_exhaustive()
    }
}

impl<K: Kind> Builder<K> {
    /// The number of workers (Python's `processes`). Defaults to the
    /// available parallelism.
    ///
    /// ```
    /// let pool = procpool::ThreadPool::builder().workers(3).build()?;
    /// assert_eq!(pool.workers(), 3);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n);
        self
    }

    /// Replace each worker after it has run `n` tasks (Python's
    /// `maxtasksperchild`), to bound leaks in long-running task code. As in
    /// Python, a `map` chunk counts as one task, whatever its size.
    ///
    /// ```
    /// let pool = procpool::ThreadPool::builder().workers(1).maxtasksperchild(2).build()?;
    /// let ids: Vec<_> = (0..4).map(|_| pool.apply(|| std::thread::current().id(), ())).collect::<Result<_, _>>()?;
    /// assert_ne!(ids[0], ids[3]);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn maxtasksperchild(mut self, n: usize) -> Self {
        self.maxtasksperchild = Some(n);
        self
    }

    /// Gives each task at most `limit` to run, counted from when a worker
    /// starts it (Python's `Pool` has no such limit). A task still running
    /// then resolves to [`Error::TimedOut`]:
    ///
    /// - on a worker process, the worker is killed (SIGKILL) and replaced,
    ///   and the result resolves once the new worker is in place;
    /// - on a thread, which cannot be stopped, the result resolves on time
    ///   and the thread's late result is discarded; the thread is busy
    ///   until its task returns, so the pool has one worker fewer until
    ///   then. Use a process pool for tasks that must really stop.
    ///
    /// A `map` chunk counts as one task, as for `maxtasksperchild`. With a
    /// limit, a process worker is sent one task at a time, so that each
    /// task's time is its own.
    ///
    /// ```
    /// use std::sync::{Arc, Barrier};
    /// use std::time::Duration;
    /// let limit = Duration::from_millis(50);
    /// let pool = procpool::ThreadPool::builder().workers(1).task_timeout(limit).build()?;
    /// let gate = Arc::new(Barrier::new(2));
    /// let task_gate = gate.clone();
    /// let stuck = pool.apply_async(move || { task_gate.wait(); "late" }, ())?;
    /// assert_eq!(stuck.get(), Err(procpool::Error::TimedOut { limit, pid: None }));
    /// gate.wait(); // the thread returns; its late result is dropped
    /// assert_eq!(pool.apply(|| 7, ())?, 7);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn task_timeout(mut self, limit: Duration) -> Self {
        self.task_timeout = Some(limit);
        self
    }

    /// Starts the workers. For process pools this waits until every worker
    /// has started (and run its initializer), so a worker that cannot start
    /// is reported here rather than on the first task.
    ///
    /// ```
    /// let pool = procpool::ThreadPool::builder().workers(2).build()?;
    /// assert_eq!(pool.apply(|a: u8, b: u8| a * b, (6, 7))?, 42);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn build(self) -> Result<WorkerPool<K>, Error> {
        let workers = match self.workers {
            Some(0) => {
                return Err(Error::InvalidArgument {
                    message: "a pool needs at least one worker".into(),
                });
            }
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, usize::from),
        };
        if self.maxtasksperchild == Some(0) {
            return Err(Error::InvalidArgument {
                message: "maxtasksperchild must be at least 1".into(),
            });
        }
        if self.max_memory == Some(0) {
            return Err(Error::InvalidArgument {
                message: "max_memory_per_child must be more than zero bytes".into(),
            });
        }
        if self.task_timeout == Some(Duration::ZERO) {
            return Err(Error::InvalidArgument {
                message: "task_timeout must be longer than zero".into(),
            });
        }
        let shared = Arc::new(Shared::new(workers));
        let pool_id = Arc::as_ptr(&shared) as usize;
        let timer = self.task_timeout.map(|limit| Timer::start(limit, pool_id));
        let spec = Arc::new(WorkerSpec {
            maxtasksperchild: self.maxtasksperchild,
            timer: timer.transpose()?,
            max_memory: self.max_memory,
            initializer: self.initializer?,
            pool_id,
            lanes: K::Lanes::default(),
        });
        let threads = K::start(&shared, spec.clone())?;
        Ok(WorkerPool {
            shared,
            threads,
            spec,
            _kind: PhantomData,
        })
    }

    pub(crate) fn set_initializer(mut self, init: Result<K::Init, Error>) -> Self {
        self.initializer = init.map(Some);
        self
    }

    pub(crate) fn set_max_memory(mut self, bytes: u64) -> Self {
        self.max_memory = Some(bytes);
        self
    }
}

impl<K: Kind> WorkerPool<K> {
    /// A pool with one worker per available CPU (Python's `Pool()`).
    ///
    /// ```
    /// let pool = procpool::ThreadPool::new()?;
    /// assert!(pool.workers() >= 1);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn new() -> Result<Self, Error> {
        Self::builder().build()
    }

    /// A pool with `n` workers (Python's `Pool(n)`).
    ///
    /// ```
    /// let pool = procpool::ThreadPool::with_workers(2)?;
    /// assert_eq!(pool.workers(), 2);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn with_workers(n: usize) -> Result<Self, Error> {
        Self::builder().workers(n).build()
    }

    /// A builder for the worker count, an initializer and `maxtasksperchild`.
    ///
    /// ```
    /// let pool = procpool::ThreadPool::builder().workers(1).build()?;
    /// assert_eq!(pool.workers(), 1);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn builder() -> Builder<K> {
        Builder {
            workers: None,
            maxtasksperchild: None,
            task_timeout: None,
            max_memory: None,
            initializer: Ok(None),
        }
    }

    /// The number of workers: as built, then as last set by
    /// [`resize`](Self::resize).
    ///
    /// ```
    /// assert_eq!(procpool::ThreadPool::with_workers(4)?.workers(), 4);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn workers(&self) -> usize {
        self.shared.target()
    }

    /// Changes the number of workers while the pool runs; Python's pools
    /// cannot. Growing starts the new workers at once (a process pool
    /// waits until they are ready, as [`build`](Builder::build) does).
    /// Shrinking lets each surplus worker finish the task in hand and leave
    /// before it takes another; an idle one leaves at once. No queued task
    /// is lost, and [`workers`](Self::workers) gives the new number at once.
    ///
    /// Zero workers is [`Error::InvalidArgument`], and a closed or
    /// terminated pool gives [`Error::Closed`]. If a new worker cannot
    /// start, its error is returned and `workers()` counts only those that
    /// did.
    ///
    /// ```
    /// use std::sync::{Arc, Barrier};
    /// let pool = procpool::ThreadPool::with_workers(1)?;
    /// pool.resize(3)?;
    /// assert_eq!(pool.workers(), 3);
    /// // Three tasks that each wait for the other two: they finish only
    /// // if three workers run them at once.
    /// let all_three = Arc::new(Barrier::new(3));
    /// let tasks: Vec<_> = (0..3)
    ///     .map(|i| {
    ///         let all_three = all_three.clone();
    ///         pool.apply_async(move || { all_three.wait(); i }, ())
    ///     })
    ///     .collect::<Result<_, _>>()?;
    /// let done: Vec<i32> = tasks.into_iter().map(|t| t.get()).collect::<Result<_, _>>()?;
    /// assert_eq!(done, vec![0, 1, 2]);
    /// pool.resize(1)?;
    /// assert_eq!(pool.workers(), 1);
    /// assert!(matches!(pool.resize(0), Err(procpool::Error::InvalidArgument { .. })));
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn resize(&self, workers: usize) -> Result<(), Error> {
        if workers == 0 {
            return Err(Error::InvalidArgument {
                message: "a pool needs at least one worker".into(),
            });
        }
        match self.shared.resize(workers)? {
            0 => Ok(()),
            grow => K::grow(&self.shared, &self.spec, &self.threads, grow),
        }
    }

    /// Runs `f(args...)` on a worker and waits for the result (Python's
    /// `apply`). Arguments are a tuple, as in Python: `(x,)` for one.
    ///
    /// ```
    /// let pool = procpool::ThreadPool::with_workers(2)?;
    /// assert_eq!(pool.apply(|x: u64, y: u32| x.pow(y), (2, 10))?, 1024);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn apply<F, Args>(&self, f: F, args: Args) -> Result<F::Output, Error>
    where
        F: TaskFn<Args>,
        K: Runs<F, Args>,
    {
        let (resolver, result) = pair();
        K::submit_waited(&self.shared, &self.spec, K::single_job(f, args, resolver)?)?;
        result.get()
    }

    /// Queues `f(args...)` and returns at once (Python's `apply_async`).
    ///
    /// ```
    /// let pool = procpool::ThreadPool::with_workers(2)?;
    /// let results: Vec<_> = (0..10u64).map(|i| pool.apply_async(|x: u64| x * x, (i,))).collect::<Result<_, _>>()?;
    /// let squares: Vec<u64> = results.into_iter().map(|r| r.get()).collect::<Result<_, _>>()?;
    /// assert_eq!(squares[9], 81);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn apply_async<F, Args>(&self, f: F, args: Args) -> Result<AsyncResult<F::Output>, Error>
    where
        F: TaskFn<Args>,
        K: Runs<F, Args>,
    {
        let (resolver, result) = pair();
        self.shared
            .push_all([K::single_job(f, args, resolver)?], false)?;
        Ok(result)
    }

    /// [`apply_async`](Self::apply_async) with Python's `callback` and
    /// `error_callback`. They run in this process, on a pool thread, before
    /// the result becomes ready. They may call back into the pool, even
    /// [`terminate`](Self::terminate), without deadlocking (cpython#87129),
    /// but should be quick: they hold up the thread that delivers results.
    ///
    /// ```
    /// use std::sync::mpsc::channel;
    /// let pool = procpool::ThreadPool::with_workers(2)?;
    /// let (tx, rx) = channel();
    /// let r = pool.apply_async_with_callbacks(|x: i32| x + 1, (1,), move |v: &i32| tx.send(*v).unwrap(), |_| {})?;
    /// assert_eq!(r.get()?, 2);
    /// assert_eq!(rx.recv().unwrap(), 2);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn apply_async_with_callbacks<F, Args>(
        &self,
        f: F,
        args: Args,
        callback: impl FnOnce(&F::Output) + Send + 'static,
        error_callback: impl FnOnce(&Error) + Send + 'static,
    ) -> Result<AsyncResult<F::Output>, Error>
    where
        F: TaskFn<Args>,
        K: Runs<F, Args>,
    {
        let (resolver, result) = pair();
        let resolver =
            resolver.with_callbacks(Some(Box::new(callback)), Some(Box::new(error_callback)));
        self.shared
            .push_all([K::single_job(f, args, resolver)?], false)?;
        Ok(result)
    }

    /// Applies `f` to every item and returns the results in order (Python's
    /// `map`). `chunksize: None` uses Python's rule,
    /// `ceil(len / (4 * workers))`. The first failing item's error is
    /// returned, as Python raises the first exception.
    ///
    /// ```
    /// let pool = procpool::ThreadPool::with_workers(2)?;
    /// assert_eq!(pool.map(|x: i32| x * 2, 0..5, None)?, vec![0, 2, 4, 6, 8]);
    /// assert_eq!(pool.map(|x: i32| x * 2, 0..5, Some(2))?, vec![0, 2, 4, 6, 8]);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn map<F, A>(
        &self,
        f: F,
        iterable: impl IntoIterator<Item = A>,
        chunksize: Option<usize>,
    ) -> Result<Vec<F::Output>, Error>
    where
        F: TaskFn<(A,)>,
        K: Runs<F, (A,)>,
        F::Output: Send + 'static,
    {
        self.map_async(f, iterable, chunksize)?.get()
    }

    /// [`map`](Self::map) without waiting (Python's `map_async`).
    ///
    /// ```
    /// let pool = procpool::ThreadPool::with_workers(2)?;
    /// let r = pool.map_async(|s: String| s.len(), vec!["a".to_string(), "bcd".into()], None)?;
    /// assert_eq!(r.get()?, vec![1, 3]);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn map_async<F, A>(
        &self,
        f: F,
        iterable: impl IntoIterator<Item = A>,
        chunksize: Option<usize>,
    ) -> Result<AsyncResult<Vec<F::Output>>, Error>
    where
        F: TaskFn<(A,)>,
        K: Runs<F, (A,)>,
        F::Output: Send + 'static,
    {
        self.starmap_async(f, iterable.into_iter().map(|a| (a,)), chunksize)
    }

    /// Like [`map`](Self::map), but each item is a tuple of arguments
    /// (Python's `starmap`).
    ///
    /// ```
    /// let pool = procpool::ThreadPool::with_workers(2)?;
    /// assert_eq!(pool.starmap(|a: u32, b: u32| a + b, vec![(1, 2), (3, 4)], None)?, vec![3, 7]);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn starmap<F, Args>(
        &self,
        f: F,
        iterable: impl IntoIterator<Item = Args>,
        chunksize: Option<usize>,
    ) -> Result<Vec<F::Output>, Error>
    where
        F: TaskFn<Args>,
        K: Runs<F, Args>,
        F::Output: Send + 'static,
    {
        self.starmap_async(f, iterable, chunksize)?.get()
    }

    /// [`starmap`](Self::starmap) without waiting (Python's `starmap_async`).
    ///
    /// ```
    /// let pool = procpool::ThreadPool::with_workers(2)?;
    /// let r = pool.starmap_async(|a: u8, b: u8| a.max(b), vec![(1, 9), (7, 2)], Some(1))?;
    /// assert_eq!(r.get()?, vec![9, 7]);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn starmap_async<F, Args>(
        &self,
        f: F,
        iterable: impl IntoIterator<Item = Args>,
        chunksize: Option<usize>,
    ) -> Result<AsyncResult<Vec<F::Output>>, Error>
    where
        F: TaskFn<Args>,
        K: Runs<F, Args>,
        F::Output: Send + 'static,
    {
        let (resolver, result) = pair();
        self.map_with_resolver(
            f,
            iterable.into_iter().collect(),
            chunksize,
            resolver,
            result,
        )
    }

    /// [`map_async`](Self::map_async) with Python's `callback` (called with
    /// the whole result list) and `error_callback`.
    ///
    /// ```
    /// use std::sync::mpsc::channel;
    /// let pool = procpool::ThreadPool::with_workers(2)?;
    /// let (tx, rx) = channel();
    /// let r = pool.map_async_with_callbacks(|x: u8| x + 1, vec![1, 2], None, move |v: &Vec<u8>| tx.send(v.len()).unwrap(), |_| {})?;
    /// assert_eq!(r.get()?, vec![2, 3]);
    /// assert_eq!(rx.recv().unwrap(), 2);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn map_async_with_callbacks<F, A>(
        &self,
        f: F,
        iterable: impl IntoIterator<Item = A>,
        chunksize: Option<usize>,
        callback: impl FnOnce(&Vec<F::Output>) + Send + 'static,
        error_callback: impl FnOnce(&Error) + Send + 'static,
    ) -> Result<AsyncResult<Vec<F::Output>>, Error>
    where
        F: TaskFn<(A,)>,
        K: Runs<F, (A,)>,
        F::Output: Send + 'static,
    {
        let (resolver, result) = pair();
        let resolver =
            resolver.with_callbacks(Some(Box::new(callback)), Some(Box::new(error_callback)));
        let items = iterable.into_iter().map(|a| (a,)).collect();
        self.map_with_resolver(f, items, chunksize, resolver, result)
    }

    fn map_with_resolver<F, Args>(
        &self,
        f: F,
        items: Vec<Args>,
        chunksize: Option<usize>,
        resolver: crate::result::Resolver<Vec<F::Output>>,
        result: AsyncResult<Vec<F::Output>>,
    ) -> Result<AsyncResult<Vec<F::Output>>, Error>
    where
        F: TaskFn<Args>,
        K: Runs<F, Args>,
        F::Output: Send + 'static,
    {
        let size = map::checked_chunksize(
            chunksize,
            map::default_chunksize(items.len(), self.workers()),
        )?;
        let chunks = map::into_chunks(items, size);
        let lens: Vec<usize> = chunks.iter().map(Vec::len).collect();
        // Check the state before building jobs: a map on a closed pool is
        // an error, not a result that resolves to Terminated.
        if self.shared.lock().state != RunState::Running {
            return Err(Error::Closed);
        }
        let f = Arc::new(f);
        let dones = map::gather(&lens, resolver);
        let result = result.with_tickets(dones.iter().map(|d| d.ticket().clone()).collect());
        let jobs = chunks
            .into_iter()
            .zip(dones)
            .map(|(c, d)| K::chunk_job(&f, c, d))
            .collect::<Result<Vec<_>, _>>()?;
        self.shared.push_all(jobs, false)?;
        Ok(result)
    }

    /// A lazy, ordered map (Python's `imap`). `chunksize: None` means 1, as
    /// in Python. At most a bounded window of chunks is in flight ahead of
    /// the consumer, so an endless input is fine; Python's `imap` reads its
    /// whole input into memory.
    ///
    /// ```
    /// let pool = procpool::ThreadPool::with_workers(2)?;
    /// let firsts: Vec<u64> = pool.imap(|x: u64| x * 10, 0.., None)?.take(3).collect::<Result<_, _>>()?;
    /// assert_eq!(firsts, vec![0, 10, 20]);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn imap<'p, F, A>(
        &'p self,
        f: F,
        iterable: impl IntoIterator<Item = A, IntoIter: 'p>,
        chunksize: Option<usize>,
    ) -> Result<IMap<'p, F::Output>, Error>
    where
        F: TaskFn<(A,)>,
        K: Runs<F, (A,)>,
        F::Output: Send + 'static,
    {
        let size = map::checked_chunksize(chunksize, 1)?;
        self.ensure_running()?;
        let f = Arc::new(f);
        let mut input = iterable.into_iter().map(|a| (a,));
        let lease = self.shared.lease();
        let feed = move || {
            let _keeps_workers_alive = &lease;
            let chunk: Vec<(A,)> = input.by_ref().take(size).collect();
            (!chunk.is_empty()).then(|| {
                let (done, handle) = map::ordered_chunk(chunk.len());
                let refused = self.submit_chunk(&f, chunk, done).err();
                map::Fed { handle, refused }
            })
        };
        Ok(IMap::new(self.window(), Box::new(feed)))
    }

    /// Like [`imap`](Self::imap), but yields results as they complete
    /// (Python's `imap_unordered`).
    ///
    /// ```
    /// let pool = procpool::ThreadPool::with_workers(2)?;
    /// let mut got: Vec<u32> = pool.imap_unordered(|x: u32| x + 1, 0..100, Some(7))?.collect::<Result<_, _>>()?;
    /// got.sort();
    /// assert_eq!(got, (1..=100).collect::<Vec<_>>());
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn imap_unordered<'p, F, A>(
        &'p self,
        f: F,
        iterable: impl IntoIterator<Item = A, IntoIter: 'p>,
        chunksize: Option<usize>,
    ) -> Result<IMapUnordered<'p, F::Output>, Error>
    where
        F: TaskFn<(A,)>,
        K: Runs<F, (A,)>,
        F::Output: Send + 'static,
    {
        let size = map::checked_chunksize(chunksize, 1)?;
        self.ensure_running()?;
        let f = Arc::new(f);
        let (mut make_done, results) = map::unordered_channel::<F::Output>();
        let mut input = iterable.into_iter().map(|a| (a,));
        let lease = self.shared.lease();
        let feed = move || {
            let _keeps_workers_alive = &lease;
            let chunk: Vec<(A,)> = input.by_ref().take(size).collect();
            (!chunk.is_empty()).then(|| {
                let (done, handle) = make_done(chunk.len());
                let refused = self.submit_chunk(&f, chunk, done).err();
                map::Fed { handle, refused }
            })
        };
        Ok(IMapUnordered::new(self.window(), results, Box::new(feed)))
    }

    /// Queues one chunk of an `imap`. On failure `done` has been dropped,
    /// which reports the chunk's items as `Terminated`; the iterator then
    /// puts the error in their place.
    fn submit_chunk<F, Args>(
        &self,
        f: &Arc<F>,
        chunk: Vec<Args>,
        done: map::ChunkDone<F::Output>,
    ) -> Result<(), Error>
    where
        F: TaskFn<Args>,
        K: Runs<F, Args>,
    {
        self.shared.push_all([K::chunk_job(f, chunk, done)?], true)
    }

    /// Chunks an `imap` keeps in flight: enough to keep every worker busy
    /// with batched dispatch, few enough to bound memory.
    fn window(&self) -> usize {
        (K::IMAP_WINDOW_PER_WORKER * self.workers()).max(64)
    }

    pub(crate) fn shared(&self) -> &Shared<K::Job> {
        &self.shared
    }

    fn ensure_running(&self) -> Result<(), Error> {
        match self.shared.lock().state {
            RunState::Running => Ok(()),
            _ => Err(Error::Closed),
        }
    }

    /// Stops accepting tasks; queued tasks still run (Python's `close`).
    ///
    /// ```
    /// let mut pool = procpool::ThreadPool::with_workers(1)?;
    /// let r = pool.apply_async(|| 1, ())?;
    /// pool.close();
    /// assert_eq!(pool.apply_async(|| 2, ()).unwrap_err(), procpool::Error::Closed);
    /// pool.join()?;
    /// assert_eq!(r.get()?, 1);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn close(&self) {
        self.shared.close();
    }

    /// Stops the workers now (Python's `terminate`). Queued tasks never run
    /// and their results resolve to [`Error::Terminated`] at once. Process
    /// workers get SIGTERM, then SIGKILL after a short grace period, and
    /// their in-flight tasks resolve to `Terminated`. Thread workers cannot
    /// be killed: a running task finishes and its result is delivered.
    ///
    /// It does not wait (call [`join`](Self::join) for that), so it is safe
    /// to call from a callback.
    ///
    /// ```
    /// use std::sync::{Arc, Barrier, mpsc};
    /// let mut pool = procpool::ThreadPool::with_workers(1)?;
    /// let (started, running) = mpsc::channel();
    /// let gate = Arc::new(Barrier::new(2));
    /// let task_gate = gate.clone();
    /// let busy = pool.apply_async(move || { started.send(()).unwrap(); task_gate.wait(); "finished" }, ())?;
    /// let queued = pool.apply_async(|| "never run", ())?;
    /// running.recv().unwrap();
    /// pool.terminate();
    /// assert_eq!(queued.get(), Err(procpool::Error::Terminated));
    /// gate.wait();
    /// pool.join()?;
    /// assert_eq!(busy.get(), Ok("finished"));
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn terminate(&self) {
        let dropped = self.shared.terminate(K::signal_on_terminate);
        // Dropping the jobs resolves their results; do it without the lock
        // because error callbacks run during the drop.
        drop(dropped);
    }

    /// Waits for every worker to exit (Python's `join`). It is an error to
    /// call it while the pool is running: call [`close`](Self::close) or
    /// [`terminate`](Self::terminate) first, as in Python.
    ///
    /// ```
    /// let mut pool = procpool::ThreadPool::with_workers(1)?;
    /// assert_eq!(pool.join(), Err(procpool::Error::StillRunning));
    /// pool.close();
    /// pool.join()?;
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn join(&mut self) -> Result<(), Error> {
        if self.shared.lock().state == RunState::Running {
            return Err(Error::StillRunning);
        }
        self.join_threads();
        Ok(())
    }

    fn join_threads(&self) {
        // A worker may push its replacement's handle while we join, so
        // take handles until none are left.
        loop {
            let handles =
                std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
            if handles.is_empty() {
                break;
            }
            for h in handles {
                // A worker thread never panics out of its loop (tasks and
                // callbacks are caught), so a join error can be ignored.
                let _ = h.join();
            }
        }
        drop(self.shared.wait_until(|inner| inner.live == 0));
    }
}

impl<K: Kind> Drop for WorkerPool<K> {
    fn drop(&mut self) {
        self.close();
        // The last handle can be dropped by a callback running on one of
        // this pool's own threads; joining there would wait for itself.
        // The threads exit on their own once the queue drains.
        if !is_owned_by(self.spec.pool_id) {
            self.join_threads();
        }
    }
}
