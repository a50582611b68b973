//! `--filter RULE`: rsync's filter rules (`+`, `-`, `P`, `R`, `H`, `S`,
//! `!`, `merge`, `dir-merge`) parsed into ordered pattern rules with
//! rsync's meaning (its man page's FILTER RULES, MERGE-FILE FILTER RULES
//! and PATTERN MATCHING RULES).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::wildmatch;

/// How deep `merge` files may include one another before the chain is
/// taken for a loop.
const MAX_MERGE_DEPTH: usize = 16;

/// What a matching rule decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Leave the entry out (sender side) or keep it from `--delete`
    /// (receiver side).
    Exclude,
    /// Take the entry (sender side) or let `--delete` remove it (receiver
    /// side).
    Include,
}

/// Which stage a rule speaks to: the walk (rsync's sender) or `--delete`
/// (rsync's receiver).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// `+` and `-`: both, unless `--delete-excluded` makes them sender-only.
    Both,
    /// `H` (hide) and `S` (show).
    Sender,
    /// `P` (protect) and `R` (risk).
    Receiver,
}

/// One parsed pattern rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PatternRule {
    pub(crate) action: Action,
    pub(crate) side: Side,
    pattern: Pattern,
}

/// A rule as the rules file or command line gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// A pattern rule.
    Pattern(PatternRule),
    /// `!`: forget every rule before it.
    Clear,
    /// `dir-merge FILE` (`: FILE`): the rules of FILE in each directory
    /// walked, in this place.
    DirMerge(DirMerge),
}

/// A `dir-merge` rule: the file each directory may hold, and how its rules
/// are read (rsync's modifiers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DirMerge {
    /// The file's name (one component).
    pub(crate) name: OsString,
    /// Its rules also apply below its directory (no `n` modifier).
    pub(crate) inherit: bool,
    /// `e`: the file itself is left out of the copy.
    pub(crate) exclude_self: bool,
    /// `-` or `+`: every line is a pattern of this kind, no rule names.
    pub(crate) only: Option<Action>,
    /// `w`: rules are split on whitespace, not lines (no comments).
    pub(crate) words: bool,
    /// `s` or `r`: the rules speak only to the walk or to `--delete`.
    pub(crate) side: Option<Side>,
}

/// The rules of one directory's dir-merge file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DirFileRules {
    pub(crate) rules: Vec<PatternRule>,
    /// The file holds `!`: the rules of the directories above are
    /// forgotten here and below.
    pub(crate) clears: bool,
}

/// A pattern with its leading and trailing `/` taken off and remembered.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    text: Vec<u8>,
    anchored: bool,
    dir_only: bool,
    wild: bool,
}

impl PatternRule {
    /// Whether the rule matches the entry at `rel` (below DST).
    pub(crate) fn matches(&self, rel: &[u8], is_dir: bool) -> bool {
        let p = &self.pattern;
        if p.dir_only && !is_dir {
            return false;
        }
        p.matches(rel)
    }

    /// `- NAME`: leaves out every entry called `name` (a dir-merge rule's
    /// `e` modifier, for its file).
    pub(crate) fn exclude_name(name: &OsStr) -> PatternRule {
        PatternRule {
            action: Action::Exclude,
            side: Side::Both,
            pattern: Pattern {
                text: name.as_bytes().to_vec(),
                anchored: false,
                dir_only: false,
                wild: false,
            },
        }
    }

    /// [`PatternRule::matches`] for a rule of a dir-merge file in the
    /// directory `base` (below DST): an anchored pattern is matched from
    /// there, as rsync anchors them at the merge file's directory.
    pub(crate) fn matches_below(&self, rel: &[u8], base: &[u8], is_dir: bool) -> bool {
        if !self.pattern.anchored || base.is_empty() {
            return self.matches(rel, is_dir);
        }
        match rel.strip_prefix(base).and_then(|r| r.strip_prefix(b"/")) {
            Some(below) => self.matches(below, is_dir),
            None => false,
        }
    }
}

impl Pattern {
    fn new(raw: &[u8]) -> Pattern {
        let anchored = raw.starts_with(b"/");
        let raw = if anchored { &raw[1..] } else { raw };
        let dir_only = raw.len() > 1 && raw.ends_with(b"/");
        let text = if dir_only { &raw[..raw.len() - 1] } else { raw };
        let wild = text.iter().any(|b| matches!(b, b'*' | b'?' | b'['));
        Pattern {
            text: text.to_vec(),
            anchored,
            dir_only,
            wild,
        }
    }

