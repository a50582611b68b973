//! What a worker is asked to copy and what it reports back: the items of
//! the jobs queue and the done queue.
//!
//! These types cross the process boundary between the walker, the pool workers
//! and the progress reporter, so they are serde types. Paths are `OsString`,
//! which serde encodes as raw bytes on Unix: non-UTF-8 names survive the trip.

use std::ffi::OsString;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::copy::chmod::Chmod;
use crate::select::size::SizeLimits;

/// The type of a source entry as the walker saw it (from `d_type` or `lstat`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) enum EntryKind {
    /// A regular file.
    File,
    /// A symbolic link (copied as a link unless dereferencing).
    Symlink,
    /// A fifo, socket or device node: never opened for reading.
    Special,
}

/// One entry to copy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FileJob {
    /// Identifies the job in its [`Completion`].
    pub id: u64,
    /// Source path as the walker produced it (absolute or relative to the cwd).
    pub src: OsString,
    /// Destination path relative to the destination root: never absolute,
    /// components separated by single `/`, no `.` or `..` components.
    pub rel_dst: OsString,
    /// What the walker saw at `src`.
    pub kind: EntryKind,
    /// The source's size and mtime as the walker saw them, for the quick
    /// check; `None` makes the engine look for itself.
    pub meta: Option<SourceMeta>,
    /// The walker created the destination directory of this entry in this
    /// run, so nothing can be at `rel_dst` yet: no need to look.
    pub fresh: bool,
    /// Set when this job is one part of a large file split over several
    /// workers: only this byte range is copied, into the file's temp.
    pub range: Option<FileRange>,
}

impl FileJob {
    /// Whether the walker knew the size, and counted it in the progress
    /// totals; when not, a worker stats the source and the copied bytes
    /// are added to the totals as they come.
    pub(crate) fn size_known(&self) -> bool {
        self.meta.is_some()
    }
}

/// Hashes `u64` keys that nobody outside pcopy can choose: job ids
/// (handed out in order) and seeded digests of names. A multiplication
/// spreads them well enough; SipHash's protection against chosen keys buys
/// nothing here and costs an insert and a remove per file on the main
/// thread.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(FIBONACCI);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = (self.0 ^ id).wrapping_mul(FIBONACCI);
    }
}

/// 2^64 divided by the golden ratio, odd: multiplying by it permutes the
/// `u64`s and moves the differences of nearby ids into the high bits.
const FIBONACCI: u64 = 0x9E37_79B9_7F4A_7C15;

/// A map from job ids (see [`IdHasher`]).
pub(crate) type JobIdMap<V> =
    std::collections::HashMap<u64, V, std::hash::BuildHasherDefault<IdHasher>>;

/// One part of a file copied by several workers (see `walk::split`).
///
/// The walker created the temp file, already at the full size; each part
/// writes its bytes at their own offsets, and the main thread names the
/// temp once every part is done.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct FileRange {
    /// The job id of the file's first part: names the file among splits.
    pub split: u64,
    /// Which part this is, from 0, and how many the file has.
    pub part: u32,
    pub parts: u32,
    /// The bytes this part copies.
    pub offset: u64,
    pub len: u64,
    /// The temp file's name in the destination directory.
    pub temp: OsString,
    /// The source inode the walker saw: a part that opens another file
    /// (the source was replaced) fails instead of mixing two files.
    pub dev: u64,
    pub ino: u64,
}

/// A file time as `stat` gives it: seconds and nanoseconds since the
/// epoch; ordered as time runs.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct FileTime {
    pub(crate) secs: i64,
    pub(crate) nanos: i64,
}

impl FileTime {
    /// The modification time of `st`.
    pub(crate) fn mtime(st: &rustix::fs::Stat) -> FileTime {
        FileTime {
            secs: st.st_mtime,
            // A nanosecond count fits any of the kernel's widths.
            nanos: st.st_mtime_nsec as i64,
        }
    }

