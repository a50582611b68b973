//! What the user is told: each copied file (`-v`), each problem, the
//! progress display and the final summary; and the exit status they add
//! up to.
//!
//! Only the main thread prints, through the [`Reporter`], so messages
//! never interleave with each other or tear the progress bar.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use indicatif::HumanBytes;

use super::escape::Escaped;
use super::itemize::{Item, ItemType, OutFormat, Update};
use super::log_file::LogFile;
use super::progress::{Counters, Progress, rate};
use super::stats::Stats;
use crate::exit_codes::{self, ExitStatus};
use crate::job::{
    Changes, Completion, EntryKind, FailKind, FileJob, Findings, Outcome, SkipReason,
};

/// How much pcopy tells about its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Verbosity {
    /// Errors only.
    Quiet,
    /// Errors, warnings and the final summary.
    Normal,
    /// Also each copied file, on stdout.
    Files,
    /// Also the pid of the worker that copied each file.
    FilesAndWorkers,
}

/// How the entries of a run ended.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) copied: u64,
    pub(crate) bytes: u64,
    pub(crate) skipped: u64,
    /// Failures other than vanished sources.
    pub(crate) failed: u64,
    pub(crate) vanished: u64,
    /// Entries left alone because the run was interrupted.
    pub(crate) not_copied: u64,
    /// Destination directories this run created.
    pub(crate) dirs_created: u64,
    /// Destination entries removed by `--delete`.
    pub(crate) deleted: u64,
    /// `--max-delete` stopped the deletions.
    pub(crate) delete_limited: bool,
}

/// One failed entry, for `--json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ErrorRecord {
    /// The path as printed in the message; `None` for an error of the run
    /// itself (a bad destination, a failed pool).
    pub(crate) path: Option<OsString>,
    pub(crate) error: String,
}

/// Everything known about a run once it is over.
#[derive(Debug, Clone)]
pub(crate) struct RunReport {
    pub(crate) status: ExitStatus,
    pub(crate) tally: Tally,
    pub(crate) errors: Vec<ErrorRecord>,
    pub(crate) elapsed: Duration,
    /// The workers the pool ran at the end (0: none started).
    pub(crate) workers: usize,
}

impl RunReport {
    /// The report of a run that `err` stopped before it copied anything;
    /// prints the error.
    pub(crate) fn stopped(err: &anyhow::Error, elapsed: Duration) -> RunReport {
        let mut report = RunReport {
            status: exit_codes::status_of(err),
            tally: Tally::default(),
            errors: Vec::new(),
            elapsed,
            workers: 0,
        };
        report.stopped_by(err);
        report
    }

    /// Prints the error that stopped the run (after the summary, if there
    /// is one) and keeps it for `--json`.
    pub(crate) fn stopped_by(&mut self, err: &anyhow::Error) {
        eprintln!("pcopy: {err:#}");
        self.errors.push(ErrorRecord {
            path: None,
            error: format!("{err:#}"),
        });
    }
}

impl Tally {
    /// rsync's status for this outcome.
    pub(crate) fn status(&self, interrupted: bool) -> ExitStatus {
        if interrupted {
            ExitStatus::Interrupted
        } else if self.failed > 0 {
            ExitStatus::Partial
        } else if self.delete_limited {
            ExitStatus::DeleteLimit
        } else if self.vanished > 0 {
            ExitStatus::Vanished
        } else {
            ExitStatus::Success
        }
    }

    /// The last line of a run, e.g.
    /// `pcopy: 3 files, 1.00 MiB in 0.50s (2.00 MiB/s); 0 skipped, 1 failed`.
    pub(crate) fn summary(&self, elapsed: Duration, interrupted: bool) -> String {
        let mut line = format!(
            "pcopy: {}{} {}, {} in {:.2}s ({}/s); {} skipped, {} failed",
            if interrupted { "interrupted: " } else { "" },
            self.copied,
            if self.copied == 1 { "file" } else { "files" },
            HumanBytes(self.bytes),
            elapsed.as_secs_f64(),
            HumanBytes(rate(self.bytes, elapsed) as u64),
            self.skipped,
            self.failed + self.vanished,
        );
        if self.vanished > 0 {
            line.push_str(&format!(" ({} vanished)", self.vanished));
        }
        if self.not_copied > 0 {
            line.push_str(&format!(", {} not copied", self.not_copied));
        }
        if self.deleted > 0 {
            line.push_str(&format!(", {} deleted", self.deleted));
        }
        line
    }
}

