//! Several sources into one destination: the first source that has a name
//! wins (rsync's rule). Only the walker decides, so exactly one job per
//! destination name reaches the workers, whichever worker takes it, and a
//! rerun finds the same winner.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::hash::BuildHasherDefault;
use std::os::unix::ffi::OsStrExt;

use xxhash_rust::xxh3::xxh3_128_with_seed;

use crate::job::IdHasher;

/// What the walk does with an entry of a later source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Claim {
    /// No earlier source had the name: copy it.
    Mine,
    /// A directory where an earlier source had a directory too: walk it,
    /// its names join the earlier ones; its own metadata is the earlier's.
    Merge,
    /// An earlier source had the name: leave it (and, a directory, all
    /// below it) out.
    Taken,
}

/// The destination names the walk has handed out, as 128-bit digests
/// (seeded per run, so names cannot be picked to collide) with whether
/// each is a directory: two machine words a name, only when there are
/// several sources.
#[derive(Debug)]
pub(super) struct Claims {
    seed: u64,
    names: HashMap<u128, bool, BuildHasherDefault<IdHasher>>,
}

impl Claims {
    pub(super) fn new() -> Claims {
        use std::hash::BuildHasher;
        Claims {
            seed: std::collections::hash_map::RandomState::new().hash_one(1u8),
            names: HashMap::default(),
        }
    }

    /// Claims `rel` (below DST) for the current source.
    pub(super) fn claim(&mut self, rel: &OsStr, is_dir: bool) -> Claim {
        let digest = xxh3_128_with_seed(rel.as_bytes(), self.seed);
        match self.names.get(&digest) {
            None => {
                self.names.insert(digest, is_dir);
                Claim::Mine
            }
            Some(&true) if is_dir => Claim::Merge,
            Some(_) => Claim::Taken,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_source_wins_and_directories_merge() {
        let mut claims = Claims::new();
        assert_eq!(claims.claim(OsStr::new(""), true), Claim::Mine);
        assert_eq!(claims.claim(OsStr::new("f"), false), Claim::Mine);
        assert_eq!(claims.claim(OsStr::new("d"), true), Claim::Mine);
        // The second source.
        assert_eq!(claims.claim(OsStr::new(""), true), Claim::Merge);
        assert_eq!(claims.claim(OsStr::new("f"), false), Claim::Taken);
        assert_eq!(claims.claim(OsStr::new("f"), true), Claim::Taken);
        assert_eq!(claims.claim(OsStr::new("d"), false), Claim::Taken);
        assert_eq!(claims.claim(OsStr::new("d"), true), Claim::Merge);
        assert_eq!(claims.claim(OsStr::new("d/new"), false), Claim::Mine);
    }
}
