//! Pages of matches found without scoring: when every match scores the same (a match-all
//! query under filters, `GET /projects`, a version's files), the page is the first matches in
//! index order, counted without BM25 weights or a heap; of one kind only, the kind's postings
//! are walked against the caller's cached allowed set.

use tantivy::collector::{Count, TopDocs};
use tantivy::query::Query;
use tantivy::{DocAddress, Searcher, Term};

use super::{KindFilter, SearchError, SearchRequest};
use crate::index::SearchIndex;
use crate::index::filter::{AllowQuery, SearchFilter};

/// The page of `request` (offset and size) of the matches of `query` by score, and the count
/// of all matches; equal scores in index order.
pub(super) fn by_score(
    searcher: &Searcher,
    query: &dyn Query,
    request: &SearchRequest,
) -> Result<(Vec<DocAddress>, usize), SearchError> {
    let top = TopDocs::with_limit(request.size).and_offset(request.offset);
    let (docs, total) = searcher.search(query, &(top.order_by_score(), Count))?;
    Ok((
        docs.into_iter().map(|(_, address)| address).collect(),
        total,
    ))
}

/// What [`by_score`] answers when every match of `query` scores the same (a match-all query
/// under filters, each of whose clauses gives every document it holds one score): the page
/// in index order, found and counted without scoring — no BM25 weights, no score per match,
/// no heap. `first_matches_page_as_by_score` checks both agree.
pub(super) fn first_matches(
    searcher: &Searcher,
    query: &dyn Query,
    request: &SearchRequest,
) -> Result<(Vec<DocAddress>, usize), SearchError> {
    let (mut first, total) = searcher.search(
        query,
        &FirstMatches {
            wanted: request.offset.saturating_add(request.size),
        },
    )?;
    let page = first.split_off(request.offset.min(first.len()));
    Ok((page, total))
}

/// The `kind` term a match-all request restricts to when that and the access filter are its
/// only restrictions (`GET /projects`), `None` otherwise.
pub(super) fn kind_only(request: &SearchRequest) -> Option<&'static str> {
    if request.project.is_some() || request.latest {
        return None;
    }
    match request.kind {
        KindFilter::File => Some("file"),
        KindFilter::Project => Some("project"),
        KindFilter::All => None,
    }
}

/// [`first_matches`] of a match-all request restricted to the documents of `kind` only: the
/// kind's postings walked block by block, each document kept when alive and in the caller's
/// allowed set (the cached bitset of the access filter) — no intersection of docsets, no
/// seeks. `first_matches_page_as_by_score` checks it against the scored search too.
pub(super) fn first_of_kind(
    index: &SearchIndex,
    searcher: &Searcher,
    access: &SearchFilter,
    kind: &str,
    request: &SearchRequest,
) -> Result<(Vec<DocAddress>, usize), SearchError> {
    let allow = allow_query(index, access);
    let term = Term::from_field_text(index.fields().kind, kind);
    let wanted = request.offset.saturating_add(request.size);
    let mut first = Vec::new();
    let mut total = 0_usize;
    for (ordinal, reader) in searcher.segment_readers().iter().enumerate() {
        let segment = u32::try_from(ordinal).unwrap_or(u32::MAX);
        let allowed = match &allow {
            Some(allow) => Some(allow.allow_set(reader)?),
            None => None,
        };
        walk_admitted(reader, &term, allowed.as_deref(), |doc| {
            total += 1;
            if first.len() < wanted {
                first.push(DocAddress::new(segment, doc));
            }
        })?;
    }
    // Segments are walked in order and each one's postings ascend: `first` is in index order.
    let page = first.split_off(request.offset.min(first.len()));
    Ok((page, total))
}

/// The access filter's clause as such (its allowed set per segment is cached), `None` for
/// the unrestricted filter.
pub(super) fn allow_query(index: &SearchIndex, access: &SearchFilter) -> Option<AllowQuery> {
    let fields = index.fields();
    (!access.is_unrestricted()).then(|| {
        AllowQuery::new(
            access.clone(),
            index.allow_cache(),
            fields.readers,
            fields.state,
        )
    })
}

