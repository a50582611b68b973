//! Progress on stderr: a bar on a terminal, a line a second for logs, or
//! nothing, behind one trait so the run loop does not care which.
//!
//! The run loop owns the [`Counters`] and hands them over after every
//! change; each display decides for itself how often to draw.

use std::time::{Duration, Instant};

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

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
    match mode {
        ProgressMode::Off => Box::new(NoProgress),
        ProgressMode::Bar => Box::new(Bar::new()),
        ProgressMode::Lines => Box::new(Lines::new(Instant::now())),
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

/// An indicatif bar over the bytes, with the file count as its message:
/// while the totals are still growing, only counts and the rate under
/// "scanning" (a bar and an ETA against a moving total would mean
/// nothing); once they are final, the bar and the ETA.
#[derive(Debug)]
struct Bar {
    bar: ProgressBar,
    files_shown: Option<(u64, u64, bool)>,
    final_style: bool,
}

/// The bar's look while the totals grow, and once they are final.
fn bar_style(totals_final: bool) -> ProgressStyle {
    let template = match totals_final {
        true => "{spinner} {msg} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        false => "{spinner} scanning: {msg}, {bytes}/{total_bytes}+ {bytes_per_sec}",
    };
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

impl Bar {
    fn new() -> Bar {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr())
            .with_style(bar_style(false));
        // Keeps the spinner, rate and ETA moving while a large file copies.
        bar.enable_steady_tick(Duration::from_millis(200));
        Bar {
            bar,
            files_shown: None,
            final_style: false,
        }
    }
}

impl Progress for Bar {
    fn update(&mut self, c: &Counters) {
        if c.totals_final() && !self.final_style {
            self.final_style = true;
            self.bar.set_style(bar_style(true));
        }
        self.bar.set_length(c.bytes_total_shown());
        self.bar.set_position(c.bytes_done);
        let files = (c.files_done, c.files_total_shown(), c.totals_final());
        if self.files_shown != Some(files) {
            self.files_shown = Some(files);
            self.bar.set_message(files_text(c));
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

/// A plain line on stderr every second, and one at the end.
#[derive(Debug)]
struct Lines {
    started: Instant,
    last: Instant,
}

impl Lines {
    fn new(now: Instant) -> Lines {
        Lines {
            started: now,
            last: now,
        }
    }
}

impl Progress for Lines {
    fn update(&mut self, c: &Counters) {
        let now = Instant::now();
        if now.duration_since(self.last) >= LINE_INTERVAL {
            self.last = now;
            eprintln!("{}", progress_line(c, now.duration_since(self.started)));
        }
    }

    fn suspend(&self, print: &mut dyn FnMut()) {
        print();
    }

    fn finish(&mut self, c: &Counters) {
        eprintln!("{}", progress_line(c, self.started.elapsed()));
    }
}

/// `3/10 files`, with a `+` on the total while it may still grow.
fn files_text(c: &Counters) -> String {
    let more = if c.totals_final() { "" } else { "+" };
    format!("{}/{}{more} files", c.files_done, c.files_total_shown())
}

/// One progress line, e.g.
/// `pcopy: 3/10 files, 1.00 MiB/4.00 MiB, 512.00 KiB/s, ETA 6s`.
pub(crate) fn progress_line(c: &Counters, elapsed: Duration) -> String {
    let rate = rate(c.bytes_done, elapsed);
    let bytes_total = c.bytes_total_shown();
    let eta = match (c.totals_final(), rate) {
        (true, r) if r > 0.0 => {
            let left = bytes_total.saturating_sub(c.bytes_done) as f64;
            format!("{}s", (left / r).ceil() as u64)
        }
        (true, _) if c.files_done == c.files_total_shown() => "0s".to_string(),
        _ => "?".to_string(),
    };
    let (scanning, more) = match c.totals_final() {
        true => ("", ""),
        false => ("scanning: ", "+"),
    };
    format!(
        "pcopy: {scanning}{}, {}/{}{more}, {}/s, ETA {eta}",
        files_text(c),
        HumanBytes(c.bytes_done),
        HumanBytes(bytes_total),
        HumanBytes(rate as u64),
    )
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

    #[test]
    fn lines_show_counts_sizes_rate_and_eta() {
        let line = progress_line(&counters(true), Duration::from_secs(2));
        assert_eq!(
            line,
            "pcopy: 3/10 files, 1.00 MiB/4.00 MiB, 512.00 KiB/s, ETA 6s"
        );
    }

    #[test]
    fn totals_are_open_while_walking() {
        let line = progress_line(&counters(false), Duration::from_secs(2));
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
        let line = progress_line(&c, Duration::from_secs(2));
        // 12 MiB left to copy of the 16 counted, 1 MiB done at 512 KiB/s.
        assert_eq!(
            line,
            "pcopy: 3/40 files, 1.00 MiB/12.00 MiB, 512.00 KiB/s, ETA 22s"
        );
        // Once the walk is over its own figures hold.
        c.walk_done = true;
        assert_eq!(
            (c.files_total_shown(), c.bytes_total_shown()),
            (10, 4 << 20)
        );
    }

    #[test]
    fn the_silent_display_still_runs_messages() {
        let mut printed = false;
        NoProgress.suspend(&mut || printed = true);
        assert!(printed);
    }
}
