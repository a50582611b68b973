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

mod autojobs;
mod cli;
mod config;
mod copy;
mod exit_codes;
mod fdbudget;
mod finish;
mod generate;
mod job;
mod plan;
mod relpath;
mod run;
mod select;
mod signals;
mod ui;
mod walk;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::cli::Args;
use crate::config::Config;
use crate::exit_codes::ExitStatus;
use crate::ui::{json, report::RunReport};

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
        Err(err) => return Ok(cli::clap_exit(&err).into()),
    };
    if let Some(what) = args.generate {
        generate::print(what);
        return Ok(ExitCode::SUCCESS);
    }
    let json = args.json;
    fdbudget::raise_limit();
    let config = match Config::from_args(args) {
        Ok(config) => config,
        Err(fatal) => {
            let report = RunReport::stopped(&fatal.into(), Duration::ZERO);
            if json {
                json::print(&report, false);
            }
            return Ok(report.status.into());
        }
    };
    signals::install()?;
    let started = Instant::now();
    let report =
        transfer(&config).unwrap_or_else(|err| RunReport::stopped(&err, started.elapsed()));
    if config.json {
        json::print(&report, config.copy.dry_run);
    }
    Ok(report.status.into())
}

/// Resolves the command line and copies. An error that stops the run
/// early is printed after the summary.
fn transfer(config: &Config) -> anyhow::Result<RunReport> {
    let mut plan = config.plan()?;
    let mut reporter = config.reporter()?;
    if !config.recursive && config.files_from {
        plan.flatten_directories();
    } else if !config.recursive {
        for src in plan.leave_out_directories() {
            let shown = crate::ui::escape::Escaped::path(&src);
            reporter.notice(&format!("skipping directory {shown} (no -r)"));
        }
        if plan.is_empty() {
            // rsync creates no destination for a run that copies nothing.
            return Ok(reporter.finish(false));
        }
    }
    let end = run::run(&config.run_setup(), &plan, &mut reporter)?;
    let mut report = reporter.finish(end.interrupted);
    if let Some(fatal) = end
        .fatal
        .filter(|_| report.status != ExitStatus::Interrupted)
    {
        report.status = fatal.status;
        report.stopped_by(&fatal.into());
    }
    Ok(report)
}
