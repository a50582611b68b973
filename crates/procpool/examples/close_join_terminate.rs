//! `close`, `join` and `terminate`: the three ways a pool's work ends.
//!
//! The seed article's close(), 终端() (terminate) and 加入() (join) sections:
//! - `close()` stops new submissions; tasks already queued still run.
//! - `join()` waits for the workers to exit, and only after `close()` or
//!   `terminate()` (Python: `ValueError: Pool is still running`).
//! - `terminate()` stops the workers now; queued tasks never run. Python
//!   leaves their `AsyncResult`s pending forever (`get()` hangs); procpool
//!   resolves every one of them to `Err(Terminated)`.
//!
//! Python:
//!
//! ```python
//! pool = multiprocessing.Pool(2)
//! rs = [pool.apply_async(square_with_pid, (i,)) for i in range(4)]
//! pool.close()                    # no more tasks...
//! pool.join()                     # ...wait for the queued ones
//! print([r.get() for r in rs])
//!
//! pool = multiprocessing.Pool(2)
//! queued = [pool.apply_async(square_with_pid, (i,)) for i in range(3)]
//! pool.terminate()                # queued tasks are dropped
//! pool.join()
//! # queued[0].get() would now wait forever
//! ```
//!
//! ```text
//! cargo run -p procpool --example close_join_terminate -- [--tasks 4]
//! ```

use std::error::Error;
use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use procpool::{AsyncResult, Manager, Pool, Queue};

/// A quick task: the square, and which worker computed it.
fn square_with_pid(x: u64) -> (u64, u32) {
    (x * x, std::process::id())
}

/// Keeps a worker busy: reports its pid, then waits for a gate that the
/// parent never opens; `terminate()` ends it instead.
fn hold_worker(started: Queue<u32>, gate: Queue<()>) -> (u64, u32) {
    let pid = std::process::id();
    started.put(pid).expect("the parent's manager is alive");
    let _ = gate.get();
    (0, pid)
}

procpool::register!(square_with_pid, hold_worker);

const WORKERS: usize = 2;

/// `--tasks N`, default 4: tasks queued in each half.
pub fn parse(args: &[OsString]) -> Result<u64, String> {
    match args {
        [] => Ok(4),
        [flag, n] if flag == "--tasks" => {
            let n = n.to_str().and_then(|n| n.parse().ok());
            n.ok_or_else(|| "--tasks needs a number".to_string())
        }
        _ => Err("usage: close_join_terminate [--tasks N]".into()),
    }
}

pub fn run(out: &mut impl Write, args: &[OsString]) -> Result<(), Box<dyn Error>> {
    let tasks = parse(args)?;
    close_then_join(out, tasks)?;
    terminate_then_join(out, tasks)
}

fn close_then_join(out: &mut impl Write, tasks: u64) -> Result<(), Box<dyn Error>> {
    writeln!(out, "== close, then join ==")?;
    let mut pool = Pool::with_workers(WORKERS)?;
    writeln!(out, "join() while running: {:?}", pool.join())?;
    let results = submit(&pool, tasks)?;
    pool.close();
    let refused = pool.apply_async(square_with_pid, (99,));
    writeln!(out, "apply_async after close(): {:?}", refused.map(drop))?;
    pool.join()?;
    writeln!(out, "join() returned: the {tasks} queued tasks ran first")?;
    for (i, result) in results.into_iter().enumerate() {
        let (square, pid) = result.get()?;
        writeln!(out, "task {i}: Ok({square}) on worker {pid}")?;
    }
    Ok(())
}

fn terminate_then_join(out: &mut impl Write, tasks: u64) -> Result<(), Box<dyn Error>> {
    writeln!(out, "== terminate, then join ==")?;
    let mut pool = Pool::with_workers(WORKERS)?;
    let manager = Manager::new()?;
    let (started, gate) = (manager.queue::<u32>(0)?, manager.queue::<()>(0)?);
    let running = (0..WORKERS)
        .map(|_| pool.apply_async(hold_worker, (started.clone(), gate.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    let mut busy: Vec<u32> = (0..WORKERS)
        .map(|_| started.get())
        .collect::<Result<_, _>>()?;
    busy.sort();
    // Both workers are inside a task, so these wait in the pool's queue.
    let queued = submit(&pool, tasks)?;
    writeln!(
        out,
        "workers {busy:?} are busy; {tasks} tasks are queued behind them"
    )?;

    pool.terminate();
    for (i, result) in queued.into_iter().enumerate() {
        writeln!(out, "queued task {i}: {:?}", result.get().map(drop))?;
    }
    for (i, result) in running.into_iter().enumerate() {
        writeln!(out, "running task {i}: {:?}", result.get().map(drop))?;
    }
    pool.join()?;
    writeln!(
        out,
        "join() returned after terminate(); in Python those get() calls would hang"
    )?;
    Ok(())
}

fn submit(pool: &Pool, tasks: u64) -> Result<Vec<AsyncResult<(u64, u32)>>, procpool::Error> {
    (0..tasks)
        .map(|i| pool.apply_async(square_with_pid, (i,)))
        .collect()
}

fn main() -> ExitCode {
    procpool::init(); // a worker process branches off into its loop here
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match run(&mut std::io::stdout(), &args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("close_join_terminate: {e}");
            ExitCode::FAILURE
        }
    }
}
