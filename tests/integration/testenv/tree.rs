//! Trees seen whole: listings compared with a diff, snapshots of what must
//! not change, pcopy's temp files, and times set to the nanosecond.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

/// One line per entry below `root` (the root itself is `.`): path, a tab, type,
/// permission bits, mtime in nanoseconds, and the content hash or the
/// link target. Sorted by path.
pub fn listing(root: &Path) -> Vec<String> {
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
        .map(|(path, meta)| describe_entry(root, path, meta))
        .collect();
    lines.sort();
    lines
}

fn describe_entry(root: &Path, path: &Path, meta: &fs::Metadata) -> String {
    let rel = path.strip_prefix(root).expect("below root");
    let rel = if rel.as_os_str().is_empty() {
        OsString::from(".")
    } else {
        rel.as_os_str().to_os_string()
    };
    let file_type = meta.file_type();
    let what = if file_type.is_dir() {
        "dir".to_string()
    } else if file_type.is_symlink() {
        let target = fs::read_link(path).expect("readlink");
        format!("link -> {}", escaped(target.as_os_str()))
    } else if file_type.is_file() {
        let data = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        format!("file {} bytes {:016x}", data.len(), fnv1a(&data))
    } else {
        "special".to_string()
    };
    let mode = if file_type.is_symlink() {
        0
    } else {
        meta.mode() & 0o7777
    };
    format!(
        "{}\t{what} mode {mode:o} mtime {}.{:09}",
        escaped(&rel),
        meta.mtime(),
        meta.mtime_nsec()
    )
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Bytes shown with non-UTF-8 as `\xNN`, for listings and diffs.
pub fn escaped(name: &OsStr) -> String {
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
pub fn make_removable(root: &Path) {
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

/// Every entry below `root` with its inode, ctime and mtime in
/// nanoseconds: equal snapshots mean nothing was replaced or rewritten.
pub fn inode_snapshot(root: &Path) -> Vec<(PathBuf, u64, i64, i64, i64, i64)> {
    let mut entries: Vec<_> = walkdir::WalkDir::new(root)
        .into_iter()
        .map(|entry| {
            let entry = entry.expect("walk");
            let meta = entry.metadata().expect("lstat");
            (
                entry.path().to_path_buf(),
                meta.ino(),
                meta.ctime(),
                meta.ctime_nsec(),
                meta.mtime(),
                meta.mtime_nsec(),
            )
        })
        .collect();
    entries.sort();
    entries
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

/// Every entry below `root`, and `root` itself, with everything a write,
/// chmod, chown, create or delete would change: type, mode, owner, size,
/// mtime, ctime, and the content or link target.
pub fn snapshot(root: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    snapshot_into(root, &PathBuf::new(), &mut lines);
    lines.sort();
    lines
}

fn snapshot_into(root: &Path, rel: &Path, lines: &mut Vec<String>) {
    let path = root.join(rel);
    let meta = fs::symlink_metadata(&path).expect("lstat");
    let what = if meta.is_symlink() {
        let target = fs::read_link(&path).expect("readlink");
        format!("link {:?}", target.as_os_str().as_bytes())
    } else if meta.is_file() {
        format!("file {:?}", fs::read(&path).expect("read"))
    } else {
        "dir".to_string()
    };
    lines.push(format!(
        "{:?} {what} mode {:o} owner {}:{} size {} mtime {}.{} ctime {}.{}",
        rel.as_os_str().as_bytes(),
        meta.mode(),
        meta.uid(),
        meta.gid(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec()
    ));
    if meta.is_dir() {
        let mut names: Vec<OsString> = fs::read_dir(&path)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        names.sort();
        for name in names {
            snapshot_into(root, &rel.join(name), lines);
        }
    }
}
