//! Hard links under `-a`, the walker's half: which names of a source file
//! with several links are copied and which become links.
//!
//! The first name of an inode (keyed by device and inode number) is copied
//! like any file; each later name becomes a `finish::links::LinkJob`,
//! linked to the finished first copy after the copy (see there).

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};

use super::entry_stat::EntryStat;

/// The walker's record of the first name of each multiply-linked file.
#[derive(Debug, Default)]
pub(crate) struct LinkTracker {
    first: HashMap<(u64, u64), OsString>,
}

impl LinkTracker {
    /// For a regular file: `None` if `rel` is to be copied (a single link,
    /// or the first name seen), else the first name to link it to.
    pub(crate) fn target_for(&mut self, meta: &EntryStat, rel: &OsStr) -> Option<OsString> {
        if meta.nlink() < 2 {
            return None;
        }
        match self.first.entry((meta.dev(), meta.ino())) {
            std::collections::hash_map::Entry::Occupied(first) => Some(first.get().clone()),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(rel.to_os_string());
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn only_later_names_of_a_linked_file_become_links() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("a"), "x").unwrap();
        fs::hard_link(tmp.path().join("a"), tmp.path().join("b")).unwrap();
        fs::write(tmp.path().join("single"), "y").unwrap();
        let mut tracker = LinkTracker::default();
        let meta = |name: &str| EntryStat::of_path(&tmp.path().join(name), false).unwrap();
        assert_eq!(tracker.target_for(&meta("a"), OsStr::new("d/a")), None);
        assert_eq!(
            tracker.target_for(&meta("single"), OsStr::new("single")),
            None
        );
        let later = tracker.target_for(&meta("b"), OsStr::new("d/b"));
        assert_eq!(later.as_deref(), Some(OsStr::new("d/a")));
    }
}
