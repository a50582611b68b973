//! A process's connections to one manager: the [`Endpoint`], pooled per
//! manager address and token, and the registry of every endpoint this
//! process has used. Owns the idle connections and the endpoint's
//! write-behind [`Pipeline`]; calls [`Connection`] and the pipeline, never
//! a queue handle.
//!
//! Connections belong to an endpoint, not to a handle: every handle
//! deserialized in a worker for the same manager shares them, so a worker
//! that receives the queue with each task connects once, not once per
//! task. An operation borrows an idle connection (or opens one) for exactly
//! one request and reply, so threads sharing a handle never wait on each
//! other's blocking `get`. Write-behind puts have a connection of their own
//! per endpoint (see [`super::behind`]).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::behind::Pipeline;
use super::connection::Connection;
use super::protocol::Address;
use super::queue_error::{Fail, ManagerError};

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
    pipeline: Mutex<Pipeline>,
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

/// Settles the write-behind puts of this process to every manager.
///
/// For a pool worker to call before it reports a task done: then whatever
/// the task put is in its queue before the parent hears of the task, even
/// through a handle the task kept (say, in a global set by an initializer),
/// so a parent that closes the queue once all tasks are done refuses none
/// of it. Handles passed as task arguments settle anyway when dropped.
pub(crate) fn settle_all() {
    let endpoints = ENDPOINTS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    for endpoint in endpoints {
        let _ = endpoint.settle();
    }
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
    pub(super) fn with_connection<R>(
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

    /// The write-behind state; puts from several threads go out one at a
    /// time, in the order they take this lock.
    pub(super) fn pipeline(&self) -> MutexGuard<'_, Pipeline> {
        self.pipeline.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until every write-behind put of this process to this manager
    /// has been run.
    pub(crate) fn settle(&self) -> Result<(), ManagerError> {
        self.pipeline().settle()
    }
}
