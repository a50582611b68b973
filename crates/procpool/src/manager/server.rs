//! The manager's server: a listener thread that accepts connections on the
//! manager's Unix socket, and one thread per connection that authenticates
//! the client and then runs its requests against the queues.
//!
//! A thread per connection is what lets a blocking `get` simply block: the
//! thread waits on the queue's condition variable for its client only, and
//! every other client keeps its own thread. Clients hold few connections
//! (one per concurrently used handle per process), so threads stay few.
//!
//! Owns [`Core`] (a manager's queues and open connections) and the registry
//! of the managers alive in this process; calls the store, the protocol and
//! the socket helpers, never the client side.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::io::{self, BufReader, Read};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::Duration;

use serde::{Serialize, de::DeserializeOwned};

use super::protocol::{
    self, Address, Hello, HelloReply, MAGIC, Op, Outcome, Refusal, Reply, RequestHead,
};
use super::sock;
use super::store::{Shared, Stop};
use crate::frame::{self, FrameError};

/// Managers alive in this process, so a handle deserialized here maps back
/// to the queue itself instead of a socket round trip. Weak: the registry
/// never keeps a manager's state alive; [`super::Manager`]'s drop removes
/// its entry with [`forget_local`].
static LOCAL_MANAGERS: Mutex<Vec<Weak<Core>>> = Mutex::new(Vec::new());

/// Records a manager of this process for [`local_core`].
pub(crate) fn register_local(core: &Arc<Core>) {
    let mut managers = LOCAL_MANAGERS
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    managers.retain(|weak| weak.strong_count() > 0);
    managers.push(Arc::downgrade(core));
}

/// Removes a manager that is shutting down from the registry.
pub(crate) fn forget_local(core: &Arc<Core>) {
    LOCAL_MANAGERS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .retain(|weak| weak.strong_count() > 0 && !std::ptr::eq(weak.as_ptr(), Arc::as_ptr(core)));
}

/// The live manager of this process at `address`, if any.
pub(crate) fn local_core(address: &Address) -> Option<Arc<Core>> {
    let managers = LOCAL_MANAGERS
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    managers
        .iter()
        .filter_map(Weak::upgrade)
        .find(|core| *core.address == *address && !core.is_stopping())
}

/// A queue as the server sees it, with the item type erased.
pub(crate) trait ServeQueue: Send + Sync {
    /// [`protocol::type_tag`] of the item type.
    fn tag(&self) -> u64;
    /// Runs one request and writes its reply. An error means the connection
    /// is unusable (the client is gone) and must be closed.
    fn serve(&self, op: Op, payload: &[u8], conn: &mut ServerConn) -> io::Result<()>;
    /// Fails every current and future operation; see [`Shared::shut_down`].
    fn shut_down(&self);
}

/// One queue of the manager, kept twice: erased for the server, and as
/// `Any` so a handle deserialized in this very process can get its typed
/// `Arc<Shared<T>>` back.
struct QueueEntry {
    serve: Arc<dyn ServeQueue>,
    typed: Arc<dyn Any + Send + Sync>,
}

/// Open connections, so shutdown can wake their threads.
struct Connections {
    /// Set once by [`Core::stop`]. Checked under the same lock when adopting
    /// a connection, so none is adopted after the sweep that shuts them all.
    stopping: bool,
    next_id: u64,
    /// A second handle to each connection's socket, used only to stop its
    /// reading; the connection thread owns the one it reads and writes.
    open: HashMap<u64, UnixStream>,
}

/// State shared by the [`super::Manager`], its listener thread and its
/// connection threads.
pub(crate) struct Core {
    pub(crate) address: Arc<Address>,
    /// Only ever appended to; a queue's index is its id.
    queues: RwLock<Vec<QueueEntry>>,
    connections: Mutex<Connections>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("socket", &self.address.socket)
            .field(
                "queues",
                &self
                    .queues
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .len(),
            )
            .finish_non_exhaustive()
    }
}

impl Core {
    pub(crate) fn new(address: Address) -> Core {
        Core {
            address: Arc::new(address),
            queues: RwLock::new(Vec::new()),
            connections: Mutex::new(Connections {
                stopping: false,
                next_id: 0,
                open: HashMap::new(),
            }),
        }
    }

    /// Registers a new queue and returns its id, or `None` if ids ran out.
    pub(crate) fn add_queue<T>(&self, shared: Arc<Shared<T>>) -> Option<u32>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
    {
        let mut queues = self.queues.write().unwrap_or_else(PoisonError::into_inner);
        let id = u32::try_from(queues.len()).ok()?;
        queues.push(QueueEntry {
            serve: shared.clone(),
            typed: shared,
        });
        Some(id)
    }

