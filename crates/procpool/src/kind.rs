//! The two worker kinds behind one trait.
//!
//! `WorkerPool<K>` holds everything both kinds share (queue, life cycle,
//! chunking, results) and asks `K` for the two things that differ: how to
//! start workers, and how to turn a call into a job a worker can run. This is
//! the shape of rayon's `ThreadSpawn` and crossbeam's channel flavors.

use std::sync::Arc;
use std::thread::JoinHandle;

use crate::error::Error;
use crate::map::ChunkDone;
use crate::result::Resolver;
use crate::shared::Shared;
use crate::task::TaskFn;
use crate::timer::Timer;

/// Worker processes: the executable started again, one process per worker.
/// See [`Pool`](crate::Pool).
#[derive(Debug, Clone, Copy)]
pub struct Process;

/// Worker threads in this process. See [`ThreadPool`](crate::ThreadPool).
#[derive(Debug, Clone, Copy)]
pub struct Thread;

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Process {}
    impl Sealed for super::Thread {}
}

/// A kind of worker: [`Process`] or [`Thread`]. Sealed; its items are
/// internal.
pub trait Kind: sealed::Sealed + Sized + Send + Sync + 'static {
    #[doc(hidden)]
    type Job: Send + 'static;
    #[doc(hidden)]
    type Init: Send + Sync + 'static;
    #[doc(hidden)]
    const NAME: &'static str;
    /// Chunks per worker an `imap` keeps in flight: enough to fill the
    /// batches this kind dispatches.
    #[doc(hidden)]
    const IMAP_WINDOW_PER_WORKER: usize;
    /// Per-worker state that callers may borrow (process pools' lanes).
    #[doc(hidden)]
    type Lanes: Default + Send + Sync + std::fmt::Debug;
    /// Starts the pool's first workers, one per seat of `pool`.
    #[doc(hidden)]
    fn start(pool: &Arc<Shared<Self::Job>>, spec: Arc<WorkerSpec<Self>>) -> Result<Threads, Error>;
    /// Starts `n` more workers, whose seats `pool` has already counted,
    /// adding their handles to `threads`. A worker that cannot start gives
    /// its seat back and the first such failure is returned.
    #[doc(hidden)]
    fn grow(
        pool: &Arc<Shared<Self::Job>>,
        spec: &Arc<WorkerSpec<Self>>,
        threads: &Threads,
        n: usize,
    ) -> Result<(), Error>;
    #[doc(hidden)]
    fn signal_on_terminate(pid: u32);
    /// Submits a job whose caller waits for its result at once (`apply`).
    /// Queued, unless the kind can run it sooner on the caller's thread.
    #[doc(hidden)]
    fn submit_waited(
        pool: &Arc<Shared<Self::Job>>,
        spec: &WorkerSpec<Self>,
        job: Self::Job,
    ) -> Result<(), Error> {
        let _ = spec;
        pool.push_all([job], false)
    }
}

/// Says that workers of this kind can run `F` on `Args`.
///
/// For [`Thread`], any `Send` function and arguments. For [`Process`], the
/// arguments and the result must be serde-serializable, and `F` must be
/// registered with [`register!`](crate::register) (checked when the task is
/// submitted).
pub trait Runs<F: TaskFn<Args>, Args>: Kind {
    #[doc(hidden)]
    fn single_job(f: F, args: Args, done: Resolver<F::Output>) -> Result<Self::Job, Error>;
    #[doc(hidden)]
    fn chunk_job(
        f: &Arc<F>,
        chunk: Vec<Args>,
        done: ChunkDone<F::Output>,
    ) -> Result<Self::Job, Error>;
}

/// What every worker of a pool is started with.
#[doc(hidden)]
#[derive(Debug)]
pub struct WorkerSpec<K: Kind> {
    pub(crate) maxtasksperchild: Option<usize>,
    pub(crate) initializer: Option<K::Init>,
    /// The timer that stops tasks running past `task_timeout`, if set.
    pub(crate) timer: Option<Timer>,
    /// `max_memory_per_child`: the resident bytes past which a worker
    /// process is retired after its task.
    pub(crate) max_memory: Option<u64>,
    /// The pool's identity, so a worker thread can tell that a drop of the
    /// pool is happening on itself (see `WorkerPool::drop`).
    pub(crate) pool_id: usize,
    /// What callers may borrow of the workers (see `Kind::submit_waited`).
    pub(crate) lanes: K::Lanes,
}

/// The join handles of a pool's threads. Thread workers replace themselves
/// after `maxtasksperchild` tasks, and `resize` adds workers, so the list
/// grows while the pool runs.
#[doc(hidden)]
pub type Threads = Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>;

thread_local! {
    /// The pool whose worker or I/O thread this is, or 0.
    static OWNER: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Marks the current thread as belonging to pool `id`.
pub(crate) fn mark_owned_by(id: usize) {
    OWNER.with(|o| o.set(id));
}

/// Whether the current thread is one of pool `id`'s own threads.
pub(crate) fn is_owned_by(id: usize) -> bool {
    OWNER.with(|o| o.get() == id)
}
