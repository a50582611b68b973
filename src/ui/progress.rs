//! Progress on stderr: a bar on a terminal, a line a second for logs (as
//! JSON under `--json`), or nothing, behind one trait so the run loop does
//! not care which.
//!
//! The run loop owns the [`Counters`] and hands them over after every
//! change; each display turns them into the same [`Figures`] (the ETA
//! from [`super::eta`]) and decides for itself how often to draw.

use std::time::{Duration, Instant};

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::eta::{Estimator, TimeLeft, Work};

/// How often the line display prints.
const LINE_INTERVAL: Duration = Duration::from_secs(1);

/// How progress is shown on stderr while copying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProgressMode {
    /// Nothing.
    Off,
    /// A redrawn bar (stderr is a terminal).
    Bar,
    /// A line every second and a final one (stderr is not a terminal).
    Lines,
    /// The same lines as JSON objects (`--json`).
    JsonLines,
}

/// What has been found and done so far. The totals grow while the walk
/// runs, unless the count-ahead has told them already.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counters {
    pub(crate) files_total: u64,
    pub(crate) bytes_total: u64,
    pub(crate) files_done: u64,
    pub(crate) bytes_done: u64,
    pub(crate) walk_done: bool,
    /// The count-ahead's totals, once it is done.
    pub(crate) counted: Option<Counted>,
    /// Bytes of skipped files the walk had sized: they leave the counted
    /// total as they leave the walk's.
    pub(crate) bytes_skipped: u64,
}

/// The totals the count-ahead found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counted {
    pub(crate) files: u64,
    pub(crate) bytes: u64,
}

impl Counters {
    /// Whether the totals shown are final: the walk is over, or the
    /// count-ahead has counted everything it will queue.
    pub(crate) fn totals_final(&self) -> bool {
        self.walk_done || self.counted.is_some()
    }

    /// The file total to show: the count-ahead's until the walk is over
    /// (or the walk's, should it have found more meanwhile).
    pub(crate) fn files_total_shown(&self) -> u64 {
        match (self.walk_done, self.counted) {
            (false, Some(counted)) => self.files_total.max(counted.files),
            _ => self.files_total,
        }
    }

    /// The byte total to show, likewise.
    pub(crate) fn bytes_total_shown(&self) -> u64 {
        match (self.walk_done, self.counted) {
            (false, Some(counted)) => {
                let left = counted.bytes.saturating_sub(self.bytes_skipped);
                self.bytes_total.max(left)
            }
            _ => self.bytes_total,
        }
    }
}

/// What every display shows at one moment: the same figures on the bar,
/// the plain lines and the JSON lines.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Figures {
    pub(crate) elapsed: Duration,
    pub(crate) files_done: u64,
    pub(crate) files_total: u64,
    pub(crate) bytes_done: u64,
    pub(crate) bytes_total: u64,
    pub(crate) totals_final: bool,
    /// Over the estimator's recent window.
    pub(crate) bytes_per_sec: f64,
    /// Only once the totals are final, and a rate is known.
    pub(crate) eta: Option<TimeLeft>,
}

/// Turns the counters into [`Figures`], keeping the time-left estimator
/// fed; each display owns one.
#[derive(Debug)]
struct Gauge {
    started: Instant,
    eta: Estimator,
}

impl Gauge {
    fn new(started: Instant) -> Gauge {
        Gauge {
            started,
            eta: Estimator::new(),
        }
    }

    fn read(&mut self, c: &Counters, now: Instant) -> Figures {
        let elapsed = now.saturating_duration_since(self.started);
        let (files_total, bytes_total) = (c.files_total_shown(), c.bytes_total_shown());
        let done = Work {
            files: c.files_done,
            bytes: c.bytes_done,
        };
        let total = c.totals_final().then_some(Work {
            files: files_total,
            bytes: bytes_total,
        });
        let eta = self.eta.observe(elapsed, done, total);
        Figures {
            elapsed,
            files_done: c.files_done,
            files_total,
            bytes_done: c.bytes_done,
            bytes_total,
            totals_final: c.totals_final(),
            bytes_per_sec: self.eta.bytes_per_sec(),
            eta,
        }
    }
}

/// A progress display.
pub(crate) trait Progress {
    /// The counters changed (called often; cheap).
    fn update(&mut self, counters: &Counters);
    /// Runs `print` with the display out of the way, so a message and the
    /// bar never overwrite each other.
    fn suspend(&self, print: &mut dyn FnMut());
    /// The run is over; draw the last state and get out of the way.
    fn finish(&mut self, counters: &Counters);
}

