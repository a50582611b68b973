//! Which owner and group a copy gets: the source's (`-a`), a fixed one
//! (`--chown`), or whatever creating it gave (no `-a`, `--no-owner`,
//! `--no-group`).

use rustix::fs::{Gid, Uid};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

/// What one of the two ids of a copy is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Id {
    /// Not set: the copy has the id creating it gave (this user's).
    #[default]
    Unset,
    /// The source's.
    Source,
    /// This number (`--chown`).
    Fixed(u32),
}

impl Id {
    /// The id a copy of an entry whose id is `source` gets.
    fn of(self, source: u32) -> Option<u32> {
        match self {
            Id::Unset => None,
            Id::Source => Some(source),
            Id::Fixed(id) => Some(id),
        }
    }
}

/// The owner and group copies get; the same for all of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Owners {
    pub(crate) user: Id,
    pub(crate) group: Id,
}

impl Owners {
    /// The ids a copy of an entry owned by `uid` and `gid` gets.
    pub(crate) fn wanted(&self, uid: u32, gid: u32) -> Wanted {
        Wanted {
            uid: self.user.of(uid),
            gid: self.group.of(gid),
        }
    }

    /// Whether any id is set at all.
    pub(crate) fn any(&self) -> bool {
        *self != Owners::default()
    }
}

/// Which of an entry's ids are not the wanted ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct IdsDiffer {
    pub(crate) owner: bool,
    pub(crate) group: bool,
}

impl IdsDiffer {
    /// Whether either id has to change.
    pub(crate) fn any(self) -> bool {
        self.owner || self.group
    }
}

/// The owner and group one copy gets; `None`: left as created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Wanted {
    pub(crate) uid: Option<u32>,
    pub(crate) gid: Option<u32>,
}

impl Wanted {
    /// Whether both ids are set: only then can setuid and setgid stay
    /// (kept with an owner or group other than intended, they would run
    /// a program as someone it was not meant for).
    pub(crate) fn both(&self) -> bool {
        self.uid.is_some() && self.gid.is_some()
    }

    /// Whether an entry owned by `uid` and `gid` differs in owner and in
    /// group, where an id is set at all.
    pub(crate) fn differs(&self, uid: u32, gid: u32) -> IdsDiffer {
        IdsDiffer {
            owner: self.uid.is_some_and(|want| want != uid),
            group: self.gid.is_some_and(|want| want != gid),
        }
    }

    /// Sets the ids with `chown` (an `fchown` or `fchownat` of the entry).
    /// Without the right to give files away the group alone is set where
    /// this user belongs to it, as rsync does; a refusal is not an error.
    /// Returns whether both ids were set (see [`Wanted::both`]).
    pub(crate) fn apply(
        &self,
        chown: impl Fn(Option<Uid>, Option<Gid>) -> Result<(), Errno>,
    ) -> Result<bool, Errno> {
        let uid = self.uid.map(Uid::from_raw);
        let gid = self.gid.map(Gid::from_raw);
        if uid.is_none() && gid.is_none() {
            return Ok(false);
        }
        match chown(uid, gid) {
            Ok(()) => return Ok(self.both()),
            Err(Errno::PERM | Errno::INVAL) if uid.is_some() && gid.is_some() => {}
            Err(Errno::PERM | Errno::INVAL) => return Ok(false),
            Err(err) => return Err(err),
        }
        match chown(None, gid) {
            Ok(()) | Err(Errno::PERM | Errno::INVAL) => Ok(false),
            Err(err) => Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn each_id_is_the_sources_a_fixed_one_or_none() {
        let owners = Owners {
            user: Id::Fixed(7),
            group: Id::Source,
        };
        let wanted = owners.wanted(1000, 100);
        assert_eq!((wanted.uid, wanted.gid), (Some(7), Some(100)));
        assert!(wanted.both());
        assert_eq!(
            wanted.differs(7, 5),
            IdsDiffer {
                owner: false,
                group: true
            }
        );
        let group_only = Owners {
            user: Id::Unset,
            group: Id::Source,
        };
        assert!(group_only.any() && !Owners::default().any());
        assert!(!group_only.wanted(1, 2).both());
        let differs = group_only.wanted(1, 2).differs(9, 9);
        assert!(!differs.owner && differs.group);
    }

    #[test]
    fn a_refused_owner_still_sets_the_group_and_drops_setid() {
        let calls = RefCell::new(Vec::new());
        let wanted = Owners {
            user: Id::Source,
            group: Id::Source,
        }
        .wanted(1, 2);
        let kept = wanted.apply(|uid, gid| {
            calls
                .borrow_mut()
                .push((uid.map(Uid::as_raw), gid.map(Gid::as_raw)));
            match uid {
                Some(_) => Err(Errno::PERM),
                None => Ok(()),
            }
        });
        assert_eq!(kept, Ok(false));
        assert_eq!(*calls.borrow(), [(Some(1), Some(2)), (None, Some(2))]);
        let none = Owners::default().wanted(1, 2);
        assert_eq!(none.apply(|_, _| unreachable!("nothing to set")), Ok(false));
    }
}
