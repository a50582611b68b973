//! Selection: which entries of the sources a run copies, as pure decisions
//! over paths below DST (`--exclude`/`--include`/`--filter` rules, `--shard K/N`) and
//! over sizes (`--max-size`, `--min-size`), and the per-directory rules
//! (`dir-merge`, `-F`) read as the walk enters each directory.
//!
//! Owns the compiled rules and the shard arithmetic. The walk asks it about
//! every entry and `--delete` about every extraneous name, so both stages
//! agree on what is left out. It calls nothing of the other stages, only
//! `ui::escape` and `exit_codes` for its error messages.

pub(crate) mod dir_rules;
pub(crate) mod filter;
pub(crate) mod rsync_rules;
pub(crate) mod shard;
pub(crate) mod size;
pub(crate) mod wildmatch;
