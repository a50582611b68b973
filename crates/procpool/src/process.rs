//! Process workers, parent side: one I/O thread per worker process.
//!
//! Who owns what: each worker slot has one I/O thread and one lane, the
//! slot's I/O state (`IoThread`: the child, `std::process::Child`, and the
//! parent's end of its socket), behind a mutex. The I/O thread holds the
//! lane while it starts, feeds, replaces and reaps its child; only it
//! starts (forks) a child. While the I/O thread waits for work, a caller
//! of `apply` may borrow the lane to make its own round trip (see
//! `process/lend.rs` and `Shared::lend_lane`), and gives back to the I/O
//! thread whatever needs a new worker. Other threads only ever signal a
//! pid, and only under the shared lock, while the lane's holder keeps the
//! pid registered (see `Shared::pids`).
//!
//! One frame is in flight per worker: the I/O thread writes a batch of
//! calls, then reads the batch's replies. A batch is one call when the
//! queue is short and grows to a fair share of a long queue, so trivial
//! tasks cost one round trip per batch instead of per call. When the child
//! dies, only the calls of the frame in flight fail, with `WorkerLost`.
//!
//! A task that is cancelled, or runs past the pool's time limit, is stopped
//! by killing its worker (see `ticket.rs`); the I/O thread then replaces
//! the worker before it resolves the task (see `process/stop.rs`).
//!
//! The I/O thread forks its child, so the child's `PR_SET_PDEATHSIG` (which
//! fires when the forking *thread* exits) cannot fire early: the thread
//! outlives the child it reaps.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Serialize, de::DeserializeOwned};

use crate::codec::{self, Unsent, decode_error, encode_error, too_large};
use crate::error::Error;
use crate::frame::{self, FrameError};
use crate::frame::{HEAD_ROOM, MAX_FRAME, MAX_VALUE};
use crate::kind::{Kind, Process, Runs, Threads, WorkerSpec, mark_owned_by};
use crate::map::ChunkDone;
use crate::pool::{Builder, WorkerPool};
use crate::result::Resolver;
use crate::shared::{LaneUse, Shared};
use crate::spawn::{Child, GRACE};
use crate::task::{TaskFailure, TaskFn, registered_index};
use crate::ticket::Ticket;
use crate::timer::WatchId;
use crate::wire::{self, Call, FromWorker, ToWorker};

/// A worker slot's lane: its I/O state, held by the slot's I/O thread or
/// by a caller that borrowed it (see the module documentation).
type Lane = std::sync::Mutex<IoThread>;

/// Takes a lane. A panic while it is held (a result callback's is caught
/// before it gets here) leaves the child and socket as they were.
fn lock(lane: &Lane) -> std::sync::MutexGuard<'_, IoThread> {
    lane.lock().unwrap_or_else(|e| e.into_inner())
}

mod lend;
mod stop;

pub(crate) use lend::Lanes;

/// A queued call for a worker process. `done` owns the result's resolver,
/// so dropping an unrun job resolves it to `Terminated`.
#[doc(hidden)]
pub struct RemoteJob {
    task: u32,
    payload: Vec<u8>,
    done: Reply,
    ticket: Arc<Ticket>,
}

/// What a job does with its call's reply: the encoded results (borrowed
/// from the frame they came in), or why the call failed as a whole.
type Reply = Box<dyn FnOnce(Result<&[u8], Error>) + Send>;

impl std::fmt::Debug for RemoteJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteJob")
            .field("task", &self.task)
            .field("payload_len", &self.payload.len())
            .finish_non_exhaustive()
    }
}

/// The most calls one frame carries.
const BATCH: usize = 256;

impl Kind for Process {
    type Job = RemoteJob;
    /// The registered initializer's index and encoded arguments.
    type Init = (u32, Vec<u8>);
    const NAME: &'static str = "process";
    // A frame carries up to BATCH calls; a smaller window would send
    // smaller frames and pay a round trip for a few calls.
    const IMAP_WINDOW_PER_WORKER: usize = BATCH;
    type Lanes = Lanes;

    fn start(
        pool: &Arc<Shared<RemoteJob>>,
        spec: Arc<WorkerSpec<Process>>,
    ) -> Result<Threads, Error> {
        crate::worker::refuse_if_uninitialized_worker()?;
        let threads = Threads::default();
        if let Err(err) = Self::grow(pool, &spec, &threads, pool.target()) {
            drop(pool.terminate(Self::signal_on_terminate));
            for h in std::mem::take(&mut *threads.lock().unwrap_or_else(|e| e.into_inner())) {
                let _ = h.join();
            }
            return Err(err);
        }
        Ok(threads)
    }

