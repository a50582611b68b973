//! A task that never returns, stopped by a time limit, and tasks cancelled
//! before and while they run.
//!
//! Python's `Pool` can only stop *waiting*: `get(timeout)` raises
//! `TimeoutError`, but the task runs on and its worker stays busy, so the
//! next task waits behind it (here, for an hour). With
//! `Builder::task_timeout`, procpool stops the task itself: its worker is
//! killed and a new one takes its place before the result resolves to
//! `Err(TimedOut)`. `AsyncResult::cancel` does the same on request; a
//! queued task it cancels resolves at once and is dropped unrun when a
//! worker reaches it. Python:
//!
//! ```python
//! import multiprocessing, time
//!
//! def stuck(seconds):
//!     time.sleep(seconds)
//!
//! if __name__ == "__main__":
//!     with multiprocessing.Pool(1) as pool:
//!         r = pool.apply_async(stuck, (3600,))
//!         try:
//!             r.get(timeout=0.5)         # stops waiting...
//!         except multiprocessing.TimeoutError:
//!             pass
//!         print(pool.apply(abs, (-1,)))  # ...but this waits an hour
//! ```
//!
//! ```text
//! cargo run -p procpool --example timeouts -- [--limit-ms 500]
//! ```

use std::error::Error;
use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use procpool::{Manager, Pool, Queue};

/// Tells the parent which worker runs it, then waits for `release`, which
/// nobody sends: a task that would never return.
fn report_then_wait(pids: Queue<u32>, release: Queue<()>) {
    pids.put(std::process::id())
        .expect("the parent's manager is alive");
    let _ = release.get();
}

fn square(x: u64) -> u64 {
    x * x
}

procpool::register!(report_then_wait, square);

/// `--limit-ms N`, default 500: the pool's time limit per task.
pub fn parse(args: &[OsString]) -> Result<Duration, String> {
    match args {
        [] => Ok(Duration::from_millis(500)),
        [flag, n] if flag == "--limit-ms" => {
            let n = n.to_str().and_then(|n| n.parse().ok());
            n.map(Duration::from_millis)
                .ok_or_else(|| "--limit-ms needs a number".to_string())
        }
        _ => Err("usage: timeouts [--limit-ms N]".into()),
    }
}

/// Whether process `pid` is still there (not yet reaped).
fn is_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

pub fn run(out: &mut impl Write, args: &[OsString]) -> Result<(), Box<dyn Error>> {
    let limit = parse(args)?;
    let manager = Manager::new()?;
    let (pids, never) = (manager.queue::<u32>(0)?, manager.queue::<()>(0)?);

    writeln!(out, "== a time limit of {} ms ==", limit.as_millis())?;
    let pool = Pool::builder().workers(1).task_timeout(limit).build()?;
    let stuck = pool.apply_async(report_then_wait, (pids.clone(), never.clone()))?;
    let victim = pids.get()?;
    writeln!(out, "worker {victim} runs a task that never returns")?;
    writeln!(out, "its result: {:?}", stuck.get())?;
    writeln!(
        out,
        "worker {victim} still alive: {}; the pool's workers now: {:?}",
        is_alive(victim),
        pool.worker_pids()
    )?;
    writeln!(
        out,
        "the next task runs at once: {:?}",
        pool.apply(square, (7,))
    )?;

    writeln!(out, "== cancel ==")?;
    let pool = Pool::with_workers(1)?;
    let running = pool.apply_async(report_then_wait, (pids.clone(), never.clone()))?;
    let queued = pool.apply_async(square, (8,))?;
    let worker = pids.get()?;
    writeln!(out, "queued task: cancel() = {}", queued.cancel())?;
    writeln!(out, "its result: {:?}", queued.get())?;
    writeln!(
        out,
        "task running on worker {worker}: cancel() = {}",
        running.cancel()
    )?;
    writeln!(out, "its result: {:?}", running.get())?;
    writeln!(
        out,
        "worker {worker} still alive: {}; the pool's workers now: {:?}",
        is_alive(worker),
        pool.worker_pids()
    )?;
    let done = pool.apply_async(square, (9,))?;
    done.wait();
    writeln!(out, "a finished task: cancel() = {}", done.cancel())?;
    writeln!(out, "its result: {:?}", done.get())?;
    Ok(())
}

fn main() -> ExitCode {
    procpool::init(); // a worker process branches off into its loop here
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match run(&mut std::io::stdout(), &args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("timeouts: {e}");
            ExitCode::FAILURE
        }
    }
}
