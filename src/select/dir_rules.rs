//! Per-directory filter rules (rsync's `dir-merge`): what each directory's
//! merge files hold, read beneath the open directory, and how a chain of
//! them, from an entry's directory up to the top of the copy, decides at
//! the place of each `dir-merge` rule (see `Filter`).

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;

use super::rsync_rules::{self, DirFileRules, DirMerge};

/// A merge file larger than this is refused: rules files are small, and
/// reading a huge file by mistake would cost memory in every directory.
const MAX_RULES_FILE: u64 = 1 << 20;

/// The dir-merge files of one directory, read when the walk (or
/// `--delete`) enters it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DirRules {
    /// The directory's path below DST, where its anchored patterns start.
    pub(crate) base: Vec<u8>,
    /// For each dir-merge rule of the filter, in its order, the rules of
    /// its file here; `None` where there is no such file.
    pub(crate) files: Vec<Option<DirFileRules>>,
}

/// A merge file that could not be read or holds a bad rule: its name and
/// why. The directory's other rules still apply; the run counts a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadRulesFile {
    pub(crate) name: OsString,
    pub(crate) reason: String,
}

impl DirRules {
    /// Reads the files `merges` name in `dir` (the directory `base` below
    /// DST), opened beneath its descriptor without following a symlink.
    /// `present` says whether the directory's listing has a name, so a
    /// directory without merge files costs no call. `None`: no file here.
    pub(crate) fn read(
        dir: BorrowedFd<'_>,
        base: &OsStr,
        merges: &[DirMerge],
        present: &dyn Fn(&OsStr) -> bool,
        bad: &mut Vec<BadRulesFile>,
    ) -> Option<DirRules> {
        let mut any = false;
        let files = merges
            .iter()
            .map(|merge| {
                if !present(&merge.name) {
                    return None;
                }
                let read = read_file(dir, &merge.name).and_then(|bytes| match bytes {
                    Some(bytes) => rsync_rules::parse_dir_file(&bytes, merge).map(Some),
                    None => Ok(None),
                });
                match read {
                    Ok(rules) => {
                        any |= rules.is_some();
                        rules
                    }
                    Err(reason) => {
                        let name = merge.name.clone();
                        bad.push(BadRulesFile { name, reason });
                        None
                    }
                }
            })
            .collect();
        any.then(|| DirRules {
            base: base.as_bytes().to_vec(),
            files,
        })
    }

    /// Whether an entry at `rel` is in this directory itself (not below).
    pub(crate) fn holds(&self, rel: &[u8]) -> bool {
        let parent = match rel.iter().rposition(|&b| b == b'/') {
            Some(slash) => &rel[..slash],
            None => &[],
        };
        parent == self.base.as_slice()
    }
}

/// The bytes of the regular file `name` in `dir`; `None` when there is
/// none (vanished since the listing).
fn read_file(dir: BorrowedFd<'_>, name: &OsStr) -> Result<Option<Vec<u8>>, String> {
    let flags =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = match rustix::fs::openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(Errno::LOOP) => return Err("a dir-merge file is a symbolic link; not read".into()),
        Err(err) => return Err(format!("cannot read: {}", reason(err))),
    };
    let st = rustix::fs::fstat(&fd).map_err(|e| format!("cannot read: {}", reason(e)))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err("not a regular file; not read".into());
    }
    if st.st_size as u64 > MAX_RULES_FILE {
        return Err(format!("larger than {MAX_RULES_FILE} bytes; not read"));
    }
    let mut bytes = Vec::new();
    std::fs::File::from(fd)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {}", crate::ui::escape::io_reason(&e)))?;
    Ok(Some(bytes))
}

fn reason(err: Errno) -> String {
    crate::ui::escape::io_reason(&err.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::select::rsync_rules::{Parsed, parse};
    use std::os::fd::AsFd;

    fn merge(rule: &str) -> DirMerge {
        match parse(OsStr::new(rule)).unwrap().as_slice() {
            [Parsed::DirMerge(merge)] => merge.clone(),
            other => panic!("{rule}: {other:?}"),
        }
    }

    #[test]
    fn files_are_read_beneath_the_directory_and_symlinks_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".rules"), "- *.o\n!\n+ keep\n").unwrap();
        std::fs::write(dir.path().join("target"), "- x\n").unwrap();
        std::os::unix::fs::symlink("target", dir.path().join(".linked")).unwrap();
        let fd = std::fs::File::open(dir.path()).unwrap();
        let fifo = dir.path().join(".fifo");
        let fifo_mode = Mode::from_raw_mode(0o644);
        rustix::fs::mknodat(rustix::fs::CWD, &fifo, FileType::Fifo, fifo_mode, 0).unwrap();
        let merges = [
            merge(": .rules"),
            merge(":n .linked"),
            merge(": .absent"),
            merge(": .fifo"),
        ];
        let mut bad = Vec::new();
        let all = |_: &OsStr| true;
        let rules = DirRules::read(fd.as_fd(), OsStr::new("a/b"), &merges, &all, &mut bad).unwrap();
        assert_eq!(rules.base, b"a/b");
        let read = rules.files[0].as_ref().unwrap();
        assert!(read.clears && read.rules.len() == 1);
        assert_eq!(rules.files[1..], [None, None, None]);
        assert_eq!(bad.len(), 2);
        assert!(bad[0].reason.contains("symbolic link"), "{:?}", bad);
        // Opened without blocking, a fifo is refused rather than waited on.
        assert!(bad[1].reason.contains("not a regular file"), "{:?}", bad);
        assert!(rules.holds(b"a/b/c") && !rules.holds(b"a/b/c/d") && !rules.holds(b"a/bc"));
        let none = |_: &OsStr| false;
        assert_eq!(
            DirRules::read(fd.as_fd(), OsStr::new(""), &merges, &none, &mut bad),
            None
        );
    }
}
