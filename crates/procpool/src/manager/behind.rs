//! Write-behind puts: how a remote handle of an unbounded queue makes a
//! single-item `put` cost one socket write instead of a round trip.
//!
//! On an unbounded queue a put can neither block nor find the queue full;
//! it can only be refused because the queue was closed (or the manager is
//! gone). So once a handle's first put has gone through synchronously
//! (which proves the queue exists and holds `T`), each `put` writes its
//! request and returns. The server answers none of them; it records their
//! outcomes, and the process asks for them (a "settle", one round trip)
//! every [`WINDOW_ITEMS`] puts, before any other operation through the same
//! manager, on [`Queue::flush`](super::Queue::flush), when a handle is
//! dropped, and in [`settle_all`]. Until an item is confirmed, its bytes
//! are kept.
//!
//! All write-behind puts of a process to one manager share one connection
//! (the [`Pipeline`] of the manager's endpoint), whatever their queue: the
//! server runs a connection's requests in order, so the puts of a process
//! reach their queues in the order they were made, across queues.
//!
//! Nothing is lost or duplicated:
//! - a sent request is in the manager's socket the moment `send` returns
//!   (Unix sockets queue it in the receiver), and the server runs every
//!   received request even if the client dies right after;
//! - a settle answered means every earlier put was run;
//! - a refused item's bytes are kept and handed back as a `T` by
//!   [`Queue::flush`](super::Queue::flush); once a queue is known to be
//!   closed, later puts to it fail at once, handing their item back. (A
//!   close run while a returned put is still in the socket overtakes it:
//!   that item is refused, not lost.)
//!
//! No deadlock on full socket buffers: the server writes to a pipeline
//! connection only to answer a settle, and the client reads from it only
//! right after sending one, so neither side ever waits for the other to
//! read while it is itself waiting to write. The client's window bounds
//! what the server has to remember.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{MutexGuard, PoisonError};

use serde::{Serialize, de::DeserializeOwned};

use super::client::{self, Connection, Endpoint, RemoteQueue};
use super::error::ManagerError;
use super::queue::Fail;
use super::wire::{Op, Outcome, Refusal, Reply, RequestHead, WireWait};
use crate::frame;

/// Unconfirmed puts that make a process settle before sending more. Bounds
/// the bytes kept here and the outcomes the server keeps per connection.
const WINDOW_ITEMS: usize = 256;
/// The same bound in bytes of kept items, for large items.
const WINDOW_BYTES: usize = 1 << 20;
/// Buffers larger than this are freed rather than kept for reuse, so a few
/// large items do not pin memory for good.
const SPARE_BYTES: usize = 4096;

/// An item sent or refused, with the queue it was for.
#[derive(Debug)]
struct Kept {
    queue: u32,
    bytes: Vec<u8>,
}

/// The write-behind state of one endpoint, behind its mutex: puts from
/// several threads go out one at a time, in the order they take the lock.
#[derive(Debug, Default)]
pub(crate) struct Pipeline {
    /// The connection the puts go out on. While puts are unconfirmed it
    /// carries nothing but puts and settles, so outcomes pair up in order.
    conn: Option<Connection>,
    /// Items sent and not yet confirmed, oldest first.
    unconfirmed: VecDeque<Kept>,
    unconfirmed_bytes: usize,
    /// Buffers of confirmed items, reused for the next puts.
    spare: Vec<Vec<u8>>,
    /// Refused items, until a flush of their queue hands them back.
    refused: Vec<Kept>,
    /// Queues known to be closed, or to refuse items for the given reason.
    refusing: Vec<(u32, Option<String>)>,
    /// The connection failed: every later write-behind put reports this.
    failure: Option<Failure>,
}

/// Why the pipeline stopped working for good.
#[derive(Debug, Clone)]
enum Failure {
    Gone,
    Protocol(String),
}

impl Failure {
    fn to_error(&self) -> ManagerError {
        match self {
            Failure::Gone => ManagerError::Gone,
            Failure::Protocol(m) => ManagerError::Protocol(m.clone()),
        }
    }
}

impl Pipeline {
    /// Forgets the connection and the unconfirmed puts once the connection
    /// failed: their requests went out and the server runs them, but their
    /// outcomes can no longer be learned.
    fn broken(&mut self, failure: Failure) -> ManagerError {
        self.conn = None;
        self.unconfirmed.clear();
        self.unconfirmed_bytes = 0;
        self.failure.get_or_insert(failure).to_error()
    }

