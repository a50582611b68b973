//! A `Manager` queue shared with pool workers: workers put, the parent gets.
//!
//! The seed article's last section: with a process pool you must use
//! `multiprocessing.Manager().Queue()`, not `multiprocessing.Queue()`.
//! The reason is the same here: an ordinary queue (a `std::sync::mpsc`
//! channel, or Python's pipe-backed `Queue`) lives in the memory and file
//! descriptors of the process that created it, and pool workers are other
//! processes that were started before the queue existed. A manager keeps
//! the queue in the parent and serves it on a Unix socket; the handle a
//! task receives is only an address, a token and a queue number. Python:
//!
//! ```python
//! import multiprocessing, os
//!
//! def produce(q, count):
//!     for i in range(count):
//!         q.put((os.getpid(), i))
//!     return os.getpid()
//!
//! if __name__ == "__main__":
//!     q = multiprocessing.Manager().Queue()
//!     with multiprocessing.Pool(2) as pool:
//!         rs = [pool.apply_async(produce, (q, 5)) for _ in range(2)]
//!         items = [q.get() for _ in range(10)]
//! ```
//!
//! ```text
//! cargo run -p procpool --example manager_queue -- [--count 5]
//! ```

use std::collections::BTreeMap;
use std::error::Error;
use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use procpool::{Manager, Pool, Queue};

/// Runs in a worker process: the handle arrived inside the task's
/// arguments and connects to the parent's manager on first use.
fn produce(queue: Queue<(u32, u64)>, count: u64) -> u32 {
    let pid = std::process::id();
    for i in 0..count {
        queue.put((pid, i)).expect("the parent's manager is alive");
    }
    pid
}

procpool::register!(produce);

const WORKERS: usize = 2;

/// `--count N`, default 5: items each worker puts.
pub fn parse(args: &[OsString]) -> Result<u64, String> {
    match args {
        [] => Ok(5),
        [flag, n] if flag == "--count" => {
            let n = n.to_str().and_then(|n| n.parse().ok());
            n.ok_or_else(|| "--count needs a number".to_string())
        }
        _ => Err("usage: manager_queue [--count N]".into()),
    }
}

pub fn run(out: &mut impl Write, args: &[OsString]) -> Result<(), Box<dyn Error>> {
    let count = parse(args)?;
    let manager = Manager::new()?;
    let queue = manager.queue::<(u32, u64)>(0)?;
    let pool = Pool::with_workers(WORKERS)?;
    writeln!(
        out,
        "parent pid {}, worker pids {:?}",
        std::process::id(),
        pool.worker_pids()
    )?;
    let handle_bytes = postcard::to_allocvec(&queue)?.len();
    writeln!(
        out,
        "a queue handle travels as {handle_bytes} bytes: socket path, token, queue number"
    )?;

    let producers = (0..WORKERS)
        .map(|_| pool.apply_async(produce, (queue.clone(), count)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut per_worker: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for _ in 0..WORKERS as u64 * count {
        let (pid, i) = queue.get()?;
        per_worker.entry(pid).or_default().push(i);
    }
    for producer in producers {
        producer.get()?;
    }
    for (pid, items) in &per_worker {
        writeln!(out, "got from worker {pid}: {items:?}")?;
    }
    writeln!(out, "queue empty now: {}", queue.empty()?)?;
    writeln!(out, "{}", WHY_NOT_A_CHANNEL)?;
    Ok(())
}

/// Printed by the example: the seed's "why Manager().Queue()" for Rust.
const WHY_NOT_A_CHANNEL: &str = "\
why not a std::sync::mpsc channel? A Sender is a pointer into this \
process's memory. A worker process is this program started again, with \
memory of its own, and everything a task receives crosses a socket as \
bytes. A Sender cannot become bytes (it is not Serialize), so \
pool.apply_async(f, (sender,)) does not compile for a Pool; a ThreadPool, \
whose workers share this memory, accepts it. Python's multiprocessing.Queue \
fails the same way in a Pool task (RuntimeError: Queue objects should only \
be shared between processes through inheritance).";

fn main() -> ExitCode {
    procpool::init(); // a worker process branches off into its loop here
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match run(&mut std::io::stdout(), &args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("manager_queue: {e}");
            ExitCode::FAILURE
        }
    }
}
