//! The directory readers: threads that open, list and stat directories
//! ahead of the walk, so that on storage where every request waits (a
//! network or FUSE mount) many directories are read at once while the
//! walk, one thread deciding everything in order, only takes the results.
//!
//! The walk asks for the subdirectories of the directories it has entered
//! ([`Readers::submit`]), a bounded number at a time, and takes each
//! result when it enters that subdirectory ([`Readers::take`]). A request
//! not started by then is withdrawn and the walk reads the directory
//! itself, so it never waits on a queue, and the results are the walk's
//! own: the same tree gives the same decisions whatever the readers did.
//!
//! Descriptors: a request names its parent by a weak reference to the
//! walk's descriptor, so a request waiting in the queue holds none; a
//! reader holds the parent (kept alive while it opens beneath it) and
//! the directory it reads; a result holds that directory's descriptor
//! until the walk takes it. The walk keeps at most two requests per
//! reader outstanding ([`Readers::has_room`]), so the budget (`fdbudget`,
//! four descriptors a reader) sizes everything.
//!
//! When no request waits, the readers run background tasks: the
//! count-ahead (`count`) reads the whole tree that way, each directory a
//! task that adds tasks for its subdirectories. A directory it has read
//! and kept (`listings`) is not listed again for the walk.
//!
//! How many: a few per CPU to start with, more while requests are slow
//! and the walk waits on the readers ([`Sizing`]): each reader times the
//! requests it makes, and the walk, when it finds a result not ready,
//! starts more readers if most requests lately waited on the storage (a
//! network, a disk, a FUSE server), never more than the budget holds. A
//! page cache or a fast FUSE server answers in microseconds, and there
//! more readers would only take turns on the same CPUs.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use rustix::fs::FileType;

use super::entry_stat::EntryStat;
use super::listings::{For, Listings};
use super::tree::{self, Listing};

/// Readers to start with, per CPU: the walk's reading spread over the
/// CPUs, with one more each to overlap what waits.
const READERS_PER_CPU: usize = 2;
/// Readers to start with, per CPU, while the count-ahead runs on them
/// too. Counting is a small part of a copy's work (a `stat` per file
/// against a dozen calls to copy it), but with as few threads as the
/// workers the scheduler gives it as small a share of the CPUs, and the
/// totals are final late: on 200,000 tiny files with two CPUs, after a
/// median 12.8 % of the run with 2 readers per CPU, 9.4 % with 6 (4
/// interleaved runs each), the runs no slower. Once the count is over
/// they read ahead for the walk alone, idle when it needs nothing.
const COUNTING_READERS_PER_CPU: usize = 6;
/// The most readers the walk asks the budget for: twice the 16 that
/// kept up with 64 workers on a mount taking 1 ms a request, which the
/// readers reached there and at 5 ms (the README's "Latency-bound
/// storage").
pub(crate) const MOST_READERS: usize = 32;
/// A request that took this long waited on the storage (a network round
/// trip, a disk seek, a FUSE server that does real work), not on a CPU:
/// a page cache answers in 1-10 µs, a FUSE server from memory in tens.
const SLOW_REQUEST: Duration = Duration::from_micros(200);
/// Reads timed before the readers are sized again, at least.
const MIN_SAMPLES: usize = 8;
/// Reads remembered: older ones count half from there on, so a cold
/// start does not size the readers for the rest of the run.
const SAMPLE_WINDOW: usize = 64;

/// Names one request to the readers.
pub(super) type Ticket = u64;

/// A directory read by a reader: open, stat'ed and listed, the entries
/// that are not directories stat'ed too.
#[derive(Debug)]
pub(super) struct ReadDir {
    pub(super) fd: OwnedFd,
    pub(super) stat: EntryStat,
    pub(super) listing: Listing,
}

/// A request: the directory `name` beneath `parent`.
struct Request {
    ticket: Ticket,
    /// The walk's descriptor of the parent: gone if the walk closed it
    /// for the budget, and then the walk reads the directory itself.
    parent: Weak<OwnedFd>,
    name: OsString,
}