    /// Starts one I/O thread per new worker, in new slots, and waits until
    /// each has started its worker process (and run the initializer), so
    /// that a worker that cannot start is reported here.
    fn grow(
        pool: &Arc<Shared<RemoteJob>>,
        spec: &Arc<WorkerSpec<Process>>,
        threads: &Threads,
        n: usize,
    ) -> Result<(), Error> {
        let (first_slot, reported_before, failed_before) = {
            let mut inner = pool.lock();
            let first = inner.pids.len();
            inner.pids.resize(first + n, None);
            inner.lanes.resize(first + n, LaneUse::Busy);
            (
                first,
                inner.started + inner.start_failed,
                inner.start_failed,
            )
        };
        let mut spawned = 0;
        let mut spawn_error = None;
        for slot in first_slot..first_slot + n {
            let lane = spec
                .lanes
                .add(slot, IoThread::new(pool.clone(), spec.clone(), slot));
            pool.entered();
            let io = std::thread::Builder::new()
                .name(format!("procpool-io-{slot}"))
                .spawn(move || IoThread::serve(&lane));
            match io {
                Ok(handle) => {
                    spawned += 1;
                    threads
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(handle);
                }
                Err(e) => {
                    pool.lock().unseat_failed();
                    pool.exited();
                    spawn_error.get_or_insert(Error::Worker {
                        message: format!("cannot start an I/O thread: {e}"),
                    });
                }
            }
        }
        let inner = pool.wait_until(|i| i.started + i.start_failed >= reported_before + spawned);
        match (spawn_error, inner.start_failed > failed_before) {
            (Some(err), _) => Err(err),
            (None, true) => Err(inner
                .start_error
                .clone()
                .expect("a failed start leaves its error")),
            (None, false) => Ok(()),
        }
    }

    /// A plain pool's `apply` makes its round trip on the caller's thread
    /// when a worker is idle (see `process/lend.rs`).
    fn submit_waited(
        pool: &Arc<Shared<RemoteJob>>,
        spec: &WorkerSpec<Process>,
        job: RemoteJob,
    ) -> Result<(), Error> {
        match lend::run_on_lent_lane(pool, spec, job) {
            Ok(()) => Ok(()),
            Err(job) => pool.push_all([job], false),
        }
    }

    fn signal_on_terminate(pid: u32) {
        // SAFETY: kill has no memory-safety preconditions. The pid belongs
        // to a child that is not reaped yet (see `Shared::pids`).
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    }
}

struct IoThread {
    pool: Arc<Shared<RemoteJob>>,
    spec: Arc<WorkerSpec<Process>>,
    slot: usize,
    child: Option<Child>,
    served: usize,
    /// The head of the frame being sent, and the frame being read.
    scratch: Vec<u8>,
    reply: Vec<u8>,
    /// The timer's watches on the tasks of the frame in flight.
    watches: Vec<WatchId>,
    /// What a caller that borrowed the lane left for the I/O thread.
    handover: Option<Handover>,
    /// The last worker lost died before it took its frame from the
    /// mailbox: nothing of the frame ran.
    unread: bool,
}

/// A lent round trip that did not end in replies (see `process/lend.rs`):
/// what is left is the I/O thread's to finish, as it would its own.
enum Handover {
    /// The worker was gone before the frame reached it: nothing ran; the
    /// jobs go to a new worker.
    Unsent(Vec<RemoteJob>),
    /// The jobs got no reply, for this reason.
    Unanswered(Vec<RemoteJob>, Error),
}

impl IoThread {
    fn new(pool: Arc<Shared<RemoteJob>>, spec: Arc<WorkerSpec<Process>>, slot: usize) -> Self {
        IoThread {
            pool,
            spec,
            slot,
            child: None,
            served: 0,
            scratch: Vec::new(),
            reply: Vec::new(),
            watches: Vec::new(),
            handover: None,
            unread: false,
        }
    }

