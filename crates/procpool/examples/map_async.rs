//! `map_async`: `map` without waiting; the result arrives later, all at once.
//!
//! The seed article's map_async() section. `map_async` returns an
//! `AsyncResult` at once; its `ready()` stays false until every chunk is
//! back. The seed warns that using the results before they are done is an
//! error: in Python `successful()` raises `ValueError` then, here it
//! returns `None`. The optional callback gets the whole result list.
//!
//! To make "not ready yet" certain rather than likely, both workers are
//! first given a task that holds them until the parent opens a gate (closes
//! a manager queue), so the map's chunks wait in the pool's queue. Python:
//!
//! ```python
//! import multiprocessing, os
//!
//! def square_with_pid(x):
//!     return x * x, os.getpid()
//!
//! if __name__ == "__main__":
//!     with multiprocessing.Pool(2) as pool:
//!         r = pool.map_async(square_with_pid, range(20),
//!                            callback=lambda rs: print("callback:", len(rs)))
//!         print(r.ready())        # False while the workers are busy
//!         print(r.get()[:5])
//! ```
//!
//! ```text
//! cargo run -p procpool --example map_async -- [--items 20]
//! ```

use std::error::Error;
use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;
use std::sync::mpsc;

use procpool::{Manager, Pool, Queue};

/// The map's task: the square, and which worker computed it.
fn square_with_pid(x: u64) -> (u64, u32) {
    (x * x, std::process::id())
}

/// Occupies a worker: says which worker it is, then waits until the
/// parent closes `gate` (a `get` on a closed, empty queue fails at once).
fn hold_worker(started: Queue<u32>, gate: Queue<()>) -> u32 {
    let pid = std::process::id();
    started.put(pid).expect("the parent's manager is alive");
    let _ = gate.get();
    pid
}

procpool::register!(square_with_pid, hold_worker);

const WORKERS: usize = 2;

/// `--items N`, default 20.
pub fn parse(args: &[OsString]) -> Result<u64, String> {
    match args {
        [] => Ok(20),
        [flag, n] if flag == "--items" => {
            let n = n.to_str().and_then(|n| n.parse().ok());
            n.ok_or_else(|| "--items needs a number".to_string())
        }
        _ => Err("usage: map_async [--items N]".into()),
    }
}

pub fn run(out: &mut impl Write, args: &[OsString]) -> Result<(), Box<dyn Error>> {
    let items = parse(args)?;
    let pool = Pool::with_workers(WORKERS)?;
    let manager = Manager::new()?;
    let (started, gate) = (manager.queue::<u32>(0)?, manager.queue::<()>(0)?);
    let holders = (0..WORKERS)
        .map(|_| pool.apply_async(hold_worker, (started.clone(), gate.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    let mut busy: Vec<u32> = (0..WORKERS)
        .map(|_| started.get())
        .collect::<Result<_, _>>()?;
    busy.sort();
    writeln!(out, "both workers are held: {busy:?}")?;

    let (told, hear) = mpsc::channel();
    let result = pool.map_async_with_callbacks(
        square_with_pid,
        0..items,
        None,
        move |all: &Vec<(u64, u32)>| {
            let _ = told.send(all.len());
        },
        |error| eprintln!("map_async failed: {error}"),
    )?;
    writeln!(
        out,
        "map_async returned at once; ready() = {}",
        result.ready()
    )?;
    writeln!(
        out,
        "successful() = {:?} (Python raises ValueError: not ready)",
        result.successful()
    )?;

    gate.close()?; // let the holders finish; the map's chunks run next
    for holder in holders {
        holder.get()?;
    }
    let results = result.get()?;
    writeln!(out, "callback got all {} results at once", hear.recv()?)?;
    let squares: Vec<u64> = results.iter().map(|&(square, _)| square).collect();
    writeln!(out, "first squares: {:?}", &squares[..squares.len().min(5)])?;
    let mut pids: Vec<u32> = results.iter().map(|&(_, pid)| pid).collect();
    pids.sort();
    pids.dedup();
    writeln!(out, "computed by workers {pids:?}")?;
    Ok(())
}

fn main() -> ExitCode {
    procpool::init(); // a worker process branches off into its loop here
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match run(&mut std::io::stdout(), &args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("map_async: {e}");
            ExitCode::FAILURE
        }
    }
}
