//! The engine's test hook (`PCOPY_TEST_HOOK`) seen from the test side: a
//! gate where one job of a run stops until the test lets it go on.

use std::fs;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::EVENT_TIMEOUT;
use super::process::readable;
use super::tree::mkfifo;

/// Whether the pcopy binary under test honours `PCOPY_TEST_HOOK` (debug
/// builds only; the tests are built with the same profile). Says why not.
pub fn hook_available() -> bool {
    if !cfg!(debug_assertions) {
        eprintln!("skipped: PCOPY_TEST_HOOK is compiled into debug builds only");
    }
    cfg!(debug_assertions)
}

/// The test's side of the engine's pause point (`src/copy/test_hook.rs`):
/// two fifos this side keeps open for reading and writing, so neither end
/// ever blocks on open and a worker that dies cannot leave the test waiting
/// for a writer.
pub struct Gate {
    spec: String,
    reached: fs::File,
    release: fs::File,
    pending: Vec<u8>,
}

impl Gate {
    /// A gate for `stage` (`open` or `data`) of the job whose destination
    /// path is `rel_dst`, with its fifos in `dir`.
    pub fn new(dir: &Path, stage: &str, rel_dst: &str) -> Gate {
        let prefix = dir.join("gate");
        let fifo = |suffix: &str| {
            let path = PathBuf::from(format!("{}.{suffix}", prefix.display()));
            mkfifo(&path, 0o600);
            // Read and write: opening never blocks and never sees EOF.
            let opened = fs::OpenOptions::new().read(true).write(true).open(&path);
            opened.expect("open fifo")
        };
        let (reached, release) = (fifo("reached"), fifo("release"));
        let spec = format!("{stage}:{rel_dst}:{}", prefix.display());
        Gate {
            spec,
            reached,
            release,
            pending: Vec::new(),
        }
    }

    /// The environment variable that arms the hook in pcopy.
    pub fn env(&self) -> (&'static str, &str) {
        ("PCOPY_TEST_HOOK", &self.spec)
    }

    /// Waits until a job reaches the gate and returns the pid of the
    /// process running it (a worker process, or pcopy with thread workers).
    pub fn wait_reached(&mut self) -> u32 {
        assert!(
            self.poll_reached(EVENT_TIMEOUT),
            "no job reached the gate within {EVENT_TIMEOUT:?}"
        );
        let line_end = self.pending.iter().position(|&b| b == b'\n').expect("line");
        let line: Vec<u8> = self.pending.drain(..=line_end).collect();
        let text = std::str::from_utf8(&line).expect("pid line");
        text.trim().parse().expect("pid")
    }

    /// Whether another job reached the gate (without waiting).
    pub fn reached_again(&mut self) -> bool {
        self.poll_reached(Duration::ZERO)
    }

    fn poll_reached(&mut self, timeout: Duration) -> bool {
        while !self.pending.contains(&b'\n') {
            if !readable(self.reached.as_fd(), timeout) {
                return false;
            }
            let mut buf = [0u8; 64];
            let n = self.reached.read(&mut buf).expect("read gate");
            self.pending.extend_from_slice(&buf[..n]);
        }
        true
    }

    /// Lets the job waiting at the gate go on.
    pub fn release(&mut self) {
        self.release.write_all(b"x").expect("release gate");
    }
}

/// What a gated `--progress` run printed, split where its totals became
/// final: see [`run_gated_progress`].
pub struct GatedProgress {
    /// The lines before the totals were final (all "scanning").
    pub scanning: Vec<String>,
    /// The first line with final totals, printed while the only worker
    /// waited at the gate: the count-ahead's totals, nothing copied.
    pub first_final: String,
    /// The lines after the gate was let go.
    pub rest: Vec<String>,
    pub output: std::process::Output,
}

/// Runs pcopy with `--progress -j 1` and `args` in `env`, the job of
/// `gate.txt` held at a gate (fifos in `gate_dir`) until the first progress
/// line with final totals is read: the walk, held back by the full jobs
/// queue, cannot have found everything, so those totals are the
/// count-ahead's.
pub fn run_gated_progress(env: &super::TestEnv, gate_dir: &str, args: &[&str]) -> GatedProgress {
    run_gated_progress_with(env, gate_dir, args, |_| {})
}

/// [`run_gated_progress`], with `prepare` given the command before it is
/// started (to lower a limit, say).
pub fn run_gated_progress_with(
    env: &super::TestEnv,
    gate_dir: &str,
    args: &[&str],
    prepare: impl FnOnce(&mut std::process::Command),
) -> GatedProgress {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    env.mkdir(gate_dir);
    let mut gate = Gate::new(&env.path(gate_dir), "open", "gate.txt");
    let (key, value) = gate.env();
    let mut command = env.pcopy();
    command
        .args(["--progress", "-j", "1"])
        .args(args)
        .env(key, value)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    prepare(&mut command);
    let mut child = super::Guarded::spawn(&mut command);
    gate.wait_reached();
    let stderr = child.child().stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut scanning = Vec::new();
    let first_final = loop {
        let line = lines.next().expect("a progress line").expect("read");
        if !line.contains("scanning") {
            break line;
        }
        scanning.push(line);
    };
    gate.release();
    let rest = lines.map(|line| line.expect("read")).collect();
    GatedProgress {
        scanning,
        first_final,
        rest,
        output: child.wait(),
    }
}
