//! The filter rules of a run, in command-line order: `--exclude`,
//! `--include` and `--exclude-from` (gitignore-style patterns) and
//! `--filter` (rsync's rules, see `rsync_rules`), matched against paths
//! relative to the destination root (`a/b.txt` for `pcopy src/ dst`,
//! `src/a/b.txt` for `pcopy src dst`).
//!
//! The patterns are gitignore's (the `ignore` crate's matcher): `*` stays
//! within one component, `**` crosses them, a leading `/` anchors at the
//! destination root, a trailing `/` matches directories only, and a pattern
//! without a slash matches a name at any depth. Rules are taken in
//! command-line order and the first that matches decides, as in rsync;
//! gitignore lets the last match decide, so the rules go to the matcher in
//! reverse, a run of consecutive gitignore rules at a time. Applied during
//! the walk, so an excluded directory is never entered.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};

use super::dir_rules::DirRules;
use super::rsync_rules::{self, Action, DirMerge, Parsed, PatternRule, Side};
use crate::exit_codes::{ExitStatus, Fatal};
use crate::ui::escape::{Escaped, io_reason};

/// One filter rule from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rule {
    /// `--exclude GLOB`.
    Exclude(OsString),
    /// `--include GLOB`: wins over a later `--exclude`.
    Include(OsString),
    /// `--exclude-from FILE`: one pattern a line, blank lines and lines
    /// starting with `#` ignored, `!GLOB` an include.
    ExcludeFrom(PathBuf),
    /// `--filter RULE`: an rsync filter rule.
    Rsync(OsString),
}

/// The compiled rules, in the order they are tried.
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    steps: Vec<Step>,
    /// The `dir-merge` rules, which [`Step::DirMerge`] refers to.
    merges: Vec<DirMerge>,
}

/// One step of the ordered match.
#[derive(Debug, Clone)]
enum Step {
    /// Consecutive gitignore-style rules, compiled together.
    Gitignore(Gitignore),
    /// One `--filter` pattern rule.
    Rsync(PatternRule),
    /// The place of a `dir-merge` rule: the rules of its files, from the
    /// entry's directory up (see [`DirRules`]).
    DirMerge(usize),
}

impl Filter {
    /// Compiles the rules (reading `--exclude-from` and `merge` files);
    /// `None` when there are none, so an unfiltered walk costs nothing.
    pub(crate) fn new(rules: &[Rule]) -> Result<Option<Filter>, Fatal> {
        if rules.is_empty() {
            return Ok(None);
        }
        let mut steps = Vec::new();
        let mut merges = Vec::new();
        let mut lines = Vec::new();
        for rule in rules {
            match rule {
                Rule::Exclude(glob) => lines.push(pattern_text(glob)?.to_string()),
                Rule::Include(glob) => lines.push(format!("!{}", pattern_text(glob)?)),
                Rule::ExcludeFrom(path) => lines.extend(read_rules_file(path)?),
                Rule::Rsync(text) => {
                    steps.extend(gitignore(&mut lines)?);
                    for parsed in rsync_rules::parse(text).map_err(usage)? {
                        match parsed {
                            Parsed::Pattern(rule) => steps.push(Step::Rsync(rule)),
                            Parsed::Clear => steps.clear(),
                            Parsed::DirMerge(merge) => {
                                if merge.exclude_self {
                                    let rule = PatternRule::exclude_name(&merge.name);
                                    steps.push(Step::Rsync(rule));
                                }
                                steps.push(Step::DirMerge(merges.len()));
                                merges.push(merge);
                            }
                        }
                    }
                }
            }
        }
        steps.extend(gitignore(&mut lines)?);
        Ok(Some(Filter { steps, merges }))
    }

    /// The `dir-merge` rules: the files to read in each directory entered
    /// (empty without any).
    pub(crate) fn dir_merges(&self) -> &[DirMerge] {
        &self.merges
    }

