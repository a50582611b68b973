//! pcopy's integration tests, in one binary so they are linked once: each
//! module covers one area and runs the pcopy binary on trees it builds in
//! temp dirs; `testenv` is what they share.

#[macro_use]
mod testenv;

mod backup_archive;
mod backup_converge;
mod backup_guard;
mod backup_incremental;
mod backup_mirror;
mod backup_partial;
mod backup_shard;
mod backup_snapshots;
mod cli;
mod errors;
mod filesystems;
mod filters;
mod grow;
mod metadata;
mod metadata_acls;
mod metadata_owners;
mod metadata_parts;
mod reliability_crash;
mod reliability_fs;
mod reliability_hostile;
mod reliability_input;
mod reliability_proptest;
mod reliability_signals;
mod reporting;
mod robustness;
mod selection;
mod shell;
mod split;
mod walk;
mod walk_listings;
