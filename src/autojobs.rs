//! The default `-j`: the CPU count, or more when a source or the
//! destination is on a file system whose every request waits on a
//! network or a server in user space (NFS, SMB, Ceph, Lustre, 9p, FUSE).
//! There a worker spends its time waiting, not computing, and more of
//! them keep more requests in flight (measured in the README's
//! "Default -j"); how many more depends on what a worker costs to start.
//! There the pool may also grow while the run goes (`run::grow`), up to
//! [`GROWTH`] times its start.

use std::ffi::{OsStr, OsString};
use std::num::NonZeroUsize;
use std::path::Path;

use crate::cli::WorkerKind;

/// Worker threads where requests wait on a network: at 5 ms a request,
/// copying from such a mount kept getting faster up to this many (256
/// were no faster), and at 0 and 1 ms they cost nothing against 64.
const REMOTE_THREADS: usize = 128;

/// Worker processes there: each is a process to start, and at 1 ms a
/// request 128 of them took 1.4× the time of 64.
const REMOTE_PROCESSES: usize = 64;

/// How many times its start a pool may grow to on a remote mount.
pub(crate) const GROWTH: usize = 4;

/// The most worker threads growth reaches: each is a thread and a few
/// descriptors, and slow mounts serve a few hundred requests at once.
const MOST_THREADS: usize = 512;

/// The most worker processes growth reaches: each is a process of its
/// own with its connections to the queue manager.
const MOST_PROCESSES: usize = 128;

/// `statfs` types (`linux/magic.h`) whose requests leave the machine or
/// the kernel.
const REMOTE_TYPES: &[u64] = &[
    0x6969,      // NFS
    0x517b,      // SMB
    0xff53_4d42, // CIFS
    0xfe53_4d42, // SMB2
    0x6573_5546, // FUSE
    0x00c3_6400, // Ceph
    0x0bd0_0bd0, // Lustre
    0x0102_1997, // 9p
    0x5346_414f, // AFS
    0x6b41_4653, // kAFS
    0x0116_1970, // GFS2
    0x7461_636f, // OCFS2
    0x1366_1366, // OrangeFS
];

/// The workers a run without `-j` starts with, and the most it may grow
/// to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DefaultJobs {
    pub(crate) start: NonZeroUsize,
    /// As many as `start` where the pool never grows (a local tree).
    pub(crate) most: NonZeroUsize,
}

/// The default number of workers of `kind` for copying `sources` to
/// `destination`.
pub(crate) fn default_jobs(
    sources: &[OsString],
    destination: &OsStr,
    kind: WorkerKind,
) -> DefaultJobs {
    let cpus = std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN);
    match any_remote(sources, destination) {
        true => {
            let start = cpus.max(remote_jobs(kind));
            DefaultJobs {
                start,
                most: growth_cap(start, kind),
            }
        }
        false => DefaultJobs {
            start: cpus,
            most: cpus,
        },
    }
}

/// The most workers of `kind` a pool started with `start` grows to:
/// [`GROWTH`] times as many, within [`MOST_THREADS`] or
/// [`MOST_PROCESSES`] (never fewer than `start`).
pub(crate) fn growth_cap(start: NonZeroUsize, kind: WorkerKind) -> NonZeroUsize {
    let most = match kind {
        WorkerKind::Thread => MOST_THREADS,
        WorkerKind::Process => MOST_PROCESSES,
    };
    let cap = start.get().saturating_mul(GROWTH).min(most);
    NonZeroUsize::new(cap).map_or(start, |cap| cap.max(start))
}

/// Workers of `kind` on a network mount (see [`REMOTE_THREADS`]).
fn remote_jobs(kind: WorkerKind) -> NonZeroUsize {
    let jobs = match kind {
        WorkerKind::Thread => REMOTE_THREADS,
        WorkerKind::Process => REMOTE_PROCESSES,
    };
    NonZeroUsize::new(jobs).unwrap_or(NonZeroUsize::MIN)
}

/// Whether a source or the destination is on a remote file system.
fn any_remote(sources: &[OsString], destination: &OsStr) -> bool {
    let dst = Path::new(destination);
    // A destination yet to be made lands in its parent.
    let dst_there = match dst.parent() {
        Some(parent) if !dst.exists() && !parent.as_os_str().is_empty() => parent,
        Some(_) if !dst.exists() => Path::new("."),
        _ => dst,
    };
    let sources = sources.iter().map(Path::new);
    sources.chain([dst_there]).any(is_remote)
}

/// Whether `path` is on a file system of [`REMOTE_TYPES`]; false when it
/// cannot be told (the command line's checks report a bad path).
fn is_remote(path: &Path) -> bool {
    rustix::fs::statfs(path).is_ok_and(|st| REMOTE_TYPES.contains(&(st.f_type as u64)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_tree_gets_the_cpu_count() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let src = tmp.path().join("src");
        std::fs::create_dir(&src).expect("mkdir");
        let cpus = std::thread::available_parallelism().expect("cpus");
        let dst = tmp.path().join("not-yet/dst");
        let sources = [src.into_os_string()];
        let jobs = default_jobs(&sources, dst.as_os_str(), WorkerKind::Thread);
        assert_eq!(
            jobs,
            default_jobs(&sources, dst.as_os_str(), WorkerKind::Process)
        );
        // The temp dir is on a local file system on every CI machine.
        assert!(!is_remote(tmp.path()), "{}", tmp.path().display());
        // Nor does a local pool ever grow.
        assert_eq!((jobs.start, jobs.most), (cpus, cpus));
    }

    #[test]
    fn growth_goes_to_four_times_the_start_within_each_kinds_most() {
        let n = |v: usize| NonZeroUsize::new(v).unwrap();
        assert_eq!(growth_cap(n(32), WorkerKind::Thread), n(128));
        assert_eq!(growth_cap(n(128), WorkerKind::Thread), n(512));
        assert_eq!(growth_cap(n(256), WorkerKind::Thread), n(512));
        assert_eq!(growth_cap(n(64), WorkerKind::Process), n(128));
        assert_eq!(growth_cap(n(2), WorkerKind::Process), n(8));
        // A start beyond the most is kept, and not grown.
        assert_eq!(growth_cap(n(600), WorkerKind::Thread), n(600));
    }

    #[test]
    fn threads_go_further_than_processes_on_a_network_mount() {
        assert_eq!(remote_jobs(WorkerKind::Thread).get(), 128);
        assert_eq!(remote_jobs(WorkerKind::Process).get(), 64);
    }

    #[test]
    fn network_and_user_space_file_systems_are_remote_local_ones_not() {
        for remote in [0x6969, 0x6573_5546, 0xff53_4d42] {
            assert!(REMOTE_TYPES.contains(&remote), "{remote:x}");
        }
        // tmpfs, ext4, xfs, btrfs.
        for local in [0x0102_1994, 0xef53, 0x5846_5342, 0x9123_683e] {
            assert!(!REMOTE_TYPES.contains(&local), "{local:x}");
        }
    }
}
