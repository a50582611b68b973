//! `--link-dest`, `--compare-dest` and `--copy-dest`: finding an unchanged
//! copy of a new file in a basis directory. Each basis directory is opened
//! once, relative to the destination root; its files are reached beneath
//! that descriptor without following a symlink, and only ever read or
//! linked to, never written.

use std::ffi::{CStr, OsStr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, SeekFrom, Stat};
use rustix::io::Errno;

use super::commit::final_mode;
use super::digest::hash_fd;
use super::fail::Failure;
use super::owners::Owners;
use super::xattrs;
use crate::job::{BasisDirs, BasisKind, Compare, CopyOptions};
use crate::relpath;

/// The basis directories that could be opened, in the order given.
#[derive(Debug)]
pub(super) struct Basis {
    kind: BasisKind,
    dirs: Vec<BasisDir>,
}

#[derive(Debug)]
struct BasisDir {
    root: OwnedFd,
    /// The last directory looked in: jobs come in walk order.
    cached: Option<CachedDir>,
}

/// A directory beneath a basis directory, held open.
#[derive(Debug)]
struct CachedDir {
    /// Its path relative to the basis directory.
    rel: Vec<u8>,
    fd: OwnedFd,
}

/// What a source file is compared with.
pub(super) struct Wanted<'a> {
    /// The destination's parent (relative to the root) and name.
    pub(super) parent: &'a [u8],
    pub(super) name: &'a OsStr,
    /// The open source and its `fstat`.
    pub(super) src: BorrowedFd<'a>,
    pub(super) st: &'a Stat,
}

impl Basis {
    /// Opens the directories of `spec` relative to `root`. One that does
    /// not exist is left out: the main thread warned about it.
    pub(super) fn open(root: BorrowedFd<'_>, spec: &BasisDirs) -> Basis {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let dirs = (spec.dirs.iter())
            .filter_map(|dir| rustix::fs::openat(root, dir.as_os_str(), flags, Mode::empty()).ok())
            .map(|root| BasisDir { root, cached: None })
            .collect();
        Basis {
            kind: spec.kind,
            dirs,
        }
    }

    pub(super) fn kind(&self) -> BasisKind {
        self.kind
    }

    /// The first basis file that is unchanged against the source: the same
    /// size and mtime (contents with `-c`), and except for `--copy-dest`
    /// also the same permission bits and, with `-a`, owner, group and
    /// extended attributes (rsync's rule). Opened for reading.
    pub(super) fn find(
        &mut self,
        wanted: &Wanted<'_>,
        opts: &CopyOptions,
        scratch: &mut Vec<u8>,
    ) -> Result<Option<OwnedFd>, Failure> {
        if opts.compare == Compare::Always {
            return Ok(None);
        }
        let attrs = self.kind != BasisKind::Copy;
        for dir in &mut self.dirs {
            let Some(file) = dir.open(wanted.parent, wanted.name) else {
                continue;
            };
            if unchanged(file.as_fd(), wanted, opts, attrs, scratch)? {
                return Ok(Some(file));
            }
        }
        Ok(None)
    }
}

impl Basis {
    /// The first basis directory holding, at the same place, a symbolic
    /// link with the same target and mtime (with `-a`, owner and group):
    /// that directory's descriptor for the link's parent.
    fn find_link(
        &mut self,
        parent: &[u8],
        name: &OsStr,
        target: &CStr,
        src: &Stat,
        owners: Owners,
    ) -> Option<BorrowedFd<'_>> {
        let index = self.dirs.iter_mut().position(|dir| {
            let Some(at) = dir.parent(parent) else {
                return false;
            };
            let Ok(st) = rustix::fs::statat(at, name, AtFlags::SYMLINK_NOFOLLOW) else {
                return false;
            };
            let owner = owners
                .wanted(src.st_uid, src.st_gid)
                .differs(st.st_uid, st.st_gid);
            FileType::from_raw_mode(st.st_mode) == FileType::Symlink
                && (st.st_mtime, st.st_mtime_nsec) == (src.st_mtime, src.st_mtime_nsec)
                && !owner.any()
                && rustix::fs::readlinkat(at, name, Vec::new())
                    .is_ok_and(|t| t.as_c_str() == target)
        })?;
        self.dirs[index].parent(parent)
    }
}

impl BasisDir {
    /// The directory `parent` beneath this one, held for the next file.
    fn parent(&mut self, parent: &[u8]) -> Option<BorrowedFd<'_>> {
        let hit = (self.cached.as_ref()).is_some_and(|cached| cached.rel == parent);
        if !hit {
            let rel = std::os::unix::ffi::OsStrExt::from_bytes(parent);
            let fd = relpath::open_beneath(self.root.as_fd(), rel).ok()?;
            self.cached = Some(CachedDir {
                rel: parent.to_vec(),
                fd,
            });
        }
        self.cached.as_ref().map(|cached| cached.fd.as_fd())
    }

    /// The regular file `parent/name` beneath this directory; `None` when
    /// there is none (or a symlink, or it cannot be read).
    fn open(&mut self, parent: &[u8], name: &OsStr) -> Option<OwnedFd> {
        let dir = self.parent(parent)?;
        let flags =
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        rustix::fs::openat(dir, name, flags, Mode::empty()).ok()
    }
}

