//! slowfs: a FUSE passthrough of a backing directory that sleeps a fixed
//! delay in every request, served by many threads at once: storage bound
//! by latency, as NFS, Lustre, sshfs or a cloud mount are, for pcopy's
//! benchmarks.
//!
//! `slowfs [OPTIONS] BACKING MOUNTPOINT` mounts and serves until unmounted
//! (`slowfs --unmount MOUNTPOINT`, `umount`) or sent SIGTERM, SIGINT or
//! SIGHUP; SIGUSR1 writes the request counters (`--stats`), which are also
//! written at the end. See `slowfs --help`.

mod cli;
mod fs;
mod handles;
mod inodes;
mod mount;
mod stats;
mod sys;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let result = match cli::parse(&args) {
        Ok(cli::Command::Help) => {
            print!("{}", cli::HELP);
            Ok(())
        }
        Ok(cli::Command::Mount(config)) => mount::serve(&config),
        Ok(cli::Command::Unmount(config)) => mount::unmount(&config),
        Err(message) => Err(message),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("slowfs: {message}");
            ExitCode::FAILURE
        }
    }
}
