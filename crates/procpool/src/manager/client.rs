//! The client side of remote handles: connections to a manager, pooled per
//! process, and the request/reply exchange for each queue operation.
//!
//! Connections belong to an [`Endpoint`] (one per manager address and token
//! in this process), not to a handle: every handle deserialized in a worker
//! for the same manager shares them, so a worker that receives the queue
//! with each task connects once, not once per task. An operation borrows an
//! idle connection (or opens one) for exactly one request and reply, so
//! threads sharing a handle never wait on each other's blocking `get`.
//! Write-behind puts have a connection of their own per endpoint (see
//! [`super::behind`]).
//! Descriptors are close-on-exec (std's default), so re-executed pool
//! workers never inherit another process's connection.

use std::io::{self, BufReader};
use std::os::unix::net::UnixStream;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Serialize, de::DeserializeOwned};

use super::behind::Pipeline;
use super::error::ManagerError;
use super::queue::Fail;
use super::server::Address;
use super::sock;
use super::wire::{Hello, HelloReply, MAGIC, Op, Reply, RequestHead, WireWait};
use crate::frame::{self, FrameError};

/// Every endpoint this process has used. Kept for the life of the process:
/// at most one per manager ever reached, and an endpoint of a dead manager
/// holds no connections (they are dropped on the first `Gone`).
static ENDPOINTS: Mutex<Vec<Arc<Endpoint>>> = Mutex::new(Vec::new());

/// The connections of this process to one manager.
#[derive(Debug)]
pub(crate) struct Endpoint {
    address: Address,
    /// Connections with no request in flight, each in a clean state (the
    /// last reply was read in full). Taken out for the duration of a request.
    idle: Mutex<Vec<Connection>>,
    /// The write-behind puts of this process to this manager, for all its
    /// queues, on one connection of their own; see [`super::behind`].
    pub(super) pipeline: Mutex<Pipeline>,
}

/// The shared endpoint for `address`.
pub(crate) fn endpoint(address: Address) -> Arc<Endpoint> {
    let mut endpoints = ENDPOINTS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(found) = endpoints.iter().find(|e| e.address == address) {
        return Arc::clone(found);
    }
    let created = Arc::new(Endpoint {
        address,
        idle: Mutex::new(Vec::new()),
        pipeline: Mutex::new(Pipeline::default()),
    });
    endpoints.push(Arc::clone(&created));
    created
}

/// Every endpoint this process has used.
pub(super) fn all_endpoints() -> Vec<Arc<Endpoint>> {
    ENDPOINTS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

impl Endpoint {
    pub(crate) fn address(&self) -> &Address {
        &self.address
    }

    /// An idle connection, or a new one.
    pub(super) fn take_connection(&self) -> Result<Connection, ManagerError> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        idle.map_or_else(|| Connection::open(&self.address), Ok)
    }

    /// Runs `exchange` on an idle connection or a new one, then returns the
    /// connection to the pool if it is still in a clean state.
    fn with_connection<R>(
        &self,
        exchange: impl FnOnce(&mut Connection) -> Result<R, Fail>,
    ) -> Result<R, Fail> {
        let mut conn = self.take_connection().map_err(Fail::Manager)?;
        let result = exchange(&mut conn);
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(result, Err(Fail::Manager(ManagerError::Gone))) {
            // The server hung up on us, so it hung up on the idle ones too.
            idle.clear();
        } else if conn.in_sync {
            idle.push(conn);
        }
        result
    }
}

/// One authenticated connection to a manager.
#[derive(Debug)]
pub(super) struct Connection {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
    /// Reused request and reply buffers: steady traffic does not allocate.
    request: Vec<u8>,
    reply: Vec<u8>,
    /// False once a request may have been half sent or a reply half read:
    /// such a connection is dropped rather than reused.
    in_sync: bool,
}

