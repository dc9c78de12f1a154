//! The index lookups behind listings: one document by id, a namespace's projects, a
//! project's versions and the versions a caller may read, each under the caller's scope.

use std::collections::HashMap;
use std::collections::HashSet;

use tantivy::DocAddress;
use tantivy::Searcher;
use tantivy::Term;
use tantivy::collector::TopDocs;
use tantivy::query::AllQuery;
use tantivy::query::BooleanQuery;
use tantivy::query::Occur;
use tantivy::query::Query;

use super::facets::{FacetCounter, facets};
use super::query::term_query;
use super::{
    Hit, SearchError, SearchRequest, access_filter, allow_clause, allow_query, build_query,
    walk_admitted,
};
use crate::index::SearchIndex;
use crate::index::answer_cache::AnswerKey;
use crate::permissions::AccessScope;

/// One document by id under `scope`, re-checked at `now`.
pub fn get_by_id(
    index: &SearchIndex,
    scope: &AccessScope,
    id: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<Hit>, SearchError> {
    let fields = index.fields();
    let request = SearchRequest {
        size: 1,
        ..SearchRequest::default()
    };
    let mut clauses = build_query(index, &access_filter(scope), &request, Box::new(AllQuery));
    clauses.push((Occur::Must, term_query(fields.id, id)));
    let searcher = index.searcher();
    let found = searcher.search(
        &BooleanQuery::new(clauses),
        &TopDocs::with_limit(1).order_by_score(),
    )?;
    let Some((_, address)) = found.into_iter().next() else {
        return Ok(None);
    };
    let stored = index.stored_document(&searcher, address)?;
    if !scope.matches(&stored.access, now) {
        return Ok(None);
    }
    Ok(Some(Hit { document: stored }))
}

/// Every project with a document in the index under `namespace` that `scope` may read
/// (sorted). Re-indexing what a namespace change affects passes
/// [`AccessScope::Unrestricted`]: the system acts on every project, whoever may read it.
pub fn projects_in_namespace(
    index: &SearchIndex,
    scope: &AccessScope,
    namespace: &str,
) -> Result<Vec<String>, SearchError> {
    let mut clauses: Vec<(Occur, Box<dyn Query>)> =
        vec![(Occur::Must, term_query(index.fields().namespace, namespace))];
    if let Some(allow) = allow_clause(index, &access_filter(scope)) {
        clauses.push((Occur::Must, allow));
    }
    let searcher = index.searcher();
    let fruit = searcher.search(
        &BooleanQuery::new(clauses),
        &FacetCounter {
            fields: vec!["project_id".to_owned()],
            now: None,
        },
    )?;
    let mut projects: Vec<String> = fruit
        .counts
        .into_iter()
        .flat_map(HashMap::into_keys)
        .collect();
    projects.sort();
    Ok(projects)
}

/// The versions of `project` with at least one document readable under `scope` at `now`,
/// sorted.
pub fn project_versions(
    index: &SearchIndex,
    scope: &AccessScope,
    project: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<String>, SearchError> {
    let request = SearchRequest {
        size: 1,
        project: Some(project.to_owned()),
        ..SearchRequest::default()
    };
    let mut facets = facets(
        index,
        scope,
        &request,
        &["_extra.version".to_owned()],
        usize::MAX,
        now,
    )?;
    let mut versions: Vec<String> = facets
        .pop()
        .map(|(_, counts)| counts.into_iter().map(|(version, _)| version).collect())
        .unwrap_or_default();
    versions.sort();
    Ok(versions)
}

/// What a caller can read of one project's versions: every version with at least one
/// readable document (sorted), and the latest — the completed one (revision > 0) with the
/// highest revision among them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadableVersions {
    /// Versions with a readable document, sorted.
    pub versions: Vec<String>,
    /// The latest readable completed version.
    pub latest: Option<String>,
}

/// The readable versions and `latest` of every project of `projects` under `scope`, in ONE
/// pass over the index (a listing page asks for 50 projects at once): the file documents of
/// those projects the access filter admits, read from fast columns. Documents whose reader
/// grants may have expired since they were indexed are re-checked against their stored
/// access data at `now`, like search hits, so an expired grant never reveals a version (nor
/// makes it `latest`). Projects with nothing readable are absent from the answer.
pub fn readable_versions(
    index: &SearchIndex,
    scope: &AccessScope,
    projects: &[String],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<HashMap<String, ReadableVersions>, SearchError> {
    if projects.is_empty() {
        return Ok(HashMap::new());
    }
    // Answered again while the index, the filter's admitted documents and the grants they
    // were read through hold ([`answer_cache`](crate::index::answer_cache)): a project's
    // page and its versions listing ask for the same versions over and over.
    let searcher = index.searcher();
    let access = access_filter(scope);
    let seconds = u64::try_from(now.timestamp()).unwrap_or(0);
    let key = versions_key(AnswerKey::segments_of(&searcher), &access, projects);
    if let Some(kept) = index.versions_cache().get(&key, seconds) {
        return Ok(kept);
    }
    let (answer, kept_until) =
        readable_versions_with(index, &searcher, scope, &access, Some(projects), now)?;
    if let Some(valid_until) = kept_until {
        index
            .versions_cache()
            .insert(key, answer.clone(), valid_until);
    }
    Ok(answer)
}

/// What [`readable_versions`] keeps its answer under.
fn versions_key(
    segments: Vec<(tantivy::index::SegmentId, Option<u64>)>,
    access: &crate::index::filter::SearchFilter,
    projects: &[String],
) -> AnswerKey {
    AnswerKey {
        segments,
        filter: access.cache_key(),
        request: serde_json::to_string(projects).unwrap_or_default(),
    }
}

/// The answer [`readable_versions`] kept for these arguments, if it still holds — no index
/// search, no storage call: memory only, so callable on the async runtime before a hop to
/// the blocking pool that a kept answer makes needless.
#[must_use]
pub fn kept_readable_versions(
    index: &SearchIndex,
    scope: &AccessScope,
    projects: &[String],
    now: chrono::DateTime<chrono::Utc>,
) -> Option<HashMap<String, ReadableVersions>> {
    let key = versions_key(index.current_segments(), &access_filter(scope), projects);
    let seconds = u64::try_from(now.timestamp()).unwrap_or(0);
    index.versions_cache().get(&key, seconds)
}

/// [`readable_versions`] on `searcher`, of every project when `projects` is `None`.
pub(super) fn readable_versions_in(
    index: &SearchIndex,
    searcher: &Searcher,
    scope: &AccessScope,
    projects: Option<&[String]>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<HashMap<String, ReadableVersions>, SearchError> {
    let access = access_filter(scope);
    readable_versions_with(index, searcher, scope, &access, projects, now).map(|(answer, _)| answer)
}

/// Whether an answer may be kept, and until when (see [`readable_versions_with`]).
type Keep = Option<Option<u64>>;

/// [`readable_versions_in`] under `access` (`scope`'s filter), with whether the answer may be
/// kept: `None` when documents had to be re-checked with the caller's whole scope, else
/// `Some` of the first grant expiry among the documents read (`Some(None)`: none expires).
fn readable_versions_with(
    index: &SearchIndex,
    searcher: &Searcher,
    scope: &AccessScope,
    access: &crate::index::filter::SearchFilter,
    projects: Option<&[String]>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(HashMap<String, ReadableVersions>, Keep), SearchError> {
    let fields = index.fields();
    let restricted = !access.is_unrestricted();
    let collector = VersionsCollector {
        now: restricted.then(|| u64::try_from(now.timestamp()).unwrap_or(0)),
        names: index.ord_names(),
        columns: index.columns(),
        live: searcher
            .segment_readers()
            .iter()
            .map(tantivy::SegmentReader::segment_id)
            .collect(),
    };
    let fruit = match projects {
        Some(projects) => versions_of_projects(index, searcher, access, projects, &collector)?,
        None => {
            let mut clauses: Vec<(Occur, Box<dyn Query>)> =
                vec![(Occur::Must, term_query(fields.kind, "file"))];
            if let Some(allow) = allow_clause(index, access) {
                clauses.push((Occur::Must, allow));
            }
            searcher.search(&BooleanQuery::new(clauses), &collector)?
        }
    };
    let mut seen = fruit.seen;
    let keep = fruit.suspects.is_empty().then_some(fruit.next_expiry);
    for (address, found) in fruit.suspects {
        if scope.matches(&index.stored_document(searcher, address)?.access, now) {
            seen.push(found);
        }
    }
    let mut answer: HashMap<String, (HashSet<String>, u64, Option<String>)> = HashMap::new();
    for (project, version, revision) in seen {
        let entry = answer.entry(project).or_default();
        // Only completed versions have a revision (> 0); open versions are never `latest`.
        if revision > 0 && (revision > entry.1 || entry.2.is_none()) {
            entry.1 = revision;
            entry.2 = Some(version.clone());
        }
        entry.0.insert(version);
    }
    let answer = answer
        .into_iter()
        .map(|(project, (versions, _, latest))| {
            let mut versions: Vec<String> = versions.into_iter().collect();
            versions.sort();
            (project, ReadableVersions { versions, latest })
        })
        .collect();
    Ok((answer, keep))
}

/// What [`VersionsCollector`] gathers from the file documents of `projects` that `access`
/// admits, found without a query: in each segment, each project's postings walked block by
/// block, a document kept when alive and in the caller's cached allowed set. (A query would
/// build a term weight, a term scorer and a union of 50 of them per segment for a page of
/// `GET /projects`.) The project's record shares its `project_id` term but has no version,
/// so the collector, which keys on the version, skips it as the `kind:file` clause did.
fn versions_of_projects(
    index: &SearchIndex,
    searcher: &Searcher,
    access: &crate::index::filter::SearchFilter,
    projects: &[String],
    collector: &VersionsCollector,
) -> Result<VersionsFruit, SearchError> {
    use tantivy::collector::{Collector as _, SegmentCollector as _};
    let allow = allow_query(index, access);
    let mut terms: Vec<Term> = projects
        .iter()
        .map(|project| Term::from_field_text(index.fields().project_id, project))
        .collect();
    terms.sort();
    terms.dedup();
    let mut fruits = Vec::with_capacity(searcher.segment_readers().len());
    for (ordinal, reader) in searcher.segment_readers().iter().enumerate() {
        let segment = u32::try_from(ordinal).unwrap_or(u32::MAX);
        let mut child = collector.for_segment(segment, reader)?;
        let allowed = match &allow {
            Some(allow) => Some(allow.allow_set(reader)?),
            None => None,
        };
        for term in &terms {
            walk_admitted(reader, term, allowed.as_deref(), |doc| {
                child.collect(doc, 0.0)
            })?;
        }
        fruits.push(child.harvest());
    }
    Ok(collector.merge_fruits(fruits)?)
}

/// A (project, version) pair of dictionary ordinals of one segment.
type OrdPair = (u64, u64);

/// Collects the distinct (project, version, revision) of the matching documents from fast
/// columns; documents whose grants may have expired are set aside for a re-check.
struct VersionsCollector {
    /// Unix seconds of the request; `None` when nothing needs a re-check (admins).
    now: Option<u64>,
    /// The index's kept ordinal strings.
    names: std::sync::Arc<crate::index::ord_names::OrdNames>,
    /// The index's opened columns.
    columns: std::sync::Arc<crate::index::columns::SegmentColumns>,
    /// The searcher's segments.
    live: Vec<tantivy::index::SegmentId>,
}

struct VersionsSegmentCollector {
    segment: tantivy::SegmentOrdinal,
    segment_id: tantivy::index::SegmentId,
    names: std::sync::Arc<crate::index::ord_names::OrdNames>,
    project: tantivy::columnar::StrColumn,
    version: tantivy::columnar::StrColumn,
    revision: tantivy::columnar::Column<u64>,
    expiry: Option<tantivy::columnar::Column<u64>>,
    now: Option<u64>,
    /// (project ord, version ord) → revision.
    seen: HashMap<(u64, u64), u64>,
    suspects: Vec<tantivy::DocId>,
    /// The first grant expiry (unix seconds) among the documents seen.
    next_expiry: Option<u64>,
}

/// (project, version, revision) found, suspects with what they would add, and the first
/// grant expiry among the documents found (after it, the answer may change).
#[derive(Default)]
struct VersionsFruit {
    seen: Vec<(String, String, u64)>,
    suspects: Vec<(DocAddress, (String, String, u64))>,
    next_expiry: Option<u64>,
}

impl tantivy::collector::Collector for VersionsCollector {
    type Fruit = VersionsFruit;
    type Child = VersionsSegmentCollector;

    fn for_segment(
        &self,
        segment: tantivy::SegmentOrdinal,
        reader: &tantivy::SegmentReader,
    ) -> tantivy::Result<Self::Child> {
        let columns = self.columns.versions(reader, &self.live)?;
        Ok(VersionsSegmentCollector {
            segment,
            segment_id: reader.segment_id(),
            names: self.names.clone(),
            project: columns.project.clone(),
            version: columns.version.clone(),
            revision: columns.revision.clone(),
            expiry: self.now.map(|_| columns.expiry.clone()),
            now: self.now,
            seen: HashMap::new(),
            suspects: Vec::new(),
            next_expiry: None,
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<VersionsFruit>) -> tantivy::Result<VersionsFruit> {
        let mut merged = VersionsFruit::default();
        for fruit in fruits {
            merged.seen.extend(fruit.seen);
            merged.suspects.extend(fruit.suspects);
            merged.next_expiry = super::facets::earliest(merged.next_expiry, fruit.next_expiry);
        }
        Ok(merged)
    }
}

impl VersionsSegmentCollector {
    fn key(&self, doc: tantivy::DocId) -> Option<((u64, u64), u64)> {
        let project = self.project.term_ords(doc).next()?;
        let version = self.version.term_ords(doc).next()?;
        Some(((project, version), self.revision.first(doc).unwrap_or(0)))
    }
}

impl tantivy::collector::SegmentCollector for VersionsSegmentCollector {
    type Fruit = VersionsFruit;

    fn collect(&mut self, doc: tantivy::DocId, _score: tantivy::Score) {
        if let (Some(now), Some(expiry)) = (self.now, &self.expiry)
            && let Some(at) = expiry.first(doc).filter(|at| *at != 0)
        {
            if at <= now {
                self.suspects.push(doc);
                return;
            }
            self.next_expiry = super::facets::earliest(self.next_expiry, Some(at));
        }
        if let Some((key, revision)) = self.key(doc) {
            let entry = self.seen.entry(key).or_insert(revision);
            *entry = (*entry).max(revision);
        }
    }

    fn harvest(self) -> VersionsFruit {
        let suspects: Vec<(tantivy::DocId, (OrdPair, u64))> = self
            .suspects
            .iter()
            .filter_map(|&doc| Some((doc, self.key(doc)?)))
            .collect();
        let keys = self
            .seen
            .keys()
            .chain(suspects.iter().map(|(_, (key, _))| key));
        let segment = self.segment_id;
        let projects = self.names.names(
            segment,
            "project_id",
            &self.project,
            keys.clone().map(|&(project, _)| project),
        );
        let versions = self.names.names(
            segment,
            "version",
            &self.version,
            keys.map(|&(_, version)| version),
        );
        let names = |(project, version): (u64, u64)| {
            Some((
                projects.get(&project)?.to_string(),
                versions.get(&version)?.to_string(),
            ))
        };
        let seen = self
            .seen
            .iter()
            .filter_map(|(&key, &revision)| {
                let (project, version) = names(key)?;
                Some((project, version, revision))
            })
            .collect();
        let suspects = suspects
            .into_iter()
            .filter_map(|(doc, (key, revision))| {
                let (project, version) = names(key)?;
                Some((
                    DocAddress::new(self.segment, doc),
                    (project, version, revision),
                ))
            })
            .collect();
        VersionsFruit {
            seen,
            suspects,
            next_expiry: self.next_expiry,
        }
    }
}
