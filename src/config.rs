//! The validated settings of one run, built from the command line, and
//! the one place that hands each stage its setup: the plan, the
//! [`WalkSetup`], the [`RunSetup`] (holding the walk's and the
//! [`FinishSetup`]) and the [`Reporter`].

use std::ffi::OsString;
use std::io::IsTerminal;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;

mod backups;

use crate::autojobs;
use crate::cli::{Args, Parts, WorkerKind};
use crate::copy::chmod::Chmod;
use crate::copy::owners::{Id, Owners};
use crate::exit_codes::{ExitStatus, Fatal};
use crate::fdbudget;
use crate::finish::FinishSetup;
use crate::finish::delete::{DeleteOptions, DeleteSetup};
use crate::job::{Compare, CopyOptions, Preserve};
use crate::plan::relative::{self, RelativeSources};
use crate::plan::{self, Plan};
use crate::run::{GrowSetup, RunSetup};
use crate::select::filter::Filter;
use crate::select::shard::Shard;
use crate::select::size::SizeLimits;
use crate::ui::itemize::OutFormat;
use crate::ui::log_file::LogFile;
use crate::ui::progress::{self, ProgressMode};
use crate::ui::report::{Listing, Reporter, Verbosity};
use crate::walk::WalkSetup;
use crate::walk::split::Splitter;

/// Everything a run needs to know, checked.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) sources: Vec<OsString>,
    pub(crate) destination: OsString,
    pub(crate) jobs: NonZeroUsize,
    pub(crate) workers: WorkerKind,
    pub(crate) copy: CopyOptions,
    pub(crate) verbosity: Verbosity,
    pub(crate) progress: ProgressMode,
    /// Print the JSON summary on stdout.
    pub(crate) json: bool,
    /// `--exclude`/`--include` rules; `None` without any.
    pub(crate) filter: Option<Arc<Filter>>,
    /// `--delete` and its limits; `None` without `--delete`.
    pub(crate) delete: Option<DeleteOptions>,
    /// `--shard K/N`.
    pub(crate) shard: Option<Shard>,
    /// Files from this size on are split over the workers (0: never;
    /// `None`: the walk's default).
    pub(crate) split_min: Option<u64>,
    /// Levels of directories the walk keeps open, from the descriptor
    /// budget.
    pub(crate) open_levels: usize,
    /// The most directory readers, from the descriptor budget.
    pub(crate) readers: usize,
    /// Why fewer workers run than `-j` asked, if they do.
    pub(crate) budget_note: Option<String>,
    /// How far the pool may grow while the run goes.
    pub(crate) grow: GrowSetup,
    /// `--modify-window` in seconds (0 for a negative one: nanoseconds);
    /// `None`: the destination's granularity.
    pub(crate) modify_window: Option<u64>,
    /// `--ignore-errors`: `--delete` runs even after failures.
    pub(crate) ignore_errors: bool,
    /// The per-entry lines (`-v`, `-i`, `--out-format`); `None`: none.
    pub(crate) listing: Option<Listing>,
    /// `--stats`.
    pub(crate) stats: bool,
    /// `--log-file`.
    pub(crate) log_file: Option<PathBuf>,
    /// `-x` given once (mount points made empty) or twice (left out).
    pub(crate) one_file_system: u8,
    /// `--mkpath`: create every missing directory of DST.
    pub(crate) mkpath: bool,
    /// `-R` or `--files-from`: the sources, kept below DST by path.
    pub(crate) relative: Option<RelativeSources>,
    /// `-r` (the default): directory sources are copied; `--no-r` skips
    /// them, or with `--files-from` makes them without their contents.
    pub(crate) recursive: bool,
    /// `--files-from`: the sources are the paths of a list.
    pub(crate) files_from: bool,
}

impl Config {
    /// Builds the configuration; `stderr_is_terminal` decides between the
    /// bar and plain lines. Fails on a bad filter rule or an unreadable
    /// `--exclude-from` file.
    pub(crate) fn new(args: Args, stderr_is_terminal: bool) -> Result<Config, Fatal> {
        let verbosity = verbosity(&args);
        let progress = progress_mode(&args, verbosity, stderr_is_terminal);
        let workers = Workers::plan(&args)?;
        let filter = Filter::new(&args.rules)?.map(Arc::new);
        let backups = backups::resolve(&args.backups, workers.jobs.get(), args.workers)?;
        let listing = listing(&args, verbosity);
        let relative = relative_sources(&args)?;
        let delete = args.delete.then_some(DeleteOptions {
            max: args.max_delete,
            excluded: args.delete_excluded,
        });
        let copy = copy_options(&args, backups, listing.as_ref());
        Ok(Config {
            sources: args.sources,
            destination: args.destination.unwrap_or_default(),
            jobs: workers.jobs,
            workers: args.workers,
            copy,
            verbosity,
            progress,
            json: args.json,
            filter,
            delete,
            shard: args.shard,
            split_min: args.split_min,
            open_levels: workers.open_levels,
            readers: workers.readers,
            budget_note: workers.note,
            grow: workers.grow,
            modify_window: args.modify_window.map(|n| n.max(0).unsigned_abs()),
            ignore_errors: args.ignore_errors,
            listing,
            stats: args.stats,
            log_file: args.log_file,
            one_file_system: args.one_file_system,
            mkpath: args.mkpath,
            relative,
            recursive: args.parts.recursive,
            files_from: args.files_from.is_some(),
        })
    }

