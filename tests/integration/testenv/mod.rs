//! The one test environment of pcopy's integration tests: a temp dir to
//! build trees in, the pcopy binary to run there, and (in the submodules)
//! whole-tree comparison with a diff, the test hook's gate, process
//! control, mounts and seeded randomness.

mod gate;
mod mount;
mod process;
mod rng;
mod tree;

pub use gate::*;
pub use mount::*;
pub use process::*;
pub use rng::*;
pub use tree::*;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use assert_cmd::assert::OutputAssertExt;

/// How long a test waits for an event before it fails instead of hanging.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Defines each test twice, as `name::process` and `name::thread`, with a
/// [`TestEnv`] for that worker kind.
macro_rules! both_kinds {
    ($($(#[$attr:meta])* fn $name:ident($env:ident: TestEnv) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $(#[$attr])*
            fn body($env: TestEnv) $body

            #[test]
            fn process() {
                body(TestEnv::new("process"));
            }

            #[test]
            fn thread() {
                body(TestEnv::new("thread"));
            }
        }
    )*};
}

/// A temp dir, and pcopy run in it with one kind of worker.
pub struct TestEnv {
    dir: tempfile::TempDir,
    /// `process` or `thread`, passed as `--workers`.
    pub kind: &'static str,
}

impl TestEnv {
    pub fn new(kind: &'static str) -> TestEnv {
        TestEnv {
            dir: tempfile::tempdir().expect("temp dir"),
            kind,
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.root().join(rel)
    }

    pub fn mkdir(&self, rel: impl AsRef<Path>) {
        fs::create_dir_all(self.path(rel)).expect("mkdir");
    }

    /// Writes a file, creating its parents.
    pub fn write(&self, rel: impl AsRef<Path>, contents: impl AsRef<[u8]>) {
        let path = self.path(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir parents");
        fs::write(path, contents).expect("write");
    }

    pub fn symlink(&self, target: impl AsRef<Path>, rel: impl AsRef<Path>) {
        std::os::unix::fs::symlink(target, self.path(rel)).expect("symlink");
    }

    pub fn mkfifo(&self, rel: impl AsRef<Path>) {
        mkfifo(&self.path(rel), 0o644);
    }

    pub fn chmod(&self, rel: impl AsRef<Path>, mode: u32) {
        fs::set_permissions(self.path(rel), fs::Permissions::from_mode(mode)).expect("chmod");
    }

    /// The standard sample tree at `rel`: nested directories, an empty
    /// one, a read-only one, a symlink, a dangling symlink, a Unicode
    /// name, a file with unusual permissions and one large enough to be
    /// copied in several steps.
    pub fn sample_tree(&self, rel: &str) {
        self.write(format!("{rel}/top.txt"), "top\n");
        self.write(format!("{rel}/a/b/c/deep.txt"), "deep\n");
        self.write(format!("{rel}/a/sibling.txt"), "sibling\n");
        self.write(format!("{rel}/unicode/café – 日本.txt"), "unicode\n");
        self.write(format!("{rel}/exec.sh"), "#!/bin/sh\n");
        self.chmod(format!("{rel}/exec.sh"), 0o745);
        let large: Vec<u8> = (0..(9u32 << 20) / 4).flat_map(u32::to_le_bytes).collect();
        self.write(format!("{rel}/large.bin"), large);
        self.mkdir(format!("{rel}/empty"));
        self.write(format!("{rel}/readonly/inside.txt"), "ro\n");
        self.chmod(format!("{rel}/readonly"), 0o555);
        self.symlink("a/sibling.txt", format!("{rel}/link"));
        self.symlink("does/not/exist", format!("{rel}/dangling"));
    }

    /// 4000 files with long names in 8 directories at `rel`: their `-v`
    /// lines (about 240 KiB) are more than a pipe holds, so a run cannot
    /// end while the test has read only the first one.
    pub fn many_long_names(&self, rel: &str) {
        for i in 0..4000 {
            let name = format!("{rel}/dir{}/file-with-a-long-name-{i:05}.txt", i % 8);
            self.write(name, "x".repeat(i % 100));
        }
    }

    /// A pcopy command in the temp dir with this env's worker kind.
    pub fn pcopy(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_pcopy"));
        command
            .current_dir(self.root())
            .arg("--workers")
            .arg(self.kind);
        command
    }

    /// Runs pcopy with `args` under a watchdog and returns its output.
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = self.pcopy();
        command.args(args);
        run_guarded(&mut command)
    }

    /// [`TestEnv::run`] as [`NOBODY`] through `setpriv`, without a
    /// `TMPDIR` that only root may write to. Opens the temp dir to others
    /// first, so that nobody reaches the trees in it.
    pub fn run_as_nobody<I, S>(&self, setpriv: &str, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.chmod(".", 0o755);
        let mut command = as_nobody(setpriv, env!("CARGO_BIN_EXE_pcopy"));
        command
            .current_dir(self.root())
            .arg("--workers")
            .arg(self.kind)
            .args(args)
            .env_remove("TMPDIR");
        run_guarded(&mut command)
    }
}

impl Drop for TestEnv {
    /// Tests make parts of their trees read-only or unreadable; a mount
    /// in the temp dir is a guard declared after the env, so it is gone
    /// by now.
    fn drop(&mut self) {
        make_removable(self.root());
    }
}

/// Runs `command` under a watchdog with its output piped and no input.
pub fn run_guarded(command: &mut Command) -> Output {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Guarded::spawn(command).wait()
}

/// The status, stdout and stderr of a run, for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "status: {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Asserts the exit status; assert_cmd prints the whole output if it differs.
pub fn assert_status(output: &Output, code: i32) {
    output.clone().assert().code(code);
}

/// Stderr with the timing part of the summary line replaced, so whole
/// outputs can be compared: `... in 0.12s (3.4 MiB/s); ...` becomes
/// `... in [time]; ...`.
pub fn normalized_stderr(output: &Output) -> String {
    let stderr = String::from_utf8(output.stderr.clone()).expect("stderr is UTF-8");
    stderr
        .lines()
        .map(normalize_line)
        .map(|l| l + "\n")
        .collect()
}

/// The sorted lines of a run's stdout.
pub fn sorted_stdout_lines(output: &Output) -> Vec<String> {
    let stdout = std::str::from_utf8(&output.stdout).expect("stdout is UTF-8");
    let mut lines: Vec<String> = stdout.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

/// The worker's pid a `-vv` line starts with (`[pid N] path`).
pub fn worker_pid(line: &str) -> u32 {
    line.strip_prefix("[pid ")
        .and_then(|rest| rest.split(']').next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no worker pid in {line:?}"))
}

fn normalize_line(line: &str) -> String {
    match (line.rfind(" in "), line.rfind("); ")) {
        (Some(start), Some(end)) if start < end && line.starts_with("pcopy: ") => {
            format!("{} in [time]{}", &line[..start], &line[end + 1..])
        }
        _ => line.to_string(),
    }
}

/// The JSON object a `--json` run printed on stdout (the whole stdout).
pub fn json_of(output: &Output) -> serde_json::Value {
    let stdout = std::str::from_utf8(&output.stdout).expect("stdout is UTF-8");
    serde_json::from_str(stdout.trim_end())
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}):\n{}", describe(output)))
}

/// Says why the test is skipped: the reason a helper gave for what it
/// could not do here.
pub fn skipped(why: impl std::fmt::Display) {
    eprintln!("skipped: {why}");
}

/// Whether this test runs as root; says why it is skipped if not.
pub fn is_root(why: &str) -> bool {
    let root = rustix::process::geteuid().is_root();
    if !root {
        eprintln!("skipped: needs root to {why}");
    }
    root
}

/// The user and group the unprivileged tests run as (nobody).
pub const NOBODY: u32 = 65534;

/// `program`, run through `setpriv` (see [`unprivileged_runner`]) as
/// [`NOBODY`] with no supplementary groups.
pub fn as_nobody(setpriv: &str, program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new(setpriv);
    command
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(program);
    command
}

/// `setpriv` when this test can drop to an unprivileged user, else `None`
/// after saying why the test is skipped.
pub fn unprivileged_runner() -> Option<&'static str> {
    if !is_root("run pcopy as another, unprivileged user") {
        return None;
    }
    let setpriv = "/usr/bin/setpriv";
    if !Path::new(setpriv).exists() {
        eprintln!("skipped: {setpriv} is missing (util-linux)");
        return None;
    }
    Some(setpriv)
}
