//! The directories beside the copy: `--backup-dir`, refused inside a
//! source before anything is written and created before the run, and the
//! `--link-dest`/`--compare-dest`/`--copy-dest` directories, of which a
//! missing one is a warning (rsync's). Relative ones are relative to the
//! destination root, as in rsync.

use std::ffi::OsStr;
use std::fs;

use std::path::{Component, Path, PathBuf};

use super::{Plan, bad, canonical_destination, dest_error};
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

/// Refuses a `--backup-dir` inside a directory source (status 3): the
/// walk would copy backups made during the run, and a rerun back them up
/// again.
fn check_backup_dir(plan: &Plan, dir: &OsStr) -> Result<(), Fatal> {
    let wanted = canonical_missing(&canonical_destination(&plan.dst_root)?.join(dir));
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

/// Creates the `--backup-dir` (and its missing parents) once the
/// destination root exists.
fn create_backup_dir(plan: &Plan, dir: &OsStr) -> Result<(), Fatal> {
    let path = plan.dst_root.join(dir);
    fs::create_dir_all(&path).map_err(|err| dest_error(&path, "cannot create --backup-dir", &err))
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
