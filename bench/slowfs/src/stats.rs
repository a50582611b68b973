//! Request accounting: the delay every request pays, how many of each kind
//! the kernel sent, and how many were served at once.

use std::fmt::Write as _;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The kinds of request the kernel sends, in the order the stats file
/// lists them (lock requests never come: the kernel keeps locks itself
/// when the file system does not ask for them).
#[derive(Clone, Copy)]
pub enum Op {
    Lookup,
    Forget,
    Getattr,
    Setattr,
    Readlink,
    Mknod,
    Mkdir,
    Unlink,
    Rmdir,
    Symlink,
    Rename,
    Link,
    Open,
    Read,
    Write,
    Flush,
    Release,
    Fsync,
    Opendir,
    Readdir,
    Readdirplus,
    Releasedir,
    Fsyncdir,
    Statfs,
    Setxattr,
    Getxattr,
    Listxattr,
    Removexattr,
    Access,
    Create,
    Ioctl,
    Poll,
    Fallocate,
    Lseek,
    CopyFileRange,
}

const NAMES: [&str; 35] = [
    "lookup",
    "forget",
    "getattr",
    "setattr",
    "readlink",
    "mknod",
    "mkdir",
    "unlink",
    "rmdir",
    "symlink",
    "rename",
    "link",
    "open",
    "read",
    "write",
    "flush",
    "release",
    "fsync",
    "opendir",
    "readdir",
    "readdirplus",
    "releasedir",
    "fsyncdir",
    "statfs",
    "setxattr",
    "getxattr",
    "listxattr",
    "removexattr",
    "access",
    "create",
    "ioctl",
    "poll",
    "fallocate",
    "lseek",
    "copy_file_range",
];

/// Counters shared by every session thread; all are plain atomics, each
/// updated on its own, so a snapshot taken while requests run may be off
/// by the requests in flight (the stats file is meant to be read after
/// the client is done).
pub struct Stats {
    delay: Duration,
    counts: [AtomicU64; NAMES.len()],
    in_flight: AtomicU64,
    peak_in_flight: AtomicU64,
    /// Sum over served requests of their time from arrival to reply.
    busy_ns: AtomicU64,
    /// Arrival of the first request and end of the last, in nanoseconds
    /// since `start` (`u64::MAX` and 0 until a request is served).
    first_ns: AtomicU64,
    last_ns: AtomicU64,
    start: Instant,
}

/// A request being served: dropped after the reply, it records how long
/// the request took and that it is no longer in flight.
pub struct Served<'a> {
    stats: &'a Stats,
    arrived: Instant,
}

impl Stats {
    pub fn new(delay: Duration) -> Stats {
        Stats {
            delay,
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            in_flight: AtomicU64::new(0),
            peak_in_flight: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
            first_ns: AtomicU64::new(u64::MAX),
            last_ns: AtomicU64::new(0),
            start: Instant::now(),
        }
    }

    /// Counts a request that gets no reply (a forget): the kernel does not
    /// wait for it, so it pays no delay.
    pub fn count(&self, op: Op) {
        self.counts[op as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request, marks it in flight and sleeps the delay: the
    /// round trip every request of a network filesystem pays.
    pub fn serve(&self, op: Op) -> Served<'_> {
        let arrived = Instant::now();
        self.count(op);
        self.first_ns
            .fetch_min(self.nanos(arrived), Ordering::Relaxed);
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak_in_flight.fetch_max(now, Ordering::Relaxed);
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        Served {
            stats: self,
            arrived,
        }
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.duration_since(self.start).as_nanos()).unwrap_or(u64::MAX)
    }

    /// The stats as `name<TAB>value` lines: the delay, the requests that
    /// got a reply, the count per kind (forgets counted per node), and the
    /// time figures (mean requests in flight is busy over span).
    pub fn render(&self) -> String {
        let mut text = String::new();
        let counts: Vec<u64> = self
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let _ = writeln!(text, "delay_ms\t{}", self.delay.as_secs_f64() * 1e3);
        // Forgets get no reply and cost the client nothing: not requests here.
        let replied = counts.iter().sum::<u64>() - counts[Op::Forget as usize];
        let _ = writeln!(text, "requests\t{replied}");
        for (name, count) in NAMES.iter().zip(&counts) {
            let _ = writeln!(text, "{name}\t{count}");
        }
        let first = self.first_ns.load(Ordering::Relaxed);
        let last = self.last_ns.load(Ordering::Relaxed);
        let span = if first == u64::MAX {
            0
        } else {
            last.saturating_sub(first)
        };
        let _ = writeln!(
            text,
            "busy_seconds\t{:.6}",
            self.busy_ns.load(Ordering::Relaxed) as f64 / 1e9
        );
        let _ = writeln!(text, "span_seconds\t{:.6}", span as f64 / 1e9);
        let _ = writeln!(
            text,
            "peak_in_flight\t{}",
            self.peak_in_flight.load(Ordering::Relaxed)
        );
        text
    }

    /// Writes the stats to `path` whole: under a temporary name, then renamed.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        std::fs::write(&tmp, self.render())?;
        std::fs::rename(&tmp, path)
    }
}

impl Drop for Served<'_> {
    fn drop(&mut self) {
        let done = Instant::now();
        let took = u64::try_from(done.duration_since(self.arrived).as_nanos()).unwrap_or(u64::MAX);
        self.stats.busy_ns.fetch_add(took, Ordering::Relaxed);
        self.stats
            .last_ns
            .fetch_max(self.stats.nanos(done), Ordering::Relaxed);
        self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_exclude_forgets_and_kinds_are_counted() {
        let stats = Stats::new(Duration::ZERO);
        drop(stats.serve(Op::Lookup));
        drop(stats.serve(Op::Lookup));
        drop(stats.serve(Op::Write));
        stats.count(Op::Forget);
        let text = stats.render();
        for line in [
            "requests\t3\n",
            "lookup\t2\n",
            "write\t1\n",
            "forget\t1\n",
            "peak_in_flight\t1\n",
        ] {
            assert!(text.contains(line), "{line:?} not in {text}");
        }
    }
}