/// Work for the readers when the walk asks for nothing: given the
/// readers' [`Background`] to add more.
pub(super) type Task = Box<dyn FnOnce(&Background<'_>) + Send>;

/// Where a request is.
enum Slot {
    Queued,
    Running,
    /// `None`: it could not be read; the walk reads it itself, and
    /// reports what fails.
    Done(Option<ReadDir>),
}

/// What the readers and the walk share, under one lock.
struct State {
    /// Requests not started, last in first out: the walk asks for the
    /// subdirectories of the deepest directory last, and needs them first.
    queue: Vec<Request>,
    /// Background tasks, last in first out (depth first: fewer
    /// directories held open for their subdirectories).
    tasks: Vec<Task>,
    /// Every request the walk still wants, by ticket; a reader that finds
    /// its ticket gone (withdrawn) drops what it read.
    slots: HashMap<Ticket, Slot>,
    /// Set when the walk is done: the readers return.
    closed: bool,
    /// What the readers measured and the walk waited, for sizing them.
    sizing: Sizing,
}

/// When to start more readers: a rule fed by the readers' timings and
/// the walk's waits, kept under the readers' lock.
#[derive(Debug)]
struct Sizing {
    /// Readers the descriptor budget holds, or as many as were running
    /// when more made requests slower.
    most: usize,
    /// Reads timed since the readers were last sized.
    timed: usize,
    /// Of those, the reads whose requests waited on the storage.
    slow: usize,
    /// Their latencies added up.
    spent: Duration,
    /// Times the walk found a result not ready since then.
    waits: usize,
    /// The mean latency before the readers last grew.
    before: Option<Duration>,
}

impl Sizing {
    /// No evidence yet, for at most `most` readers.
    fn new(most: usize) -> Sizing {
        Sizing {
            most,
            timed: 0,
            slow: 0,
            spent: Duration::ZERO,
            waits: 0,
            before: None,
        }
    }

    /// A read whose slowest kind of request took `latency` each.
    fn timed(&mut self, latency: Duration) {
        self.timed += 1;
        self.slow += usize::from(latency >= SLOW_REQUEST);
        self.spent = self.spent.saturating_add(latency);
        if self.timed >= SAMPLE_WINDOW {
            self.timed /= 2;
            self.slow /= 2;
            self.spent /= 2;
        }
    }

    /// The walk wanted a result the readers did not have ready.
    fn waited(&mut self) {
        self.waits += 1;
    }

    /// How many readers to add to the `running` ones: as many again
    /// (within the budget) if the walk waited and most reads were slow,
    /// timed on [`MIN_SAMPLES`] reads at least; the
    /// evidence then starts afresh, for the new number of readers. None
    /// ever again once more readers made requests slower: the storage
    /// (or the CPUs serving it) is saturated, and more would only queue.
    fn more(&mut self, running: usize) -> usize {
        let enough = self.timed >= MIN_SAMPLES;
        let slow = 2 * self.slow > self.timed;
        if running >= self.most || self.waits == 0 || !enough || !slow {
            return 0;
        }
        let mean = self.spent / u32::try_from(self.timed).unwrap_or(u32::MAX);
        if self
            .before
            .is_some_and(|before| mean > before.saturating_mul(3) / 2)
        {
            self.most = running;
            return 0;
        }
        self.before = Some(mean);
        self.timed = 0;
        self.slow = 0;
        self.spent = Duration::ZERO;
        self.waits = 0;
        running.max(1).min(self.most - running)
    }
}

/// Times the requests of one directory read, kind by kind (open, list,
/// stats). Its latency is that of the slowest kind, per request: after
/// a listing that carried attributes the stats are answered from a
/// cache, and averaging them in would hide a slow open and list.
#[derive(Debug)]
pub(super) struct RequestTimer {
    last: Instant,
    slowest: Duration,
}

impl RequestTimer {
    /// Starts timing, before the first request.
    pub(super) fn start() -> RequestTimer {
        RequestTimer {
            last: Instant::now(),
            slowest: Duration::ZERO,
        }
    }

    /// `requests` requests of one kind made since the last mark.
    pub(super) fn mark(&mut self, requests: usize) {
        let now = Instant::now();
        let spent = now.duration_since(self.last);
        let requests = u32::try_from(requests).unwrap_or(u32::MAX);
        if let Some(each) = spent.checked_div(requests) {
            self.slowest = self.slowest.max(each);
        }
        self.last = now;
    }

    /// The latency of the slowest kind of request so far, per request.
    pub(super) fn slowest(&self) -> Duration {
        self.slowest
    }
}

/// The entries of a listing that `tree::stat_entries` stats.
pub(super) fn stats_made(listing: &Listing) -> usize {
    let stated = |entry: &&tree::Listed| entry.file_type != FileType::Directory;
    listing.entries.iter().filter(stated).count()
}

/// Shared by the walk's [`Readers`] and every reader thread; the walk
/// submits, takes and withdraws, the readers run what is queued.
struct Shared {
    state: Mutex<State>,
    /// A request queued, or the readers closed: wakes the readers.
    work: Condvar,
    /// A request done: wakes the walk waiting in `take`.
    done: Condvar,
    /// Follow a symlink named as a directory (`-L`), and stat through
    /// links.
    follow: bool,
    /// The count-ahead's listings, taken before listing a directory anew.
    listings: Option<Arc<Listings>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing is left half-changed under the lock (no code that can
        // panic runs there), so a poisoned lock is still consistent.
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// The reader threads, owned by the walk; dropping it stops and joins
/// them.
pub(super) struct Readers {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    next: Ticket,
    /// Requests submitted and not yet taken or withdrawn.
    outstanding: usize,
    /// Requests that may be outstanding: two a reader, or 0 when the
    /// readers only run background tasks.
    window: usize,
    /// Whether the walk asks the readers for directories.
    read_ahead: bool,
}

/// Adds background tasks; handed to each task as it runs, so no task
/// holds the readers (which would keep them from ever being dropped).
pub(super) struct Background<'a>(&'a Shared);

impl Background<'_> {
    pub(super) fn spawn(&self, task: Task) {
        self.0.lock().tasks.push(task);
        self.0.work.notify_one();
    }

    /// A task's directory read took `latency` a request (see
    /// [`RequestTimer`]): it sizes the readers as the walk's reads do.
    pub(super) fn timed(&self, latency: Duration) {
        self.0.lock().sizing.timed(latency);
    }
}

impl Readers {
    /// Starts `first` readers, and up to `most` as the walk waits on
    /// slow requests; if `read_ahead`, the walk asks them for
    /// directories, else they only run background tasks; a directory
    /// whose listing is in `listings` is not listed again. `None` for
    /// none (or when no thread can be started): the walk then reads every
    /// directory itself.
    pub(super) fn start(
        first: usize,
        most: usize,
        read_ahead: bool,
        follow: bool,
        listings: Option<Arc<Listings>>,
    ) -> Option<Readers> {
        let state = State {
            queue: Vec::new(),
            tasks: Vec::new(),
            slots: HashMap::new(),
            closed: false,
            sizing: Sizing::new(most),
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            work: Condvar::new(),
            done: Condvar::new(),
            follow,
            listings,
        });
        let mut readers = Readers {
            shared,
            threads: Vec::new(),
            next: 0,
            outstanding: 0,
            window: 0,
            read_ahead,
        };
        readers.add(first.min(most));
        match readers.threads.is_empty() {
            true => {
                readers.close();
                None
            }
            false => Some(readers),
        }
    }

    /// Readers to start with: a few per CPU, more while `counting` (the
    /// count-ahead runs on them), within `most`.
    pub(super) fn first(most: usize, counting: bool) -> usize {
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let per_cpu = match counting {
            true => COUNTING_READERS_PER_CPU,
            false => READERS_PER_CPU,
        };
        (per_cpu * cpus).min(most)
    }

    /// Starts `count` more readers (fewer if a thread cannot be started),
    /// and widens the window to two requests a reader. Only the walk's
    /// thread starts readers (from `start` and `take`), so the threads and
    /// the window are its alone; a new reader waits on `work` like the
    /// others and takes what is queued at once.
    fn add(&mut self, count: usize) {
        for _ in 0..count {
            let shared = Arc::clone(&self.shared);
            let spawned = std::thread::Builder::new()
                .name("pcopy-read".into())
                .spawn(move || serve(&shared));
            match spawned {
                Ok(thread) => self.threads.push(thread),
                Err(_) => break,
            }
        }
        self.window = match self.read_ahead {
            true => 2 * self.threads.len(),
            false => 0,
        };
    }

    /// Whether the walk asks the readers for directories at all.
    pub(super) fn read_ahead(&self) -> bool {
        self.read_ahead
    }

    /// Adds a background task.
    pub(super) fn spawn(&self, task: Task) {
        Background(&self.shared).spawn(task);
    }

    /// Whether the walk may submit another request.
    pub(super) fn has_room(&self) -> bool {
        self.outstanding < self.window
    }

    /// Asks for the directory `name` beneath `parent` to be read.
    pub(super) fn submit(&mut self, parent: &Arc<OwnedFd>, name: OsString) -> Ticket {
        let ticket = self.next;
        self.next += 1;
        self.outstanding += 1;
        let request = Request {
            ticket,
            parent: Arc::downgrade(parent),
            name,
        };
        let mut state = self.shared.lock();
        state.slots.insert(ticket, Slot::Queued);
        state.queue.push(request);
        drop(state);
        self.shared.work.notify_one();
        ticket
    }

    /// The result of `ticket`: waited for if a reader is at it; `None` if
    /// no reader started it (withdrawn: the walk reads it itself, at once,
    /// rather than wait behind others) or it could not be read.
    pub(super) fn take(&mut self, ticket: Ticket) -> Option<ReadDir> {
        self.outstanding -= 1;
        let mut state = self.shared.lock();
        if !matches!(state.slots.get(&ticket), Some(Slot::Done(_))) {
            state.sizing.waited();
        }
        // The reader at it always ends in `Done` (a panic included, see
        // `serve`) and then wakes this wait.
        while let Some(Slot::Running) = state.slots.get(&ticket) {
            state = (self.shared.done.wait(state)).unwrap_or_else(|poison| poison.into_inner());
        }
        let read = match state.slots.remove(&ticket) {
            Some(Slot::Done(read)) => read,
            _ => {
                state.queue.retain(|r| r.ticket != ticket);
                None
            }
        };
        let more = state.sizing.more(self.threads.len());
        drop(state);
        if more > 0 {
            self.add(more);
        }
        read
    }

    /// Withdraws `ticket`: the walk will not enter that directory.
    pub(super) fn cancel(&mut self, ticket: Ticket) {
        self.outstanding -= 1;
        let mut state = self.shared.lock();
        let slot = state.slots.remove(&ticket);
        if let Some(Slot::Queued) = slot {
            state.queue.retain(|r| r.ticket != ticket);
        }
        // A result is dropped once the lock is released: closing a
        // descriptor may wait on the file system. A reader still at it
        // finds its slot gone and drops what it read.
        drop(state);
        drop(slot);
    }

    fn close(&mut self) {
        let mut state = self.shared.lock();
        state.closed = true;
        // Tasks not run are dropped, with what they hold (the count's
        // end of the event channel among it), outside the lock.
        let tasks = std::mem::take(&mut state.tasks);
        drop(state);
        drop(tasks);
        self.shared.work.notify_all();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Readers {
    fn drop(&mut self) {
        self.close();
    }
}

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readers")
            .field("threads", &self.threads.len())
            .field("outstanding", &self.outstanding)
            .finish()
    }
}