/// How a failed socket operation reads to the user: a peer that vanished
/// means the manager is gone, anything else is an i/o error.
fn io_failure(e: io::Error) -> ManagerError {
    use io::ErrorKind::*;
    match e.kind() {
        NotFound | ConnectionRefused | ConnectionReset | ConnectionAborted | BrokenPipe
        | NotConnected | UnexpectedEof => ManagerError::Gone,
        _ => ManagerError::Io(e),
    }
}

fn frame_failure(e: FrameError) -> ManagerError {
    match e {
        FrameError::Eof => ManagerError::Gone,
        FrameError::Io(e) => io_failure(e),
        FrameError::TooLarge(n) => {
            ManagerError::Protocol(format!("reply of {n} bytes exceeds the frame limit"))
        }
        FrameError::Malformed(m) => ManagerError::Protocol(m),
    }
}

impl Connection {
    /// Connects and presents the token.
    fn open(address: &Address) -> Result<Connection, ManagerError> {
        let stream = UnixStream::connect(&address.socket).map_err(io_failure)?;
        let reader =
            BufReader::with_capacity(64 * 1024, stream.try_clone().map_err(ManagerError::Io)?);
        let mut conn = Connection {
            stream,
            reader,
            request: Vec::new(),
            reply: Vec::new(),
            in_sync: true,
        };
        let hello = Hello {
            magic: MAGIC,
            token: address.token,
        };
        frame::encode_frame(&hello, &mut conn.request).map_err(ManagerError::Protocol)?;
        sock::send_all(&conn.stream, &conn.request).map_err(io_failure)?;
        match frame::read_message(&mut conn.reader, &mut conn.reply) {
            Ok(HelloReply::Welcome) => Ok(conn),
            Ok(HelloReply::Refused) => Err(ManagerError::Refused),
            Err(e) => Err(frame_failure(e)),
        }
    }

    /// Sends `head` then `body` as one frame without waiting for any reply,
    /// and returns the encoding of `body` (what a refusal would hand back).
    /// An encoding failure is `Ok(Err(message))`: nothing was sent.
    pub(super) fn send_only<B: Serialize + ?Sized>(
        &mut self,
        head: &RequestHead,
        body: &B,
    ) -> Result<Result<&[u8], String>, ManagerError> {
        let mut head_bytes = [0u8; 64];
        let head_len = match postcard::to_slice(head, &mut head_bytes) {
            Ok(encoded) => encoded.len(),
            Err(e) => return Ok(Err(e.to_string())),
        };
        if let Err(message) = frame::encode_frame(&(head, body), &mut self.request) {
            return Ok(Err(message));
        }
        // A half-sent frame desynchronizes the stream: keep `in_sync` false
        // unless the whole frame went out.
        self.in_sync = false;
        sock::send_all(&self.stream, &self.request).map_err(io_failure)?;
        self.in_sync = true;
        Ok(Ok(&self.request[4 + head_len..]))
    }

    /// Sends `head` then `body` as one frame and reads the reply frame.
    /// Returns the reply's head and the bytes after it (the items, if any).
    pub(super) fn request<B: Serialize + ?Sized>(
        &mut self,
        head: &RequestHead,
        body: &B,
    ) -> Result<(Reply, &[u8]), Fail> {
        // An item that does not encode fails here, before anything is sent.
        frame::encode_frame(&(head, body), &mut self.request)
            .map_err(|m| Fail::Manager(ManagerError::Protocol(m)))?;
        self.in_sync = false;
        sock::send_all(&self.stream, &self.request).map_err(|e| Fail::Manager(io_failure(e)))?;
        frame::read_frame(&mut self.reader, &mut self.reply)
            .map_err(|e| Fail::Manager(frame_failure(e)))?;
        let (reply, rest) = postcard::take_from_bytes::<Reply>(&self.reply)
            .map_err(|e| Fail::Manager(ManagerError::Protocol(format!("malformed reply: {e}"))))?;
        self.in_sync = true;
        Ok((reply, rest))
    }
}

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
    /// [`super::wire::type_tag`] of the handle's item type.
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
