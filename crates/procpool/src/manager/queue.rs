//! [`Queue`], the handle to a queue owned by a [`Manager`](super::Manager).
//! Owns the handle and its serialized form; calls the store directly for a
//! handle next to its manager and the remote side otherwise.

use std::ffi::OsString;
use std::fmt;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de::DeserializeOwned};

use super::endpoint;
use super::protocol::{self, Address, Token, Wait, WireWait};
use super::queue_error::{
    Fail, GetError, GetTimeoutError, ManagerError, PutError, PutTimeoutError, TryGetError,
    TryPutError,
};
use super::remote::RemoteQueue;
use super::server;
use super::store::Shared;

/// A handle to a FIFO queue owned by a [`Manager`](super::Manager), usable
/// from any thread of any process: the multiprocessing `Manager().Queue()`
/// of Python.
///
/// Pool workers cannot share an ordinary channel: its file descriptors exist
/// only in the process that created it, and pool workers are already running
/// when a task arrives. A `Queue` handle instead is just the manager's
/// socket address, an access token and the queue's number, so it can be
/// cloned into threads, or serialized into a task's arguments and used by a
/// worker process, which connects to the manager on first use.
///
/// Cost per operation: a handle made by [`Manager::queue`](super::Manager::queue)
/// (or cloned from one) works on the queue directly under a mutex, with no
/// serialization. A deserialized handle in another process serializes its
/// items with postcard and pays one round trip on a Unix socket per call,
/// except [`put`](Queue::put) on an unbounded queue, which costs one socket
/// write and is confirmed later in bulk (see there);
/// [`put_many`](Queue::put_many) and [`get_many`](Queue::get_many) move many
/// items for one round trip. A handle deserialized in the process that owns
/// the manager works directly again.
///
/// Items are never lost or duplicated: an item leaves the queue only when it
/// is handed to a live caller (a remote `get` whose client died puts its
/// items back at the front), and every refused item comes back, in the
/// error of the call or, for a write-behind `put`, from
/// [`flush`](Queue::flush).
///
/// ```
/// let manager = procpool::Manager::new()?;
/// let queue = manager.queue::<String>(0)?;
/// let producer = queue.clone();
/// std::thread::spawn(move || producer.put("hello".to_string())).join().unwrap()?;
/// assert_eq!(queue.get()?, "hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Queue<T> {
    flavor: Flavor<T>,
}

enum Flavor<T> {
    /// In the manager's process: the queue itself.
    Local {
        shared: Arc<Shared<T>>,
        id: u32,
        address: Arc<Address>,
    },
    /// Anywhere else: requests to the manager's server.
    Remote(Arc<RemoteQueue>),
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Queue<T> {
        let flavor = match &self.flavor {
            Flavor::Local {
                shared,
                id,
                address,
            } => Flavor::Local {
                shared: Arc::clone(shared),
                id: *id,
                address: Arc::clone(address),
            },
            Flavor::Remote(remote) => Flavor::Remote(Arc::clone(remote)),
        };
        Queue { flavor }
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, id, address) = match &self.flavor {
            Flavor::Local { id, address, .. } => ("local", *id, &**address),
            Flavor::Remote(remote) => ("remote", remote.id, remote.endpoint.address()),
        };
        f.debug_struct("Queue")
            .field("flavor", &kind)
            .field("id", &id)
            .field("manager", &address.socket)
            .finish_non_exhaustive()
    }
}

