//! Moving file contents: reflink, then `copy_file_range`, then read/write.

use std::os::fd::BorrowedFd;
use std::sync::Arc;

use rustix::fs::SeekFrom;
use rustix::io::Errno;

use super::digest::Digest;
use super::fail::{Failure, is_no_space};
use super::throttle::Throttle;

/// Largest `copy_file_range` request, so a huge file reports progress
/// between calls instead of once at the end.
const RANGE_CHUNK: usize = 8 << 20;
/// Buffer size of the read/write fallback.
const BUFFER_SIZE: usize = 256 << 10;
/// Progress is passed on in steps of at least this much (and once at the
/// end), so a caller that sends progress over a pipe is not flooded.
const REPORT_STEP: u64 = 8 << 20;

/// Copies data and remembers which kernel mechanisms the destination lacks,
/// so an unsupported one is tried once per engine, not once per file.
#[derive(Debug, Default)]
pub(super) struct DataCopier {
    reflink_unsupported: bool,
    range_unsupported: bool,
    buffer: Vec<u8>,
    /// Set by [`DataCopier::hash_next`]: the next copy moves the data
    /// through the buffer and hashes it on the way (`--verify`).
    digest: Option<Digest>,
    /// `--bwlimit`: the bucket this process's copies draw from.
    throttle: Option<Arc<Throttle>>,
}

/// Accumulates copied byte counts and forwards them in [`REPORT_STEP`]s.
struct Progress<'a> {
    sink: &'a mut dyn FnMut(u64),
    pending: u64,
    total: u64,
    throttle: Option<Arc<Throttle>>,
}

impl Progress<'_> {
    /// `n` bytes moved: waits for them under `--bwlimit`.
    fn add(&mut self, n: u64) {
        if let Some(throttle) = &self.throttle {
            throttle.take(n);
        }
        self.add_hole(n);
    }

    /// `n` bytes of a hole, which move no data.
    fn add_hole(&mut self, n: u64) {
        self.total += n;
        self.pending += n;
        if self.pending >= REPORT_STEP {
            (self.sink)(self.pending);
            self.pending = 0;
        }
    }

    fn finish(mut self) -> u64 {
        if self.pending > 0 {
            (self.sink)(self.pending);
            self.pending = 0;
        }
        self.total
    }
}

impl DataCopier {
    /// Draws every byte copied from now on from `throttle` (`--bwlimit`);
    /// reflinks, which would move no bytes to count, are not made then.
    pub(super) fn throttle(&mut self, throttle: Option<Arc<Throttle>>) {
        self.reflink_unsupported |= throttle.is_some();
        self.throttle = throttle;
    }

    /// How much one `copy_file_range` call may move: small enough, under
    /// `--bwlimit`, that the waits between calls stay short.
    fn chunk(&self) -> usize {
        match &self.throttle {
            Some(throttle) => throttle.chunk().min(RANGE_CHUNK),
            None => RANGE_CHUNK,
        }
    }

    /// Keeps [`DataCopier::copy`] from cloning, so data moves in chunks even
    /// where `/tmp` supports reflinks.
    #[cfg(test)]
    pub(super) fn force_no_reflink(&mut self) {
        self.reflink_unsupported = true;
    }

    /// Makes [`DataCopier::copy`] use plain read/write, as where neither
    /// reflink nor `copy_file_range` works.
    #[cfg(test)]
    pub(super) fn force_read_write(&mut self) {
        self.reflink_unsupported = true;
        self.range_unsupported = true;
    }

    /// Makes the next [`DataCopier::copy`] hash what it reads; the hash is
    /// then collected with [`DataCopier::take_digest`].
    pub(super) fn hash_next(&mut self) {
        self.digest = Some(Digest::default());
    }

    /// The hash of the data the last copy read, if it was asked for.
    pub(super) fn take_digest(&mut self) -> Option<u128> {
        self.digest.take().map(|digest| digest.finish())
    }