/// Calls `admit` with every document of `term`'s postings in `reader`'s segment, in
/// ascending order, that is alive and (when given) in `allowed`: a walk block by block, for
/// the passes whose only restrictions are one term and the access filter.
pub(super) fn walk_admitted(
    reader: &tantivy::SegmentReader,
    term: &Term,
    allowed: Option<&tantivy::BitSet>,
    mut admit: impl FnMut(tantivy::DocId),
) -> Result<(), SearchError> {
    let alive = reader.alive_bitset();
    let Some(mut postings) = reader
        .inverted_index(term.field())?
        .read_block_postings(term, tantivy::schema::IndexRecordOption::Basic)
        .map_err(tantivy::TantivyError::from)?
    else {
        return Ok(());
    };
    loop {
        let docs = postings.docs();
        if docs.is_empty() {
            return Ok(());
        }
        for &doc in docs {
            if alive.is_some_and(|alive| alive.is_deleted(doc))
                || allowed.is_some_and(|allowed| !allowed.contains(doc))
            {
                continue;
            }
            admit(doc);
        }
        postings.advance();
    }
}

/// Collects the first `wanted` matches in index order, and counts all of them.
struct FirstMatches {
    wanted: usize,
}

/// [`FirstMatches`] on one segment.
struct FirstMatchesInSegment {
    segment: tantivy::SegmentOrdinal,
    wanted: usize,
    first: Vec<tantivy::DocId>,
    count: usize,
}

impl tantivy::collector::Collector for FirstMatches {
    type Fruit = (Vec<DocAddress>, usize);
    type Child = FirstMatchesInSegment;

