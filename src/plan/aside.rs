//! The directories beside the copy: `--backup-dir`, refused inside a
//! source before anything is written and created before the run, and the
//! `--link-dest`/`--compare-dest`/`--copy-dest` directories, of which a
//! missing one is a warning (rsync's). Relative ones are relative to the
//! destination root, as in rsync.

use std::ffi::OsStr;
use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use super::{Plan, bad, canonical_destination, dest_error};
use crate::copy::backup_dir::{self, Blocked, IsDestination, Place};
use crate::exit_codes::Fatal;
use crate::job::CopyOptions;
use crate::ui::escape::Escaped;

/// Makes the destination ready before the walk: refuses a `--backup-dir`
/// inside a source, then (unless dry running) creates the destination
/// root and the `--backup-dir`. Returns a warning for each missing basis
/// directory.
pub(crate) fn prepare(plan: &Plan, copy: &CopyOptions) -> Result<Vec<String>, Fatal> {
    let backup_dir = copy.backup.as_ref().and_then(|b| b.dir.as_deref());
    if let Some(dir) = backup_dir {
        check_backup_dir(plan, dir)?;
    }
    if !copy.dry_run {
        super::create_destination(plan)?;
        if let Some(dir) = backup_dir {
            create_backup_dir(plan, dir)?;
        }
    }
    let Some(basis) = &copy.basis else {
        return Ok(Vec::new());
    };
    let warnings = missing_basis_dirs(plan, &basis.dirs)
        .into_iter()
        .map(|dir| {
            let dir = Escaped::path(Path::new(dir));
            format!("{} arg does not exist: {dir}", basis.flag())
        });
    Ok(warnings.collect())
}

/// Refuses a `--backup-dir` that is DST (each backup would be made over,
/// or deleted as, what it keeps) or inside a directory source (status 3):
/// the walk would copy backups made during the run, and a rerun back them
/// up again.
fn check_backup_dir(plan: &Plan, dir: &OsStr) -> Result<(), Fatal> {
    let dst = canonical_destination(&plan.dst_root)?;
    let wanted = canonical_missing(&dst.join(dir));
    let is_dst = match open_root(plan) {
        Ok(root) => backup_dir::locate(root.as_fd(), dir) == Err(IsDestination),
        // DST is made by this run: no link can lead to it yet.
        Err(_) => wanted == dst,
    };
    if is_dst {
        return Err(is_destination(dir));
    }
    if holds_destination(plan, dir, &dst, &wanted) {
        return Err(bad(Path::new(dir), backup_dir::HOLDS_DESTINATION));
    }
    for root in plan.roots.iter().filter(|r| r.is_dir) {
        let Ok(src) = fs::canonicalize(&root.src) else {
            continue;
        };
        if wanted.starts_with(&src) {
            let why = format!(
                "--backup-dir is inside the source {}",
                Escaped::path(&root.src)
            );
            return Err(bad(Path::new(dir), &why));
        }
    }
    Ok(())
}

/// Whether the `--backup-dir` is a directory above DST: by identity when
/// both exist (a directory beneath DST never is, and is not followed to
/// find out), else by the canonical paths.
fn holds_destination(plan: &Plan, dir: &OsStr, dst: &Path, wanted: &Path) -> bool {
    let Ok(root) = open_root(plan) else {
        return dst.starts_with(wanted);
    };
    let Ok(Place::Outside(path)) = backup_dir::locate(root.as_fd(), dir) else {
        return false;
    };
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    match rustix::fs::openat(&root, &path, flags, Mode::empty()) {
        Ok(fd) => backup_dir::holds(fd.as_fd(), root.as_fd()).unwrap_or(false),
        // Missing: made by this run, so below what exists, never above DST.
        Err(_) => false,
    }
}

/// Creates the `--backup-dir` (and its missing parents) once the
/// destination root exists: beneath DST one directory at a time without
/// following a symlink; outside DST, where the user named it.
fn create_backup_dir(plan: &Plan, dir: &OsStr) -> Result<(), Fatal> {
    let root = open_root(plan)
        .map_err(|err| dest_error(&plan.dst_root, "cannot open destination", &err.into()))?;
    match backup_dir::locate(root.as_fd(), dir) {
        Err(IsDestination) => Err(is_destination(dir)),
        Ok(Place::Beneath(rel)) => {
            backup_dir::create_beneath(root.as_fd(), &rel).map_err(|blocked| {
                let Blocked { at, err } = blocked;
                let path = plan.dst_root.join(at);
                match err {
                    Errno::NOTDIR | Errno::LOOP => bad(
                        &path,
                        "not a directory: --backup-dir is never followed out of DST",
                    ),
                    err => dest_error(&path, "cannot create --backup-dir", &err.into()),
                }
            })
        }
        Ok(Place::Outside(_)) => {
            let path = plan.dst_root.join(dir);
            fs::create_dir_all(&path)
                .map_err(|err| dest_error(&path, "cannot create --backup-dir", &err))?;
            // A link outside DST may still lead back to it.
            match backup_dir::open(root.as_fd(), dir) {
                Ok(_) => Ok(()),
                Err(err) if err.kind() == std::io::ErrorKind::Other => {
                    Err(bad(Path::new(dir), &err.to_string()))
                }
                Err(err) => Err(dest_error(&path, "cannot open --backup-dir", &err)),
            }
        }
    }
}

fn open_root(plan: &Plan) -> Result<OwnedFd, Errno> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    rustix::fs::open(&plan.dst_root, flags, Mode::empty())
}

fn is_destination(dir: &OsStr) -> Fatal {
    bad(Path::new(dir), "--backup-dir is the destination directory")
}

/// The basis directories that do not exist (or are no directories), for
/// a warning each; the workers leave them out.
fn missing_basis_dirs<'a>(plan: &Plan, dirs: &'a [std::ffi::OsString]) -> Vec<&'a OsStr> {
    (dirs.iter())
        .filter(|dir| !plan.dst_root.join(dir).is_dir())
        .map(|dir| dir.as_os_str())
        .collect()
}

/// `path` made canonical as far as it exists; the rest is added with `..`
/// and `.` resolved by name.
fn canonical_missing(path: &Path) -> PathBuf {
    if let Ok(done) = fs::canonicalize(path) {
        return done;
    }
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    while let Some(name) = existing.file_name().map(OsStr::to_os_string) {
        rest.push(name);
        existing.pop();
        if let Ok(done) = fs::canonicalize(&existing) {
            existing = done;
            break;
        }
    }
    for name in rest.iter().rev() {
        existing.push(name);
    }
    lexical(&existing)
}

fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}