    /// Copies `src` from its current offset to EOF into `dst`, returning the
    /// bytes copied. `size` is the source size from `fstat` at open: a file
    /// that grows meanwhile is copied up to the EOF the reads meet. A
    /// `sparse` source (fewer blocks than its size needs) keeps its holes.
    /// `on_bytes` receives increments that add up to the returned total.
    pub(super) fn copy(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        (size, sparse): (u64, bool),
        on_bytes: &mut dyn FnMut(u64),
    ) -> Result<u64, Failure> {
        let hashing = self.digest.is_some();
        let cloned = if size > 0 && !self.reflink_unsupported && !hashing {
            self.try_reflink(src, dst)?
        } else {
            None
        };
        if let Some(bytes) = cloned {
            on_bytes(bytes);
            return Ok(bytes);
        }
        let mut progress = Progress {
            sink: on_bytes,
            pending: 0,
            total: 0,
            throttle: self.throttle.clone(),
        };
        if sparse {
            self.copy_sparse(src, dst, &mut progress)?;
            return Ok(progress.finish());
        }
        // An empty file needs one read to confirm EOF: pseudo-files report
        // size 0 yet have contents, and copy_file_range copies nothing from them.
        if size > 0 && !self.range_unsupported && !hashing {
            self.copy_ranges(src, dst, size, &mut progress)?;
        } else {
            self.read_write(src, dst, &mut progress)?;
        }
        Ok(progress.finish())
    }

    /// Copies `len` bytes from `offset` of `src` to the same offset of
    /// `dst` (one part of a split file), stopping early at the source's
    /// EOF. `on_bytes` receives increments that add up to the result.
    pub(super) fn copy_range(
        &mut self,
        (src, dst): (BorrowedFd<'_>, BorrowedFd<'_>),
        offset: u64,
        len: u64,
        on_bytes: &mut dyn FnMut(u64),
    ) -> Result<u64, Failure> {
        let mut progress = Progress {
            sink: on_bytes,
            pending: 0,
            total: 0,
            throttle: self.throttle.clone(),
        };
        self.copy_extent(src, dst, offset, offset.saturating_add(len), &mut progress)?;
        Ok(progress.finish())
    }

    /// Shares the source's extents (FICLONE). `None` means "copy instead".
    fn try_reflink(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
    ) -> Result<Option<u64>, Failure> {
        match rustix::fs::ioctl_ficlone(dst, src) {
            Ok(()) => match rustix::fs::fstat(dst) {
                Ok(st) => Ok(Some(u64::try_from(st.st_size).unwrap_or(0))),
                Err(err) => Err(Failure::dest("cannot stat destination", err)),
            },
            Err(err) if is_no_space(err) => Err(Failure::dest("cannot clone data", err)),
            Err(Errno::OPNOTSUPP | Errno::XDEV | Errno::INVAL | Errno::NOTTY | Errno::NOSYS) => {
                self.reflink_unsupported = true;
                Ok(None)
            }
            // Anything else (a busy or special file) may be specific to this
            // file: copy it normally and try cloning again next time.
            Err(_) => Ok(None),
        }
    }

    /// In-kernel copy until EOF. Errors other than ENOSPC hand the rest of
    /// the file to read/write, which both works where this does not and tells
    /// a source error from a destination error.
    ///
    /// A short copy that ends exactly at `size` (the size at open) is taken
    /// as EOF, which saves a call per file that would only return 0. A file
    /// that grew returns more than `size` and is copied on to its new EOF.
    fn copy_ranges(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        size: u64,
        progress: &mut Progress<'_>,
    ) -> Result<(), Failure> {
        let mut copied_any = false;
        let chunk = self.chunk();
        loop {
            match rustix::fs::copy_file_range(src, None, dst, None, chunk) {
                Ok(0) if copied_any => return Ok(()),
                // Nothing at all: some filesystems (procfs, sysfs) return 0
                // for files that do have contents.
                Ok(0) => return self.read_write(src, dst, progress),
                Ok(n) => {
                    copied_any = true;
                    progress.add(n as u64);
                    if n < chunk && progress.total == size {
                        return Ok(());
                    }
                }
                Err(Errno::INTR) => {}
                Err(err) if is_no_space(err) => {
                    return Err(Failure::dest("cannot write destination", err));
                }
                Err(err) => {
                    if matches!(
                        err,
                        Errno::XDEV | Errno::NOSYS | Errno::INVAL | Errno::OPNOTSUPP
                    ) {
                        self.range_unsupported = true;
                    }
                    return self.read_write(src, dst, progress);
                }
            }
        }
    }

