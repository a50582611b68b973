//! Command-line parsing into one validated configuration per command.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

pub const HELP: &str = "\
usage: slowfs [OPTIONS] BACKING MOUNTPOINT
       slowfs --unmount [--pidfile FILE] MOUNTPOINT

Mounts BACKING at MOUNTPOINT through FUSE, sleeping a fixed delay in every
request, and serves until unmounted or sent SIGTERM, SIGINT or SIGHUP.
SIGUSR1 writes the request counters now; they are written at the end too.

Options:
  --delay-ms MS     Sleep MS milliseconds (fractions allowed) in every
                    request (default 1).
  --ttl SECS        How long the kernel may cache entries, attributes and
                    negative lookups (default 1, as NFS's shortest).
  --threads N       Requests served at once (default 128).
  --max-background N
                    The kernel's limit of background requests, such as
                    readahead (default 128).
  --no-readdirplus  List directories without attributes: every entry a
                    client stats after listing costs a LOOKUP (default:
                    READDIRPLUS, as NFS lists directories).
  --ro              Mount read-only (a source that no client may change).
  --xattrs          Pass extended attributes through (default: none, as
                    on an NFS mount without xattr support).
  --stats FILE      Write the request counters to FILE (name<TAB>value a
                    line: requests that got a reply, then each kind,
                    forgets, busy and span seconds, peak in flight).
  --background      Return once the mount is live; serve in a child.
  --pidfile FILE    Write the serving process's id to FILE (removed at
                    the end).
  --log FILE        With --background, the child's messages go to FILE
                    (default: discarded).
  --unmount         Unmount MOUNTPOINT (a slowfs mount only) and, with
                    --pidfile, wait until that process has written its
                    counters and exited.
  -h, --help        This text.
";

pub struct MountConfig {
    pub backing: PathBuf,
    pub mountpoint: PathBuf,
    pub delay: Duration,
    pub ttl: Duration,
    pub threads: usize,
    pub max_background: u16,
    pub xattrs: bool,
    pub readdirplus: bool,
    pub read_only: bool,
    pub stats: Option<PathBuf>,
    pub background: bool,
    pub pidfile: Option<PathBuf>,
    pub log: Option<PathBuf>,
}

pub struct UnmountConfig {
    pub mountpoint: PathBuf,
    pub pidfile: Option<PathBuf>,
}

pub enum Command {
    Help,
    Mount(MountConfig),
    Unmount(UnmountConfig),
}

fn seconds(flag: &str, value: Option<&OsString>, scale: f64) -> Result<Duration, String> {
    let text = value.and_then(|v| v.to_str()).unwrap_or("");
    text.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| Duration::from_secs_f64(v * scale))
        .ok_or_else(|| {
            format!(
                "{flag} needs a number of {}, not {text:?}",
                if scale < 1.0 {
                    "milliseconds"
                } else {
                    "seconds"
                }
            )
        })
}

fn count<T: std::str::FromStr + PartialOrd + From<u8>>(
    flag: &str,
    value: Option<&OsString>,
) -> Result<T, String> {
    let text = value.and_then(|v| v.to_str()).unwrap_or("");
    text.parse::<T>()
        .ok()
        .filter(|v| *v >= T::from(1))
        .ok_or_else(|| format!("{flag} needs a positive number, not {text:?}"))
}

fn path(flag: &str, value: Option<&OsString>) -> Result<PathBuf, String> {
    value
        .map(PathBuf::from)
        .ok_or_else(|| format!("{flag} needs a file name"))
}

pub fn parse(args: &[OsString]) -> Result<Command, String> {
    let mut config = MountConfig {
        backing: PathBuf::new(),
        mountpoint: PathBuf::new(),
        delay: Duration::from_millis(1),
        ttl: Duration::from_secs(1),
        threads: 128,
        max_background: 128,
        xattrs: false,
        readdirplus: true,
        read_only: false,
        stats: None,
        background: false,
        pidfile: None,
        log: None,
    };
    let mut unmount = false;
    let mut paths = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.to_str() {
            Some("-h" | "--help") => return Ok(Command::Help),
            Some("--delay-ms") => config.delay = seconds("--delay-ms", iter.next(), 1e-3)?,
            Some("--ttl") => config.ttl = seconds("--ttl", iter.next(), 1.0)?,
            Some("--threads") => config.threads = count("--threads", iter.next())?,
            Some("--max-background") => {
                config.max_background = count("--max-background", iter.next())?
            }
            Some("--xattrs") => config.xattrs = true,
            Some("--no-readdirplus") => config.readdirplus = false,
            Some("--ro") => config.read_only = true,
            Some("--stats") => config.stats = Some(path("--stats", iter.next())?),
            Some("--background") => config.background = true,
            Some("--pidfile") => config.pidfile = Some(path("--pidfile", iter.next())?),
            Some("--log") => config.log = Some(path("--log", iter.next())?),
            Some("--unmount") => unmount = true,
            Some(flag) if flag.starts_with('-') => {
                return Err(format!("unknown option {flag} (see --help)"));
            }
            _ => paths.push(PathBuf::from(arg)),
        }
    }
    if unmount {
        let [mountpoint] = <[PathBuf; 1]>::try_from(paths)
            .map_err(|_| "--unmount takes one MOUNTPOINT".to_string())?;
        return Ok(Command::Unmount(UnmountConfig {
            mountpoint,
            pidfile: config.pidfile,
        }));
    }
    let [backing, mountpoint] = <[PathBuf; 2]>::try_from(paths)
        .map_err(|_| "needs BACKING and MOUNTPOINT (see --help)".to_string())?;
    config.backing = backing;
    config.mountpoint = mountpoint;
    Ok(Command::Mount(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn mount_options_are_parsed_with_fractions() {
        let Ok(Command::Mount(c)) = parse(&args(&[
            "--delay-ms",
            "0.5",
            "--ttl",
            "30",
            "--threads",
            "8",
            "--no-readdirplus",
            "b",
            "m",
        ])) else {
            panic!("not a mount");
        };
        assert_eq!(
            (c.delay, c.ttl, c.threads),
            (Duration::from_micros(500), Duration::from_secs(30), 8)
        );
        assert_eq!(
            (c.backing, c.mountpoint, c.readdirplus),
            (PathBuf::from("b"), PathBuf::from("m"), false)
        );
    }

    #[test]
    fn bad_values_and_missing_paths_are_errors() {
        for bad in [
            &["--delay-ms", "-1", "b", "m"][..],
            &["--threads", "0", "b", "m"],
            &["b"],
            &["--unmount"],
            &["--bogus", "b", "m"],
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad:?}");
        }
        let Ok(Command::Unmount(u)) = parse(&args(&["--unmount", "--pidfile", "p", "m"])) else {
            panic!("not an unmount");
        };
        assert_eq!(
            (u.mountpoint, u.pidfile),
            (PathBuf::from("m"), Some(PathBuf::from("p")))
        );
    }
}
