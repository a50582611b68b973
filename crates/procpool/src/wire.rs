//! The messages between the parent and a worker process.
//!
//! `P` is the payload type: the parent sends borrowed slices (no copy of
//! each call's arguments), the worker decodes owned buffers. Both encode
//! the same way, as a length and the bytes.

use serde::{Deserialize, Serialize};

/// Parent → worker.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToWorker<P> {
    /// The first message: the task table's fingerprint, and the initializer
    /// (task index, encoded arguments) if there is one.
    Hello {
        fingerprint: u64,
        init: Option<(u32, P)>,
    },
    /// Calls to run in order: (task index, encoded `Vec<Args>`).
    Batch(Vec<(u32, P)>),
    /// Finish and exit with status 0.
    Exit,
}

/// Worker → parent.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum FromWorker {
    /// Start-up went well; the worker waits for batches.
    Ready,
    /// Start-up failed (wrong executable, or the initializer failed); the
    /// worker exits after sending this.
    StartFailed(String),
    /// One entry per call of the batch, in order: the encoded
    /// `Vec<Result<Output, TaskFailure>>`, or why the call could not run.
    Replies(Vec<Result<Vec<u8>, String>>),
}
