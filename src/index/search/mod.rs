//! Authorized search: the user's query (tantivy query-parser syntax) parsed into a query
//! object and ANDed with the caller's access filter.
//!
//! [`search`] is the only way to run a query against the index, and its access argument is
//! required, so a route cannot forget the filter. Queries that do not parse, name internal
//! fields, or nest absurdly are refused with [`SearchError::InvalidQuery`] before tantivy sees
//! them.

use serde_json::Value;
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{BooleanQuery, Occur, Query};
use tantivy::schema::Value as _;
use tantivy::{DocAddress, Order, Searcher, TantivyDocument, Term};

use super::SearchIndex;
use super::filter::SearchFilter;
use crate::permissions::{AccessScope, DocumentAccess};

mod count;
mod facets;
mod first;
mod free_text;
mod listings;
mod query;
mod ranking;

pub use facets::{Facets, MAX_FACET_FIELDS, aggregate, facets};
use first::{allow_query, by_score, first_matches, first_of_kind, kind_only, walk_admitted};
use listings::readable_versions_in;
pub use listings::{
    ReadableVersions, get_by_id, kept_readable_versions, project_versions, projects_in_namespace,
    readable_versions,
};
use query::{any_term, term_query};
pub use query::{parse_user_query, parse_user_query_with};
pub use ranking::{RESCORE_WINDOW, TOTAL_EXACT_UP_TO};
use ranking::{prunes, ranked_page};

/// Longest query text accepted.
pub const MAX_QUERY_BYTES: usize = 8 * 1024;
/// Deepest parenthesis nesting accepted (the grammar is recursive).
pub const MAX_QUERY_DEPTH: usize = 32;
/// Largest page.
pub const MAX_PAGE_SIZE: usize = 500;
/// Deepest offset a page may start at (use narrower queries beyond).
pub const MAX_OFFSET: usize = 100_000;

/// Fields a query may not name: the access data is not searchable.
const FORBIDDEN_FIELDS: &[&str] = &["readers", "source"];

/// Errors of a search.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The query is not acceptable (`400 invalid_query`).
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// A parameter other than the query is not acceptable (`400 invalid_parameter`).
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// The index failed.
    #[error("search failed: {0}")]
    Index(tantivy::TantivyError),
}

impl From<tantivy::TantivyError> for SearchError {
    /// What the index refuses to run for a query it parsed (a range over a metadata key,
    /// which has no columnar copy, say) is the query's fault: `400`, not `500`.
    fn from(error: tantivy::TantivyError) -> Self {
        match error {
            tantivy::TantivyError::SchemaError(why)
            | tantivy::TantivyError::InvalidArgument(why) => {
                Self::InvalidQuery(format!("this query cannot run: {why}"))
            }
            tantivy::TantivyError::FieldNotFound(field) => {
                Self::InvalidQuery(format!("no field {field:?}"))
            }
            other => Self::Index(other),
        }
    }
}

/// Which documents a search returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KindFilter {
    /// File documents (metadata documents and automatic file documents) — the default.
    #[default]
    File,
    /// Project records.
    Project,
    /// Both.
    All,
}

/// How a sortable field's fast column is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKind {
    /// A string column.
    Text,
    /// An unsigned integer column.
    Number,
    /// A date column.
    Date,
}

/// A sort on one sortable field (declared `sortable` in `index-schema/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    /// Index field name.
    pub field: String,
    /// How its column is read.
    pub kind: SortKind,
    /// Descending when the API parameter started with `-`.
    pub descending: bool,
}

/// `name` with the `_extra.` prefix the API names of index fields carry.
fn qualified(name: &str) -> String {
    if name.starts_with("_extra.") {
        name.to_owned()
    } else {
        format!("_extra.{name}")
    }
}

