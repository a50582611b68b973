//! `-R`/`--relative` and `--files-from`: sources whose path below a base
//! (all of it, the part after `/./`, or a line of the list) is kept below
//! DST, its missing directories made on the way (rsync's implied
//! directories).

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::{Plan, Root, Source, bad, check_root, require_parent};
use crate::exit_codes::Fatal;
use crate::ui::escape::{Escaped, io_reason};

/// A source path split where the part kept below DST starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Relative {
    /// Where `rel` is looked up.
    pub(crate) base: PathBuf,
    /// Kept below DST: components joined by single `/`, no `.` or `..`,
    /// empty for the base itself.
    pub(crate) rel: OsString,
}

/// The sources of a `-R` or `--files-from` run, split, and the ones
/// refused already.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RelativeSources {
    pub(crate) sources: Vec<Relative>,
    pub(crate) rejected: Vec<Rejected>,
}

impl RelativeSources {
    /// `-R SRC...`: each source split where its kept part starts.
    pub(crate) fn of_sources(raw: &[OsString]) -> RelativeSources {
        let mut out = RelativeSources::default();
        for source in raw {
            match split_source(source) {
                Ok(relative) => out.sources.push(relative),
                Err(reason) => out.rejected.push(Rejected {
                    path: PathBuf::from(source),
                    reason,
                }),
            }
        }
        out
    }

    /// `--files-from FILE SRC`: the list's entries below SRC.
    pub(crate) fn of_list(
        file: &Path,
        from0: bool,
        base: &OsStr,
    ) -> Result<RelativeSources, Fatal> {
        let list = read_list_file(file)?;
        let (sources, rejected) = read_list(&list, from0, Path::new(base));
        Ok(RelativeSources { sources, rejected })
    }
}

/// A source left out before the copy, reported as a failed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejected {
    pub(crate) path: PathBuf,
    pub(crate) reason: String,
}

/// `-R`: `a/b/c` keeps `a/b/c`, `/x/y` keeps `x/y`, `a/./b/c` keeps `b/c`.
pub(crate) fn split_source(raw: &OsStr) -> Result<Relative, String> {
    let bytes = raw.as_bytes();
    let (base, kept) = match find(bytes, b"/./") {
        Some(at) => (&bytes[..at + 1], &bytes[at + 3..]),
        None if bytes.starts_with(b"/") => (&b"/"[..], bytes),
        None => (&b"."[..], bytes),
    };
    let rel = clean(kept)?;
    Ok(Relative {
        base: PathBuf::from(OsStr::from_bytes(base)),
        rel,
    })
}

/// `--files-from`: one relative path per entry of `list` (split on NUL
/// with `-0`, else on newlines), below `base`. Blank entries and entries
/// starting with `#` or `;` are skipped, a leading `/` is dropped; an
/// entry with a `..` (which could name something outside `base`) is
/// rejected on its own.
pub(crate) fn read_list(list: &[u8], from0: bool, base: &Path) -> (Vec<Relative>, Vec<Rejected>) {
    let separator = if from0 { b'\0' } else { b'\n' };
    let mut entries = Vec::new();
    let mut rejected = Vec::new();
    for line in list.split(|&b| b == separator) {
        let line = match from0 {
            true => line,
            false => line.strip_suffix(b"\r").unwrap_or(line),
        };
        if line.is_empty() || line.starts_with(b"#") || line.starts_with(b";") {
            continue;
        }
        match clean(line) {
            Ok(rel) => entries.push(Relative {
                base: base.to_path_buf(),
                rel,
            }),
            Err(reason) => rejected.push(Rejected {
                path: base.join(OsStr::from_bytes(line)),
                reason,
            }),
        }
    }
    (entries, rejected)
}

/// The components of `path` that name something, joined by `/`; a `..`
/// is refused, as it could climb out of the base.
fn clean(path: &[u8]) -> Result<OsString, String> {
    let mut out: Vec<u8> = Vec::new();
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err("names a path outside the source directory (..)".into()),
            name => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(name);
            }
        }
    }
    Ok(OsString::from(OsStr::from_bytes(&out)))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The plan for relative sources: each goes to `DST/rel`. DST must be a
