//! The command line. The doc comments of the flags are the `--help` text.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, CommandFactory, FromArgMatches, Parser, ValueEnum};

use crate::copy::chmod::Chmod;
use crate::copy::chown::Chown;
use crate::exit_codes::{EXIT_STATUS_HELP, ExitStatus};
use crate::generate::Generate;
use crate::select::filter::Rule;
use crate::select::shard::Shard;
use crate::select::size::Size;

/// The text after the flags in `--help`: examples and exit statuses.
const AFTER_HELP: &str = "\
Examples:
  pcopy photos/ /backup/photos     copy the contents of photos into /backup/photos
  pcopy photos /backup             copy photos itself, to /backup/photos
  pcopy a.txt b.txt notes/ /tmp/x  copy several sources into the directory /tmp/x
  pcopy -j 8 --progress big/ /mnt/big   8 workers, progress lines even in a log
  pcopy -a --delete home/ /backup/home  mirror: keep owners, links, xattrs; remove extras
  pcopy -n -v --delete home/ /backup/home   show what a mirror run would do
  pcopy -i --stats home/ /backup/home   rsync's itemized changes and statistics
  pcopy --exclude '*.o' --exclude cache/ src/ /backup/src   leave things out
  pcopy --shard 0/3 data/ /shared/data  this machine's third of the files
  pcopy -a --link-dest=../day1 home/ /snap/day2   snapshot: unchanged files hard-linked
  pcopy -a -b --backup-dir=../old-$(date +%F) --delete home/ /backup/home   versions kept

A trailing slash on a directory source copies its contents (rsync's rule).
Running the same command twice gives the same tree; files whose type, size
and modification time already match are skipped (-c compares contents,
-I copies everything).
";

/// How pool workers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum WorkerKind {
    /// Worker processes (this program started again): one crash cannot
    /// take the run down with it.
    Process,
    /// Worker threads in this process: no start-up cost, no socket hops.
    Thread,
}

impl From<WorkerKind> for procpool::WorkerKind {
    fn from(kind: WorkerKind) -> procpool::WorkerKind {
        match kind {
            WorkerKind::Process => procpool::WorkerKind::Process,
            WorkerKind::Thread => procpool::WorkerKind::Thread,
        }
    }
}

/// Copy files and directory trees in parallel.
///
/// Copies each SRC to DST with a pool of workers. Every file is written to
/// a temporary file and renamed into place only when complete, so an
/// interrupted run never leaves a half-written file under a real name.
/// Per-file errors are reported and do not stop the run.
#[derive(Debug, Parser)]
#[command(
    name = "pcopy",
    version,
    about,
    long_about,
    after_help = format!("{AFTER_HELP}\n{EXIT_STATUS_HELP}"),
    max_term_width = 100
)]
pub(crate) struct Args {
    /// Files or directories to copy. `dir/` copies the contents of dir,
    /// `dir` copies dir itself into DST.
    #[arg(value_name = "SRC", required = true, num_args = 1..)]
    pub(crate) sources: Vec<OsString>,

    /// Where to copy to. With several sources, or a directory source
    /// without a trailing slash, a directory (created if missing). Only
    /// `--generate` goes without it.
    #[arg(value_name = "DST", required = true)]
    pub(crate) destination: Option<OsString>,

    /// Number of workers copying at once [default: the number of CPUs, or
    /// 128 threads (64 processes) when a source or DST is on a network or
    /// FUSE file system].
    #[arg(short = 'j', long = "jobs", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub(crate) jobs: Option<u32>,

    /// Kind of workers: separate processes or threads of this process.
    #[arg(long, value_enum, value_name = "KIND", default_value_t = WorkerKind::Thread)]
    pub(crate) workers: WorkerKind,

    /// Follow symbolic links in the sources and copy what they point to.
    #[arg(short = 'L', long)]
    pub(crate) dereference: bool,

    /// List each copied file on stdout; twice (-vv) also show the pid of
    /// the worker that copied it.
    #[arg(short, long, action = ArgAction::Count, conflicts_with = "quiet")]
    pub(crate) verbose: u8,

    /// Print only errors: no warnings, no summary, no progress bar.
    #[arg(short, long)]
    pub(crate) quiet: bool,

    /// Show progress even when stderr is not a terminal: a line every
    /// second, one when the totals are final, and a last one (each a JSON
    /// object with --json).
    #[arg(long, overrides_with = "no_progress")]
    pub(crate) progress: bool,

    /// Never show progress, not even the bar on a terminal.
    #[arg(long, overrides_with = "progress")]
    pub(crate) no_progress: bool,

    /// Skip files whose destination has the same type, size and contents
    /// (compared by an xxh3-128 hash of both) instead of the same type,
    /// size and modification time.
    #[arg(short = 'c', long, conflicts_with = "ignore_times")]
    pub(crate) checksum: bool,