/// The display for `mode`.
pub(crate) fn for_mode(mode: ProgressMode) -> Box<dyn Progress> {
    let now = Instant::now();
    match mode {
        ProgressMode::Off => Box::new(NoProgress),
        ProgressMode::Bar => Box::new(Bar::new(now)),
        ProgressMode::Lines => Box::new(Lines::new(now, LineFormat::Plain)),
        ProgressMode::JsonLines => Box::new(Lines::new(now, LineFormat::Json)),
    }
}

/// No display at all.
#[derive(Debug)]
pub(crate) struct NoProgress;

impl Progress for NoProgress {
    fn update(&mut self, _: &Counters) {}
    fn suspend(&self, print: &mut dyn FnMut()) {
        print();
    }
    fn finish(&mut self, _: &Counters) {}
}

/// An indicatif bar over the bytes, with the file count as its message
/// and the rate and ETA (ours, not indicatif's byte-rate guess) as its
/// prefix: while the totals are still growing, only counts and the rate
/// under "scanning" (a bar and an ETA against a moving total would mean
/// nothing); once they are final, the bar and the ETA.
#[derive(Debug)]
struct Bar {
    bar: ProgressBar,
    gauge: Gauge,
    message: String,
    prefix: String,
    final_style: bool,
}

/// The bar's look while the totals grow, and once they are final.
fn bar_style(totals_final: bool) -> ProgressStyle {
    let template = match totals_final {
        true => "{spinner} {msg} [{wide_bar}] {bytes}/{total_bytes} {prefix}",
        false => "{spinner} scanning: {msg}, {bytes}/{total_bytes}+ {prefix}",
    };
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

impl Bar {
    fn new(now: Instant) -> Bar {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr())
            .with_style(bar_style(false));
        // Keeps the spinner moving while a large file copies.
        bar.enable_steady_tick(Duration::from_millis(200));
        Bar {
            bar,
            gauge: Gauge::new(now),
            message: String::new(),
            prefix: String::new(),
            final_style: false,
        }
    }
}

impl Progress for Bar {
    fn update(&mut self, c: &Counters) {
        let f = self.gauge.read(c, Instant::now());
        // Each call below may draw (at most 20 times a second): the first
        // one after the totals became final draws the new look with some
        // of the old figures, and the next draw may be 50 ms away. So
        // that frame is drawn over at once with the whole new state.
        let becomes_final = f.totals_final && !self.final_style;
        if becomes_final {
            self.final_style = true;
            self.bar.set_style(bar_style(true));
        }
        // Only changed texts are handed over: each is a new allocation
        // and a redraw request.
        let message = files_text(&f);
        if message != self.message {
            self.bar.set_message(message.clone());
            self.message = message;
        }
        let rate = HumanBytes(f.bytes_per_sec as u64);
        let prefix = match f.totals_final {
            true => format!("{rate}/s ETA {}", eta_text(f.eta)),
            false => format!("{rate}/s"),
        };
        if prefix != self.prefix {
            self.bar.set_prefix(prefix.clone());
            self.prefix = prefix;
        }
        self.bar.set_length(f.bytes_total);
        self.bar.set_position(f.bytes_done);
        if becomes_final {
            self.bar.force_draw();
        }
    }

    fn suspend(&self, print: &mut dyn FnMut()) {
        self.bar.suspend(print);
    }

    fn finish(&mut self, c: &Counters) {
        self.update(c);
        self.bar.finish_and_clear();
    }
}

/// How a progress line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineFormat {
    /// For people reading a log: [`progress_line`].
    Plain,
    /// For programs (`--json`): [`progress_json`].
    Json,
}

/// A line on stderr every second, one as soon as the totals are final,
/// one as soon as the first ETA is known, and one at the end.
#[derive(Debug)]
struct Lines {
    gauge: Gauge,
    format: LineFormat,
    last: Instant,
    /// Whether the last line printed had final totals, and an ETA.
    shown: (bool, bool),
}

impl Lines {
    fn new(now: Instant, format: LineFormat) -> Lines {
        Lines {
            gauge: Gauge::new(now),
            format,
            last: now,
            shown: (false, false),
        }
    }