    /// [`Config::new`] with the real stderr.
    pub(crate) fn from_args(args: Args) -> Result<Config, Fatal> {
        Config::new(args, std::io::stderr().is_terminal())
    }

    /// The command line resolved: what to copy where.
    pub(crate) fn plan(&self) -> Result<Plan, Fatal> {
        let (dereference, mkpath) = (self.copy.dereference, self.mkpath);
        match &self.relative {
            Some(relative) => relative::resolve(
                relative.sources.clone(),
                relative.rejected.clone(),
                &self.destination,
                dereference,
                mkpath,
            ),
            None => plan::resolve(&self.sources, &self.destination, dereference, mkpath),
        }
    }

    /// The reporter, with the display, the lists, the log and `--json`
    /// asked for. Fails when the `--log-file` cannot be opened.
    pub(crate) fn reporter(&self) -> Result<Reporter, Fatal> {
        let mut reporter = Reporter::new(self.verbosity, progress::for_mode(self.progress))
            .dereferencing(self.copy.dereference);
        if self.json {
            reporter = reporter.for_json();
        }
        if let Some(listing) = &self.listing {
            reporter = reporter.listing(listing.clone());
        }
        if self.stats {
            reporter = reporter.with_stats();
        }
        if let Some(path) = &self.log_file {
            let log = LogFile::open(path).map_err(|err| {
                let why = crate::ui::escape::io_reason(&err);
                let shown = crate::ui::escape::Escaped::path(path);
                Fatal::new(
                    ExitStatus::DestinationIo,
                    format!("cannot open log file {shown}: {why}"),
                )
            })?;
            reporter = reporter.logging(log);
        }
        Ok(reporter)
    }

    /// What the walk does with each entry.
    pub(crate) fn walk_setup(&self) -> WalkSetup {
        WalkSetup {
            dereference: self.copy.dereference,
            dry_run: self.copy.dry_run,
            keep: self.copy.keep,
            umask: crate::copy::umask(),
            acls: self.copy.acls,
            owners: self.copy.owners,
            filter: self.filter.clone(),
            shard: self.shard,
            splitter: Splitter::new(self.split_min, self.jobs.get(), &self.copy),
            temp_tag: self.copy.temp_tag.clone(),
            open_levels: self.open_levels,
            workers: self.jobs.get(),
            readers: self.readers,
            count_ahead: self.progress != ProgressMode::Off,
            size_limits: self.copy.sizes.is_set(),
            itemize: self.copy.itemize,
            existing: self.copy.existing,
            chmod: self.copy.chmod.clone(),
            one_file_system: self.one_file_system,
            backup: self.copy.backup.clone(),
        }
    }

    /// What happens after the copy: links, `--delete`, directory metadata.
    pub(crate) fn finish_setup(&self) -> FinishSetup {
        FinishSetup {
            dry_run: self.copy.dry_run,
            fsync: self.copy.fsync,
            temp_tag: self.copy.temp_tag.clone(),
            backup: self.copy.backup.clone(),
            ignore_errors: self.ignore_errors,
            force: self.copy.force,
            delete: self.delete.map(|opts| DeleteSetup {
                opts,
                filter: self.filter.clone(),
                dereference: self.copy.dereference,
                dry_run: self.copy.dry_run,
                shard: self.shard,
                backup: self.copy.backup.clone(),
            }),
        }
    }

    /// How the run goes: the pool, the engine's options, and the setups
    /// of the walk and the finish stage it starts.
    pub(crate) fn run_setup(&self) -> RunSetup {
        RunSetup {
            workers: self.jobs,
            kind: self.workers,
            copy: self.copy.clone(),
            walk: self.walk_setup(),
            finish: self.finish_setup(),
            modify_window: self.modify_window,
            budget_note: self.budget_note.clone(),
            grow: self.grow.clone(),
        }
    }
}