/// directory (created if missing, with its parents under `mkpath`). A
/// source that cannot be read is rejected alone, as are `rejected` ones.
pub(crate) fn resolve(
    sources: Vec<Relative>,
    mut rejected: Vec<Rejected>,
    destination: &OsStr,
    dereference: bool,
    mkpath: bool,
) -> Result<Plan, Fatal> {
    let dst = PathBuf::from(destination);
    let dst_meta = fs::metadata(&dst).ok();
    if dst_meta.as_ref().is_some_and(|meta| !meta.is_dir()) {
        return Err(bad(
            &dst,
            "not a directory (relative paths go into a directory)",
        ));
    }
    if dst_meta.is_none() && !mkpath {
        require_parent(&dst)?;
    }
    let mut roots = Vec::new();
    for source in sources {
        let path = source.base.join(&source.rel);
        let meta = match dereference {
            true => fs::metadata(&path),
            false => fs::symlink_metadata(&path),
        };
        let meta = match meta {
            Ok(meta) => meta,
            Err(err) => {
                let reason = format!("cannot read source: {}", io_reason(&err));
                rejected.push(Rejected { path, reason });
                continue;
            }
        };
        let checked = Source {
            path: path.clone(),
            contents: true,
            meta,
        };
        check_root(&checked, &dst, &source.rel)?;
        roots.push(Root {
            src: path,
            rel_dst: source.rel,
            is_dir: checked.meta.is_dir(),
            flat: false,
        });
    }
    Ok(Plan {
        dst_root: dst,
        create_dst_root: dst_meta.is_none(),
        mkpath,
        roots,
        rejected,
    })
}

/// Reads a `--files-from` FILE, or standard input for `-`.
pub(crate) fn read_list_file(file: &Path) -> Result<Vec<u8>, Fatal> {
    let read = match file.as_os_str().as_bytes() {
        b"-" => {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut bytes).map(|_| bytes)
        }
        _ => fs::read(file),
    };
    read.map_err(|err| {
        let why = format!(
            "cannot read --files-from {}: {}",
            Escaped::path(file),
            io_reason(&err)
        );
        Fatal::new(crate::exit_codes::ExitStatus::Usage, why)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(base: &str, rel: &str) -> Relative {
        Relative {
            base: PathBuf::from(base),
            rel: rel.into(),
        }
    }

    #[test]
    fn relative_sources_keep_their_path_or_the_part_after_a_dot() {
        assert_eq!(
            split_source("a/b/c.txt".as_ref()),
            Ok(rel(".", "a/b/c.txt"))
        );
        assert_eq!(split_source("/x/y".as_ref()), Ok(rel("/", "x/y")));
        assert_eq!(split_source("a/./b//c/".as_ref()), Ok(rel("a/", "b/c")));
        assert_eq!(split_source("./a".as_ref()), Ok(rel(".", "a")));
        assert!(split_source("a/../../etc".as_ref()).is_err());
    }

    #[test]
    fn list_lines_are_relative_to_the_base_and_bad_ones_stand_alone() {
        let list = b"a.txt\n/abs/b\n\n# comment\n; too\n../x\nsub/../../y\nc d\r\n";
        let (entries, rejected) = read_list(list, false, Path::new("src"));
        assert_eq!(
            entries,
            [rel("src", "a.txt"), rel("src", "abs/b"), rel("src", "c d")]
        );
        let paths: Vec<&Path> = rejected.iter().map(|r| r.path.as_path()).collect();
        assert_eq!(paths, [Path::new("src/../x"), Path::new("src/sub/../../y")]);
        let (zeroed, _) = read_list(b"new\nline\0b\0", true, Path::new("s"));
        assert_eq!(zeroed, [rel("s", "new\nline"), rel("s", "b")]);
    }
}