    fn serve_queue(&self, id: u32) -> Option<Arc<dyn ServeQueue>> {
        let queues = self.queues.read().unwrap_or_else(PoisonError::into_inner);
        queues.get(id as usize).map(|entry| entry.serve.clone())
    }

    /// The typed queue `id`, if it exists and holds `T`.
    pub(crate) fn typed_queue<T: Send + 'static>(&self, id: u32) -> Option<Arc<Shared<T>>> {
        let queues = self.queues.read().unwrap_or_else(PoisonError::into_inner);
        queues.get(id as usize)?.typed.clone().downcast().ok()
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stopping
    }

    /// Shuts the manager down: every queue fails first (so threads blocked
    /// in a queue wake, and reply `Gone`), then no new connections are
    /// adopted and every open one stops reading (so idle connection threads
    /// wake to end-of-file, exit and close their socket, and remote clients
    /// see the manager gone). Replies already being written still go out:
    /// a client is told exactly what happened to its request, never "gone"
    /// for a put that went in. Nothing here waits for another thread.
    pub(crate) fn stop(&self) {
        {
            let queues = self.queues.read().unwrap_or_else(PoisonError::into_inner);
            for entry in queues.iter() {
                entry.serve.shut_down();
            }
        }
        let mut connections = self
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        connections.stopping = true;
        for stream in connections.open.values() {
            sock::stop_reading(stream);
        }
    }

    /// Takes over an accepted connection: registers it and starts its
    /// thread. Returns false once the manager is stopping.
    fn adopt(self: &Arc<Core>, stream: UnixStream) -> bool {
        let Ok(shutdown_handle) = stream.try_clone() else {
            // Out of descriptors: dropping the stream tells the client.
            return true;
        };
        let id = {
            let mut connections = self
                .connections
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if connections.stopping {
                return false;
            }
            let id = connections.next_id;
            connections.next_id += 1;
            connections.open.insert(id, shutdown_handle);
            id
        };
        let core = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("procpool-manager-conn".into())
            .spawn(move || {
                // Any error ends this connection only; the client sees it closed.
                let _ = serve_connection(&core, stream);
                core.forget_connection(id);
            });
        if spawned.is_err() {
            self.forget_connection(id);
        }
        true
    }

    fn forget_connection(&self, id: u64) {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .open
            .remove(&id);
    }
}

/// The listener thread's body: accepts until the manager stops.
pub(crate) fn accept_loop(core: Arc<Core>, listener: UnixListener) {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                if !core.adopt(stream) {
                    return;
                }
            }
            Err(_) if core.is_stopping() => return,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                ) => {}
            // Out of descriptors or memory: back off instead of spinning;
            // clients wait in the backlog meanwhile.
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// How many refusals of write-behind puts a connection may hold unsettled.
/// The client settles every few hundred puts, so only a client that ignores
/// the protocol gets here; it is disconnected rather than grow memory.
const MAX_UNSETTLED: usize = 1 << 16;

/// The most bytes read from a connection before its [`Hello`] checks out:
/// the 4-byte prefix and a hello, which is well under this.
const HELLO_LIMIT: u64 = 128;

/// The server's end of one connection, as the queue sees it while serving.
pub(crate) struct ServerConn {
    stream: UnixStream,
    /// Reused for every reply, so steady traffic does not allocate.
    frame: Vec<u8>,
    /// Outcomes of write-behind puts not yet reported, oldest first, runs
    /// of successes merged. Owned by this connection's thread alone.
    unsettled: Vec<Outcome>,
}

impl ServerConn {
    /// Sends `head` followed by `body` as one frame. An item that cannot be
    /// encoded is reported as `Err(Ok(message))`, a dead socket as
    /// `Err(Err(io))`, so callers can tell "give the item back and say why"
    /// from "give it back and hang up".
    fn send<B: Serialize + ?Sized>(
        &mut self,
        head: &Reply,
        body: &B,
    ) -> Result<(), Result<String, io::Error>> {
        frame::encode_frame(&(head, body), &mut self.frame).map_err(Ok)?;
        sock::send_all(&self.stream, &self.frame).map_err(Err)
    }

    fn reply(&mut self, head: &Reply) -> io::Result<()> {
        match self.send(head, &()) {
            Ok(()) => Ok(()),
            Err(Err(e)) => Err(e),
            // A bare head always encodes; keep the connection anyway.
            Err(Ok(_)) => Ok(()),
        }
    }

    fn peer_hung_up(&self) -> bool {
        sock::peer_hung_up(&self.stream)
    }

