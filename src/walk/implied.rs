//! The directories above a root that `-R` or `--files-from` keeps by path
//! (rsync's implied directories): made, or entered, before the root is
//! walked, each with its source directory's metadata.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::Walker;
use super::batch::Stopped;
use super::dest::{DestDir, Parent};
use super::entry_stat::EntryStat;
use crate::job::FailKind;
use crate::plan::Root;
use crate::ui::escape::io_reason;

/// One implied directory the walker holds open.
pub(super) struct Implied {
    rel: OsString,
    dir: DestDir,
}

/// The implied directories of the last root, outermost first. Roots of a
/// sorted list share them, so each is made (and recorded) once per run of
/// roots below it.
#[derive(Default)]
pub(super) struct ImpliedChain(Vec<Implied>);

impl ImpliedChain {
    /// Where a root of the chain's last directory goes.
    pub(super) fn parent(&self) -> Parent<'_> {
        self.0
            .last()
            .map_or(Parent::Root, |implied| Parent::Dir(&implied.dir))
    }
}

impl Walker {
    /// Makes the directories above `root` in the destination, keeping those
    /// the previous root shared. False when one cannot be made (reported)
    /// or, with `--existing`, is not there: the root is then skipped.
    pub(super) fn enter_implied(
        &mut self,
        root: &Root,
        chain: &mut ImpliedChain,
    ) -> Result<bool, Stopped> {
        let names: Vec<&[u8]> = root.rel_dst.as_bytes().split(|&b| b == b'/').collect();
        let needed: Vec<OsString> = (1..names.len())
            .map(|n| OsString::from(std::ffi::OsStr::from_bytes(&names[..n].join(&b'/'))))
            .collect();
        let kept = chain
            .0
            .iter()
            .zip(&needed)
            .take_while(|(have, want)| have.rel == **want);
        let kept = kept.count();
        chain.0.truncate(kept);
        for (depth, rel) in needed.iter().enumerate().skip(kept) {
            // The source of `a/b` below a root `a/b/c/d` is two names up.
            let src = root.src.ancestors().nth(names.len() - 1 - depth);
            let src = src.unwrap_or(Path::new("."));
            let parent = chain.parent();
            if self.setup.existing && !self.dest.has(parent, rel) {
                return Ok(false);
            }
            let stat = match EntryStat::of_path(src, true) {
                Ok(stat) => stat,
                Err(err) => {
                    self.fail(src, io_reason(&err), FailKind::SourceIo)?;
                    return Ok(false);
                }
            };
            // Opened for its attributes under -a; none when it cannot be.
            let opened = super::tree::open_root(src).ok();
            let fd = opened.as_ref().map(std::os::fd::AsFd::as_fd);
            match self.enter_dir(parent, fd, rel, &stat) {
                Ok(dir) => chain.0.push(Implied {
                    rel: rel.clone(),
                    dir,
                }),
                Err(failure) => {
                    self.fail(src, failure.reason, failure.kind)?;
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }
}
