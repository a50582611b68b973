//! `--max-size` and `--min-size`: rsync's SIZE syntax and the limits it
//! sets on which files are copied.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A byte count written as rsync writes one: `100`, `1.5m`, `2G`, `10KiB`,
/// `1kb` (a two-letter suffix ending in `b` counts in 1000s, the others in
/// 1024s), optionally `+1` or `-1` at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Size(pub(crate) u64);

impl FromStr for Size {
    type Err = String;

    fn from_str(text: &str) -> Result<Size, String> {
        let bad = || format!("{text:?} is not a size (e.g. 100, 1.5m, 2G, 10KiB, 1kb-1)");
        let (body, offset) = match text {
            t if t.ends_with("+1") => (&t[..t.len() - 2], 1i128),
            t if t.ends_with("-1") => (&t[..t.len() - 2], -1),
            t => (t, 0),
        };
        let split = body
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(body.len());
        let (number, suffix) = body.split_at(split);
        if number.is_empty() || number.chars().filter(|&c| c == '.').count() > 1 {
            return Err(bad());
        }
        let unit = unit_of(suffix).ok_or_else(bad)?;
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad())?
        };
        // Exact decimal arithmetic: `1.5mb-1` is 1499999, not a float's guess.
        let scale = 10u128.pow(fraction.len().min(30) as u32);
        let fraction: u128 = match fraction {
            "" => 0,
            f => f[..f.len().min(30)].parse().map_err(|_| bad())?,
        };
        let too_large = || {
            format!(
                "{text:?} is too large: a size is at most {} bytes",
                u64::MAX
            )
        };
        // Checked: 30 digits of fraction times a petabyte overflow even
        // 128 bits, and a wrapped product would be a wrong limit.
        let bytes = fraction
            .checked_mul(unit)
            .map(|f| f / scale)
            .and_then(|f| whole.checked_mul(unit)?.checked_add(f))
            .ok_or_else(too_large)?;
        let bytes = i128::try_from(bytes).map_err(|_| too_large())? + offset;
        match u64::try_from(bytes) {
            Ok(bytes) => Ok(Size(bytes)),
            Err(_) if bytes < 0 => Err(bad()),
            Err(_) => Err(too_large()),
        }
    }
}

/// The multiplier a suffix stands for; `None` for an unknown suffix.
fn unit_of(suffix: &str) -> Option<u128> {
    let lower = suffix.to_ascii_lowercase();
    let mut letters = lower.chars();
    let power = match letters.next() {
        None | Some('b') if lower.len() <= 1 => return Some(1),
        Some('k') => 1,
        Some('m') => 2,
        Some('g') => 3,
        Some('t') => 4,
        Some('p') => 5,
        _ => return None,
    };
    let base: u128 = match letters.as_str() {
        "" | "ib" => 1024,
        "b" => 1000,
        _ => return None,
    };
    Some(base.pow(power))
}

/// The sizes a regular file must lie within to be copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SizeLimits {
    /// `--min-size`: smaller files are skipped.
    pub(crate) min: Option<u64>,
    /// `--max-size`: larger files are skipped.
    pub(crate) max: Option<u64>,
}

impl SizeLimits {
    /// Whether a file of `size` bytes is left out.
    pub(crate) fn excludes(&self, size: u64) -> bool {
        self.min.is_some_and(|min| size < min) || self.max.is_some_and(|max| size > max)
    }

    pub(crate) fn is_set(&self) -> bool {
        self.min.is_some() || self.max.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(text: &str) -> Result<u64, String> {
        text.parse::<Size>().map(|s| s.0)
    }

    #[test]
    fn rsyncs_examples_parse_to_its_numbers() {
        assert_eq!(size("1.5mb-1"), Ok(1_499_999));
        assert_eq!(size("2g+1"), Ok(2_147_483_649));
        assert_eq!(size("100"), Ok(100));
        assert_eq!(size("100b"), Ok(100));
        assert_eq!(size("1.5m"), Ok(1_572_864));
        assert_eq!(size("10KiB"), Ok(10_240));
        assert_eq!(size("1kB"), Ok(1_000));
        assert_eq!(size("3K"), Ok(3_072));
        assert_eq!(size("1T"), Ok(1 << 40));
        assert_eq!(size(".5k"), Ok(512));
    }

    #[test]
    fn nonsense_is_refused() {
        for bad in ["", "k", "1x", "1.2.3", "-5", "1kib2", "0-1", "99999999999p"] {
            assert!(size(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn sizes_beyond_64_bits_are_refused_without_overflow() {
        let too_large = |text: &str| {
            format!("{text:?} is too large: a size is at most 18446744073709551615 bytes")
        };
        for big in [
            "99999999999999999999T",
            "1.999999999999999999999999999999P",
            "99999999999999999999999999999999999999P",
            "16EiB",
            "18446744073709551616",
            "18446744073709551615+1",
        ] {
            let expected = match big {
                "16EiB" => Err(format!(
                    "{big:?} is not a size (e.g. 100, 1.5m, 2G, 10KiB, 1kb-1)"
                )),
                _ => Err(too_large(big)),
            };
            assert_eq!(size(big), expected, "{big}");
        }
        assert_eq!(size("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(size("18446744073709551616-1"), Ok(u64::MAX));
    }

    #[test]
    fn limits_are_inclusive() {
        let limits = SizeLimits {
            min: Some(10),
            max: Some(20),
        };
        assert!(limits.excludes(9) && limits.excludes(21));
        assert!(!limits.excludes(10) && !limits.excludes(20));
        assert!(!SizeLimits::default().excludes(u64::MAX));
    }
}
