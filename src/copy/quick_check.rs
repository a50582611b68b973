//! Whether an entry needs copying at all: rsync's quick check (same type,
//! size and mtime), `--checksum`, `--update` and `--ignore-existing`.
//!
//! The decision is a pure function of the source's metadata (from the
//! walker), the destination's `lstat` (done by the worker, relative to the
//! destination directory fd it has cached) and the options, so it is
//! tested here without touching a file system.

use rustix::fs::{FileType, Stat};

use crate::job::{Compare, CopyOptions, FileTime, SkipReason, SourceMeta};

/// What to do with one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Write it; `replaced` when something is at the name already.
    Copy { replaced: bool },
    /// Leave the destination alone.
    Skip(SkipReason),
    /// Same type and size under `--checksum`: compare the contents (or the
    /// link targets) to decide.
    CompareContents,
}

/// What the destination has at the entry's name, from `fstatat` without
/// following a symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DestMeta {
    pub(crate) file_type: FileType,
    pub(crate) size: u64,
    pub(crate) mtime: FileTime,
    /// Permission bits only.
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) rdev: u64,
}

impl DestMeta {
    pub(crate) fn from_stat(st: &Stat) -> DestMeta {
        DestMeta {
            file_type: FileType::from_raw_mode(st.st_mode),
            size: u64::try_from(st.st_size).unwrap_or(0),
            mtime: FileTime::mtime(st),
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            rdev: st.st_rdev,
        }
    }
}

/// Decides from metadata alone. `src_type` is the type the copy would
/// create (a regular file for a followed symlink).
pub(crate) fn decide(
    opts: &CopyOptions,
    src_type: FileType,
    src: &SourceMeta,
    dest: Option<&DestMeta>,
) -> Verdict {
    let Some(dest) = dest else {
        return match opts.existing {
            true => Verdict::Skip(SkipReason::Missing),
            false => Verdict::Copy { replaced: false },
        };
    };
    if opts.ignore_existing {
        return Verdict::Skip(SkipReason::Exists);
    }
    if opts.update && dest.file_type == src_type && dest.mtime > src.mtime {
        return Verdict::Skip(SkipReason::NewerInDestination);
    }
    let replace = Verdict::Copy { replaced: true };
    if dest.file_type != src_type || dest.size != src.size || dest.rdev != src.rdev {
        return replace;
    }
    // Without -t only a regular file's mtime says it changed (and then
    // always, as in rsync): a link is judged by its target, a special
    // file by its type and device.
    let same_time = (!opts.keep.times && src_type != FileType::RegularFile)
        || same_mtime(dest.mtime, src.mtime, opts.modify_window_ns);
    match opts.compare {
        Compare::Always => replace,
        // A symlink's size and mtime say nothing of where it points: a
        // retargeted link of the same length is not up to date.
        _ if src_type == FileType::Symlink => Verdict::CompareContents,
        Compare::QuickCheck if same_time => Verdict::Skip(SkipReason::UpToDate),
        Compare::QuickCheck => replace,
        Compare::SizeOnly => Verdict::Skip(SkipReason::UpToDate),
        Compare::Checksum => Verdict::CompareContents,
    }
}

/// Whether two mtimes are at most `window_ns` apart: equal to the
/// nanosecond with a window of 0.
pub(crate) fn same_mtime(a: FileTime, b: FileTime, window_ns: u64) -> bool {
    (a.as_nanos() - b.as_nanos()).unsigned_abs() <= u128::from(window_ns)
}

