//! Clearing a destination name for an entry of another type: a directory
//! in the way of a file, symlink or special file is removed with its
//! contents, every step an `*at` call beneath an open directory descriptor,
//! so nothing outside the destination is reached (rsync's `--force`).

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};
use rustix::io::Errno;

/// Removes the directory `name` in `dir` and everything below it. Each
/// directory is entered with `O_NOFOLLOW | O_DIRECTORY` relative to its
/// parent's descriptor and each entry is an `unlinkat` of one name there,
/// so a symlink inside goes as a link and is never followed. A name that
/// is gone meanwhile is no error.
pub(crate) fn remove_tree_at(dir: BorrowedFd<'_>, name: &OsStr) -> Result<(), Errno> {
    match open_dir(dir, name.as_bytes()) {
        Ok(fd) => empty_dir(fd)?,
        Err(Errno::NOENT) => return Ok(()),
        // Not a directory (any more): it goes as itself below.
        Err(Errno::NOTDIR | Errno::LOOP) => {
            return match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => Ok(()),
                Err(err) => Err(err),
            };
        }
        Err(err) => return Err(err),
    }
    match rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(err) => Err(err),
    }
}

/// Makes way at `name` in `dir` for an entry of another type: removes the
/// directory there, with its contents when `force` (`--force`,
/// `--delete`), else only when it is empty (`ENOTEMPTY` otherwise, as
/// rsync leaves a full directory without `--force`).
pub(crate) fn make_way_at(dir: BorrowedFd<'_>, name: &OsStr, force: bool) -> Result<(), Errno> {
    if force {
        return remove_tree_at(dir, name);
    }
    match rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(Errno::EXIST) => Err(Errno::NOTEMPTY),
        Err(err) => Err(err),
    }
}

/// A name read from a directory being emptied.
struct Listed {
    name: Vec<u8>,
    /// As the listing tells; a directory it does not tell of shows up as
    /// `EISDIR` when unlinked.
    is_dir: bool,
}

/// Removes every entry of the open directory `fd`, depth first.
fn empty_dir(fd: OwnedFd) -> Result<(), Errno> {
    // A read-only directory cannot be emptied as it is; it goes anyway.
    let st = rustix::fs::fstat(&fd)?;
    if st.st_mode & 0o300 != 0o300 {
        rustix::fs::fchmod(&fd, Mode::from_raw_mode((st.st_mode | 0o700) & 0o7777))?;
    }
    let mut names = Vec::new();
    let mut entries = Dir::read_from(fd.as_fd())?;
    while let Some(entry) = entries.read() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(Listed {
                name: name.to_vec(),
                is_dir: entry.file_type() == FileType::Directory,
            });
        }
    }
    for Listed { name, is_dir } in names {
        let name = OsStr::from_bytes(&name);
        let removed = match is_dir {
            true => remove_tree_at(fd.as_fd(), name),
            false => rustix::fs::unlinkat(fd.as_fd(), name, AtFlags::empty()),
        };
        match removed {
            // A directory whose type the listing did not tell.
            Err(Errno::ISDIR) => remove_tree_at(fd.as_fd(), name)?,
            Ok(()) | Err(Errno::NOENT) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

fn open_dir(dir: BorrowedFd<'_>, name: &[u8]) -> Result<OwnedFd, Errno> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::openat(dir, name, flags, Mode::empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn a_tree_goes_with_its_links_but_not_what_they_point_to() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs::create_dir_all(root.join("dst/gone/deeper")).unwrap();
        fs::create_dir(root.join("outside")).unwrap();
        fs::write(root.join("outside/precious"), "p").unwrap();
        fs::write(root.join("dst/gone/deeper/f"), "f").unwrap();
        std::os::unix::fs::symlink(root.join("outside"), root.join("dst/gone/link")).unwrap();
        let mut ro = fs::metadata(root.join("dst/gone/deeper"))
            .unwrap()
            .permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut ro, 0o555);
        fs::set_permissions(root.join("dst/gone/deeper"), ro).unwrap();
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let dst = rustix::fs::open(root.join("dst"), flags, Mode::empty()).unwrap();
        remove_tree_at(dst.as_fd(), OsStr::new("gone")).unwrap();
        assert_eq!(fs::read_dir(root.join("dst")).unwrap().count(), 0);
        assert_eq!(fs::read(root.join("outside/precious")).unwrap(), b"p");
        // Gone already: nothing to do.
        remove_tree_at(dst.as_fd(), OsStr::new("gone")).unwrap();
    }
}