    /// Records the outcome of a write-behind put for the next settle.
    fn record(&mut self, outcome: Result<(), Refusal>) -> io::Result<()> {
        let full = self.unsettled.len() >= MAX_UNSETTLED;
        match (outcome, self.unsettled.last_mut()) {
            (Ok(()), Some(Outcome::Accepted(run))) => *run += 1,
            (_, _) if full => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "client never settles its puts",
                ));
            }
            (Ok(()), _) => self.unsettled.push(Outcome::Accepted(1)),
            (Err(refusal), _) => self.unsettled.push(Outcome::Refused(refusal)),
        }
        Ok(())
    }

    /// A connection over `stream` that skipped the handshake.
    #[cfg(test)]
    pub(crate) fn over(stream: UnixStream) -> ServerConn {
        ServerConn {
            stream,
            frame: Vec::new(),
            unsettled: Vec::new(),
        }
    }
}

/// Authenticates the client, then serves its requests in order until it
/// hangs up or the connection fails.
fn serve_connection(core: &Core, stream: UnixStream) -> Result<(), FrameError> {
    let mut reader =
        BufReader::with_capacity(64 * 1024, stream.try_clone().map_err(FrameError::Io)?);
    let mut request = Vec::new();
    // Before authentication a peer gets no more than a hello's worth of
    // reading (a longer frame fails as cut short): an unauthenticated
    // length prefix must not make this thread buffer a gigabyte.
    let hello: Hello = frame::read_message(&mut (&mut reader).take(HELLO_LIMIT), &mut request)?;
    let mut conn = ServerConn {
        stream,
        frame: Vec::new(),
        unsettled: Vec::new(),
    };
    let welcome = hello.magic == MAGIC && protocol::tokens_match(&hello.token, &core.address.token);
    let answer = if welcome {
        HelloReply::Welcome
    } else {
        HelloReply::Refused
    };
    frame::encode_frame(&answer, &mut conn.frame)
        .map_err(|m| FrameError::Io(io::Error::other(m)))?;
    sock::send_all(&conn.stream, &conn.frame).map_err(FrameError::Io)?;
    if !welcome {
        return Ok(());
    }
    loop {
        match frame::read_frame(&mut reader, &mut request) {
            Ok(()) => {}
            Err(FrameError::Eof) => return Ok(()),
            Err(e) => return Err(e),
        }
        serve_request(core, &request, &mut conn).map_err(FrameError::Io)?;
    }
}

fn serve_request(core: &Core, request: &[u8], conn: &mut ServerConn) -> io::Result<()> {
    let (head, payload) = match postcard::take_from_bytes::<RequestHead>(request) {
        Ok(parsed) => parsed,
        Err(e) => return conn.reply(&Reply::Invalid(format!("malformed request: {e}"))),
    };
    if let Op::Settle = head.op {
        let outcomes = std::mem::take(&mut conn.unsettled);
        return conn.reply(&Reply::Settled(outcomes));
    }
    let queue = match core.serve_queue(head.queue) {
        None => Err(format!("the manager has no queue {}", head.queue)),
        Some(queue) if queue.tag() != head.tag => Err(format!(
            "queue {} holds another item type than this handle",
            head.queue
        )),
        Some(queue) => Ok(queue),
    };
    match (queue, head.op) {
        (Ok(queue), op) => queue.serve(op, payload, conn),
        // A write-behind put is never answered, not even to refuse it.
        (Err(message), Op::PutLater) => conn.record(Err(Refusal::Invalid(message))),
        (Err(message), _) => conn.reply(&Reply::Invalid(message)),
    }
}

/// The reply for an operation that stopped; `accepted` only matters for a
/// batch put that a close interrupted.
fn stop_reply(stop: Stop, accepted: usize) -> Reply {
    match stop {
        Stop::WouldBlock => Reply::WouldBlock,
        Stop::TimedOut => Reply::TimedOut,
        Stop::Closed => Reply::Closed {
            accepted: accepted as u64,
        },
        Stop::Gone | Stop::Abandoned => Reply::Gone,
    }
}

impl<T> ServeQueue for Shared<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    fn tag(&self) -> u64 {
        protocol::type_tag::<T>()
    }

    fn serve(&self, op: Op, payload: &[u8], conn: &mut ServerConn) -> io::Result<()> {
        match op {
            Op::Put(wait) => self.serve_put(wait, payload, conn),
            Op::PutLater => self.serve_put_later(payload, conn),
            // Answered by `serve_request` before any queue is looked up.
            Op::Settle => {
                let outcomes = std::mem::take(&mut conn.unsettled);
                conn.reply(&Reply::Settled(outcomes))
            }
            Op::PutMany => self.serve_put_many(payload, conn),
            Op::Get(wait) => self.serve_get(None, wait.start(), conn),
            Op::GetMany(max) => self.serve_get(Some(max as usize), protocol::Wait::Block, conn),
            Op::Status => match self.status() {
                Ok((len, maxsize)) => conn.reply(&Reply::Status {
                    len: len as u64,
                    maxsize: maxsize as u64,
                }),
                Err(stop) => conn.reply(&stop_reply(stop, 0)),
            },
            Op::Close => conn.reply(
                &self
                    .close()
                    .map_or_else(|stop| stop_reply(stop, 0), |()| Reply::Done),
            ),
        }
    }

    fn shut_down(&self) {
        Shared::shut_down(self);
    }
}