    /// The I/O thread's life: start the worker, then take batches and
    /// feed them to it until the pool is done with this slot. It holds its
    /// lane except while it waits for work (see `Shared::pop_batch`).
    fn serve(lane: &Lane) {
        let mut io = lock(lane);
        mark_owned_by(io.spec.pool_id);
        if !io.start() {
            return;
        }
        let (pool, slot) = (io.pool.clone(), io.slot);
        let limit = io.spec.maxtasksperchild.unwrap_or(usize::MAX);
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let max = io.batch_limit().min(limit - io.served);
            drop(io);
            let more = pool.pop_batch(Some(slot), max, &mut batch);
            io = lock(lane);
            if !more {
                break;
            }
            io.take_over();
            io.dispatch(&mut batch);
            if io.served >= limit || io.over_memory_cap() {
                io.retire();
                io.served = 0;
            }
            if io.child.is_none() && pool.wants_workers() {
                // Replace a lost or retired worker now rather than on the
                // next batch, so the pool is back to full strength while it
                // is idle, as Python's pool repopulates. If this fails, the
                // next dispatch tries again and reports it.
                let _ = io.respawn();
            }
        }
        io.take_over();
        io.retire();
        drop(io);
        pool.exited();
    }

    /// Starts the slot's first worker and reports how that went; `false`:
    /// it failed, and this I/O thread has left the pool.
    fn start(&mut self) -> bool {
        let first = self.respawn();
        let started = first.is_ok();
        {
            let mut inner = self.pool.lock();
            match first {
                Ok(()) => inner.started += 1,
                Err(e) => {
                    // This slot never had a worker: it leaves the pool
                    // rather than fail every task it would take.
                    inner.start_failed += 1;
                    inner.start_error = Some(e);
                    inner.unseat_failed();
                }
            }
        }
        self.pool.changed.notify_all();
        if !started {
            self.pool.exited();
        }
        started
    }

    /// Finishes what a caller that borrowed the lane left: unsent jobs go
    /// to a new worker (unless the pool was terminated: they are dropped,
    /// which resolves them to `Terminated`), unanswered ones fail as the
    /// I/O thread's own would.
    fn take_over(&mut self) {
        match self.handover.take() {
            None => {}
            Some(Handover::Unsent(part)) if self.pool.is_terminated() => drop(part),
            Some(Handover::Unsent(part)) => self.send_part(part),
            Some(Handover::Unanswered(part, err)) => self.fail_unanswered(part, err),
        }
    }

    /// Starts a fresh worker in this slot, running the initializer.
    fn respawn(&mut self) -> Result<(), Error> {
        let child = Child::spawn(self.spec.initializer.as_ref())?;
        self.pool.lock().pids[self.slot] = Some(child.pid());
        self.child = Some(child);
        Ok(())
    }

    /// Sends one batch and delivers its replies, or its failure. A batch
    /// too large for one frame goes out in parts, one round trip each.
    fn dispatch(&mut self, batch: &mut Vec<RemoteJob>) {
        stop::claim_batch(batch);
        self.served += batch.len();
        let mut jobs = batch.drain(..).peekable();
        while jobs.peek().is_some() {
            let mut room = MAX_FRAME - HEAD_ROOM;
            let mut part = Vec::new();
            while let Some(job) = jobs.next_if(|j| part.is_empty() || j.payload.len() <= room) {
                room = room.saturating_sub(job.payload.len());
                part.push(job);
            }
            self.send_part(part);
        }
    }

    /// Sends one frame's jobs, starting a worker first if the slot has
    /// none, and delivers their replies, or their failure.
    fn send_part(&mut self, mut part: Vec<RemoteJob>) {
        if self.child.is_none()
            && let Err(e) = self.respawn()
        {
            part.into_iter().for_each(|job| (job.done)(Err(e.clone())));
            return;
        }
        let outcome = self.round_trip(&mut part);
        self.unwatch();
        if let Err(err) = outcome {
            self.fail_unanswered(part, err);
        }
    }

    /// Sends `part` as one frame and delivers each reply to its job as it
    /// arrives, taking delivered jobs out of `part`. On failure the jobs
    /// left in `part` are the ones without a reply, and the child has been
    /// reaped; the error says how it ended.
    fn round_trip(&mut self, part: &mut Vec<RemoteJob>) -> Result<(), Error> {
        // Whether the worker was started for this frame: a frame that did
        // not reach a worker goes to one new worker, not to a series.
        let mut fresh = false;
        loop {
            if !self.send(part, !fresh)? {
                // The worker died before this frame reached it (killed
                // while idle). Nothing of it ran, so start a new worker and
                // send it there instead of failing the calls.
                self.respawn()?;
                fresh = true;
                continue;
            }
            self.mark_started(part);
            let mut jobs = std::mem::take(part).into_iter();
            let delivered = self.deliver_replies(&mut jobs);
            part.extend(jobs);
            match delivered {
                // It died before it took the frame from the mailbox.
                Err(_) if self.take_unread() && !fresh && !self.pool.is_terminated() => {
                    self.unwatch();
                    self.respawn()?;
                    fresh = true;
                }
                delivered => return delivered,
            }
        }
    }

    /// Whether the worker just lost had not taken its frame (and clears
    /// the mark).
    fn take_unread(&mut self) -> bool {
        std::mem::take(&mut self.unread)
    }

    /// Writes `part` as one frame to the child. `Ok(false)`, only if
    /// `may_refuse`: the child had died before the frame reached it (EPIPE),
    /// so nothing of it ran; the child is reaped, and the frame may go to a
    /// new one. Any other failure reaps the child and says how it ended.
    fn send(&mut self, part: &[RemoteJob], may_refuse: bool) -> Result<bool, Error> {
        let calls: Vec<Call> = part
            .iter()
            .map(|j| Call {
                task: j.task,
                len: j.payload.len() as u64,
            })
            .collect();
        let blocks: Vec<&[u8]> = part.iter().map(|j| j.payload.as_slice()).collect();
        let head = ToWorker::Batch(calls);
        let child = self.child.as_mut().expect("a child is running");
        match child.send_with_blocks(&head, &blocks, &mut self.scratch) {
            Ok(()) => Ok(true),
            Err(e)
                if may_refuse
                    && e.kind() == io::ErrorKind::BrokenPipe
                    && !self.pool.is_terminated() =>
            {
                self.reap();
                Ok(false)
            }
            Err(e) => Err(self.lost(Some(e))),
        }
    }

    /// Reads replies frames until every job of `jobs` has had its reply.
    fn deliver_replies(&mut self, jobs: &mut std::vec::IntoIter<RemoteJob>) -> Result<(), Error> {
        while jobs.len() > 0 {
            let replies = match self.read_reply() {
                Ok(()) => {
                    frame::decode_head::<FromWorker>(&self.reply).and_then(
                        |(head, rest)| match head {
                            FromWorker::Replies(replies) if replies.len() <= jobs.len() => {
                                let lens = replies.iter().map(|r| *r.as_ref().unwrap_or(&0));
                                Ok((wire::split_blocks(rest, lens)?, replies))
                            }
                            other => Err(FrameError::Malformed(format!("unexpected {other:?}"))),
                        },
                    )
                }
                Err(e) => Err(e),
            };
            match replies {
                Ok((blocks, replies)) => {
                    for ((job, reply), block) in jobs.by_ref().zip(replies).zip(blocks) {
                        let reply = reply
                            .map(|_| block)
                            .map_err(|message| Error::Worker { message });
                        // A reply that came in wins over a stop that
                        // raced with it: the task did finish.
                        job.ticket.finish();
                        (job.done)(reply);
                    }
                }
                // The child is alive and broke the protocol: kill it before
                // reaping, or the wait would hang on a child waiting for us.
                Err(e @ (FrameError::Malformed(_) | FrameError::TooLarge(_))) => {
                    let err = Error::Worker {
                        message: format!("protocol error: {e}"),
                    };
                    self.reap_with(&err);
                    return Err(err);
                }
                Err(_) => {
                    self.unread = self.child.as_ref().is_some_and(Child::request_unread);
                    return Err(self.lost(None));
                }
            }
        }
        Ok(())
    }

    /// Waits for a reply frame, read into `self.reply`, while watching for
    /// `terminate()`: once the pool is terminated the child has had
    /// SIGTERM; after the grace period it gets SIGKILL, which ends the
    /// wait with EOF.
    fn read_reply(&mut self) -> Result<(), FrameError> {
        let child = self.child.as_mut().expect("a child is running");
        // A small task answers within microseconds, through the mailbox
        // while this thread still looks there: no system call, no wake-up.
        if child.take_mail(&mut self.reply)? {
            return Ok(());
        }
        let mut kill_at: Option<Instant> = None;
        loop {
            if child
                .wait_readable(Duration::from_millis(100))
                .map_err(FrameError::Io)?
            {
                return child.read_frame(&mut self.reply);
            }
            if self.pool.is_terminated() {
                let deadline = *kill_at.get_or_insert_with(|| Instant::now() + GRACE);
                if Instant::now() >= deadline {
                    child.kill();
                }
            }
        }
    }

    /// Reaps the dead (or dying) child and describes its loss.
    fn lost(&mut self, io_error: Option<io::Error>) -> Error {
        let (pid, status) = self.reap();
        if self.pool.is_terminated() {
            Error::Terminated
        } else {
            match status {
                Some(status) => Error::WorkerLost { pid, status },
                None => Error::WorkerLost {
                    pid,
                    status: io_error.map_or_else(
                        || "connection lost".into(),
                        |e| format!("connection lost: {e}"),
                    ),
                },
            }
        }
    }

    fn reap_with(&mut self, err: &Error) {
        eprintln!("procpool: stopping worker: {err}");
        if let Some(child) = self.child.as_mut() {
            child.kill();
        }
        self.reap();
    }

    /// Deregisters the pid (so nobody signals it after this point), then
    /// waits for the child.
    fn reap(&mut self) -> (u32, Option<String>) {
        let Some(child) = self.child.take() else {
            return (0, None);
        };
        let pid = child.pid();
        self.pool.lock().pids[self.slot] = None;
        (pid, child.wait())
    }

    /// Asks the child to exit after its current work, or, after
    /// `terminate()`, makes sure it is gone within the grace period.
    fn retire(&mut self) {
        if let Some(child) = self.child.as_mut() {
            if !self.pool.is_terminated() {
                let _ =
                    frame::write_message(&mut child.stream(), &ToWorker::Exit, &mut self.scratch);
            }
            child.wait_for_exit(GRACE);
        }
        self.reap();
    }
}

