//! Plan tests: where each source goes, and which destinations are refused.

use super::*;

use std::os::unix::fs::symlink;

struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new() -> Tree {
        let tree = Tree {
            dir: tempfile::tempdir().unwrap(),
        };
        fs::create_dir_all(tree.path("src/sub")).unwrap();
        fs::write(tree.path("src/file"), "x").unwrap();
        fs::write(tree.path("plain"), "y").unwrap();
        tree
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn os(&self, rel: &str) -> OsString {
        let mut path = self.path(rel).into_os_string();
        if rel.ends_with('/') {
            path.push("/");
        }
        path
    }

    fn resolve(&self, sources: &[&str], dst: &str) -> Result<Plan, Fatal> {
        let sources: Vec<OsString> = sources.iter().map(|s| self.os(s)).collect();
        resolve(&sources, &self.os(dst), false, false)
    }
}

fn status(result: Result<Plan, Fatal>) -> ExitStatus {
    result
        .map(|_| ExitStatus::Success)
        .unwrap_or_else(|f| f.status)
}

#[test]
fn trailing_slash_copies_contents_and_no_slash_copies_the_directory() {
    let tree = Tree::new();
    let contents = tree.resolve(&["src/"], "out").unwrap();
    assert_eq!(contents.roots[0].rel_dst, "");
    assert!(contents.roots[0].is_dir && contents.create_dst_root);
    let itself = tree.resolve(&["src"], "out").unwrap();
    assert_eq!(itself.roots[0].rel_dst, "src");
    assert_eq!(itself.dst_root, tree.path("out"));
}

#[test]
fn a_file_goes_to_the_name_or_into_the_directory() {
    let tree = Tree::new();
    let to_name = tree.resolve(&["plain"], "copy.txt").unwrap();
    assert_eq!(to_name.dst_root, tree.path(""));
    assert_eq!(to_name.roots[0].rel_dst, "copy.txt");
    assert!(!to_name.create_dst_root);
    let into_dir = tree.resolve(&["plain"], "src").unwrap();
    assert_eq!(into_dir.dst_root, tree.path("src"));
    assert_eq!(into_dir.roots[0].rel_dst, "plain");
    let slash = tree.resolve(&["plain"], "newdir/").unwrap();
    assert!(slash.create_dst_root);
}

#[test]
fn several_sources_need_a_directory() {
    let tree = Tree::new();
    let plan = tree.resolve(&["plain", "src/"], "out").unwrap();
    assert_eq!(plan.roots.len(), 2);
    assert!(plan.create_dst_root);
    let over_file = tree.resolve(&["plain", "src/file"], "plain");
    assert_eq!(status(over_file), ExitStatus::BadPath);
}

#[test]
fn bad_sources_and_self_copies_are_refused() {
    let tree = Tree::new();
    assert_eq!(
        status(tree.resolve(&["missing"], "out")),
        ExitStatus::BadPath
    );
    assert_eq!(
        status(tree.resolve(&["plain/"], "out")),
        ExitStatus::BadPath
    );
    assert_eq!(status(tree.resolve(&["src/"], "src")), ExitStatus::BadPath);
    assert_eq!(status(tree.resolve(&["src"], "src")), ExitStatus::BadPath);
    assert_eq!(
        status(tree.resolve(&["src/"], "src/sub/new")),
        ExitStatus::BadPath
    );
    assert_eq!(
        status(tree.resolve(&["plain"], "plain")),
        ExitStatus::BadPath
    );
    assert_eq!(
        status(tree.resolve(&["src/"], "plain")),
        ExitStatus::BadPath
    );
}

#[test]
fn destination_inside_the_source_is_found_through_symlinks() {
    let tree = Tree::new();
    symlink(tree.path("src/sub"), tree.path("alias")).unwrap();
    let err = tree.resolve(&["src/"], "alias/deeper").unwrap_err();
    assert_eq!(err.status, ExitStatus::BadPath);
    assert!(err.message.contains("inside the source"), "{}", err.message);
}

#[test]
fn a_file_where_a_named_directory_goes_is_left_to_the_walk_to_replace() {
    let tree = Tree::new();
    fs::create_dir(tree.path("out")).unwrap();
    fs::write(tree.path("out/src"), "not a dir").unwrap();
    let plan = tree.resolve(&["src"], "out").unwrap();
    assert_eq!(plan.roots[0].rel_dst, "src");
    assert!(plan.roots[0].is_dir);
    assert_eq!(fs::read(tree.path("out/src")).unwrap(), b"not a dir");
}

#[test]
fn a_missing_destination_parent_is_a_destination_error() {
    let tree = Tree::new();
    let err = tree.resolve(&["src/"], "no/such/dir").unwrap_err();
    assert_eq!(err.status, ExitStatus::DestinationIo);
    let err = tree.resolve(&["plain"], "no/file").unwrap_err();
    assert_eq!(err.status, ExitStatus::DestinationIo);
}

#[test]
fn create_destination_makes_only_the_last_component() {
    let tree = Tree::new();
    let plan = tree.resolve(&["src/"], "out").unwrap();
    create_destination(&plan).unwrap();
    assert!(tree.path("out").is_dir());
    create_destination(&plan).unwrap();
}

#[test]
fn a_source_given_twice_is_copied_once() {
    let tree = Tree::new();
    let plan = tree.resolve(&["src/", "src/", "src/."], "dst").unwrap();
    assert_eq!(plan.roots.len(), 1);
    let named = tree.resolve(&["src", "src/", "src"], "dst").unwrap();
    let rels: Vec<_> = named.roots.iter().map(|r| r.rel_dst.clone()).collect();
    assert_eq!(rels, [OsString::from("src"), OsString::new()]);
}
