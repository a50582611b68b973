//! A manager of shared queues: Python's `multiprocessing.Manager().Queue()`.
//!
//! Pool workers cannot use a plain channel or pipe: its descriptors exist
//! only in the process that made it, and the workers were started before it.
//! A [`Manager`] instead owns its queues in the parent and serves them on a
//! Unix socket; a [`Queue`] handle is only an address, a token and a queue
//! number, so it can be cloned into thread workers or serialized into the
//! arguments of a task for process workers. Each handle works out where it
//! is: next to the manager it uses the queue directly (a mutex), elsewhere
//! it talks to the manager's server over the socket.
//!
//! Layers, each calling only those listed before it: [`protocol`] is the
//! wire (messages, token, address) and [`sock`] the two socket calls std
//! lacks; [`store`] is the queue itself; [`queue_error`] holds the public
//! errors and the internal `Fail`; [`server`] accepts connections and runs
//! requests against the store. On the client side, [`connection`] is one
//! authenticated connection, [`behind`] the pipelined (write-behind) puts
//! on one, [`endpoint`] a process's connections to one manager, and
//! [`remote`] a queue's operations through an endpoint. [`queue`] is the
//! public handle on top of both sides; this file owns the [`Manager`].

mod behind;
mod connection;
mod endpoint;
mod protocol;
mod queue;
mod queue_error;
mod remote;
mod server;
mod sock;
mod store;

#[cfg(test)]
mod tests;

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use serde::{Serialize, de::DeserializeOwned};

pub use queue::Queue;
pub use queue_error::{
    GetError, GetTimeoutError, ManagerError, PutError, PutTimeoutError, TryGetError, TryPutError,
};

pub(crate) use endpoint::settle_all;
use protocol::Address;
use server::Core;
use store::Shared;

/// Owns shared queues and serves them to handles in any process.
///
/// It lives in the parent (the process that creates the pool) and runs a
/// server thread on a Unix socket in a private directory (mode 0700, removed
/// on drop). Handles authenticate with a random 256-bit token that travels
/// inside the handle, and serialized handles from anywhere reach the queues
/// through it; see [`Queue`] for what each operation costs.
///
/// Dropping the manager ends its queues: every handle operation from then on,
/// and every one blocked at that moment, in this process or another, fails
/// with [`ManagerError::Gone`] instead of hanging. The same holds when the
/// manager's process dies.
///
/// ```
/// let manager = procpool::Manager::new()?;
/// let queue = manager.queue::<u32>(0)?;
/// queue.put(1)?;
/// drop(manager);
/// assert!(matches!(queue.get(), Err(procpool::GetError::Failed(procpool::ManagerError::Gone))));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Manager {
    core: Arc<Core>,
    /// Kept to shut the listening socket down on drop, which wakes the
    /// listener thread's `accept`.
    listener: UnixListener,
    acceptor: Option<JoinHandle<()>>,
    dir: PathBuf,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("core", &self.core)
            .finish_non_exhaustive()
    }
}

impl Manager {
    /// Starts a manager: creates its private directory and socket and its
    /// server thread.
    ///
    /// ```
    /// let manager = procpool::Manager::new()?;
    /// assert!(manager.queue::<u8>(0)?.empty()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new() -> Result<Manager, ManagerError> {
        let token = protocol::random_token().map_err(ManagerError::Io)?;
        let dir = private_dir().map_err(ManagerError::Io)?;
        let socket = dir.join("manager.sock");
        let started = UnixListener::bind(&socket).and_then(|listener| {
            let accepting = listener.try_clone()?;
            let core = Arc::new(Core::new(Address { socket, token }));
            let serving = Arc::clone(&core);
            let acceptor = std::thread::Builder::new()
                .name("procpool-manager".into())
                .spawn(move || server::accept_loop(serving, accepting))?;
            Ok((listener, core, acceptor))
        });
        let (listener, core, acceptor) = match started {
            Ok(parts) => parts,
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                return Err(ManagerError::Io(e));
            }
        };
        server::register_local(&core);
        Ok(Manager {
            core,
            listener,
            acceptor: Some(acceptor),
            dir,
        })
    }

    /// Creates a queue holding at most `maxsize` items (0 means unbounded)
    /// and returns a handle to it. A full bounded queue makes `put` wait,
    /// which is how a fast producer is held back to its consumers' pace.
    ///
    /// ```
    /// let manager = procpool::Manager::new()?;
    /// let queue = manager.queue::<(u32, String)>(2)?;
    /// queue.put((1, "one".into()))?;
    /// assert_eq!(queue.get()?, (1, "one".to_string()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn queue<T>(&self, maxsize: usize) -> Result<Queue<T>, ManagerError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
    {
        let shared = Arc::new(Shared::new(maxsize));
        let id = self.core.add_queue(Arc::clone(&shared)).ok_or_else(|| {
            ManagerError::Protocol("this manager has created the maximum number of queues".into())
        })?;
        Ok(Queue::local(shared, id, Arc::clone(&self.core.address)))
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        server::forget_local(&self.core);
        self.core.stop();
        sock::shut_down_listener(&self.listener);
        if !cfg!(any(target_os = "linux", target_os = "android")) {
            // Where shutdown does not wake `accept`, one connection does; the
            // listener thread sees `stopping` and exits.
            let _ = UnixStream::connect(&self.core.address.socket);
        }
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let _ = fs::remove_file(&self.core.address.socket);
        let _ = fs::remove_dir(&self.dir);
    }
}

/// Creates a fresh directory only this user can enter, under `$TMPDIR` or
/// `/tmp`. Its random name cannot be predicted, and `mkdir` fails rather
/// than reuse an existing path, so nobody can plant a socket in it.
fn private_dir() -> io::Result<PathBuf> {
    // 120 random bits, in hex.
    const RANDOM_BYTES: usize = 15;
    // A socket path must fit `sockaddr_un` (108 bytes on Linux, 104 on
    // macOS); fall back to /tmp when $TMPDIR is too deep for that.
    const ROOM_FOR_BASE: usize =
        104 - "/procpool-".len() - 2 * RANDOM_BYTES - "/manager.sock".len() - 1;
    let tmpdir = std::env::var_os("TMPDIR").map(PathBuf::from);
    let base = tmpdir
        .filter(|dir| dir.is_absolute() && dir.as_os_str().len() <= ROOM_FOR_BASE)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    let mut last_error = None;
    for _ in 0..16 {
        let random = protocol::random_token()?;
        let name: String = random[..RANDOM_BYTES]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let dir = base.join(format!("procpool-{name}"));
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_error = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_error.unwrap_or_else(|| io::Error::other("no unique directory name found")))
}

/// The directory that holds the socket; for tests that check its cleanup.
#[cfg(test)]
impl Manager {
    fn dir(&self) -> &std::path::Path {
        &self.dir
    }
}