/// Which per-entry lines are printed, and how: `-v`, `-i`, `--out-format`.
#[derive(Debug, Clone)]
pub(crate) struct Listing {
    pub(crate) format: OutFormat,
    /// `-ii`: also the entries that did not change.
    pub(crate) unchanged: bool,
    /// `-vv`: each line starts with `[pid N] `, the worker that copied it.
    pub(crate) pids: bool,
}

/// Turns events of the run into output, counters and the tally.
pub(crate) struct Reporter {
    verbosity: Verbosity,
    progress: Box<dyn Progress>,
    counters: Counters,
    tally: Tally,
    started: Instant,
    /// Failures, kept for `--json` only.
    errors: Option<Vec<ErrorRecord>>,
    /// `-v` lists go to stderr, as stdout carries the JSON summary.
    list_to_stderr: bool,
    /// The per-entry lines; `None` lists nothing.
    listing: Option<Listing>,
    /// `--log-file`: every change, itemized.
    log: Option<LogFile>,
    /// `--stats`: print the counts at the end.
    show_stats: bool,
    stats: Stats,
    /// `-L`: a symbolic link in the sources arrives as a file.
    dereference: bool,
    /// Each reason an entry did not fit the destination filesystem and
    /// how many entries it was: only the first is named as it happens.
    unsupported: Vec<(String, u64)>,
    /// The pool's size at the end, for `--json`.
    workers: usize,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporter")
            .field("verbosity", &self.verbosity)
            .field("counters", &self.counters)
            .field("tally", &self.tally)
            .finish_non_exhaustive()
    }
}

/// How one ended job is shown.
struct Shown<'a> {
    job: &'a FileJob,
    update: Update,
    changes: Changes,
    bytes: u64,
    pid: u32,
    /// A symbolic link's target, as the engine read it.
    link_target: Option<&'a [u8]>,
}

/// The type the copy of `job` has at the destination, from what the
/// walker or the engine learnt of its source (`dereference`: `-L`).
fn item_type(job: &FileJob, found: &Findings, dereference: bool) -> ItemType {
    match (&job.kind, dereference) {
        (EntryKind::File, _) | (EntryKind::Symlink, true) => ItemType::File,
        (EntryKind::Symlink, false) => ItemType::Symlink,
        (EntryKind::Special, _) => {
            let mode = job.meta.map(|m| m.mode).or(found.source_mode);
            mode.map_or(ItemType::Special, ItemType::of_mode)
        }
    }
}

impl Reporter {
    pub(crate) fn new(verbosity: Verbosity, progress: Box<dyn Progress>) -> Reporter {
        Reporter {
            verbosity,
            progress,
            counters: Counters::default(),
            tally: Tally::default(),
            started: Instant::now(),
            errors: None,
            list_to_stderr: false,
            listing: None,
            log: None,
            show_stats: false,
            stats: Stats::default(),
            dereference: false,
            unsupported: Vec::new(),
            workers: 0,
        }
    }

    /// Lists entries as `listing` says.
    pub(crate) fn listing(mut self, listing: Listing) -> Reporter {
        self.listing = Some(listing);
        self
    }

    /// Writes every change to `log` too.
    pub(crate) fn logging(mut self, log: LogFile) -> Reporter {
        self.log = Some(log);
        self
    }

    /// Prints `--stats` at the end.
    pub(crate) fn with_stats(mut self) -> Reporter {
        self.show_stats = true;
        self
    }

