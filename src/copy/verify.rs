//! `--verify`: the new file is read back before it is named and its hash
//! compared with the hash of the data read from the source, so a copy that
//! the storage garbled never replaces anything.

use std::os::fd::BorrowedFd;

use rustix::fs::{Advice, SeekFrom};

use super::digest::hash_fd;
use super::fail::Failure;
use crate::job::FailKind;

/// Reads `fd` from the start and compares its hash with `expected`. With
/// `flushed` (after `--fsync`) the cached pages are dropped first, so the
/// data is read from the device rather than from memory.
pub(super) fn verify(
    fd: BorrowedFd<'_>,
    expected: u128,
    flushed: bool,
    buffer: &mut Vec<u8>,
) -> Result<(), Failure> {
    if flushed {
        // Advice only: pages still dirty or pinned just stay cached.
        let _ = rustix::fs::fadvise(fd, 0, None, Advice::DontNeed);
    }
    rustix::fs::seek(fd, SeekFrom::Start(0))
        .map_err(|e| Failure::dest("cannot read the copy back", e))?;
    let (actual, _) =
        hash_fd(fd, buffer).map_err(|e| Failure::dest("cannot read the copy back", e))?;
    if actual != expected {
        return Err(Failure::new(
            FailKind::DestIo,
            "verification failed: the copy read back differs from the source; not replacing",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;

    #[test]
    fn a_copy_that_reads_back_different_fails() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"what the storage returned").unwrap();
        let mut buffer = Vec::new();
        let right = xxhash_rust::xxh3::xxh3_128(b"what the storage returned");
        assert!(verify(file.as_fd(), right, true, &mut buffer).is_ok());
        let wrong = xxhash_rust::xxh3::xxh3_128(b"what the source held");
        let failure = verify(file.as_fd(), wrong, false, &mut buffer).unwrap_err();
        assert_eq!(failure.kind, FailKind::DestIo);
        assert!(failure.message.starts_with("verification failed"));
    }
}
