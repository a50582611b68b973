//! The two socket calls std does not offer: a send that cannot raise
//! SIGPIPE, and a non-blocking "has the peer hung up?" check.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

/// `MSG_NOSIGNAL` where it exists: writing to a socket whose peer died must
/// be an `EPIPE` error, not a signal that kills the process (the library
/// cannot rely on the binary ignoring SIGPIPE).
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd"
))]
const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd"
)))]
const SEND_FLAGS: libc::c_int = 0;

/// Writes all of `bytes` (one frame) to `stream`.
pub(crate) fn send_all(stream: &UnixStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a live, initialized slice and the length passed
        // is its length; the fd stays open because `stream` is borrowed for
        // the whole call.
        let sent = unsafe {
            libc::send(
                stream.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                SEND_FLAGS,
            )
        };
        match usize::try_from(sent) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "socket accepted no bytes",
                ));
            }
            Ok(n) => bytes = &bytes[n..],
            Err(_) => {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
        }
    }
    Ok(())
}

#[cfg(any(target_os = "linux", target_os = "android"))]
const HANGUP_EVENTS: libc::c_short = libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const HANGUP_EVENTS: libc::c_short = libc::POLLHUP | libc::POLLERR;

/// True when the peer of `stream` has closed its end (its process may have
/// died). Never blocks. A peer that merely sent data is not hung up.
pub(crate) fn peer_hung_up(stream: &UnixStream) -> bool {
    let mut pollfd = libc::pollfd {
        fd: stream.as_raw_fd(),
        events: HANGUP_EVENTS,
        revents: 0,
    };
    // SAFETY: `pollfd` is one valid, writable pollfd and the count says one;
    // a zero timeout makes the call non-blocking.
    let ready = unsafe { libc::poll(&mut pollfd, 1, 0) };
    ready > 0 && pollfd.revents & HANGUP_EVENTS != 0
}

/// Ends the reading side of `stream` without closing the descriptor, which
/// its owner still holds: a thread blocked reading it wakes to end-of-file
/// once the requests already received are read, and the peer's further
/// writes fail. Writes from this side still go out, so a reply to a request
/// that was already served reaches its client.
pub(crate) fn stop_reading(stream: &UnixStream) {
    // Failure means already shut down or not connected: both fine here.
    let _ = stream.shutdown(std::net::Shutdown::Read);
}

/// Makes a thread blocked in `accept` on `listener` return (with an error)
/// and every later `accept` fail. Linux does this for `shutdown` on a
/// listening socket; elsewhere the caller also connects once to wake it.
pub(crate) fn shut_down_listener(listener: &std::os::unix::net::UnixListener) {
    // SAFETY: the fd is open for the duration of the borrow; shutdown does
    // not close it or touch memory.
    let _ = unsafe { libc::shutdown(listener.as_raw_fd(), libc::SHUT_RDWR) };
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn hang_up_is_seen_only_once_the_peer_is_gone() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        assert!(!peer_hung_up(&ours));
        send_all(&theirs, b"data is not a hang-up").unwrap();
        assert!(!peer_hung_up(&ours));
        drop(theirs);
        assert!(peer_hung_up(&ours));
    }

    #[test]
    fn sending_to_a_dead_peer_is_an_error_not_a_signal() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        drop(theirs);
        let err = send_all(&ours, b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn stop_reading_ends_a_blocked_read_but_not_writes() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let mut reader = ours.try_clone().unwrap();
        let blocked = std::thread::spawn(move || reader.read(&mut [0u8; 16]).unwrap());
        stop_reading(&ours);
        assert_eq!(blocked.join().unwrap(), 0);
        send_all(&ours, b"reply").unwrap();
        let mut got = [0u8; 5];
        (&theirs).read_exact(&mut got).unwrap();
        assert_eq!(&got, b"reply");
    }
}