    /// Copy every file, even when the destination looks up to date.
    #[arg(short = 'I', long)]
    pub(crate) ignore_times: bool,

    /// Skip files whose destination is newer than the source.
    #[arg(short = 'u', long)]
    pub(crate) update: bool,

    /// Never touch a destination entry that already exists.
    #[arg(long)]
    pub(crate) ignore_existing: bool,

    /// Print one JSON object with the counts and errors on stdout at the
    /// end (-v lists then go to stderr); --progress lines on stderr are
    /// JSON objects too.
    #[arg(long)]
    pub(crate) json: bool,

    /// Leave out entries matching GLOB (gitignore syntax, matched against
    /// the path below DST; an excluded directory is not entered). Rules
    /// apply in command-line order and the first match decides.
    #[arg(long, value_name = "GLOB")]
    pub(crate) exclude: Vec<OsString>,

    /// Copy entries matching GLOB even if a later --exclude matches them.
    #[arg(long, value_name = "GLOB")]
    pub(crate) include: Vec<OsString>,

    /// Read --exclude patterns from FILE, one a line (`#` comments,
    /// `!GLOB` includes).
    #[arg(long, value_name = "FILE")]
    pub(crate) exclude_from: Vec<PathBuf>,

    /// Add an rsync filter RULE: `- PATTERN` exclude, `+ PATTERN` include,
    /// `P PATTERN` protect from --delete, `merge FILE` (`. FILE`) read
    /// rules from FILE, `dir-merge NAME` (`: NAME`) read rules from the
    /// file NAME in each directory, for it and below; rsync's pattern
    /// syntax (`dir/***`, an unanchored `a/b` matching at any depth).
    /// Tried in order with the flags above.
    #[arg(
        short = 'f',
        long = "filter",
        value_name = "RULE",
        allow_hyphen_values = true
    )]
    pub(crate) filter: Vec<OsString>,

    /// Read filter rules from each directory's `.rsync-filter` file:
    /// `--filter='dir-merge /.rsync-filter'`; twice (-FF) also leave the
    /// files out: `--filter='- .rsync-filter'`.
    #[arg(short = 'F', action = ArgAction::Append, num_args = 0,
          default_missing_value = "F")]
    pub(crate) rsync_filter: Vec<String>,

    /// The filter rules above, in command-line order.
    #[arg(skip)]
    pub(crate) rules: Vec<Rule>,

    /// After copying, remove entries in DST that are not in SRC (never
    /// following symlinks, never outside DST). Skipped if any entry failed.
    #[arg(long)]
    pub(crate) delete: bool,

    /// With --delete, remove at most N entries, then stop with status 25.
    #[arg(long, value_name = "N", requires = "delete")]
    pub(crate) max_delete: Option<u64>,

    /// With --delete, also remove excluded entries from DST (they are
    /// otherwise protected).
    #[arg(long, requires = "delete")]
    pub(crate) delete_excluded: bool,

    /// Copy only the files whose path below DST hashes into shard K of N
    /// (K from 0 to N-1); every shard creates all directories. N runs, on
    /// one machine or several, together copy everything once.
    #[arg(long, value_name = "K/N")]
    pub(crate) shard: Option<Shard>,

    /// Archive: also keep owner and group (where permitted), extended
    /// attributes, hard links (as hard links), and recreate fifos, sockets
    /// and device nodes (devices need root; skipped with a warning
    /// otherwise). Setuid and setgid stay when the owner does. rsync's
    /// `-rlptgoD` with -H and -X; a later --no-OPTION turns a part off.
    #[arg(short = 'a', long, action = ArgAction::Count)]
    pub(crate) archive: u8,

    /// Flush each file to disk before it gets its name, and each directory
    /// after its entries.
    #[arg(long)]
    pub(crate) fsync: bool,

    /// Read each copy back before naming it and compare its hash with the
    /// data read from the source; a mismatch fails the file.
    #[arg(long)]
    pub(crate) verify: bool,

    /// Write nothing: show what would be done (-v, -i and --out-format list
    /// the lines a real run would).
    #[arg(short = 'n', long)]
    pub(crate) dry_run: bool,

    /// Remove a directory in DST, with its contents, where SRC has a
    /// file, symlink or special file (implied by --delete); without it
    /// that entry fails and the directory stays.
    #[arg(long)]
    pub(crate) force: bool,

    /// Run --delete even when some entries failed (the exit status stays
    /// 23).
    #[arg(long)]
    pub(crate) ignore_errors: bool,

    /// Count modification times at most N seconds apart as equal; a
    /// negative N compares to the nanosecond [default: what the
    /// destination filesystem keeps, probed once per run: 0 on Linux
    /// filesystems, 10 ms on exFAT, 2 s on FAT].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub(crate) modify_window: Option<i64>,

    /// Skip files whose destination has the same type and size, whatever
    /// their modification times.
    #[arg(long, conflicts_with_all = ["checksum", "ignore_times"])]
    pub(crate) size_only: bool,
    /// Snapshots, versions, moves and rate: rsync's backup flags.
    #[command(flatten)]
    pub(crate) backups: BackupArgs,

    /// What metadata is kept: ACLs, owners.
    #[command(flatten)]
    pub(crate) meta: MetaArgs,

    /// The parts of -a, each on its own and negated.
    #[command(flatten)]
    pub(crate) part_flags: PartArgs,

    /// The parts of -a as the flags above leave them, the last one given
    /// deciding each part.
    #[arg(skip)]
    pub(crate) parts: Parts,

    /// Itemize changes: one line per changed entry in rsync's format,
    /// `YXcstpoguax PATH` (`>f+++++++++ new.txt`, `>f..t...... old.txt`,
    /// `cd+++++++++ dir/`, `*deleting   gone`); twice (-ii) also the
    /// unchanged entries.
    #[arg(short = 'i', long = "itemize-changes", action = ArgAction::Count)]
    pub(crate) itemize_changes: u8,

    /// List each entry in FORMAT, rsync's escapes: %n path below DST, %L
    /// ` -> target` of a link, %i itemized changes, %l length, %b bytes
    /// copied, %o operation (send, del.), %f source path, %% a percent.
    #[arg(long, value_name = "FORMAT")]
    pub(crate) out_format: Option<String>,

    /// Print rsync's transfer statistics at the end (number of files by
    /// type, created, deleted, transferred; total and transferred size).
    #[arg(long)]
    pub(crate) stats: bool,

    /// Append every change (itemized, as -i) and message to FILE, each
    /// line stamped with the date, time and pid.
    #[arg(long, value_name = "FILE")]
    pub(crate) log_file: Option<PathBuf>,

    /// Keep each source's path below DST (`pcopy -R a/b/c.txt dst` makes
    /// dst/a/b/c.txt); with `/./` in a source, only the part after it
    /// (`a/./b/c.txt` makes dst/b/c.txt). Missing directories on the way
    /// get their source's mode and times.
    #[arg(short = 'R', long)]
    pub(crate) relative: bool,

    /// Copy the paths listed in FILE (`-` for standard input), one a line,
    /// each relative to the one SRC, to the same path below DST (as -R).
    /// Blank lines and lines starting with `#` or `;` are skipped; a line
    /// with `..` is refused on its own.
    #[arg(long, value_name = "FILE")]
    pub(crate) files_from: Option<PathBuf>,

    /// --files-from entries end with a NUL byte, not a newline.
    #[arg(short = '0', long, requires = "files_from")]
    pub(crate) from0: bool,

    /// Change the permission bits the sources supply, rsync's syntax:
    /// comma-separated chmod(1) items, each for directories only with a
    /// `D` prefix or files only with `F` (`D2775,F664`, `Dg+s,ug+w,Fo-w,+X`,
    /// `g=u`). Repeatable; an invalid item is a usage error.
    #[arg(long, value_name = "CHMOD")]
    pub(crate) chmod: Vec<Chmod>,

    /// Skip creating anything new in DST: only entries already there are
    /// updated (no new files, no new directories).
    #[arg(long, alias = "ignore-non-existing")]
    pub(crate) existing: bool,

    /// Skip files larger than SIZE (rsync's units: 100, 1.5m, 2G, 10KiB,
    /// 1kb for 1000; `+1`/`-1` at the end adds or takes a byte).
    #[arg(long, value_name = "SIZE")]
    pub(crate) max_size: Option<Size>,

    /// Skip files smaller than SIZE (units as --max-size).
    #[arg(long, value_name = "SIZE")]
    pub(crate) min_size: Option<Size>,

    /// Do not cross filesystem boundaries in the sources: a mount point is
    /// copied as an empty directory; twice (-xx) it is left out.
    #[arg(short = 'x', long, action = ArgAction::Count)]
    pub(crate) one_file_system: u8,

    /// Create every missing directory of the DST path (`mkdir -p`), not
    /// only its last component.
    #[arg(long)]
    pub(crate) mkpath: bool,

    /// Print shell completions (complete-bash, complete-zsh,
    /// complete-fish) or the man page (man) on stdout, and exit.
    #[arg(long, value_enum, value_name = "WHAT", exclusive = true)]
    pub(crate) generate: Option<Generate>,

    /// Files of at least this many bytes are split into ranges copied by
    /// several workers; 0 never splits. Hidden: for tests (small files)
    /// and measurements; the default is `walk::split::SPLIT_MIN`.
    #[arg(long, value_name = "BYTES", hide = true)]
    pub(crate) split_min: Option<u64>,
}

