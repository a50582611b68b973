//! procpool's throughput on trivial tasks, figure for figure against
//! `shared/anchors/python_pool_bench.py` (Python's `multiprocessing.Pool`
//! and `Manager().Queue()`), for process workers and for thread workers.
//!
//! ```text
//! cargo run --release -p procpool --example pool_bench -- -j 2
//! python3 python_pool_bench.py -j 2
//! ```
//!
//! Each line is `NAME ITEMS SECONDS ITEMS_PER_SECOND` in the Python script's
//! format (`"%-28s %10d %9.3f %12.0f"`), NAME being `BACKEND.FIGURE`:
//!
//! | figure | Python line | what is timed |
//! |---|---|---|
//! | `apply_async` | `pool.apply_async` | `--n-async` calls of `square`, then every `get` |
//! | `apply_round_trip` | `pool.apply (round trip)` | `--n-apply` (2,000) calls of `apply`, one after the other |
//! | `map` | `pool.map (default chunks)` | `map` of `--n-map` items, default chunk size |
//! | `imap_unordered` | `pool.imap_unordered` | `--n-async` items, chunk size 1 |
//! | `queue_put_get` | `Manager().Queue put+get` | `-j` tasks each `put` `--n-queue / j` items on an unbounded manager queue; the parent `get`s them all |
//! | `queue_put_get_batch` | (none) | the same with `put_many` of 256 and `get_many` |
//! | `bytes_echo_mb` | (none) | one `apply` of `echo` on a `Vec<u8>` of `--mb` MB (200): ITEMS is MB, the rate MB/s |
//!
//! Flags: `-j N` (workers, default: the CPUs), `--n-async N` (50,000),
//! `--n-map N` (1,000,000), `--n-queue N` (20,000), and, beyond the Python
//! script's, `--n-apply N` (2,000), `--mb N` (200), `--backend
//! process|thread` (both) and `--only FIGURE` (all), to profile one figure.

use std::error::Error;
use std::ffi::OsString;
use std::io::Write;
use std::time::Instant;

use procpool::{Manager, Pool, Queue, Runs, TaskFn, ThreadPool, WorkerPool};

/// Python: `def square(x): return x * x`
fn square(x: u64) -> u64 {
    x * x
}

/// Python's `put_many(q, n)`: puts `0..n` one item at a time.
fn put_items(queue: Queue<u64>, n: u64) -> u64 {
    for i in 0..n {
        queue.put(i).expect("the manager outlives the benchmark");
    }
    n
}

/// The same items as [`put_items`], in `put_many` batches of [`BATCH`].
fn put_batches(queue: Queue<u64>, n: u64) -> u64 {
    let mut next = 0;
    while next < n {
        let end = (next + BATCH as u64).min(n);
        let batch: Vec<u64> = (next..end).collect();
        queue
            .put_many(batch)
            .expect("the manager outlives the benchmark");
        next = end;
    }
    n
}

/// Hands its bytes back: what a `Vec<u8>` costs to cross both ways.
fn echo(data: Vec<u8>) -> Vec<u8> {
    data
}

procpool::register!(square, put_items, put_batches, echo);

/// Items per `put_many` and most items per `get_many`.
const BATCH: usize = 256;

/// The arguments of a producer task: the queue and how many items to put.
type QueueArgs = (Queue<u64>, u64);

/// The benchmark's settings, from the same flags as the Python script.
#[derive(Debug, Clone)]
pub struct Options {
    pub workers: usize,
    pub n_async: u64,
    pub n_apply: u64,
    pub n_map: u64,
    pub n_queue: u64,
    pub mb: u64,
    pub backends: Vec<&'static str>,
    pub only: Option<String>,
}

