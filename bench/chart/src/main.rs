//! pcopy-chart: draws bench/results.svg, the benchmark chart, from the
//! `chart.json` that `bench/report.py` writes next to its other output.
//!
//! `pcopy-chart CHART_JSON OUT_SVG` reads the medians (and, where given, the
//! fastest and slowest runs) of every copier on every tree and writes one
//! panel per tree: a horizontal bar per copier on the panel's own linear time
//! axis, pcopy in red, the floor program in blue, the other copiers in grey,
//! and a caption with the machine and how the runs were made. The input
//! format is described in [`data`]; `bench/run.sh` builds and runs this.

mod data;
mod draw;
mod scale;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use data::ChartError;

const USAGE: &str = "usage: pcopy-chart CHART_JSON OUT_SVG";

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let (input, output) = match args.as_slice() {
        [flag] if flag == "-h" || flag == "--help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        [input, output] => (PathBuf::from(input), PathBuf::from(output)),
        _ => {
            eprintln!("pcopy-chart: expected two arguments\n{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    match run(&input, &output) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("pcopy-chart: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Draws the whole chart in memory first, so a bad input leaves an
/// existing SVG as it was.
fn run(input: &Path, output: &Path) -> Result<(), ChartError> {
    let chart = data::load(input)?;
    let svg = draw::render(&chart)?;
    std::fs::write(output, svg).map_err(|err| ChartError::Write(output.to_owned(), err))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory for one test, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(test: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("pcopy-chart-{}-{test}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, text).unwrap();
            path
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const CHART: &str = r#"{"caption": ["2 CPUs"], "panels": [{"title": "Small files",
        "bars": [{"copier": "pcopy", "role": "subject", "median_seconds": 0.318}]}]}"#;

    #[test]
    fn writes_the_svg() {
        let scratch = Scratch::new("writes");
        let input = scratch.write("chart.json", CHART);
        let output = scratch.0.join("results.svg");
        run(&input, &output).unwrap();
        let svg = std::fs::read_to_string(&output).unwrap();
        assert!(
            svg.contains("Small files") && svg.contains("318 ms"),
            "{svg}"
        );
    }

    #[test]
    fn bad_input_leaves_the_old_svg_alone() {
        let scratch = Scratch::new("bad-input");
        let output = scratch.write("results.svg", "old chart");
        let truncated = scratch.write("chart.json", &CHART[..40]);
        let err = run(&truncated, &output).unwrap_err();
        assert!(matches!(err, ChartError::Parse(..)), "{err}");
        let empty = scratch.write("empty.json", r#"{"panels": []}"#);
        let err = run(&empty, &output).unwrap_err();
        assert!(matches!(err, ChartError::Invalid(..)), "{err}");
        assert_eq!(std::fs::read_to_string(&output).unwrap(), "old chart");
    }

    #[test]
    fn an_unwritable_output_is_reported() {
        let scratch = Scratch::new("unwritable");
        let input = scratch.write("chart.json", CHART);
        let output = Path::new("/nonexistent-dir/results.svg");
        let err = run(&input, output).unwrap_err();
        assert!(matches!(err, ChartError::Write(..)), "{err}");
        assert!(err.to_string().contains("/nonexistent-dir/results.svg"));
    }
}