/// rsync's flags for the metadata copies keep.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct MetaArgs {
    /// Keep POSIX ACLs: each copy gets its source's access ACL, and each
    /// directory its default ACL (an ACL the source lacks is removed),
    /// also without -a. Implies keeping permissions, as in rsync.
    #[arg(short = 'A', long, action = ArgAction::Count)]
    pub(crate) acls: u8,

    /// Do not keep POSIX ACLs (undoes an earlier -A).
    #[arg(long, visible_alias = "no-A", action = ArgAction::Count)]
    pub(crate) no_acls: u8,

    /// Give every copy this owner and group, names or numbers, either
    /// optional (`USER`, `USER:GROUP`, `:GROUP`), with or without -a; an
    /// unknown name is a usage error. Setuid and setgid stay only when
    /// both are set.
    #[arg(long, value_name = "USER:GROUP")]
    pub(crate) chown: Option<Chown>,

    /// Accepted for rsync's scripts. pcopy copies on one machine, so owners
    /// and groups are always kept by number: there are no names to map.
    #[arg(long)]
    pub(crate) numeric_ids: bool,
}

/// rsync's flags for the parts of `-a` (`-rlptgoD`, and pcopy's `-H`,
/// `-X`), and their `--no-` negations. Only their order matters: see
/// [`Parts`]. Each may be given more than once, as rsync allows.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct PartArgs {
    /// Recurse into directories (pcopy's default; for rsync's scripts).
    #[arg(short = 'r', long, action = ArgAction::Count)]
    pub(crate) recursive: u8,

    /// Do not recurse: a directory source is skipped (`skipping directory
    /// NAME`), as rsync does without -r; files are copied. A directory
    /// listed in --files-from is made without its contents.
    #[arg(long, visible_alias = "no-r", action = ArgAction::Count)]
    pub(crate) no_recursive: u8,

    /// Copy symbolic links as links (pcopy's default).
    #[arg(short = 'l', long, action = ArgAction::Count)]
    pub(crate) links: u8,

    /// Skip symbolic links with a warning, as rsync does without -l.
    #[arg(long, visible_alias = "no-l", action = ArgAction::Count)]
    pub(crate) no_links: u8,

    /// Give copies their source's permission bits (pcopy's default).
    #[arg(short = 'p', long, action = ArgAction::Count)]
    pub(crate) perms: u8,

    /// Do not keep permission bits: a new copy gets its source's less the
    /// umask, without setuid, setgid or sticky; an existing one keeps its
    /// own, also when replaced.
    #[arg(long, visible_alias = "no-p", action = ArgAction::Count)]
    pub(crate) no_perms: u8,

    /// Give copies their source's times (pcopy's default).
    #[arg(short = 't', long, action = ArgAction::Count)]
    pub(crate) times: u8,

    /// Do not keep times: copies get the time they are made, so the next
    /// run finds every file changed and copies it again, as rsync does
    /// (unless --size-only or -c).
    #[arg(long, visible_alias = "no-t", action = ArgAction::Count)]
    pub(crate) no_times: u8,

    /// Keep each copy's group (where this user may).
    #[arg(short = 'g', long, action = ArgAction::Count)]
    pub(crate) group: u8,

    /// Do not keep groups: copies get this user's group (or their
    /// directory's, where it is setgid), and setuid and setgid are dropped.
    #[arg(long, visible_alias = "no-g", action = ArgAction::Count)]
    pub(crate) no_group: u8,

    /// Keep each copy's owner (where permitted: root).
    #[arg(short = 'o', long, action = ArgAction::Count)]
    pub(crate) owner: u8,

    /// Do not keep owners: copies are owned by this user, and setuid and
    /// setgid are dropped.
    #[arg(long, visible_alias = "no-o", action = ArgAction::Count)]
    pub(crate) no_owner: u8,

    /// Recreate device nodes, fifos and sockets: --devices --specials.
    #[arg(short = 'D', action = ArgAction::Count)]
    pub(crate) devices_specials: u8,

    /// Skip device nodes, fifos and sockets: --no-devices --no-specials.
    #[arg(long = "no-D", action = ArgAction::Count)]
    pub(crate) no_devices_specials: u8,

    /// Recreate device nodes (needs root; skipped with a warning
    /// otherwise).
    #[arg(long, action = ArgAction::Count)]
    pub(crate) devices: u8,

    /// Skip device nodes with a warning.
    #[arg(long, action = ArgAction::Count)]
    pub(crate) no_devices: u8,

    /// Recreate fifos and sockets.
    #[arg(long, action = ArgAction::Count)]
    pub(crate) specials: u8,

    /// Skip fifos and sockets with a warning.
    #[arg(long, action = ArgAction::Count)]
    pub(crate) no_specials: u8,

    /// Keep hard links: names of one source file stay one file.
    #[arg(short = 'H', long, action = ArgAction::Count)]
    pub(crate) hard_links: u8,

    /// Copy each name of a hard-linked file as a file of its own.
    #[arg(long, visible_alias = "no-H", action = ArgAction::Count)]
    pub(crate) no_hard_links: u8,

    /// Keep extended attributes.
    #[arg(short = 'X', long, action = ArgAction::Count)]
    pub(crate) xattrs: u8,

    /// Do not copy extended attributes.
    #[arg(long, visible_alias = "no-X", action = ArgAction::Count)]
    pub(crate) no_xattrs: u8,
}