    /// The access time of `st`.
    pub(crate) fn atime(st: &rustix::fs::Stat) -> FileTime {
        FileTime {
            secs: st.st_atime,
            nanos: st.st_atime_nsec as i64,
        }
    }

    /// The status-change time of `st`.
    pub(crate) fn ctime(st: &rustix::fs::Stat) -> FileTime {
        FileTime {
            secs: st.st_ctime,
            nanos: st.st_ctime_nsec as i64,
        }
    }

    /// Nanoseconds since the epoch.
    pub(crate) fn as_nanos(self) -> i128 {
        i128::from(self.secs) * 1_000_000_000 + i128::from(self.nanos)
    }

    /// The time for `utimensat` and `futimens`.
    pub(crate) fn timespec(self) -> rustix::fs::Timespec {
        rustix::fs::Timespec {
            tv_sec: self.secs,
            tv_nsec: self.nanos as _,
        }
    }
}

/// The parts of a source `lstat` the quick check compares.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct SourceMeta {
    /// Size in bytes (the target length for a symbolic link).
    pub size: u64,
    pub mtime: FileTime,
    /// `st_mode`: the type and the permission bits.
    pub mode: u32,
    /// Owner and group, kept by `-a`.
    pub uid: u32,
    pub gid: u32,
    /// The device a device node stands for.
    pub rdev: u64,
}

/// The result of one job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Outcome {
    /// The destination name now holds a complete copy.
    Copied {
        /// File data bytes written (0 for a symbolic link).
        bytes: u64,
        /// The source's size when the copy ended differed from its size when
        /// it was opened: it was written to during the copy. The copy holds
        /// exactly the bytes read, like `tar`'s "file changed as we read it".
        changed: bool,
        /// Something was at the destination name before (an update, not a
        /// new entry).
        replaced: bool,
    },
    /// Nothing was written, on purpose.
    Skipped {
        /// Why the entry was not copied.
        reason: SkipReason,
    },
    /// Nothing was written under the destination name; an older version there
    /// (if any) is untouched.
    Failed {
        /// What went wrong, without the path (the caller prints
        /// `pcopy: PATH: error`).
        error: String,
        /// The class of failure, for exit codes and summaries.
        kind: FailKind,
    },
}

impl Outcome {
    /// Whether the destination name holds a version of the entry after
    /// this outcome (copied, up to date, or kept by `--ignore-existing` or
    /// `--update`), so that later names of a hard-linked file can be
    /// linked to it.
    pub(crate) fn leaves_a_version(&self) -> bool {
        match self {
            Outcome::Copied { .. } => true,
            Outcome::Skipped { reason } => matches!(
                reason,
                SkipReason::UpToDate | SkipReason::Exists | SkipReason::NewerInDestination
            ),
            Outcome::Failed { .. } => false,
        }
    }
}

/// Why an entry was skipped.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) enum SkipReason {
    /// A fifo, socket or device node, which a plain copy does not recreate.
    Special {
        /// Ready to print, e.g. "skipping special file (fifo); use -a or --specials to recreate".
        message: String,
    },
    /// The destination already matches (quick check or `--checksum`).
    UpToDate,
    /// `--update`: the destination is newer than the source.
    NewerInDestination,
    /// `--ignore-existing`: something is already at the destination name.
    Exists,
    /// `--existing`: nothing is at the destination name.
    Missing,
    /// `--max-size` or `--min-size` leave the file out.
    SizeLimit,
}

impl SkipReason {
    /// Whether the skip deserves a warning (the others are the point of an
    /// incremental run and are only counted).
    pub(crate) fn warns(&self) -> bool {
        matches!(self, SkipReason::Special { .. })
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Special { message } => f.write_str(message),
            SkipReason::UpToDate => f.write_str("up to date"),
            SkipReason::NewerInDestination => f.write_str("newer in the destination"),
            SkipReason::Exists => f.write_str("exists in the destination"),
            SkipReason::Missing => f.write_str("not in the destination (--existing)"),
            SkipReason::SizeLimit => f.write_str("outside --min-size/--max-size"),
        }
    }
}

