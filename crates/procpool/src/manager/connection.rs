//! One authenticated connection to a manager: opening it (the token
//! handshake), sending a request frame, reading a reply frame. Owns
//! [`Connection`] and how socket failures read to the user; calls the
//! protocol, the socket helpers and the frame codec, nothing above them.
//!
//! Descriptors are close-on-exec (std's default), so re-executed pool
//! workers never inherit another process's connection.

use std::io::{self, BufReader};
use std::os::unix::net::UnixStream;

use serde::Serialize;

use super::protocol::{Address, Hello, HelloReply, MAGIC, Reply, RequestHead};
use super::queue_error::{Fail, ManagerError};
use super::sock;
use crate::frame::{self, FrameError};

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
    pub(super) in_sync: bool,
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
    pub(super) fn open(address: &Address) -> Result<Connection, ManagerError> {
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
