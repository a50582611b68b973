//! Length-prefixed frames: the only thing that crosses a worker socket or a
//! manager connection.
//!
//! A frame is a little-endian `u32` byte count followed by that many bytes of
//! postcard. The count is checked against [`MAX_FRAME`] before anything is
//! allocated, so a corrupt or hostile peer can make a read fail but cannot
//! make it allocate without bound, panic, or read past the frame.
//!
//! A frame to or from a worker process may end in raw byte blocks after
//! its postcard head (see `wire`), written from where they lie by
//! [`encode_with_blocks`] and [`send_all`].

use std::io::{self, Read, Write};
use std::os::fd::RawFd;

use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// The largest value one frame carries whole (1 GiB): a task's encoded
/// arguments or results, or a queue's item. A larger one fails alone, with
/// an error naming both sizes, instead of being truncated.
pub(crate) const MAX_VALUE: usize = 1 << 30;

/// The largest frame either side accepts: one value of [`MAX_VALUE`] and
/// room for the head that describes it.
pub(crate) const MAX_FRAME: usize = MAX_VALUE + HEAD_ROOM;

/// Room in a frame for the head before its blocks.
pub(crate) const HEAD_ROOM: usize = 1 << 20;

/// Why a frame could not be read.
#[derive(Debug)]
pub(crate) enum FrameError {
    /// The peer closed the stream between two frames.
    Eof,
    /// The stream failed, or ended in the middle of a frame.
    Io(io::Error),
    /// The length prefix is larger than [`MAX_FRAME`].
    TooLarge(u64),
    /// The bytes are not a valid encoding of the expected message.
    Malformed(String),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Eof => f.write_str("connection closed"),
            FrameError::Io(e) => write!(f, "i/o error: {e}"),
            FrameError::TooLarge(n) => {
                write!(f, "frame of {n} bytes exceeds the {MAX_FRAME} byte limit")
            }
            FrameError::Malformed(m) => write!(f, "malformed frame: {m}"),
        }
    }
}

/// Encodes `value` with postcard into `buf` (cleared first) behind room for
/// the length prefix, so one `write_all` sends the whole frame.
pub(crate) fn encode_frame<T: Serialize + ?Sized>(
    value: &T,
    buf: &mut Vec<u8>,
) -> Result<(), String> {
    buf.clear();
    buf.extend_from_slice(&[0; 4]);
    let taken = std::mem::take(buf);
    let mut out = postcard::to_extend(value, taken).map_err(|e| e.to_string())?;
    let len = out.len() - 4;
    if len > MAX_FRAME {
        return Err(format!(
            "message of {len} bytes exceeds the {MAX_FRAME} byte frame limit"
        ));
    }
    out[..4].copy_from_slice(&(len as u32).to_le_bytes());
    *buf = out;
    Ok(())
}

/// Writes a frame built by [`encode_frame`].
pub(crate) fn send_encoded(w: &mut impl Write, frame: &[u8]) -> io::Result<()> {
    w.write_all(frame)
}

/// Encodes and writes one message. `scratch` is reused between calls so a
/// steady stream of frames does not allocate.
pub(crate) fn write_message<T: Serialize + ?Sized>(
    w: &mut impl Write,
    value: &T,
    scratch: &mut Vec<u8>,
) -> io::Result<()> {
    encode_frame(value, scratch).map_err(io::Error::other)?;
    send_encoded(w, scratch)
}

/// Encodes `head` into `scratch` behind the length prefix of a frame that
/// `blocks` end, refusing a frame over [`MAX_FRAME`]. The frame is
/// `scratch` followed by the blocks; its body, `scratch[4..]` and the
/// blocks.
pub(crate) fn encode_with_blocks<T: Serialize + ?Sized>(
    head: &T,
    blocks: &[&[u8]],
    scratch: &mut Vec<u8>,
) -> io::Result<()> {
    encode_frame(head, scratch).map_err(io::Error::other)?;
    let len = scratch.len() - 4 + blocks.iter().map(|b| b.len()).sum::<usize>();
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("frame of {len} bytes exceeds the {MAX_FRAME} byte limit"),
        ));
    }
    scratch[..4].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(())
}

/// Writes every byte of `parts`, in order, to the socket `fd`, as few
/// `sendmsg` calls as the kernel allows. `MSG_NOSIGNAL` turns a dead peer
/// into `EPIPE` instead of a SIGPIPE that would kill this process.
pub(crate) fn send_all(fd: RawFd, parts: &[&[u8]]) -> io::Result<()> {
    const MOST_PARTS: usize = 64;
    let (mut index, mut offset) = (0, 0);
    loop {
        while index < parts.len() && parts[index].len() == offset {
            (index, offset) = (index + 1, 0);
        }
        if index == parts.len() {
            return Ok(());
        }
        let mut iov = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; MOST_PARTS];
        let mut count = 0;
        for (i, part) in parts[index..].iter().take(MOST_PARTS).enumerate() {
            let part = if i == 0 { &part[offset..] } else { part };
            iov[i] = libc::iovec {
                iov_base: part.as_ptr().cast_mut().cast(),
                iov_len: part.len(),
            };
            count += 1;
        }
        // SAFETY: all-zero is a valid msghdr (no name, no control data).
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = count as _;
        // SAFETY: `msg` points at `count` iovecs, each describing a live
        // slice of `parts`, all of which outlive the call.
        let sent = unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL) };
        if sent < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let mut sent = sent as usize;
        while sent > 0 {
            let left = parts[index].len() - offset;
            if sent >= left {
                (index, offset, sent) = (index + 1, 0, sent - left);
            } else {
                (offset, sent) = (offset + sent, 0);
            }
        }
    }
}