impl SortKey {
    /// Parses `[-]_extra.<field>` (the `_extra.` prefix is optional) against the schema's
    /// sortable fields.
    pub fn parse(schema: &super::IndexSchema, text: &str) -> Result<Self, SearchError> {
        let (descending, name) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let wanted = qualified(name);
        schema
            .sortable()
            .find(|(api, _, _)| *api == wanted)
            .map(|(_, field, field_type)| Self {
                field: field.to_owned(),
                kind: match field_type {
                    super::schema::FieldType::Date => SortKind::Date,
                    super::schema::FieldType::String | super::schema::FieldType::Text => {
                        SortKind::Text
                    }
                    _ => SortKind::Number,
                },
                descending,
            })
            .ok_or_else(|| {
                SearchError::InvalidParameter(format!(
                    "cannot sort on {name:?}; sortable: {}",
                    schema
                        .sortable()
                        .map(|(api, _, _)| api)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    }
}

/// One search.
#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    /// Query text; empty or `*` matches everything.
    pub query: String,
    /// Which kinds of documents.
    pub kind: KindFilter,
    /// Sort; by relevance when absent.
    pub sort: Option<SortKey>,
    /// Page size (1..=500).
    pub size: usize,
    /// Offset of the page.
    pub offset: usize,
    /// Keep only each project's latest version readable under the same access filter.
    pub latest: bool,
    /// Restrict to one project (ArtifactDB's per-project listings).
    pub project: Option<String>,
    /// Restrict to one version of that project.
    pub version: Option<String>,
    /// Treat the query's last word as a prefix (`ber` finds `bert`): what a search box needs.
    pub prefix: bool,
}

/// One hit: the stored document as parsed, shared with the index's document cache (never
/// copied: an answer writes it out shaped, see `api::hits::Presented`).
#[derive(Debug, Clone)]
pub struct Hit {
    /// The stored document.
    pub document: std::sync::Arc<crate::index::doc_cache::StoredDocument>,
}

impl Hit {
    /// The stored source (with `_extra`, including `_extra.permissions`).
    #[must_use]
    pub fn source(&self) -> &Value {
        &self.document.source
    }

    /// Its access data.
    #[must_use]
    pub fn access(&self) -> &DocumentAccess {
        &self.document.access
    }
}

/// One page of hits.
#[derive(Debug, Clone)]
pub struct SearchPage {
    /// The hits of the page, in order.
    pub hits: Vec<Hit>,
    /// How many documents match in all (under the access filter); a lower bound when
    /// `total_exact` is false.
    pub total: usize,
    /// Whether `total` is exact: a relevance-ordered free-text search stops counting at
    /// [`TOTAL_EXACT_UP_TO`] matches (past the requested page), as Elasticsearch's
    /// `track_total_hits` does.
    pub total_exact: bool,
}

/// The access clause of `access`, `None` for the unrestricted filter (admins).
fn allow_clause(index: &SearchIndex, access: &SearchFilter) -> Option<Box<dyn Query>> {
    allow_query(index, access).map(|allow| Box::new(allow) as Box<dyn Query>)
}

/// A stored JSON field of a document (`source`, `access`), `None` when absent or unreadable.
fn stored_json<T: serde::de::DeserializeOwned>(
    document: &TantivyDocument,
    field: tantivy::schema::Field,
) -> Option<T> {
    document
        .get_first(field)
        .and_then(|value| value.as_bytes())
        .and_then(|bytes| serde_json::from_slice(bytes).ok())
}

/// Builds the full query: user query ∧ access ∧ kind ∧ scope restrictions.
pub fn build_query(
    index: &SearchIndex,
    access: &SearchFilter,
    request: &SearchRequest,
    user_query: Box<dyn Query>,
) -> Vec<(Occur, Box<dyn Query>)> {
    let fields = index.fields();
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, user_query)];
    let kind = match request.kind {
        KindFilter::File => Some("file"),
        KindFilter::Project => Some("project"),
        KindFilter::All => None,
    };
    // The kind folded into the access filter's cached set when there is one (one bitset per
    // segment to seek), else a term clause.
    match (allow_query(index, access), kind) {
        (Some(allow), Some(kind)) => clauses.push((
            Occur::Must,
            Box::new(allow.and_term(Term::from_field_text(fields.kind, kind))),
        )),
        (Some(allow), None) => clauses.push((Occur::Must, Box::new(allow))),
        (None, Some(kind)) => clauses.push((Occur::Must, term_query(fields.kind, kind))),
        (None, None) => {}
    }
    if let Some(project) = &request.project {
        clauses.push((Occur::Must, term_query(fields.project_id, project)));
        if let Some(version) = &request.version {
            clauses.push((
                Occur::Must,
                term_query(fields.version_key, &format!("{project}/{version}")),
            ));
        }
    }
    clauses
}

/// The latest readable version of every project under `scope` at `now` (of `project` only,
/// when given): version keys `<project>/<version>` of the highest `numerical_revision` per
/// project, read from `searcher` (the snapshot the caller searches). The same pass as
/// [`readable_versions`], so a version whose grant just expired never hides the older
/// version the caller can still read.
pub fn latest_versions(
    index: &SearchIndex,
    searcher: &Searcher,
    scope: &AccessScope,
    project: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<String>, SearchError> {
    let projects = project.map(|project| vec![project.to_owned()]);
    Ok(
        readable_versions_in(index, searcher, scope, projects.as_deref(), now)?
            .into_iter()
            .filter_map(|(project, found)| {
                found.latest.map(|version| format!("{project}/{version}"))
            })
            .collect(),
    )
}

/// The index filter of a caller's scope (the one access-filter type, see
/// [`SearchFilter`]).
#[must_use]
pub fn access_filter(scope: &AccessScope) -> SearchFilter {
    scope.filter()
}

/// Runs an authorized search: the only way to query the index. `scope` is required
/// (`AccessScope::Unrestricted` is an explicit choice for admins). Every hit is re-checked
/// against its stored access data at `now`, so a grant that expired since the document was
/// indexed never returns it.
pub fn search(
    index: &SearchIndex,
    scope: &AccessScope,
    request: &SearchRequest,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<SearchPage, SearchError> {
    let access = &access_filter(scope);
    if request.size == 0 || request.size > MAX_PAGE_SIZE {
        return Err(SearchError::InvalidParameter(format!(
            "size must be between 1 and {MAX_PAGE_SIZE}"
        )));
    }
    if request.offset > MAX_OFFSET {
        return Err(SearchError::InvalidParameter(format!(
            "cannot page beyond {MAX_OFFSET} results; narrow the query"
        )));
    }
    let user_query = parse_user_query_with(index, &request.query, request.prefix)?;
    let matches_all = user_query.is::<tantivy::query::AllQuery>();
    let searcher = index.searcher();
    let mut clauses = build_query(index, access, request, user_query);
    if request.latest {
        let latest = latest_versions(index, &searcher, scope, request.project.as_deref(), now)?;
        let terms = latest
            .iter()
            .map(|key| Term::from_field_text(index.fields().version_key, key));
        clauses.push((Occur::Must, any_term(terms.collect())));
    }
    // Relevance order over the whole index (no project restriction, a real query): the best
    // candidates with pruning, the access filter and the other restrictions applied to each
    // candidate, and a count that stops at `TOTAL_EXACT_UP_TO`. Restricted to one project, or
    // for `*`, tantivy's intersection (led by the smaller side) is cheaper.
    let pruned = request.sort.is_none() && request.project.is_none() && prunes(&request.query);
    if pruned {
        let user_query = clauses.remove(0).1;
        let filter = (!clauses.is_empty()).then(|| BooleanQuery::new(clauses));
        let (addresses, total, exact) = ranked_page(
            index,
            &searcher,
            request,
            user_query.as_ref(),
            filter.as_ref(),
        )?;
        let mut page = page_of(index, &searcher, scope, addresses, total, now)?;
        page.total_exact = exact;
        return Ok(page);
    }
    let query = BooleanQuery::new(clauses);
    let top = TopDocs::with_limit(request.size).and_offset(request.offset);
    let (addresses, total): (Vec<DocAddress>, usize) = match &request.sort {
        // Everything the filters admit, unsorted (`GET /projects`, a version's files): every
        // match scores the same, so the relevance order is the index order — taken and
        // counted without scoring.
        None if matches_all => match kind_only(request) {
            Some(kind) => first_of_kind(index, &searcher, access, kind, request)?,
            None => first_matches(&searcher, &query, request)?,
        },
        None => by_score(&searcher, &query, request)?,
        Some(sort) => {
            let order = if sort.descending {
                Order::Desc
            } else {
                Order::Asc
            };
            let field = sort.field.as_str();
            let docs: Vec<DocAddress>;
            let total;
            match sort.kind {
                SortKind::Date => {
                    let (found, count) = searcher.search(
                        &query,
                        &(
                            top.order_by_fast_field::<tantivy::DateTime>(field, order),
                            Count,
                        ),
                    )?;
                    docs = found.into_iter().map(|(_, address)| address).collect();
                    total = count;
                }
                SortKind::Number => {
                    let (found, count) = searcher.search(
                        &query,
                        &(top.order_by_fast_field::<u64>(field, order), Count),
                    )?;
                    docs = found.into_iter().map(|(_, address)| address).collect();
                    total = count;
                }
                SortKind::Text => {
                    let (found, count) = searcher.search(
                        &query,
                        &(top.order_by_string_fast_field(field, order), Count),
                    )?;
                    docs = found.into_iter().map(|(_, address)| address).collect();
                    total = count;
                }
            }
            (docs, total)
        }
    };
    page_of(index, &searcher, scope, addresses, total, now)
}

/// The hits of a page: the stored documents of `addresses`, each re-checked against its stored
/// access data at `now` (a document indexed before a grant expired is left out of the page and
/// of `total`; the scheduled re-index removes it soon).
fn page_of(
    index: &SearchIndex,
    searcher: &Searcher,
    scope: &AccessScope,
    addresses: Vec<DocAddress>,
    mut total: usize,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<SearchPage, SearchError> {
    let mut hits = Vec::with_capacity(addresses.len());
    for address in addresses {
        let stored = index.stored_document(searcher, address)?;
        if !scope.matches(&stored.access, now) {
            total = total.saturating_sub(1);
            continue;
        }
        hits.push(Hit { document: stored });
    }
    Ok(SearchPage {
        hits,
        total,
        total_exact: true,
    })
}