impl Options {
    /// Parses `-j N`, `--n-async N`, `--n-apply N`, `--n-map N`,
    /// `--n-queue N`, `--mb N`, `--backend process|thread` and `--only FIGURE`.
    pub fn parse(args: &[OsString]) -> Result<Options, String> {
        let mut options = Options {
            workers: std::thread::available_parallelism().map_or(1, usize::from),
            n_async: 50_000,
            n_apply: 2_000,
            n_map: 1_000_000,
            n_queue: 20_000,
            mb: 200,
            backends: vec!["process", "thread"],
            only: None,
        };
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let flag = flag.to_str().ok_or("flags are ASCII")?;
            let value = args.next().and_then(|v| v.to_str());
            let value = value.ok_or_else(|| format!("{flag} needs a value"))?;
            let number = || {
                value
                    .parse::<u64>()
                    .map_err(|_| format!("{flag}: not a number: {value}"))
            };
            match flag {
                "-j" => options.workers = number()? as usize,
                "--n-async" => options.n_async = number()?,
                "--n-apply" => options.n_apply = number()?,
                "--n-map" => options.n_map = number()?,
                "--n-queue" => options.n_queue = number()?,
                "--mb" => options.mb = number()?,
                "--only" => options.only = Some(value.to_string()),
                "--backend" => {
                    options.backends = match value {
                        "process" => vec!["process"],
                        "thread" => vec!["thread"],
                        _ => return Err(format!("--backend: process or thread, not {value}")),
                    }
                }
                _ => return Err(format!("unknown flag {flag}")),
            }
        }
        if options.workers == 0 || options.n_async == 0 || options.n_map == 0 {
            return Err("-j, --n-async and --n-map must be at least 1".into());
        }
        if options.n_queue < options.workers as u64 {
            return Err("--n-queue must be at least -j".into());
        }
        Ok(options)
    }
}

/// Runs every figure of every chosen backend and prints one line each.
pub fn run(out: &mut impl Write, args: &[OsString]) -> Result<(), Box<dyn Error>> {
    let options = Options::parse(args)?;
    let manager = Manager::new()?;
    let tasks = Tasks {
        square,
        put_items,
        put_batches,
        echo,
    };
    for &backend in &options.backends {
        let mut report = Report {
            out: &mut *out,
            backend,
            only: options.only.clone(),
        };
        if backend == "process" {
            let pool = Pool::with_workers(options.workers)?;
            figures(&mut report, &pool, &manager, &options, tasks)?;
        } else {
            let pool = ThreadPool::with_workers(options.workers)?;
            figures(&mut report, &pool, &manager, &options, tasks)?;
        }
    }
    Ok(())
}

/// The task functions, as generic values, not `fn` pointers: a process
/// worker finds a function by its registered name, and only the `fn`
/// item's own type carries it.
#[derive(Clone, Copy)]
struct Tasks<Square, Put, PutBatches, Echo> {
    square: Square,
    put_items: Put,
    put_batches: PutBatches,
    echo: Echo,
}