    /// rsync's `rule_matches`: an anchored pattern is matched against
    /// the whole path; one without `/` or `**` against the name; one with
    /// an inner `/` against as many trailing components as it has; one
    /// with `**` (not leading) from the start and after every `/`.
    fn matches(&self, rel: &[u8]) -> bool {
        let text = &self.text[..];
        let slashes = text.iter().filter(|&&b| b == b'/').count();
        let crosses = text.windows(2).any(|w| w == b"**");
        let candidates: Vec<&[u8]> = if self.anchored || text.starts_with(b"**") {
            vec![rel]
        } else if slashes == 0 && !crosses {
            vec![last_components(rel, 1)]
        } else if !crosses {
            vec![last_components(rel, slashes + 1)]
        } else {
            let tails = rel.iter().enumerate().filter(|&(_, &b)| b == b'/');
            std::iter::once(rel)
                .chain(tails.map(|(i, _)| &rel[i + 1..]))
                .collect()
        };
        // `dir/***` matches `dir` itself as well as everything inside.
        let bare = text.strip_suffix(b"/***");
        candidates.into_iter().any(|tail| {
            self.matches_text(text, tail) || bare.is_some_and(|bare| self.matches_text(bare, tail))
        })
    }

    fn matches_text(&self, text: &[u8], tail: &[u8]) -> bool {
        if self.wild {
            wildmatch::matches(text, tail)
        } else {
            tail == text
        }
    }
}

/// The last `n` components of `rel`, or all of it if it has fewer.
fn last_components(rel: &[u8], n: usize) -> &[u8] {
    let mut seen = 0;
    for (i, &b) in rel.iter().enumerate().rev() {
        if b == b'/' {
            seen += 1;
            if seen == n {
                return &rel[i + 1..];
            }
        }
    }
    rel
}

/// Parses one `--filter` rule (reading `merge` files) into the rules it
/// stands for, in order.
pub(crate) fn parse(rule: &OsStr) -> Result<Vec<Parsed>, String> {
    let mut out = Vec::new();
    parse_into(rule.as_bytes(), 0, &mut out)?;
    Ok(out)
}

fn parse_into(rule: &[u8], depth: usize, out: &mut Vec<Parsed>) -> Result<(), String> {
    if let Some(dir_merge) = dir_merge_rule(rule)? {
        out.push(Parsed::DirMerge(dir_merge));
        return Ok(());
    }
    let (name, arg) = split_rule(rule)?;
    let pattern_rule = |action, side| {
        if arg.is_empty() {
            return Err(format!("filter rule {} has no pattern", show(rule)));
        }
        Ok(Parsed::Pattern(PatternRule {
            action,
            side,
            pattern: Pattern::new(arg),
        }))
    };
    let parsed = match name {
        b"+" | b"include" => pattern_rule(Action::Include, Side::Both)?,
        b"-" | b"exclude" => pattern_rule(Action::Exclude, Side::Both)?,
        b"P" | b"protect" => pattern_rule(Action::Exclude, Side::Receiver)?,
        b"R" | b"risk" => pattern_rule(Action::Include, Side::Receiver)?,
        b"H" | b"hide" => pattern_rule(Action::Exclude, Side::Sender)?,
        b"S" | b"show" => pattern_rule(Action::Include, Side::Sender)?,
        b"!" | b"clear" if arg.is_empty() => Parsed::Clear,
        b"." | b"merge" => return merge(arg, depth, out),
        _ => return Err(format!("unknown filter rule {}", show(rule))),
    };
    out.push(parsed);
    Ok(())
}

/// The rule's name and its argument: rsync takes one space or `_` after
/// the name, and modifiers after a `,` (which pcopy does not take).
fn split_rule(rule: &[u8]) -> Result<(&[u8], &[u8]), String> {
    let short = rule.first().is_some_and(|b| b"+-PRHS!.:".contains(b));
    let end = if short {
        1
    } else {
        rule.iter()
            .position(|&b| b == b' ' || b == b'_' || b == b',')
            .unwrap_or(rule.len())
    };
    let (name, rest) = rule.split_at(end);
    match rest.first() {
        None => Ok((name, rest)),
        Some(b' ' | b'_') => Ok((name, &rest[1..])),
        Some(_) if short || rest[0] == b',' => Err(format!(
            "filter rule {}: rule modifiers are not supported",
            show(rule)
        )),
        Some(_) => Err(format!("unknown filter rule {}", show(rule))),
    }
}

