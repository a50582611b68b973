//! The `--json` summary: one object on stdout at the end of a run.
//!
//! Paths are bytes on Unix and JSON strings are Unicode, so a path is
//! written as a string when it is valid UTF-8 and otherwise as an object
//! `{"bytes_b64": "..."}` holding its bytes in standard base64 (RFC 4648,
//! with padding). Either form gives back the exact bytes.

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;

use serde_json::{Map, Value, json};

use super::report::{ErrorRecord, RunReport};

/// Prints the summary on stdout. A closed stdout must not turn a finished
/// run into a failure, so a write error is ignored.
pub(crate) fn print(report: &RunReport, dry_run: bool) {
    let _ = writeln!(std::io::stdout().lock(), "{}", render(report, dry_run));
}

/// The summary object, as one line of JSON.
pub(crate) fn render(report: &RunReport, dry_run: bool) -> String {
    let tally = &report.tally;
    let errors: Vec<Value> = report.errors.iter().map(error_value).collect();
    let value = json!({
        "files_copied": tally.copied,
        "files_skipped": tally.skipped,
        "files_failed": tally.failed + tally.vanished,
        "files_vanished": tally.vanished,
        "files_not_copied": tally.not_copied,
        "dirs_created": tally.dirs_created,
        "deleted": tally.deleted,
        "bytes_copied": tally.bytes,
        "elapsed_seconds": report.elapsed.as_secs_f64(),
        "workers": report.workers,
        "exit_code": report.status.code(),
        "dry_run": dry_run,
        "errors": errors,
    });
    value.to_string()
}

fn error_value(record: &ErrorRecord) -> Value {
    let mut object = Map::new();
    let path = record.path.as_deref().map_or(Value::Null, path_value);
    object.insert("path".into(), path);
    object.insert("error".into(), Value::String(record.error.clone()));
    Value::Object(object)
}

/// A path as a JSON string if it is UTF-8, else as `{"bytes_b64": ...}`.
pub(crate) fn path_value(path: &OsStr) -> Value {
    match std::str::from_utf8(path.as_bytes()) {
        Ok(text) => Value::String(text.to_string()),
        Err(_) => json!({ "bytes_b64": base64(path.as_bytes()) }),
    }
}

/// Standard base64 with padding (RFC 4648, section 4).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let group = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                let index = (group >> (18 - 6 * i)) & 0x3f;
                out.push(char::from(ALPHABET[index as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::exit_codes::ExitStatus;
    use crate::ui::report::Tally;

    #[test]
    fn base64_matches_the_rfc_test_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }

    #[test]
    fn paths_are_strings_unless_they_are_not_utf8() {
        assert_eq!(path_value(OsStr::new("café/x")), json!("café/x"));
        let raw = OsStr::from_bytes(b"a\xff");
        assert_eq!(path_value(raw), json!({"bytes_b64": "Yf8="}));
    }

    #[test]
    fn the_summary_has_every_field() {
        let report = RunReport {
            status: ExitStatus::Partial,
            tally: Tally {
                copied: 2,
                bytes: 10,
                failed: 1,
                dirs_created: 3,
                ..Tally::default()
            },
            errors: vec![ErrorRecord {
                path: Some("src/x".into()),
                error: "cannot open source: Permission denied".into(),
            }],
            elapsed: Duration::from_millis(1500),
            workers: 8,
        };
        let parsed: Value = serde_json::from_str(&render(&report, false)).unwrap();
        assert_eq!(parsed["files_copied"], 2);
        assert_eq!(parsed["files_failed"], 1);
        assert_eq!(parsed["dirs_created"], 3);
        assert_eq!(parsed["bytes_copied"], 10);
        assert_eq!(parsed["exit_code"], 23);
        assert_eq!(parsed["elapsed_seconds"], 1.5);
        assert_eq!(parsed["workers"], 8);
        assert_eq!(parsed["errors"][0]["path"], "src/x");
    }
}