    /// Symbolic links are followed (`-L`).
    pub(crate) fn dereferencing(mut self, dereference: bool) -> Reporter {
        self.dereference = dereference;
        self
    }

    /// Whether any entry failed (vanished sources aside).
    pub(crate) fn has_failures(&self) -> bool {
        self.tally.failed > 0
    }

    /// `--max-delete` stopped the deletion pass.
    pub(crate) fn delete_limited(&mut self, max: u64) {
        self.tally.delete_limited = true;
        self.notice(&format!(
            "--max-delete {max} reached: stopped deleting; run again with a higher limit"
        ));
    }

    /// Keeps every failure for the JSON summary, and moves `-v` lists to
    /// stderr so stdout holds the JSON alone.
    pub(crate) fn for_json(mut self) -> Reporter {
        self.errors = Some(Vec::new());
        self.list_to_stderr = true;
        self
    }

    /// A destination directory was created (empty `rel`: the root).
    pub(crate) fn dir_created(&mut self, rel: &OsStr) {
        // The JSON summary counts the directories below DST.
        if !rel.is_empty() {
            self.tally.dirs_created += 1;
        }
        self.stats.created.add(ItemType::Dir);
        let item = Item {
            update: Update::Local,
            kind: ItemType::Dir,
            changes: Changes::new_entry(),
            rel,
            src: None,
            length: 0,
            bytes: 0,
            target: None,
        };
        self.list_item(&item, None, None);
    }

    /// An existing destination directory differs from its source by
    /// `changes` (set right after the copy).
    pub(crate) fn dir_changed(&mut self, rel: &OsStr, changes: Changes) {
        let item = Item {
            update: Update::Attributes,
            kind: ItemType::Dir,
            changes,
            rel,
            src: None,
            length: 0,
            bytes: 0,
            target: None,
        };
        self.list_item(&item, None, None);
    }

    /// The walk is over; it went through `dirs` source directories.
    pub(crate) fn dirs_walked(&mut self, dirs: u64) {
        self.stats.files.dir += dirs;
    }

    /// The walker found `files` more entries holding `bytes`.
    pub(crate) fn queued(&mut self, files: u64, bytes: u64) {
        self.counters.files_total += files;
        self.counters.bytes_total += bytes;
    }

    /// The count-ahead found `files` entries holding `bytes` in all.
    pub(crate) fn counted(&mut self, files: u64, bytes: u64) {
        self.counters.counted = Some(super::progress::Counted { files, bytes });
    }

    pub(crate) fn walk_done(&mut self) {
        self.counters.walk_done = true;
    }

    /// Part of a large file was copied. The bytes of a job the walker did
    /// not size (see [`FileJob::size_known`]) join the total as they come.
    pub(crate) fn bytes_copied(&mut self, bytes: u64, size_known: bool) {
        self.counters.bytes_done += bytes;
        if !size_known {
            self.counters.bytes_total += bytes;
        }
    }

    /// A job ended; `reported` bytes of it were already counted as progress.
    pub(crate) fn completed(&mut self, job: &FileJob, reported: u64, done: &Completion) {
        self.counters.files_done += 1;
        self.restarted(reported, job.size_known());
        let kind = item_type(job, &done.found, self.dereference);
        let size = job.meta.map(|m| m.size).or(done.found.source_size);
        self.stats.files.add(kind);
        if matches!(kind, ItemType::File | ItemType::Symlink) {
            self.stats.total_size += size.unwrap_or(0);
        }
        match &done.outcome {
            Outcome::Copied {
                bytes,
                changed,
                replaced,
            } => {
                let changes = match done.found.changes {
                    Some(changes) => changes,
                    None if *replaced => Changes::default(),
                    None => Changes::new_entry(),
                };
                let update = match kind {
                    ItemType::File => Update::Transfer,
                    _ => Update::Local,
                };
                self.copied(job, *bytes, *changed);
                let shown = Shown {
                    job,
                    update,
                    changes,
                    bytes: *bytes,
                    pid: done.worker_pid,
                    link_target: done.found.link_target.as_deref(),
                };
                self.show(&shown, kind, size);
            }
            Outcome::Skipped { reason } => self.skipped(job, reason, done),
            Outcome::Failed { error, kind } => self.failed(Path::new(&job.src), error, *kind),
        }
    }