/// A `dir-merge` (`:`) rule with its modifiers (`:n- .f`,
/// `dir-merge,e .f`); `None` for any other rule.
fn dir_merge_rule(rule: &[u8]) -> Result<Option<DirMerge>, String> {
    let rest = match (rule.strip_prefix(b"dir-merge"), rule.strip_prefix(b":")) {
        (Some(rest), _) => match rest.first() {
            Some(b',') => &rest[1..],
            Some(b' ' | b'_') | None => rest,
            Some(_) => return Ok(None),
        },
        (None, Some(rest)) => rest,
        (None, None) => return Ok(None),
    };
    let end = (rest.iter().position(|&b| b == b' ' || b == b'_')).unwrap_or(rest.len());
    let (modifiers, file) = rest.split_at(end);
    let file = file.get(1..).unwrap_or_default();
    let mut merge = DirMerge {
        name: OsString::new(),
        inherit: true,
        exclude_self: false,
        only: None,
        words: false,
        side: None,
    };
    for &m in modifiers {
        match m {
            b'n' => merge.inherit = false,
            b'e' => merge.exclude_self = true,
            b'-' => merge.only = Some(Action::Exclude),
            b'+' => merge.only = Some(Action::Include),
            b'w' => merge.words = true,
            b's' => merge.side = Some(Side::Sender),
            b'r' => merge.side = Some(Side::Receiver),
            other => {
                return Err(format!(
                    "filter rule {}: the dir-merge modifier `{}` is not supported \
                     (n, e, -, +, w, s and r are)",
                    show(rule),
                    char::from(other).escape_default()
                ));
            }
        }
    }
    // rsync's leading `/` also reads the file in the directories above
    // the source; pcopy reads it in the copied directories only.
    let name = file.strip_prefix(b"/").unwrap_or(file);
    if name.is_empty() || name.contains(&b'/') || name == b"." || name == b".." {
        return Err(format!(
            "filter rule {}: a dir-merge file must be a name, read in each directory",
            show(rule)
        ));
    }
    merge.name = OsStr::from_bytes(name).to_os_string();
    Ok(Some(merge))
}

/// The rules of one directory's dir-merge file, read as `merge` says:
/// pattern rules and `!` only (a `merge` or `dir-merge` inside is an
/// error), each taking the merge rule's side if it gives one.
pub(crate) fn parse_dir_file(bytes: &[u8], merge: &DirMerge) -> Result<DirFileRules, String> {
    let mut out = DirFileRules::default();
    let items: Vec<Vec<u8>> = match merge.words {
        true => words(bytes, merge.only.is_none()),
        false => (bytes.split(|&b| b == b'\n'))
            .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
            .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
            .filter(|line| !matches!(line[0], b'#' | b';'))
            .map(<[u8]>::to_vec)
            .collect(),
    };
    for item in &items {
        let item = item.as_slice();
        let parsed = match merge.only {
            Some(action) => Parsed::Pattern(PatternRule {
                action,
                side: Side::Both,
                pattern: Pattern::new(item),
            }),
            None => {
                let merges = dir_merge_rule(item)?.is_some()
                    || matches!(split_rule(item), Ok((b"." | b"merge", _)));
                if merges {
                    return Err(format!(
                        "{}: merge and dir-merge rules are not allowed in a dir-merge file",
                        show(item)
                    ));
                }
                let mut one = Vec::new();
                parse_into(item, 0, &mut one)?;
                one.pop()
                    .ok_or_else(|| format!("{}: not a rule", show(item)))?
            }
        };
        match parsed {
            Parsed::Pattern(mut rule) => {
                if let Some(side) = merge.side {
                    if rule.side != Side::Both {
                        return Err(format!(
                            "{}: the dir-merge rule already gives the side",
                            show(item)
                        ));
                    }
                    rule.side = side;
                }
                out.rules.push(rule);
            }
            Parsed::Clear => {
                out.rules.clear();
                out.clears = true;
            }
            Parsed::DirMerge(_) => {
                return Err(format!("{}: not allowed in a dir-merge file", show(item)));
            }
        }
    }
    Ok(out)
}