/// Decodes a frame's head, and returns it with the bytes after it (the
/// blocks, if the message has any).
pub(crate) fn decode_head<'a, T: Deserialize<'a>>(
    bytes: &'a [u8],
) -> Result<(T, &'a [u8]), FrameError> {
    postcard::take_from_bytes(bytes).map_err(|e| FrameError::Malformed(e.to_string()))
}

/// Reads one frame's bytes into `buf` (replacing its contents).
pub(crate) fn read_frame(r: &mut impl Read, buf: &mut Vec<u8>) -> Result<(), FrameError> {
    let mut len = [0u8; 4];
    read_prefix(r, &mut len)?;
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len as u64));
    }
    read_body(r, buf, len)
}

/// Reads exactly `len` bytes into `buf` (replacing its contents), straight
/// into reserved room, which is not zeroed first. The room is address
/// space, not memory, until bytes arrive, so a false length costs a failed
/// read, not a gigabyte.
fn read_body(r: &mut impl Read, buf: &mut Vec<u8>, len: usize) -> Result<(), FrameError> {
    buf.clear();
    buf.reserve_exact(len);
    // `take` bounds the read even if the peer keeps sending.
    let got = r
        .take(len as u64)
        .read_to_end(buf)
        .map_err(FrameError::Io)?;
    if got != len {
        // The stream ended inside the frame: an error, not the clean end
        // of stream between frames.
        buf.clear();
        return Err(FrameError::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("stream ended {got} bytes into a {len} byte frame"),
        )));
    }
    Ok(())
}

/// Reads the 4-byte prefix, telling a clean end of stream (no byte at all)
/// from one cut inside the prefix.
fn read_prefix(r: &mut impl Read, len: &mut [u8; 4]) -> Result<(), FrameError> {
    let mut filled = 0;
    while filled < 4 {
        match r.read(&mut len[filled..]) {
            Ok(0) if filled == 0 => return Err(FrameError::Eof),
            Ok(0) => {
                return Err(FrameError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "stream ended inside a frame header",
                )));
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FrameError::Io(e)),
        }
    }
    Ok(())
}

/// Decodes a whole frame body; trailing bytes are an error, so two messages
/// can never be confused for one.
pub(crate) fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, FrameError> {
    let (value, rest) =
        postcard::take_from_bytes(bytes).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(FrameError::Malformed(format!(
            "{} trailing bytes",
            rest.len()
        )));
    }
    Ok(value)
}

/// Reads and decodes one message.
pub(crate) fn read_message<T: DeserializeOwned>(
    r: &mut impl Read,
    buf: &mut Vec<u8>,
) -> Result<T, FrameError> {
    read_frame(r, buf)?;
    decode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_clean_eof() {
        let mut wire = Vec::new();
        let mut scratch = Vec::new();
        write_message(&mut wire, &(7u32, "seven".to_string()), &mut scratch).unwrap();
        write_message(&mut wire, &vec![1u8, 2, 3], &mut scratch).unwrap();
        let mut r = wire.as_slice();
        let mut buf = Vec::new();
        let a: (u32, String) = read_message(&mut r, &mut buf).unwrap();
        let b: Vec<u8> = read_message(&mut r, &mut buf).unwrap();
        assert_eq!(a, (7, "seven".to_string()));
        assert_eq!(b, vec![1, 2, 3]);
        assert!(matches!(read_frame(&mut r, &mut buf), Err(FrameError::Eof)));
    }

    #[test]
    fn oversized_prefix_is_refused_before_allocating() {
        let wire = u32::MAX.to_le_bytes();
        let mut buf = Vec::new();
        let err = read_frame(&mut wire.as_slice(), &mut buf).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge(n) if n == u32::MAX as u64));
        assert_eq!(buf.capacity(), 0);
    }

    #[test]
    fn truncated_frames_are_errors_not_eof() {
        let mut buf = Vec::new();
        let cut_header = [1u8, 0];
        assert!(matches!(
            read_frame(&mut cut_header.as_slice(), &mut buf),
            Err(FrameError::Io(_))
        ));
        let cut_body = [5u8, 0, 0, 0, 1, 2];
        assert!(matches!(
            read_frame(&mut cut_body.as_slice(), &mut buf),
            Err(FrameError::Io(_))
        ));
    }

    #[test]
    fn garbage_and_trailing_bytes_are_malformed() {
        assert!(matches!(
            decode::<String>(&[0xff, 0xff, 0xff]),
            Err(FrameError::Malformed(_))
        ));
        assert!(
            matches!(decode::<u8>(&[1, 2]), Err(FrameError::Malformed(m)) if m.contains("trailing"))
        );
    }
}