/// The Python script's `main`, for one pool, and the bytes figure.
fn figures<K, Square, Put, PutBatches, Echo>(
    report: &mut Report<'_>,
    pool: &WorkerPool<K>,
    manager: &Manager,
    options: &Options,
    tasks: Tasks<Square, Put, PutBatches, Echo>,
) -> Result<(), Box<dyn Error>>
where
    Square: TaskFn<(u64,), Output = u64> + Copy,
    Put: TaskFn<QueueArgs, Output = u64> + Copy,
    PutBatches: TaskFn<QueueArgs, Output = u64> + Copy,
    Echo: TaskFn<(Vec<u8>,), Output = Vec<u8>> + Copy,
    K: Runs<Square, (u64,)> + Runs<Put, QueueArgs> + Runs<PutBatches, QueueArgs>,
    K: Runs<Echo, (Vec<u8>,)>,
{
    let Tasks {
        square,
        put_items,
        put_batches,
        echo,
    } = tasks;
    pool.map(square, 0..1000, None)?; // warm up, as the Python script does
    let n = options.n_async;
    report.figure("apply_async", n, || {
        let results = (0..n)
            .map(|i| pool.apply_async(square, (i,)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut last = 0;
        for result in results {
            last = result.get()?;
        }
        assert_eq!(last, (n - 1).pow(2));
        Ok(())
    })?;
    report.figure("apply_round_trip", options.n_apply, || {
        for i in 0..options.n_apply {
            pool.apply(square, (i,))?;
        }
        Ok(())
    })?;
    report.figure("map", options.n_map, || {
        let squares = pool.map(square, 0..options.n_map, None)?;
        assert_eq!(squares.last(), Some(&(options.n_map - 1).pow(2)));
        Ok(())
    })?;
    report.figure("imap_unordered", n, || {
        let mut got = 0;
        for result in pool.imap_unordered(square, 0..n, None)? {
            result?;
            got += 1;
        }
        assert_eq!(got, n);
        Ok(())
    })?;
    queue_figure(
        report,
        "queue_put_get",
        pool,
        manager,
        put_items,
        options,
        |q, _| Ok(vec![q.get()?]),
    )?;
    queue_figure(
        report,
        "queue_put_get_batch",
        pool,
        manager,
        put_batches,
        options,
        |q, left| Ok(q.get_many(left.min(BATCH))?),
    )?;
    if !report.runs("bytes_echo_mb") {
        return Ok(());
    }
    let data: Vec<u8> = (0..options.mb << 20).map(|i| i as u8).collect();
    let expected = data.clone();
    report.figure("bytes_echo_mb", options.mb, || {
        let back = pool.apply(echo, (data,))?;
        assert!(back == expected, "the bytes came back changed");
        Ok(())
    })
}

/// One queue figure: `-j` producer tasks put `n_queue / j` items each on a
/// fresh unbounded queue, and this thread takes them with `take(queue,
/// left)` until it has them all.
fn queue_figure<K, Producer>(
    report: &mut Report<'_>,
    figure: &str,
    pool: &WorkerPool<K>,
    manager: &Manager,
    producer: Producer,
    options: &Options,
    take: impl Fn(&Queue<u64>, usize) -> Result<Vec<u64>, Box<dyn Error>>,
) -> Result<(), Box<dyn Error>>
where
    Producer: TaskFn<QueueArgs, Output = u64> + Copy,
    K: Runs<Producer, QueueArgs>,
{
    let queue = manager.queue::<u64>(0)?;
    let per = options.n_queue / options.workers as u64;
    let total = per * options.workers as u64;
    report.figure(figure, total, || {
        let producers = (0..options.workers)
            .map(|_| pool.apply_async(producer, (queue.clone(), per)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut got = 0;
        while got < total {
            got += take(&queue, (total - got) as usize)?.len() as u64;
        }
        for producer in producers {
            assert_eq!(producer.get()?, per);
        }
        Ok(())
    })
}

/// Times figures and prints their lines in the Python script's format.
struct Report<'o> {
    out: &'o mut dyn Write,
    backend: &'static str,
    /// `--only FIGURE`: run just that figure (for profiling).
    only: Option<String>,
}

impl Report<'_> {
    /// Whether `figure` is to run (`--only`).
    fn runs(&self, figure: &str) -> bool {
        self.only.as_ref().is_none_or(|only| only == figure)
    }

    fn figure(
        &mut self,
        figure: &str,
        items: u64,
        body: impl FnOnce() -> Result<(), Box<dyn Error>>,
    ) -> Result<(), Box<dyn Error>> {
        if !self.runs(figure) {
            return Ok(());
        }
        let started = Instant::now();
        body()?;
        let seconds = started.elapsed().as_secs_f64();
        let name = format!("{}.{figure}", self.backend);
        let rate = items as f64 / seconds;
        writeln!(
            self.out,
            "{name:<28} {items:>10} {seconds:>9.3} {rate:>12.0}"
        )?;
        Ok(())
    }
}

fn main() -> std::process::ExitCode {
    procpool::init();
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match run(&mut std::io::stdout().lock(), &args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pool_bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