/// What each part of `-a` ends up as. rsync's rule: flags apply in
/// command-line order, so `-a --no-t` keeps no times but `--no-t -a`
/// does. Without any flag for it, a part is what pcopy always did: it
/// recurses, copies links as links and keeps permission bits and times
/// (rsync's `-rlpt`), and keeps nothing more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Parts {
    pub(crate) recursive: bool,
    pub(crate) links: bool,
    pub(crate) perms: bool,
    pub(crate) times: bool,
    pub(crate) group: bool,
    pub(crate) owner: bool,
    pub(crate) devices: bool,
    pub(crate) specials: bool,
    pub(crate) hard_links: bool,
    pub(crate) xattrs: bool,
    pub(crate) acls: bool,
}

impl Default for Parts {
    fn default() -> Parts {
        Parts {
            recursive: true,
            links: true,
            perms: true,
            times: true,
            group: false,
            owner: false,
            devices: false,
            specials: false,
            hard_links: false,
            xattrs: false,
            acls: false,
        }
    }
}

/// The flags that switch one part on (`true`) or off, by clap id. `-a`
/// switches on every part but ACLs; `-A` also switches on permissions,
/// as in rsync (`-A --no-p` keeps none, `--no-p -A` keeps them).
mod switches {
    pub(super) const RECURSIVE: &[(&str, bool)] = &[
        ("archive", true),
        ("recursive", true),
        ("no_recursive", false),
    ];
    pub(super) const LINKS: &[(&str, bool)] =
        &[("archive", true), ("links", true), ("no_links", false)];
    pub(super) const PERMS: &[(&str, bool)] = &[
        ("archive", true),
        ("perms", true),
        ("acls", true),
        ("no_perms", false),
    ];
    pub(super) const TIMES: &[(&str, bool)] =
        &[("archive", true), ("times", true), ("no_times", false)];
    pub(super) const GROUP: &[(&str, bool)] =
        &[("archive", true), ("group", true), ("no_group", false)];
    pub(super) const OWNER: &[(&str, bool)] =
        &[("archive", true), ("owner", true), ("no_owner", false)];
    pub(super) const DEVICES: &[(&str, bool)] = &[
        ("archive", true),
        ("devices_specials", true),
        ("devices", true),
        ("no_devices_specials", false),
        ("no_devices", false),
    ];
    pub(super) const SPECIALS: &[(&str, bool)] = &[
        ("archive", true),
        ("devices_specials", true),
        ("specials", true),
        ("no_devices_specials", false),
        ("no_specials", false),
    ];
    pub(super) const HARD_LINKS: &[(&str, bool)] = &[
        ("archive", true),
        ("hard_links", true),
        ("no_hard_links", false),
    ];
    pub(super) const XATTRS: &[(&str, bool)] =
        &[("archive", true), ("xattrs", true), ("no_xattrs", false)];
    pub(super) const ACLS: &[(&str, bool)] = &[("acls", true), ("no_acls", false)];
}