/// How many workers run, and what the descriptor budget leaves the walk.
struct Workers {
    /// The workers that run: `-j` (or the default for the mounts), less
    /// what the open-file limit cannot hold.
    jobs: NonZeroUsize,
    /// Levels of directories the walk keeps open.
    open_levels: usize,
    /// The most threads that read directories ahead of the walk.
    readers: usize,
    /// Why fewer workers run than asked, if they do.
    note: Option<String>,
    grow: GrowSetup,
}

/// What the run starts with and may grow to, and growth's forced
/// outcomes (the test hook's), if any.
struct Asked {
    jobs: autojobs::DefaultJobs,
    forced: Option<Vec<bool>>,
}

/// What the run starts with: `-j` (which never grows), else the test
/// hook's start and outcomes, else the default for the mounts.
fn asked(args: &Args) -> Result<Asked, Fatal> {
    let dst = args
        .destination
        .as_deref()
        .unwrap_or(std::ffi::OsStr::new("."));
    if let Some(jobs) = args.jobs.and_then(|n| NonZeroUsize::new(n as usize)) {
        let fixed = autojobs::DefaultJobs {
            start: jobs,
            most: jobs,
        };
        return Ok(Asked {
            jobs: fixed,
            forced: None,
        });
    }
    if let Some(spec) = test_grow() {
        let forced =
            crate::run::grow::parse_forced(&spec).map_err(|e| Fatal::new(ExitStatus::Usage, e))?;
        let jobs = autojobs::DefaultJobs {
            start: forced.start,
            most: autojobs::growth_cap(forced.start, args.workers),
        };
        return Ok(Asked {
            jobs,
            forced: Some(forced.outcomes),
        });
    }
    Ok(Asked {
        jobs: autojobs::default_jobs(&args.sources, dst, args.workers),
        forced: None,
    })
}

/// `PCOPY_TEST_GROW` (see `run::grow::parse_forced`): forces growth's
/// decisions for the integration tests; only debug builds look at it.
fn test_grow() -> Option<String> {
    match cfg!(debug_assertions) {
        true => std::env::var("PCOPY_TEST_GROW").ok(),
        false => None,
    }
}

impl Workers {
    /// `-j`, or the default for where SRC and DST are, fitted into the
    /// open-file limit.
    fn plan(args: &Args) -> Result<Workers, Fatal> {
        let Asked {
            jobs: wanted,
            forced,
        } = asked(args)?;
        let asked = wanted.start;
        let budget = fdbudget::plan(fdbudget::Wanted {
            jobs: asked,
            most: wanted.most,
            kind: args.workers,
            readers: crate::walk::MOST_READERS,
        })?;
        let jobs = budget.workers;
        let note = (jobs < asked).then(|| {
            format!(
                "running {jobs} of the {asked} workers asked: the limit of {} open files holds no more",
                budget.limit
            )
        });
        Ok(Workers {
            jobs,
            open_levels: budget.open_levels,
            readers: budget.readers,
            note,
            grow: GrowSetup {
                most: budget.most_workers,
                forced,
            },
        })
    }
}

/// `-q` silences; each `-v` lists more.
fn verbosity(args: &Args) -> Verbosity {
    match (args.quiet, args.verbose) {
        (true, _) => Verbosity::Quiet,
        (false, 0) => Verbosity::Normal,
        (false, 1) => Verbosity::Files,
        (false, _) => Verbosity::FilesAndWorkers,
    }
}

/// The copy engine's options: the flags, the resolved backup flags, and
/// whether the listing wants every outcome itemized.
fn copy_options(args: &Args, backups: backups::Backups, listing: Option<&Listing>) -> CopyOptions {
    CopyOptions {
        dereference: args.dereference,
        compare: compare_mode(args),
        update: args.update,
        ignore_existing: args.ignore_existing,
        existing: args.existing,
        chmod: args
            .chmod
            .iter()
            .cloned()
            .fold(Chmod::default(), Chmod::and),
        sizes: SizeLimits {
            min: args.min_size.map(|s| s.0),
            max: args.max_size.map(|s| s.0),
        },
        dry_run: args.dry_run,
        keep: preserve(&args.parts),
        acls: args.parts.acls,
        owners: owners(args),
        fsync: args.fsync,
        verify: args.verify,
        temp_tag: args.shard.map(|s| s.temp_tag()).unwrap_or_default(),
        force: args.force || args.delete,
        modify_window_ns: 0,
        dest: crate::job::DestCaps::default(),
        basis: backups.basis,
        backup: backups.backup,
        remove_source: backups.remove_source,
        inplace: backups.inplace,
        partial: backups.partial,
        bwlimit: backups.bwlimit,
        itemize: listing.is_some_and(|l| l.format.itemizes()) || args.log_file.is_some(),
    }
}

