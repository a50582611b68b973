//! One line per entry, as rsync writes it: the `-v` name list, the
//! `--itemize-changes` codes (`>f..t...... path`) and the `--out-format`
//! escapes they are made of.

use std::ffi::OsStr;
use std::fmt::Write;
use std::os::unix::ffi::OsStrExt;

use super::escape::Escaped;
use crate::job::Changes;

/// The first letter of an itemized code: what happened to the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Update {
    /// `>`: its data was copied.
    Transfer,
    /// `c`: created or changed in place (a directory, a link, a node).
    Local,
    /// `h`: made a hard link to another name.
    HardLink,
    /// `.`: not copied; at most its attributes were set.
    Attributes,
    /// `*deleting`: removed by `--delete`.
    Deleted,
}

/// The second letter: the entry's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ItemType {
    File,
    Dir,
    Symlink,
    Device,
    Special,
}

impl ItemType {
    /// The type of a `st_mode`.
    pub(crate) fn of_mode(mode: u32) -> ItemType {
        match mode & libc::S_IFMT {
            libc::S_IFDIR => ItemType::Dir,
            libc::S_IFLNK => ItemType::Symlink,
            libc::S_IFCHR | libc::S_IFBLK => ItemType::Device,
            libc::S_IFREG => ItemType::File,
            _ => ItemType::Special,
        }
    }

    fn letter(self) -> char {
        match self {
            ItemType::File => 'f',
            ItemType::Dir => 'd',
            ItemType::Symlink => 'L',
            ItemType::Device => 'D',
            ItemType::Special => 'S',
        }
    }
}

/// rsync's 11-character `%i`: `YXcstpoguax`. A new entry is all `+`; an
/// unchanged attribute is a `.`, or a space when nothing changed at all
/// (what `-ii` shows for an up-to-date entry).
pub(crate) fn code(update: Update, kind: ItemType, changes: &Changes) -> String {
    let first = match update {
        Update::Transfer => '>',
        Update::Local => 'c',
        Update::HardLink => 'h',
        Update::Attributes => '.',
        Update::Deleted => return "*deleting  ".to_string(),
    };
    let mut out = String::with_capacity(11);
    out.push(first);
    out.push(kind.letter());
    if changes.created {
        out.push_str("+++++++++");
        return out;
    }
    if !changes.any() && update == Update::Attributes {
        out.push_str("         ");
        return out;
    }
    let letters = [
        (changes.contents, 'c'),
        (changes.size, 's'),
        (
            changes.time || changes.time_now,
            if changes.time_now { 'T' } else { 't' },
        ),
        (changes.perms, 'p'),
        (changes.owner, 'o'),
        (changes.group, 'g'),
        (false, 'u'),
        (false, 'a'),
        (false, 'x'),
    ];
    out.extend(letters.iter().map(|&(on, c)| if on { c } else { '.' }));
    out
}

/// One piece of an `--out-format` string.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    /// `%n`: the path below DST, directories with a trailing `/`.
    Name,
    /// `%f`: the source path.
    Full,
    /// `%l`: the entry's length in bytes.
    Length,
    /// `%b`: the bytes copied.
    Bytes,
    /// `%i`: the itemized code.
    Itemize,
    /// `%o`: `send`, or `del.` for a deletion.
    Operation,
    /// `%L`: ` -> TARGET` for a symbolic link, else nothing.
    Link,
}

/// A parsed `--out-format`. Escapes other than the ones of [`Piece`] are
/// kept as they are written, as rsync does with escapes it has no value
/// for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutFormat {
    pieces: Vec<Piece>,
}

/// What an entry's line is made of.
#[derive(Debug, Clone)]
pub(crate) struct Item<'a> {
    pub(crate) update: Update,
    pub(crate) kind: ItemType,
    pub(crate) changes: Changes,
    /// Below DST; without the trailing `/` of a directory.
    pub(crate) rel: &'a OsStr,
    /// The source path, where known (else `rel` stands in).
    pub(crate) src: Option<&'a OsStr>,
    pub(crate) length: u64,
    pub(crate) bytes: u64,
    /// A symbolic link's target.
    pub(crate) target: Option<&'a [u8]>,
}

