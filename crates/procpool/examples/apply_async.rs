//! `apply_async`: queue calls without waiting, and hear about each result
//! through `callback` or, when the task fails, `error_callback`.
//!
//! The seed article's apply_async section. Callbacks run in the parent
//! process (on one of the pool's threads), not in the worker, just as
//! Python runs them on the pool's result-handler thread. Python:
//!
//! ```python
//! import multiprocessing, os
//!
//! def checked_square(x):
//!     if x < 0:
//!         raise ValueError(f"negative input: {x}")
//!     return x * x, os.getpid()
//!
//! if __name__ == "__main__":
//!     with multiprocessing.Pool(2) as pool:
//!         results = [
//!             pool.apply_async(checked_square, (x,),
//!                              callback=lambda v: print("callback", v),
//!                              error_callback=lambda e: print("error_callback", e))
//!             for x in [3, -1, 4, 5]
//!         ]
//!         for r in results:
//!             r.wait()
//! ```
//!
//! ```text
//! cargo run -p procpool --example apply_async -- [--inputs 3,-1,4,5]
//! ```

use std::error::Error;
use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;
use std::sync::mpsc;

use procpool::Pool;

/// Squares `x` and names the worker; a negative `x` makes the task panic,
/// which is how a Rust task "raises".
fn checked_square(x: i64) -> (i64, u32) {
    assert!(x >= 0, "negative input: {x}");
    (x * x, std::process::id())
}

procpool::register!(checked_square);

/// What a callback saw, sent back to `run` through a channel: callbacks run
/// on a pool thread, so they report instead of writing to `out` themselves.
/// `index` is the call's place in the input, for printing in order.
enum Heard {
    Value {
        index: usize,
        input: i64,
        square: i64,
        worker: u32,
        callback_pid: u32,
    },
    Failure {
        index: usize,
        input: i64,
        error: procpool::Error,
        callback_pid: u32,
    },
}

/// `--inputs 3,-1,4,5`: the numbers to square.
pub fn parse(args: &[OsString]) -> Result<Vec<i64>, String> {
    match args {
        [] => Ok(vec![3, -1, 4, 5]),
        [flag, list] if flag == "--inputs" => list
            .to_str()
            .unwrap_or("?")
            .split(',')
            .map(|n| n.trim().parse().map_err(|_| format!("not a number: {n}")))
            .collect(),
        _ => Err("usage: apply_async [--inputs 3,-1,4,5]".into()),
    }
}

pub fn run(out: &mut impl Write, args: &[OsString]) -> Result<(), Box<dyn Error>> {
    let inputs = parse(args)?;
    let pool = Pool::with_workers(2)?;
    writeln!(out, "parent pid {}", std::process::id())?;
    let (heard, hear) = mpsc::channel();
    let mut results = Vec::new();
    for (index, &input) in inputs.iter().enumerate() {
        let (on_value, on_error) = (heard.clone(), heard.clone());
        let result = pool.apply_async_with_callbacks(
            checked_square,
            (input,),
            move |&(square, worker): &(i64, u32)| {
                let callback_pid = std::process::id();
                let _ = on_value.send(Heard::Value {
                    index,
                    input,
                    square,
                    worker,
                    callback_pid,
                });
            },
            move |error: &procpool::Error| {
                let callback_pid = std::process::id();
                let error = error.clone();
                let _ = on_error.send(Heard::Failure {
                    index,
                    input,
                    error,
                    callback_pid,
                });
            },
        )?;
        results.push(result);
    }
    writeln!(
        out,
        "queued {} calls; apply_async returned at once",
        inputs.len()
    )?;

    // Callbacks run before their result becomes ready, so once every result
    // is ready every callback has been heard.
    for result in &results {
        result.wait();
    }
    drop(heard);
    let mut reports: Vec<(usize, String)> = hear.iter().map(describe).collect();
    // Arrival order depends on which worker finished first; sort for reading.
    reports.sort_by_key(|&(index, _)| index);
    for (_, report) in reports {
        writeln!(out, "{report}")?;
    }
    let ok = results
        .iter()
        .filter(|r| r.successful() == Some(true))
        .count();
    writeln!(out, "successful: {ok} of {}", results.len())?;
    Ok(())
}

fn describe(heard: Heard) -> (usize, String) {
    match heard {
        Heard::Value {
            index,
            input,
            square,
            worker,
            callback_pid,
        } => (
            index,
            format!(
                "callback: square({input}) = {square}, computed by worker {worker}, \
                 callback ran in pid {callback_pid}"
            ),
        ),
        Heard::Failure {
            index,
            input,
            error,
            callback_pid,
        } => (
            index,
            format!("error_callback: square({input}) failed: {error}; ran in pid {callback_pid}"),
        ),
    }
}

fn main() -> ExitCode {
    procpool::init(); // a worker process branches off into its loop here
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match run(&mut std::io::stdout(), &args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("apply_async: {e}");
            ExitCode::FAILURE
        }
    }
}