/// The class of a failed job.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) enum FailKind {
    /// The source disappeared between the walk and the copy (ENOENT).
    Vanished,
    /// The destination filesystem is full or the quota is exhausted
    /// (ENOSPC, EDQUOT): later jobs will likely fail the same way.
    NoSpace,
    /// Creating, writing or naming the destination failed.
    DestIo,
    /// Opening or reading the source failed.
    SourceIo,
    /// Anything else: invalid job, source of an unexpected type.
    Other,
    /// The destination filesystem cannot hold the entry (a symlink on
    /// exFAT, a name with `:`): said once per message, with a count.
    Unsupported,
}

/// A worker's report for one job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Completion {
    /// The [`FileJob::id`] this reports on.
    pub id: u64,
    /// What happened.
    pub outcome: Outcome,
    /// The process that ran the job.
    pub worker_pid: u32,
    /// What the engine found different at the destination, for `-i`,
    /// `--out-format` and `--stats`.
    pub found: Findings,
}

/// What differed between a source entry and the destination entry at its
/// name, as the engine judged them: the letters of rsync's
/// `--itemize-changes` (`YXcstpoguax`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Changes {
    /// Nothing, or an entry of another type, was at the name: all `+`.
    pub created: bool,
    /// `c`: other contents (compared under `-c`) or another link target.
    pub contents: bool,
    /// `s`: another size (regular files).
    pub size: bool,
    /// `t`: another modification time.
    pub time: bool,
    /// `T`: without `-t`, the copy is dated when it is written.
    pub time_now: bool,
    /// `p`: other permission bits.
    pub perms: bool,
    /// `o`: another owner (kept by `-a`).
    pub owner: bool,
    /// `g`: another group (kept by `-a`).
    pub group: bool,
}

impl Changes {
    /// A new entry: every letter a `+`.
    pub(crate) fn new_entry() -> Changes {
        Changes {
            created: true,
            ..Changes::default()
        }
    }

    /// Whether any attribute differs (a new entry counts).
    pub(crate) fn any(&self) -> bool {
        self.created
            || self.contents
            || self.size
            || self.time
            || self.time_now
            || self.perms
            || self.owner
            || self.group
    }
}

/// What the engine learned about one job beyond its outcome.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Findings {
    /// How the destination differed; `None` when it was not looked at.
    pub changes: Option<Changes>,
    /// The source's size, when the engine stat'ed it (the walker sent no
    /// [`SourceMeta`]).
    pub source_size: Option<u64>,
    /// The source's mode then, for the type of a special file.
    pub source_mode: Option<u32>,
    /// A symbolic link's target as the engine read it from the source
    /// (beneath its directory's descriptor), for listings: the reporter
    /// never looks at the source itself.
    pub link_target: Option<Vec<u8>>,
}

/// What a worker reports on the done queue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum WorkerEvent {
    /// A job ended.
    Done(Completion),
    /// The task is about to return: its result can be collected now.
    Exiting {
        /// The `task` number of its `run::worker::WorkerSetup`.
        task: u64,
    },
    /// More data of a job still being copied (large files only).
    Bytes {
        /// The job's id.
        id: u64,
        /// Bytes copied since the previous event for this job.
        bytes: u64,
    },
}

/// How an existing destination entry is judged before copying over it.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) enum Compare {
    /// Copy whatever is there (`-I`; also the engine's own default).
    #[default]
    Always,
    /// Skip when type, size and mtime match (rsync's quick check).
    QuickCheck,
    /// Skip when type, size and contents match (`-c`).
    Checksum,
    /// Skip when type and size match, whatever the mtime (`--size-only`).
    SizeOnly,
}

