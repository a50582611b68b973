//! A pause point for integration tests; test-only, not a user interface.
//!
//! `PCOPY_TEST_HOOK=STAGE:REL_DST:FIFO` makes the engine stop when a job
//! whose destination path is `REL_DST` reaches `STAGE`: `open` (before the
//! source is opened) or `data` (the new file exists, unnamed or as a temp,
//! and its data is not copied yet). It writes its pid and a newline to
//! `FIFO.reached`, then waits for one byte, or end of file, on
//! `FIFO.release`. Tests delete, grow or swap entries, or kill a worker, at
//! that exact moment instead of after a guessed delay. Only debug builds
//! (what `cargo test` runs) look at the variable.

use super::dest::DestPath;

/// Where in a job the hook can stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    Open,
    Data,
}

/// Pauses here if the hook names this stage and destination.
pub(super) fn reached(stage: Stage, dest: &DestPath<'_>) {
    #[cfg(debug_assertions)]
    pause_if_hooked(stage, dest);
    #[cfg(not(debug_assertions))]
    let _ = (stage, dest);
}

#[cfg(debug_assertions)]
fn pause_if_hooked(stage: Stage, dest: &DestPath<'_>) {
    use std::io::{Read, Write};
    use std::os::unix::ffi::OsStrExt;

    /// (stage, destination path, fifo prefix), read once per process.
    static HOOK: std::sync::OnceLock<Option<(Stage, Vec<u8>, String)>> = std::sync::OnceLock::new();
    let hook = HOOK.get_or_init(|| {
        let spec = std::env::var("PCOPY_TEST_HOOK").ok()?;
        let mut parts = spec.splitn(3, ':');
        let stage = match parts.next()? {
            "open" => Stage::Open,
            "data" => Stage::Data,
            _ => return None,
        };
        let rel = parts.next()?.as_bytes().to_vec();
        Some((stage, rel, parts.next()?.to_string()))
    });
    let Some((want, rel, fifo)) = hook else {
        return;
    };
    let mut here = dest.parent.to_vec();
    if !here.is_empty() {
        here.push(b'/');
    }
    here.extend_from_slice(dest.name.as_bytes());
    if *want != stage || *rel != here {
        return;
    }
    // Errors are ignored: the hook only ever delays a job, never fails it.
    if let Ok(mut reached) = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("{fifo}.reached"))
    {
        // One write, which a fifo keeps whole: `writeln!` may write the pid
        // and the newline apart, and two workers' pids then run together.
        let line = format!("{}\n", std::process::id());
        let _ = reached.write_all(line.as_bytes());
    }
    if let Ok(mut release) = std::fs::File::open(format!("{fifo}.release")) {
        let _ = release.read(&mut [0u8]);
    }
}
