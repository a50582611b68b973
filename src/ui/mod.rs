//! What the user sees: each copied file (`-v`, `-i`, `--out-format`,
//! `--log-file`), each problem, the progress display, the final summary,
//! `--stats` and `--json`, and how paths and errors are
//! written in all of them.
//!
//! Owns the [`report::Reporter`], the one place that prints while a run
//! goes on (only the main thread holds it), the tally and the exit status
//! it adds up to. The stages hand it events; it calls none of them, only
//! the shared types of `job` and `exit_codes`.

pub(crate) mod escape;
pub(crate) mod eta;
pub(crate) mod itemize;
pub(crate) mod json;
pub(crate) mod log_file;
pub(crate) mod progress;
pub(crate) mod report;
pub(crate) mod stats;