/// Whether the basis `file` stands for the source unchanged.
fn unchanged(
    file: BorrowedFd<'_>,
    wanted: &Wanted<'_>,
    opts: &CopyOptions,
    attrs: bool,
    scratch: &mut Vec<u8>,
) -> Result<bool, Failure> {
    let Ok(st) = rustix::fs::fstat(file) else {
        return Ok(false);
    };
    let src = wanted.st;
    let same_data = FileType::from_raw_mode(st.st_mode) == FileType::RegularFile
        && st.st_size == src.st_size
        && match opts.compare {
            Compare::Checksum => same_contents(file, wanted.src, scratch)?,
            _ => (st.st_mtime, st.st_mtime_nsec) == (src.st_mtime, src.st_mtime_nsec),
        };
    if !same_data || !attrs {
        return Ok(same_data);
    }
    let wanted_ids = opts.owners.wanted(src.st_uid, src.st_gid);
    let owner = !wanted_ids.differs(st.st_uid, st.st_gid).any();
    let mode = st.st_mode & 0o7777 == final_mode(src.st_mode, wanted_ids.both() && owner);
    let mode = mode || !opts.keep.perms;
    Ok(mode && owner && (!opts.keep.xattrs || same_xattrs(file, wanted.src)))
}

/// `-c`: both files hashed; the source is read from its start again after.
fn same_contents(
    file: BorrowedFd<'_>,
    src: BorrowedFd<'_>,
    scratch: &mut Vec<u8>,
) -> Result<bool, Failure> {
    let Ok((theirs, _)) = hash_fd(file, scratch) else {
        return Ok(false);
    };
    let (ours, _) = hash_fd(src, scratch).map_err(|e| Failure::source("cannot read source", e))?;
    rustix::fs::seek(src, SeekFrom::Start(0))
        .map_err(|e| Failure::source("cannot read source", e))?;
    Ok(ours == theirs)
}

/// The same extended attributes, in any order; unreadable ones differ.
fn same_xattrs(file: BorrowedFd<'_>, src: BorrowedFd<'_>) -> bool {
    let read = |fd| -> Result<Vec<xattrs::Xattr>, Errno> {
        let mut attrs = xattrs::read_fd(fd)?;
        attrs.sort();
        Ok(attrs)
    };
    matches!((read(file), read(src)), (Ok(a), Ok(b)) if a == b)
}

impl super::Engine {
    /// A new symbolic link unchanged in a basis directory: hard-linked to
    /// it (`--link-dest`, where the filesystem links symlinks) or left
    /// out (`--compare-dest`). `None`: made as usual.
    pub(super) fn use_basis_link(
        &mut self,
        target: &CStr,
        st: &Stat,
        dest: &super::DestPath<'_>,
    ) -> Result<Option<crate::job::Outcome>, Failure> {
        use crate::job::{Outcome, SkipReason};
        let owners = self.opts.owners;
        let known_new = self.namer.known_new();
        let Some(basis) = self
            .basis
            .as_mut()
            .filter(|b| known_new && b.kind != BasisKind::Copy)
        else {
            return Ok(None);
        };
        let kind = basis.kind;
        let Some(at) = basis.find_link(dest.parent, dest.name, target, st, owners) else {
            return Ok(None);
        };
        let up_to_date = Some(Outcome::Skipped {
            reason: SkipReason::UpToDate,
        });
        if kind == BasisKind::Compare {
            return Ok(up_to_date);
        }
        let dir = super::parent_dir(&mut self.dirs, dest.parent)?;
        match rustix::fs::linkat(at, dest.name, dir, dest.name, AtFlags::empty()) {
            Ok(()) => Ok(up_to_date),
            Err(Errno::XDEV | Errno::MLINK | Errno::PERM | Errno::OPNOTSUPP) => Ok(None),
            Err(err) => Err(Failure::dest("cannot link to the --link-dest link", err)),
        }
    }

    /// A new regular file with an unchanged copy in a basis directory:
    /// linked to it (`--link-dest`), left out (`--compare-dest`) or copied
    /// from it (`--copy-dest`). `None`: copy from the source as usual.
    /// Only where nothing is at the destination name (rsync's rule).
    pub(super) fn use_basis(
        &mut self,
        src: BorrowedFd<'_>,
        st: &Stat,
        dest: &super::DestPath<'_>,
        on_bytes: &mut dyn FnMut(u64),
    ) -> Result<Option<crate::job::Outcome>, Failure> {
        use crate::job::{Outcome, SkipReason};
        let Some(basis) = self.basis.as_mut().filter(|_| self.namer.known_new()) else {
            return Ok(None);
        };
        let wanted = Wanted {
            parent: dest.parent,
            name: dest.name,
            src,
            st,
        };
        let Some(found) = basis.find(&wanted, &self.opts, &mut self.scratch)? else {
            return Ok(None);
        };
        let up_to_date = Outcome::Skipped {
            reason: SkipReason::UpToDate,
        };
        match basis.kind() {
            BasisKind::Compare => Ok(Some(up_to_date)),
            BasisKind::Link => {
                let dir = super::parent_dir(&mut self.dirs, dest.parent)?;
                let linked = self.namer.link_existing(found.as_fd(), dir, dest.name)?;
                Ok(linked.then_some(up_to_date))
            }
            BasisKind::Copy => {
                let data = super::Data {
                    bytes: found.as_fd(),
                    source: src,
                };
                self.write_file(data, st, dest, on_bytes).map(Some)
            }
        }
    }
}
