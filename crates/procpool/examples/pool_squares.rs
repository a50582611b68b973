//! The seed article's code example (三、代码实列), line for line: a pool
//! with one worker per CPU, `apply_async(pow, (i, 2))` for `i` in
//! `0..100`, then `close()` and `join()`.
//!
//! The seed throws the results away; here they are kept and checked, and
//! each task also says which worker ran it. Python, from the seed:
//!
//! ```python
//! import multiprocessing
//!
//! pool = multiprocessing.Pool(processes=multiprocessing.cpu_count())
//! for i in range(100):
//!     pool.apply_async(func=pow, args=(i, 2))
//! pool.close()    # no new tasks after this
//! pool.join()     # wait for the workers; call close() first
//! ```
//!
//! ```text
//! cargo run -p procpool --example pool_squares -- [--items 100]
//! ```

use std::collections::BTreeMap;
use std::error::Error;
use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use procpool::Pool;

/// Python's built-in `pow`, plus the pid of the worker that ran it.
fn pow(base: u64, exp: u32) -> (u64, u32) {
    (base.pow(exp), std::process::id())
}

procpool::register!(pow);

/// `--items N`, default 100.
pub fn parse(args: &[OsString]) -> Result<u64, String> {
    match args {
        [] => Ok(100),
        [flag, n] if flag == "--items" => {
            let n = n.to_str().and_then(|n| n.parse().ok());
            n.ok_or_else(|| "--items needs a number".to_string())
        }
        _ => Err("usage: pool_squares [--items N]".into()),
    }
}

pub fn run(out: &mut impl Write, args: &[OsString]) -> Result<(), Box<dyn Error>> {
    let items = parse(args)?;
    // Pool::new() is Pool(processes=multiprocessing.cpu_count()).
    let mut pool = Pool::new()?;
    writeln!(out, "{} workers: {:?}", pool.workers(), pool.worker_pids())?;

    let results = (0..items)
        .map(|i| pool.apply_async(pow, (i, 2)))
        .collect::<Result<Vec<_>, _>>()?;
    pool.close();
    pool.join()?;

    let mut squares = Vec::with_capacity(results.len());
    let mut per_worker: BTreeMap<u32, usize> = BTreeMap::new();
    for result in results {
        let (square, pid) = result.get()?;
        squares.push(square);
        *per_worker.entry(pid).or_default() += 1;
    }
    writeln!(
        out,
        "first squares: {:?}",
        &squares[..squares.len().min(10)]
    )?;
    writeln!(
        out,
        "sum of {} squares: {}",
        squares.len(),
        squares.iter().sum::<u64>()
    )?;
    for (pid, count) in per_worker {
        writeln!(out, "worker {pid} ran {count} tasks")?;
    }
    Ok(())
}

fn main() -> ExitCode {
    procpool::init(); // a worker process branches off into its loop here
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match run(&mut std::io::stdout(), &args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pool_squares: {e}");
            ExitCode::FAILURE
        }
    }
}
