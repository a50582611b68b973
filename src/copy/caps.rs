//! What the destination filesystem can keep, found out once per run by
//! trying it on a temp file in the destination root: how fine its
//! timestamps are, so the quick check of a rerun compares times at that
//! granularity (exFAT keeps 10 ms, FAT 2 s); whether it keeps permission
//! bits, owners and extended attributes; and, on filesystems without
//! `O_TMPFILE` (exFAT, FAT, NTFS, network shares: none of Linux's own),
//! whether it holds symlinks and special files and tells names apart by
//! case.

use std::ffi::{CStr, CString};
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timestamps, XattrFlags};
use rustix::io::Errno;

use super::commit::{TEMP_NAME_ATTEMPTS, next_temp_name};
use crate::job::{DestCaps, FileTime};

/// What one probe of the destination found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Capabilities {
    /// The coarsest step mtimes are kept in, in ns (1: nanoseconds);
    /// `None` when the probe could not be made.
    pub(crate) time_step: Option<u64>,
    pub(crate) holds: DestCaps,
    /// Names that differ only in case are one name there.
    pub(crate) case_insensitive: bool,
    /// What `-a` keeps that this filesystem does not: "owners",
    /// "permission bits", "extended attributes".
    pub(crate) loses: Vec<&'static str>,
}

/// Probes the filesystem of the destination root `root`. Leaves no trace:
/// an unnamed file where the filesystem has them (not even the root's
/// ctime moves, so a rerun over an unchanged tree changes nothing), else
/// temp names removed at once (a leftover has a temp name, which the next
/// run clears).
pub(crate) fn probe(root: BorrowedFd<'_>, tag: &str) -> Capabilities {
    let mut caps = probe_kinds(root, tag);
    caps.holds.modes = !caps.loses.contains(&PERMISSION_BITS);
    caps
}

/// What `-a` calls the permission bits it cannot keep.
const PERMISSION_BITS: &str = "permission bits";

fn probe_kinds(root: BorrowedFd<'_>, tag: &str) -> Capabilities {
    let unnamed = OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC;
    if let Ok(fd) = rustix::fs::openat(root, ".", unnamed, Mode::from_raw_mode(0o600)) {
        return Capabilities {
            time_step: granularity_of(&fd),
            holds: DestCaps::default(),
            case_insensitive: false,
            loses: metadata_lost(&fd),
        };
    }
    let stem = format!("{tag}{}.probe", std::process::id());
    let Some((fd, name)) = create_probe(root, &stem) else {
        return Capabilities {
            time_step: None,
            holds: DestCaps::default(),
            case_insensitive: false,
            loses: Vec::new(),
        };
    };
    let caps = Capabilities {
        time_step: granularity_of(&fd),
        holds: DestCaps {
            symlinks: holds(root, &stem, |n| rustix::fs::symlinkat(c"probe", root, n)),
            specials: holds(root, &stem, |n| {
                rustix::fs::mknodat(root, n, FileType::Fifo, Mode::from_raw_mode(0o600), 0)
            }),
            modes: true,
        },
        case_insensitive: found_in_other_case(root, &name),
        loses: metadata_lost(&fd),
    };
    let _ = rustix::fs::unlinkat(root, name.as_c_str(), AtFlags::empty());
    caps
}

/// A new empty file under a fresh temp name in `root`.
fn create_probe(root: BorrowedFd<'_>, stem: &str) -> Option<(OwnedFd, CString)> {
    let flags = OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::RDWR | OFlags::CLOEXEC;
    (0..TEMP_NAME_ATTEMPTS).find_map(|_| {
        let name = next_temp_name(stem);
        let fd = rustix::fs::openat(root, name.as_c_str(), flags, Mode::from_raw_mode(0o600));
        fd.ok().map(|fd| (fd, name))
    })
}

/// Whether `make` can create an entry under a temp name in `root`; what
/// it made is removed (also a plain file some filesystems leave behind
/// when they fail to make a fifo).
fn holds(root: BorrowedFd<'_>, stem: &str, make: impl Fn(&CStr) -> Result<(), Errno>) -> bool {
    let name = next_temp_name(stem);
    let made = make(&name);
    let _ = rustix::fs::unlinkat(root, name.as_c_str(), AtFlags::empty());
    // Any other error (a full disk, say) says nothing about the kind.
    !matches!(
        made,
        Err(Errno::NOSYS | Errno::PERM | Errno::OPNOTSUPP | Errno::IO)
    )
}