impl<T> Queue<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    pub(crate) fn local(shared: Arc<Shared<T>>, id: u32, address: Arc<Address>) -> Queue<T> {
        Queue {
            flavor: Flavor::Local {
                shared,
                id,
                address,
            },
        }
    }

    fn remote(address: Address, id: u32, maxsize: usize) -> Queue<T> {
        let endpoint = endpoint::endpoint(address);
        let remote = RemoteQueue::new(endpoint, id, protocol::type_tag::<T>(), maxsize);
        Queue {
            flavor: Flavor::Remote(Arc::new(remote)),
        }
    }

    /// A handle that goes through the socket even in the manager's process,
    /// so tests can drive the remote path from threads.
    #[cfg(test)]
    pub(crate) fn to_remote(&self) -> Queue<T> {
        let (address, id, maxsize) = self.parts();
        let address = Address {
            socket: address.socket.clone(),
            token: address.token,
        };
        Queue::remote(address, id, maxsize)
    }

    #[cfg(test)]
    pub(crate) fn shared(&self) -> Option<&Arc<Shared<T>>> {
        match &self.flavor {
            Flavor::Local { shared, .. } => Some(shared),
            Flavor::Remote(_) => None,
        }
    }

    fn put_with(&self, item: T, wait: WireWait) -> Result<(), (T, Fail)> {
        match &self.flavor {
            Flavor::Local { shared, .. } => shared
                .put(item, wait.start())
                .map_err(|(item, stop)| (item, stop.into())),
            Flavor::Remote(remote) => remote.put(&item, wait).map_err(|fail| (item, fail)),
        }
    }

    fn get_with(&self, wait: WireWait) -> Result<T, Fail> {
        match &self.flavor {
            Flavor::Local { shared, .. } => shared.get(wait.start()).map_err(Fail::from),
            Flavor::Remote(remote) => remote.get(wait),
        }
    }

    fn status(&self) -> Result<(usize, usize), ManagerError> {
        let status = match &self.flavor {
            Flavor::Local { shared, .. } => shared.status().map_err(Fail::from),
            Flavor::Remote(remote) => remote.status(),
        };
        status.map_err(Fail::impossible)
    }

    /// Appends `item`, blocking while a bounded queue is full.
    ///
    /// Fails, handing the item back, if the queue is closed or the manager
    /// is gone (also when it goes away while this call waits).
    ///
    /// On a remote handle of an unbounded queue, where a put cannot block,
    /// `put` is write-behind: it returns once the item is written to the
    /// manager's socket (one write, no round trip), and the manager runs it
    /// moments later, in order with this process's other puts to the same
    /// manager, even if this process dies meanwhile. Confirmations are
    /// collected in bulk: every few hundred puts, before any other operation
    /// of this process on the same manager, on [`flush`](Queue::flush), and
    /// when a handle is dropped, so a pool task's puts through a handle it
    /// received as an argument are in place before its result is. Should a
    /// close overtake a put, the refusal comes late: later puts to the queue
    /// fail with `Closed`, and [`flush`](Queue::flush) hands the refused
    /// items back.
    ///
    /// ```
    /// let manager = procpool::Manager::new()?;
    /// let queue = manager.queue::<u32>(0)?;
    /// queue.put(5)?;
    /// assert_eq!(queue.qsize()?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn put(&self, item: T) -> Result<(), PutError<T>> {
        let put = match &self.flavor {
            Flavor::Remote(remote) if remote.maxsize == 0 => remote.put_behind(item),
            _ => self.put_with(item, WireWait::Block),
        };
        put.map_err(|(item, fail)| fail.into_put(item))
    }

    /// Waits until the manager has run every earlier write-behind
    /// [`put`](Queue::put) of this process, so that every process now sees
    /// those items; call it before telling another process, by other means
    /// than this manager, that they are there. Hands back, as `Closed`, this
    /// queue's items that the manager refused because the queue had been
    /// closed. Returns at once when nothing is in flight, as for every
    /// handle in the manager's own process.
    ///
    /// ```
    /// let manager = procpool::Manager::new()?;
    /// let queue = manager.queue::<u32>(0)?;
    /// queue.put(1)?;
    /// queue.flush()?;
    /// assert_eq!(queue.qsize()?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn flush(&self) -> Result<(), PutError<Vec<T>>> {
        match &self.flavor {
            Flavor::Local { .. } => Ok(()),
            Flavor::Remote(remote) => remote.flush().map_err(|(items, fail)| fail.into_put(items)),
        }
    }

    /// Appends `item`, waiting at most `timeout` for room in a bounded queue.
    ///
    /// ```
    /// use std::time::Duration;
    /// let manager = procpool::Manager::new()?;
    /// let queue = manager.queue::<u32>(1)?;
    /// queue.put_timeout(1, Duration::from_millis(10))?;
    /// let full = queue.put_timeout(2, Duration::from_millis(10));
    /// assert!(matches!(full, Err(procpool::PutTimeoutError::Timeout(2))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), PutTimeoutError<T>> {
        self.put_with(item, WireWait::from_timeout(timeout))
            .map_err(|(item, fail)| match fail {
                Fail::WouldBlock | Fail::TimedOut => PutTimeoutError::Timeout(item),
                Fail::Closed { .. } => PutTimeoutError::Closed(item),
                Fail::Manager(e) => PutTimeoutError::Failed(item, e),
            })
    }

    /// Appends `item` only if there is room right now.
    ///
    /// ```
    /// let manager = procpool::Manager::new()?;
    /// let queue = manager.queue::<u32>(1)?;
    /// queue.put_nowait(1)?;
    /// assert!(matches!(queue.put_nowait(2), Err(procpool::TryPutError::Full(2))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn put_nowait(&self, item: T) -> Result<(), TryPutError<T>> {
        self.put_with(item, WireWait::Now)
            .map_err(|(item, fail)| match fail {
                Fail::WouldBlock | Fail::TimedOut => TryPutError::Full(item),
                Fail::Closed { .. } => TryPutError::Closed(item),
                Fail::Manager(e) => TryPutError::Failed(item, e),
            })
    }

    /// Appends all `items` in order, in one round trip for a remote handle.
    /// On a bounded queue it appends what fits and blocks for room for the
    /// rest. If the queue is closed midway, the error holds the items that
    /// were not appended; those before them stay in the queue.
    ///
    /// ```
    /// let manager = procpool::Manager::new()?;
    /// let queue = manager.queue::<u32>(0)?;
    /// queue.put_many(vec![1, 2, 3])?;
    /// assert_eq!(queue.get_many(10)?, vec![1, 2, 3]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn put_many(&self, items: Vec<T>) -> Result<(), PutError<Vec<T>>> {
        match &self.flavor {
            Flavor::Local { shared, .. } => shared
                .put_many(items)
                .map_err(|(rest, stop)| Fail::from(stop).into_put(rest)),
            Flavor::Remote(remote) => remote.put_many(&items).map_err(|fail| {
                let mut items = items;
                if let Fail::Closed { accepted } = fail {
                    items.drain(..accepted.min(items.len()));
                }
                fail.into_put(items)
            }),
        }
    }

    /// Removes and returns the oldest item, blocking until there is one.
    ///
    /// After [`close`](Queue::close) it still returns the items put before
    /// the close, then fails with [`GetError::Closed`]: consumers end
    /// without sentinel values.
    ///
    /// ```
    /// let manager = procpool::Manager::new()?;
    /// let queue = manager.queue::<u32>(0)?;
    /// queue.put(1)?;
    /// queue.close()?;
    /// assert_eq!(queue.get()?, 1);
    /// assert!(matches!(queue.get(), Err(procpool::GetError::Closed)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get(&self) -> Result<T, GetError> {
        self.get_with(WireWait::Block).map_err(Fail::into_get)
    }

    /// Like [`get`](Queue::get), waiting at most `timeout` for an item.
    ///
    /// ```
    /// use std::time::Duration;
    /// let manager = procpool::Manager::new()?;
    /// let queue = manager.queue::<u32>(0)?;
    /// let empty = queue.get_timeout(Duration::from_millis(10));
    /// assert!(matches!(empty, Err(procpool::GetTimeoutError::Timeout)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetTimeoutError> {
        self.get_with(WireWait::from_timeout(timeout))
            .map_err(|fail| match fail {
                Fail::WouldBlock | Fail::TimedOut => GetTimeoutError::Timeout,
                Fail::Closed { .. } => GetTimeoutError::Closed,
                Fail::Manager(e) => GetTimeoutError::Failed(e),
            })
    }

    /// Removes and returns the oldest item if there is one right now.
    ///
    /// ```
    /// let manager = procpool::Manager::new()?;
    /// let queue = manager.queue::<u32>(0)?;
    /// assert!(matches!(queue.get_nowait(), Err(procpool::TryGetError::Empty)));
    /// queue.put(3)?;
    /// assert_eq!(queue.get_nowait()?, 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_nowait(&self) -> Result<T, TryGetError> {
        self.get_with(WireWait::Now).map_err(|fail| match fail {
            Fail::WouldBlock | Fail::TimedOut => TryGetError::Empty,
            Fail::Closed { .. } => TryGetError::Closed,
            Fail::Manager(e) => TryGetError::Failed(e),
        })
    }

    /// Removes and returns up to `max` of the oldest items, in one round trip
    /// for a remote handle. Blocks until at least one item is there; returns
    /// whatever is there then, without waiting to fill the batch. After a
    /// close it drains like [`get`](Queue::get). `max == 0` returns an empty
    /// batch at once.
    ///
    /// ```
    /// let manager = procpool::Manager::new()?;
    /// let queue = manager.queue::<u32>(0)?;
    /// queue.put_many(vec![1, 2, 3])?;
    /// assert_eq!(queue.get_many(2)?, vec![1, 2]);
    /// assert_eq!(queue.get_many(2)?, vec![3]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_many(&self, max: usize) -> Result<Vec<T>, GetError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        match &self.flavor {
            Flavor::Local { shared, .. } => shared
                .get_many(max, Wait::Block)
                .map_err(|stop| Fail::from(stop).into_get()),
            Flavor::Remote(remote) => remote.get_many(max).map_err(Fail::into_get),
        }
    }

    /// The number of items in the queue at the moment of the call.
    ///
    /// ```
    /// let manager = procpool::Manager::new()?;
    /// let queue = manager.queue::<u32>(0)?;
    /// queue.put_many(vec![1, 2])?;
    /// assert_eq!(queue.qsize()?, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn qsize(&self) -> Result<usize, ManagerError> {
        Ok(self.status()?.0)
    }

    /// Whether the queue held no item at the moment of the call.
    ///
    /// ```
    /// let manager = procpool::Manager::new()?;
    /// let queue = manager.queue::<u32>(0)?;
    /// assert!(queue.empty()?);
    /// queue.put(1)?;
    /// assert!(!queue.empty()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn empty(&self) -> Result<bool, ManagerError> {
        Ok(self.status()?.0 == 0)
    }

    /// Whether a bounded queue was full at the moment of the call (an
    /// unbounded one never is).
    ///
    /// ```
    /// let manager = procpool::Manager::new()?;
    /// let queue = manager.queue::<u32>(1)?;
    /// assert!(!queue.full()?);
    /// queue.put(1)?;
    /// assert!(queue.full()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn full(&self) -> Result<bool, ManagerError> {
        let (len, maxsize) = self.status()?;
        Ok(maxsize != 0 && len >= maxsize)
    }

    /// Declares that no more items will come: puts fail with `Closed` from
    /// now on (handing the item back), and gets return the remaining items
    /// and then fail with `Closed`, waking every consumer blocked on an
    /// empty queue. Closing twice is harmless.
    ///
    /// ```
    /// let manager = procpool::Manager::new()?;
    /// let queue = manager.queue::<u32>(0)?;
    /// queue.close()?;
    /// assert!(matches!(queue.put(1), Err(procpool::PutError::Closed(1))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close(&self) -> Result<(), ManagerError> {
        let closed = match &self.flavor {
            Flavor::Local { shared, .. } => shared.close().map_err(Fail::from),
            Flavor::Remote(remote) => remote.close(),
        };
        closed.map_err(Fail::impossible)
    }
}

