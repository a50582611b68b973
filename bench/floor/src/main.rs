//! The floor: the least a copier must do to copy a tree, as a lower bound
//! for pcopy's times.
//!
//! `floor list SRC LIST` walks SRC once and writes every directory and
//! regular file with its mode, size and times to LIST, so the timed run does
//! no walk and no `stat`. `floor copy [--atomic] [--threads N] LIST SRC DST`
//! creates DST and its directories, then copies the files on N threads
//! (default 2), one source directory at a time per thread:
//!
//! - default (non-atomic): `openat` source, `openat(O_CREAT)` destination,
//!   `copy_file_range`, two `close`s: no mode, no times, no atomicity;
//! - `--atomic`: `openat` source, `openat(O_TMPFILE)`, `copy_file_range`,
//!   `fchmod`, `futimens`, `linkat` (by `AT_EMPTY_PATH`, or through
//!   `/proc/self/fd` with `--proc-link` or where that is refused), two
//!   `close`s: what pcopy's engine does per file, minus everything else.
//!
//! Symlinks and special files are left out of the list: the synthetic trees
//! have none.

mod copy;
mod list;

use std::ffi::OsString;
use std::process::ExitCode;

use copy::{CopyMode, copy_tree};

const USAGE: &str = "usage: floor list SRC LIST\n       \
    floor copy [--atomic] [--proc-link] [--threads N] LIST SRC DST";

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("floor: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<OsString>) -> Result<(), String> {
    let Some((command, rest)) = args.split_first() else {
        return Err(USAGE.to_string());
    };
    match command.to_str() {
        Some("list") => match rest {
            [src, list_path] => list::write_list(src.as_ref(), list_path.as_ref()),
            _ => Err(USAGE.to_string()),
        },
        Some("copy") => {
            let (mode, threads, paths) = parse_copy_flags(rest)?;
            let [list_path, src, dst] = paths.as_slice() else {
                return Err(USAGE.to_string());
            };
            let entries = list::read_list(list_path.as_ref())?;
            copy_tree(&entries, src.as_ref(), dst.as_ref(), mode, threads)
        }
        _ => Err(USAGE.to_string()),
    }
}

fn parse_copy_flags(args: &[OsString]) -> Result<(CopyMode, usize, Vec<&OsString>), String> {
    let mut mode = CopyMode::Plain;
    let mut proc_link = false;
    let mut threads = 2;
    let mut paths = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.to_str() {
            Some("--atomic") => mode = CopyMode::Atomic { proc_link: false },
            Some("--proc-link") => proc_link = true,
            Some("--threads") => {
                let value = iter.next().and_then(|v| v.to_str()).unwrap_or("");
                threads =
                    value.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                        format!("--threads needs a positive number, not {value:?}")
                    })?;
            }
            _ => paths.push(arg),
        }
    }
    if let CopyMode::Atomic { proc_link: p } = &mut mode {
        *p = proc_link;
    } else if proc_link {
        return Err("--proc-link needs --atomic".to_string());
    }
    Ok((mode, threads, paths))
}
