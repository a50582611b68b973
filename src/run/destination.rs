//! The destination root as the main process opened it: its absolute path
//! for messages and for the workers, its descriptor for the walk and the
//! finish stage, and its identity, which every worker checks its own
//! opening against.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use crate::exit_codes::{ExitStatus, Fatal};
use crate::plan::Plan;
use crate::ui::escape::{Escaped, io_reason};

/// The opened destination root.
#[derive(Debug)]
pub(super) struct Destination {
    /// Absolute.
    pub(super) path: PathBuf,
    /// `None` only when a dry run would have created it.
    pub(super) fd: Option<OwnedFd>,
    /// Device and inode of `fd`: what names one directory whatever its path.
    pub(super) identity: Option<(u64, u64)>,
}

impl Destination {
    /// Opens the plan's destination root (following a symlink: the user
    /// named it); not when a dry run would have created it.
    pub(super) fn open(plan: &Plan, dry_run: bool) -> Result<Destination, Fatal> {
        let dst_root = plan.dst_root.as_path();
        let what = "cannot open destination directory";
        let path = std::path::absolute(dst_root).map_err(|e| dest_fatal(dst_root, what, &e))?;
        if dry_run && plan.create_dst_root {
            return Ok(Destination {
                path,
                fd: None,
                identity: None,
            });
        }
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = rustix::fs::open(&path, flags, Mode::empty())
            .map_err(|e| dest_fatal(dst_root, what, &e.into()))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| dest_fatal(&path, "cannot stat", &e.into()))?;
        Ok(Destination {
            path,
            fd: Some(fd),
            identity: Some((st.st_dev, st.st_ino)),
        })
    }

    /// Another descriptor of the root, for a part of the run that keeps
    /// its own.
    pub(super) fn try_clone_fd(&self) -> std::io::Result<Option<OwnedFd>> {
        self.fd.as_ref().map(OwnedFd::try_clone).transpose()
    }
}

fn dest_fatal(path: &Path, what: &str, err: &std::io::Error) -> Fatal {
    Fatal::new(
        ExitStatus::DestinationIo,
        format!("{}: {what}: {}", Escaped::path(path), io_reason(err)),
    )
}
