//! Errors of the manager and its queues. Every error of an operation that
//! took an item hands the item back, like crossbeam's `SendError<T>(pub T)`,
//! so a refused item is never silently dropped.
//!
//! Owns the public errors and [`Fail`], the internal outcome every layer
//! reports before a public method shapes it into its own error; calls only
//! the store (for [`Stop`]).

use std::error::Error;
use std::fmt;
use std::io;

use super::store::Stop;

/// Why a manager could not be created or reached.
#[derive(Debug)]
#[non_exhaustive]
pub enum ManagerError {
    /// Creating the manager's private directory or socket failed, or a
    /// connection to it failed in an unexpected way.
    Io(io::Error),
    /// The manager was dropped or its process exited: its queues and their
    /// items no longer exist.
    Gone,
    /// The manager refused the handle's token: the handle was not made from
    /// this manager's queue, or it was altered.
    Refused,
    /// A message could not be encoded or decoded, or named a queue the
    /// manager does not have or with another item type than the handle's.
    /// The text says which.
    Protocol(String),
}

impl fmt::Display for ManagerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManagerError::Io(e) => write!(f, "manager i/o error: {e}"),
            ManagerError::Gone => {
                f.write_str("the manager is gone (dropped, or its process exited)")
            }
            ManagerError::Refused => f.write_str("the manager refused this handle's token"),
            ManagerError::Protocol(m) => write!(f, "manager protocol error: {m}"),
        }
    }
}

impl Error for ManagerError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            ManagerError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Writes a variant as `Name(..)` or `Name(.., detail)` without requiring
/// `T: Debug` of the item it carries.
fn debug_variant(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    detail: Option<&ManagerError>,
) -> fmt::Result {
    match detail {
        Some(e) => write!(f, "{name}(.., {e:?})"),
        None => write!(f, "{name}(..)"),
    }
}

/// Error of [`Queue::put`](super::Queue::put) and
/// [`Queue::put_many`](super::Queue::put_many). Carries back what was not
/// put: the item, or for `put_many` the items of the batch not yet in the
/// queue (those before them are in it).
pub enum PutError<T> {
    /// The queue was closed.
    Closed(T),
    /// The manager could not be reached.
    Failed(T, ManagerError),
}

impl<T> PutError<T> {
    /// Takes back what was not put.
    ///
    /// ```
    /// let manager = procpool::Manager::new()?;
    /// let queue = manager.queue::<u32>(0)?;
    /// queue.close()?;
    /// assert_eq!(queue.put(7).unwrap_err().into_inner(), 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            PutError::Closed(item) | PutError::Failed(item, _) => item,
        }
    }
}

impl<T> fmt::Debug for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Closed(_) => debug_variant(f, "Closed", None),
            PutError::Failed(_, e) => debug_variant(f, "Failed", Some(e)),
        }
    }
}

impl<T> fmt::Display for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Closed(_) => f.write_str("cannot put on a closed queue"),
            PutError::Failed(_, e) => write!(f, "put failed: {e}"),
        }
    }
}

impl<T> Error for PutError<T> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            PutError::Failed(_, e) => Some(e),
            PutError::Closed(_) => None,
        }
    }
}

/// Error of [`Queue::put_nowait`](super::Queue::put_nowait); carries the
/// item back.
pub enum TryPutError<T> {
    /// The queue is bounded and full.
    Full(T),
    /// The queue was closed.
    Closed(T),
    /// The manager could not be reached.
    Failed(T, ManagerError),
}

impl<T> TryPutError<T> {
    /// Takes back the item that was not put.
    ///
    /// ```
    /// let manager = procpool::Manager::new()?;
    /// let queue = manager.queue::<u32>(1)?;
    /// queue.put(1)?;
    /// let err = queue.put_nowait(2).unwrap_err();
    /// assert!(matches!(err, procpool::TryPutError::Full(_)));
    /// assert_eq!(err.into_inner(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            TryPutError::Full(item) | TryPutError::Closed(item) | TryPutError::Failed(item, _) => {
                item
            }
        }
    }
}

impl<T> fmt::Debug for TryPutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryPutError::Full(_) => debug_variant(f, "Full", None),
            TryPutError::Closed(_) => debug_variant(f, "Closed", None),
            TryPutError::Failed(_, e) => debug_variant(f, "Failed", Some(e)),
        }
    }
}

impl<T> fmt::Display for TryPutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryPutError::Full(_) => f.write_str("cannot put on a full queue without waiting"),
            TryPutError::Closed(_) => f.write_str("cannot put on a closed queue"),
            TryPutError::Failed(_, e) => write!(f, "put failed: {e}"),
        }
    }
}

impl<T> Error for TryPutError<T> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            TryPutError::Failed(_, e) => Some(e),
            _ => None,
        }
    }
}

/// Error of [`Queue::put_timeout`](super::Queue::put_timeout); carries the
/// item back.
pub enum PutTimeoutError<T> {
    /// The queue stayed full until the deadline.
    Timeout(T),
    /// The queue was closed.
    Closed(T),
    /// The manager could not be reached.
    Failed(T, ManagerError),
}

