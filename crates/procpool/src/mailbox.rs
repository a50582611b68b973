//! Shared-memory mailboxes beside a worker process's socket: a small frame
//! crosses to a reader that is awake without a system call. Owns the
//! mapping and its protocol; calls only the spin.
//!
//! Each worker has one mapping (a `memfd` the worker inherits) of two
//! boxes, one per direction. A box holds at most one frame body of up to
//! [`CAPACITY`] bytes and a state word; each side only ever writes to its
//! outbox and reads its inbox. The socket stays for everything else: large
//! frames, a reader that sleeps, and the end of the peer (end of file).
//!
//! Who changes the state, and when (writer W, reader R of one box):
//! - `EMPTY` → `WRITING` → `FULL`: W, when its frame fits and is the
//!   whole message; it copies the frame in between.
//! - `EMPTY` → `SOCKET`: W, before it writes a frame to the socket, so a
//!   spinning R turns to the socket at once.
//! - `FULL` → `EMPTY`: R, once it has copied the frame out.
//! - `EMPTY` → `SLEEPING`: R, when its spin ends; it then blocks on the
//!   socket, and W, whose `EMPTY` → `WRITING` fails, writes there.
//! - `SLEEPING` or `SOCKET` → `EMPTY`: R, after it has read a frame from
//!   the socket.
//!
//! Both transitions out of `EMPTY` are compare-and-swaps, so W and R agree
//! on where the next frame goes: R never sleeps on a socket while a frame
//! waits in the box, and never looks in the box for a frame that went to
//! the socket. Order holds because a frame goes to the box only when the
//! box is empty and R has no socket frame pending: the protocol is one
//! message in flight each way, and a message of several frames (a batch's
//! replies over 1 GiB) goes wholly by the socket. W waits while its box is
//! still `FULL` (never, with one message in flight).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::spin::spin_until;

/// One box's size in the mapping: its header, then its data.
const BOX: usize = 32 << 10;
/// The header: the state word and the frame's length, alone on their
/// cache line.
const HEADER: usize = 64;
/// The largest frame body a box holds.
pub(crate) const CAPACITY: usize = BOX - HEADER;

const EMPTY: u32 = 0;
const WRITING: u32 = 1;
const FULL: u32 = 2;
const SLEEPING: u32 = 3;
const SOCKET: u32 = 4;

/// Which end of the mapping this process is: the parent writes box 0 and
/// reads box 1, the worker the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Parent,
    Worker,
}

/// A worker's two mailboxes, mapped.
pub(crate) struct Mailboxes {
    base: *mut u8,
    side: Side,
}

// SAFETY: the mapping lives until `Drop`, whoever owns the value; its
// memory is only touched through atomics and, for a box's data, by the one
// side that the state word gives it to.
unsafe impl Send for Mailboxes {}

impl std::fmt::Debug for Mailboxes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailboxes")
            .field("side", &self.side)
            .finish_non_exhaustive()
    }
}

/// One box: its state word, its frame's length, and its data.
struct Mailbox<'a> {
    state: &'a AtomicU32,
    len: &'a AtomicU32,
    data: *mut u8,
}

impl Mailboxes {
    /// Makes a worker's mailboxes; the returned descriptor is for the
    /// worker to map (it is close-on-exec: the spawner passes it on).
    pub(crate) fn create() -> io::Result<(Mailboxes, OwnedFd)> {
        // SAFETY: a valid NUL-terminated name and flags.
        let fd = unsafe { libc::memfd_create(c"procpool-mailbox".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just opened and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: ftruncate on a descriptor this function owns.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), (2 * BOX) as libc::off_t) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((Mailboxes::map(fd.as_raw_fd(), Side::Parent)?, fd))
    }

    /// Maps the mailboxes the parent passed as `fd` (taking the descriptor,
    /// which is closed once mapped).
    pub(crate) fn open(fd: RawFd) -> io::Result<Mailboxes> {
        // SAFETY: the parent passed this descriptor for this process alone.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: all-zero is a valid `stat`, which fstat fills in.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fstat on an owned descriptor into a live struct.
        if unsafe { libc::fstat(fd.as_raw_fd(), &mut stat) } < 0 {
            return Err(io::Error::last_os_error());
        }
        if stat.st_size != (2 * BOX) as libc::off_t {
            return Err(io::Error::other("the mailboxes have the wrong size"));
        }
        Mailboxes::map(fd.as_raw_fd(), Side::Worker)
    }