    /// A later name of a multiply-linked file (`-a`) was linked to its
    /// first name, `target` (both below DST).
    pub(crate) fn linked(&mut self, job: &FileJob, outcome: &Outcome, target: &OsStr) {
        self.counters.files_done += 1;
        self.stats.files.add(ItemType::File);
        let size = job.meta.map_or(0, |m| m.size);
        self.stats.total_size += size;
        match outcome {
            Outcome::Copied { .. } => {
                self.tally.copied += 1;
                self.stats.created.add(ItemType::File);
                let item = Item {
                    update: Update::HardLink,
                    kind: ItemType::File,
                    changes: Changes::new_entry(),
                    rel: &job.rel_dst,
                    src: Some(&job.src),
                    length: size,
                    bytes: 0,
                    target: None,
                };
                self.list_item(&item, Some(target), None);
            }
            Outcome::Skipped { .. } => self.tally.skipped += 1,
            Outcome::Failed { error, kind } => self.failed(Path::new(&job.src), error, *kind),
        }
    }

    fn copied(&mut self, job: &FileJob, bytes: u64, changed: bool) {
        self.bytes_copied(bytes, job.size_known());
        self.tally.copied += 1;
        self.tally.bytes += bytes;
        if changed {
            self.warn(
                Path::new(&job.src),
                "file changed as we read it; copied as read",
            );
        }
    }

    fn show(&mut self, shown: &Shown<'_>, kind: ItemType, size: Option<u64>) {
        let job = shown.job;
        if shown.changes.created {
            self.stats.created.add(kind);
        }
        if kind == ItemType::File && shown.update == Update::Transfer {
            self.stats.transferred += 1;
            self.stats.transferred_size += shown.bytes;
        }
        let target = match kind {
            ItemType::Symlink => shown.link_target,
            _ => None,
        };
        let item = Item {
            update: shown.update,
            kind,
            changes: shown.changes,
            rel: &job.rel_dst,
            src: Some(&job.src),
            length: size.unwrap_or(shown.bytes),
            bytes: shown.bytes,
            target,
        };
        self.list_item(&item, None, Some(shown.pid));
    }

    fn skipped(&mut self, job: &FileJob, reason: &SkipReason, done: &Completion) {
        self.tally.skipped += 1;
        // Its bytes will not move: the totals shrink instead.
        let size = job.counted_size();
        if job.kind == EntryKind::File {
            self.counters.bytes_total -= size.min(self.counters.bytes_total);
            self.counters.bytes_skipped += size;
        }
        if reason.warns() {
            self.warn(Path::new(&job.src), &reason.to_string());
        }
        // Up to date, perhaps with attributes brought in line: `.f..t......`.
        if let (SkipReason::UpToDate, Some(changes)) = (reason, done.found.changes) {
            let shown = Shown {
                job,
                update: Update::Attributes,
                changes,
                bytes: 0,
                pid: done.worker_pid,
                link_target: done.found.link_target.as_deref(),
            };
            let kind = item_type(job, &done.found, self.dereference);
            self.show(
                &shown,
                kind,
                job.meta.map(|m| m.size).or(done.found.source_size),
            );
        }
    }

    /// Forgets progress of a job that will be copied again from the start
    /// (or is over).
    pub(crate) fn restarted(&mut self, reported: u64, size_known: bool) {
        self.counters.bytes_done -= reported.min(self.counters.bytes_done);
        if !size_known {
            self.counters.bytes_total -= reported.min(self.counters.bytes_total);
        }
    }