impl Parts {
    /// Each part as the last flag given for it leaves it.
    fn of(matches: &ArgMatches) -> Parts {
        let default = Parts::default();
        let part = |switches: &[(&str, bool)], unset: bool| {
            switches
                .iter()
                .filter(|(id, _)| matches.value_source(id) == Some(ValueSource::CommandLine))
                .filter_map(|(id, on)| Some((matches.indices_of(id)?.max()?, *on)))
                .max_by_key(|(index, _)| *index)
                .map_or(unset, |(_, on)| on)
        };
        Parts {
            recursive: part(switches::RECURSIVE, default.recursive),
            links: part(switches::LINKS, default.links),
            perms: part(switches::PERMS, default.perms),
            times: part(switches::TIMES, default.times),
            group: part(switches::GROUP, default.group),
            owner: part(switches::OWNER, default.owner),
            devices: part(switches::DEVICES, default.devices),
            specials: part(switches::SPECIALS, default.specials),
            hard_links: part(switches::HARD_LINKS, default.hard_links),
            xattrs: part(switches::XATTRS, default.xattrs),
            acls: part(switches::ACLS, default.acls),
        }
    }
}

/// rsync's flags for snapshot and versioned backups, moves and rate.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct BackupArgs {
    /// Hard-link a file that is unchanged in DIR (same size, mtime, mode,
    /// and with -a owner and xattrs) instead of copying it; DIR is
    /// relative to DST when relative. Repeatable (up to 20; the first
    /// match wins).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["compare_dest", "copy_dest"])]
    pub(crate) link_dest: Vec<OsString>,

    /// Leave out a file that is unchanged in DIR (relative to DST when
    /// relative). Repeatable.
    #[arg(long, value_name = "DIR", conflicts_with = "copy_dest")]
    pub(crate) compare_dest: Vec<OsString>,

    /// Copy a file that is unchanged in DIR from there rather than from
    /// SRC (relative to DST when relative). Repeatable.
    #[arg(long, value_name = "DIR")]
    pub(crate) copy_dest: Vec<OsString>,

    /// Keep the old version of a file that is replaced or deleted: it is
    /// renamed (to NAME~, or into --backup-dir), never copied.
    #[arg(short = 'b', long)]
    pub(crate) backup: bool,

    /// With -b, move old versions to DIR (relative to DST when relative),
    /// under their path below DST. Implies -b.
    #[arg(long, value_name = "DIR")]
    pub(crate) backup_dir: Option<OsString>,

    /// With -b, append SUF to a backup's name [default: `~`, or nothing
    /// with --backup-dir].
    #[arg(long, value_name = "SUF")]
    pub(crate) suffix: Option<OsString>,

    /// Remove each source file (not directories) once its copy is complete
    /// and named (and flushed with --fsync), or found up to date, and only
    /// if it did not change meanwhile.
    #[arg(long)]
    pub(crate) remove_source_files: bool,

    /// Keep the complete parts of a large file (one split over the
    /// workers) when the run is interrupted, so the next run with
    /// --partial copies only the rest, if the source did not change.
    #[arg(long)]
    pub(crate) partial: bool,

    /// Write an updated file over the existing one instead of a new file
    /// renamed into place: no second copy of a huge file needs room, but a
    /// run stopped halfway leaves a half-written file under its name.
    #[arg(long, conflicts_with_all = ["backup", "backup_dir"])]
    pub(crate) inplace: bool,

    /// Copy at most RATE bytes per second, all workers together: KiB/s,
    /// or with a suffix K, M, G (powers of 1024). 0: no limit.
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub(crate) bwlimit: Option<u64>,
}