/// What a reader does next.
enum Work {
    Read(Request),
    Task(Task),
}

/// A reader: takes requests, or tasks when no request waits, until the
/// readers are closed.
fn serve(shared: &Shared) {
    loop {
        let work = {
            let mut state = shared.lock();
            loop {
                if state.closed {
                    return;
                }
                if let Some(request) = state.queue.pop() {
                    state.slots.insert(request.ticket, Slot::Running);
                    break Work::Read(request);
                }
                if let Some(task) = state.tasks.pop() {
                    break Work::Task(task);
                }
                state = (shared.work.wait(state)).unwrap_or_else(|poison| poison.into_inner());
            }
        };
        let request = match work {
            Work::Read(request) => request,
            Work::Task(task) => {
                // A task that panics ends there; the reader goes on.
                let run = std::panic::AssertUnwindSafe(|| task(&Background(shared)));
                let _ = std::panic::catch_unwind(run);
                continue;
            }
        };
        // A panic while reading must still end in `Done`, or the walk
        // would wait for this request for ever.
        let mut timer = RequestTimer::start();
        let reading = std::panic::AssertUnwindSafe(|| read(&request, shared, &mut timer));
        let read = std::panic::catch_unwind(reading).ok().flatten();
        let mut state = shared.lock();
        state.sizing.timed(timer.slowest());
        // Withdrawn meanwhile: nobody wants it; dropped below, unlocked.
        let unwanted = match state.slots.get_mut(&request.ticket) {
            Some(slot) => {
                *slot = Slot::Done(read);
                None
            }
            None => read,
        };
        drop(state);
        drop(unwanted);
        shared.done.notify_all();
    }
}