    /// An entry was not copied.
    pub(crate) fn failed(&mut self, path: &Path, reason: &str, kind: FailKind) {
        match kind {
            FailKind::Vanished => self.tally.vanished += 1,
            _ => self.tally.failed += 1,
        }
        if let Some(errors) = &mut self.errors {
            errors.push(ErrorRecord {
                path: Some(path.as_os_str().to_os_string()),
                error: reason.to_string(),
            });
        }
        if kind == FailKind::Unsupported && self.repeated_unsupported(reason) {
            return;
        }
        self.error(&format!("pcopy: {}: {reason}", Escaped::path(path)));
    }

    /// Counts an entry the destination cannot hold; true when its reason
    /// was already printed (a whole tree of symlinks onto exFAT is one
    /// line and a count, not a wall of repeats).
    fn repeated_unsupported(&mut self, reason: &str) -> bool {
        match self.unsupported.iter_mut().find(|(r, _)| r == reason) {
            Some((_, count)) => {
                *count += 1;
                true
            }
            None => {
                self.unsupported.push((reason.to_string(), 1));
                false
            }
        }
    }

    /// `--delete` removed `rel` (below the destination root), or would.
    pub(crate) fn deleted(&mut self, rel: &OsStr, is_dir: bool) {
        self.tally.deleted += 1;
        let kind = if is_dir {
            ItemType::Dir
        } else {
            ItemType::File
        };
        self.stats.deleted.add(kind);
        let item = Item {
            update: Update::Deleted,
            kind,
            changes: Changes::default(),
            rel,
            src: None,
            length: 0,
            bytes: 0,
            target: None,
        };
        self.list_item(&item, None, None);
    }

    /// Entries left alone because of an interrupt.
    pub(crate) fn not_copied(&mut self, count: u64) {
        self.tally.not_copied += count;
    }

    /// A warning about one path (hidden by `-q`).
    pub(crate) fn warn(&mut self, path: &Path, message: &str) {
        if self.verbosity > Verbosity::Quiet {
            self.error(&format!("pcopy: {}: {message}", Escaped::path(path)));
        }
    }

    /// A warning about the run itself (hidden by `-q`).
    pub(crate) fn notice(&mut self, message: &str) {
        if self.verbosity > Verbosity::Quiet {
            self.error(&format!("pcopy: {message}"));
        }
    }

    /// A step of the pool's growth (`-v` and more), on stderr: stdout
    /// holds the entries' list.
    pub(crate) fn grew(&mut self, step: &str) {
        if self.verbosity >= Verbosity::Files {
            self.error(&format!("pcopy: {step}"));
        }
    }

    /// The pool ran `workers` workers at the end.
    pub(crate) fn workers(&mut self, workers: usize) {
        self.workers = workers;
    }

    /// Redraws the progress display if it is due.
    pub(crate) fn tick(&mut self) {
        self.progress.update(&self.counters);
    }

    /// Ends the display, prints the summary and reports the run.
    pub(crate) fn finish(mut self, interrupted: bool) -> RunReport {
        self.progress.finish(&self.counters);
        for (reason, count) in std::mem::take(&mut self.unsupported) {
            if count > 1 {
                eprintln!("pcopy: {reason}: {count} entries (the first one named above)");
            }
        }
        let elapsed = self.started.elapsed();
        if self.show_stats {
            let stats = self.stats.render();
            self.print_listed(stats.trim_end().to_string());
        }
        let summary = self.tally.summary(elapsed, interrupted);
        if let Some(log) = &mut self.log {
            log.line(&summary);
        }
        if self.verbosity > Verbosity::Quiet {
            eprintln!("{summary}");
        }
        RunReport {
            status: self.tally.status(interrupted),
            tally: self.tally,
            errors: self.errors.unwrap_or_default(),
            elapsed,
            workers: self.workers,
        }
    }

