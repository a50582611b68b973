//! Trees seen whole: listings compared with a diff, snapshots of what must
//! not change, pcopy's temp files; and the entries std cannot make
//! (fifos, times to the nanosecond).

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

/// What a line of a tree listing says about an entry, besides its path,
/// type and contents or link target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// Nothing more: for filesystems that keep neither modes nor times.
    Contents,
    /// Permission bits and mtime too: all that a copy reproduces.
    Copy,
    /// Owner, inode and ctime too: anything a write, chmod, chown,
    /// replace, create or delete would change.
    Everything,
}

/// One line per entry below `root` (the root itself is `.`): path, a tab,
/// type, the content's size and hash or the link target, and what `detail`
/// adds. Sorted by path.
pub fn listing_with(root: &Path, detail: Detail) -> Vec<String> {
    let entries: Vec<(PathBuf, fs::Metadata)> = walkdir::WalkDir::new(root)
        .into_iter()
        .map(|entry| {
            let entry = entry.expect("walk");
            let meta = entry.metadata().expect("lstat");
            (entry.path().to_path_buf(), meta)
        })
        .collect();
    // Hashing file contents dominates; rayon spreads it over the CPUs.
    let mut lines: Vec<String> = entries
        .par_iter()
        .map(|(path, meta)| describe_entry(root, path, meta, detail))
        .collect();
    lines.sort();
    lines
}

/// One line per entry below `root`, made by `line` from the entry's path
/// relative to `root` (`""` for `root` itself, listed when `with_root`),
/// sorted: for tests whose expectations read better as their own lines
/// than as a [`listing`].
pub fn lines_of_tree(
    root: &Path,
    with_root: bool,
    line: impl Fn(&str, &walkdir::DirEntry) -> String,
) -> Vec<String> {
    let mut lines: Vec<String> = walkdir::WalkDir::new(root)
        .min_depth(usize::from(!with_root))
        .into_iter()
        .map(|entry| {
            let entry = entry.expect("walk");
            let rel = entry.path().strip_prefix(root).expect("below root");
            line(&rel.display().to_string(), &entry)
        })
        .collect();
    lines.sort();
    lines
}

/// The listing of what a copy reproduces ([`Detail::Copy`]).
pub fn listing(root: &Path) -> Vec<String> {
    listing_with(root, Detail::Copy)
}

/// Everything about every entry below `root` and `root` itself
/// ([`Detail::Everything`]), to compare with [`assert_unchanged`] later.
pub fn snapshot(root: &Path) -> Vec<String> {
    listing_with(root, Detail::Everything)
}

fn describe_entry(root: &Path, path: &Path, meta: &fs::Metadata, detail: Detail) -> String {
    let rel = path.strip_prefix(root).expect("below root");
    let rel = if rel.as_os_str().is_empty() {
        OsString::from(".")
    } else {
        rel.as_os_str().to_os_string()
    };
    let mut line = format!("{}\t{}", escaped(&rel), what_entry_is(path, meta));
    if detail == Detail::Contents {
        return line;
    }
    let mode = if meta.file_type().is_symlink() {
        0
    } else {
        meta.mode() & 0o7777
    };
    line += &format!(
        " mode {mode:o} mtime {}.{:09}",
        meta.mtime(),
        meta.mtime_nsec()
    );
    if detail == Detail::Everything {
        line += &format!(
            " owner {}:{} inode {} ctime {}.{:09}",
            meta.uid(),
            meta.gid(),
            meta.ino(),
            meta.ctime(),
            meta.ctime_nsec()
        );
    }
    line
}

/// The type, and the contents' size and hash, the link target or the
/// device number.
fn what_entry_is(path: &Path, meta: &fs::Metadata) -> String {
    let file_type = meta.file_type();
    if file_type.is_dir() {
        "dir".to_string()
    } else if file_type.is_symlink() {
        let target = fs::read_link(path).expect("readlink");
        format!("link -> {}", escaped(target.as_os_str()))
    } else if file_type.is_file() {
        let data = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        format!("file {} bytes {:016x}", data.len(), fnv1a(&data))
    } else if file_type.is_fifo() {
        "fifo".to_string()
    } else if file_type.is_socket() {
        "socket".to_string()
    } else if file_type.is_char_device() {
        format!("char device {:x}", meta.rdev())
    } else {
        format!("block device {:x}", meta.rdev())
    }
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Bytes shown with non-UTF-8 as `\xNN`, for listings and diffs.
fn escaped(name: &OsStr) -> String {
    name.as_bytes()
        .utf8_chunks()
        .map(|chunk| {
            let bad: String = chunk
                .invalid()
                .iter()
                .map(|b| format!("\\x{b:02x}"))
                .collect();
            format!("{}{bad}", chunk.valid())
        })
        .collect()
}

/// Asserts two trees are equal in content, types, modes, mtimes and link
/// targets, with a diff of their listings if not.
pub fn assert_same_tree(expected: &Path, actual: &Path) {
    assert_listings_equal(&listing(expected), &listing(actual));
}

/// Asserts two listings are equal, printing a diff if not.
pub fn assert_listings_equal(expected: &[String], actual: &[String]) {
    if expected != actual {
        panic!(
            "trees differ (- expected, + actual):\n{}",
            diff(expected, actual)
        );
    }
}

/// Asserts that nothing in `root` changed since its [`snapshot`] `before`
/// (`what` says when), with a diff if something did.
pub fn assert_unchanged(before: &[String], root: &Path, what: &str) {
    let after = snapshot(root);
    if before != after {
        panic!(
            "{} changed {what} (- before, + after):\n{}",
            root.display(),
            diff(before, &after)
        );
    }
}

/// A line diff of two sorted listings.
fn diff(expected: &[String], actual: &[String]) -> String {
    let path_of = |line: &String| line.split('\t').next().unwrap_or_default().to_string();
    let (mut i, mut j) = (0, 0);
    let mut out = String::new();
    while i < expected.len() || j < actual.len() {
        let order = match (expected.get(i), actual.get(j)) {
            (Some(e), Some(a)) => path_of(e).cmp(&path_of(a)),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                out += &format!("- {}\n", expected[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out += &format!("+ {}\n", actual[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                if expected[i] != actual[j] {
                    out += &format!("- {}\n+ {}\n", expected[i], actual[j]);
                }
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// Entries below `root` whose name starts with pcopy's temp prefix.
pub fn temp_files(root: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().as_bytes().starts_with(b".pcopy-tmp."))
        .map(|e| e.path().to_path_buf())
        .collect()
}

/// Makes every directory below `root` writable and searchable again, each
/// before it is read, so the temp dir can be removed after a test made
/// parts of it read-only or unreadable.
pub(super) fn make_removable(root: &Path) {
    let Ok(meta) = fs::symlink_metadata(root) else {
        return;
    };
    if meta.is_dir() {
        let _ = fs::set_permissions(root, fs::Permissions::from_mode(0o755));
        for entry in fs::read_dir(root).into_iter().flatten().flatten() {
            make_removable(&entry.path());
        }
    }
}

/// Makes a fifo at `path`.
pub fn mkfifo(path: &Path, mode: u32) {
    let made = rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(mode),
        0,
    );
    made.unwrap_or_else(|e| panic!("mkfifo {}: {e}", path.display()));
}

/// Sets a file's modification (and access) time, not following symlinks.
pub fn set_mtime(path: &Path, secs: i64, nanos: i64) {
    let time = rustix::fs::Timespec {
        tv_sec: secs,
        tv_nsec: nanos as _,
    };
    let times = rustix::fs::Timestamps {
        last_access: time,
        last_modification: time,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &times,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .expect("utimensat");
}
