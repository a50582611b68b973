//! The plan: where each source goes, by rsync's trailing-slash rule (or,
//! with `-R` and `--files-from`, by its path: [`relative`]), and the checks
//! that refuse a destination that would overwrite or swallow its own
//! source, all before anything is written.
//!
//! Every destination path of a run is relative to one directory, the
//! destination root, which is what each worker's copy engine opens. Owns
//! the resolved command line ([`Plan`], one [`Root`] per source), which
//! the walk and `--delete` start from. It calls no other stage, only
//! `ui::escape` and `exit_codes` for its errors.

use std::ffi::{OsStr, OsString};
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::exit_codes::{ExitStatus, Fatal};
use crate::ui::escape::{Escaped, io_reason};
pub(crate) use relative::Rejected;

pub(crate) mod relative;

pub(crate) mod aside;

/// One source and where it lands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Root {
    /// The source as given on the command line.
    pub(crate) src: PathBuf,
    /// Its destination relative to [`Plan::dst_root`]: empty for the root
    /// itself (the contents of `dir/`), else a single name, or with `-R`
    /// and `--files-from` a path whose directories are made on the way.
    pub(crate) rel_dst: OsString,
    /// A directory to walk; otherwise a single entry (file, symlink, special).
    pub(crate) is_dir: bool,
    /// A directory made without its contents (`--files-from` without
    /// `-r`: rsync's implied `--dirs`).
    pub(crate) flat: bool,
}

/// The resolved command line: what to copy where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The directory every destination path is relative to.
    pub(crate) dst_root: PathBuf,
    /// Whether `dst_root` does not exist yet and must be created.
    pub(crate) create_dst_root: bool,
    /// `--mkpath`: create the missing parents of `dst_root` too.
    pub(crate) mkpath: bool,
    /// Sources left out before the copy (`--files-from` lines that leave
    /// the source directory, relative sources that cannot be read): each
    /// is reported as a failed entry.
    pub(crate) rejected: Vec<Rejected>,
    pub(crate) roots: Vec<Root>,
}

impl Plan {
    /// Without recursion under `--files-from`: each listed directory is
    /// made, with its metadata, but not entered, as rsync's `--files-from`
    /// implies `--dirs` without `-r`.
    pub(crate) fn flatten_directories(&mut self) {
        for root in self.roots.iter_mut().filter(|root| root.is_dir) {
            root.flat = true;
        }
    }

    /// Without recursion (`--no-recursive`): takes the directory sources
    /// out, as rsync skips them, and returns them.
    pub(crate) fn leave_out_directories(&mut self) -> Vec<PathBuf> {
        let (dirs, rest) = std::mem::take(&mut self.roots)
            .into_iter()
            .partition(|root| root.is_dir);
        self.roots = rest;
        dirs.into_iter().map(|root: Root| root.src).collect()
    }

    /// Whether nothing is left to copy or report.
    pub(crate) fn is_empty(&self) -> bool {
        self.roots.is_empty() && self.rejected.is_empty()
    }
}

/// A source after its first `stat`.
struct Source {
    path: PathBuf,
    /// `dir/`, `dir/.`, `.` or `..`: the contents go to the destination.
    contents: bool,
    meta: Metadata,
}

