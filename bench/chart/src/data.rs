//! The chart's input: `chart.json` as `bench/report.py` writes it, and the
//! checks that keep a malformed file from reaching the drawing code.
//!
//! ```json
//! {
//!   "caption": ["2 CPUs (AMD EPYC), Linux 6.18; source tmpfs, destination tmpfs"],
//!   "panels": [{
//!     "title": "Small files",
//!     "subtitle": "20,000 files in 1,011 dirs, 224.0 MB",
//!     "bars": [{"copier": "pcopy", "role": "subject", "median_seconds": 0.318,
//!               "fastest_seconds": 0.301, "slowest_seconds": 0.352}]
//!   }]
//! }
//! ```
//!
//! `fastest_seconds` and `slowest_seconds` are optional: without them a bar
//! has no fastest-to-slowest line.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Everything the chart shows.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChartData {
    /// Lines under the panels: the machine and how the runs were made.
    #[serde(default)]
    pub(crate) caption: Vec<String>,
    /// One panel per tree, top to bottom.
    pub(crate) panels: Vec<Panel>,
}

/// One tree: a bar per copier on its own time axis.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Panel {
    pub(crate) title: String,
    #[serde(default)]
    pub(crate) subtitle: String,
    /// Top to bottom.
    pub(crate) bars: Vec<Bar>,
}

/// One copier's times on one tree.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Bar {
    pub(crate) copier: String,
    pub(crate) role: Role,
    pub(crate) median_seconds: f64,
    #[serde(default)]
    pub(crate) fastest_seconds: Option<f64>,
    #[serde(default)]
    pub(crate) slowest_seconds: Option<f64>,
}

/// What a copier is to the benchmark; it picks the bar's colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Role {
    /// pcopy in one of its modes: the program under test.
    Subject,
    /// The floor program: a lower bound.
    Floor,
    /// Any other copier.
    Peer,
}

/// Why no chart was drawn.
#[derive(Debug)]
pub(crate) enum ChartError {
    /// The input file could not be read.
    Read(PathBuf, std::io::Error),
    /// The input is not the JSON described in this module.
    Parse(PathBuf, serde_json::Error),
    /// The input parsed but makes no sense as a chart.
    Invalid(String),
    /// plotters refused to draw.
    Draw(String),
    /// The SVG could not be written.
    Write(PathBuf, std::io::Error),
}

impl fmt::Display for ChartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read(path, err) => write!(f, "cannot read {path:?}: {err}"),
            Self::Parse(path, err) => write!(f, "{path:?} is not chart JSON: {err}"),
            Self::Invalid(why) => write!(f, "bad chart data: {why}"),
            Self::Draw(why) => write!(f, "cannot draw the chart: {why}"),
            Self::Write(path, err) => write!(f, "cannot write {path:?}: {err}"),
        }
    }
}

impl std::error::Error for ChartError {}

/// Reads and checks the chart JSON at `path`.
pub(crate) fn load(path: &Path) -> Result<ChartData, ChartError> {
    let text = std::fs::read(path).map_err(|err| ChartError::Read(path.to_owned(), err))?;
    let data: ChartData =
        serde_json::from_slice(&text).map_err(|err| ChartError::Parse(path.to_owned(), err))?;
    validate(&data)?;
    Ok(data)
}

/// Every time must be a finite, non-negative number of seconds, the fastest
/// run no slower than the median and the median no slower than the slowest,
/// and there must be something to draw.
pub(crate) fn validate(data: &ChartData) -> Result<(), ChartError> {
    if data.panels.is_empty() {
        return Err(ChartError::Invalid("no panels".into()));
    }
    for panel in &data.panels {
        if panel.bars.is_empty() {
            return Err(ChartError::Invalid(format!(
                "panel {:?} has no bars",
                panel.title
            )));
        }
        for bar in &panel.bars {
            validate_bar(bar).map_err(|why| {
                ChartError::Invalid(format!("{:?} in {:?}: {why}", bar.copier, panel.title))
            })?;
        }
    }
    Ok(())
}

fn validate_bar(bar: &Bar) -> Result<(), String> {
    let times = [
        ("median_seconds", Some(bar.median_seconds)),
        ("fastest_seconds", bar.fastest_seconds),
        ("slowest_seconds", bar.slowest_seconds),
    ];
    for (field, value) in times {
        if let Some(seconds) = value
            && !(seconds.is_finite() && seconds >= 0.0)
        {
            return Err(format!("{field} is {seconds}, not a time"));
        }
    }
    if bar
        .fastest_seconds
        .is_some_and(|fastest| fastest > bar.median_seconds)
    {
        return Err("fastest_seconds is above median_seconds".into());
    }
    if bar
        .slowest_seconds
        .is_some_and(|slowest| slowest < bar.median_seconds)
    {
        return Err("slowest_seconds is below median_seconds".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<ChartData, String> {
        let data: ChartData = serde_json::from_str(json).map_err(|err| err.to_string())?;
        validate(&data).map_err(|err| err.to_string())?;
        Ok(data)
    }

    fn one_bar(bar: &str) -> String {
        format!(r#"{{"panels": [{{"title": "t", "bars": [{bar}]}}]}}"#)
    }

    #[test]
    fn reads_a_minimal_chart() {
        let data = parse(&one_bar(
            r#"{"copier": "pcopy", "role": "subject", "median_seconds": 0.5}"#,
        ))
        .unwrap();
        assert_eq!(data.panels[0].bars[0].role, Role::Subject);
        assert_eq!(data.panels[0].bars[0].slowest_seconds, None);
        assert!(data.caption.is_empty());
    }

    #[test]
    fn rejects_an_empty_chart_and_an_empty_panel() {
        let err = parse(r#"{"panels": []}"#).unwrap_err();
        assert!(err.contains("no panels"), "{err}");
        let err = parse(&one_bar("")).unwrap_err();
        assert!(err.contains("no bars"), "{err}");
    }

    #[test]
    fn rejects_negative_and_inconsistent_times() {
        let err = parse(&one_bar(
            r#"{"copier": "cp", "role": "peer", "median_seconds": -1}"#,
        ))
        .unwrap_err();
        assert!(err.contains("median_seconds is -1"), "{err}");
        let err = parse(&one_bar(
            r#"{"copier": "cp", "role": "peer", "median_seconds": 1, "slowest_seconds": 0.5}"#,
        ))
        .unwrap_err();
        assert!(err.contains("below median"), "{err}");
    }

    #[test]
    fn rejects_unknown_fields_and_roles() {
        let err = parse(&one_bar(r#"{"copier": "cp", "role": "peer", "median": 1}"#)).unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
        let err = parse(&one_bar(
            r#"{"copier": "cp", "role": "boss", "median_seconds": 1}"#,
        ))
        .unwrap_err();
        assert!(err.contains("unknown variant"), "{err}");
    }

    #[test]
    fn load_names_the_file_it_cannot_read() {
        let err = load(Path::new("/nonexistent/chart.json")).unwrap_err();
        assert!(matches!(err, ChartError::Read(..)));
        assert!(err.to_string().contains("/nonexistent/chart.json"));
    }
}