/// Whether any option can leave an existing destination entry alone, so
/// the worker must look at the destination before copying.
pub(crate) fn looks_at_destination(opts: &CopyOptions) -> bool {
    opts.compare != Compare::Always
        || opts.update
        || opts.ignore_existing
        || opts.dry_run
        || opts.itemize
        || opts.existing
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: SourceMeta = SourceMeta {
        size: 10,
        mtime: FileTime {
            secs: 1_000,
            nanos: 5,
        },
        mode: 0o100644,
        uid: 0,
        gid: 0,
        rdev: 0,
    };

    fn dest(file_type: FileType, size: u64, (secs, nanos): (i64, i64)) -> DestMeta {
        DestMeta {
            file_type,
            size,
            mtime: FileTime { secs, nanos },
            mode: 0o644,
            uid: 0,
            gid: 0,
            rdev: 0,
        }
    }

    fn opts(compare: Compare) -> CopyOptions {
        CopyOptions {
            compare,
            ..CopyOptions::default()
        }
    }

    const FILE: FileType = FileType::RegularFile;

    #[test]
    fn a_missing_destination_is_always_copied() {
        let verdict = decide(&opts(Compare::QuickCheck), FILE, &SRC, None);
        assert_eq!(verdict, Verdict::Copy { replaced: false });
    }

    #[test]
    fn quick_check_skips_only_on_same_type_size_and_mtime() {
        let quick = opts(Compare::QuickCheck);
        let same = dest(FILE, 10, (1_000, 5));
        let up_to_date = Verdict::Skip(SkipReason::UpToDate);
        assert_eq!(decide(&quick, FILE, &SRC, Some(&same)), up_to_date);
        let replace = Verdict::Copy { replaced: true };
        for other in [
            dest(FILE, 11, (1_000, 5)),
            dest(FILE, 10, (1_000, 6)),
            dest(FileType::Symlink, 10, (1_000, 5)),
        ] {
            assert_eq!(decide(&quick, FILE, &SRC, Some(&other)), replace);
        }
        assert_eq!(
            decide(&opts(Compare::Always), FILE, &SRC, Some(&same)),
            replace
        );
        // A device node standing for another device is not up to date.
        let chr = FileType::CharacterDevice;
        let node = DestMeta {
            rdev: 0x103,
            ..dest(chr, 10, (1_000, 5))
        };
        let src_node = SourceMeta { rdev: 0x105, ..SRC };
        assert_eq!(decide(&quick, chr, &src_node, Some(&node)), replace);
        let same_node = SourceMeta { rdev: 0x103, ..SRC };
        assert_eq!(decide(&quick, chr, &same_node, Some(&node)), up_to_date);
    }

    #[test]
    fn symlinks_of_the_same_size_and_time_have_their_targets_compared() {
        let link = dest(FileType::Symlink, 10, (1_000, 5));
        for compare in [Compare::QuickCheck, Compare::SizeOnly, Compare::Checksum] {
            let verdict = decide(&opts(compare), FileType::Symlink, &SRC, Some(&link));
            assert_eq!(verdict, Verdict::CompareContents, "{compare:?}");
        }
    }

    #[test]
    fn a_modify_window_and_size_only_forgive_coarse_times() {
        let coarse = dest(FILE, 10, (1_000, 0));
        let replace = Verdict::Copy { replaced: true };
        let up_to_date = Verdict::Skip(SkipReason::UpToDate);
        assert_eq!(
            decide(&opts(Compare::QuickCheck), FILE, &SRC, Some(&coarse)),
            replace
        );
        let windowed = CopyOptions {
            modify_window_ns: 1_999_999_999,
            ..opts(Compare::QuickCheck)
        };
        assert_eq!(decide(&windowed, FILE, &SRC, Some(&coarse)), up_to_date);
        let far = dest(FILE, 10, (1_002, 5));
        assert_eq!(decide(&windowed, FILE, &SRC, Some(&far)), replace);
        assert_eq!(
            decide(&opts(Compare::SizeOnly), FILE, &SRC, Some(&far)),
            up_to_date
        );
        let other_size = dest(FILE, 11, (1_000, 5));
        assert_eq!(
            decide(&opts(Compare::SizeOnly), FILE, &SRC, Some(&other_size)),
            replace
        );
        assert!(same_mtime(
            FileTime {
                secs: 5,
                nanos: 999_999_999
            },
            FileTime { secs: 6, nanos: 0 },
            1
        ));
        assert!(!same_mtime(
            FileTime {
                secs: 5,
                nanos: 999_999_998
            },
            FileTime { secs: 6, nanos: 0 },
            1
        ));
    }

    #[test]
    fn checksum_compares_contents_only_when_sizes_match() {
        let sum = opts(Compare::Checksum);
        let same_size = dest(FILE, 10, (9, 9));
        assert_eq!(
            decide(&sum, FILE, &SRC, Some(&same_size)),
            Verdict::CompareContents
        );
        let other_size = dest(FILE, 3, (1_000, 5));
        assert_eq!(
            decide(&sum, FILE, &SRC, Some(&other_size)),
            Verdict::Copy { replaced: true }
        );
    }

    #[test]
    fn update_and_ignore_existing_leave_the_destination_alone() {
        let update = CopyOptions {
            update: true,
            ..opts(Compare::QuickCheck)
        };
        let newer = dest(FILE, 99, (2_000, 0));
        assert_eq!(
            decide(&update, FILE, &SRC, Some(&newer)),
            Verdict::Skip(SkipReason::NewerInDestination)
        );
        let older = dest(FILE, 99, (10, 0));
        assert_eq!(
            decide(&update, FILE, &SRC, Some(&older)),
            Verdict::Copy { replaced: true }
        );
        let existing = CopyOptions {
            ignore_existing: true,
            ..opts(Compare::Always)
        };
        assert_eq!(
            decide(&existing, FILE, &SRC, Some(&older)),
            Verdict::Skip(SkipReason::Exists)
        );
    }

    #[test]
    fn existing_never_creates() {
        let existing = CopyOptions {
            existing: true,
            ..opts(Compare::QuickCheck)
        };
        let missing = Verdict::Skip(SkipReason::Missing);
        assert_eq!(decide(&existing, FILE, &SRC, None), missing);
        let older = dest(FILE, 10, (10, 0));
        let replace = Verdict::Copy { replaced: true };
        assert_eq!(decide(&existing, FILE, &SRC, Some(&older)), replace);
        assert!(looks_at_destination(&existing));
    }

    #[test]
    fn only_the_engine_default_copies_without_looking() {
        assert!(!looks_at_destination(&CopyOptions::default()));
        assert!(looks_at_destination(&opts(Compare::QuickCheck)));
    }
}
