//! `--generate`: shell completions and the man page, made from the same
//! clap definitions as `--help` (as ripgrep does), so they never drift.

use std::io::Write;

use clap::{CommandFactory, ValueEnum};
use clap_complete::Shell;

use crate::cli::Args;

/// What `--generate` writes on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Generate {
    /// Completions for bash (source it, or put it in
    /// /usr/share/bash-completion/completions/pcopy).
    CompleteBash,
    /// Completions for zsh (a `_pcopy` file on `$fpath`).
    CompleteZsh,
    /// Completions for fish (~/.config/fish/completions/pcopy.fish).
    CompleteFish,
    /// The man page, in roff (`man -l -` reads it).
    Man,
}

/// Writes what `what` asks for to stdout. A closed stdout
/// (`pcopy --generate man | head`) is no error.
pub(crate) fn print(what: Generate) {
    let _ = write(what, &mut std::io::stdout().lock());
}

/// Writes what `what` asks for to `out`.
fn write(what: Generate, out: &mut dyn Write) -> std::io::Result<()> {
    let mut command = Args::command();
    let shell = match what {
        Generate::CompleteBash => Shell::Bash,
        Generate::CompleteZsh => Shell::Zsh,
        Generate::CompleteFish => Shell::Fish,
        Generate::Man => return clap_mangen::Man::new(command).render(out),
    };
    clap_complete::generate(shell, &mut command, "pcopy", out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generated(what: Generate) -> String {
        let mut out = Vec::new();
        write(what, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn each_shell_and_the_man_page_name_the_flags() {
        assert!(generated(Generate::CompleteBash).contains("--itemize-changes"));
        assert!(generated(Generate::CompleteZsh).contains("--files-from"));
        assert!(generated(Generate::CompleteFish).contains("-l max-size"));
        let man = generated(Generate::Man);
        assert!(man.starts_with(".ie \\n(.g .ds Aq"), "{}", &man[..80]);
        assert!(man.contains("\\-\\-delete"));
    }
}