/// How entries are copied; the same for every job of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct CopyOptions {
    /// Copy what symbolic links point to instead of the links (`-L`).
    pub dereference: bool,
    /// When an existing destination entry is left alone.
    pub compare: Compare,
    /// `-u`: skip entries whose destination is newer.
    pub update: bool,
    /// `--ignore-existing`: never touch an existing destination entry.
    pub ignore_existing: bool,
    /// `--existing`: never create a destination entry.
    pub existing: bool,
    /// `--max-size`, `--min-size`: regular files outside are skipped.
    pub sizes: SizeLimits,
    /// `--chmod`: changes to the permission bits the source supplies.
    pub chmod: Chmod,
    /// `-n`: decide, but write nothing.
    pub dry_run: bool,
    /// What copies keep of their sources, and which kinds of entries are
    /// copied at all: the parts of `-a` and their `--no-` negations.
    pub keep: Preserve,
    /// The owner and group copies get: the source's with `-a` (less
    /// `--no-owner`, `--no-group`), or `--chown`'s.
    pub owners: crate::copy::owners::Owners,
    /// `-A`: make each copy's POSIX ACLs its source's, also without `-a`.
    pub acls: bool,
    /// `--fsync`: flush each file before it is named.
    pub fsync: bool,
    /// `--verify`: read each copy back and compare its hash with the
    /// data read from the source.
    pub verify: bool,
    /// Put in temp names after the prefix (`s1of3.` for `--shard 1/3`, else
    /// empty), so concurrent shards never remove each other's temp files.
    pub temp_tag: String,
    /// `--force` (implied by `--delete`): a directory where a file,
    /// symlink or special file goes is removed with its contents; without
    /// it that entry fails and the directory stays.
    pub force: bool,
    /// Two mtimes this many nanoseconds apart or less count as equal in
    /// the quick check: `--modify-window`, else the destination's
    /// timestamp granularity less a nanosecond (0 where it keeps
    /// nanoseconds).
    pub modify_window_ns: u64,
    /// What the destination filesystem can hold, as probed at the start.
    pub dest: DestCaps,
    /// `--link-dest`, `--compare-dest`, `--copy-dest`: where unchanged
    /// files are looked for before copying; `None` without them.
    pub basis: Option<BasisDirs>,
    /// `-b`: where a replaced file's old version is moved; `None` without.
    pub backup: Option<BackupOptions>,
    /// `--remove-source-files`: remove each source file once its copy is
    /// complete and named (and flushed with `--fsync`).
    pub remove_source: bool,
    /// `--partial`: the temp of a split file interrupted keeps its complete
    /// parts for the next run (see `copy::partial`).
    pub partial: bool,
    /// `--inplace`: an existing file is written over where it is, not
    /// replaced by a complete new one (no atomicity).
    pub inplace: bool,
    /// `--bwlimit`: the bytes per second all the workers of one process
    /// may copy together; `None` without a limit.
    pub bwlimit: Option<u64>,
    /// `-i` or an `--out-format` with `%i`: look at every existing
    /// destination entry, so each outcome says what differed.
    pub itemize: bool,
}

/// The parts of rsync's `-a` (`-rlptgoD`, with pcopy's `-H` and `-X`)
/// that reach the copy engine; recursion is the walk's and owners are
/// [`CopyOptions::owners`].
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Preserve {
    /// `-l`: symbolic links are copied as links; without, skipped.
    pub links: bool,
    /// `-p`: copies get their source's permission bits; without, a new
    /// copy gets them less the umask and an existing one keeps its own.
    pub perms: bool,
    /// `-t`: copies get their source's times; without, the time they are
    /// made (and the quick check then finds every file changed).
    pub times: bool,
    /// `--devices`: device nodes are recreated.
    pub devices: bool,
    /// `--specials`: fifos and sockets are recreated.
    pub specials: bool,
    /// `-H`: names of one file stay one file.
    pub hard_links: bool,
    /// `-X`: extended attributes are copied.
    pub xattrs: bool,
}

