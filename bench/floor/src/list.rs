//! The prebuilt file list: every directory of the tree, each followed by its
//! regular files with what the copy needs (mode, size, times).
//!
//! Format: NUL-terminated fields. A directory is `D`, its path relative to
//! SRC (`.` for SRC itself). A file is `F`, mode, size, atime seconds,
//! atime nanoseconds, mtime seconds, mtime nanoseconds (all decimal) and its
//! name; it belongs to the directory before it. Names are raw bytes.

use std::ffi::{CString, OsStr};
use std::fs;
use std::io::{BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// A regular file to copy, relative to its directory.
#[derive(Debug)]
pub struct FileEntry {
    pub name: CString,
    pub mode: u32,
    pub size: u64,
    /// atime and mtime, seconds and nanoseconds.
    pub times: [(i64, i64); 2],
}

/// A directory (relative to the tree's root) and the files directly in it.
#[derive(Debug)]
pub struct DirGroup {
    pub rel: CString,
    pub files: Vec<FileEntry>,
}

/// Walks `src` and writes its list to `list_path`.
pub fn write_list(src: &Path, list_path: &Path) -> Result<(), String> {
    let file = fs::File::create(list_path)
        .map_err(|e| format!("cannot create {}: {e}", list_path.display()))?;
    let mut out = BufWriter::new(file);
    write_dir(src, Path::new("."), &mut out)?;
    out.flush()
        .map_err(|e| format!("cannot write {}: {e}", list_path.display()))
}

fn write_dir(src: &Path, rel: &Path, out: &mut impl Write) -> Result<(), String> {
    let dir = src.join(rel);
    let io_err = |e: std::io::Error| format!("{}: {e}", dir.display());
    field(out, b"D")?;
    field(out, rel.as_os_str().as_bytes())?;
    let mut subdirs = Vec::new();
    for entry in fs::read_dir(&dir).map_err(io_err)? {
        let entry = entry.map_err(io_err)?;
        let meta = entry.metadata().map_err(io_err)?;
        if meta.is_dir() {
            subdirs.push(entry.file_name());
        } else if meta.is_file() {
            let numbers = [
                meta.mode() as i64 & 0o7777,
                meta.size() as i64,
                meta.atime(),
                meta.atime_nsec(),
                meta.mtime(),
                meta.mtime_nsec(),
            ];
            field(out, b"F")?;
            for n in numbers {
                field(out, n.to_string().as_bytes())?;
            }
            field(out, entry.file_name().as_bytes())?;
        }
    }
    for name in subdirs {
        let child = if rel == Path::new(".") {
            Path::new(&name).to_path_buf()
        } else {
            rel.join(&name)
        };
        write_dir(src, &child, out)?;
    }
    Ok(())
}

fn field(out: &mut impl Write, bytes: &[u8]) -> Result<(), String> {
    out.write_all(bytes)
        .and_then(|()| out.write_all(b"\0"))
        .map_err(|e| format!("cannot write list: {e}"))
}

/// Reads a list written by [`write_list`].
pub fn read_list(list_path: &Path) -> Result<Vec<DirGroup>, String> {
    let data =
        fs::read(list_path).map_err(|e| format!("cannot read {}: {e}", list_path.display()))?;
    let mut fields = data.split(|&b| b == 0);
    let mut groups: Vec<DirGroup> = Vec::new();
    let bad = || format!("{}: not a floor list", list_path.display());
    while let Some(tag) = fields.next() {
        match tag {
            b"D" => {
                let rel = fields.next().ok_or_else(bad)?;
                groups.push(DirGroup {
                    rel: c_string(rel).ok_or_else(bad)?,
                    files: Vec::new(),
                });
            }
            b"F" => {
                let mut numbers = [0i64; 6];
                for n in &mut numbers {
                    let text = fields.next().ok_or_else(bad)?;
                    *n = std::str::from_utf8(text)
                        .ok()
                        .and_then(|t| t.parse().ok())
                        .ok_or_else(bad)?;
                }
                let name = c_string(fields.next().ok_or_else(bad)?).ok_or_else(bad)?;
                let group = groups.last_mut().ok_or_else(bad)?;
                group.files.push(FileEntry {
                    name,
                    mode: numbers[0] as u32,
                    size: numbers[1] as u64,
                    times: [(numbers[2], numbers[3]), (numbers[4], numbers[5])],
                });
            }
            // The split after the last NUL.
            b"" if fields.clone().next().is_none() => {}
            _ => return Err(bad()),
        }
    }
    Ok(groups)
}

fn c_string(bytes: &[u8]) -> Option<CString> {
    CString::new(OsStr::from_bytes(bytes).as_bytes()).ok()
}