/// `--progress` and `--no-progress` win; otherwise a bar on a terminal
/// unless `-q`, and nothing in a pipe or log. Forced lines are JSON under
/// `--json`.
fn progress_mode(args: &Args, verbosity: Verbosity, terminal: bool) -> ProgressMode {
    match (args.progress, args.no_progress, terminal) {
        (_, true, _) => ProgressMode::Off,
        (true, _, true) => ProgressMode::Bar,
        (true, _, false) if args.json => ProgressMode::JsonLines,
        (true, _, false) => ProgressMode::Lines,
        (false, false, true) if verbosity > Verbosity::Quiet => ProgressMode::Bar,
        _ => ProgressMode::Off,
    }
}

/// `--files-from` (read here, so an unreadable list stops the run before
/// anything is written) or `-R`; `None` for neither.
fn relative_sources(args: &Args) -> Result<Option<RelativeSources>, Fatal> {
    match (&args.files_from, args.relative) {
        (Some(file), _) => match args.sources.as_slice() {
            [base] => RelativeSources::of_list(file, args.from0, base).map(Some),
            _ => Err(Fatal::new(
                ExitStatus::Usage,
                "--files-from takes exactly one SRC, the directory the list is relative to",
            )),
        },
        (None, true) => Ok(Some(RelativeSources::of_sources(&args.sources))),
        (None, false) => Ok(None),
    }
}

/// What each entry's line looks like: `--out-format` wins, then `-i`, then
/// `-v` (rsync's `%n%L`); dry runs list the same lines as real ones.
fn listing(args: &Args, verbosity: Verbosity) -> Option<Listing> {
    let format = match (&args.out_format, args.itemize_changes, verbosity) {
        (Some(format), _, _) => OutFormat::parse(format),
        (None, 1.., _) => OutFormat::itemized(),
        (None, 0, Verbosity::Files | Verbosity::FilesAndWorkers) => OutFormat::names(),
        (None, 0, _) => return None,
    };
    Some(Listing {
        format,
        unchanged: args.itemize_changes > 1,
        pids: verbosity == Verbosity::FilesAndWorkers,
    })
}

/// The owner and group copies get: `--chown`'s where it names them, else
/// the source's where `-o` and `-g` (or `-a`) are left on.
fn owners(args: &Args) -> Owners {
    let id = |fixed: Option<u32>, kept: bool| match (fixed, kept) {
        (Some(id), _) => Id::Fixed(id),
        (None, true) => Id::Source,
        (None, false) => Id::Unset,
    };
    let chown = args.meta.chown;
    Owners {
        user: id(chown.and_then(|c| c.uid), args.parts.owner),
        group: id(chown.and_then(|c| c.gid), args.parts.group),
    }
}

/// The parts of `-a` the copy engine and the walk apply.
fn preserve(parts: &Parts) -> Preserve {
    Preserve {
        links: parts.links,
        perms: parts.perms,
        times: parts.times,
        devices: parts.devices,
        specials: parts.specials,
        hard_links: parts.hard_links,
        xattrs: parts.xattrs,
    }
}

/// The quick check unless `-c`, `-I` or `--size-only` says otherwise.
fn compare_mode(args: &Args) -> Compare {
    match (args.checksum, args.ignore_times, args.size_only) {
        (true, _, _) => Compare::Checksum,
        (false, true, _) => Compare::Always,
        (false, false, true) => Compare::SizeOnly,
        (false, false, false) => Compare::QuickCheck,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(argv: &[&str], terminal: bool) -> Config {
        let args = Args::parse_from(["pcopy"].iter().chain(argv)).unwrap();
        Config::new(args, terminal).unwrap()
    }

    #[test]
    fn progress_follows_the_terminal_unless_forced() {
        assert_eq!(config(&["a", "b"], true).progress, ProgressMode::Bar);
        assert_eq!(config(&["a", "b"], false).progress, ProgressMode::Off);
        let forced = config(&["--progress", "a", "b"], false);
        assert_eq!(forced.progress, ProgressMode::Lines);
        let json = config(&["--progress", "--json", "a", "b"], false);
        assert_eq!(json.progress, ProgressMode::JsonLines);
        let off = config(&["--no-progress", "a", "b"], true);
        assert_eq!(off.progress, ProgressMode::Off);
        assert_eq!(config(&["-q", "a", "b"], true).progress, ProgressMode::Off);
    }

    #[test]
    fn verbosity_levels_and_jobs() {
        let c = config(&["-vv", "-j", "3", "-L", "a", "b"], false);
        assert_eq!(c.verbosity, Verbosity::FilesAndWorkers);
        assert_eq!(c.jobs.get(), 3);
        assert!(c.copy.dereference);
        assert_eq!(config(&["-q", "a", "b"], false).verbosity, Verbosity::Quiet);
        assert!(config(&["a", "b"], false).jobs.get() >= 1);
    }
}
