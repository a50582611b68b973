//! A panel's time axis: how far it reaches, which bars it cuts, whether it
//! counts in milliseconds or seconds, and how times are written.
//!
//! One copier can be so slow (the Python seed copier on the small tree takes
//! about 80 times pcopy's time) that on a linear axis long enough for it the
//! others are slivers. The axis therefore ends after the slowest bar that is
//! within [`CUT_RATIO`] of the next faster one; bars beyond are drawn cut,
//! with their time written out. The ratio is large enough that a copier
//! three or four times slower than the rest (rsync on big files) is drawn
//! whole.

use crate::data::Bar;

/// A bar more than this many times as long as the next shorter one is cut,
/// and so is every bar longer than it.
pub(crate) const CUT_RATIO: f64 = 5.0;

/// Room after the longest uncut bar, as a share of its length.
const HEADROOM: f64 = 1.1;

/// The unit a panel's axis counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    Milliseconds,
    Seconds,
}

impl Unit {
    /// Seconds from 2 s on, so tick labels stay short numbers.
    pub(crate) fn for_limit(limit_seconds: f64) -> Self {
        if limit_seconds >= 2.0 {
            Self::Seconds
        } else {
            Self::Milliseconds
        }
    }

    /// A tick label: "250 ms", "1.5 s", "0".
    pub(crate) fn tick_label(self, seconds: f64) -> String {
        if seconds == 0.0 {
            return "0".into();
        }
        let (value, suffix) = match self {
            Self::Milliseconds => (seconds * 1000.0, "ms"),
            Self::Seconds => (seconds, "s"),
        };
        format!("{} {suffix}", trim_number(value))
    }
}

/// `value` with at most three decimals and no trailing zeros.
fn trim_number(value: f64) -> String {
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// A measured time with three significant digits: "25.8 s", "1.23 s",
/// "318 ms", "4.2 ms", like the tables in results.md.
pub(crate) fn format_time(seconds: f64) -> String {
    if seconds >= 10.0 {
        format!("{seconds:.1} s")
    } else if seconds >= 1.0 {
        format!("{seconds:.2} s")
    } else if seconds >= 0.1 {
        format!("{:.0} ms", seconds * 1000.0)
    } else {
        format!("{:.1} ms", seconds * 1000.0)
    }
}

/// The longest time a bar stands for: its slowest run where known.
pub(crate) fn extent(bar: &Bar) -> f64 {
    bar.slowest_seconds.unwrap_or(0.0).max(bar.median_seconds)
}

/// The end of a panel's axis in seconds, a whole number of tick steps.
/// Bars and fastest-to-slowest lines that reach beyond it are cut.
pub(crate) fn axis_limit(bars: &[Bar]) -> f64 {
    let mut extents: Vec<f64> = bars.iter().map(extent).collect();
    extents.sort_by(|a, b| b.total_cmp(a));
    let mut longest = 0;
    while longest + 1 < extents.len() && extents[longest] > CUT_RATIO * extents[longest + 1] {
        longest += 1;
    }
    let reach = extents.get(longest).copied().unwrap_or(0.0) * HEADROOM;
    if reach <= 0.0 {
        // Nothing took measurable time: any axis will do.
        return 0.001;
    }
    let step = tick_step(reach);
    step * (reach / step).ceil()
}

/// A round step (1, 2, 2.5 or 5 times a power of ten) that cuts `span` into
/// about four parts.
pub(crate) fn tick_step(span: f64) -> f64 {
    let raw = span / 4.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * magnitude)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Role;

    fn bar(median: f64, slowest: Option<f64>) -> Bar {
        Bar {
            copier: "c".into(),
            role: Role::Peer,
            median_seconds: median,
            fastest_seconds: None,
            slowest_seconds: slowest,
        }
    }

    #[test]
    fn formats_times_like_the_tables() {
        assert_eq!(format_time(25.8), "25.8 s");
        assert_eq!(format_time(1.234), "1.23 s");
        assert_eq!(format_time(0.412), "412 ms");
        assert_eq!(format_time(0.0042), "4.2 ms");
    }

    #[test]
    fn tick_labels_use_the_panel_unit() {
        assert_eq!(Unit::for_limit(1.2), Unit::Milliseconds);
        assert_eq!(Unit::for_limit(30.0), Unit::Seconds);
        assert_eq!(Unit::Milliseconds.tick_label(0.25), "250 ms");
        assert_eq!(Unit::Milliseconds.tick_label(0.0005), "0.5 ms");
        assert_eq!(Unit::Seconds.tick_label(1.5), "1.5 s");
        assert_eq!(Unit::Seconds.tick_label(0.0), "0");
    }

    #[test]
    fn steps_are_round() {
        assert_eq!(tick_step(1.0), 0.25);
        assert_eq!(tick_step(0.99), 0.25);
        assert_eq!(tick_step(3.0), 1.0);
        assert_eq!(tick_step(700.0), 200.0);
    }

    #[test]
    fn axis_covers_every_bar_of_similar_length() {
        let bars = [bar(0.3, Some(0.35)), bar(0.5, Some(0.9)), bar(0.2, None)];
        let limit = axis_limit(&bars);
        assert!(limit >= 0.9 * HEADROOM, "{limit}");
        assert!(limit < 1.5, "{limit}");
    }

    #[test]
    fn axis_cuts_a_far_outlier() {
        let bars = [
            bar(0.3, Some(0.35)),
            bar(0.9, Some(1.0)),
            bar(25.8, Some(26.2)),
        ];
        let limit = axis_limit(&bars);
        assert!((1.1..2.0).contains(&limit), "{limit}");
        assert!(extent(&bars[2]) > limit);
    }

    #[test]
    fn axis_keeps_a_bar_a_few_times_longer() {
        let bars = [bar(0.45, Some(0.5)), bar(1.55, Some(1.6))];
        let limit = axis_limit(&bars);
        assert!(limit >= 1.6 * HEADROOM, "{limit}");
    }

    #[test]
    fn axis_of_a_single_bar_or_of_nothing() {
        assert!(axis_limit(&[bar(4.0, None)]) >= 4.4);
        assert_eq!(axis_limit(&[bar(0.0, None)]), 0.001);
    }
}