impl<F, Args> Runs<F, Args> for Process
where
    F: TaskFn<Args>,
    Args: Serialize + Send + 'static,
    F::Output: DeserializeOwned + Send + 'static,
{
    fn single_job(f: F, args: Args, done: Resolver<F::Output>) -> Result<RemoteJob, Error> {
        let task = registered_index(&f)?;
        let payload = encode_one(args)?;
        let ticket = done.ticket().clone();
        let done = move |reply: Result<&[u8], Error>| {
            let one = reply
                .and_then(decode_results::<F::Output>)
                .and_then(|mut results| match results.pop() {
                    Some(r) if results.is_empty() => r,
                    _ => Err(Error::Worker {
                        message: "protocol error: expected one result".into(),
                    }),
                });
            done.resolve(one);
        };
        Ok(RemoteJob {
            task,
            payload,
            done: Box::new(done),
            ticket,
        })
    }

    fn chunk_job(
        f: &Arc<F>,
        chunk: Vec<Args>,
        done: ChunkDone<F::Output>,
    ) -> Result<RemoteJob, Error> {
        let task = registered_index(&**f)?;
        let EncodedChunk { payload, refused } = encode_chunk(chunk);
        let ticket = done.ticket().clone();
        let done = move |reply: Result<&[u8], Error>| {
            let len = done.len();
            let results = reply.and_then(decode_results::<F::Output>);
            match merge_refused(len, refused, results) {
                Ok(results) => done.finish(results),
                Err(e) => done.fail(e),
            }
        };
        Ok(RemoteJob {
            task,
            payload,
            done: Box::new(done),
            ticket,
        })
    }
}

