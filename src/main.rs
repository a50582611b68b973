//! pcopy: a parallel file copier on a Python-style process pool.
//!
//! `main` only sets up and reports; the work is in [`pipeline`], which ties
//! the walker ([`walk`]), the pool workers ([`worker`], running the [`copy`]
//! engine) and the progress display ([`progress`]) together.

mod cli;
mod config;
mod copy;
mod dirmeta;
mod escape;
mod exit_codes;
mod job;
mod pipeline;
mod plan;
mod progress;
mod report;
mod signals;
mod walk;
mod worker;

use std::process::ExitCode;

use crate::cli::Args;
use crate::config::Config;
use crate::exit_codes::ExitStatus;
use crate::report::Reporter;

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
    let config = Config::from_args(args);
    signals::install()?;
    let plan = plan::resolve(
        &config.sources,
        &config.destination,
        config.copy.dereference,
    )?;
    plan::create_destination(&plan)?;
    let mut reporter = Reporter::new(config.verbosity, progress::for_mode(config.progress));
    let end = pipeline::run(&config, &plan, &mut reporter)?;
    let (status, _) = reporter.finish(end.interrupted);
    match end.fatal {
        Some(fatal) if status != ExitStatus::Interrupted => Err(fatal.into()),
        _ => Ok(status.into()),
    }
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
