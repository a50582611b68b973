//! `--log-file=FILE`: every change and message of a run, each line
//! stamped as rsync stamps its log (`2026/01/31 12:00:00 [PID] `), the
//! changes in rsync's default log format, `%i %n%L`.

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;

use super::escape::Escaped;
use super::itemize::{Item, OutFormat};

/// An open log, appended to as rsync does.
#[derive(Debug)]
pub(crate) struct LogFile {
    out: BufWriter<File>,
    format: OutFormat,
    pid: u32,
}

impl LogFile {
    /// Opens `path` for appending, creating it if needed.
    pub(crate) fn open(path: &Path) -> std::io::Result<LogFile> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(LogFile {
            out: BufWriter::new(file),
            format: OutFormat::itemized(),
            pid: std::process::id(),
        })
    }

    /// Logs one entry; `link_to` is the first name of a hard link.
    pub(crate) fn entry(&mut self, item: &Item<'_>, link_to: Option<&OsStr>) {
        let mut line = self.format.render(item);
        if let Some(target) = link_to {
            line.push_str(&format!(" => {}", Escaped::os(target)));
        }
        self.line(&line);
    }

    /// Logs one line as it is. A log that cannot be written must not stop
    /// the copy, so errors are dropped; the end of the run flushes.
    pub(crate) fn line(&mut self, line: &str) {
        let _ = writeln!(self.out, "{} [{}] {line}", local_time(), self.pid);
    }
}

impl Drop for LogFile {
    fn drop(&mut self) {
        let _ = self.out.flush();
    }
}

/// The local time as `YYYY/MM/DD HH:MM:SS`.
fn local_time() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let secs = libc::time_t::try_from(now).unwrap_or(0);
    // SAFETY: `tm` is plain data, and all-zero bytes are a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live locals; `localtime_r` is the
    // thread-safe form and keeps no pointer past the call.
    if unsafe { libc::localtime_r(&secs, &mut tm) }.is_null() {
        return "0000/00/00 00:00:00".to_string();
    }
    format!(
        "{:04}/{:02}/{:02} {:02}:{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}