    /// Why `queue` refuses puts, if it is known to: `Some(None)` closed,
    /// `Some(Some(reason))` invalid.
    fn refusing(&self, queue: u32) -> Option<Option<&str>> {
        let (_, reason) = self.refusing.iter().find(|(id, _)| *id == queue)?;
        Some(reason.as_deref())
    }

    /// Matches the server's outcomes with the unconfirmed puts, oldest first.
    fn apply(&mut self, outcomes: Vec<Outcome>) -> Result<(), ManagerError> {
        for outcome in outcomes {
            let (count, refusal) = match outcome {
                Outcome::Accepted(n) => (n, None),
                Outcome::Refused(refusal) => (1, Some(refusal)),
            };
            for _ in 0..count {
                let Some(kept) = self.unconfirmed.pop_front() else {
                    let message = "the manager confirmed more puts than were sent".to_string();
                    return Err(self.broken(Failure::Protocol(message)));
                };
                self.unconfirmed_bytes -= kept.bytes.len();
                self.file(kept, refusal.clone());
            }
        }
        if !self.unconfirmed.is_empty() {
            let message = "the manager confirmed fewer puts than were sent".to_string();
            return Err(self.broken(Failure::Protocol(message)));
        }
        Ok(())
    }

    /// Puts a confirmed item where it belongs: its buffer back to the spares
    /// if it went in, with the refused ones if not.
    fn file(&mut self, kept: Kept, refusal: Option<Refusal>) {
        let reason = match refusal {
            None => {
                if self.spare.len() < WINDOW_ITEMS && kept.bytes.capacity() <= SPARE_BYTES {
                    self.spare.push(kept.bytes);
                }
                return;
            }
            Some(Refusal::Gone) => {
                self.failure.get_or_insert(Failure::Gone);
                None
            }
            Some(Refusal::Closed) => None,
            Some(Refusal::Invalid(message)) => Some(message),
        };
        if self.refusing(kept.queue).is_none() {
            self.refusing.push((kept.queue, reason));
        }
        self.refused.push(kept);
    }

    /// Waits for the outcome of every unconfirmed put (one round trip).
    fn settle(&mut self) -> Result<(), ManagerError> {
        if self.unconfirmed.is_empty() {
            return Ok(());
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(self.broken(Failure::Gone));
        };
        // A settle names no queue; the server answers it for the connection.
        let head = RequestHead {
            queue: 0,
            tag: 0,
            op: Op::Settle,
        };
        match conn.request(&head, &()) {
            Ok((Reply::Settled(outcomes), _)) => self.apply(outcomes),
            Ok((other, _)) => {
                Err(self.broken(Failure::Protocol(format!("unexpected reply {other:?}"))))
            }
            Err(Fail::Manager(ManagerError::Gone)) => Err(self.broken(Failure::Gone)),
            Err(fail) => {
                let message = format!("settling puts failed: {fail:?}");
                Err(self.broken(Failure::Protocol(message)))
            }
        }
    }

    /// Sends one write-behind put, keeping the item's bytes. On failure
    /// nothing was sent.
    fn send(
        &mut self,
        endpoint: &Endpoint,
        head: &RequestHead,
        item: &impl Serialize,
    ) -> Result<(), Fail> {
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => endpoint.take_connection().map_err(Fail::Manager)?,
        };
        match conn.send_only(head, item) {
            Ok(Ok(bytes)) => {
                let mut kept = self.spare.pop().unwrap_or_default();
                kept.clear();
                kept.extend_from_slice(bytes);
                self.unconfirmed_bytes += kept.len();
                self.unconfirmed.push_back(Kept {
                    queue: head.queue,
                    bytes: kept,
                });
                self.conn = Some(conn);
                Ok(())
            }
            Ok(Err(message)) => {
                // Nothing was sent: the connection is as good as before.
                self.conn = Some(conn);
                Err(Fail::Manager(ManagerError::Protocol(message)))
            }
            // At most part of the frame went out, which the server discards:
            // the item is not in the queue.
            Err(e) => Err(Fail::Manager(self.broken(match e {
                ManagerError::Gone => Failure::Gone,
                other => Failure::Protocol(format!("connection failed: {other}")),
            }))),
        }
    }
}

