//! Large files copied by several workers at once, one byte range each.
//!
//! One worker copying a file alone is bounded by one CPU; a file of a
//! gigabyte would keep the others idle. Above [`SPLIT_MIN`], when nothing is
//! at the destination name yet, the walker ([`Splitter`]) makes the file's
//! temp at its full size, announces one job per part and queues the parts
//! of big files in turns ([`HeldParts`]); the workers copy the parts
//! (`copy::Engine`), and the main thread (`run::splits::Splits`) gathers their
//! completions and, when the last part is done, names the temp
//! (`copy::range::commit_split`), or removes it if any part failed.
//!
//! Who owns what: the walker creates each temp and hands it, with the
//! parts, to the main thread (parts are announced before they are queued);
//! from then on only the main thread removes or names it. Workers only
//! write into it, by name, never creating it. A split file counts as one
//! file in every total, its bytes once.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::fd::BorrowedFd;

use rustix::fs::AtFlags;
use rustix::io::Errno;

use super::entry_stat::EntryStat;
use crate::copy;
use crate::copy::partial::{self, Part};
use crate::job::{CopyOptions, FileJob};

/// Files from this size on are split, by default (`--split-min`). Parts of
/// one file written at once mostly take turns on the inode lock (see
/// `copy::mapped`), so a split gains only over a worker copying the file
/// alone, and loses against workers copying different files: measured on
/// tmpfs with two workers, 8 files of 128 MiB copy 1.2× slower split at
/// 64 MiB (even taking turns), and as fast as before unsplit; a 1 GiB file
/// copies about 1.4× faster split.
pub(crate) const SPLIT_MIN: u64 = 256 << 20;
/// Bytes per part (less for a lower threshold, see [`part_ranges`]): small
/// enough that the faster worker takes more of them, large enough that a
/// part's setup (opens, a lock, a mapping) costs nothing next to it.
const PART_LEN: u64 = 32 << 20;
/// At most this many parts per file: bounds the jobs a huge file adds.
const MAX_PARTS: u64 = 1024;
/// Parts are whole multiples of this, so they start on a page boundary
/// (with 4 KiB pages), where a mapping of the part can start too.
const PART_ALIGN: u64 = 1 << 12;

/// The parts of a file of `size` bytes split with
/// threshold `min`: parts of [`PART_LEN`], or `min / 2` if less, so a
/// file just above the threshold still gives two, and a large one gives
/// many that workers take as they become free (a worker slowed by a busy
/// machine, or by the slower mapped path, holds up little).
pub(crate) fn part_ranges(size: u64, min: u64) -> Vec<Part> {
    let base = (min / 2).min(PART_LEN).max(size.div_ceil(MAX_PARTS));
    let part = base.div_ceil(PART_ALIGN).max(1) * PART_ALIGN;
    let mut ranges = Vec::new();
    let mut offset = 0;
    while offset < size {
        let len = part.min(size - offset);
        ranges.push(Part { offset, len });
        offset += len;
    }
    ranges
}

/// The walker's half: decides whether a file is split and makes its temp.
#[derive(Debug, Clone)]
pub(crate) struct Splitter {
    /// The threshold in bytes.
    min: u64,
    /// The shard's temp-name tag (see `CopyOptions::temp_tag`).
    tag: String,
    workers: usize,
    /// `--partial`: temps named after their file, resumed by the next run.
    partial: bool,
}

/// A file the walker split: its temp's name and its parts.
#[derive(Debug)]
pub(crate) struct SplitStart {
    pub(crate) temp: OsString,
    pub(crate) ranges: Vec<Part>,
}