/// The `w` modifier's rules: words split on whitespace, a rule name
/// (`-`, `exclude`...) joined to the word after it when `prefixed`.
fn words(bytes: &[u8], prefixed: bool) -> Vec<Vec<u8>> {
    let is_name = |w: &[u8]| {
        matches!(
            w,
            b"+" | b"-"
                | b"P"
                | b"R"
                | b"H"
                | b"S"
                | b"include"
                | b"exclude"
                | b"protect"
                | b"risk"
                | b"hide"
                | b"show"
        )
    };
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut name: Option<&[u8]> = None;
    for word in bytes
        .split(u8::is_ascii_whitespace)
        .filter(|w| !w.is_empty())
    {
        match name.take() {
            Some(rule) => out.push([rule, b" ", word].concat()),
            None if prefixed && is_name(word) => name = Some(word),
            None => out.push(word.to_vec()),
        }
    }
    out.extend(name.map(<[u8]>::to_vec));
    out
}

/// The rules of a `merge` file, one a line; blank lines and lines
/// starting with `#` or `;` are comments.
fn merge(file: &[u8], depth: usize, out: &mut Vec<Parsed>) -> Result<(), String> {
    let path = Path::new(OsStr::from_bytes(file));
    let shown = show(file);
    if file.is_empty() {
        return Err("merge rule has no file name".into());
    }
    if depth >= MAX_MERGE_DEPTH {
        return Err(format!("{shown}: merge files nest too deeply"));
    }

    let bytes = std::fs::read(path).map_err(|e| format!("{shown}: cannot read: {e}"))?;
    for line in bytes.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) || matches!(line[0], b'#' | b';') {
            continue;
        }
        parse_into(line, depth + 1, out).map_err(|e| format!("{shown}: {e}"))?;
    }
    Ok(())
}

