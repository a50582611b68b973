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
//! task that adds tasks for its subdirectories.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;

use super::entry_stat::EntryStat;
use super::tree::{self, Listing};

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
#[derive(Default)]
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
    /// Requests that may be outstanding: 0 when the readers only run
    /// background tasks.
    window: usize,
}

/// Adds background tasks; handed to each task as it runs, so no task
/// holds the readers (which would keep them from ever being dropped).
pub(super) struct Background<'a>(&'a Shared);

impl Background<'_> {
    pub(super) fn spawn(&self, task: Task) {
        self.0.lock().tasks.push(task);
        self.0.work.notify_one();
    }
}

impl Readers {
    /// Starts `count` readers, of which the walk may keep `for_walk`
    /// busy (the others are for background tasks); `None` for none (or
    /// when no thread can be started): the walk then reads every
    /// directory itself.
    pub(super) fn start(count: usize, for_walk: usize, follow: bool) -> Option<Readers> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            done: Condvar::new(),
            follow,
        });
        let mut threads = Vec::new();
        for _ in 0..count {
            let shared = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name("pcopy-read".into())
                .spawn(move || serve(&shared));
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(_) => break,
            }
        }
        let window = 2 * for_walk.min(threads.len());
        let mut readers = Readers {
            shared,
            threads,
            next: 0,
            outstanding: 0,
            window,
        };
        match readers.threads.is_empty() {
            true => {
                readers.close();
                None
            }
            false => Some(readers),
        }
    }

    /// Whether the walk asks the readers for directories at all.
    pub(super) fn read_ahead(&self) -> bool {
        self.window > 0
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
        // The reader at it always ends in `Done` (a panic included, see
        // `serve`) and then wakes this wait.
        while let Some(Slot::Running) = state.slots.get(&ticket) {
            state = (self.shared.done.wait(state)).unwrap_or_else(|poison| poison.into_inner());
        }
        match state.slots.remove(&ticket) {
            Some(Slot::Done(read)) => read,
            _ => {
                state.queue.retain(|r| r.ticket != ticket);
                None
            }
        }
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
        let reading = std::panic::AssertUnwindSafe(|| read(&request, shared.follow));
        let read = std::panic::catch_unwind(reading).ok().flatten();
        let mut state = shared.lock();
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
/// that are not directories.
fn read(request: &Request, follow: bool) -> Option<ReadDir> {
    let parent = request.parent.upgrade()?;
    let fd = tree::open_dir(parent.as_fd(), &request.name, follow).ok()?;
    drop(parent);
    let stat = EntryStat::of_fd(fd.as_fd()).ok()?;
    let mut listing = tree::list(fd.as_fd());
    tree::stat_entries(fd.as_fd(), &mut listing.entries, follow);
    Some(ReadDir { fd, stat, listing })
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::ffi::OsStrExt;

    use rustix::fs::{FileType, Mode, OFlags};

    use super::*;

    impl Readers {
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
        let mut readers = Readers::start(4, 4, false).expect("readers");
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
        let mut readers = Readers::start(2, 2, false).expect("readers");
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
    fn no_readers_means_the_walk_reads_alone() {
        assert!(Readers::start(0, 0, false).is_none());
    }
}
