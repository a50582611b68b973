//! Writing one part of a split file through a shared mapping.
//!
//! Linux serializes `write` (and so `copy_file_range`) into one file on
//! the inode lock on tmpfs, ext4 and xfs alike: two workers writing parts
//! of the same file take turns, and gain nothing. Page faults on a shared
//! mapping take no inode lock. So the part's worker that holds the file's
//! `flock` copies with `copy_file_range`, the fastest path; a worker that
//! finds it taken reads the source straight into a shared mapping of its
//! part of the temp instead (a slower path per byte, on tmpfs about half
//! as fast, but one that runs beside the first rather than after it).
//!
//! The mapping is only ever written by the kernel, in `pread`, never by
//! this code: a page the kernel cannot provide (the filesystem is full,
//! or someone truncated the temp) makes `pread` fail with `EFAULT` rather
//! than raise SIGBUS, and the rest of the part then goes through `write`,
//! which reports the real error (such as ENOSPC).

use std::os::fd::{AsRawFd, BorrowedFd};

use rustix::fs::FlockOperation;
use rustix::io::Errno;
use rustix::mm::{Advice, MapFlags, ProtFlags};

use super::fail::Failure;

/// Bytes per `pread`: progress moves between calls.
const READ_CHUNK: u64 = 8 << 20;

/// Takes the temp's `flock` without waiting: whether this part may write
/// with `write`/`copy_file_range` without queueing behind another part.
/// The lock goes with the descriptor (closed at the end of the part).
pub(super) fn try_exclusive(temp: BorrowedFd<'_>) -> bool {
    rustix::fs::flock(temp, FlockOperation::NonBlockingLockExclusive).is_ok()
}

/// A shared, writable mapping of part of a file, unmapped on drop.
struct Mapping {
    ptr: *mut std::ffi::c_void,
    len: usize,
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr` and `len` are exactly what `mmap` returned and
        // was asked for, and no reference into the mapping outlives it.
        let _ = unsafe { rustix::mm::munmap(self.ptr, self.len) };
    }
}

/// Copies `len` bytes from `offset` of `src` into the same bytes of `dst`
/// (opened read-write, at least `offset + len` long) through a mapping.
/// Returns how far it got, from `offset`: the whole length, less at the
/// source's EOF, or less when the mapping could not take more (the caller
/// copies the rest with `write`, which says why). `None`: nothing could
/// be mapped, copy it all with `write`.
pub(super) fn copy_mapped(
    (src, dst): (BorrowedFd<'_>, BorrowedFd<'_>),
    offset: u64,
    len: u64,
    on_bytes: &mut dyn FnMut(u64),
) -> Result<Option<MappedEnd>, Failure> {
    let page = rustix::param::page_size() as u64;
    // Mappings start at a page boundary; parts usually do already.
    let lead = offset % page;
    let Ok(map_len) = usize::try_from(len + lead) else {
        return Ok(None);
    };
    if len == 0 {
        return Ok(None);
    }
    let flags = ProtFlags::READ | ProtFlags::WRITE;
    // SAFETY: a fresh mapping chosen by the kernel (null hint) overlaps
    // nothing of ours; it is only handed to the kernel (in `pread`), never
    // read or written here, so a page it cannot provide is an EFAULT from
    // `pread`, not a SIGBUS.
    let mapped = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            map_len,
            flags,
            MapFlags::SHARED,
            dst,
            offset - lead,
        )
    };
    let Ok(ptr) = mapped else {
        return Ok(None);
    };
    let mapping = Mapping { ptr, len: map_len };
    fill(&mapping, src, (offset, lead, len), on_bytes).map(Some)
}

/// `pread`s up to `want` bytes at `src_offset` into the mapping at `at`.
/// The window is passed to the kernel as a raw pointer and never becomes a
/// Rust reference: a page of it that the filesystem cannot provide is not
/// memory Rust may assume readable, and the kernel reports it as `EFAULT`.
fn read_into_mapping(
    mapping: &Mapping,
    src: BorrowedFd<'_>,
    at: usize,
    want: usize,
    src_offset: u64,
) -> Result<usize, Errno> {
    let Ok(src_offset) = libc::off_t::try_from(src_offset) else {
        return Err(Errno::OVERFLOW);
    };
    // SAFETY: the caller keeps `at + want` within the mapping's length, so
    // the window lies inside a live mapping that `mapping` owns.
    let start = unsafe { mapping.ptr.cast::<u8>().add(at) };
    // Populating the window first saves a fault per page; it is only a
    // hint, and a failure shows up in `pread`.
    // SAFETY: the range is inside the mapping (see above).
    let _ = unsafe { rustix::mm::madvise(start.cast(), want, Advice::LinuxPopulateWrite) };
    // SAFETY: `start..start + want` is writable mapped memory that nothing
    // else in this process reads or writes during the call; the kernel
    // writes at most `want` bytes into it.
    let n = unsafe { libc::pread(src.as_raw_fd(), start.cast(), want, src_offset) };
    match usize::try_from(n) {
        Ok(n) => Ok(n),
        Err(_) => Err(Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::IO)),
    }
}

/// How a mapped copy ended.
#[derive(Debug, Clone, Copy)]
pub(super) struct MappedEnd {
    /// Bytes copied from the part's start.
    pub(super) copied: u64,
    /// The mapping refused a page: the rest is for `write`.
    pub(super) refused: bool,
}

fn fill(
    mapping: &Mapping,
    src: BorrowedFd<'_>,
    (offset, lead, len): (u64, u64, u64),
    on_bytes: &mut dyn FnMut(u64),
) -> Result<MappedEnd, Failure> {
    let mut done = 0u64;
    while done < len {
        let want = (len - done).min(READ_CHUNK) as usize;
        match read_into_mapping(mapping, src, (lead + done) as usize, want, offset + done) {
            Ok(0) => break,
            Ok(n) => {
                done += n as u64;
                on_bytes(n as u64);
            }
            Err(Errno::INTR) => {}
            Err(Errno::FAULT) => {
                return Ok(MappedEnd {
                    copied: done,
                    refused: true,
                });
            }
            Err(err) => return Err(Failure::source("cannot read source", err)),
        }
    }
    Ok(MappedEnd {
        copied: done,
        refused: false,
    })
}