/// Resolves sources and destination, with no effect on the file system.
/// With `mkpath`, DST's missing parents are to be created rather than an
/// error.
pub(crate) fn resolve(
    sources: &[OsString],
    destination: &OsStr,
    dereference: bool,
    mkpath: bool,
) -> Result<Plan, Fatal> {
    let sources: Vec<Source> = sources
        .iter()
        .map(|raw| inspect(raw, dereference))
        .collect::<Result<_, _>>()?;
    let dst = PathBuf::from(destination);
    let dst_meta = match fs::metadata(&dst) {
        Ok(meta) => Some(meta),
        Err(err) if err.kind() == io::ErrorKind::NotFound => None,
        Err(err) => return Err(dest_error(&dst, "cannot access destination", &err)),
    };
    let dst_is_dir = dst_meta.as_ref().is_some_and(Metadata::is_dir);
    let single_entry = sources.len() == 1 && !sources[0].meta.is_dir();
    if single_entry && !dst_is_dir && !ends_with_slash(destination) {
        return file_to_file(&sources[0], &dst, mkpath);
    }
    if dst_meta.is_none() && !mkpath {
        require_parent(&dst)?;
    }
    if dst_meta.is_some() && !dst_is_dir {
        let why = if sources.iter().any(|s| s.meta.is_dir()) {
            "cannot copy a directory over an existing file"
        } else {
            "not a directory (several sources go into a directory)"
        };
        return Err(bad(&dst, why));
    }
    // A source given twice (`S/ S/`) is walked once: the later one could
    // only find every name taken.
    let mut seen = std::collections::HashSet::new();
    let roots = sources
        .iter()
        .filter(|source| seen.insert((source.meta.dev(), source.meta.ino(), rel_dst_of(source))))
        .map(|source| {
            let rel_dst = rel_dst_of(source);
            check_root(source, &dst, &rel_dst)?;
            Ok(Root {
                src: source.path.clone(),
                rel_dst,
                is_dir: source.meta.is_dir(),
                flat: false,
            })
        })
        .collect::<Result<_, Fatal>>()?;
    Ok(Plan {
        dst_root: dst,
        create_dst_root: dst_meta.is_none(),
        mkpath,
        roots,
        rejected: Vec::new(),
    })
}

fn inspect(raw: &OsStr, dereference: bool) -> Result<Source, Fatal> {
    let path = PathBuf::from(raw);
    let contents = wants_contents(raw);
    let meta = if contents || dereference {
        fs::metadata(&path)
    } else {
        fs::symlink_metadata(&path)
    };
    let meta = meta.map_err(|err| {
        let why = format!("cannot read source: {}", io_reason(&err));
        bad(&path, &why)
    })?;
    if contents && !meta.is_dir() {
        return Err(bad(&path, "not a directory"));
    }
    Ok(Source {
        path,
        contents,
        meta,
    })
}

/// rsync's rule: a trailing slash (or a path that names no entry of its
/// own, like `.`) means "the contents of".
fn wants_contents(raw: &OsStr) -> bool {
    let bytes = raw.as_bytes();
    bytes.ends_with(b"/")
        || bytes == b"."
        || bytes == b".."
        || bytes.ends_with(b"/.")
        || bytes.ends_with(b"/..")
}

fn ends_with_slash(raw: &OsStr) -> bool {
    raw.as_bytes().ends_with(b"/")
}

/// Where a source goes below DST: its contents into DST itself, else
/// its name.
fn rel_dst_of(source: &Source) -> OsString {
    match source.contents {
        true => OsString::new(),
        false => name_of(&source.path),
    }
}

/// The last component of a path that [`wants_contents`] rejected, which
/// always has one.
fn name_of(path: &Path) -> OsString {
    path.file_name().unwrap_or(path.as_os_str()).to_os_string()
}

/// One non-directory source copied to the name DST (which is not a directory).
fn file_to_file(source: &Source, dst: &Path, mkpath: bool) -> Result<Plan, Fatal> {
    let Some(name) = dst.file_name() else {
        return Err(bad(dst, "not a valid destination file name"));
    };
    let parent = match dst.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let missing = match fs::metadata(&parent) {
        Ok(meta) if meta.is_dir() => false,
        Ok(_) => return Err(dest_error(dst, "cannot create", &not_a_directory())),
        Err(err) if mkpath && err.kind() == io::ErrorKind::NotFound => true,
        Err(err) => return Err(dest_error(dst, "cannot create", &err)),
    };
    refuse_same_entry(source, dst)?;
    Ok(Plan {
        dst_root: parent,
        create_dst_root: missing,
        mkpath,
        rejected: Vec::new(),
        roots: vec![Root {
            src: source.path.clone(),
            rel_dst: name.to_os_string(),
            is_dir: false,
            flat: false,
        }],
    })
}

