//! rsync's wildcard matching of one pattern against one path: `*` and `?`
//! stay within a component, `**` crosses them, `[...]` is a character
//! class, and a backslash escapes the character after it.

use std::collections::HashSet;

/// Whether `pattern` matches all of `text`.
pub(crate) fn matches(pattern: &[u8], text: &[u8]) -> bool {
    Matcher {
        pattern,
        text,
        failed: HashSet::new(),
        remember: star_runs(pattern) > 1,
    }
    .from(0, 0)
}

/// How many runs of `*` `pattern` has.
fn star_runs(pattern: &[u8]) -> usize {
    let starts = pattern
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'*' && (i == 0 || pattern[i - 1] != b'*'));
    starts.count()
}

/// One match in progress. `failed` remembers the (pattern, text)
/// positions already known not to match, so patterns with many stars
/// cost polynomial time, never exponential. With one run of stars no
/// position can be tried twice, so nothing is remembered (`remember`
/// false): the common `*.o` costs no hashing.
struct Matcher<'a> {
    pattern: &'a [u8],
    text: &'a [u8],
    failed: HashSet<(usize, usize)>,
    remember: bool,
}

impl Matcher<'_> {
    fn from(&mut self, mut p: usize, mut t: usize) -> bool {
        let (pattern, text) = (self.pattern, self.text);
        while p < pattern.len() {
            match pattern[p] {
                b'*' => return self.star(p, t),
                b'?' if t < text.len() && text[t] != b'/' => (p, t) = (p + 1, t + 1),
                b'[' if t < text.len() && text[t] != b'/' => match class(&pattern[p..], text[t]) {
                    Some((true, len)) => (p, t) = (p + len, t + 1),
                    _ => return false,
                },
                b'\\' if p + 1 < pattern.len() && text.get(t) == Some(&pattern[p + 1]) => {
                    (p, t) = (p + 2, t + 1)
                }
                b'?' | b'[' | b'\\' => return false,
                byte if text.get(t) == Some(&byte) => (p, t) = (p + 1, t + 1),
                _ => return false,
            }
        }
        t == text.len()
    }

    /// A run of stars at `p`: one stays within a component, two or more
    /// cross `/`.
    fn star(&mut self, p: usize, t: usize) -> bool {
        let stars = self.pattern[p..].iter().take_while(|&&b| b == b'*').count();
        let (rest, crosses) = (p + stars, stars >= 2);
        let mut at = t;
        loop {
            if !self.remember {
                if self.from(rest, at) {
                    return true;
                }
            } else if !self.failed.contains(&(rest, at)) {
                if self.from(rest, at) {
                    return true;
                }
                self.failed.insert((rest, at));
            }
            if at == self.text.len() || (!crosses && self.text[at] == b'/') {
                return false;
            }
            at += 1;
        }
    }
}

/// Matches `byte` against the class opening `pattern`: whether it matched
/// and the class's length, or `None` for an unterminated class.
fn class(pattern: &[u8], byte: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negated = matches!(pattern.get(i), Some(b'!' | b'^'));
    if negated {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    loop {
        let c = *pattern.get(i)?;
        if c == b']' && !first {
            return Some((hit != negated, i + 1));
        }
        first = false;
        if c == b'[' && pattern.get(i + 1) == Some(&b':') {
            let close = pattern[i + 2..].windows(2).position(|w| w == b":]")?;
            hit |= named_class(&pattern[i + 2..i + 2 + close], byte);
            i += close + 4;
            continue;
        }
        let (low, next) = escaped(pattern, i)?;
        if pattern.get(next) == Some(&b'-') && pattern.get(next + 1).is_some_and(|&b| b != b']') {
            let (high, after) = escaped(pattern, next + 1)?;
            hit |= (low..=high).contains(&byte);
            i = after;
        } else {
            hit |= low == byte;
            i = next;
        }
    }
}

/// The literal byte at `i` of a class (a backslash escapes the next one)
/// and the position after it.
fn escaped(pattern: &[u8], i: usize) -> Option<(u8, usize)> {
    match pattern.get(i)? {
        b'\\' => Some((*pattern.get(i + 1)?, i + 2)),
        &byte => Some((byte, i + 1)),
    }
}

fn named_class(name: &[u8], byte: u8) -> bool {
    match name {
        b"alnum" => byte.is_ascii_alphanumeric(),
        b"alpha" => byte.is_ascii_alphabetic(),
        b"blank" => byte == b' ' || byte == b'\t',
        b"cntrl" => byte.is_ascii_control(),
        b"digit" => byte.is_ascii_digit(),
        b"graph" => byte.is_ascii_graphic(),
        b"lower" => byte.is_ascii_lowercase(),
        b"print" => byte.is_ascii_graphic() || byte == b' ',
        b"punct" => byte.is_ascii_punctuation(),
        b"space" => byte.is_ascii_whitespace() || byte == 0x0b,
        b"upper" => byte.is_ascii_uppercase(),
        b"xdigit" => byte.is_ascii_hexdigit(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    fn m(pattern: &str, text: &str) -> bool {
        matches(pattern.as_bytes(), text.as_bytes())
    }

    #[test]
    fn stars_stay_within_or_cross_components() {
        assert!(m("*.o", "main.o") && !m("*.o", "a/main.o"));
        assert!(m("**.o", "a/b/main.o") && m("a/**", "a/b/c") && !m("a/*", "a/b/c"));
        assert!(m("a/**/c", "a/b/c") && !m("a/**/c", "a/c"));
        assert!(m("?.c", "x.c") && !m("?", "/") && !m("??", "x"));
    }

    #[test]
    fn classes_and_escapes() {
        assert!(m("[a-c]x", "bx") && !m("[a-c]x", "dx") && m("[!a-c]x", "dx"));
        assert!(m("[]]", "]") && m("[[:digit:]]*", "7up") && !m("[[:digit:]]", "x"));
        assert!(m("\\*", "*") && !m("\\*", "a") && !m("[ab", "a"));
    }

    #[test]
    fn many_stars_finish_quickly() {
        let text = "a".repeat(200);
        assert!(!m("*a*a*a*a*a*a*a*a*a*a*a*b", &text));
        assert!(m("**a**a**a**a**a**a", &text));
    }
}
