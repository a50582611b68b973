//! After the copy: what happens once every file is copied, in this order:
//! hard links (`-a`), `--delete`, then directory modes and times (deepest
//! first, after anything that changes a directory's entries).
//!
//! Owns the records the walker leaves for it ([`dirmeta::DirMeta`],
//! [`links::LinkJob`]) and the passes that act on them, all on the main
//! thread beneath the open destination root. It may call the engine
//! (`copy`: its temp names and attribute helpers, and a whole copy of a
//! later name standing in for its first name), the selection (`select`, so
//! `--delete` spares what the walk left out) and the reporter (`ui`); never
//! the walk or the run.

pub(crate) mod delete;
pub(crate) mod dirmeta;
pub(crate) mod links;

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::os::fd::BorrowedFd;
use std::path::Path;

use crate::copy::Engine;
use crate::job::{Completion, CopyOptions, FailKind, FileJob, Outcome};
use crate::plan::Root;
use crate::ui::escape::io_reason;
use crate::ui::report::Reporter;
use delete::DeleteSetup;
use dirmeta::DirMeta;
use links::{LinkJob, LinkPhase, StandIns};

/// What the finish stage does after the copy; built by
/// `Config::finish_setup`.
#[derive(Debug, Clone)]
pub(crate) struct FinishSetup {
    /// `-n`: decide and list, change nothing.
    pub(crate) dry_run: bool,
    /// `--fsync`: flush each directory after its metadata.
    pub(crate) fsync: bool,
    /// The shard's temp-name tag (see `CopyOptions::temp_tag`).
    pub(crate) temp_tag: String,
    /// `--ignore-errors`: `--delete` runs even after failed entries.
    pub(crate) ignore_errors: bool,
    /// `--force` (or `--delete`): a directory where a later name of a
    /// hard link goes is removed with its contents.
    pub(crate) force: bool,
    /// `--delete`; `None` without it.
    pub(crate) delete: Option<DeleteSetup>,
    /// `-b`: a name a hard link replaces keeps its old version too.
    pub(crate) backup: Option<crate::job::BackupOptions>,
}

/// The destination tree after the copy.
#[derive(Debug)]
pub(crate) struct Tree<'a> {
    pub(crate) setup: &'a FinishSetup,
    /// The sources, for `--delete` to list.
    pub(crate) roots: &'a [Root],
    pub(crate) root: BorrowedFd<'a>,
    /// The destination root, absolute, for messages.
    pub(crate) dst_root: &'a Path,
    /// Every job completed and the run was neither interrupted nor stopped.
    pub(crate) complete: bool,
    /// Later names of multiply-linked files, to link to their first name.
    pub(crate) links: Vec<LinkJob>,
    /// Destination paths left without a version of their source (see
    /// [`links::StandIns`]).
    pub(crate) not_copied: &'a HashSet<OsString>,
    /// How the engine copies, for a later name copied in place of a first
    /// name that was not.
    pub(crate) copy: &'a CopyOptions,
    /// How directory metadata is compared and applied, after the probe of
    /// the destination.
    pub(crate) dir_apply: dirmeta::DirApply,
}

/// The reporter hears of each removal; a failure is an entry that failed.
impl delete::DeleteSink for Reporter {
    fn deleted(&mut self, rel: &OsStr, is_dir: bool) {
        Reporter::deleted(self, rel, is_dir);
    }

    fn delete_failed(&mut self, path: &Path, reason: &str) {
        self.failed(path, reason, FailKind::DestIo);
    }
}

/// Runs the phases after the copy; `dirs` are the walked directories.
pub(crate) fn finish_tree(tree: &Tree<'_>, dirs: Vec<DirMeta>, reporter: &mut Reporter) {
    link_phase(tree, reporter);
    delete_phase(tree, reporter);
    if tree.setup.dry_run {
        return;
    }
    let fsync = tree.setup.fsync;
    for failure in dirmeta::apply_all(tree.root, dirs, tree.dir_apply) {
        let path = tree.dst_root.join(&failure.rel);
        reporter.failed(&path, &failure.reason, FailKind::DestIo);
    }
    if fsync {
        // The root's own entries, for a file copied straight into it.
        if let Err(err) = rustix::fs::fsync(tree.root) {
            let why = format!("cannot flush directory: {}", io_reason(&err.into()));
            reporter.failed(tree.dst_root, &why, FailKind::DestIo);
        }
    }
}

/// Links each later name to its first name, which is complete by now.
fn link_phase(tree: &Tree<'_>, reporter: &mut Reporter) {
    if tree.links.is_empty() || !tree.complete {
        return;
    }
    let backup = match &tree.setup.backup {
        Some(opts) if !tree.setup.dry_run => {
            match crate::copy::backup::Backup::open(tree.root, opts, &tree.setup.temp_tag) {
                Ok(backup) => Some(backup),
                Err(err) => {
                    let why = format!("cannot open backup directory: {}", io_reason(&err));
                    reporter.failed(tree.dst_root, &why, FailKind::DestIo);
                    return;
                }
            }
        }
        _ => None,
    };
    let phase = LinkPhase {
        backup: backup.as_ref(),
        root: tree.root,
        dry_run: tree.setup.dry_run,
        temp_tag: &tree.setup.temp_tag,
        force: tree.setup.force,
        existing: tree.copy.existing,
    };
    let mut stand_ins = StandIns::new(tree.not_copied);
    let mut engine = None;
    for link in &tree.links {
        match stand_ins.target(link) {
            Some(target) => {
                let outcome = links::make_link(&phase, link, target);
                reporter.linked(&link.job, &outcome, target);
            }
            None => {
                let done = copy_here(tree, &mut engine, &link.job);
                stand_ins.copied(link, &done.outcome);
                reporter.completed(&link.job, 0, &done);
            }
        }
    }
}

/// Copies `job` on this thread, as a worker would: a later name of a
/// hard-linked file whose first name left no version in DST.
fn copy_here(tree: &Tree<'_>, engine: &mut Option<Engine>, job: &FileJob) -> Completion {
    let done = |outcome, found| Completion {
        id: job.id,
        outcome,
        worker_pid: std::process::id(),
        found,
    };
    let engine = match engine.take() {
        Some(made) => engine.insert(made),
        None => match Engine::new(tree.dst_root, tree.copy.clone()) {
            Ok(made) => engine.insert(made),
            Err(err) => {
                let outcome = Outcome::Failed {
                    error: format!("cannot open destination: {}", io_reason(&err)),
                    kind: FailKind::DestIo,
                };
                return done(outcome, Default::default());
            }
        },
    };
    let outcome = engine.copy(job, &mut |_| {});
    done(outcome, engine.take_findings())
}

/// `--delete`, only after a run in which nothing failed: a source that
/// could not be read would otherwise look deleted (rsync's rule too);
/// `--ignore-errors` says to delete anyway. A source directory that
/// cannot be listed still protects its destination (see `delete`).
fn delete_phase(tree: &Tree<'_>, reporter: &mut Reporter) {
    let Some(setup) = &tree.setup.delete else {
        return;
    };
    if !tree.complete {
        return;
    }
    if reporter.has_failures() && !tree.setup.ignore_errors {
        reporter.notice("some entries failed: nothing deleted (--delete)");
        return;
    }
    let end = delete::delete_extraneous(tree.root, tree.dst_root, tree.roots, setup, reporter);
    if end.limited {
        reporter.delete_limited(setup.opts.max.unwrap_or(0));
    }
}