    /// Lists an entry; `link_to` is the first name of a hard link
    /// (`name => target`), `pid` the worker to show (`-vv`).
    fn list_item(&mut self, item: &Item<'_>, link_to: Option<&OsStr>, pid: Option<u32>) {
        if let Some(log) = &mut self.log
            && listed(item, true, false)
        {
            log.entry(item, link_to);
        }
        let Some(listing) = &self.listing else {
            return;
        };
        if !listed(item, listing.format.itemizes(), listing.unchanged) {
            return;
        }
        let mut line = match pid.filter(|_| listing.pids) {
            Some(pid) => format!("[pid {pid}] "),
            None => String::new(),
        };
        match item.update {
            Update::Deleted if !listing.format.shows_deletions() => {
                line.push_str("deleting ");
                line.push_str(&OutFormat::names().render(item));
            }
            _ => line.push_str(&listing.format.render(item)),
        }
        if let Some(target) = link_to {
            line.push_str(&format!(" => {}", Escaped::os(target)));
        }
        self.print_listed(line);
    }

    fn print_listed(&mut self, line: String) {
        let to_stderr = self.list_to_stderr;
        self.progress.suspend(&mut || {
            // A closed stdout (`pcopy -v | head`) must not stop the copy.
            let _ = match to_stderr {
                true => writeln!(std::io::stderr().lock(), "{line}"),
                false => writeln!(std::io::stdout().lock(), "{line}"),
            };
        });
    }

    fn error(&mut self, line: &str) {
        if let Some(log) = &mut self.log {
            log.line(line);
        }
        self.progress.suspend(&mut || eprintln!("{line}"));
    }
}