/// Opens, stats and lists a requested directory, and stats its entries
/// that are not directories, timing each kind of request; or takes the
/// count-ahead's listing of it, if it is unchanged since.
fn read(request: &Request, shared: &Shared, timer: &mut RequestTimer) -> Option<ReadDir> {
    let follow = shared.follow;
    let parent = request.parent.upgrade()?;
    let fd = tree::open_dir(parent.as_fd(), &request.name, follow).ok()?;
    drop(parent);
    // The clock before the stamp, the stamp before the listing (see
    // `listings`).
    let read_at = SystemTime::now();
    let stat = EntryStat::of_fd(fd.as_fd()).ok()?;
    timer.mark(2);
    let kept = shared.listings.as_deref();
    if let Some(listing) = kept.and_then(|kept| kept.take(For::Walk, &stat)) {
        return Some(ReadDir { fd, stat, listing });
    }
    let mut listing = tree::list(fd.as_fd());
    timer.mark(1);
    tree::stat_entries(fd.as_fd(), &mut listing.entries, follow);
    timer.mark(stats_made(&listing));
    // Not the count's yet (or not kept): a copy for it, while it runs.
    if let Some(kept) = kept.filter(|kept| kept.count_wants(listing.entries.len())) {
        kept.keep(For::Count, &stat, read_at, listing.clone(), follow);
    }
    Some(ReadDir { fd, stat, listing })
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::ffi::OsStrExt;
    use std::sync::mpsc;

    use rustix::fs::{FileType, Mode, OFlags};

    use super::*;

    impl Readers {
        /// The reader threads running.
        fn threads(&self) -> usize {
            self.threads.len()
        }

        /// Waits until no request is queued or being read: woken by each
        /// reader's `done`.
        fn settle(&self) {
            let mut state = self.shared.lock();
            let busy = |state: &State| {
                !state.queue.is_empty() || state.slots.values().any(|s| matches!(s, Slot::Running))
            };
            while busy(&state) {
                state = (self.shared.done.wait(state)).unwrap_or_else(|p| p.into_inner());
            }
        }
    }

    fn open(path: &std::path::Path) -> Arc<OwnedFd> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        Arc::new(rustix::fs::open(path, flags, Mode::empty()).expect("open"))
    }

    /// `dirs` directories d0.. below `root`, the nth holding n files of n
    /// bytes and a subdirectory.
    fn tree(root: &std::path::Path, dirs: usize) {
        for dir in 0..dirs {
            fs::create_dir_all(root.join(format!("d{dir}/sub"))).expect("mkdir");
            for file in 0..dir {
                fs::write(root.join(format!("d{dir}/f{file}")), vec![0; dir]).expect("write");
            }
        }
    }

    #[test]
    fn readers_list_and_stat_what_the_walk_asks_for() {
        let tmp = tempfile::tempdir().expect("tempdir");
        tree(tmp.path(), 8);
        let root = open(tmp.path());
        let mut readers = Readers::start(4, 4, true, false, None).expect("readers");
        assert!(readers.has_room());
        let tickets: Vec<_> = (0..8)
            .map(|dir| readers.submit(&root, format!("d{dir}").into()))
            .collect();
        assert!(!readers.has_room(), "two requests per reader");
        readers.settle();
        for (dir, ticket) in tickets.into_iter().enumerate() {
            let read = readers.take(ticket).expect("read by a reader");
            assert_eq!(read.stat.file_type(), FileType::Directory);
            assert_eq!(read.listing.err, None);
            let mut names: Vec<_> = (read.listing.entries.iter())
                .map(|e| (e.name.as_bytes().to_vec(), e.stat.map(|st| st.len())))
                .collect();
            names.sort();
            let mut expected: Vec<_> = (0..dir)
                .map(|file| (format!("f{file}").into_bytes(), Some(dir as u64)))
                .collect();
            expected.push((b"sub".to_vec(), None));
            assert_eq!(names, expected, "d{dir}");
        }
        assert!(readers.has_room());
    }

    #[test]
    fn what_cannot_be_read_or_is_withdrawn_is_left_to_the_walk() {
        let tmp = tempfile::tempdir().expect("tempdir");
        tree(tmp.path(), 2);
        fs::write(tmp.path().join("file"), "x").expect("write");
        let root = open(tmp.path());
        let mut readers = Readers::start(2, 2, true, false, None).expect("readers");
        let missing = readers.submit(&root, "missing".into());
        let not_a_dir = readers.submit(&root, "file".into());
        let withdrawn = readers.submit(&root, "d1".into());
        readers.settle();
        assert!(readers.take(missing).is_none());
        assert!(readers.take(not_a_dir).is_none());
        readers.cancel(withdrawn);
        // The window is whole again, and later requests are served.
        let again = readers.submit(&root, "d1".into());
        readers.settle();
        assert!(readers.take(again).is_some());
        assert_eq!(readers.outstanding, 0);
    }

    #[test]
    fn readers_double_only_while_most_requests_are_slow_and_the_walk_waits() {
        let fast = Duration::from_micros(10);
        let slow = Duration::from_millis(1);
        let mut sizing = Sizing::new(32);
        // A page cache: the walk waits, but on CPUs, not on requests.
        (0..20).for_each(|_| sizing.timed(fast));
        sizing.waited();
        assert_eq!(sizing.more(4), 0);
        // Slow requests, but the walk has not waited since.
        let mut sizing = Sizing::new(32);
        (0..20).for_each(|_| sizing.timed(slow));
        assert_eq!(sizing.more(4), 0);
        // It waits: as many readers again.
        sizing.waited();
        assert_eq!(sizing.more(4), 4);
        // Eight readers need eight new reads too, most of them slow, and a
        // wait of the walk's before they double again.
        (0..7).for_each(|_| sizing.timed(slow));
        sizing.waited();
        assert_eq!(sizing.more(8), 0);
        (0..9).for_each(|_| sizing.timed(fast));
        assert_eq!(sizing.more(8), 0, "16 reads, 7 slow: not most");
        (0..10).for_each(|_| sizing.timed(slow));
        assert_eq!(sizing.more(8), 8);
        // Never beyond the budget.
        let mut sizing = Sizing::new(32);
        (0..24).for_each(|_| sizing.timed(slow));
        sizing.waited();
        assert_eq!(sizing.more(24), 8);
        (0..40).for_each(|_| sizing.timed(slow));
        sizing.waited();
        assert_eq!(sizing.more(32), 0);
    }

    #[test]
    fn readers_stop_growing_once_more_of_them_make_requests_slower() {
        let mut sizing = Sizing::new(32);
        let mut grow = |running: usize, latency: Duration| {
            (0..MIN_SAMPLES).for_each(|_| sizing.timed(latency));
            sizing.waited();
            sizing.more(running)
        };
        // A server that takes the same time whatever is in flight.
        assert_eq!(grow(4, Duration::from_millis(1)), 4);
        assert_eq!(grow(8, Duration::from_micros(1400)), 8);
        // One busy at its limit: twice the readers, twice the wait.
        assert_eq!(grow(16, Duration::from_micros(2800)), 0);
        assert_eq!(
            grow(16, Duration::from_millis(1)),
            0,
            "for the rest of the run"
        );
    }

    #[test]
    fn a_slow_start_is_forgotten_once_requests_are_fast() {
        let mut sizing = Sizing::new(32);
        (0..SAMPLE_WINDOW).for_each(|_| sizing.timed(Duration::from_millis(5)));
        (0..SAMPLE_WINDOW).for_each(|_| sizing.timed(Duration::from_micros(5)));
        sizing.waited();
        assert_eq!(sizing.more(4), 0);
    }

    #[test]
    fn a_read_is_as_slow_as_its_slowest_kind_of_request() {
        let mut timer = RequestTimer::start();
        timer.mark(0);
        assert_eq!(timer.slowest(), Duration::ZERO, "no request, no time");
        std::thread::sleep(Duration::from_millis(2));
        timer.mark(2);
        let open = timer.slowest();
        assert!(open >= Duration::from_millis(1), "{open:?}");
        // A hundred stats answered at once do not hide the slow open.
        timer.mark(100);
        assert_eq!(timer.slowest(), open);
    }

    /// Has the readers read the directories d0.. below `root`, a window
    /// at a time, and takes each.
    fn read_all(readers: &mut Readers, root: &Arc<OwnedFd>, dirs: usize) {
        let mut next = 0;
        while next < dirs {
            let mut asked = Vec::new();
            while next < dirs && readers.has_room() {
                asked.push(readers.submit(root, format!("d{next}").into()));
                next += 1;
            }
            readers.settle();
            for ticket in asked {
                assert!(readers.take(ticket).is_some(), "read by a reader");
            }
        }
    }

    /// Keeps every reader running busy in a task until the returned
    /// senders are dropped; returns once each has started.
    fn occupy(readers: &Readers) -> Vec<mpsc::Sender<()>> {
        let (started, running) = mpsc::channel();
        let mut holds = Vec::new();
        for _ in 0..readers.threads() {
            let (hold, held) = mpsc::channel::<()>();
            let started = started.clone();
            readers.spawn(Box::new(move |_| {
                let _ = started.send(());
                // Returns when the test drops its sender.
                let _ = held.recv();
            }));
            holds.push(hold);
        }
        for _ in 0..readers.threads() {
            running.recv().expect("a reader took the task");
        }
        holds
    }

    /// Makes the walk wait: every reader busy, a request asked for and
    /// taken at once (not started: withdrawn, the walk reads it).
    fn wait_once(readers: &mut Readers, root: &Arc<OwnedFd>) {
        let holds = occupy(readers);
        let ticket = readers.submit(root, "d0".into());
        assert!(readers.take(ticket).is_none(), "no reader was free");
        drop(holds);
    }

    fn timed(readers: &Readers, latency: Duration, reads: usize) {
        (0..reads).for_each(|_| Background(&readers.shared).timed(latency));
    }

    #[test]
    fn on_a_page_cache_the_readers_stay_as_many_as_they_started() {
        let tmp = tempfile::tempdir().expect("tempdir");
        tree(tmp.path(), 64);
        let root = open(tmp.path());
        let mut readers = Readers::start(2, 32, true, false, None).expect("readers");
        // Twice over: the second time every read comes from the cache.
        for _ in 0..2 {
            wait_once(&mut readers, &root);
            read_all(&mut readers, &root, 64);
        }
        let timed = readers.shared.lock().sizing.timed;
        assert!(timed >= SAMPLE_WINDOW / 2, "{timed} reads timed");
        wait_once(&mut readers, &root);
        assert_eq!((readers.threads(), readers.window), (2, 4));
    }

    #[test]
    fn slow_reads_while_the_walk_waits_start_more_readers_within_the_budget() {
        let tmp = tempfile::tempdir().expect("tempdir");
        tree(tmp.path(), 4);
        let root = open(tmp.path());
        let mut readers = Readers::start(2, 6, true, false, None).expect("readers");
        // Reads as slow as a slow mount's, and no wait yet.
        timed(&readers, SLOW_REQUEST, 16);
        assert_eq!(readers.threads(), 2);
        wait_once(&mut readers, &root);
        assert_eq!((readers.threads(), readers.window), (4, 8));
        // The next doubling waits for enough slow reads again.
        timed(&readers, SLOW_REQUEST, 3);
        wait_once(&mut readers, &root);
        assert_eq!(readers.threads(), 4, "too few reads timed");
        timed(&readers, SLOW_REQUEST, 8);
        wait_once(&mut readers, &root);
        assert_eq!(
            (readers.threads(), readers.window),
            (6, 12),
            "no more than the budget"
        );
        timed(&readers, SLOW_REQUEST, 16);
        wait_once(&mut readers, &root);
        assert_eq!(readers.threads(), 6);
    }

    #[test]
    fn readers_start_at_a_few_per_cpu_and_more_while_counting() {
        let cpus = std::thread::available_parallelism().expect("cpus").get();
        assert_eq!(Readers::first(64, false), (2 * cpus).min(64));
        assert_eq!(Readers::first(64, true), (6 * cpus).min(64));
        assert_eq!(Readers::first(1, true), 1, "within the budget");
    }

    #[test]
    fn no_readers_means_the_walk_reads_alone() {
        assert!(Readers::start(0, 0, true, false, None).is_none());
    }
}