/// Encodes the arguments of one call, refusing them if they are too large
/// for a frame.
fn encode_one<Args: Serialize + 'static>(args: Args) -> Result<Vec<u8>, Error> {
    let args = vec![args];
    codec::encode_args(&args).map_err(|unsent| match unsent {
        Unsent::TooLarge(size) => too_large(size),
        Unsent::Codec(e) => encode_error("cannot encode the arguments", &e, &args),
    })
}

/// A chunk's arguments as sent: the encoded `Vec<Args>` of the items that
/// encode, and the failure of each item that does not, by position.
struct EncodedChunk {
    payload: Vec<u8>,
    refused: Vec<(usize, Error)>,
}

/// Encodes a chunk so that an item that cannot be encoded, or is too
/// large for a frame, fails alone, in its place, as in Python, where the
/// other items of an `imap` still run. The whole chunk is tried at once
/// first; only a failure costs the item-by-item pass.
fn encode_chunk<Args: Serialize + 'static>(chunk: Vec<Args>) -> EncodedChunk {
    if let Ok(payload) = codec::encode_args(&chunk) {
        return EncodedChunk {
            payload,
            refused: Vec::new(),
        };
    }
    let mut sent = Vec::new();
    let mut refused = Vec::new();
    for (i, item) in chunk.into_iter().enumerate() {
        let one = vec![item];
        match codec::encode_args(&one) {
            Ok(bytes) => sent.push((i, codec::sole_element(bytes))),
            Err(Unsent::TooLarge(size)) => refused.push((i, too_large(size - 1))),
            Err(Unsent::Codec(e)) => {
                refused.push((i, encode_error("cannot encode the argument", &e, &one)))
            }
        }
    }
    let size: usize = sent.iter().map(|(_, bytes)| bytes.len()).sum();
    if size > MAX_VALUE {
        // Each fits, but not all together: the chunk is the task, and fails.
        refused.extend(sent.drain(..).map(|(i, _)| (i, too_large(size))));
        refused.sort_by_key(|(i, _)| *i);
    }
    let items: Vec<Vec<u8>> = sent.into_iter().map(|(_, bytes)| bytes).collect();
    EncodedChunk {
        payload: codec::vec_of(&items),
        refused,
    }
}

