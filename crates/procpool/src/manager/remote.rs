//! A queue reached through its manager's socket: the request and reply of
//! each queue operation, and write-behind puts through the endpoint's
//! pipeline. Owns [`RemoteQueue`]; calls the endpoint (for connections and
//! the pipeline) and the protocol, never the public handle.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Serialize, de::DeserializeOwned};

use super::endpoint::Endpoint;
use super::protocol::{Op, Reply, RequestHead, WireWait};
use super::queue_error::{Fail, ManagerError};
use crate::frame::{self, FrameError};

/// The failure a reply head stands for; `None` for the heads that carry a
/// result, which the caller handles.
fn refusal(reply: &Reply) -> Option<Fail> {
    Some(match reply {
        Reply::WouldBlock => Fail::WouldBlock,
        Reply::TimedOut => Fail::TimedOut,
        Reply::Closed { accepted } => Fail::Closed {
            accepted: usize::try_from(*accepted).unwrap_or(usize::MAX),
        },
        Reply::Gone => Fail::Manager(ManagerError::Gone),
        Reply::Invalid(message) => Fail::Manager(ManagerError::Protocol(message.clone())),
        Reply::Done | Reply::Item | Reply::Items | Reply::Status { .. } | Reply::Settled(_) => {
            return None;
        }
    })
}

fn unexpected(reply: &Reply) -> Fail {
    Fail::Manager(ManagerError::Protocol(format!(
        "unexpected reply {reply:?}"
    )))
}

fn undecodable(e: FrameError) -> Fail {
    Fail::Manager(ManagerError::Protocol(format!("item does not decode: {e}")))
}

/// A queue reached through its manager's socket.
#[derive(Debug)]
pub(crate) struct RemoteQueue {
    pub(crate) endpoint: Arc<Endpoint>,
    pub(crate) id: u32,
    /// [`super::protocol::type_tag`] of the handle's item type.
    pub(crate) tag: u64,
    pub(crate) maxsize: usize,
    /// Set once a put of this handle went through synchronously, proving
    /// the queue exists and holds this handle's item type; from then on its
    /// puts on an unbounded queue are write-behind.
    pub(crate) validated: AtomicBool,
}

impl RemoteQueue {
    pub(crate) fn new(endpoint: Arc<Endpoint>, id: u32, tag: u64, maxsize: usize) -> RemoteQueue {
        RemoteQueue {
            endpoint,
            id,
            tag,
            maxsize,
            validated: AtomicBool::new(false),
        }
    }

    /// One round trip: sends `op` with `body`, hands the reply to `finish`
    /// unless it is a refusal.
    fn exchange<B: Serialize + ?Sized, R>(
        &self,
        op: Op,
        body: &B,
        finish: impl FnOnce(Reply, &[u8]) -> Result<R, Fail>,
    ) -> Result<R, Fail> {
        // Every operation sees this process's earlier puts in place.
        self.endpoint.settle().map_err(Fail::Manager)?;
        let head = RequestHead {
            queue: self.id,
            tag: self.tag,
            op,
        };
        self.endpoint.with_connection(|conn| {
            let (reply, rest) = conn.request(&head, body)?;
            match refusal(&reply) {
                Some(fail) => Err(fail),
                None => finish(reply, rest),
            }
        })
    }

    fn done(reply: Reply, _: &[u8]) -> Result<(), Fail> {
        if reply == Reply::Done {
            Ok(())
        } else {
            Err(unexpected(&reply))
        }
    }

    /// A put that waits for the manager's answer.
    pub(crate) fn put<T: Serialize>(&self, item: &T, wait: WireWait) -> Result<(), Fail> {
        self.exchange(Op::Put(wait), item, Self::done)
    }

    pub(crate) fn put_many<T: Serialize>(&self, items: &[T]) -> Result<(), Fail> {
        self.exchange(Op::PutMany, items, Self::done)
    }

    pub(crate) fn get<T: DeserializeOwned>(&self, wait: WireWait) -> Result<T, Fail> {
        self.exchange(Op::Get(wait), &(), |reply, rest| match reply {
            Reply::Item => frame::decode(rest).map_err(undecodable),
            other => Err(unexpected(&other)),
        })
    }

    pub(crate) fn get_many<T: DeserializeOwned>(&self, max: usize) -> Result<Vec<T>, Fail> {
        let max = u32::try_from(max).unwrap_or(u32::MAX);
        self.exchange(Op::GetMany(max), &(), |reply, rest| match reply {
            Reply::Items => frame::decode(rest).map_err(undecodable),
            other => Err(unexpected(&other)),
        })
    }

    /// `(len, maxsize)`.
    pub(crate) fn status(&self) -> Result<(usize, usize), Fail> {
        self.exchange(Op::Status, &(), |reply, _| match reply {
            Reply::Status { len, maxsize } => Ok((len as usize, maxsize as usize)),
            other => Err(unexpected(&other)),
        })
    }

    pub(crate) fn close(&self) -> Result<(), Fail> {
        self.exchange(Op::Close, &(), Self::done)
    }
}

impl RemoteQueue {
    /// A put that returns once its request is written (see
    /// [`super::behind`]). On failure the item comes back; a put that was
    /// sent is never reported as failed.
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
        let head = RequestHead {
            queue: self.id,
            tag: self.tag,
            op: Op::PutLater,
        };
        let sent =
            self.endpoint
                .pipeline()
                .put_later(|| self.endpoint.take_connection(), &head, &item);
        sent.map_err(|fail| (item, fail))
    }

    /// Settles, then hands back the items of this queue that the manager
    /// refused since the last flush, with the reason.
    pub(crate) fn flush<T: DeserializeOwned>(&self) -> Result<(), (Vec<T>, Fail)> {
        let (mine, failure) = self.endpoint.pipeline().take_refused(self.id);
        // Decoded without the pipeline's lock: an item may hold a handle,
        // whose drop settles and so takes that lock. The bytes are this
        // process's own encodings of `T`, so they decode unless `T`'s serde
        // impls disagree with each other.
        let refused: Vec<T> = mine
            .iter()
            .filter_map(|bytes| frame::decode(bytes).ok())
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
