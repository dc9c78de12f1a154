//! The index opens, survives a restart, and is recreated when its schema version changes.

use trove::index::{IndexSchema, SearchIndex};

#[test]
fn a_changed_schema_version_recreates_the_index() {
    let directory = tempfile::tempdir().unwrap();
    let first = SearchIndex::open(directory.path(), IndexSchema::builtin().unwrap()).unwrap();
    assert!(first.needs_rebuild(), "a new index must be built from storage");
    drop(first);

    let again = SearchIndex::open(directory.path(), IndexSchema::builtin().unwrap()).unwrap();
    assert!(!again.needs_rebuild(), "an up-to-date index is kept");
    drop(again);

    let mut bumped = IndexSchema::builtin().unwrap();
    bumped.version += 1;
    let rebuilt = SearchIndex::open(directory.path(), bumped.clone()).unwrap();
    assert!(rebuilt.needs_rebuild(), "a new schema version rebuilds");
    assert_eq!(rebuilt.health().schema_version, bumped.version);
}