/// The checks of one source against its destination `dst/rel_dst`.
fn check_root(source: &Source, dst: &Path, rel_dst: &OsStr) -> Result<(), Fatal> {
    let target = dst.join(rel_dst);
    if !source.meta.is_dir() {
        return refuse_same_entry(source, &target);
    }
    // A non-directory at `target` is an entry that changed type: the walk
    // replaces it (never following a symlink there), as rsync does.
    // Both sides canonical, so `dst` reached through a symlink into the
    // source is caught as well.
    let canonical_src = fs::canonicalize(&source.path).map_err(|err| {
        bad(
            &source.path,
            &format!("cannot read source: {}", io_reason(&err)),
        )
    })?;
    let canonical_target = canonical_destination(dst)?.join(rel_dst);
    if canonical_target == canonical_src || same_inode(&source.meta, &target) {
        return Err(bad(
            &source.path,
            "source and destination are the same directory",
        ));
    }
    if canonical_target.starts_with(&canonical_src) {
        let why = format!(
            "destination is inside the source {}",
            Escaped::path(&source.path)
        );
        return Err(bad(dst, &why));
    }
    Ok(())
}

/// The canonical form of the destination, which may not exist yet: its
/// deepest existing ancestor's, with the missing names after it.
fn canonical_destination(dst: &Path) -> Result<PathBuf, Fatal> {
    let mut missing = Vec::new();
    let mut at = dst;
    loop {
        match fs::canonicalize(at) {
            Ok(path) => {
                return Ok(missing
                    .iter()
                    .rev()
                    .fold(path, |path, name| path.join(name)));
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                missing.push(at.file_name().unwrap_or(at.as_os_str()));
                at = match at.parent() {
                    Some(parent) if !parent.as_os_str().is_empty() => parent,
                    _ if at == Path::new(".") => {
                        return Err(dest_error(dst, "cannot access destination", &err));
                    }
                    _ => Path::new("."),
                };
            }
            Err(err) => return Err(dest_error(dst, "cannot access destination", &err)),
        }
    }
}

/// Without `--mkpath`, only DST's last name may be missing (like `mkdir`):
/// a mistyped parent is an error, before anything is written.
fn require_parent(dst: &Path) -> Result<(), Fatal> {
    let parent = match dst.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => return Ok(()),
    };
    match fs::metadata(parent) {
        Ok(_) => Ok(()),
        Err(err) => Err(dest_error(dst, "cannot create destination directory", &err)),
    }
}

/// Refuses to copy an entry onto itself (the same inode under the
/// destination name, as the copy would replace what it reads).
fn refuse_same_entry(source: &Source, target: &Path) -> Result<(), Fatal> {
    if same_inode(&source.meta, target) {
        return Err(bad(
            &source.path,
            "source and destination are the same file",
        ));
    }
    Ok(())
}

fn same_inode(meta: &Metadata, target: &Path) -> bool {
    let target = if meta.is_dir() {
        fs::metadata(target)
    } else {
        fs::symlink_metadata(target)
    };
    target.is_ok_and(|t| t.dev() == meta.dev() && t.ino() == meta.ino())
}

fn not_a_directory() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOTDIR)
}

fn bad(path: &Path, why: &str) -> Fatal {
    Fatal::new(
        ExitStatus::BadPath,
        format!("{}: {why}", Escaped::path(path)),
    )
}

fn dest_error(path: &Path, what: &str, err: &io::Error) -> Fatal {
    Fatal::new(
        ExitStatus::DestinationIo,
        format!("{}: {what}: {}", Escaped::path(path), io_reason(err)),
    )
}

/// Creates the destination root if the plan says so (only the last
/// component, like `mkdir`: a mistyped parent is an error, not a new tree).
pub(crate) fn create_destination(plan: &Plan) -> Result<(), Fatal> {
    if !plan.create_dst_root {
        return Ok(());
    }
    let created = match plan.mkpath {
        true => fs::create_dir_all(&plan.dst_root),
        false => fs::create_dir(&plan.dst_root),
    };
    match created {
        Ok(()) => Ok(()),
        // Created by someone else since `resolve`: fine if it is a directory.
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists && plan.dst_root.is_dir() => Ok(()),
        Err(err) => Err(dest_error(
            &plan.dst_root,
            "cannot create destination directory",
            &err,
        )),
    }
}

#[cfg(test)]
mod tests;
