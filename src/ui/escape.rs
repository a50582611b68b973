//! Showing paths and errors in messages without losing or faking bytes.
//!
//! Paths are copied as raw bytes; only messages need text. Valid UTF-8 is
//! shown as is, every byte that is not valid UTF-8 as `\xNN`, and control
//! characters as `\n`, `\t`, `\r` or `\xNN`, so a hostile name cannot move
//! the cursor or forge a second line of output.

use std::ffi::OsStr;
use std::fmt::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Displays a path or name escaped; see the module documentation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Escaped<'a>(&'a [u8]);

impl<'a> Escaped<'a> {
    pub(crate) fn os(name: &'a OsStr) -> Self {
        Escaped(name.as_bytes())
    }

    pub(crate) fn path(path: &'a Path) -> Self {
        Escaped(path.as_os_str().as_bytes())
    }
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '\n' => f.write_str("\\n")?,
                    '\t' => f.write_str("\\t")?,
                    '\r' => f.write_str("\\r")?,
                    c if c.is_control() => {
                        let mut buf = [0; 4];
                        for byte in c.encode_utf8(&mut buf).bytes() {
                            write!(f, "\\x{byte:02x}")?;
                        }
                    }
                    c => f.write_char(c)?,
                }
            }
            for byte in chunk.invalid() {
                write!(f, "\\x{byte:02x}")?;
            }
        }
        Ok(())
    }
}

/// An I/O error as the reason part of `pcopy: PATH: reason`: the system's
/// message without std's ` (os error N)` suffix, as `cp` and `rsync` print it.
pub(crate) fn io_reason(err: &std::io::Error) -> String {
    let text = err.to_string();
    match (err.raw_os_error(), text.rfind(" (os error ")) {
        (Some(_), Some(cut)) => text[..cut].to_string(),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(bytes: &[u8]) -> String {
        Escaped::os(OsStr::from_bytes(bytes)).to_string()
    }

    #[test]
    fn invalid_utf8_bytes_are_shown_as_hex() {
        assert_eq!(escaped(b"a\xff.txt"), "a\\xff.txt");
        assert_eq!(escaped(b"\xc3"), "\\xc3");
    }

    #[test]
    fn unicode_passes_through_and_controls_are_escaped() {
        assert_eq!(
            Escaped::os(OsStr::new("héllo/日本")).to_string(),
            "héllo/日本"
        );
        assert_eq!(escaped(b"a\nb\tc\x1b[2J\x7f"), "a\\nb\\tc\\x1b[2J\\x7f");
    }

    #[test]
    fn io_reasons_drop_the_os_error_suffix() {
        let err = std::io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(io_reason(&err), "No such file or directory");
        assert_eq!(io_reason(&std::io::Error::other("plain")), "plain");
    }

    #[test]
    fn paths_display_like_their_bytes() {
        assert_eq!(Escaped::path(Path::new("/tmp/x y")).to_string(), "/tmp/x y");
    }
}