    /// Whether the walk leaves out the entry at `rel` (relative to the
    /// destination root). `dirs`: the rules of the directories it is in,
    /// its own first (see [`DirRules`]).
    pub(crate) fn excludes(&self, rel: &OsStr, is_dir: bool, dirs: Chain<'_>) -> bool {
        self.decide(rel, is_dir, dirs, |side| side != Side::Receiver)
    }

    /// Whether `--delete` must spare the entry at `rel`: the first rule
    /// that speaks to the receiver and matches is an exclude or protect
    /// rule. With `--delete-excluded` only `P` and `R` rules speak to it.
    pub(crate) fn protects(
        &self,
        rel: &OsStr,
        is_dir: bool,
        delete_excluded: bool,
        dirs: Chain<'_>,
    ) -> bool {
        self.decide(rel, is_dir, dirs, |side| match side {
            Side::Both => !delete_excluded,
            Side::Sender => false,
            Side::Receiver => true,
        })
    }

    /// The first matching rule among those `applies` takes: whether it
    /// excludes. Gitignore-style rules count as `Side::Both`.
    fn decide(
        &self,
        rel: &OsStr,
        is_dir: bool,
        dirs: Chain<'_>,
        applies: impl Fn(Side) -> bool,
    ) -> bool {
        if rel.is_empty() {
            return false;
        }
        for step in &self.steps {
            match step {
                Step::DirMerge(slot) => {
                    let inherit = self.merges[*slot].inherit;
                    if let Some(action) = dir_decision(rel, is_dir, dirs, *slot, inherit, &applies)
                    {
                        return action == Action::Exclude;
                    }
                }
                Step::Gitignore(matcher) if applies(Side::Both) => {
                    match matcher.matched(Path::new(rel), is_dir) {
                        Match::Ignore(_) => return true,
                        Match::Whitelist(_) => return false,
                        Match::None => {}
                    }
                }
                Step::Rsync(rule) if applies(rule.side) && rule.matches(rel.as_bytes(), is_dir) => {
                    return rule.action == Action::Exclude;
                }
                _ => {}
            }
        }
        false
    }
}