    fn print(&self, f: &Figures) {
        match self.format {
            LineFormat::Plain => eprintln!("{}", progress_line(f)),
            LineFormat::Json => eprintln!("{}", progress_json(f)),
        }
    }
}

impl Progress for Lines {
    fn update(&mut self, c: &Counters) {
        let now = Instant::now();
        let f = self.gauge.read(c, now);
        // The moments the totals and then the time left become known are
        // news for a log, and for anyone timing the display.
        let known = (f.totals_final, f.eta.is_some());
        if known != self.shown || now.duration_since(self.last) >= LINE_INTERVAL {
            self.shown = known;
            self.last = now;
            self.print(&f);
        }
    }

    fn suspend(&self, print: &mut dyn FnMut()) {
        print();
    }

    fn finish(&mut self, c: &Counters) {
        let f = self.gauge.read(c, Instant::now());
        self.print(&f);
    }
}

/// `3/10 files`, with a `+` on the total while it may still grow.
fn files_text(f: &Figures) -> String {
    let more = if f.totals_final { "" } else { "+" };
    format!("{}/{}{more} files", f.files_done, f.files_total)
}

/// A time left as people read it: `4.2s`, `42s`, `3m05s`, `2h07m`,
/// with a `+` when it is only a lower bound (`4.2s+`); `?` unknown.
pub(crate) fn eta_text(eta: Option<TimeLeft>) -> String {
    match eta {
        None => "?".to_string(),
        Some(eta) if eta.at_least => format!("{}+", duration_text(eta.left)),
        Some(eta) => duration_text(eta.left),
    }
}

/// `4.2s`, `42s`, `3m05s`, `2h07m`: tenths below 10 s, where a whole
/// second is a large share of what is left. Rounded up, so `0s` means
/// done.
fn duration_text(eta: Duration) -> String {
    let tenths = eta.as_millis().div_ceil(100);
    let secs = eta.as_millis().div_ceil(1000);
    match (tenths, secs) {
        (0, _) => "0s".to_string(),
        (1..100, _) => format!("{}.{}s", tenths / 10, tenths % 10),
        (_, 0..60) => format!("{secs}s"),
        (_, 60..3600) => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs / 60 % 60),
    }
}

/// One progress line, e.g.
/// `pcopy: 3/10 files, 1.00 MiB/4.00 MiB, 512.00 KiB/s, ETA 6.0s`.
pub(crate) fn progress_line(f: &Figures) -> String {
    let (scanning, more) = match f.totals_final {
        true => ("", ""),
        false => ("scanning: ", "+"),
    };
    format!(
        "pcopy: {scanning}{}, {}/{}{more}, {}/s, ETA {}",
        files_text(f),
        HumanBytes(f.bytes_done),
        HumanBytes(f.bytes_total),
        HumanBytes(f.bytes_per_sec as u64),
        eta_text(f.eta),
    )
}

/// One progress line as a JSON object, the figures of [`progress_line`]
/// as numbers: times in seconds (`eta_seconds` is `null` while unknown;
/// `eta_lower_bound` says it is only a lower bound, the `+` of a line).
pub(crate) fn progress_json(f: &Figures) -> String {
    serde_json::json!({
        "elapsed_seconds": f.elapsed.as_secs_f64(),
        "files_done": f.files_done,
        "files_total": f.files_total,
        "bytes_done": f.bytes_done,
        "bytes_total": f.bytes_total,
        "totals_final": f.totals_final,
        "bytes_per_second": f.bytes_per_sec.round() as u64,
        "eta_seconds": f.eta.map(|eta| eta.left.as_secs_f64()),
        "eta_lower_bound": f.eta.is_some_and(|eta| eta.at_least),
    })
    .to_string()
}

