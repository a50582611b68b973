//! The messages between the parent and a worker process. Owns the message
//! types and how a frame carries byte blocks; calls only the frame codec.
//!
//! A batch frame is a small postcard head followed by the calls' encoded
//! arguments, raw, one block after the other; a replies frame likewise.
//! The head gives each block's length. So a large argument is written from
//! where it lies (a vectored write) and read in place, never copied into a
//! frame or out of one, and never walked byte by byte by serde.

use serde::{Deserialize, Serialize};
use serde_bytes::Bytes;

use crate::frame::FrameError;

/// Parent → worker.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToWorker<'a> {
    /// The first message: the task table's fingerprint, and the initializer
    /// (task index, encoded arguments) if there is one.
    Hello {
        fingerprint: u64,
        #[serde(borrow)]
        init: Option<(u32, &'a Bytes)>,
    },
    /// Calls to run in order. Their encoded `Vec<Args>` follow the head as
    /// blocks, in the same order.
    Batch(Vec<Call>),
    /// Finish and exit with status 0.
    Exit,
}

/// One call of a batch: the task's index and its block's length.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Call {
    pub(crate) task: u32,
    pub(crate) len: u64,
}

/// Worker → parent.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum FromWorker {
    /// Start-up went well; the worker waits for batches.
    Ready,
    /// Start-up failed (wrong executable, or the initializer failed); the
    /// worker exits after sending this.
    StartFailed(String),
    /// The next replies of the batch, in order (a batch's replies may take
    /// several frames): for each call, the length of its block (the encoded
    /// `Vec<Result<Output, TaskFailure>>`, following the head in order), or
    /// why the call could not run.
    Replies(Vec<Result<u64, String>>),
}

/// Cuts the blocks that follow a head into pieces of the given lengths.
/// They must add up to all of `rest`: a frame has nothing else.
pub(crate) fn split_blocks(
    rest: &[u8],
    lens: impl IntoIterator<Item = u64>,
) -> Result<Vec<&[u8]>, FrameError> {
    let mut left = rest;
    let mut blocks = Vec::new();
    for len in lens {
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let Some((block, after)) = left.split_at_checked(len) else {
            return Err(FrameError::Malformed(format!(
                "a block of {len} bytes overruns its frame"
            )));
        };
        blocks.push(block);
        left = after;
    }
    if !left.is_empty() {
        return Err(FrameError::Malformed(format!(
            "{} bytes after the last block",
            left.len()
        )));
    }
    Ok(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_must_fill_the_frame_exactly() {
        let rest = [1u8, 2, 3, 4, 5];
        let blocks = split_blocks(&rest, [2, 0, 3]).unwrap();
        assert_eq!(blocks, vec![&[1u8, 2][..], &[], &[3, 4, 5]]);
        assert!(split_blocks(&rest, [2, 4]).is_err());
        assert!(split_blocks(&rest, [2]).is_err());
        assert!(split_blocks(&rest, [u64::MAX]).is_err());
    }
}
