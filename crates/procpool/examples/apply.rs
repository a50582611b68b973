//! `apply`: run one call on a worker process and wait for its result.
//!
//! The seed article's 申请() section: `apply(func, args=())` blocks the
//! caller until the function has run, so a loop of `apply` calls runs its
//! tasks one after the other even when other workers are idle. Python:
//!
//! ```python
//! import multiprocessing, os, time
//!
//! def slow_pow(base, exp, work_ms):
//!     time.sleep(work_ms / 1000)          # stands for real work
//!     return base ** exp, os.getpid()
//!
//! if __name__ == "__main__":
//!     with multiprocessing.Pool(2) as pool:
//!         for i in range(5):
//!             print(pool.apply(slow_pow, (i, 2, 20)))
//! ```
//!
//! ```text
//! cargo run -p procpool --example apply -- [--tasks 5] [--work-ms 20]
//! ```

use std::error::Error;
use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use procpool::Pool;

/// The task: `base` to the power `exp`, after `work_ms` of pretend work,
/// with the pid of the worker process that ran it.
fn slow_pow(base: u64, exp: u32, work_ms: u64) -> (u64, u32) {
    std::thread::sleep(Duration::from_millis(work_ms));
    (base.pow(exp), std::process::id())
}

// Python pickles `slow_pow` by name; procpool sends its index in this table.
procpool::register!(slow_pow);

/// `--tasks N` (default 5) and `--work-ms N` (default 20).
#[derive(Debug)]
pub struct Options {
    pub tasks: u64,
    pub work_ms: u64,
}

impl Options {
    pub fn parse(args: &[OsString]) -> Result<Options, String> {
        let mut options = Options {
            tasks: 5,
            work_ms: 20,
        };
        let mut args = args.iter().map(|a| a.to_str().unwrap_or("?"));
        while let Some(flag) = args.next() {
            let value = args.next().and_then(|v| v.parse().ok());
            let value = value.ok_or_else(|| format!("{flag} needs a number"))?;
            match flag {
                "--tasks" => options.tasks = value,
                "--work-ms" => options.work_ms = value,
                _ => return Err(format!("unknown flag {flag}")),
            }
        }
        Ok(options)
    }
}

pub fn run(out: &mut impl Write, args: &[OsString]) -> Result<(), Box<dyn Error>> {
    let options = Options::parse(args)?;
    let pool = Pool::with_workers(2)?;
    writeln!(
        out,
        "parent pid {}, worker pids {:?}",
        std::process::id(),
        pool.worker_pids()
    )?;

    let started = Instant::now();
    for i in 0..options.tasks {
        // Blocks until a worker has run slow_pow(i, 2) and sent the result.
        let (square, pid) = pool.apply(slow_pow, (i, 2, options.work_ms))?;
        writeln!(out, "apply(pow, ({i}, 2)) = {square} on worker {pid}")?;
    }
    let blocked = started.elapsed().as_millis();
    let least = options.tasks * options.work_ms;
    writeln!(
        out,
        "{} applies of a {} ms task took {blocked} ms (at least {least} ms): \
         each apply waited for its task, so one worker at a time was busy",
        options.tasks, options.work_ms
    )?;

    // The same calls with apply_async first and the waiting afterwards.
    let started = Instant::now();
    let pending = (0..options.tasks)
        .map(|i| pool.apply_async(slow_pow, (i, 2, options.work_ms)))
        .collect::<Result<Vec<_>, _>>()?;
    for result in pending {
        result.get()?;
    }
    writeln!(
        out,
        "the same {} tasks with apply_async took {} ms: both workers at once",
        options.tasks,
        started.elapsed().as_millis()
    )?;
    Ok(())
}

fn main() -> ExitCode {
    procpool::init(); // a worker process branches off into its loop here
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match run(&mut std::io::stdout(), &args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("apply: {e}");
            ExitCode::FAILURE
        }
    }
}