impl Preserve {
    /// pcopy without `-a`: links, permission bits and times (rsync's
    /// `-lpt`), nothing more.
    pub const PLAIN: Preserve = Preserve {
        links: true,
        perms: true,
        times: true,
        devices: false,
        specials: false,
        hard_links: false,
        xattrs: false,
    };

    /// Whether a special file of `mode` (its `st_mode`) is recreated:
    /// devices under `--devices`, fifos and sockets under `--specials`.
    pub fn special(&self, mode: u32) -> bool {
        match mode & libc::S_IFMT {
            libc::S_IFCHR | libc::S_IFBLK => self.devices,
            _ => self.specials,
        }
    }

    /// Whether any special file is recreated.
    pub fn any_special(&self) -> bool {
        self.devices || self.specials
    }
}

impl Default for Preserve {
    fn default() -> Preserve {
        Preserve::PLAIN
    }
}

/// What the destination filesystem can hold (see `copy::caps`): entries
/// it cannot hold fail with a message that says so.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct DestCaps {
    pub symlinks: bool,
    /// Fifos, sockets and device nodes.
    pub specials: bool,
    /// Permission bits (exFAT and FAT show fixed ones).
    pub modes: bool,
}

impl Default for DestCaps {
    /// Everything, as on any Linux filesystem.
    fn default() -> DestCaps {
        DestCaps {
            symlinks: true,
            specials: true,
            modes: true,
        }
    }
}

/// What an unchanged file found in a basis directory becomes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) enum BasisKind {
    /// `--link-dest`: a hard link to the basis file.
    Link,
    /// `--compare-dest`: nothing; the file is left out of the destination.
    Compare,
    /// `--copy-dest`: a copy made from the basis file, not the source.
    Copy,
}

/// `--link-dest`, `--compare-dest` or `--copy-dest` directories, in the
/// order given (the first match wins), each as the user named it: a
/// relative one is opened relative to the destination root, as rsync does.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct BasisDirs {
    pub kind: BasisKind,
    pub dirs: Vec<OsString>,
}

impl BasisDirs {
    /// The flag that named them, for messages.
    pub(crate) fn flag(&self) -> &'static str {
        match self.kind {
            BasisKind::Link => "--link-dest",
            BasisKind::Compare => "--compare-dest",
            BasisKind::Copy => "--copy-dest",
        }
    }
}

/// `-b`, `--backup-dir`, `--suffix`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct BackupOptions {
    /// `--backup-dir`, as named (relative to the destination root when
    /// relative); `None`: old versions stay beside the new ones.
    pub dir: Option<OsString>,
    /// Appended to a backup's name (`~` by default without `--backup-dir`,
    /// nothing with it).
    pub suffix: OsString,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_reason_displays_its_message() {
        let reason = SkipReason::Special {
            message: "skipping special file (fifo); use -a or --specials to recreate".into(),
        };
        assert_eq!(
            reason.to_string(),
            "skipping special file (fifo); use -a or --specials to recreate"
        );
    }

    #[test]
    fn nearby_job_ids_hash_apart_in_the_high_bits_too() {
        use std::hash::{BuildHasher, BuildHasherDefault};
        let build = BuildHasherDefault::<IdHasher>::default();
        let hashes: Vec<u64> = (0..4096u64).map(|id| build.hash_one(id)).collect();
        let distinct: std::collections::HashSet<_> = hashes.iter().collect();
        assert_eq!(distinct.len(), hashes.len());
        // hashbrown picks the bucket from the low bits and the tag byte it
        // compares first from the top 7: both must vary.
        let tops: std::collections::HashSet<_> = hashes.iter().map(|h| h >> 57).collect();
        let lows: std::collections::HashSet<_> = hashes.iter().map(|h| h & 0x7f).collect();
        assert_eq!((tops.len(), lows.len()), (128, 128));

        let mut map = JobIdMap::default();
        map.extend((0..4096u64).map(|id| (id, id * 2)));
        assert!((0..4096u64).all(|id| map.remove(&id) == Some(id * 2)));
    }
}
