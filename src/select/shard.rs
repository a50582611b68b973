//! `--shard K/N`: several runs, on one machine or many, split the files of
//! one copy between them. A file belongs to shard `xxh3_64(path) mod N`,
//! where path is its path below DST as bytes, so the split depends on
//! nothing but the names: the same on every machine and in every run, and
//! no two shards ever write the same file. Every shard creates all the
//! directories and applies their metadata, so the shards may run in any
//! order or at once, and a shard run again is a no-op.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::str::FromStr;

/// One shard of N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shard {
    /// K, from 0 to N-1.
    pub(crate) index: u64,
    /// N, at least 1.
    pub(crate) count: u64,
}

impl Shard {
    /// Whether the entry at `rel` (below DST) is this shard's to copy.
    pub(crate) fn owns(&self, rel: &OsStr) -> bool {
        self.owns_key(rel.as_bytes())
    }

    /// Whether `key` hashes into this shard (hard-linked files are keyed
    /// by their inode instead of a name, so all names land together).
    pub(crate) fn owns_key(&self, key: &[u8]) -> bool {
        hash_bytes(key) % self.count == self.index
    }

    /// The part of temp names that keeps concurrent shards from removing
    /// each other's temp files, e.g. `s2of3.`.
    pub(crate) fn temp_tag(&self) -> String {
        format!("s{}of{}.", self.index, self.count)
    }
}

/// The hash of a byte string (a relative path, or an inode number):
/// stable across runs, machines and versions of pcopy, as xxh3 is specified.
fn hash_bytes(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    /// Parses `K/N` with `0 <= K < N`.
    fn from_str(text: &str) -> Result<Shard, String> {
        let (k, n) = text
            .split_once('/')
            .ok_or_else(|| format!("expected K/N (e.g. 0/3), got {text:?}"))?;
        let number = |s: &str| {
            s.trim()
                .parse::<u64>()
                .map_err(|_| format!("{s:?} is not a whole number"))
        };
        let (index, count) = (number(k)?, number(n)?);
        if count == 0 {
            return Err("N must be at least 1".into());
        }
        if index >= count {
            return Err(format!("K must be below N (0 to {})", count - 1));
        }
        Ok(Shard { index, count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_k_of_n_and_refuses_the_rest() {
        let shard: Shard = "2/3".parse().unwrap();
        assert_eq!(shard, Shard { index: 2, count: 3 });
        assert_eq!(shard.to_string(), "2/3");
        for bad in ["3/3", "1/0", "a/2", "1", "-1/2", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn every_path_belongs_to_exactly_one_shard() {
        let shards: Vec<Shard> = (0..3).map(|index| Shard { index, count: 3 }).collect();
        let mut sizes = [0; 3];
        for i in 0..3000 {
            let path = format!("dir{}/file-{i}.txt", i % 7);
            let owners: Vec<usize> = (0..3)
                .filter(|&k| shards[k].owns(OsStr::new(&path)))
                .collect();
            assert_eq!(owners.len(), 1, "{path}");
            sizes[owners[0]] += 1;
        }
        assert!(sizes.iter().all(|&n| n > 900), "uneven split {sizes:?}");
    }

    #[test]
    fn the_split_is_fixed_by_the_names_alone() {
        // xxh3_64("a") mod 3, so the split never changes between versions.
        let owner = (0..3).find(|&index| Shard { index, count: 3 }.owns(OsStr::new("a")));
        assert_eq!(owner, Some(xxhash_rust::xxh3::xxh3_64(b"a") % 3));
    }

    #[test]
    fn the_path_hash_is_the_published_xxh3() {
        // xxh3_64 of the empty input, from the xxHash reference.
        assert_eq!(hash_bytes(b""), 0x2d06_8005_38d3_94c2);
    }
}