impl OutFormat {
    /// Parses FORMAT. `%` followed by a letter not listed in [`Piece`]
    /// (or by nothing) stays literal; `%%` is a `%`. rsync's field widths
    /// (`%-10n`) are not supported and stay literal too.
    pub(crate) fn parse(format: &str) -> OutFormat {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = format.chars().peekable();
        while let Some(c) = chars.next() {
            let piece = match (c, chars.peek()) {
                ('%', Some('n')) => Piece::Name,
                ('%', Some('f')) => Piece::Full,
                ('%', Some('l')) => Piece::Length,
                ('%', Some('b')) => Piece::Bytes,
                ('%', Some('i')) => Piece::Itemize,
                ('%', Some('o')) => Piece::Operation,
                ('%', Some('L')) => Piece::Link,
                ('%', Some('%')) => {
                    chars.next();
                    text.push('%');
                    continue;
                }
                (c, _) => {
                    text.push(c);
                    continue;
                }
            };
            chars.next();
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.push(piece);
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        OutFormat { pieces }
    }

    /// `-v`'s format: `%n%L`.
    pub(crate) fn names() -> OutFormat {
        OutFormat::parse("%n%L")
    }

    /// `-i`'s format: `%i %n%L`.
    pub(crate) fn itemized() -> OutFormat {
        OutFormat::parse("%i %n%L")
    }

    /// Whether the format shows `%i`: then every changed entry is listed,
    /// not only the copied and created ones.
    pub(crate) fn itemizes(&self) -> bool {
        self.pieces.contains(&Piece::Itemize)
    }

    /// Whether a deletion is written in this format (with `%i` or `%o`);
    /// otherwise as `deleting NAME`, rsync's rule.
    pub(crate) fn shows_deletions(&self) -> bool {
        self.itemizes() || self.pieces.contains(&Piece::Operation)
    }

    /// The line for `item`, without a newline.
    pub(crate) fn render(&self, item: &Item<'_>) -> String {
        let mut line = String::new();
        for piece in &self.pieces {
            // Writing to a String cannot fail.
            let _ = match piece {
                Piece::Text(text) => write!(line, "{text}"),
                Piece::Name => write!(line, "{}", name(item)),
                Piece::Full => write!(line, "{}", Escaped::os(item.src.unwrap_or(item.rel))),
                Piece::Length => write!(line, "{}", item.length),
                Piece::Bytes => write!(line, "{}", item.bytes),
                Piece::Itemize => write!(line, "{}", code(item.update, item.kind, &item.changes)),
                Piece::Operation => match item.update {
                    Update::Deleted => write!(line, "del."),
                    _ => write!(line, "send"),
                },
                Piece::Link => match item.target {
                    Some(target) => write!(line, " -> {}", Escaped::os(OsStr::from_bytes(target))),
                    None => Ok(()),
                },
            };
        }
        line
    }
}

/// `%n`: the path below DST; a directory ends in `/`, the root is `./`.
fn name(item: &Item<'_>) -> String {
    match (item.kind, item.rel.is_empty()) {
        (ItemType::Dir, true) => "./".to_string(),
        (ItemType::Dir, false) => format!("{}/", Escaped::os(item.rel)),
        _ => Escaped::os(item.rel).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(f: impl FnOnce(&mut Changes)) -> Changes {
        let mut c = Changes::default();
        f(&mut c);
        c
    }

    #[test]
    fn codes_are_rsyncs() {
        let new = Changes::new_entry();
        assert_eq!(code(Update::Transfer, ItemType::File, &new), ">f+++++++++");
        assert_eq!(code(Update::Local, ItemType::Dir, &new), "cd+++++++++");
        assert_eq!(code(Update::Local, ItemType::Symlink, &new), "cL+++++++++");
        let time = changes(|c| c.time = true);
        assert_eq!(code(Update::Transfer, ItemType::File, &time), ">f..t......");
        let now = changes(|c| c.time_now = true);
        assert_eq!(code(Update::Transfer, ItemType::File, &now), ">f..T......");
        let size_perm = changes(|c| {
            c.size = true;
            c.perms = true;
            c.owner = true;
        });
        assert_eq!(
            code(Update::Attributes, ItemType::File, &size_perm),
            ".f.s.po...."
        );
        let target = changes(|c| c.contents = true);
        assert_eq!(
            code(Update::Local, ItemType::Symlink, &target),
            "cLc........"
        );
        let none = Changes::default();
        assert_eq!(
            code(Update::Attributes, ItemType::Dir, &none),
            ".d         "
        );
        assert_eq!(code(Update::Transfer, ItemType::File, &none), ">f.........");
        assert_eq!(code(Update::Deleted, ItemType::File, &none), "*deleting  ");
    }

    #[test]
    fn formats_render_every_escape() {
        let item = Item {
            update: Update::Local,
            kind: ItemType::Symlink,
            changes: Changes::new_entry(),
            rel: OsStr::new("a/lnk"),
            src: Some(OsStr::new("src/a/lnk")),
            length: 7,
            bytes: 0,
            target: Some(b"top.txt"),
        };
        let format = OutFormat::parse("[%o|%n|%l|%i|%f|%b|%L] 100%% %q");
        assert_eq!(
            format.render(&item),
            "[send|a/lnk|7|cL+++++++++|src/a/lnk|0| -> top.txt] 100% %q"
        );
        assert!(format.itemizes() && format.shows_deletions());
        assert!(!OutFormat::names().shows_deletions());
        let dir = Item {
            kind: ItemType::Dir,
            rel: OsStr::new(""),
            target: None,
            ..item
        };
        assert_eq!(OutFormat::itemized().render(&dir), "cd+++++++++ ./");
    }
}