impl<T> Queue<T> {
    /// The manager's address, this queue's id and its bound.
    fn parts(&self) -> (&Address, u32, usize) {
        match &self.flavor {
            Flavor::Local {
                shared,
                id,
                address,
            } => (address, *id, shared.maxsize()),
            Flavor::Remote(remote) => (remote.endpoint.address(), remote.id, remote.maxsize),
        }
    }
}

/// A handle as it travels: the socket path as raw bytes (any path the OS
/// accepts, UTF-8 or not), the token, the queue's id and its bound.
#[derive(Serialize, Deserialize)]
struct HandleOnWire {
    socket: Vec<u8>,
    token: Token,
    queue: u32,
    maxsize: u64,
}

/// Serializes to the manager's address and token and the queue's id: the
/// items stay in the manager.
impl<T> Serialize for Queue<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (address, queue, maxsize) = self.parts();
        HandleOnWire {
            socket: address.socket.as_os_str().as_bytes().to_vec(),
            token: address.token,
            queue,
            maxsize: maxsize as u64,
        }
        .serialize(serializer)
    }
}

/// Rebuilds a handle. It connects lazily, on its first operation; in the
/// manager's own process it uses the queue directly.
impl<'de, T> Deserialize<'de> for Queue<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Queue<T>, D::Error> {
        let wire = HandleOnWire::deserialize(deserializer)?;
        let address = Address {
            socket: PathBuf::from(OsString::from_vec(wire.socket)),
            token: wire.token,
        };
        if let Some(core) = server::local_core(&address)
            && let Some(shared) = core.typed_queue::<T>(wire.queue)
        {
            return Ok(Queue::local(shared, wire.queue, Arc::clone(&core.address)));
        }
        let maxsize = usize::try_from(wire.maxsize).unwrap_or(usize::MAX);
        Ok(Queue::remote(address, wire.queue, maxsize))
    }
}
