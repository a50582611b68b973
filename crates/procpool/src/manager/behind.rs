//! Write-behind puts: how a remote handle of an unbounded queue makes a
//! single-item `put` cost one socket write instead of a round trip. Owns
//! the [`Pipeline`] (the pipelined-put machinery of one endpoint) and
//! nothing else; calls only [`Connection`] and the protocol.
//!
//! On an unbounded queue a put can neither block nor find the queue full;
//! it can only be refused because the queue was closed (or the manager is
//! gone). So once a handle's first put has gone through synchronously
//! (which proves the queue exists and holds `T`), each `put` writes its
//! request and returns. The server answers none of them; it records their
//! outcomes, and the process asks for them (a "settle", one round trip)
//! every [`WINDOW_ITEMS`] puts, before any other operation through the same
//! manager, on [`Queue::flush`](super::Queue::flush), when a handle is
//! dropped, and in [`settle_all`](super::endpoint::settle_all). Until an
//! item is confirmed, its bytes are kept.
//!
//! All write-behind puts of a process to one manager share one connection
//! (the [`Pipeline`] of the manager's [`Endpoint`](super::endpoint::Endpoint)), whatever their queue: the
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

use serde::Serialize;

use super::connection::Connection;
use super::protocol::{Op, Outcome, Refusal, Reply, RequestHead};
use super::queue_error::{Fail, ManagerError};

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
    pub(super) fn settle(&mut self) -> Result<(), ManagerError> {
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
        connect: impl FnOnce() -> Result<Connection, ManagerError>,
        head: &RequestHead,
        item: &impl Serialize,
    ) -> Result<(), Fail> {
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => connect().map_err(Fail::Manager)?,
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

    /// Sends one write-behind put of `item` for the queue in `head`,
    /// connecting with `connect` if the pipeline has no connection yet.
    /// Fails, without sending, once the queue is known to refuse items or
    /// the pipeline is broken; a put that was sent is never reported as
    /// failed.
    pub(super) fn put_later(
        &mut self,
        connect: impl FnOnce() -> Result<Connection, ManagerError>,
        head: &RequestHead,
        item: &impl Serialize,
    ) -> Result<(), Fail> {
        if let Some(failure) = &self.failure {
            return Err(Fail::Manager(failure.to_error()));
        }
        match self.refusing(head.queue) {
            Some(None) => return Err(Fail::Closed { accepted: 0 }),
            Some(Some(reason)) => {
                return Err(Fail::Manager(ManagerError::Protocol(reason.to_string())));
            }
            None => {}
        }
        self.send(connect, head, item)?;
        if self.unconfirmed.len() >= WINDOW_ITEMS || self.unconfirmed_bytes >= WINDOW_BYTES {
            // This put was sent, so it succeeded; should settling fail, the
            // failure sticks and the next put reports it.
            let _ = self.settle();
        }
        Ok(())
    }

    /// Settles, then takes the encoded items of `queue` that the manager
    /// refused since the last call, with the error that explains them if
    /// it is not a plain close.
    pub(super) fn take_refused(&mut self, queue: u32) -> (Vec<Vec<u8>>, Option<ManagerError>) {
        let _ = self.settle();
        let (mine, others): (Vec<Kept>, Vec<Kept>) = std::mem::take(&mut self.refused)
            .into_iter()
            .partition(|kept| kept.queue == queue);
        self.refused = others;
        let failure = match (&self.failure, self.refusing(queue)) {
            (Some(failure), _) => Some(failure.to_error()),
            (None, Some(Some(reason))) => Some(ManagerError::Protocol(reason.to_string())),
            (None, _) => None,
        };
        (mine.into_iter().map(|kept| kept.bytes).collect(), failure)
    }
}
