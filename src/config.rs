//! The validated settings of one run, built from the command line.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::num::NonZeroUsize;

use crate::cli::{Args, WorkerKind};
use crate::job::CopyOptions;

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

/// How progress is shown on stderr while copying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProgressMode {
    /// Nothing.
    Off,
    /// A redrawn bar (stderr is a terminal).
    Bar,
    /// A line every second and a final one (stderr is not a terminal).
    Lines,
}

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
}

impl Config {
    /// Builds the configuration; `stderr_is_terminal` decides between the
    /// bar and plain lines.
    pub(crate) fn new(args: Args, stderr_is_terminal: bool) -> Config {
        let jobs = args
            .jobs
            .and_then(|n| NonZeroUsize::new(n as usize))
            .unwrap_or_else(default_jobs);
        let verbosity = match (args.quiet, args.verbose) {
            (true, _) => Verbosity::Quiet,
            (false, 0) => Verbosity::Normal,
            (false, 1) => Verbosity::Files,
            (false, _) => Verbosity::FilesAndWorkers,
        };
        let progress = progress_mode(&args, verbosity, stderr_is_terminal);
        Config {
            sources: args.sources,
            destination: args.destination,
            jobs,
            workers: args.workers,
            copy: CopyOptions {
                dereference: args.dereference,
            },
            verbosity,
            progress,
        }
    }

    /// [`Config::new`] with the real stderr.
    pub(crate) fn from_args(args: Args) -> Config {
        Config::new(args, std::io::stderr().is_terminal())
    }
}

/// `--progress` and `--no-progress` win; otherwise a bar on a terminal
/// unless `-q`, and nothing in a pipe or log.
fn progress_mode(args: &Args, verbosity: Verbosity, terminal: bool) -> ProgressMode {
    match (args.progress, args.no_progress, terminal) {
        (_, true, _) => ProgressMode::Off,
        (true, _, true) => ProgressMode::Bar,
        (true, _, false) => ProgressMode::Lines,
        (false, false, true) if verbosity > Verbosity::Quiet => ProgressMode::Bar,
        _ => ProgressMode::Off,
    }
}

fn default_jobs() -> NonZeroUsize {
    std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(argv: &[&str], terminal: bool) -> Config {
        let args = Args::parse_from(["pcopy"].iter().chain(argv)).unwrap();
        Config::new(args, terminal)
    }

    #[test]
    fn progress_follows_the_terminal_unless_forced() {
        assert_eq!(config(&["a", "b"], true).progress, ProgressMode::Bar);
        assert_eq!(config(&["a", "b"], false).progress, ProgressMode::Off);
        let forced = config(&["--progress", "a", "b"], false);
        assert_eq!(forced.progress, ProgressMode::Lines);
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