/// rsync's `--bwlimit` units: a number of KiB/s, or with a suffix `K`, `M`,
/// `G` (`KB`, `MiB` and the like too), a fraction allowed; bytes per second.
fn parse_rate(text: &str) -> Result<u64, String> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| {
        format!("invalid rate `{text}`: expected a number of KiB/s, or with K, M or G")
    })?;
    // rsync's suffixes: K, KiB powers of 1024, KB powers of 1000, B bytes.
    let unit = unit.to_ascii_lowercase();
    let (prefix, base) = match unit.as_str() {
        "" => ("k", 1024.0),
        "b" => ("", 1.0),
        u if u.ends_with("ib") => (&u[..u.len() - 2], 1024.0),
        u if u.ends_with('b') => (&u[..u.len() - 1], 1000.0),
        u => (u, 1024.0),
    };
    let scale: f64 = match prefix {
        "" => 1.0,
        "k" => base,
        "m" => base * base,
        "g" => base * base * base,
        _ => {
            return Err(format!(
                "invalid rate `{text}`: unknown unit (use K, M or G)"
            ));
        }
    };
    let bytes = value * scale;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(format!("invalid rate `{text}`: too large"));
    }
    Ok(bytes as u64)
}

impl Args {
    /// Parses `args` (program name first). Errors include `--help` and
    /// `--version`, which clap reports as errors of their own kinds.
    pub(crate) fn parse_from<I, T>(args: I) -> Result<Args, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let mut command = Args::command();
        let matches = command.try_get_matches_from_mut(args)?;
        let mut parsed = Args::from_arg_matches(&matches).map_err(|e| e.format(&mut command))?;
        parsed.rules = ordered_rules(&matches);
        parsed.parts = Parts::of(&matches);
        Ok(parsed)
    }
}

/// The filter flags in the order they were given, which decides which
/// rule wins.
fn ordered_rules(matches: &ArgMatches) -> Vec<Rule> {
    let mut rules: Vec<(usize, Rule)> = Vec::new();
    let mut collect = |id: &str, make: &dyn Fn(OsString) -> Rule| {
        let values = matches.get_many::<OsString>(id).into_iter().flatten();
        let indices = matches.indices_of(id).into_iter().flatten();
        rules.extend(indices.zip(values).map(|(i, v)| (i, make(v.clone()))));
    };
    collect("exclude", &Rule::Exclude);
    collect("include", &Rule::Include);
    collect("filter", &Rule::Rsync);
    // rsync's -F: the first is a dir-merge rule, a second an exclude.
    let f_flags = (matches.value_source("rsync_filter") == Some(ValueSource::CommandLine))
        .then(|| matches.indices_of("rsync_filter"))
        .flatten()
        .into_iter()
        .flatten();
    rules.extend(f_flags.enumerate().map(|(nth, i)| match nth {
        0 => (i, Rule::Rsync("dir-merge /.rsync-filter".into())),
        _ => (i, Rule::Rsync("- .rsync-filter".into())),
    }));
    rules.sort_by_key(|(i, _)| *i);
    let from = matches
        .get_many::<PathBuf>("exclude_from")
        .into_iter()
        .flatten();
    let from_at = matches.indices_of("exclude_from").into_iter().flatten();
    rules.extend(
        from_at
            .zip(from)
            .map(|(i, p)| (i, Rule::ExcludeFrom(p.clone()))),
    );
    rules.sort_by_key(|(i, _)| *i);
    rules.into_iter().map(|(_, rule)| rule).collect()
}

