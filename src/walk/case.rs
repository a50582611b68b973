//! Destination directories that do not tell names apart by case (exFAT,
//! FAT, NTFS as Windows uses it, ext4 directories with the casefold
//! attribute): source names that differ only in case would land on one
//! file there, so neither is copied and both are reported.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;

/// `FS_CASEFOLD_FL` (linux/fs.h): the directory's names are looked up
/// without regard to case (`chattr +F` on ext4 and f2fs).
const FS_CASEFOLD_FL: u32 = 0x4000_0000;

/// Whether the directory `dir` has the casefold attribute.
pub(super) fn casefolded(dir: BorrowedFd<'_>) -> bool {
    rustix::fs::ioctl_getflags(dir).is_ok_and(|flags| flags.bits() & FS_CASEFOLD_FL != 0)
}

/// The names of one source directory that collide with another of its
/// names when case is ignored, each with one name it collides with.
#[derive(Debug, Default)]
pub(super) struct Collisions {
    others: HashMap<OsString, OsString>,
}

impl Collisions {
    /// The colliding names among `names`, those of one directory as the
    /// walk listed it.
    pub(super) fn of_names<'a>(names: impl Iterator<Item = &'a OsStr>) -> Collisions {
        let mut by_fold: HashMap<Vec<u8>, Vec<OsString>> = HashMap::new();
        for name in names {
            by_fold
                .entry(fold(name))
                .or_default()
                .push(name.to_os_string());
        }
        let mut others = HashMap::new();
        for mut names in by_fold.into_values().filter(|names| names.len() > 1) {
            names.sort();
            for (i, name) in names.iter().enumerate() {
                // Each names the first other one, so both sides are told.
                let other = if i == 0 { &names[1] } else { &names[0] };
                others.insert(name.clone(), other.clone());
            }
        }
        Collisions { others }
    }

    /// The name `name` collides with, if any.
    pub(super) fn other(&self, name: &OsStr) -> Option<&OsStr> {
        self.others.get(name).map(OsString::as_os_str)
    }
}

/// A name with case ignored: Unicode lower case for UTF-8 names (what
/// exFAT's up-case table and ext4's casefolding agree on for the names
/// people use), ASCII lower case for other bytes.
fn fold(name: &OsStr) -> Vec<u8> {
    match name.to_str() {
        Some(text) => text.to_lowercase().into_bytes(),
        None => name.as_bytes().to_ascii_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_differ_only_in_case_name_each_other() {
        let tmp = tempfile::tempdir().unwrap();
        for name in [
            "Readme.txt",
            "README.txt",
            "other",
            "Straße",
            "STRASSE",
            "Ä",
            "ä",
        ] {
            std::fs::write(tmp.path().join(name), "").unwrap();
        }
        let names: Vec<OsString> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        let found = Collisions::of_names(names.iter().map(OsString::as_os_str));
        assert_eq!(
            found.other(OsStr::new("Readme.txt")),
            Some(OsStr::new("README.txt"))
        );
        assert_eq!(
            found.other(OsStr::new("README.txt")),
            Some(OsStr::new("Readme.txt"))
        );
        assert_eq!(found.other(OsStr::new("ä")), Some(OsStr::new("Ä")));
        assert_eq!(found.other(OsStr::new("other")), None);
        // Lower-casing does not fold ß to ss (nor do exFAT or ext4).
        assert_eq!(found.other(OsStr::new("Straße")), None);
    }
}