    fn map(fd: RawFd, side: Side) -> io::Result<Mailboxes> {
        // SAFETY: a fresh shared mapping of a file of exactly this size.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                2 * BOX,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mailboxes {
            base: base.cast(),
            side,
        })
    }

    fn mailbox(&self, index: usize) -> Mailbox<'_> {
        // SAFETY: both boxes lie inside the mapping, which is page aligned
        // and outlives `self`; the header's words are aligned for
        // `AtomicU32`, and shared memory is only accessed atomically there.
        unsafe {
            let start = self.base.add(index * BOX);
            Mailbox {
                state: AtomicU32::from_ptr(start.cast()),
                len: AtomicU32::from_ptr(start.add(4).cast()),
                data: start.add(HEADER),
            }
        }
    }

    fn outbox(&self) -> Mailbox<'_> {
        self.mailbox(usize::from(self.side == Side::Worker))
    }

    fn inbox(&self) -> Mailbox<'_> {
        self.mailbox(usize::from(self.side == Side::Parent))
    }

    /// Posts a frame body made of `parts` (head, then blocks). `true`: it
    /// is in the box. `false`: write the frame to the socket, where the
    /// reader will read it; so it is for a frame too large for the box,
    /// for one that is part of a longer message (`whole` false), and when
    /// the reader sleeps.
    pub(crate) fn post(&self, parts: &[&[u8]], whole: bool) -> bool {
        let out = self.outbox();
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let fits = whole && len <= CAPACITY;
        let next = if fits { WRITING } else { SOCKET };
        loop {
            match out
                .state
                .compare_exchange(EMPTY, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) if fits => break,
                Ok(_) => return false,
                // The reader has not taken the last frame: one sent now by
                // the socket could be read before it.
                Err(FULL) => std::thread::yield_now(),
                Err(_) => return false,
            }
        }
        let mut at = out.data;
        for part in parts {
            // SAFETY: the parts add up to at most CAPACITY bytes, the box's
            // data; `WRITING` gives the data to this side alone.
            unsafe {
                std::ptr::copy_nonoverlapping(part.as_ptr(), at, part.len());
                at = at.add(part.len());
            }
        }
        out.len.store(len as u32, Ordering::Relaxed);
        out.state.store(FULL, Ordering::Release);
        true
    }

    /// Waits (spinning, see `crate::spin`) for the next frame body in the
    /// inbox and copies it into `buf`: `Ok(true)`. `Ok(false)`: the frame
    /// comes by the socket; read it there, then call
    /// [`read_from_socket`](Self::read_from_socket).
    pub(crate) fn take(&self, buf: &mut Vec<u8>) -> io::Result<bool> {
        let inbox = self.inbox();
        loop {
            spin_until(|| inbox.state.load(Ordering::Acquire) != EMPTY);
            match inbox.state.load(Ordering::Acquire) {
                FULL => break,
                // The writer is copying a frame in: it is microseconds away.
                WRITING => std::thread::yield_now(),
                EMPTY => {
                    let sleep = inbox.state.compare_exchange(
                        EMPTY,
                        SLEEPING,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    );
                    if sleep.is_ok() {
                        return Ok(false);
                    }
                }
                _ => return Ok(false),
            }
        }
        let len = inbox.len.load(Ordering::Relaxed) as usize;
        if len > CAPACITY {
            return Err(io::Error::other(format!(
                "a mailbox frame of {len} bytes exceeds its {CAPACITY} byte box"
            )));
        }
        buf.clear();
        // SAFETY: `FULL` (read with Acquire) gives the data to this side
        // until it stores `EMPTY`; `len` is within the box.
        buf.extend_from_slice(unsafe { std::slice::from_raw_parts(inbox.data, len) });
        inbox.state.store(EMPTY, Ordering::Release);
        Ok(true)
    }

    /// A frame was read from the socket: the inbox is in use again.
    pub(crate) fn read_from_socket(&self) {
        let inbox = self.inbox();
        for from in [SLEEPING, SOCKET] {
            let _ = inbox
                .state
                .compare_exchange(from, EMPTY, Ordering::AcqRel, Ordering::Acquire);
        }
    }

    /// Whether the last frame this side posted is still in its box, never
    /// taken: a reader that died did not see it.
    pub(crate) fn unread(&self) -> bool {
        self.outbox().state.load(Ordering::Acquire) == FULL
    }
}

impl Drop for Mailboxes {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, unmapped once.
        unsafe { libc::munmap(self.base.cast(), 2 * BOX) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_whole_frame_goes_through_the_box_and_others_by_the_socket() {
        let (parent, fd) = Mailboxes::create().unwrap();
        // SAFETY: dup of an owned descriptor, handed to `open`.
        let worker = Mailboxes::open(unsafe { libc::dup(fd.as_raw_fd()) }).unwrap();
        let mut buf = Vec::new();
        assert!(parent.post(&[b"head", b"block"], true));
        assert!(parent.unread());
        assert!(worker.take(&mut buf).unwrap());
        assert_eq!(buf, b"headblock");
        assert!(!parent.unread());
        // Too large, or part of a longer message: the socket, announced.
        assert!(!worker.post(&[&vec![0; CAPACITY + 1]], true));
        assert!(!parent.take(&mut buf).unwrap());
        parent.read_from_socket();
        assert!(!worker.post(&[b"part"], false));
        assert!(!parent.take(&mut buf).unwrap());
        parent.read_from_socket();
        // A reader that went to sleep gets the next frame by the socket.
        assert!(!parent.take(&mut buf).unwrap());
        assert!(!worker.post(&[b"late"], true));
        parent.read_from_socket();
        assert!(worker.post(&[b"awake"], true));
        assert!(parent.take(&mut buf).unwrap());
        assert_eq!(buf, b"awake");
    }
}
