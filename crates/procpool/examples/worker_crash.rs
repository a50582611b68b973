//! A worker process killed in the middle of a task.
//!
//! The task tells the parent its pid through a manager queue and then waits;
//! the parent kills that worker with SIGKILL (as the OOM killer would).
//! Python's `Pool` notices nothing: the task's `AsyncResult` never becomes
//! ready and `get()` hangs forever (bpo-22393). procpool resolves the task
//! to `Err(WorkerLost)`, starts a new worker in its place, and the pool
//! goes on: two more waiting tasks show both worker slots serving again,
//! one of them with a new pid. Python:
//!
//! ```python
//! import multiprocessing, os, signal
//!
//! def report_then_wait(pids, release):
//!     pids.put(os.getpid())
//!     release.get()
//!
//! if __name__ == "__main__":
//!     m = multiprocessing.Manager()
//!     pids, release = m.Queue(), m.Queue()
//!     with multiprocessing.Pool(2) as pool:
//!         r = pool.apply_async(report_then_wait, (pids, release))
//!         os.kill(pids.get(), signal.SIGKILL)
//!         r.get()                 # hangs forever
//! ```
//!
//! ```text
//! cargo run -p procpool --example worker_crash -- [--after 8]
//! ```

use std::error::Error;
use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use procpool::{Manager, Pool, Queue};

/// Tells the parent which worker runs it, then waits until the parent
/// closes `release` (or kills this process).
fn report_then_wait(pids: Queue<u32>, release: Queue<()>) -> u32 {
    pids.put(std::process::id())
        .expect("the parent's manager is alive");
    let _ = release.get();
    std::process::id()
}

/// The work the pool does after the crash.
fn square_with_pid(x: u64) -> (u64, u32) {
    (x * x, std::process::id())
}

procpool::register!(report_then_wait, square_with_pid);

/// `--after N`, default 8: tasks run after the crash.
pub fn parse(args: &[OsString]) -> Result<u64, String> {
    match args {
        [] => Ok(8),
        [flag, n] if flag == "--after" => {
            let n = n.to_str().and_then(|n| n.parse().ok());
            n.ok_or_else(|| "--after needs a number".to_string())
        }
        _ => Err("usage: worker_crash [--after N]".into()),
    }
}

pub fn run(out: &mut impl Write, args: &[OsString]) -> Result<(), Box<dyn Error>> {
    let after = parse(args)?;
    let manager = Manager::new()?;
    let (pids, release) = (manager.queue::<u32>(0)?, manager.queue::<()>(0)?);
    let pool = Pool::with_workers(2)?;
    writeln!(out, "worker pids {:?}", pool.worker_pids())?;

    let doomed = pool.apply_async(report_then_wait, (pids.clone(), release.clone()))?;
    let victim = pids.get()?;
    writeln!(out, "worker {victim} is inside a task; sending it SIGKILL")?;
    // SAFETY: kill(2) touches no memory of ours. The pid is a live child of
    // this process: the pool reaps it only after it has died, so the pid
    // cannot have been reused by an unrelated process yet.
    if unsafe { libc::kill(victim as libc::pid_t, libc::SIGKILL) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    writeln!(out, "the task's result: {:?}", doomed.get())?;
    writeln!(out, "(Python's Pool would wait for that result forever)")?;

    // One waiting task per worker slot: both must be running a worker.
    let release_both = manager.queue::<()>(0)?;
    let waiting = (0..2)
        .map(|_| pool.apply_async(report_then_wait, (pids.clone(), release_both.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    let mut serving = vec![pids.get()?, pids.get()?];
    serving.sort();
    release_both.close()?;
    for task in waiting {
        task.get()?;
    }
    let replaced = !serving.contains(&victim);
    writeln!(
        out,
        "both slots serve again: workers {serving:?}; {victim} replaced: {replaced}"
    )?;

    let results = pool.map(square_with_pid, 0..after, None)?;
    let squares: Vec<u64> = results.iter().map(|&(square, _)| square).collect();
    writeln!(out, "the pool goes on: map gave {squares:?}")?;
    Ok(())
}

fn main() -> ExitCode {
    procpool::init(); // a worker process branches off into its loop here
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match run(&mut std::io::stdout(), &args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("worker_crash: {e}");
            ExitCode::FAILURE
        }
    }
}