impl Splitter {
    /// Splits files from `min` bytes on ([`SPLIT_MIN`] when `None`).
    /// `None` when nothing is to be split: a threshold of 0, one worker
    /// (nobody to share with), a dry run (nothing is written) or
    /// `--verify` (which hashes each file as one stream).
    pub(crate) fn new(min: Option<u64>, workers: usize, opts: &CopyOptions) -> Option<Splitter> {
        let min = min.unwrap_or(SPLIT_MIN);
        // A basis file to link or copy, or a source to remove, is looked
        // at by the engine for whole files only; under --bwlimit parallel
        // parts gain nothing.
        let whole_only = opts.basis.is_some() || opts.remove_source || opts.bwlimit.is_some();
        let useful = min > 0 && workers > 1 && !opts.dry_run && !opts.verify && !whole_only;
        useful.then(|| Splitter {
            min,
            tag: opts.temp_tag.clone(),
            workers,
            partial: opts.partial,
        })
    }

    /// Whether temps are kept for the next run (`--partial`).
    pub(crate) fn partial(&self) -> bool {
        self.partial
    }

    /// How many workers share the parts.
    pub(crate) fn workers(&self) -> usize {
        self.workers
    }

    /// Whether the file `md` is one to split, if nothing is at its
    /// destination name: a regular file of at least the threshold, without
    /// holes (a sparse copy keeps them; one worker does that).
    pub(crate) fn wants(&self, md: &EntryStat) -> bool {
        let size = md.len();
        let sparse = md.blocks().saturating_mul(512) < size;
        md.is_file() && size >= self.min && !sparse
    }

    /// Makes the temp of the file `md` (which [`Splitter::wants`]) named
    /// `name` in the destination directory `dir`, if nothing is at that
    /// name (`fresh`: the directory is new), so there is no quick check
    /// or update to decide. Any problem means "copy it as one job", which
    /// reports it properly.
    pub(crate) fn start(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        md: &EntryStat,
        fresh: bool,
    ) -> Option<SplitStart> {
        let size = md.len();
        if !fresh {
            match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Err(Errno::NOENT) => {}
                _ => return None,
            }
        }
        let ranges = part_ranges(size, self.min);
        if self.partial {
            if let Some(resumed) = self.resume(dir, name, md, &ranges) {
                return resumed;
            }
        }
        let temp = copy::range::create_split_temp(dir, &self.tag, size).ok()?;
        Some(SplitStart { temp, ranges })
    }

    /// `--partial`: the file's resumable temp, with only the parts it
    /// lacks; `None` to make an ordinary temp instead (a name too long).
    fn resume(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        md: &EntryStat,
        ranges: &[Part],
    ) -> Option<Option<SplitStart>> {
        let source = partial::Identity {
            dev: md.dev(),
            ino: md.ino(),
            size: md.len(),
            mtime: md.modified(),
        };
        let found = match partial::open_or_create(dir, name, &source) {
            Ok(found) => found?,
            Err(_) => return Some(None),
        };
        let mut left: Vec<Part> = (ranges.iter())
            .filter(|range| !found.done.contains(range))
            .copied()
            .collect();
        if left.is_empty() {
            // Every part is there but the file was not named: one part
            // copied again brings it to the main thread, which names it.
            left.extend(ranges.last());
        }
        Some(Some(SplitStart {
            temp: found.temp,
            ranges: left,
        }))
    }
}

/// The walker's queue of parts not queued yet, one queue per split file.
///
/// Two workers on parts of one file are slower than on two files (see
/// `copy::mapped`), so the files take turns: a round gives one part of
/// each of the first files, as many files as there are workers. No more
/// files than that are in progress at once, so files still finish one
/// after the other, and few temps are half written at any time.
#[derive(Debug)]
pub(crate) struct HeldParts {
    files: VecDeque<VecDeque<FileJob>>,
    /// How many files take turns: the number of workers.
    turns: usize,
}

impl HeldParts {
    pub(crate) fn new(turns: usize) -> HeldParts {
        HeldParts {
            files: VecDeque::new(),
            turns: turns.max(1),
        }
    }

