//! What the index holds per owner key (`<project>/<version>`, `<project>/` for a project
//! record), read from fast fields only: the sync check compares it with storage.

use std::collections::{BTreeSet, HashMap};

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::{DocId, Score, SegmentReader};

/// What the index holds per owner key, from fast fields only.
#[derive(Debug, Default, Clone)]
pub(super) struct OwnerState {
    pub(super) file_keys: BTreeSet<String>,
    pub(super) paths: BTreeSet<String>,
    pub(super) perm_hashes: BTreeSet<u64>,
}

pub(super) struct OwnerCollector;

pub(super) struct OwnerSegmentCollector {
    owner: tantivy::columnar::StrColumn,
    file_key: tantivy::columnar::StrColumn,
    path: tantivy::columnar::StrColumn,
    perm_hash: tantivy::columnar::Column<u64>,
    states: HashMap<String, OwnerState>,
    buffer: String,
}

impl Collector for OwnerCollector {
    type Fruit = HashMap<String, OwnerState>;
    type Child = OwnerSegmentCollector;

    fn for_segment(&self, _: u32, reader: &SegmentReader) -> tantivy::Result<Self::Child> {
        let fast = reader.fast_fields();
        let missing =
            |name: &str| tantivy::TantivyError::SchemaError(format!("{name} is not a fast field"));
        Ok(OwnerSegmentCollector {
            owner: fast
                .str("version_key")?
                .ok_or_else(|| missing("version_key"))?,
            file_key: fast.str("file_key")?.ok_or_else(|| missing("file_key"))?,
            path: fast.str("path")?.ok_or_else(|| missing("path"))?,
            perm_hash: fast.u64("perm_hash")?,
            states: HashMap::new(),
            buffer: String::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Self::Fruit>) -> tantivy::Result<Self::Fruit> {
        let mut merged: HashMap<String, OwnerState> = HashMap::new();
        for fruit in fruits {
            for (owner, state) in fruit {
                let entry = merged.entry(owner).or_default();
                entry.file_keys.extend(state.file_keys);
                entry.paths.extend(state.paths);
                entry.perm_hashes.extend(state.perm_hashes);
            }
        }
        Ok(merged)
    }
}

fn read_str(
    column: &tantivy::columnar::StrColumn,
    doc: DocId,
    buffer: &mut String,
) -> Option<String> {
    let ord = column.term_ords(doc).next()?;
    buffer.clear();
    column.ord_to_str(ord, buffer).ok()?;
    Some(buffer.clone())
}

impl SegmentCollector for OwnerSegmentCollector {
    type Fruit = HashMap<String, OwnerState>;

    fn collect(&mut self, doc: DocId, _: Score) {
        let Some(owner) = read_str(&self.owner, doc, &mut self.buffer) else {
            return;
        };
        let file_key = read_str(&self.file_key, doc, &mut self.buffer);
        let path = read_str(&self.path, doc, &mut self.buffer);
        let hash = self.perm_hash.first(doc).unwrap_or_default();
        let state = self.states.entry(owner).or_default();
        state.file_keys.extend(file_key);
        state.paths.extend(path);
        state.perm_hashes.insert(hash);
    }

    fn harvest(self) -> Self::Fruit {
        self.states
    }
}
