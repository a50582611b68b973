//! `--chmod=CHMOD`: rsync's list of chmod(1) changes applied to the
//! permission bits the source supplies, each item optionally for
//! directories only (`D`) or files only (`F`): `D2775,F664`,
//! `Dg+s,ug+w,Fo-w,+X`, `g=u`.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Which entries an item applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Target {
    All,
    Dirs,
    Files,
}

/// What an item does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Change {
    /// An octal mode: the permission bits become exactly these.
    Set(u32),
    /// `who op perms`, chmod(1)'s symbolic form.
    Symbolic {
        /// Class bits the item touches (`u` 0o4700, `g` 0o2070, `o` 0o1007).
        who: u32,
        op: u8,
        perms: Perms,
    },
}

/// The right-hand side of a symbolic item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Perms {
    /// `rwxst` as bits in every class (masked by `who` when applied), and
    /// whether `X` was given.
    Letters { bits: u32, big_x: bool },
    /// `u`, `g` or `o`: a copy of that class's `rwx` (its shift).
    Copy(u32),
}

/// A parsed `--chmod` (all the options, in order).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Chmod {
    items: Vec<(Target, Change)>,
}

const USER: u32 = 0o4700;
const GROUP: u32 = 0o2070;
const OTHER: u32 = 0o1007;

impl FromStr for Chmod {
    type Err = String;

    fn from_str(text: &str) -> Result<Chmod, String> {
        let items = text
            .split(',')
            .map(|item| parse_item(item).ok_or_else(|| format!("invalid --chmod item {item:?}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Chmod {
            items: items.into_iter().flatten().collect(),
        })
    }
}

impl Chmod {
    /// The items of `other` after this one's (`--chmod` given again).
    pub(crate) fn and(mut self, other: Chmod) -> Chmod {
        self.items.extend(other.items);
        self
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// A copy of the source's `st` with the changes applied to its mode.
    pub(crate) fn stat(&self, st: &rustix::fs::Stat) -> rustix::fs::Stat {
        let mut changed = *st;
        if !self.is_empty() {
            let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
            changed.st_mode = self.apply(st.st_mode, is_dir);
        }
        changed
    }

    /// `mode` (type bits kept) with every item for this kind of entry
    /// applied in order.
    pub(crate) fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        let mut perms = mode & 0o7777;
        for (target, change) in &self.items {
            match (target, is_dir) {
                (Target::Dirs, false) | (Target::Files, true) => continue,
                _ => perms = change.apply(perms, is_dir),
            }
        }
        (mode & !0o7777) | perms
    }
}

impl Change {
    fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        let (who, op, perms) = match self {
            Change::Set(bits) => return *bits,
            Change::Symbolic { who, op, perms } => (*who, *op, *perms),
        };
        let bits = match perms {
            Perms::Letters { bits, big_x } => {
                let exec = big_x && (is_dir || mode & 0o111 != 0);
                (bits | if exec { 0o111 } else { 0 }) & who
            }
            Perms::Copy(shift) => {
                let rwx = (mode >> shift) & 0o7;
                (rwx * 0o111) & who & 0o777
            }
        };
        match op {
            b'+' => mode | bits,
            b'-' => mode & !bits,
            _ => (mode & !who) | bits,
        }
    }
}

/// One item, or `None` when it is not valid. An item may chain several
/// operations (`u+w-x`), each becoming its own change.
fn parse_item(item: &str) -> Option<Vec<(Target, Change)>> {
    let (target, rest) = match item.as_bytes().first()? {
        b'D' => (Target::Dirs, &item[1..]),
        b'F' => (Target::Files, &item[1..]),
        _ => (Target::All, item),
    };
    if !rest.is_empty() && rest.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        let bits = u32::from_str_radix(rest, 8).ok().filter(|&b| b <= 0o7777)?;
        return Some(vec![(target, Change::Set(bits))]);
    }
    let who_len = rest.bytes().take_while(|b| b"ugoa".contains(b)).count();
    let who = match rest[..who_len].bytes().fold(0, |who, b| who | class(b)) {
        0 => USER | GROUP | OTHER,
        who => who,
    };
    let mut changes = Vec::new();
    let mut ops = &rest.as_bytes()[who_len..];
    while let Some((&op, tail)) = ops.split_first() {
        if !b"+-=".contains(&op) {
            return None;
        }
        let len = tail.iter().take_while(|b| !b"+-=".contains(b)).count();
        let perms = parse_perms(&tail[..len])?;
        changes.push((target, Change::Symbolic { who, op, perms }));
        ops = &tail[len..];
    }
    (!changes.is_empty()).then_some(changes)
}

fn class(letter: u8) -> u32 {
    match letter {
        b'u' => USER,
        b'g' => GROUP,
        b'o' => OTHER,
        _ => USER | GROUP | OTHER,
    }
}

/// `rwxXst` letters, or a single class to copy from.
fn parse_perms(letters: &[u8]) -> Option<Perms> {
    match letters {
        b"u" => return Some(Perms::Copy(6)),
        b"g" => return Some(Perms::Copy(3)),
        b"o" => return Some(Perms::Copy(0)),
        _ => {}
    }
    let mut bits = 0;
    let mut big_x = false;
    for letter in letters {
        bits |= match letter {
            b'r' => 0o444,
            b'w' => 0o222,
            b'x' => 0o111,
            b'X' => {
                big_x = true;
                0
            }
            b's' => 0o6000,
            b't' => 0o1000,
            _ => return None,
        };
    }
    Some(Perms::Letters { bits, big_x })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chmod(text: &str) -> Chmod {
        text.parse().unwrap()
    }

    #[test]
    fn octal_items_set_the_bits_of_their_kind() {
        let c = chmod("D2775,F664");
        assert_eq!(c.apply(0o40700, true), 0o42775);
        assert_eq!(c.apply(0o100700, false), 0o100664);
    }

    #[test]
    fn rsyncs_example_of_symbolic_items() {
        let c = chmod("Dg+s,ug+w,Fo-w,+X");
        assert_eq!(c.apply(0o40500, true), 0o42731);
        assert_eq!(c.apply(0o100646, false), 0o100664);
        assert_eq!(c.apply(0o100744, false), 0o100775);
        assert_eq!(chmod("u+w-x").apply(0o500, false), 0o600);
    }

    #[test]
    fn copies_and_equals_replace_a_class() {
        assert_eq!(chmod("g=u").apply(0o740, false), 0o770);
        assert_eq!(chmod("o=").apply(0o1757, true), 0o750);
        assert_eq!(chmod("a=r").apply(0o6777, false), 0o444);
        assert_eq!(chmod("g-o").apply(0o775, false), 0o725);
    }

    #[test]
    fn invalid_items_are_refused() {
        for bad in [
            "", "D", "F9", "u", "q+w", "u+q", "u+w,", "8", "77777", "g=uw",
        ] {
            assert!(bad.parse::<Chmod>().is_err(), "{bad:?} parsed");
        }
    }
}
