//! The manager protocol: what a remote handle and the server say to each
//! other on a manager connection, and the [`Address`] they meet at. Owns
//! the message types, the token and the wait kinds; calls nothing of the
//! manager (the bottom layer).
//!
//! Every message is one [`crate::frame`] frame. A request frame is a
//! [`RequestHead`] immediately followed, for puts, by the postcard encoding of
//! the item (`T`) or batch (`Vec<T>`); a reply frame is a [`Reply`] followed,
//! for gets, by the item or batch. Items are encoded straight into the frame
//! behind the head, so an item is serialized once and copied by no one.
//!
//! The first frame on a connection is a [`Hello`] carrying the manager's
//! token; the server answers [`HelloReply`] and serves nothing before a
//! correct token.

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Identifies this protocol in the [`Hello`], so a stray client speaking
/// something else is refused with a clear error instead of misparsed.
pub(crate) const MAGIC: u32 = 0x7070_6d31;

/// A manager's shared secret: whoever presents it may use every queue of the
/// manager. 256 bits from the kernel's CSPRNG.
pub(crate) type Token = [u8; 32];

/// Where and how to reach a manager: all a serialized handle carries besides
/// the queue's index and bound.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Address {
    pub(crate) socket: PathBuf,
    pub(crate) token: Token,
}

/// Reads a fresh [`Token`] from `/dev/urandom`.
pub(crate) fn random_token() -> io::Result<Token> {
    let mut token = [0u8; 32];
    File::open("/dev/urandom")?.read_exact(&mut token)?;
    Ok(token)
}

/// Compares two tokens in time independent of where they differ, so timing
/// reveals nothing about how much of a guess was right.
pub(crate) fn tokens_match(a: &Token, b: &Token) -> bool {
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// A stable tag of the item type, carried in every request so a handle
/// deserialized with the wrong `T` is refused instead of mis-decoding items.
/// FNV-1a of [`std::any::type_name`]: identical in every process running the
/// same binary, which is how pool workers are started.
pub(crate) fn type_tag<T: ?Sized>() -> u64 {
    std::any::type_name::<T>()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        })
}

/// First frame of every connection.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Hello {
    pub(crate) magic: u32,
    pub(crate) token: Token,
}

/// The server's answer to a [`Hello`]; after `Refused` it closes the
/// connection.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) enum HelloReply {
    Welcome,
    Refused,
}

/// How long a request may wait for room or for an item.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) enum WireWait {
    /// Until it can complete (or the queue is closed or gone).
    Block,
    /// Not at all.
    Now,
    /// Up to this many microseconds, counted from when the server reads the
    /// request (the socket adds microseconds, not more).
    Micros(u64),
}

impl WireWait {
    /// Converts a caller's timeout; a timeout too large to represent is as
    /// good as blocking.
    pub(crate) fn from_timeout(timeout: Duration) -> WireWait {
        u64::try_from(timeout.as_micros()).map_or(WireWait::Block, WireWait::Micros)
    }

    /// The deadline this wait means, taken now.
    pub(crate) fn start(self) -> Wait {
        match self {
            WireWait::Block => Wait::Block,
            WireWait::Now => Wait::Now,
            WireWait::Micros(us) => Wait::for_timeout(Duration::from_micros(us)),
        }
    }
}

/// A wait with its deadline fixed, used by the queue itself.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wait {
    Block,
    Now,
    Until(Instant),
}

impl Wait {
    /// A deadline `timeout` from now; one past the end of time blocks.
    pub(crate) fn for_timeout(timeout: Duration) -> Wait {
        Instant::now()
            .checked_add(timeout)
            .map_or(Wait::Block, Wait::Until)
    }
}

/// What a request asks of a queue.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) enum Op {
    /// Followed by one `T`.
    Put(WireWait),
    /// Followed by a `Vec<T>`; always blocks for room.
    PutMany,
    /// Followed by one `T`, and not answered: a write-behind put. Its
    /// outcome is recorded on the connection and reported, in order with
    /// the others, by the next [`Op::Settle`].
    PutLater,
    /// Asks for the outcomes of the `PutLater`s since the last settle
    /// ([`Reply::Settled`]). Connection-level: the queue fields are ignored.
    Settle,
    Get(WireWait),
    /// At most this many items, blocking until at least one.
    GetMany(u32),
    Status,
    Close,
}

/// The fixed part of every request after the [`Hello`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RequestHead {
    /// Index of the queue in its manager.
    pub(crate) queue: u32,
    /// [`type_tag`] of the item type the client believes the queue holds.
    pub(crate) tag: u64,
    pub(crate) op: Op,
}

/// The fixed part of every reply.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) enum Reply {
    /// The put, close, or status request succeeded.
    Done,
    /// Followed by one `T`.
    Item,
    /// Followed by a non-empty `Vec<T>`.
    Items,
    /// Answer to [`Op::Status`].
    Status { len: u64, maxsize: u64 },
    /// A non-blocking request found the queue full (put) or empty (get).
    WouldBlock,
    /// The request's deadline passed.
    TimedOut,
    /// The queue is closed: no room for puts, nothing left for gets. For
    /// [`Op::PutMany`], `accepted` leading items of the batch went in before
    /// the close and the rest did not.
    Closed { accepted: u64 },
    /// The manager is shutting down.
    Gone,
    /// The request was not understood: unknown queue, other item type,
    /// malformed item. The connection stays usable.
    Invalid(String),
    /// Answer to [`Op::Settle`]: the outcomes of the write-behind puts since
    /// the last settle, oldest first, consecutive successes merged.
    Settled(Vec<Outcome>),
}

/// What became of a run of write-behind puts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// This many consecutive puts went into their queue.
    Accepted(u64),
    /// One put was refused.
    Refused(Refusal),
}

/// Why a write-behind put was refused.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) enum Refusal {
    Closed,
    Gone,
    Invalid(String),
}
