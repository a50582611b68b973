//! What the destination filesystem can keep, found out once per run by
//! trying it on a temp file in the destination root: how fine its
//! timestamps are, so the quick check of a rerun compares times at that
//! granularity (exFAT keeps 10 ms, FAT 2 s).

use std::os::fd::BorrowedFd;

use rustix::fs::{AtFlags, Mode, OFlags, Timespec, Timestamps};

use super::commit::{TEMP_NAME_ATTEMPTS, next_temp_name};

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
const PROBES: [(i64, i64); 2] = [(1_600_000_001, 999_999_999), (1_600_000_003, 123_456_789)];

/// The coarsest step the destination root's filesystem keeps mtimes in,
/// in nanoseconds: 1 where it keeps nanoseconds. Found by setting each
/// of [`PROBES`] on a new temp file and reading it back. `None` when the
/// probe could not be made (nothing to learn: the copies will fail the
/// same way and say why). The temp is removed; a leftover has a temp
/// name, which the next run clears.
pub(crate) fn time_granularity(root: BorrowedFd<'_>, tag: &str) -> Option<u64> {
    // An unnamed file leaves the directory as it was, not even its ctime
    // moves, so a rerun over an unchanged tree still changes nothing.
    let unnamed = OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC;
    if let Ok(fd) = rustix::fs::openat(root, ".", unnamed, Mode::from_raw_mode(0o600)) {
        return granularity_of(&fd);
    }
    let stem = format!("{tag}{}.probe", std::process::id());
    let flags = OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::WRONLY | OFlags::CLOEXEC;
    let (fd, name) = (0..TEMP_NAME_ATTEMPTS).find_map(|_| {
        let name = next_temp_name(&stem);
        let fd = rustix::fs::openat(root, name.as_c_str(), flags, Mode::from_raw_mode(0o600));
        fd.ok().map(|fd| (fd, name))
    })?;
    let step = granularity_of(&fd);
    let _ = rustix::fs::unlinkat(root, name.as_c_str(), AtFlags::empty());
    step
}

/// The step of the probe file `fd`'s filesystem (see [`time_granularity`]).
fn granularity_of(fd: &std::os::fd::OwnedFd) -> Option<u64> {
    let kept = PROBES.iter().map(|&probe| readback(fd, probe));
    kept.map(|kept| kept.map(step_of)).min().flatten()
}

/// Sets `mtime` on `fd` and reads back what the filesystem kept, in ns.
fn readback(fd: &std::os::fd::OwnedFd, (secs, nanos): (i64, i64)) -> Option<i128> {
    let time = Timespec {
        tv_sec: secs,
        tv_nsec: nanos as _,
    };
    let times = Timestamps {
        last_access: time,
        last_modification: time,
    };
    rustix::fs::futimens(fd, &times).ok()?;
    let st = rustix::fs::fstat(fd).ok()?;
    Some(i128::from(st.st_mtime) * i128::from(SECOND) + i128::from(st.st_mtime_nsec as i64))
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
        let step = time_granularity(std::os::fd::AsFd::as_fd(&root), "").unwrap();
        // tmpfs and ext4 keep nanoseconds, xfs and btrfs too.
        assert_eq!(step, 1);
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }
}
