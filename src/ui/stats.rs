//! `--stats`: rsync's counts of files by type, of created, deleted and
//! transferred files, and of bytes, printed after the run.

use super::itemize::ItemType;

/// Entries of each type.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ByType {
    pub(crate) reg: u64,
    pub(crate) dir: u64,
    pub(crate) link: u64,
    pub(crate) dev: u64,
    pub(crate) special: u64,
}

impl ByType {
    pub(crate) fn add(&mut self, kind: ItemType) {
        match kind {
            ItemType::File => self.reg += 1,
            ItemType::Dir => self.dir += 1,
            ItemType::Symlink => self.link += 1,
            ItemType::Device => self.dev += 1,
            ItemType::Special => self.special += 1,
        }
    }

    fn total(&self) -> u64 {
        self.reg + self.dir + self.link + self.dev + self.special
    }

    /// `8 (reg: 3, dir: 3, link: 1)`: the total, then the types present.
    fn describe(&self) -> String {
        let parts: Vec<String> = [
            ("reg", self.reg),
            ("dir", self.dir),
            ("link", self.link),
            ("dev", self.dev),
            ("special", self.special),
        ]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{name}: {}", grouped(*n)))
        .collect();
        match parts.is_empty() {
            true => grouped(self.total()),
            false => format!("{} ({})", grouped(self.total()), parts.join(", ")),
        }
    }
}

/// What `--stats` counts during a run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stats {
    /// Every entry of the source tree that was looked at (directories
    /// included), whatever became of it.
    pub(crate) files: ByType,
    /// Entries new at the destination.
    pub(crate) created: ByType,
    pub(crate) deleted: ByType,
    /// Regular files whose data was copied.
    pub(crate) transferred: u64,
    /// The sizes of all regular files and symbolic links (their target's
    /// length), as rsync counts them.
    pub(crate) total_size: u64,
    /// The sizes of the files transferred.
    pub(crate) transferred_size: u64,
}

impl Stats {
    /// rsync's `--stats` lines that mean something for a local copy, each
    /// with its newline, after a blank line as rsync prints them.
    pub(crate) fn render(&self) -> String {
        format!(
            "\nNumber of files: {}\n\
             Number of created files: {}\n\
             Number of deleted files: {}\n\
             Number of regular files transferred: {}\n\
             Total file size: {} bytes\n\
             Total transferred file size: {} bytes\n\
             Literal data: {} bytes\n\
             Matched data: 0 bytes\n",
            self.files.describe(),
            self.created.describe(),
            self.deleted.describe(),
            grouped(self.transferred),
            grouped(self.total_size),
            grouped(self.transferred_size),
            grouped(self.transferred_size),
        )
    }
}

/// `1234567` as `1,234,567`, as rsync writes its counts.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(1234567), "1,234,567");
    }

    #[test]
    fn lines_are_rsyncs() {
        let mut stats = Stats::default();
        for kind in [
            ItemType::File,
            ItemType::File,
            ItemType::Dir,
            ItemType::Symlink,
        ] {
            stats.files.add(kind);
        }
        stats.created.add(ItemType::File);
        stats.transferred = 1;
        stats.total_size = 1500;
        stats.transferred_size = 1000;
        assert_eq!(
            stats.render(),
            "\nNumber of files: 4 (reg: 2, dir: 1, link: 1)\n\
             Number of created files: 1 (reg: 1)\n\
             Number of deleted files: 0\n\
             Number of regular files transferred: 1\n\
             Total file size: 1,500 bytes\n\
             Total transferred file size: 1,000 bytes\n\
             Literal data: 1,000 bytes\n\
             Matched data: 0 bytes\n"
        );
    }
}