    /// Holds the parts of another file. A file joining those taking turns
    /// goes first, so that its first part follows a part of another file.
    pub(crate) fn add(&mut self, parts: VecDeque<FileJob>) {
        match self.files.len() < self.turns {
            true => self.files.push_front(parts),
            false => self.files.push_back(parts),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The next part of each file taking turns.
    pub(crate) fn round(&mut self) -> Vec<FileJob> {
        let turns = self.files.len().min(self.turns);
        let mut parts = Vec::with_capacity(turns);
        let mut again = Vec::with_capacity(turns);
        for mut file in self.files.drain(..turns) {
            parts.extend(file.pop_front());
            if !file.is_empty() {
                again.push(file);
            }
        }
        // Files with parts left keep their turn, ahead of those waiting.
        for file in again.into_iter().rev() {
            self.files.push_front(file);
        }
        parts
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::job::FileRange;

    #[test]
    fn parts_cover_the_file_exactly_in_aligned_pieces() {
        let size = (1 << 30) + 12_345;
        let ranges = part_ranges(size, SPLIT_MIN);
        assert_eq!(ranges.len(), 33);
        let first = Part {
            offset: 0,
            len: PART_LEN,
        };
        assert_eq!(ranges[0], first);
        let mut next = 0;
        for part in &ranges {
            assert_eq!(part.offset, next);
            assert_eq!(part.offset % PART_ALIGN, 0);
            next += part.len;
        }
        assert_eq!(next, size);
    }

    #[test]
    fn a_file_at_a_low_threshold_gets_two_parts_and_a_huge_one_at_most_the_cap() {
        assert_eq!(
            part_ranges(SPLIT_MIN, SPLIT_MIN).len() as u64,
            SPLIT_MIN / PART_LEN
        );
        let half = |offset| Part {
            offset,
            len: 1 << 19,
        };
        assert_eq!(part_ranges(1 << 20, 1 << 20), [half(0), half(1 << 19)]);
        let huge = part_ranges(1 << 50, SPLIT_MIN);
        assert!(huge.len() as u64 <= MAX_PARTS, "{} parts", huge.len());
    }

    #[test]
    fn splitting_is_off_for_one_worker_dry_runs_verify_and_threshold_zero() {
        let opts = CopyOptions::default();
        assert!(Splitter::new(Some(SPLIT_MIN), 2, &opts).is_some());
        assert!(Splitter::new(Some(SPLIT_MIN), 1, &opts).is_none());
        assert!(Splitter::new(Some(0), 4, &opts).is_none());
        let dry = CopyOptions {
            dry_run: true,
            ..CopyOptions::default()
        };
        assert!(Splitter::new(Some(SPLIT_MIN), 2, &dry).is_none());
        let verify = CopyOptions {
            verify: true,
            ..CopyOptions::default()
        };
        assert!(Splitter::new(Some(SPLIT_MIN), 2, &verify).is_none());
    }

    /// Part `part` of 3 of the split file `split`, as the walker makes it.
    pub(crate) fn part_of(split: u64, part: u32) -> FileJob {
        FileJob {
            id: split + u64::from(part),
            src: "s".into(),
            rel_dst: "d".into(),
            kind: crate::job::EntryKind::File,
            meta: None,
            fresh: true,
            range: Some(FileRange {
                split,
                part,
                parts: 3,
                offset: 0,
                len: 1,
                temp: ".pcopy-tmp.1.0".into(),
                dev: 0,
                ino: 0,
            }),
        }
    }

    #[test]
    fn two_workers_get_parts_of_two_files_in_turns_and_a_third_waits() {
        let file = |split| (0..3).map(|part| part_of(split, part)).collect();
        let names = |parts: Vec<FileJob>| -> Vec<(u64, u32)> {
            parts
                .iter()
                .map(|j| j.range.as_ref().map(|r| (r.split, r.part)).unwrap())
                .collect()
        };
        let mut held = HeldParts::new(2);
        held.add(file(10));
        assert_eq!(names(held.round()), [(10, 0)]);
        held.add(file(20));
        held.add(file(30));
        assert_eq!(names(held.round()), [(20, 0), (10, 1)]);
        assert_eq!(names(held.round()), [(20, 1), (10, 2)]);
        assert_eq!(names(held.round()), [(20, 2), (30, 0)]);
        assert_eq!(names(held.round()), [(30, 1)]);
        assert_eq!(names(held.round()), [(30, 2)]);
        assert!(held.is_empty());
        assert!(held.round().is_empty());
    }
}
