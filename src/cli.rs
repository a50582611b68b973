//! The command line. The doc comments of the flags are the `--help` text.

use std::ffi::OsString;

use clap::{ArgAction, Parser, ValueEnum};

use crate::exit_codes::EXIT_STATUS_HELP;

/// The text after the flags in `--help`: examples and exit statuses.
const AFTER_HELP: &str = "\
Examples:
  pcopy photos/ /backup/photos     copy the contents of photos into /backup/photos
  pcopy photos /backup             copy photos itself, to /backup/photos
  pcopy a.txt b.txt notes/ /tmp/x  copy several sources into the directory /tmp/x
  pcopy -j 8 --progress big/ /mnt/big   8 workers, progress lines even in a log

A trailing slash on a directory source copies its contents (rsync's rule).
Running the same command twice gives the same tree.
";

/// How pool workers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum WorkerKind {
    /// Worker processes (this program started again): one crash cannot
    /// take the run down with it.
    Process,
    /// Worker threads in this process: no start-up cost, no socket hops.
    Thread,
}

/// Copy files and directory trees in parallel.
///
/// Copies each SRC to DST with a pool of workers. Every file is written to
/// a temporary file and renamed into place only when complete, so an
/// interrupted run never leaves a half-written file under a real name.
/// Per-file errors are reported and do not stop the run.
#[derive(Debug, Parser)]
#[command(
    name = "pcopy",
    version,
    about,
    long_about,
    after_help = format!("{AFTER_HELP}\n{EXIT_STATUS_HELP}"),
    max_term_width = 100
)]
pub(crate) struct Args {
    /// Files or directories to copy. `dir/` copies the contents of dir,
    /// `dir` copies dir itself into DST.
    #[arg(value_name = "SRC", required = true, num_args = 1..)]
    pub(crate) sources: Vec<OsString>,

    /// Where to copy to. With several sources, or a directory source
    /// without a trailing slash, a directory (created if missing).
    #[arg(value_name = "DST", required = true)]
    pub(crate) destination: OsString,

    /// Number of workers copying at once [default: the number of CPUs].
    #[arg(short = 'j', long = "jobs", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub(crate) jobs: Option<u32>,

    /// Kind of workers: separate processes or threads of this process.
    #[arg(long, value_enum, value_name = "KIND", default_value_t = WorkerKind::Thread)]
    pub(crate) workers: WorkerKind,

    /// Follow symbolic links in the sources and copy what they point to.
    #[arg(short = 'L', long)]
    pub(crate) dereference: bool,

    /// List each copied file on stdout; twice (-vv) also show the pid of
    /// the worker that copied it.
    #[arg(short, long, action = ArgAction::Count, conflicts_with = "quiet")]
    pub(crate) verbose: u8,

    /// Print only errors: no warnings, no summary, no progress bar.
    #[arg(short, long)]
    pub(crate) quiet: bool,

    /// Show progress even when stderr is not a terminal: a line every
    /// second and a final one.
    #[arg(long, overrides_with = "no_progress")]
    pub(crate) progress: bool,

    /// Never show progress, not even the bar on a terminal.
    #[arg(long, overrides_with = "progress")]
    pub(crate) no_progress: bool,
}

impl Args {
    /// Parses `args` (program name first). Errors include `--help` and
    /// `--version`, which clap reports as errors of their own kinds.
    pub(crate) fn parse_from<I, T>(args: I) -> Result<Args, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        Args::try_parse_from(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use clap::error::ErrorKind;

    #[test]
    fn command_definition_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn sources_come_before_the_destination() {
        let args = Args::parse_from(["pcopy", "a", "b/", "c", "dst"]).unwrap();
        assert_eq!(args.sources, ["a", "b/", "c"]);
        assert_eq!(args.destination, "dst");
        assert_eq!(args.verbose, 0);
    }

    #[test]
    fn zero_jobs_and_a_lone_path_are_usage_errors() {
        let zero = Args::parse_from(["pcopy", "-j", "0", "a", "b"]).unwrap_err();
        assert_eq!(zero.kind(), ErrorKind::ValueValidation);
        let lone = Args::parse_from(["pcopy", "a"]).unwrap_err();
        assert_eq!(lone.kind(), ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn the_last_progress_flag_wins_and_verbosity_counts() {
        let args = Args::parse_from(["pcopy", "--progress", "--no-progress", "-vv", "a", "b"]);
        let args = args.unwrap();
        assert!(args.no_progress && !args.progress);
        assert_eq!(args.verbose, 2);
    }

    #[test]
    fn help_shows_examples_and_exit_statuses() {
        let help = Args::command().render_long_help().to_string();
        assert!(help.contains("pcopy photos/ /backup/photos"));
        assert!(help.contains("24  some source files vanished"));
    }
}
