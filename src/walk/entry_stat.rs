//! The metadata of walked entries, each from one `stat` relative to its
//! source directory.
//!
//! A `stat` of a whole path makes the kernel look up every component of it
//! again, for every file: with a deep absolute source, most of a no-op
//! rerun went there. So the walker stats each entry by name beneath the
//! source directory it holds open (see `tree`). `std::fs::Metadata`
//! cannot be made from such a `stat`, hence [`EntryStat`].

use std::ffi::OsStr;
use std::os::fd::BorrowedFd;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Stat};

use crate::job::{FileTime, SourceMeta};

/// What one `lstat` (`stat` when following links) of an entry says: the
/// parts of `std::fs::Metadata` the walker uses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EntryStat(Stat);

impl EntryStat {
    /// Stats `name` beneath the directory `dir`; follows a symlink there
    /// only if `follow`.
    pub(crate) fn at(dir: BorrowedFd<'_>, name: &OsStr, follow: bool) -> std::io::Result<Self> {
        Ok(EntryStat(rustix::fs::statat(dir, name, at_flags(follow))?))
    }

    /// Stats the open file `fd` itself.
    pub(crate) fn of_fd(fd: BorrowedFd<'_>) -> Result<Self, rustix::io::Errno> {
        Ok(EntryStat(rustix::fs::fstat(fd)?))
    }

    /// The whole `stat`, for records made from it.
    pub(crate) fn raw(&self) -> &Stat {
        &self.0
    }

    /// Stats `path` as a whole (relative paths from the current directory),
    /// like `std::fs::symlink_metadata` (`std::fs::metadata` if `follow`).
    pub(crate) fn of_path(path: &Path, follow: bool) -> std::io::Result<Self> {
        Self::at(rustix::fs::CWD, path.as_os_str(), follow)
    }

    /// Size in bytes (the target's length for a symlink).
    pub(crate) fn len(&self) -> u64 {
        u64::try_from(self.0.st_size).unwrap_or(0)
    }

    /// Modification time.
    pub(crate) fn modified(&self) -> FileTime {
        FileTime::mtime(&self.0)
    }

    /// `st_mode`: the type and the permission bits.
    pub(crate) fn mode(&self) -> u32 {
        self.0.st_mode
    }

    pub(crate) fn uid(&self) -> u32 {
        self.0.st_uid
    }

    pub(crate) fn gid(&self) -> u32 {
        self.0.st_gid
    }

    /// The device a device node stands for.
    pub(crate) fn rdev(&self) -> u64 {
        self.0.st_rdev
    }

    // `st_nlink` is 32 bits wide on some targets.
    #[allow(clippy::useless_conversion)]
    pub(crate) fn nlink(&self) -> u64 {
        u64::from(self.0.st_nlink)
    }

    pub(crate) fn dev(&self) -> u64 {
        self.0.st_dev
    }

    pub(crate) fn ino(&self) -> u64 {
        self.0.st_ino
    }

    /// 512-byte blocks allocated: fewer than the size needs means holes.
    pub(crate) fn blocks(&self) -> u64 {
        u64::try_from(self.0.st_blocks).unwrap_or(0)
    }

    pub(crate) fn is_file(&self) -> bool {
        self.file_type() == FileType::RegularFile
    }

    pub(crate) fn is_symlink(&self) -> bool {
        self.file_type() == FileType::Symlink
    }

    /// What the quick check needs of the source.
    pub(crate) fn source_meta(&self) -> SourceMeta {
        SourceMeta {
            size: self.len(),
            mtime: self.modified(),
            mode: self.mode(),
            uid: self.uid(),
            gid: self.gid(),
            rdev: self.rdev(),
        }
    }

    pub(crate) fn file_type(&self) -> FileType {
        FileType::from_raw_mode(self.0.st_mode)
    }
}

fn at_flags(follow: bool) -> AtFlags {
    match follow {
        true => AtFlags::empty(),
        false => AtFlags::SYMLINK_NOFOLLOW,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::fd::AsFd;
    use std::os::unix::fs::{MetadataExt, symlink};

    fn same_as_std(st: &EntryStat, md: &fs::Metadata) {
        assert_eq!(st.len(), md.len());
        let std = FileTime {
            secs: md.mtime(),
            nanos: md.mtime_nsec(),
        };
        assert_eq!(st.modified(), std);
        assert_eq!(
            (st.mode(), st.uid(), st.gid()),
            (md.mode(), md.uid(), md.gid())
        );
        assert_eq!(
            (st.dev(), st.ino(), st.nlink()),
            (md.dev(), md.ino(), md.nlink())
        );
        assert_eq!((st.rdev(), st.blocks()), (md.rdev(), md.blocks()));
        assert_eq!(st.is_file(), md.is_file());
        assert_eq!(st.is_symlink(), md.is_symlink());
    }

    #[test]
    fn stat_beneath_a_directory_matches_std_metadata() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("f");
        fs::write(&file, "some bytes").unwrap();
        fs::hard_link(&file, tmp.path().join("g")).unwrap();
        let dir = fs::File::open(tmp.path()).unwrap();
        let st = EntryStat::at(dir.as_fd(), OsStr::new("f"), false).unwrap();
        same_as_std(&st, &fs::symlink_metadata(&file).unwrap());
        assert_eq!((st.len(), st.nlink()), (10, 2));
        let whole = EntryStat::of_path(&file, false).unwrap();
        same_as_std(&whole, &fs::symlink_metadata(&file).unwrap());
    }

    #[test]
    fn a_symlink_is_followed_only_when_asked() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("target"), "1234").unwrap();
        symlink("target", tmp.path().join("link")).unwrap();
        let dir = fs::File::open(tmp.path()).unwrap();
        let link = EntryStat::at(dir.as_fd(), OsStr::new("link"), false).unwrap();
        assert!(link.is_symlink() && !link.is_file());
        same_as_std(
            &link,
            &fs::symlink_metadata(tmp.path().join("link")).unwrap(),
        );
        let target = EntryStat::at(dir.as_fd(), OsStr::new("link"), true).unwrap();
        assert!(target.is_file() && !target.is_symlink());
        same_as_std(&target, &fs::metadata(tmp.path().join("link")).unwrap());
    }
}
