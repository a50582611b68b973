//! Extended attributes for `-a`: read from a source by path (directories,
//! during the walk, which holds no source descriptors) or by descriptor
//! (files, in the engine), and set on the destination's descriptor.

use std::os::fd::BorrowedFd;
#[cfg(test)]
use std::path::Path;

use rustix::fs::XattrFlags;
use rustix::io::Errno;

/// One attribute: its name (without the NUL) and value.
pub(crate) type Xattr = (Vec<u8>, Vec<u8>);

/// The attributes of `path`, not following a symlink. A filesystem
/// without attributes has none.
#[cfg(test)]
pub(crate) fn read_path(path: &Path) -> Result<Vec<Xattr>, Errno> {
    read_all(
        |names| match names {
            None => rustix::fs::llistxattr_query(path),
            Some(names) => rustix::fs::llistxattr(path, names),
        },
        |name, value| match value {
            None => rustix::fs::lgetxattr_query(path, name),
            Some(value) => rustix::fs::lgetxattr(path, name, value),
        },
    )
}

/// The attributes of the open file `fd`. A filesystem without attributes
/// has none.
pub(crate) fn read_fd(fd: BorrowedFd<'_>) -> Result<Vec<Xattr>, Errno> {
    read_all(
        |names| match names {
            None => rustix::fs::flistxattr_query(fd),
            Some(names) => rustix::fs::flistxattr(fd, names),
        },
        |name, value| match value {
            None => rustix::fs::fgetxattr_query(fd, name),
            Some(value) => rustix::fs::fgetxattr(fd, name, value),
        },
    )
}

/// A call that reads into the buffer it is given, or with `None` returns
/// the size it needs (the `*xattr_query` form).
type SizedRead<'a> = dyn Fn(Option<&mut [u8]>) -> Result<usize, Errno> + 'a;

/// Lists the names with `list`, then reads each value with `get`; an
/// attribute removed since the listing is left out.
fn read_all(
    list: impl Fn(Option<&mut [u8]>) -> Result<usize, Errno>,
    get: impl Fn(&[u8], Option<&mut [u8]>) -> Result<usize, Errno>,
) -> Result<Vec<Xattr>, Errno> {
    let names = match read_sized(&list) {
        Ok(names) => names,
        Err(Errno::NOTSUP | Errno::NOSYS) => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    let mut attrs = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        match read_sized(&|value| get(name, value)) {
            Ok(value) => attrs.push((name.to_vec(), value)),
            Err(Errno::NODATA) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(attrs)
}

/// Asks `read` for the size, then reads; again if the value grew between
/// the two calls.
fn read_sized(read: &SizedRead<'_>) -> Result<Vec<u8>, Errno> {
    loop {
        let size = read(None)?;
        if size == 0 {
            return Ok(Vec::new());
        }
        let mut buffer = vec![0; size];
        match read(Some(&mut buffer[..])) {
            Ok(len) => {
                buffer.truncate(len);
                return Ok(buffer);
            }
            Err(Errno::RANGE) => {}
            Err(err) => return Err(err),
        }
    }
}

/// Sets one attribute on `fd`. One outside the `user.` namespace that this
/// user may not set (`trusted.`, `security.` as non-root) is left out
/// silently, as rsync does without root; a `user.` one is an error, unless
/// the filesystem keeps no attributes at all (exFAT, FAT): the run says
/// that once, from its probe of the destination (`copy::caps`).
pub(crate) fn set(fd: BorrowedFd<'_>, name: &[u8], value: &[u8]) -> Result<(), Errno> {
    match rustix::fs::fsetxattr(fd, name, value, XattrFlags::empty()) {
        Err(Errno::PERM | Errno::ACCESS) if !name.starts_with(b"user.") => Ok(()),
        Err(Errno::NOTSUP) => Ok(()),
        done => done,
    }
}

/// Sets each attribute on `fd` whose value differs (so an unchanged
/// directory keeps its ctime), by the rule of [`set`].
pub(crate) fn apply(fd: BorrowedFd<'_>, attrs: &[Xattr]) -> Result<(), Errno> {
    for (name, value) in attrs {
        let mut current = vec![0; value.len()];
        let same = rustix::fs::fgetxattr(fd, &name[..], &mut current[..])
            .is_ok_and(|len| len == value.len() && current == *value);
        if !same {
            set(fd, name, value)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn directory_attributes_are_read_and_applied_once() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        let dst = tmp.path().join("dst");
        std::fs::create_dir(&src).unwrap();
        std::fs::create_dir(&dst).unwrap();
        let set = rustix::fs::setxattr(&src, "user.pcopy", b"v1", XattrFlags::empty());
        if set == Err(Errno::NOTSUP) {
            eprintln!("skipped: the temp filesystem has no user extended attributes");
            return;
        }
        set.unwrap();
        let attrs = read_path(&src).unwrap();
        assert_eq!(attrs, [(b"user.pcopy".to_vec(), b"v1".to_vec())]);
        let fd = std::fs::File::open(&dst).unwrap();
        apply(fd.as_fd(), &attrs).unwrap();
        let mut value = [0u8; 8];
        let len = rustix::fs::getxattr(&dst, "user.pcopy", &mut value[..]).unwrap();
        assert_eq!(&value[..len], b"v1");
    }

    #[test]
    fn a_file_reads_the_same_by_descriptor_as_by_path() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let value = vec![b'v'; 300];
        let set = rustix::fs::setxattr(&file, "user.value", &value, XattrFlags::empty());
        if set == Err(Errno::NOTSUP) {
            eprintln!("skipped: the temp filesystem has no user extended attributes");
            return;
        }
        set.unwrap();
        let fd = std::fs::File::open(&file).unwrap();
        let by_fd = read_fd(fd.as_fd()).unwrap();
        assert_eq!(by_fd, [(b"user.value".to_vec(), value)]);
        assert_eq!(by_fd, read_path(&file).unwrap());
    }
}
