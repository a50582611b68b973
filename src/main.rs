//! pcopy: a parallel file copier on a Python-style process pool.
//!
//! A file passes through the stages in this order, one module each:
//! [`plan`] (where each source goes), [`select`] (which entries are
//! copied), [`walk`] (destination directories made, jobs queued), [`run`](mod@run)
//! (the main thread's loop and the pool's worker tasks), [`copy`] (the
//! engine, one file at a time), [`finish`] (hard links, `--delete`,
//! directory metadata); [`ui`] tells the user about all of it. The
//! messages between them are in [`job`]. `main` only sets up and reports:
//! [`config`] turns the [`cli`] flags into each stage's setup.

mod cli;
mod config;
mod copy;
mod exit_codes;
mod finish;
mod job;
mod plan;
mod run;
mod select;
mod signals;
mod ui;
mod walk;

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::cli::Args;
use crate::config::Config;
use crate::exit_codes::ExitStatus;
use crate::ui::report::{ErrorRecord, Reporter, RunReport};
use crate::ui::{json, progress};

// Unit tests that start process pools need the test binary to become a
// worker when re-executed, as `procpool::init` does for the real binary.
#[cfg(test)]
procpool::test_support!();

fn main() -> ExitCode {
    // Process workers are this binary started again: they branch off here.
    procpool::init();
    match run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("pcopy: {err:#}");
            exit_codes::status_of(&err).into()
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let args = match Args::parse_from(std::env::args_os()) {
        Ok(args) => args,
        Err(err) => return Ok(clap_exit(&err)),
    };
    let json = args.json;
    let config = match Config::from_args(args) {
        Ok(config) => config,
        Err(fatal) => {
            eprintln!("pcopy: {fatal}");
            if json {
                let mut report = RunReport::stopped(fatal.status, Duration::ZERO);
                report.errors.push(ErrorRecord {
                    path: None,
                    error: fatal.message,
                });
                print_json(&report, false);
            }
            return Ok(fatal.status.into());
        }
    };
    signals::install()?;
    let started = Instant::now();
    let (mut report, error) = match transfer(&config) {
        Ok(done) => done,
        Err(err) => {
            let status = exit_codes::status_of(&err);
            (RunReport::stopped(status, started.elapsed()), Some(err))
        }
    };
    if let Some(err) = error {
        eprintln!("pcopy: {err:#}");
        report.errors.push(ErrorRecord {
            path: None,
            error: format!("{err:#}"),
        });
    }
    if config.json {
        print_json(&report, config.copy.dry_run);
    }
    Ok(report.status.into())
}

/// Resolves the command line and copies. An error that ends the run early
/// comes back beside the report, to be printed after the summary.
fn transfer(config: &Config) -> anyhow::Result<(RunReport, Option<anyhow::Error>)> {
    let plan = plan::resolve(
        &config.sources,
        &config.destination,
        config.copy.dereference,
    )?;
    if !config.copy.dry_run {
        plan::create_destination(&plan)?;
    }
    let mut reporter = Reporter::new(config.verbosity, progress::for_mode(config.progress));
    if config.json {
        reporter = reporter.for_json();
    }
    if config.copy.dry_run {
        reporter = reporter.itemized();
    }
    let end = run::run(config, &plan, &mut reporter)?;
    let mut report = reporter.finish(end.interrupted);
    match end.fatal {
        Some(fatal) if report.status != ExitStatus::Interrupted => {
            report.status = fatal.status;
            Ok((report, Some(fatal.into())))
        }
        _ => Ok((report, None)),
    }
}

/// The `--json` summary on stdout. A closed stdout must not turn a finished
/// run into a failure, so a write error is ignored.
fn print_json(report: &RunReport, dry_run: bool) {
    let _ = writeln!(
        std::io::stdout().lock(),
        "{}",
        json::render(report, dry_run)
    );
}

/// Prints a clap error, or the help or version text clap reports as one,
/// and gives its status: usage errors exit with 1 (rsync's number) rather
/// than clap's 2.
fn clap_exit(err: &clap::Error) -> ExitCode {
    let _ = err.print();
    if err.use_stderr() {
        ExitStatus::Usage.into()
    } else {
        ExitStatus::Success.into()
    }
}
