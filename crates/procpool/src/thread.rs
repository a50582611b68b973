//! Thread workers: jobs are closures run on threads of this process.

use std::sync::Arc;

use crate::error::Error;
use crate::kind::{Kind, Runs, Thread, Threads, WorkerSpec, mark_owned_by};
use crate::map::ChunkDone;
use crate::pool::Builder;
use crate::result::Resolver;
use crate::shared::Shared;
use crate::task::{TaskFn, call_caught};
use crate::ticket::{Abandonable, Held, Runner, Start, Ticket};
use crate::timer::Timer;

/// A queued call. It owns the resolvers of its results, so dropping it
/// unrun (on `terminate` or `cancel`) resolves them to `Terminated` (or
/// `Cancelled`).
#[doc(hidden)]
pub struct LocalJob {
    ticket: Arc<Ticket>,
    run: Box<dyn FnOnce() + Send>,
}

impl std::fmt::Debug for LocalJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalJob")
            .field("ticket", &self.ticket)
            .finish_non_exhaustive()
    }
}

/// Jobs a thread takes from the queue at once. One: a job taken is a job
/// `terminate()` can no longer cancel, and Python's contract is that only
/// running tasks survive a terminate.
const BATCH: usize = 1;

impl Kind for Thread {
    type Job = LocalJob;
    type Init = Arc<dyn Fn() + Send + Sync>;
    const NAME: &'static str = "thread";
    const IMAP_WINDOW_PER_WORKER: usize = 8;
    type Lanes = ();

    fn start(
        pool: &Arc<Shared<LocalJob>>,
        spec: Arc<WorkerSpec<Thread>>,
    ) -> Result<Threads, Error> {
        crate::task::record_task_panics(false);
        let threads = Threads::default();
        Self::grow(pool, &spec, &threads, pool.target())?;
        Ok(threads)
    }

    fn grow(
        pool: &Arc<Shared<LocalJob>>,
        spec: &Arc<WorkerSpec<Thread>>,
        threads: &Threads,
        n: usize,
    ) -> Result<(), Error> {
        let mut first_error = None;
        for _ in 0..n {
            if let Err(e) = spawn_worker(pool.clone(), spec.clone(), threads.clone()) {
                pool.lock().unseat_failed();
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn signal_on_terminate(_pid: u32) {}
}

fn spawn_worker(
    pool: Arc<Shared<LocalJob>>,
    spec: Arc<WorkerSpec<Thread>>,
    threads: Threads,
) -> Result<(), Error> {
    pool.entered();
    let (handles, on_failure) = (threads.clone(), pool.clone());
    let spawned = std::thread::Builder::new()
        .name("procpool-worker".into())
        .spawn(move || serve(pool, spec, threads));
    match spawned {
        Ok(handle) => {
            handles
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(handle);
            Ok(())
        }
        Err(e) => {
            on_failure.exited();
            Err(Error::Worker {
                message: format!("cannot start a worker thread: {e}"),
            })
        }
    }
}

/// One worker thread's life: initializer, then jobs until the pool stops or
/// `maxtasksperchild` is reached, when it hands over to a fresh thread.
fn serve(pool: Arc<Shared<LocalJob>>, spec: Arc<WorkerSpec<Thread>>, threads: Threads) {
    mark_owned_by(spec.pool_id);
    if let Some(init) = &spec.initializer {
        let init = std::panic::AssertUnwindSafe(|| init());
        if let Err(p) = std::panic::catch_unwind(init) {
            eprintln!(
                "procpool: worker initializer panicked: {}",
                crate::error::panic_message(&*p)
            );
        }
    }
    let limit = spec.maxtasksperchild.unwrap_or(usize::MAX);
    let mut done = 0usize;
    let mut batch = Vec::with_capacity(BATCH);
    while done < limit && pool.pop_batch(None, BATCH.min(limit - done), &mut batch) {
        for job in batch.drain(..) {
            // Jobs already taken are still "queued" from the caller's view:
            // after terminate() they are dropped (resolving to Terminated)
            // rather than run, and so are cancelled ones.
            if !pool.is_terminated() && job.ticket.start(Runner::Thread) == Start::Run {
                run_watched(job, spec.timer.as_ref());
                done += 1;
            }
        }
    }
    if done >= limit && !pool.is_terminated() {
        // The replacement registers before this thread deregisters, so
        // `live` never reads 0 while the pool still has work. It takes
        // over this thread's seat; if it cannot start, the seat goes.
        if let Err(e) = spawn_worker(pool.clone(), spec.clone(), threads) {
            pool.lock().unseat_failed();
            eprintln!("procpool: {e}");
        }
    }
    pool.exited();
}

/// Runs a started job, under the pool's time limit if it has one. When the
/// limit passes, the timer resolves the job's result through its ticket;
/// the thread runs on, and its late result is dropped (see `Held`).
fn run_watched(job: LocalJob, timer: Option<&Timer>) {
    let watch = timer.map(|t| t.watch(&job.ticket));
    (job.run)();
    if let (Some(timer), Some(id)) = (timer, watch) {
        timer.unwatch(id);
    }
    job.ticket.finish();
}

impl<T: Send + 'static> Abandonable for Resolver<T> {
    fn abandon(self, err: Error) {
        self.resolve(Err(err));
    }
}

impl<R: 'static> Abandonable for ChunkDone<R> {
    fn abandon(self, err: Error) {
        self.fail(err);
    }
}

impl<F, Args> Runs<F, Args> for Thread
where
    F: TaskFn<Args>,
    Args: Send + 'static,
    F::Output: Send + 'static,
{
    fn single_job(f: F, args: Args, done: Resolver<F::Output>) -> Result<LocalJob, Error> {
        let ticket = done.ticket().clone();
        let done = Held::new(done, &ticket);
        let run = move || {
            let value = call_caught(&f, args).map_err(Error::from);
            if let Some(done) = done.take() {
                done.resolve(value);
            }
        };
        Ok(LocalJob {
            ticket,
            run: Box::new(run),
        })
    }

    fn chunk_job(
        f: &Arc<F>,
        chunk: Vec<Args>,
        done: ChunkDone<F::Output>,
    ) -> Result<LocalJob, Error> {
        let f = f.clone();
        let ticket = done.ticket().clone();
        let done = Held::new(done, &ticket);
        let run = move || {
            let results = chunk
                .into_iter()
                .map(|a| call_caught(&*f, a).map_err(Error::from))
                .collect();
            if let Some(done) = done.take() {
                done.finish(results);
            }
        };
        Ok(LocalJob {
            ticket,
            run: Box::new(run),
        })
    }
}

impl Builder<Thread> {
    /// A function each worker thread runs once before its first task
    /// (Python's `initializer`; capture what would be `initargs`). A panic
    /// in it is reported on stderr and the worker goes on, whereas Python
    /// restarts a failing initializer's worker forever.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// let started = Arc::new(AtomicUsize::new(0));
    /// let counter = started.clone();
    /// let mut pool = procpool::ThreadPool::builder()
    ///     .workers(3)
    ///     .initializer(move || { counter.fetch_add(1, Ordering::SeqCst); })
    ///     .build()?;
    /// pool.close();
    /// pool.join()?;
    /// assert_eq!(started.load(Ordering::SeqCst), 3);
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn initializer(self, init: impl Fn() + Send + Sync + 'static) -> Self {
        self.set_initializer(Ok(Arc::new(init)))
    }
}
