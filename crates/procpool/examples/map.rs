//! `map`: apply one function to every item, results in input order.
//!
//! The seed article's 地图() section. `map` cuts the input into chunks and
//! sends each chunk to a worker as one message, so a trivial function costs
//! a slot in a chunk rather than a round trip per item. Without a
//! `chunksize`, Python (and procpool) pick `ceil(len / (4 * workers))`:
//! about four chunks per worker. Python:
//!
//! ```python
//! import multiprocessing, os
//!
//! def square_with_pid(x):
//!     return x * x, os.getpid()
//!
//! if __name__ == "__main__":
//!     with multiprocessing.Pool(2) as pool:
//!         results = pool.map(square_with_pid, range(100))        # chunksize 13
//!         results = pool.map(square_with_pid, range(100), 50)    # two chunks
//! ```
//!
//! ```text
//! cargo run -p procpool --example map -- [--items 100] [--workers 2]
//! ```

use std::error::Error;
use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use procpool::Pool;

/// The task: the square, and which worker computed it.
fn square_with_pid(x: u64) -> (u64, u32) {
    (x * x, std::process::id())
}

procpool::register!(square_with_pid);

/// `--items N` (default 100) and `--workers N` (default 2).
#[derive(Debug)]
pub struct Options {
    pub items: u64,
    pub workers: u64,
}

impl Options {
    pub fn parse(args: &[OsString]) -> Result<Options, String> {
        let mut options = Options {
            items: 100,
            workers: 2,
        };
        let mut args = args.iter().map(|a| a.to_str().unwrap_or("?"));
        while let Some(flag) = args.next() {
            let value = args.next().and_then(|v| v.parse().ok());
            let value = value.ok_or_else(|| format!("{flag} needs a number"))?;
            match flag {
                "--items" => options.items = value,
                "--workers" if value > 0 => options.workers = value,
                _ => return Err(format!("unknown flag or bad value: {flag}")),
            }
        }
        Ok(options)
    }
}

pub fn run(out: &mut impl Write, args: &[OsString]) -> Result<(), Box<dyn Error>> {
    let Options { items, workers } = Options::parse(args)?;
    let pool = Pool::with_workers(workers as usize)?;
    writeln!(out, "worker pids {:?}", pool.worker_pids())?;

    // Python's rule, as pool.map applies it when chunksize is None.
    let chunksize = items.div_ceil(4 * workers).max(1);
    let chunks: Vec<u64> = (0..items)
        .step_by(chunksize as usize)
        .map(|start| chunksize.min(items - start))
        .collect();
    writeln!(
        out,
        "map over {items} items on {workers} workers: chunksize = ceil({items} / (4 * {workers})) = {chunksize}"
    )?;
    writeln!(out, "{} chunks of sizes {chunks:?}", chunks.len())?;

    let results = pool.map(square_with_pid, 0..items, None)?;
    let squares: Vec<u64> = results.iter().map(|&(square, _)| square).collect();
    let in_order = squares
        .iter()
        .enumerate()
        .all(|(i, &s)| s == (i as u64).pow(2));
    writeln!(out, "results in input order: {in_order}")?;
    writeln!(out, "first squares: {:?}", &squares[..squares.len().min(8)])?;

    // Each chunk runs whole on one worker, so the worker can only change
    // where a chunk begins: at a multiple of the chunk size.
    for (start, end, pid) in runs_by_worker(&results) {
        writeln!(out, "items {start}..{end} ran on worker {pid}")?;
    }

    let explicit = pool.map(square_with_pid, 0..items, Some(50))?;
    let by_worker = runs_by_worker(&explicit);
    writeln!(
        out,
        "with chunksize 50: {} chunk(s), {} run(s) of one worker",
        items.div_ceil(50),
        by_worker.len()
    )?;
    Ok(())
}

/// Consecutive items computed by the same worker: `(start, end, pid)`.
pub fn runs_by_worker(results: &[(u64, u32)]) -> Vec<(usize, usize, u32)> {
    let mut runs: Vec<(usize, usize, u32)> = Vec::new();
    for (i, &(_, pid)) in results.iter().enumerate() {
        match runs.last_mut() {
            Some((_, end, last)) if *last == pid => *end = i + 1,
            _ => runs.push((i, i + 1, pid)),
        }
    }
    runs
}

fn main() -> ExitCode {
    procpool::init(); // a worker process branches off into its loop here
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match run(&mut std::io::stdout(), &args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("map: {e}");
            ExitCode::FAILURE
        }
    }
}