impl Endpoint {
    fn pipeline(&self) -> MutexGuard<'_, Pipeline> {
        self.pipeline.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until every write-behind put of this process to this manager
    /// has been run.
    pub(crate) fn settle(&self) -> Result<(), ManagerError> {
        self.pipeline().settle()
    }
}

impl RemoteQueue {
    /// A put that returns once its request is written. On failure the item
    /// comes back; a put that was sent is never reported as failed.
    pub(crate) fn put_behind<T: Serialize>(&self, item: T) -> Result<(), (T, Fail)> {
        if !self.validated.load(Ordering::Acquire) {
            // The first put waits for its answer, so a handle to a missing
            // queue or of the wrong type fails at that put, not later.
            return match self.put(&item, WireWait::Block) {
                Ok(()) => {
                    self.validated.store(true, Ordering::Release);
                    Ok(())
                }
                Err(fail) => Err((item, fail)),
            };
        }
        let mut pipeline = self.endpoint.pipeline();
        if let Some(failure) = &pipeline.failure {
            return Err((item, Fail::Manager(failure.to_error())));
        }
        match pipeline.refusing(self.id) {
            Some(None) => return Err((item, Fail::Closed { accepted: 0 })),
            Some(Some(reason)) => {
                let error = ManagerError::Protocol(reason.to_string());
                return Err((item, Fail::Manager(error)));
            }
            None => {}
        }
        let head = RequestHead {
            queue: self.id,
            tag: self.tag,
            op: Op::PutLater,
        };
        if let Err(fail) = pipeline.send(&self.endpoint, &head, &item) {
            return Err((item, fail));
        }
        if pipeline.unconfirmed.len() >= WINDOW_ITEMS || pipeline.unconfirmed_bytes >= WINDOW_BYTES
        {
            // This put was sent, so it succeeded; should settling fail, the
            // failure sticks and the next put reports it.
            let _ = pipeline.settle();
        }
        Ok(())
    }

    /// Settles, then hands back the items of this queue that the manager
    /// refused since the last flush, with the reason.
    pub(crate) fn flush<T: DeserializeOwned>(&self) -> Result<(), (Vec<T>, Fail)> {
        let (mine, failure) = {
            let mut pipeline = self.endpoint.pipeline();
            let _ = pipeline.settle();
            let (mine, others): (Vec<Kept>, Vec<Kept>) = std::mem::take(&mut pipeline.refused)
                .into_iter()
                .partition(|kept| kept.queue == self.id);
            pipeline.refused = others;
            let failure = match (&pipeline.failure, pipeline.refusing(self.id)) {
                (Some(failure), _) => Some(failure.to_error()),
                (None, Some(Some(reason))) => Some(ManagerError::Protocol(reason.to_string())),
                (None, _) => None,
            };
            (mine, failure)
        };
        // Decoded without the pipeline's lock: an item may hold a handle,
        // whose drop settles and so takes that lock. The bytes are this
        // process's own encodings of `T`, so they decode unless `T`'s serde
        // impls disagree with each other.
        let refused: Vec<T> = mine
            .iter()
            .filter_map(|kept| frame::decode(&kept.bytes).ok())
            .collect();
        match failure {
            Some(error) => Err((refused, Fail::Manager(error))),
            None if !refused.is_empty() => Err((refused, Fail::Closed { accepted: 0 })),
            None => Ok(()),
        }
    }
}

/// Settling on drop means a task that received a handle as an argument has
/// its puts run before it returns, and so before its result reaches the
/// parent.
impl Drop for RemoteQueue {
    fn drop(&mut self) {
        let _ = self.endpoint.settle();
    }
}

/// Settles the write-behind puts of this process to every manager.
///
/// For a pool worker to call before it reports a task done: then whatever
/// the task put is in its queue before the parent hears of the task, even
/// through a handle the task kept (say, in a global set by an initializer),
/// so a parent that closes the queue once all tasks are done refuses none
/// of it. Handles passed as task arguments settle anyway when dropped.
pub(crate) fn settle_all() {
    for endpoint in client::all_endpoints() {
        let _ = endpoint.settle();
    }
}