    fn read_write(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        progress: &mut Progress<'_>,
    ) -> Result<(), Failure> {
        if self.buffer.is_empty() {
            self.buffer = vec![0; BUFFER_SIZE];
        }
        loop {
            let filled = match rustix::io::read(src, &mut self.buffer[..]) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(Errno::INTR) => continue,
                Err(err) => return Err(Failure::source("cannot read source", err)),
            };
            write_all(dst, &self.buffer[..filled])?;
            if let Some(digest) = &mut self.digest {
                digest.update(&self.buffer[..filled]);
            }
            progress.add(filled as u64);
        }
    }

    /// Copies only the data extents (`SEEK_DATA`/`SEEK_HOLE`), leaving the
    /// holes unwritten, then sets the length, so the copy is as sparse as
    /// the source. A hole still counts as progress, and as zeros in the hash.
    fn copy_sparse(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        progress: &mut Progress<'_>,
    ) -> Result<(), Failure> {
        let mut pos = rustix::fs::seek(src, SeekFrom::Current(0))
            .map_err(|e| Failure::source("cannot seek source", e))?;
        loop {
            let data = match rustix::fs::seek(src, SeekFrom::Data(pos)) {
                Ok(data) => data,
                // No data after `pos`: the rest is one hole up to the end.
                Err(Errno::NXIO) => break,
                Err(err) => return Err(Failure::source("cannot find data in source", err)),
            };
            self.skip_hole(data - pos, progress);
            let end = rustix::fs::seek(src, SeekFrom::Hole(data))
                .map_err(|e| Failure::source("cannot find hole in source", e))?;
            self.copy_extent(src, dst, data, end, progress)?;
            pos = end;
        }
        let size = rustix::fs::fstat(src)
            .map(|st| u64::try_from(st.st_size).unwrap_or(0))
            .map_err(|e| Failure::source("cannot stat source", e))?;
        self.skip_hole(size.saturating_sub(pos), progress);
        rustix::fs::ftruncate(dst, size.max(pos)).map_err(|e| Failure::dest("cannot set size", e))
    }

    fn skip_hole(&mut self, len: u64, progress: &mut Progress<'_>) {
        if let Some(digest) = &mut self.digest {
            let zeros = [0u8; 64 << 10];
            let mut left = len;
            while left > 0 {
                let n = left.min(zeros.len() as u64);
                digest.update(&zeros[..n as usize]);
                left -= n;
            }
        }
        progress.add_hole(len);
    }

    /// Copies bytes `start..end` to the same offsets, in-kernel unless the
    /// data is to be hashed or the kernel cannot.
    fn copy_extent(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        start: u64,
        end: u64,
        progress: &mut Progress<'_>,
    ) -> Result<(), Failure> {
        let (mut off_in, mut off_out) = (start, start);
        while off_in < end && self.digest.is_none() && !self.range_unsupported {
            let len = ((end - off_in) as usize).min(self.chunk());
            match rustix::fs::copy_file_range(src, Some(&mut off_in), dst, Some(&mut off_out), len)
            {
                Ok(0) => return Ok(()),
                Ok(n) => progress.add(n as u64),
                Err(Errno::INTR) => {}
                Err(err) if is_no_space(err) => {
                    return Err(Failure::dest("cannot write destination", err));
                }
                Err(_) => self.range_unsupported = true,
            }
        }
        if self.buffer.is_empty() {
            self.buffer = vec![0; BUFFER_SIZE];
        }
        while off_in < end {
            let want = ((end - off_in) as usize).min(self.buffer.len());
            let n = match rustix::io::pread(src, &mut self.buffer[..want], off_in) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(Errno::INTR) => continue,
                Err(err) => return Err(Failure::source("cannot read source", err)),
            };
            pwrite_all(dst, &self.buffer[..n], off_in)?;
            if let Some(digest) = &mut self.digest {
                digest.update(&self.buffer[..n]);
            }
            off_in += n as u64;
            progress.add(n as u64);
        }
        Ok(())
    }
}

fn pwrite_all(dst: BorrowedFd<'_>, mut data: &[u8], mut offset: u64) -> Result<(), Failure> {
    while !data.is_empty() {
        match rustix::io::pwrite(dst, data, offset) {
            Ok(0) => return Err(Failure::dest("cannot write destination", Errno::IO)),
            Ok(n) => {
                data = &data[n..];
                offset += n as u64;
            }
            Err(Errno::INTR) => {}
            Err(err) => return Err(Failure::dest("cannot write destination", err)),
        }
    }
    Ok(())
}

fn write_all(dst: BorrowedFd<'_>, mut data: &[u8]) -> Result<(), Failure> {
    while !data.is_empty() {
        match rustix::io::write(dst, data) {
            Ok(0) => {
                return Err(Failure::dest("cannot write destination", Errno::IO));
            }
            Ok(n) => data = &data[n..],
            Err(Errno::INTR) => {}
            Err(err) => return Err(Failure::dest("cannot write destination", err)),
        }
    }
    Ok(())
}