/// The per-directory rules an entry is under: those of its directory and
/// of the directories above it that have any, its own first.
pub(crate) type Chain<'a> = &'a [&'a DirRules];

/// The first rule of dir-merge `slot` that matches: those of the entry's
/// own directory, then (when `inherit`) those of each directory above,
/// nearest first, up to one whose file cleared the ones above (`!`).
fn dir_decision(
    rel: &OsStr,
    is_dir: bool,
    dirs: Chain<'_>,
    slot: usize,
    inherit: bool,
    applies: &impl Fn(Side) -> bool,
) -> Option<Action> {
    let rel = rel.as_bytes();
    for dir in dirs {
        let Some(file) = dir.files.get(slot).and_then(Option::as_ref) else {
            continue;
        };
        if inherit || dir.holds(rel) {
            let hit = (file.rules.iter())
                .find(|rule| applies(rule.side) && rule.matches_below(rel, &dir.base, is_dir));
            if let Some(rule) = hit {
                return Some(rule.action);
            }
        }
        if file.clears {
            return None;
        }
    }
    None
}

/// The gitignore step for the pending `lines` (emptied), if any.
fn gitignore(lines: &mut Vec<String>) -> Result<Option<Step>, Fatal> {
    if lines.is_empty() {
        return Ok(None);
    }
    let mut builder = GitignoreBuilder::new(".");
    for line in lines.iter().rev() {
        builder
            .add_line(None, line)
            .map_err(|e| usage(format!("bad filter pattern {line:?}: {e}")))?;
    }
    let matcher = builder
        .build()
        .map_err(|e| usage(format!("bad filter patterns: {e}")))?;
    lines.clear();
    Ok(Some(Step::Gitignore(matcher)))
}

fn pattern_text(glob: &OsStr) -> Result<&str, Fatal> {
    std::str::from_utf8(glob.as_bytes()).map_err(|_| {
        usage(format!(
            "filter pattern {} is not valid UTF-8",
            Escaped::os(glob)
        ))
    })
}

/// The rules of an `--exclude-from` file, in file order.
fn read_rules_file(path: &Path) -> Result<Vec<String>, Fatal> {
    let what = |why: String| usage(format!("{}: {why}", Escaped::path(path)));
    let bytes = std::fs::read(path).map_err(|e| what(format!("cannot read: {}", io_reason(&e))))?;
    let text = String::from_utf8(bytes).map_err(|_| what("not valid UTF-8".into()))?;
    Ok(text
        .lines()
        .map(|line| line.trim_end_matches('\r'))
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .map(str::to_string)
        .collect())
}

fn usage(message: String) -> Fatal {
    Fatal::new(ExitStatus::Usage, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(rules: &[Rule]) -> Filter {
        Filter::new(rules).unwrap().expect("some rules")
    }

    fn ex(glob: &str) -> Rule {
        Rule::Exclude(glob.into())
    }

    fn inc(glob: &str) -> Rule {
        Rule::Include(glob.into())
    }

    #[test]
    fn no_rules_means_no_filter() {
        assert!(Filter::new(&[]).unwrap().is_none());
    }

    #[test]
    fn gitignore_patterns_match_names_paths_and_directories() {
        let f = filter(&[ex("*.o"), ex("/build"), ex("cache/"), ex("docs/**/*.tmp")]);
        let excluded = |rel: &str, dir: bool| f.excludes(OsStr::new(rel), dir, &[]);
        assert!(excluded("main.o", false) && excluded("a/b/main.o", false));
        assert!(excluded("build", true) && !excluded("sub/build", true));
        assert!(excluded("x/cache", true) && !excluded("x/cache", false));
        assert!(excluded("docs/a/b/c.tmp", false) && !excluded("c.tmp", false));
        assert!(!excluded("main.c", false) && !excluded("", true));
    }

    #[test]
    fn the_first_matching_rule_decides() {
        let f = filter(&[inc("*/"), inc("*.c"), ex("*")]);
        assert!(!f.excludes(OsStr::new("src"), true, &[]));
        assert!(!f.excludes(OsStr::new("src/main.c"), false, &[]));
        assert!(f.excludes(OsStr::new("src/main.h"), false, &[]));
        let g = filter(&[ex("*.c"), inc("keep.c")]);
        assert!(g.excludes(OsStr::new("keep.c"), false, &[]));
    }

    #[test]
    fn exclude_from_reads_patterns_and_negations() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, b"# comment\n\n!important.log\n*.log\n").unwrap();
        let f = filter(&[Rule::ExcludeFrom(file.path().to_path_buf())]);
        assert!(f.excludes(OsStr::new("debug.log"), false, &[]));
        assert!(!f.excludes(OsStr::new("important.log"), false, &[]));
        let missing = Filter::new(&[Rule::ExcludeFrom("/nonexistent/rules".into())]);
        let err = missing.unwrap_err();
        assert_eq!(err.status, ExitStatus::Usage);
        assert!(err.message.contains("cannot read"), "{}", err.message);
    }

    #[test]
    fn filter_rules_and_gitignore_rules_share_one_order() {
        let rsync = |text: &str| Rule::Rsync(text.into());
        let f = filter(&[inc("keep.o"), rsync("- *.o"), ex("b/c"), rsync("- b/c")]);
        let excluded = |rel: &str| f.excludes(OsStr::new(rel), false, &[]);
        assert!(!excluded("keep.o") && excluded("x/main.o"));
        // gitignore anchors `b/c`; rsync's `b/c` matches at any depth.
        assert!(excluded("b/c") && excluded("a/b/c") && !excluded("a/xb/c"));
        let cleared = filter(&[ex("*.o"), rsync("!"), rsync("- *.c")]);
        assert!(!cleared.excludes(OsStr::new("a.o"), false, &[]));
        assert!(cleared.excludes(OsStr::new("a.c"), false, &[]));
    }

    #[test]
    fn protect_rules_speak_only_to_delete() {
        let rsync = |text: &str| Rule::Rsync(text.into());
        let f = filter(&[rsync("P *.p"), rsync("R *.r"), rsync("- *"), rsync("H *.h")]);
        let name = OsStr::new;
        // The walk skips `P` and `R`: `- *` leaves everything out.
        assert!(f.excludes(name("a.p"), false, &[]) && f.excludes(name("a.r"), false, &[]));
        assert!(
            f.protects(name("a.p"), false, false, &[]) && f.protects(name("a.p"), false, true, &[])
        );
        assert!(
            f.protects(name("a.x"), false, false, &[])
                && !f.protects(name("a.x"), false, true, &[])
        );
        assert!(!f.protects(name("a.r"), false, false, &[]));
        let hide = filter(&[rsync("H *.h")]);
        assert!(
            hide.excludes(name("a.h"), false, &[])
                && !hide.protects(name("a.h"), false, false, &[])
        );
    }

    #[test]
    fn a_non_utf8_pattern_is_a_usage_error() {
        let bad = Rule::Exclude(OsStr::from_bytes(b"\xff*").to_os_string());
        assert_eq!(Filter::new(&[bad]).unwrap_err().status, ExitStatus::Usage);
    }

    /// The rules `text` as the dir-merge file of `f`'s `slot` in `base`.
    fn dir(f: &Filter, slot: usize, base: &str, text: &str) -> DirRules {
        let mut files = vec![None; f.dir_merges().len()];
        let read = rsync_rules::parse_dir_file(text.as_bytes(), &f.dir_merges()[slot]);
        files[slot] = Some(read.unwrap());
        DirRules {
            base: base.as_bytes().to_vec(),
            files,
        }
    }

    #[test]
    fn dir_merge_rules_decide_in_their_place_nearest_directory_first() {
        let rsync = |text: &str| Rule::Rsync(text.into());
        let f = filter(&[
            rsync("+ *.keep"),
            rsync(": .r"),
            rsync(":n .n"),
            rsync("- *.c"),
        ]);
        let top = dir(&f, 0, "", "- *.o\n");
        let sub = dir(&f, 0, "a", "+ a.o\n- /b.c\n");
        let excluded = |rel: &str, dirs: &[&DirRules]| f.excludes(OsStr::new(rel), false, dirs);
        assert!(excluded("x.o", &[&top]) && excluded("a/x.o", &[&sub, &top]));
        // The nearer file first; an earlier command-line rule before both.
        assert!(!excluded("a/a.o", &[&sub, &top]) && !excluded("z.keep", &[&top]));
        // Anchored at its directory; the rules after the place still apply.
        assert!(excluded("a/b.c", &[&sub, &top]) && excluded("a/c/b.c", &[&sub, &top]));
        assert!(!excluded("a/c/b.h", &[&sub, &top]));
        // `!` forgets the directories above.
        let cleared = dir(&f, 0, "a", "!\n- *.h\n");
        assert!(!excluded("a/x.o", &[&cleared, &top]) && excluded("a/x.h", &[&cleared, &top]));
        // `n`: only in the file's own directory.
        let own = dir(&f, 1, "a", "- *.h\n");
        assert!(excluded("a/x.h", &[&own]) && !excluded("a/b/x.h", &[&own]));
    }

    #[test]
    fn the_e_modifier_leaves_the_merge_file_out() {
        let f = filter(&[Rule::Rsync(":e .rules".into())]);
        assert!(f.excludes(OsStr::new("a/.rules"), false, &[]));
        assert!(!f.excludes(OsStr::new("a/rules"), false, &[]));
    }
}
