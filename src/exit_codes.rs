//! The exit statuses of pcopy: rsync's numbers, so scripts written for rsync
//! read them the same way.

use std::fmt;

/// Why pcopy exits. The discriminants are the process exit statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitStatus {
    /// Every entry was copied (special files skipped with a warning count
    /// as success, as in rsync).
    Success = 0,
    /// The command line was wrong.
    Usage = 1,
    /// A source or the destination is unusable: a missing source, a source
    /// equal to the destination or containing it, a directory over a file.
    BadPath = 3,
    /// The destination itself could not be created or opened.
    DestinationIo = 11,
    /// The worker pool or its queues could not be started or failed.
    Ipc = 14,
    /// Stopped by SIGINT or SIGTERM.
    Interrupted = 20,
    /// Some entries failed; the others were copied.
    Partial = 23,
    /// Some source files vanished during the run, and nothing else failed.
    Vanished = 24,
    /// `--max-delete` stopped the deletions.
    DeleteLimit = 25,
}

impl ExitStatus {
    /// The status to hand to the operating system.
    pub(crate) fn code(self) -> u8 {
        self as u8
    }
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(status: ExitStatus) -> Self {
        std::process::ExitCode::from(status.code())
    }
}

/// The help text's list of exit statuses, kept next to the enum so the two
/// cannot drift apart (a unit test checks that every status is listed).
pub(crate) const EXIT_STATUS_HELP: &str = "\
Exit status:
   0  everything was copied (skipped special files included)
   1  usage error
   3  bad source or destination: missing SRC, SRC equal to DST,
      DST inside SRC, a directory over an existing file
  11  the destination itself cannot be created or opened
  14  the worker pool or its queues failed
  20  interrupted by SIGINT or SIGTERM
  23  some entries failed, the rest were copied
  24  some source files vanished during the run (nothing else failed)
  25  --max-delete stopped the deletions";

/// An error that ends the run with a particular status. `main` prints
/// it once, after `pcopy: `, and exits with its status.
#[derive(Debug)]
pub(crate) struct Fatal {
    pub(crate) status: ExitStatus,
    pub(crate) message: String,
}

impl Fatal {
    pub(crate) fn new(status: ExitStatus, message: impl Into<String>) -> Fatal {
        Fatal {
            status,
            message: message.into(),
        }
    }
}

impl fmt::Display for Fatal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Fatal {}

/// The status for an error that reached `main`: its own status if it is a
/// [`Fatal`], otherwise an internal failure of the pool machinery.
pub(crate) fn status_of(err: &anyhow::Error) -> ExitStatus {
    err.downcast_ref::<Fatal>()
        .map_or(ExitStatus::Ipc, |fatal| fatal.status)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [ExitStatus; 9] = [
        ExitStatus::Success,
        ExitStatus::Usage,
        ExitStatus::BadPath,
        ExitStatus::DestinationIo,
        ExitStatus::Ipc,
        ExitStatus::Interrupted,
        ExitStatus::Partial,
        ExitStatus::Vanished,
        ExitStatus::DeleteLimit,
    ];

    #[test]
    fn statuses_are_rsyncs_numbers() {
        let codes: Vec<u8> = ALL.iter().map(|s| s.code()).collect();
        assert_eq!(codes, [0, 1, 3, 11, 14, 20, 23, 24, 25]);
    }

    #[test]
    fn help_lists_every_status() {
        for status in ALL {
            let line = format!("\n{:>4}  ", status.code());
            assert!(
                EXIT_STATUS_HELP.contains(&line),
                "status {status:?} missing from the help text"
            );
        }
    }

    #[test]
    fn fatal_errors_keep_their_status_through_anyhow() {
        let err = anyhow::Error::new(Fatal::new(ExitStatus::BadPath, "no such source"));
        assert_eq!(status_of(&err), ExitStatus::BadPath);
        assert_eq!(err.to_string(), "no such source");
        assert_eq!(status_of(&anyhow::anyhow!("pool broke")), ExitStatus::Ipc);
    }
}