/// Whether an entry gets a line: with `%i` in the format every entry that
/// changed in any way (`unchanged`: every entry); without, rsync's `-v`
/// rule: entries copied or created, and deletions.
fn listed(item: &Item<'_>, itemizes: bool, unchanged: bool) -> bool {
    match (item.update, itemizes) {
        (Update::Attributes, true) => unchanged || item.changes.any(),
        (Update::Attributes, false) => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_prefers_interrupt_then_failure_then_vanished() {
        let mut tally = Tally::default();
        assert_eq!(tally.status(false), ExitStatus::Success);
        tally.vanished = 1;
        assert_eq!(tally.status(false), ExitStatus::Vanished);
        tally.failed = 1;
        assert_eq!(tally.status(false), ExitStatus::Partial);
        assert_eq!(tally.status(true), ExitStatus::Interrupted);
    }

    #[test]
    fn entries_the_destination_cannot_hold_are_named_once_and_counted() {
        let quiet = Box::new(crate::ui::progress::NoProgress);
        let mut reporter = Reporter::new(Verbosity::Quiet, quiet);
        let why = "destination filesystem does not support symbolic links";
        assert!(!reporter.repeated_unsupported(why));
        assert!(reporter.repeated_unsupported(why));
        assert!(!reporter.repeated_unsupported("name not allowed on this filesystem"));
        for path in ["a", "b", "c"] {
            reporter.failed(Path::new(path), why, FailKind::Unsupported);
        }
        assert_eq!(reporter.unsupported[0], (why.to_string(), 5));
        assert_eq!(reporter.tally.failed, 3);
    }

    #[test]
    fn skipped_files_do_not_change_the_status() {
        let tally = Tally {
            copied: 2,
            skipped: 5,
            ..Tally::default()
        };
        assert_eq!(tally.status(false), ExitStatus::Success);
    }

    #[test]
    fn summary_reads_naturally() {
        let tally = Tally {
            copied: 3,
            bytes: 1 << 20,
            failed: 1,
            vanished: 1,
            ..Tally::default()
        };
        assert_eq!(
            tally.summary(Duration::from_millis(500), false),
            "pcopy: 3 files, 1.00 MiB in 0.50s (2.00 MiB/s); 0 skipped, 2 failed (1 vanished)"
        );
        let stopped = Tally {
            copied: 1,
            not_copied: 9,
            ..Tally::default()
        };
        assert_eq!(
            stopped.summary(Duration::from_secs(1), true),
            "pcopy: interrupted: 1 file, 0 B in 1.00s (0 B/s); 0 skipped, 0 failed, 9 not copied"
        );
    }

    fn job(meta: Option<crate::job::SourceMeta>) -> FileJob {
        FileJob {
            id: 0,
            src: "src/f".into(),
            rel_dst: "f".into(),
            kind: EntryKind::File,
            meta,
            counted: true,
            fresh: false,
            range: None,
        }
    }

    fn copied(bytes: u64) -> Completion {
        done(Outcome::Copied {
            bytes,
            changed: false,
            replaced: true,
        })
    }

    fn done(outcome: Outcome) -> Completion {
        Completion {
            id: 0,
            outcome,
            worker_pid: 1,
            found: crate::job::Findings::default(),
        }
    }

    fn bytes_of(reporter: &Reporter) -> (u64, u64) {
        let counters = reporter.counters;
        (counters.bytes_done, counters.bytes_total)
    }

    #[test]
    fn bytes_of_a_job_the_walker_did_not_size_join_the_total_as_they_come() {
        let quiet = || Reporter::new(Verbosity::Quiet, Box::new(crate::ui::progress::NoProgress));
        let unsized_job = job(None);
        let mut reporter = quiet();
        reporter.queued(1, 0);
        reporter.bytes_copied(8, unsized_job.size_known());
        assert_eq!(bytes_of(&reporter), (8, 8));
        reporter.completed(&unsized_job, 8, &copied(10));
        assert_eq!(bytes_of(&reporter), (10, 10));

        // Restarted, then skipped after all: nothing is left counted.
        let mut reporter = quiet();
        reporter.queued(1, 0);
        reporter.bytes_copied(8, false);
        reporter.restarted(8, false);
        assert_eq!(bytes_of(&reporter), (0, 0));
        let skipped = done(Outcome::Skipped {
            reason: crate::job::SkipReason::UpToDate,
        });
        reporter.completed(&unsized_job, 0, &skipped);
        assert_eq!(bytes_of(&reporter), (0, 0));
    }

    /// What the walker's `lstat` says of a 10-byte file.
    fn ten_byte_file() -> crate::job::SourceMeta {
        crate::job::SourceMeta {
            size: 10,
            mtime: crate::job::FileTime::default(),
            mode: 0o100644,
            uid: 0,
            gid: 0,
            rdev: 0,
        }
    }

    #[test]
    fn bytes_of_a_sized_job_move_only_the_done_count() {
        let meta = ten_byte_file();
        let sized_job = job(Some(meta));
        let mut reporter =
            Reporter::new(Verbosity::Quiet, Box::new(crate::ui::progress::NoProgress));
        reporter.queued(1, 10);
        reporter.bytes_copied(8, sized_job.size_known());
        assert_eq!(bytes_of(&reporter), (8, 10));
        reporter.completed(&sized_job, 8, &copied(10));
        assert_eq!(bytes_of(&reporter), (10, 10));
    }

    #[test]
    fn a_reader_s_stat_that_was_not_counted_moves_the_totals_as_no_stat_does() {
        let meta = ten_byte_file();
        let seen_job = FileJob {
            counted: false,
            ..job(Some(meta))
        };
        assert!(!seen_job.size_known());
        assert_eq!(seen_job.counted_size(), 0);
        let quiet = || Reporter::new(Verbosity::Quiet, Box::new(crate::ui::progress::NoProgress));
        // Up to date: the totals, which never held its size, stay whole.
        let mut reporter = quiet();
        reporter.queued(2, 4);
        let skipped = done(Outcome::Skipped {
            reason: crate::job::SkipReason::UpToDate,
        });
        reporter.completed(&seen_job, 0, &skipped);
        assert_eq!(bytes_of(&reporter), (0, 4));
        assert_eq!(reporter.counters.bytes_skipped, 0);
        assert_eq!(reporter.stats.total_size, 10, "its size is still known");
        // Copied: its bytes join the total as they come.
        let mut reporter = quiet();
        reporter.queued(2, 4);
        reporter.bytes_copied(10, seen_job.size_known());
        reporter.completed(&seen_job, 10, &copied(10));
        assert_eq!(bytes_of(&reporter), (10, 14));
    }
}
