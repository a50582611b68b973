//! Checks rsync's backup flags (`--link-dest` and its kin, `-b`,
//! `--remove-source-files`, `--bwlimit`) and turns them into the engine's
//! options.

use std::ffi::OsString;

use crate::cli::{BackupArgs, WorkerKind};
use crate::exit_codes::{ExitStatus, Fatal};
use crate::job::{BackupOptions, BasisDirs, BasisKind};

/// rsync's limit on `--link-dest`, `--compare-dest` and `--copy-dest`
/// directories together.
pub(crate) const MAX_BASIS_DIRS: usize = 20;

/// The engine's options for the backup flags.
pub(super) struct Backups {
    pub(super) basis: Option<BasisDirs>,
    pub(super) backup: Option<BackupOptions>,
    pub(super) remove_source: bool,
    pub(super) inplace: bool,
    pub(super) bwlimit: Option<u64>,
}

/// Checks the flags; `jobs` workers of `kind` share `--bwlimit`.
pub(super) fn resolve(args: &BackupArgs, jobs: usize, kind: WorkerKind) -> Result<Backups, Fatal> {
    Ok(Backups {
        basis: basis_dirs(args)?,
        backup: backup_options(args)?,
        remove_source: args.remove_source_files,
        inplace: args.inplace,
        bwlimit: args.bwlimit.filter(|&rate| rate > 0).map(|rate| {
            // Thread workers share one bucket in this process; each worker
            // process has its own, with an equal share of the rate.
            match kind {
                WorkerKind::Thread => rate,
                WorkerKind::Process => (rate / jobs as u64).max(1),
            }
        }),
    })
}

fn basis_dirs(args: &BackupArgs) -> Result<Option<BasisDirs>, Fatal> {
    let (kind, dirs) = match () {
        _ if !args.link_dest.is_empty() => (BasisKind::Link, &args.link_dest),
        _ if !args.compare_dest.is_empty() => (BasisKind::Compare, &args.compare_dest),
        _ if !args.copy_dest.is_empty() => (BasisKind::Copy, &args.copy_dest),
        _ => return Ok(None),
    };
    if dirs.len() > MAX_BASIS_DIRS {
        return Err(usage(format!(
            "at most {MAX_BASIS_DIRS} --link-dest, --compare-dest or --copy-dest directories"
        )));
    }
    if dirs.iter().any(|dir| dir.is_empty()) {
        return Err(usage(
            "an empty --link-dest, --compare-dest or --copy-dest directory".into(),
        ));
    }
    Ok(Some(BasisDirs {
        kind,
        dirs: dirs.clone(),
    }))
}

fn backup_options(args: &BackupArgs) -> Result<Option<BackupOptions>, Fatal> {
    if !args.backup && args.backup_dir.is_none() {
        return Ok(None);
    }
    let suffix = match (&args.suffix, &args.backup_dir) {
        (Some(suffix), _) => suffix.clone(),
        (None, Some(_)) => OsString::new(),
        (None, None) => OsString::from("~"),
    };
    if suffix.as_encoded_bytes().contains(&b'/') {
        return Err(usage("--suffix cannot contain a slash".into()));
    }
    if args.backup_dir.is_none() && suffix.is_empty() {
        // rsync refuses this too: the backup would be the file itself.
        return Err(usage(
            "-b without --backup-dir needs a non-empty --suffix".into(),
        ));
    }
    if args.backup_dir.as_ref().is_some_and(|dir| dir.is_empty()) {
        return Err(usage("--backup-dir cannot be empty".into()));
    }
    Ok(Some(BackupOptions {
        dir: args.backup_dir.clone(),
        suffix,
    }))
}

fn usage(message: String) -> Fatal {
    Fatal::new(ExitStatus::Usage, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Args;

    fn backups(argv: &[&str]) -> Result<Backups, Fatal> {
        let args = Args::parse_from(["pcopy"].iter().chain(argv).chain(&["a", "b"])).unwrap();
        resolve(&args.backups, 4, WorkerKind::Process)
    }

    #[test]
    fn suffix_defaults_follow_rsync() {
        let plain = backups(&["-b"]).unwrap().backup.unwrap();
        assert_eq!((plain.dir, plain.suffix), (None, OsString::from("~")));
        let with_dir = backups(&["--backup-dir", "old"]).unwrap().backup.unwrap();
        assert_eq!(with_dir.dir, Some(OsString::from("old")));
        assert_eq!(with_dir.suffix, OsString::new());
        assert!(backups(&["-b", "--suffix", ""]).is_err());
        assert!(backups(&["-b", "--suffix", "a/b"]).is_err());
        assert!(backups(&[]).unwrap().backup.is_none());
    }

    #[test]
    fn basis_dirs_keep_their_order_and_limit() {
        let link = backups(&["--link-dest", "x", "--link-dest", "../y"]).unwrap();
        let link = link.basis.unwrap();
        assert_eq!(link.kind, BasisKind::Link);
        assert_eq!(link.dirs, [OsString::from("x"), OsString::from("../y")]);
        let many: Vec<String> = (0..21)
            .flat_map(|i| ["--copy-dest".into(), format!("d{i}")])
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let err = backups(&many).err().unwrap();
        assert_eq!(err.status, ExitStatus::Usage);
    }

    #[test]
    fn process_workers_share_the_rate() {
        let limited = backups(&["--bwlimit", "1M"]).unwrap();
        assert_eq!(limited.bwlimit, Some(256 * 1024));
        assert_eq!(backups(&["--bwlimit", "0"]).unwrap().bwlimit, None);
    }
}
