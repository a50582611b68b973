//! Turning errno values into a job's failure class and message.

use rustix::io::Errno;

use crate::job::{FailKind, Outcome};

/// Why a job failed, before it becomes an [`Outcome::Failed`].
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) kind: FailKind,
    pub(super) message: String,
}

impl Failure {
    pub(super) fn new(kind: FailKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
        }
    }

    /// An error opening, inspecting or reading the source. ENOENT means the
    /// entry disappeared after the walk listed it.
    pub(super) fn source(context: &str, err: Errno) -> Self {
        let kind = match err {
            Errno::NOENT => FailKind::Vanished,
            _ => FailKind::SourceIo,
        };
        Self::new(kind, format!("{context}: {}", errno_text(err)))
    }

    /// An error creating, writing or naming something in the destination.
    pub(super) fn dest(context: &str, err: Errno) -> Self {
        let kind = if is_no_space(err) {
            FailKind::NoSpace
        } else {
            FailKind::DestIo
        };
        Self::new(kind, format!("{context}: {}", errno_text(err)))
    }

    pub(super) fn into_outcome(self) -> Outcome {
        Outcome::Failed {
            error: self.message,
            kind: self.kind,
        }
    }
}

pub(super) fn is_no_space(err: Errno) -> bool {
    err == Errno::NOSPC || err == Errno::DQUOT
}

/// The system's text for `err` without the " (os error N)" suffix that
/// `std::io::Error` appends, so messages read "cannot open source: Permission denied".
pub(super) fn errno_text(err: Errno) -> String {
    let text = std::io::Error::from(err).to_string();
    let suffix = format!(" (os error {})", err.raw_os_error());
    match text.strip_suffix(&suffix) {
        Some(stripped) => stripped.to_owned(),
        None => text,
    }
}

/// Path bytes for a message: UTF-8 as is, anything else as `\xNN`, so a
/// non-UTF-8 name is shown without loss and without raw control bytes.
pub(super) fn escape_path(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for ch in chunk.valid().chars() {
            if ch.is_control() {
                out.extend(ch.escape_default());
            } else {
                out.push(ch);
            }
        }
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_text_drops_the_os_error_suffix() {
        assert_eq!(errno_text(Errno::ACCESS), "Permission denied");
    }

    #[test]
    fn source_enoent_is_vanished_and_dest_enospc_is_no_space() {
        assert_eq!(
            Failure::source("cannot open source", Errno::NOENT).kind,
            FailKind::Vanished
        );
        assert_eq!(
            Failure::dest("cannot write", Errno::DQUOT).kind,
            FailKind::NoSpace
        );
        assert_eq!(
            Failure::dest("cannot write", Errno::IO).kind,
            FailKind::DestIo
        );
    }

    #[test]
    fn escape_path_keeps_utf8_and_escapes_invalid_bytes() {
        assert_eq!(escape_path(b"caf\xc3\xa9/\xff\n"), "café/\\xff\\n");
    }
}