/// Puts the failures of the items that could not be sent back in their
/// places among the results of those that were. If the call failed as a
/// whole, every sent item gets its error and the refused ones keep theirs.
fn merge_refused<R>(
    len: usize,
    refused: Vec<(usize, Error)>,
    results: Result<Vec<Result<R, Error>>, Error>,
) -> Result<Vec<Result<R, Error>>, Error> {
    let sent = len - refused.len();
    let mut results = match results {
        // Nothing was refused (the usual case): the results as they are.
        Ok(results) if refused.is_empty() && results.len() == len => return Ok(results),
        Ok(results) if results.len() == sent => results.into_iter(),
        Ok(_) => {
            return Err(Error::Worker {
                message: "protocol error: wrong number of results".into(),
            });
        }
        Err(e) if refused.is_empty() => return Err(e),
        Err(e) => (0..sent)
            .map(|_| Err(e.clone()))
            .collect::<Vec<_>>()
            .into_iter(),
    };
    let mut refused = refused.into_iter().peekable();
    let merged = (0..len)
        .map(|i| match refused.next_if(|(at, _)| *at == i) {
            Some((_, e)) => Err(e),
            None => results.next().unwrap_or(Err(Error::Terminated)),
        })
        .collect();
    Ok(merged)
}

fn decode_results<R: DeserializeOwned + 'static>(
    bytes: &[u8],
) -> Result<Vec<Result<R, Error>>, Error> {
    let results: Vec<Result<R, TaskFailure>> =
        codec::decode_results(bytes).map_err(|e| decode_error("cannot decode the results", &e))?;
    Ok(results
        .into_iter()
        .map(|r| r.map_err(Error::from))
        .collect())
}

impl WorkerPool<Process> {
    /// The pids of the live worker processes, in slot order. A slot whose
    /// worker is being replaced is left out.
    ///
    /// ```
    /// procpool::init();
    /// let pool = procpool::Pool::with_workers(2)?;
    /// let pids = pool.worker_pids();
    /// assert_eq!(pids.len(), 2);
    /// assert!(!pids.contains(&std::process::id()));
    /// # Ok::<(), procpool::Error>(())
    /// ```
    pub fn worker_pids(&self) -> Vec<u32> {
        self.shared()
            .lock()
            .pids
            .iter()
            .flatten()
            .copied()
            .collect()
    }
}

impl Builder<Process> {
    /// A registered function each worker process runs once, with `args`,
    /// before its first task (Python's `initializer` and `initargs`). If it
    /// panics, [`build`](Builder::build) fails with [`Error::Initializer`];
    /// Python instead restarts the failing worker forever.
    ///
    /// ```
    /// fn greet(name: String) { assert!(!name.is_empty()); }
    /// procpool::register!(greet);
    /// fn main() -> Result<(), procpool::Error> {
    ///     procpool::init();
    ///     let pool = procpool::Pool::builder().workers(1).initializer(greet, ("worker".to_string(),)).build()?;
    ///     assert_eq!(pool.workers(), 1);
    ///     Ok(())
    /// }
    /// ```
    pub fn initializer<F, Args>(self, f: F, args: Args) -> Self
    where
        F: TaskFn<Args>,
        Args: Serialize,
    {
        let init = registered_index(&f).and_then(|i| {
            let args = std::slice::from_ref(&args);
            postcard::to_allocvec(args)
                .map(|encoded| (i, encoded))
                .map_err(|e| encode_error("cannot encode the initializer's arguments", &e, args))
        });
        self.set_initializer(init)
    }
}