impl<T> Shared<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    fn serve_put(
        &self,
        wait: protocol::WireWait,
        payload: &[u8],
        conn: &mut ServerConn,
    ) -> io::Result<()> {
        let item: T = match frame::decode(payload) {
            Ok(item) => item,
            Err(e) => return conn.reply(&Reply::Invalid(format!("item does not decode: {e}"))),
        };
        // A refused item is dropped here: the client still has its own copy
        // and hands that back to its caller.
        let reply = self
            .put(item, wait.start())
            .map_or_else(|(_, stop)| stop_reply(stop, 0), |()| Reply::Done);
        conn.reply(&reply)
    }

    /// A write-behind put: run it and record the outcome, answer nothing.
    /// Blocks only if the queue is bounded, which a well-behaved client
    /// never asks for (it writes behind only to unbounded queues).
    fn serve_put_later(&self, payload: &[u8], conn: &mut ServerConn) -> io::Result<()> {
        let outcome = match frame::decode::<T>(payload) {
            Ok(item) => self
                .put(item, protocol::Wait::Block)
                .map_err(|(_, stop)| match stop {
                    Stop::Closed => Refusal::Closed,
                    _ => Refusal::Gone,
                }),
            Err(e) => Err(Refusal::Invalid(format!("item does not decode: {e}"))),
        };
        conn.record(outcome)
    }

    fn serve_put_many(&self, payload: &[u8], conn: &mut ServerConn) -> io::Result<()> {
        let items: Vec<T> = match frame::decode(payload) {
            Ok(items) => items,
            Err(e) => return conn.reply(&Reply::Invalid(format!("batch does not decode: {e}"))),
        };
        let sent = items.len();
        let reply = match self.put_many(items) {
            Ok(()) => Reply::Done,
            Err((rest, stop)) => stop_reply(stop, sent - rest.len()),
        };
        conn.reply(&reply)
    }

    /// Takes one item (`batch` is `None`) or up to `batch` items for the
    /// client and sends them. Items leave the queue for good only once the
    /// reply is written: if the client cannot take them (encoding fails, or
    /// its socket is dead) they go back to the front, so a client killed
    /// while blocked in `get` loses nothing.
    fn serve_get(
        &self,
        batch: Option<usize>,
        wait: protocol::Wait,
        conn: &mut ServerConn,
    ) -> io::Result<()> {
        let mut abandoned = || conn.peer_hung_up();
        match batch {
            None => match self.take_when_ready(wait, &mut abandoned, true, VecDeque::pop_front) {
                Ok(Some(item)) => {
                    let sent = conn.send(&Reply::Item, &item);
                    self.delivered(sent, || vec![item], conn)
                }
                // `take_when_ready` only takes from a non-empty queue.
                Ok(None) => conn.reply(&Reply::Gone),
                Err(stop) => stopped(stop, conn),
            },
            Some(max) => {
                let drain = |items: &mut VecDeque<T>| -> Vec<T> {
                    items.drain(..max.clamp(1, items.len())).collect()
                };
                match self.take_when_ready(wait, &mut abandoned, true, drain) {
                    Ok(items) => {
                        let sent = conn.send(&Reply::Items, &items);
                        self.delivered(sent, || items, conn)
                    }
                    Err(stop) => stopped(stop, conn),
                }
            }
        }
    }

    /// Finishes a delivery: if the reply did not go out, the items go back
    /// to the front of the queue.
    fn delivered(
        &self,
        sent: Result<(), Result<String, io::Error>>,
        items: impl FnOnce() -> Vec<T>,
        conn: &mut ServerConn,
    ) -> io::Result<()> {
        match sent {
            Ok(()) => Ok(()),
            Err(Ok(message)) => {
                self.push_front(items());
                conn.reply(&Reply::Invalid(format!("cannot send item: {message}")))
            }
            Err(Err(e)) => {
                self.push_front(items());
                Err(e)
            }
        }
    }
}

/// Answers a get that stopped without items; a client that hung up while
/// waiting gets nothing, and its connection ends.
fn stopped(stop: Stop, conn: &mut ServerConn) -> io::Result<()> {
    match stop {
        Stop::Abandoned => Err(io::Error::new(
            io::ErrorKind::BrokenPipe,
            "client hung up while waiting",
        )),
        stop => conn.reply(&stop_reply(stop, 0)),
    }
}