impl<T> PutTimeoutError<T> {
    /// Takes back the item that was not put.
    ///
    /// ```
    /// use std::time::Duration;
    /// let manager = procpool::Manager::new()?;
    /// let queue = manager.queue::<u32>(1)?;
    /// queue.put(1)?;
    /// let err = queue.put_timeout(2, Duration::from_millis(1)).unwrap_err();
    /// assert!(matches!(err, procpool::PutTimeoutError::Timeout(_)));
    /// assert_eq!(err.into_inner(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            PutTimeoutError::Timeout(item)
            | PutTimeoutError::Closed(item)
            | PutTimeoutError::Failed(item, _) => item,
        }
    }
}

impl<T> fmt::Debug for PutTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutTimeoutError::Timeout(_) => debug_variant(f, "Timeout", None),
            PutTimeoutError::Closed(_) => debug_variant(f, "Closed", None),
            PutTimeoutError::Failed(_, e) => debug_variant(f, "Failed", Some(e)),
        }
    }
}

impl<T> fmt::Display for PutTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutTimeoutError::Timeout(_) => f.write_str("timed out waiting for room in the queue"),
            PutTimeoutError::Closed(_) => f.write_str("cannot put on a closed queue"),
            PutTimeoutError::Failed(_, e) => write!(f, "put failed: {e}"),
        }
    }
}

impl<T> Error for PutTimeoutError<T> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            PutTimeoutError::Failed(_, e) => Some(e),
            _ => None,
        }
    }
}

/// Error of [`Queue::get`](super::Queue::get) and
/// [`Queue::get_many`](super::Queue::get_many).
#[derive(Debug)]
pub enum GetError {
    /// The queue was closed and every item before the close was taken.
    Closed,
    /// The manager could not be reached.
    Failed(ManagerError),
}

impl fmt::Display for GetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GetError::Closed => f.write_str("the queue is closed and drained"),
            GetError::Failed(e) => write!(f, "get failed: {e}"),
        }
    }
}

impl Error for GetError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            GetError::Failed(e) => Some(e),
            GetError::Closed => None,
        }
    }
}

/// Error of [`Queue::get_nowait`](super::Queue::get_nowait).
#[derive(Debug)]
pub enum TryGetError {
    /// The queue is empty (and not closed).
    Empty,
    /// The queue was closed and every item before the close was taken.
    Closed,
    /// The manager could not be reached.
    Failed(ManagerError),
}

impl fmt::Display for TryGetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryGetError::Empty => f.write_str("the queue is empty"),
            TryGetError::Closed => f.write_str("the queue is closed and drained"),
            TryGetError::Failed(e) => write!(f, "get failed: {e}"),
        }
    }
}

impl Error for TryGetError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            TryGetError::Failed(e) => Some(e),
            _ => None,
        }
    }
}

/// Error of [`Queue::get_timeout`](super::Queue::get_timeout).
#[derive(Debug)]
pub enum GetTimeoutError {
    /// No item arrived before the deadline.
    Timeout,
    /// The queue was closed and every item before the close was taken.
    Closed,
    /// The manager could not be reached.
    Failed(ManagerError),
}

impl fmt::Display for GetTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GetTimeoutError::Timeout => f.write_str("timed out waiting for an item"),
            GetTimeoutError::Closed => f.write_str("the queue is closed and drained"),
            GetTimeoutError::Failed(e) => write!(f, "get failed: {e}"),
        }
    }
}

impl Error for GetTimeoutError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            GetTimeoutError::Failed(e) => Some(e),
            _ => None,
        }
    }
}

/// Why an operation failed, before it is shaped into the public error of
/// the method that was called.
#[derive(Debug)]
pub(crate) enum Fail {
    WouldBlock,
    TimedOut,
    /// `accepted` leading items of a batch went in before the close.
    Closed {
        accepted: usize,
    },
    Manager(ManagerError),
}

impl From<Stop> for Fail {
    fn from(stop: Stop) -> Fail {
        match stop {
            Stop::WouldBlock => Fail::WouldBlock,
            Stop::TimedOut => Fail::TimedOut,
            Stop::Closed => Fail::Closed { accepted: 0 },
            Stop::Gone | Stop::Abandoned => Fail::Manager(ManagerError::Gone),
        }
    }
}

impl Fail {
    /// For outcomes the called operation cannot have (a blocking call that
    /// "would block"): reported, not unwrapped, should a peer send one.
    pub(crate) fn impossible(self) -> ManagerError {
        match self {
            Fail::Manager(e) => e,
            other => ManagerError::Protocol(format!("unexpected outcome {other:?}")),
        }
    }

    pub(crate) fn into_put<I>(self, item: I) -> PutError<I> {
        match self {
            Fail::Closed { .. } => PutError::Closed(item),
            other => PutError::Failed(item, other.impossible()),
        }
    }

    pub(crate) fn into_get(self) -> GetError {
        match self {
            Fail::Closed { .. } => GetError::Closed,
            other => GetError::Failed(other.impossible()),
        }
    }
}