/// Prints a clap error, or the help or version text clap reports as one,
/// and gives its status: usage errors exit with 1 (rsync's number) rather
/// than clap's 2.
pub(crate) fn clap_exit(err: &clap::Error) -> ExitStatus {
    let _ = err.print();
    if err.use_stderr() {
        ExitStatus::Usage
    } else {
        ExitStatus::Success
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    #[test]
    fn command_definition_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn sources_come_before_the_destination() {
        let args = Args::parse_from(["pcopy", "a", "b/", "c", "dst"]).unwrap();
        assert_eq!(args.sources, ["a", "b/", "c"]);
        assert_eq!(args.destination.unwrap(), "dst");
        assert_eq!(args.verbose, 0);
    }

    #[test]
    fn zero_jobs_and_a_lone_path_are_usage_errors() {
        let zero = Args::parse_from(["pcopy", "-j", "0", "a", "b"]).unwrap_err();
        assert_eq!(zero.kind(), ErrorKind::ValueValidation);
        let lone = Args::parse_from(["pcopy", "a"]).unwrap_err();
        assert_eq!(lone.kind(), ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn the_last_progress_flag_wins_and_verbosity_counts() {
        let args = Args::parse_from(["pcopy", "--progress", "--no-progress", "-vv", "a", "b"]);
        let args = args.unwrap();
        assert!(args.no_progress && !args.progress);
        assert_eq!(args.verbose, 2);
    }

    #[test]
    fn filter_rules_keep_their_command_line_order() {
        let args = Args::parse_from([
            "pcopy",
            "--include",
            "*.c",
            "--exclude-from",
            "rules.txt",
            "--exclude",
            "*",
            "--include",
            "late",
            "a",
            "b",
        ])
        .unwrap();
        assert_eq!(
            args.rules,
            [
                Rule::Include("*.c".into()),
                Rule::ExcludeFrom("rules.txt".into()),
                Rule::Exclude("*".into()),
                Rule::Include("late".into()),
            ]
        );
    }

    fn parts(flags: &[&str]) -> Parts {
        let argv = ["pcopy"].iter().chain(flags).chain(&["a", "b"]);
        Args::parse_from(argv).unwrap().parts
    }

    #[test]
    fn without_flags_the_parts_are_what_pcopy_always_kept() {
        let plain = parts(&[]);
        assert_eq!(plain, Parts::default());
        assert!(plain.recursive && plain.links && plain.perms && plain.times);
        assert!(!(plain.owner || plain.group || plain.devices || plain.specials));
        assert!(!(plain.hard_links || plain.xattrs || plain.acls));
    }

    #[test]
    fn archive_turns_every_part_on_but_acls() {
        let all = Parts {
            owner: true,
            group: true,
            devices: true,
            specials: true,
            hard_links: true,
            xattrs: true,
            ..Parts::default()
        };
        assert_eq!(parts(&["-a"]), all);
        assert_eq!(parts(&["-aA"]), Parts { acls: true, ..all });
    }

    #[test]
    fn the_last_flag_for_a_part_decides_as_in_rsync() {
        assert!(!parts(&["-a", "--no-t"]).times);
        assert!(parts(&["--no-t", "-a"]).times);
        assert!(!parts(&["-a", "--no-r"]).recursive);
        assert!(parts(&["--no-recursive", "-a"]).recursive);
        assert!(parts(&["--no-t", "-t"]).times);
        assert!(!parts(&["-t", "--no-times"]).times);
        assert!(parts(&["--no-t", "-a", "--no-t", "-t"]).times);
        assert!(parts(&["-a", "--no-t", "-a"]).times);
        // -A switches permissions on: `-A --no-p` keeps none, `--no-p -A` does.
        let acls_first = parts(&["-A", "--no-p"]);
        assert!(acls_first.acls && !acls_first.perms);
        assert!(parts(&["--no-p", "-A"]).perms);
        assert!(!parts(&["-aA", "--no-A"]).acls);
    }

    #[test]
    fn every_negation_turns_off_its_part_only() {
        let all = parts(&["-a"]);
        let cases: [(&str, Parts); 10] = [
            (
                "--no-l",
                Parts {
                    links: false,
                    ..all
                },
            ),
            (
                "--no-links",
                Parts {
                    links: false,
                    ..all
                },
            ),
            (
                "--no-p",
                Parts {
                    perms: false,
                    ..all
                },
            ),
            (
                "--no-perms",
                Parts {
                    perms: false,
                    ..all
                },
            ),
            (
                "--no-o",
                Parts {
                    owner: false,
                    ..all
                },
            ),
            (
                "--no-group",
                Parts {
                    group: false,
                    ..all
                },
            ),
            (
                "--no-devices",
                Parts {
                    devices: false,
                    ..all
                },
            ),
            (
                "--no-specials",
                Parts {
                    specials: false,
                    ..all
                },
            ),
            (
                "--no-H",
                Parts {
                    hard_links: false,
                    ..all
                },
            ),
            (
                "--no-xattrs",
                Parts {
                    xattrs: false,
                    ..all
                },
            ),
        ];
        for (flag, expected) in cases {
            assert_eq!(parts(&["-a", flag]), expected, "-a {flag}");
        }
        let no_d = parts(&["-a", "--no-D"]);
        assert_eq!(
            no_d,
            Parts {
                devices: false,
                specials: false,
                ..all
            }
        );
        assert_eq!(
            parts(&["--no-D", "-D"]),
            Parts {
                devices: true,
                specials: true,
                ..Parts::default()
            }
        );
        let specials_only = parts(&["-D", "--no-devices"]);
        assert!(specials_only.specials && !specials_only.devices);
    }

    #[test]
    fn single_parts_work_without_archive() {
        let some = parts(&["-ogHX"]);
        assert!(some.owner && some.group && some.hard_links && some.xattrs);
        assert!(!some.devices && !some.specials);
        assert_eq!(parts(&["-rlpt"]), Parts::default());
    }

    #[test]
    fn f_flags_stand_for_rsyncs_two_rules_in_place() {
        let args = Args::parse_from(["pcopy", "-f", "- a", "-F", "--exclude", "b", "-F", "s", "d"]);
        assert_eq!(
            args.unwrap().rules,
            [
                Rule::Rsync("- a".into()),
                Rule::Rsync("dir-merge /.rsync-filter".into()),
                Rule::Exclude("b".into()),
                Rule::Rsync("- .rsync-filter".into()),
            ]
        );
        let twice = Args::parse_from(["pcopy", "-FF", "s", "d"]).unwrap();
        assert_eq!(twice.rules.len(), 2);
    }

    #[test]
    fn generate_needs_no_paths_and_takes_nothing_else() {
        let args = Args::parse_from(["pcopy", "--generate", "man"]).unwrap();
        assert_eq!(args.generate, Some(Generate::Man));
        let both = Args::parse_from(["pcopy", "--generate", "man", "a", "b"]).unwrap_err();
        assert_eq!(both.kind(), ErrorKind::ArgumentConflict);
        let bad = Args::parse_from(["pcopy", "--generate", "tcsh"]).unwrap_err();
        assert_eq!(bad.kind(), ErrorKind::InvalidValue);
    }

    #[test]
    fn max_delete_needs_delete() {
        let err = Args::parse_from(["pcopy", "--max-delete", "3", "a", "b"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
        let ok = Args::parse_from(["pcopy", "--delete", "--max-delete", "3", "a", "b"]);
        assert_eq!(ok.unwrap().max_delete, Some(3));
    }

    #[test]
    fn help_shows_examples_and_exit_statuses() {
        let help = Args::command().render_long_help().to_string();
        assert!(help.contains("pcopy photos/ /backup/photos"));
        assert!(help.contains("24  some source files vanished"));
        assert!(help.contains("25  --max-delete stopped the deletions"));
        for flag in [
            "--delete",
            "--max-delete",
            "--dry-run",
            "--shard",
            "--archive",
            "--json",
            "--force",
            "--ignore-errors",
            "--modify-window",
            "--size-only",
            "--link-dest",
            "--compare-dest",
            "--copy-dest",
            "--backup-dir",
            "--suffix",
            "--remove-source-files",
            "--bwlimit",
            "--inplace",
            "--itemize-changes",
            "--out-format",
            "--stats",
            "--log-file",
            "--existing",
            "--relative",
            "--files-from",
            "--from0",
            "--max-size",
            "--min-size",
            "--one-file-system",
            "--mkpath",
            "--generate",
            "--chmod",
            "--acls",
            "--no-owner",
            "--no-group",
            "--no-recursive",
            "--no-links",
            "--no-perms",
            "--no-times",
            "--no-devices",
            "--no-specials",
            "--no-D",
            "--hard-links",
            "--no-hard-links",
            "--xattrs",
            "--no-xattrs",
            "--no-acls",
            "--chown",
            "--numeric-ids",
        ] {
            assert!(help.contains(flag), "{flag} missing from --help");
        }
    }
}