    fn for_segment(
        &self,
        segment: tantivy::SegmentOrdinal,
        _reader: &tantivy::SegmentReader,
    ) -> tantivy::Result<Self::Child> {
        Ok(FirstMatchesInSegment {
            segment,
            wanted: self.wanted,
            first: Vec::new(),
            count: 0,
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<(Vec<DocAddress>, usize)>) -> tantivy::Result<Self::Fruit> {
        let total = fruits.iter().map(|(_, count)| count).sum();
        let mut first: Vec<DocAddress> = fruits.into_iter().flat_map(|(docs, _)| docs).collect();
        first.sort_unstable();
        first.truncate(self.wanted);
        Ok((first, total))
    }
}

impl tantivy::collector::SegmentCollector for FirstMatchesInSegment {
    type Fruit = (Vec<DocAddress>, usize);

    fn collect(&mut self, doc: tantivy::DocId, _score: tantivy::Score) {
        self.count += 1;
        if self.first.len() < self.wanted {
            self.first.push(doc);
        }
    }

    fn collect_block(&mut self, docs: &[tantivy::DocId]) {
        self.count += docs.len();
        let room = self.wanted.saturating_sub(self.first.len());
        self.first.extend_from_slice(&docs[..room.min(docs.len())]);
    }

    fn harvest(self) -> Self::Fruit {
        let segment = self.segment;
        let first = self
            .first
            .into_iter()
            .map(|doc| DocAddress::new(segment, doc))
            .collect();
        (first, self.count)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::collections::BTreeSet;

    use serde_json::json;

    use tantivy::query::{BooleanQuery, Occur};

    use super::super::query::any_term;
    use super::super::{access_filter, build_query, latest_versions, parse_user_query_with};
    use super::*;
    use crate::index::document::{DocKind, IndexDocument, Shared};
    use crate::index::writer::WriteOp;
    use crate::permissions::{AccessScope, DocumentAccess};

    pub(in crate::index::search) fn document(
        project: &str,
        version: Option<&str>,
        path: Option<&str>,
        reader: &str,
    ) -> IndexDocument {
        let kind = if path.is_some() {
            DocKind::File
        } else {
            DocKind::Project
        };
        let id = match (version, path) {
            (Some(version), Some(path)) => format!("{project}:{path}@{version}"),
            _ => project.to_owned(),
        };
        let revision = version.map(|version| version.trim_start_matches('v').parse().unwrap_or(1));
        IndexDocument {
            id: id.clone(),
            kind,
            project_id: project.to_owned(),
            version: version.map(str::to_owned),
            path: path.map(str::to_owned),
            file_key: path.map(str::to_owned),
            perm_hash: 0,
            namespace: None,
            numerical_revision: revision,
            uploaded: None,
            access: Shared::new(DocumentAccess {
                readers: [(reader.to_owned(), None), ("everyone".to_owned(), None)]
                    .into_iter()
                    .collect(),
                disabled: false,
                next_expiry: None,
            }),
            state: "active".to_owned(),
            source: json!({"title": format!("{id} title words"), "_extra": {"id": id}}),
            version_extra: None,
            permissions: Shared::new(json!({"owners": [reader]})),
            project_text: std::sync::Arc::default(),
        }
    }

    /// An empty index in a temporary directory (kept while the directory is).
    pub(in crate::index::search) fn empty_index() -> (tempfile::TempDir, SearchIndex) {
        let directory = tempfile::tempdir().unwrap();
        let index = SearchIndex::open(
            directory.path(),
            crate::index::IndexSchema::builtin().unwrap(),
        )
        .unwrap();
        (directory, index)
    }

    /// The match-all page taken in index order without scoring is the page the scored
    /// search answers — same documents, same order, same total — over several segments,
    /// replaced documents, every kind, a project restriction, `latest`, and offsets.
    #[tokio::test]
    async fn first_matches_page_as_by_score() {
        let (_directory, index) = empty_index();
        let fields = *index.fields();
        // Three commits (three segments at least), the second replacing some of the first.
        for round in 0..3_usize {
            let mut ops = Vec::new();
            for project in 0..12_usize {
                if round == 1 && project % 3 != 0 {
                    continue;
                }
                let name = format!("p{project:02}");
                let reader = ["alice", "bob", "carol"][(project + round) % 3];
                ops.push(WriteOp::Replace {
                    owner: document(&name, None, None, reader).owner_key(),
                    documents: vec![document(&name, None, None, reader).to_tantivy(&fields)],
                });
                let version = format!("v{}", round + 1);
                let files: Vec<IndexDocument> = (0..1 + project % 4)
                    .map(|file| {
                        document(
                            &name,
                            Some(&version),
                            Some(&format!("f{file}.json")),
                            reader,
                        )
                    })
                    .collect();
                ops.push(WriteOp::Replace {
                    owner: files[0].owner_key(),
                    documents: files.iter().map(|d| d.to_tantivy(&fields)).collect(),
                });
            }
            index.writer().apply(ops).await.unwrap();
        }
        let searcher = index.searcher();
        assert!(searcher.segment_readers().len() >= 2, "one segment only");
        let now = chrono::Utc::now();
        let scopes = [
            AccessScope::Unrestricted,
            AccessScope::Principals {
                tokens: std::sync::Arc::new(BTreeSet::from(["alice".to_owned()])),
            },
            AccessScope::Principals {
                tokens: std::sync::Arc::new(BTreeSet::from(["bob".to_owned(), "carol".to_owned()])),
            },
        ];
        let mut compared = 0;
        let mut of_kinds = 0;
        for scope in &scopes {
            for kind in [KindFilter::File, KindFilter::Project, KindFilter::All] {
                for project in [None, Some("p03"), Some("p05")] {
                    for latest in [false, true] {
                        for (offset, size) in [(0, 3), (2, 5), (0, 500), (7, 2), (300, 4)] {
                            let request = SearchRequest {
                                query: "*".to_owned(),
                                kind,
                                size,
                                offset,
                                latest,
                                project: project.map(str::to_owned),
                                ..SearchRequest::default()
                            };
                            let user_query = parse_user_query_with(&index, "*", false).unwrap();
                            let mut clauses =
                                build_query(&index, &access_filter(scope), &request, user_query);
                            if latest {
                                let terms = latest_versions(&index, &searcher, scope, project, now)
                                    .unwrap()
                                    .iter()
                                    .map(|key| Term::from_field_text(fields.version_key, key))
                                    .collect();
                                clauses.push((Occur::Must, any_term(terms)));
                            }
                            let query = BooleanQuery::new(clauses);
                            let scored = by_score(&searcher, &query, &request).unwrap();
                            let first = first_matches(&searcher, &query, &request).unwrap();
                            assert_eq!(first, scored, "{scope:?} {request:?}");
                            if let Some(kind) = kind_only(&request) {
                                let of_kind = first_of_kind(
                                    &index,
                                    &searcher,
                                    &access_filter(scope),
                                    kind,
                                    &request,
                                )
                                .unwrap();
                                assert_eq!(of_kind, scored, "{scope:?} {request:?}");
                                of_kinds += 1;
                            }
                            compared += usize::from(!scored.0.is_empty());
                        }
                    }
                }
            }
        }
        assert!(
            compared > 100,
            "too few non-empty pages compared: {compared}"
        );
        assert!(
            of_kinds >= 30,
            "too few pages of one kind compared: {of_kinds}"
        );
    }
}
