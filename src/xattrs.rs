//! Extended attributes of directories for `-a`: read from the source by
//! path during the walk (the walker holds no source descriptors) and set
//! on the destination directory's descriptor with its other metadata.
//! Files get theirs in the engine, descriptor to descriptor.

use std::os::fd::BorrowedFd;
use std::path::Path;

use rustix::fs::XattrFlags;
use rustix::io::Errno;

/// One attribute: its name (without the NUL) and value.
pub(crate) type Xattr = (Vec<u8>, Vec<u8>);

/// The attributes of `path`, not following a symlink. A filesystem
/// without attributes has none.
pub(crate) fn read_path(path: &Path) -> Result<Vec<Xattr>, Errno> {
    let names = loop {
        let size = match rustix::fs::llistxattr_query(path) {
            Ok(size) => size,
            Err(Errno::NOTSUP | Errno::NOSYS) => return Ok(Vec::new()),
            Err(err) => return Err(err),
        };
        let mut names = vec![0; size];
        match rustix::fs::llistxattr(path, &mut names[..]) {
            Ok(len) => {
                names.truncate(len);
                break names;
            }
            Err(Errno::RANGE) => {}
            Err(err) => return Err(err),
        }
    };
    let mut attrs = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        match get_path(path, name) {
            Ok(value) => attrs.push((name.to_vec(), value)),
            Err(Errno::NODATA) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(attrs)
}

fn get_path(path: &Path, name: &[u8]) -> Result<Vec<u8>, Errno> {
    loop {
        let size = rustix::fs::lgetxattr_query(path, name)?;
        let mut value = vec![0; size];
        match rustix::fs::lgetxattr(path, name, &mut value[..]) {
            Ok(len) => {
                value.truncate(len);
                return Ok(value);
            }
            Err(Errno::RANGE) => {}
            Err(err) => return Err(err),
        }
    }
}

/// Sets each attribute on `fd` whose value differs (so an unchanged
/// directory keeps its ctime). Attributes outside `user.` that this user
/// may not set are left out, as for files.
pub(crate) fn apply(fd: BorrowedFd<'_>, attrs: &[Xattr]) -> Result<(), Errno> {
    for (name, value) in attrs {
        let mut current = vec![0; value.len()];
        let same = rustix::fs::fgetxattr(fd, &name[..], &mut current[..])
            .is_ok_and(|len| len == value.len() && current == *value);
        if same {
            continue;
        }
        match rustix::fs::fsetxattr(fd, &name[..], value, XattrFlags::empty()) {
            Ok(()) => {}
            Err(Errno::PERM | Errno::NOTSUP | Errno::ACCESS) if !name.starts_with(b"user.") => {}
            Err(err) => return Err(err),
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
}