fn show(bytes: &[u8]) -> String {
    crate::ui::escape::Escaped::os(OsStr::from_bytes(bytes)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str) -> PatternRule {
        match parse(OsStr::new(text)).unwrap().as_slice() {
            [Parsed::Pattern(rule)] => rule.clone(),
            other => panic!("{text}: {other:?}"),
        }
    }

    fn hits(text: &str, rel: &str, is_dir: bool) -> bool {
        rule(text).matches(rel.as_bytes(), is_dir)
    }

    #[test]
    fn a_pattern_without_slash_matches_the_name() {
        assert!(hits("- *.o", "a/b/x.o", false) && hits("- core", "a/core", true));
        assert!(!hits("- core", "a/core2", false));
    }

    #[test]
    fn an_inner_slash_matches_the_paths_tail_and_a_leading_one_anchors() {
        assert!(hits("- a/b", "a/b", false) && hits("- a/b", "x/a/b", false));
        assert!(!hits("- a/b", "xa/b", false) && !hits("- a/b", "a/b/c", false));
        assert!(hits("- /a/b", "a/b", false) && !hits("- /a/b", "x/a/b", false));
        assert!(hits("- a/*.c", "x/a/m.c", false) && !hits("- /*.c", "a/m.c", false));
    }

    #[test]
    fn double_and_triple_stars() {
        assert!(hits("- a/**/c", "x/a/b/b/c", false) && !hits("- /a/**", "x/a/b", false));
        assert!(hits("- **/c", "x/y/c", false) && hits("- a/**", "z/a/b/c", true));
        assert!(hits("- d/***", "d", true) && hits("- d/***", "x/d/e/f", false));
        assert!(hits("- /d/***", "d", true) && !hits("- /d/***", "x/d", true));
    }

    #[test]
    fn a_trailing_slash_matches_directories_only() {
        assert!(hits("- tmp/", "a/tmp", true) && !hits("- tmp/", "a/tmp", false));
    }

    #[test]
    fn rule_names_long_and_short() {
        assert_eq!(rule("exclude *.o"), rule("- *.o"));
        assert_eq!(rule("-_*.o"), rule("- *.o"));
        assert_eq!(rule("P keep").side, Side::Receiver);
        assert_eq!(rule("include x").action, Action::Include);
        assert_eq!(parse(OsStr::new("!")).unwrap(), [Parsed::Clear]);
        for bad in [
            "",
            "-",
            "x foo",
            "-! foo",
            "exclude,s foo",
            "merge",
            "*.o",
            ":x .f",
            ":C",
            ": a/.f",
            "dir-merge ..",
            ":",
        ] {
            assert!(parse(OsStr::new(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn merge_files_hold_rules_and_comments() {
        let dir = tempfile::tempdir().unwrap();
        let inner = dir.path().join("inner");
        std::fs::write(&inner, "+ keep.o\n").unwrap();
        let outer = dir.path().join("outer");
        let text = format!("# c\n; c\n\n. {}\r\n- *.o\n", inner.display());
        std::fs::write(&outer, text).unwrap();
        let rules = parse(OsStr::new(&format!("merge {}", outer.display()))).unwrap();
        assert_eq!(
            rules,
            [
                Parsed::Pattern(rule("+ keep.o")),
                Parsed::Pattern(rule("- *.o"))
            ]
        );
        std::fs::write(&inner, format!(". {}\n", inner.display())).unwrap();
        let looped = parse(OsStr::new(&format!(". {}", inner.display())));
        assert!(looped.unwrap_err().contains("nest too deeply"));
        assert!(
            parse(OsStr::new(". /nonexistent/f"))
                .unwrap_err()
                .contains("cannot read")
        );
    }

    #[test]
    fn dir_merge_rules_take_rsyncs_modifiers() {
        let merge = |text: &str| match parse(OsStr::new(text)).unwrap().as_slice() {
            [Parsed::DirMerge(merge)] => merge.clone(),
            other => panic!("{text}: {other:?}"),
        };
        let plain = merge("dir-merge .rules");
        assert_eq!(plain, merge(": .rules"));
        assert_eq!(plain, merge(":_/.rules"));
        assert!(plain.inherit && !plain.exclude_self && !plain.words);
        assert_eq!((plain.only, plain.side), (None, None));
        let all = merge("dir-merge,ne-ws .r");
        assert!(!all.inherit && all.exclude_self && all.words);
        assert_eq!(
            (all.only, all.side),
            (Some(Action::Exclude), Some(Side::Sender))
        );
        assert_eq!(merge(":+r .r").only, Some(Action::Include));
        assert_eq!(merge(":+r .r").side, Some(Side::Receiver));
        assert_eq!(merge(":n .r").name, ".r");
    }

    #[test]
    fn a_dir_merge_file_holds_pattern_rules_and_clears_only() {
        let merge = |text: &str| match parse(OsStr::new(text)).unwrap().as_slice() {
            [Parsed::DirMerge(merge)] => merge.clone(),
            other => panic!("{text}: {other:?}"),
        };
        let read = parse_dir_file(b"# c\n- *.o\n!\n+ a\r\nP b\n", &merge(": .r")).unwrap();
        assert!(read.clears);
        assert_eq!(read.rules, [rule("+ a"), rule("P b")]);
        let words = parse_dir_file(b"- x + y\n\tP  z", &merge(":w .r")).unwrap();
        assert_eq!(words.rules, [rule("- x"), rule("+ y"), rule("P z")]);
        let bare = parse_dir_file(b"a.o b.o", &merge(":w- .r")).unwrap();
        assert_eq!(bare.rules, [rule("- a.o"), rule("- b.o")]);
        let only = parse_dir_file(b"+ a\n!\n", &merge(":- .r")).unwrap();
        assert_eq!(only.rules.len(), 2);
        assert!(only.rules.iter().all(|r| r.action == Action::Exclude));
        let sided = parse_dir_file(b"- a\n", &merge(":s .r")).unwrap();
        assert_eq!(sided.rules[0].side, Side::Sender);
        for bad in [&b"merge /etc/rules\n"[..], b". x\n", b": .r\n", b"x y\n"] {
            assert!(parse_dir_file(bad, &merge(": .r")).is_err(), "{bad:?}");
        }
        assert!(parse_dir_file(b"P a\n", &merge(":s .r")).is_err());
    }

    #[test]
    fn anchored_rules_of_a_dir_merge_file_start_at_its_directory() {
        let anchored = rule("- /z.c");
        assert!(anchored.matches_below(b"a/b/z.c", b"a/b", false));
        assert!(!anchored.matches_below(b"a/b/c/z.c", b"a/b", false));
        assert!(!anchored.matches_below(b"a/bz.c", b"a/b", false));
        assert!(anchored.matches_below(b"z.c", b"", false));
        assert!(rule("- z.c").matches_below(b"a/b/c/z.c", b"a/b", false));
    }
}