/// Whether the probe `name` is found under its upper-case spelling too.
/// Nobody made that spelling (a temp name in upper case), so finding it
/// is enough: FUSE filesystems may number the two lookups differently.
fn found_in_other_case(root: BorrowedFd<'_>, name: &CStr) -> bool {
    let upper = CString::new(name.to_bytes().to_ascii_uppercase()).unwrap_or_default();
    rustix::fs::statat(root, upper.as_c_str(), AtFlags::SYMLINK_NOFOLLOW).is_ok()
}

/// What of `-a`'s metadata the probe file `fd` does not keep.
fn metadata_lost(fd: &OwnedFd) -> Vec<&'static str> {
    let mut lost = Vec::new();
    let kept_mode = rustix::fs::fchmod(fd, Mode::from_raw_mode(0o640)).is_ok()
        && rustix::fs::fstat(fd).is_ok_and(|st| st.st_mode & 0o7777 == 0o640);
    // Only root may give a file away, so only root can tell.
    if rustix::process::geteuid().is_root() {
        let other = rustix::fs::Uid::from_raw(1);
        let kept_owner = rustix::fs::fchown(fd, Some(other), None).is_ok()
            && rustix::fs::fstat(fd).is_ok_and(|st| st.st_uid == 1);
        if !kept_owner {
            lost.push("owners");
        }
    }
    if !kept_mode {
        lost.push(PERMISSION_BITS);
    }
    let set = rustix::fs::fsetxattr(fd, "user.pcopy.probe", b"1", XattrFlags::empty());
    if matches!(set, Err(Errno::NOTSUP)) {
        lost.push("extended attributes");
    }
    lost
}

/// Nanoseconds in a second.
const SECOND: u64 = 1_000_000_000;

/// Step sizes a filesystem may keep times in, finest first (ns).
const STEPS: [u64; 11] = [
    1,
    10,
    100, // NTFS
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000, // exFAT
    100_000_000,
    SECOND,
    2 * SECOND, // FAT
];

/// Times written by the probe: odd seconds and nanoseconds with no zero
/// digit, so whatever the filesystem drops shows in what it gives back.
const PROBES: [FileTime; 2] = [
    FileTime {
        secs: 1_600_000_001,
        nanos: 999_999_999,
    },
    FileTime {
        secs: 1_600_000_003,
        nanos: 123_456_789,
    },
];

/// The coarsest of [`STEPS`] the filesystem of the probe file `fd` keeps
/// mtimes in: each of [`PROBES`] is set and read back.
fn granularity_of(fd: &OwnedFd) -> Option<u64> {
    let kept = PROBES.iter().map(|&probe| readback(fd, probe));
    kept.map(|kept| kept.map(step_of)).min().flatten()
}

/// Sets `mtime` on `fd` and reads back what the filesystem kept, in ns.
fn readback(fd: &OwnedFd, probe: FileTime) -> Option<i128> {
    let time = probe.timespec();
    let times = Timestamps {
        last_access: time,
        last_modification: time,
    };
    rustix::fs::futimens(fd, &times).ok()?;
    let st = rustix::fs::fstat(fd).ok()?;
    Some(FileTime::mtime(&st).as_nanos())
}

/// The coarsest of [`STEPS`] that `kept` is a whole number of.
fn step_of(kept: i128) -> u64 {
    STEPS
        .iter()
        .rev()
        .copied()
        .find(|&step| kept % i128::from(step) == 0)
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_read_off_what_was_kept() {
        let ns = |secs: i128, nanos: i128| secs * 1_000_000_000 + nanos;
        assert_eq!(step_of(ns(1_600_000_001, 999_999_999)), 1);
        assert_eq!(step_of(ns(1_600_000_001, 999_999_900)), 100);
        assert_eq!(step_of(ns(1_600_000_001, 990_000_000)), 10_000_000);
        assert_eq!(step_of(ns(1_600_000_001, 0)), SECOND);
        assert_eq!(step_of(ns(1_600_000_000, 0)), 2 * SECOND);
    }

    #[test]
    fn a_local_filesystem_is_probed_and_left_clean() {
        let tmp = tempfile::tempdir().unwrap();
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let root = rustix::fs::open(tmp.path(), flags, Mode::empty()).unwrap();
        let caps = probe(std::os::fd::AsFd::as_fd(&root), "");
        // tmpfs and ext4 keep nanoseconds, xfs and btrfs too, and hold
        // every kind of entry.
        assert_eq!(caps.time_step, Some(1));
        assert_eq!(caps.holds, DestCaps::default());
        assert!(!caps.case_insensitive);
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }
}
