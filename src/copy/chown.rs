//! `--chown USER:GROUP`, rsync's syntax: parsed, and names looked up in
//! this machine's user and group databases.

use std::ffi::CString;
use std::str::FromStr;

/// The owner and group `--chown` gives every copy; `None`: not set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Chown {
    pub(crate) uid: Option<u32>,
    pub(crate) gid: Option<u32>,
}

impl FromStr for Chown {
    type Err = String;

    /// `USER`, `USER:`, `:GROUP` or `USER:GROUP`, each a name or a number.
    fn from_str(spec: &str) -> Result<Chown, String> {
        let (user, group) = spec.split_once(':').unwrap_or((spec, ""));
        if user.is_empty() && group.is_empty() {
            return Err("give USER, USER:GROUP or :GROUP".to_string());
        }
        let uid = match user {
            "" => None,
            name => Some(id_of(name, user_id).ok_or(format!("unknown user {name:?}"))?),
        };
        let gid = match group {
            "" => None,
            name => Some(id_of(name, group_id).ok_or(format!("unknown group {name:?}"))?),
        };
        Ok(Chown { uid, gid })
    }
}

/// A number as it is, else the id `lookup` finds for the name.
fn id_of(name: &str, lookup: fn(&CString) -> Option<u32>) -> Option<u32> {
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
        return name.parse().ok();
    }
    lookup(&CString::new(name).ok()?)
}

/// The largest buffer a database entry is looked up with.
const MAX_BUFFER: usize = 1 << 20;

/// Runs one `get*nam_r` call with a buffer that grows while the entry
/// does not fit in it (`ERANGE`), up to [`MAX_BUFFER`]. `call` returns
/// the id found (`None`: no such name) or the call's error number.
fn with_growing_buffer(
    mut call: impl FnMut(&mut [libc::c_char]) -> Result<Option<u32>, i32>,
) -> Option<u32> {
    let mut size = 4096;
    loop {
        let mut buffer = vec![0 as libc::c_char; size];
        match call(&mut buffer) {
            Ok(id) => return id,
            Err(libc::ERANGE) if size < MAX_BUFFER => size *= 4,
            Err(_) => return None,
        }
    }
}

/// The uid of the user `name` (`getpwnam_r`).
fn user_id(name: &CString) -> Option<u32> {
    with_growing_buffer(|buffer| {
        // SAFETY: an all-zero passwd is a valid value of a plain C struct
        // the call fills in.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found = std::ptr::null_mut();
        // SAFETY: every pointer is to a live local of the right type, the
        // buffer's length is passed with it, and `entry`'s strings point
        // into `buffer` only while both live (only `pw_uid` is read).
        let rc = unsafe {
            let buf = buffer.as_mut_ptr();
            libc::getpwnam_r(name.as_ptr(), &mut entry, buf, buffer.len(), &mut found)
        };
        match rc {
            0 => Ok((!found.is_null()).then_some(entry.pw_uid)),
            err => Err(err),
        }
    })
}

/// The gid of the group `name` (`getgrnam_r`).
fn group_id(name: &CString) -> Option<u32> {
    with_growing_buffer(|buffer| {
        // SAFETY: an all-zero group is a valid value of a plain C struct
        // the call fills in.
        let mut entry: libc::group = unsafe { std::mem::zeroed() };
        let mut found = std::ptr::null_mut();
        // SAFETY: as in `user_id`; only `gr_gid` is read.
        let rc = unsafe {
            let buf = buffer.as_mut_ptr();
            libc::getgrnam_r(name.as_ptr(), &mut entry, buf, buffer.len(), &mut found)
        };
        match rc {
            0 => Ok((!found.is_null()).then_some(entry.gr_gid)),
            err => Err(err),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chown(spec: &str) -> Result<(Option<u32>, Option<u32>), String> {
        spec.parse::<Chown>().map(|c| (c.uid, c.gid))
    }

    #[test]
    fn either_part_is_optional_and_numbers_are_taken_as_they_are() {
        assert_eq!(chown("12:34"), Ok((Some(12), Some(34))));
        assert_eq!(chown("12"), Ok((Some(12), None)));
        assert_eq!(chown("12:"), Ok((Some(12), None)));
        assert_eq!(chown(":34"), Ok((None, Some(34))));
        assert_eq!(chown("root:root"), Ok((Some(0), Some(0))));
    }

    #[test]
    fn nothing_or_an_unknown_name_is_refused() {
        assert!(chown("").is_err());
        assert!(chown(":").is_err());
        let unknown = chown("no-such-user-here:0").unwrap_err();
        assert_eq!(unknown, "unknown user \"no-such-user-here\"");
        assert!(chown("0:no-such-group-here").is_err());
        assert!(chown("12x").is_err());
    }
}