/// Bytes per second.
pub(crate) fn rate(bytes: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { bytes as f64 / secs } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(walk_done: bool) -> Counters {
        Counters {
            files_total: 10,
            bytes_total: 4 << 20,
            files_done: 3,
            bytes_done: 1 << 20,
            walk_done,
            ..Counters::default()
        }
    }

    /// The figures 2 s into a run whose totals were as in `c` from the
    /// start.
    fn figures(c: &Counters) -> Figures {
        let start = Instant::now();
        let mut gauge = Gauge::new(start);
        let nothing_done = Counters {
            files_done: 0,
            bytes_done: 0,
            ..*c
        };
        gauge.read(&nothing_done, start);
        gauge.read(c, start + Duration::from_secs(2))
    }

    #[test]
    fn lines_show_counts_sizes_rate_and_eta() {
        let f = figures(&counters(true));
        // 1 MiB in 2 s; 3 MiB left by bytes is 6 s, 7 files left at 1.5 a
        // second 4.67 s: they agree, and their mean stands.
        let eta = f.eta.expect("an ETA");
        assert_eq!((eta.left.as_millis(), eta.at_least), (5333, false));
        assert_eq!(
            progress_line(&f),
            "pcopy: 3/10 files, 1.00 MiB/4.00 MiB, 512.00 KiB/s, ETA 5.4s"
        );
    }

    #[test]
    fn json_lines_carry_the_same_figures() {
        let f = figures(&counters(true));
        let line: serde_json::Value = serde_json::from_str(&progress_json(&f)).unwrap();
        assert_eq!(
            line,
            serde_json::json!({
                "elapsed_seconds": 2.0,
                "files_done": 3,
                "files_total": 10,
                "bytes_done": 1 << 20,
                "bytes_total": 4 << 20,
                "totals_final": true,
                "bytes_per_second": 512 << 10,
                "eta_seconds": 5.333,
                "eta_lower_bound": false,
            })
        );
        let open = progress_json(&figures(&counters(false)));
        assert!(open.contains(r#""totals_final":false"#), "{open}");
        assert!(open.contains(r#""eta_seconds":null"#), "{open}");
    }

    #[test]
    fn totals_are_open_while_walking() {
        let line = progress_line(&figures(&counters(false)));
        assert_eq!(
            line,
            "pcopy: scanning: 3/10+ files, 1.00 MiB/4.00 MiB+, 512.00 KiB/s, ETA ?"
        );
    }

    #[test]
    fn counted_totals_are_final_before_the_walk_is_over() {
        let mut c = counters(false);
        c.counted = Some(Counted {
            files: 40,
            bytes: 16 << 20,
        });
        c.bytes_skipped = 4 << 20;
        let line = progress_line(&figures(&c));
        // 12 MiB left to copy of the 16 counted, 1 MiB done at 512 KiB/s:
        // 22 s by bytes; 37 files at 1.5 a second take 24.7 s: they agree,
        // and their mean, 23.3 s, stands, rounded up.
        assert_eq!(
            line,
            "pcopy: 3/40 files, 1.00 MiB/12.00 MiB, 512.00 KiB/s, ETA 24s"
        );
        // Once the walk is over its own figures hold.
        c.walk_done = true;
        assert_eq!(
            (c.files_total_shown(), c.bytes_total_shown()),
            (10, 4 << 20)
        );
    }

    #[test]
    fn a_lower_bound_has_a_plus_on_every_display() {
        // 7 files left at 1.5 a second take 4.67 s, 39 MiB at 512 KiB/s
        // 78 s: no split of the costs is known, so at least 4.7 s.
        let c = Counters {
            bytes_total: 40 << 20,
            ..counters(true)
        };
        let f = figures(&c);
        assert_eq!(
            progress_line(&f),
            "pcopy: 3/10 files, 1.00 MiB/40.00 MiB, 512.00 KiB/s, ETA 4.7s+"
        );
        let line: serde_json::Value = serde_json::from_str(&progress_json(&f)).unwrap();
        assert_eq!(line["eta_seconds"], 4.667);
        assert_eq!(line["eta_lower_bound"], true);
        assert_eq!(eta_text(f.eta), "4.7s+", "the bar's text");
    }

    #[test]
    fn the_time_left_reads_as_seconds_minutes_or_hours() {
        let text = |ms| duration_text(Duration::from_millis(ms));
        assert_eq!(eta_text(None), "?");
        assert_eq!(text(0), "0s");
        assert_eq!(text(1), "0.1s");
        assert_eq!(text(4_210), "4.3s");
        assert_eq!(text(9_900), "9.9s");
        assert_eq!(text(9_901), "10s");
        assert_eq!(text(59_000), "59s");
        assert_eq!(text(59_001), "1m00s");
        assert_eq!(text(185_000), "3m05s");
        assert_eq!(text(3_600_000), "1h00m");
        assert_eq!(text(7_620_000), "2h07m");
    }

    #[test]
    fn the_silent_display_still_runs_messages() {
        let mut printed = false;
        NoProgress.suspend(&mut || printed = true);
        assert!(printed);
    }
}
