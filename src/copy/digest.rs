//! The content hash of `--checksum` and `--verify`: xxh3-128, streamed.
//!
//! xxh3 is a non-cryptographic hash, chosen for speed (about 21 GiB/s on
//! one core here, five times blake3; README, Dependencies): it detects
//! changed and corrupted data, not data crafted to collide.

use std::os::fd::BorrowedFd;

use rustix::io::Errno;
use xxhash_rust::xxh3::Xxh3;

/// Read size when hashing a whole file.
const CHUNK: usize = 256 << 10;

/// A running hash of data seen so far.
#[derive(Clone)]
pub(crate) struct Digest(Xxh3);

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Digest").field(&self.0.digest128()).finish()
    }
}

impl Default for Digest {
    fn default() -> Self {
        Digest(Xxh3::new())
    }
}

impl Digest {
    pub(crate) fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    pub(crate) fn finish(&self) -> u128 {
        self.0.digest128()
    }
}

/// Hashes `fd` from its current offset to EOF, reusing `buffer`; also
/// returns the number of bytes read.
pub(crate) fn hash_fd(fd: BorrowedFd<'_>, buffer: &mut Vec<u8>) -> Result<(u128, u64), Errno> {
    if buffer.len() < CHUNK {
        buffer.resize(CHUNK, 0);
    }
    let mut digest = Digest::default();
    let mut total = 0;
    loop {
        match rustix::io::read(fd, &mut buffer[..]) {
            Ok(0) => return Ok((digest.finish(), total)),
            Ok(n) => {
                digest.update(&buffer[..n]);
                total += n as u64;
            }
            Err(Errno::INTR) => {}
            Err(err) => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;

    #[test]
    fn streamed_hash_equals_the_one_shot_hash() {
        let mut file = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
        file.write_all(&data).unwrap();
        rustix::fs::seek(&file, rustix::fs::SeekFrom::Start(0)).unwrap();
        let (hash, len) = hash_fd(file.as_fd(), &mut Vec::new()).unwrap();
        assert_eq!(len, data.len() as u64);
        assert_eq!(hash, xxhash_rust::xxh3::xxh3_128(&data));
        let mut split = Digest::default();
        split.update(&data[..1000]);
        split.update(&data[1000..]);
        assert_eq!(split.finish(), hash);
    }
}
