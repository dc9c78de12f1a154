//! Facets and aggregations: term counts over what the caller may read.

use std::collections::HashMap;

use tantivy::DocAddress;
use tantivy::TantivyDocument;
use tantivy::query::BooleanQuery;

use super::query::parse_user_query_with;
use super::{SearchError, SearchRequest, access_filter, build_query, qualified, stored_json};
use crate::index::SearchIndex;
use crate::index::answer_cache::AnswerKey;
use crate::permissions::AccessScope;
use crate::permissions::DocumentAccess;

/// Term counts per field: (API name, [(term, documents)]), most frequent first.
pub type Facets = Vec<(String, Vec<(String, u64)>)>;

/// Most fields one aggregation counts at once.
pub const MAX_FACET_FIELDS: usize = 8;

/// Counts documents per term of several fast string fields at once; documents whose reader
/// grants may have expired since they were indexed are set aside, to be re-checked against
/// their stored access data like search hits.
pub(super) struct FacetCounter {
    pub(super) fields: Vec<String>,
    /// Unix seconds of the request; `None` when nothing needs a re-check (admins).
    pub(super) now: Option<u64>,
}

pub(super) struct FacetSegment {
    segment: tantivy::SegmentOrdinal,
    columns: Vec<tantivy::columnar::StrColumn>,
    expiry: Option<tantivy::columnar::Column<u64>>,
    now: Option<u64>,
    counts: Vec<HashMap<u64, u64>>,
    suspects: Vec<tantivy::DocId>,
    /// The first grant expiry after `now` among the counted documents.
    next_expiry: Option<u64>,
}

/// Counts per field (term → documents), and the documents to re-check with their terms.
#[derive(Default)]
pub(super) struct FacetFruit {
    pub(super) counts: Vec<HashMap<String, u64>>,
    pub(super) suspects: Vec<(DocAddress, Vec<Vec<String>>)>,
    /// The first grant expiry after the request's time among the counted documents (unix
    /// seconds).
    pub(super) next_expiry: Option<u64>,
}

impl tantivy::collector::Collector for FacetCounter {
    type Fruit = FacetFruit;
    type Child = FacetSegment;

    fn for_segment(
        &self,
        segment: tantivy::SegmentOrdinal,
        reader: &tantivy::SegmentReader,
    ) -> tantivy::Result<Self::Child> {
        let mut columns = Vec::with_capacity(self.fields.len());
        for field in &self.fields {
            columns.push(reader.fast_fields().str(field)?.ok_or_else(|| {
                tantivy::TantivyError::SchemaError(format!("{field} is not a fast field"))
            })?);
        }
        let expiry = match self.now {
            Some(_) => Some(reader.fast_fields().u64("grant_expiry")?),
            None => None,
        };
        Ok(FacetSegment {
            segment,
            counts: vec![HashMap::new(); columns.len()],
            columns,
            expiry,
            now: self.now,
            suspects: Vec::new(),
            next_expiry: None,
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<FacetFruit>) -> tantivy::Result<FacetFruit> {
        let mut merged = FacetFruit {
            counts: vec![HashMap::new(); self.fields.len()],
            suspects: Vec::new(),
            next_expiry: None,
        };
        for fruit in fruits {
            for (into, counts) in merged.counts.iter_mut().zip(fruit.counts) {
                for (term, count) in counts {
                    *into.entry(term).or_insert(0) += count;
                }
            }
            merged.suspects.extend(fruit.suspects);
            merged.next_expiry = earliest(merged.next_expiry, fruit.next_expiry);
        }
        Ok(merged)
    }
}

impl tantivy::collector::SegmentCollector for FacetSegment {
    type Fruit = FacetFruit;

    fn collect(&mut self, doc: tantivy::DocId, _score: tantivy::Score) {
        if let (Some(now), Some(expiry)) = (self.now, &self.expiry)
            && let Some(at) = expiry.first(doc).filter(|at| *at != 0)
        {
            if at <= now {
                self.suspects.push(doc);
                return;
            }
            self.next_expiry = earliest(self.next_expiry, Some(at));
        }
        for (column, counts) in self.columns.iter().zip(self.counts.iter_mut()) {
            for ord in column.term_ords(doc) {
                *counts.entry(ord).or_insert(0) += 1;
            }
        }
    }

    fn harvest(self) -> FacetFruit {
        let mut buffer = String::new();
        let counts = self
            .columns
            .iter()
            .zip(self.counts)
            .map(|(column, counts)| {
                counts
                    .into_iter()
                    .filter_map(|(ord, count)| {
                        buffer.clear();
                        column
                            .ord_to_str(ord, &mut buffer)
                            .ok()
                            .map(|_| (buffer.clone(), count))
                    })
                    .collect()
            })
            .collect();
        let suspects = self
            .suspects
            .iter()
            .map(|doc| {
                let terms = self
                    .columns
                    .iter()
                    .map(|column| {
                        column
                            .term_ords(*doc)
                            .filter_map(|ord| {
                                let mut text = String::new();
                                column.ord_to_str(ord, &mut text).ok().map(|_| text)
                            })
                            .collect()
                    })
                    .collect();
                (DocAddress::new(self.segment, *doc), terms)
            })
            .collect();
        FacetFruit {
            counts,
            suspects,
            next_expiry: self.next_expiry,
        }
    }
}

/// The earlier of two optional times.
pub(super) fn earliest(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Term counts of several aggregatable fields (API names, declared in `index-schema/`) over
/// the documents `request` finds under `scope`: at most `size` terms per field, most frequent
/// first. Documents whose grants may have expired are re-checked like search hits, so a count
/// never includes a document the caller could not find.
pub fn facets(
    index: &SearchIndex,
    scope: &AccessScope,
    request: &SearchRequest,
    names: &[String],
    size: usize,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Facets, SearchError> {
    if names.is_empty() || names.len() > MAX_FACET_FIELDS {
        return Err(SearchError::InvalidParameter(format!(
            "between 1 and {MAX_FACET_FIELDS} fields"
        )));
    }
    let schema = index.schema();
    let mut fields = Vec::with_capacity(names.len());
    for name in names {
        let wanted = qualified(name);
        let field = schema
            .aggregatable()
            .find(|(api, _)| *api == wanted)
            .map(|(_, field)| field.to_owned())
            .ok_or_else(|| {
                SearchError::InvalidParameter(format!(
                    "cannot aggregate on {name:?}; possible: {}",
                    schema
                        .aggregatable()
                        .map(|(api, _)| api)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
        fields.push(field);
    }
    let access = access_filter(scope);
    let user_query = parse_user_query_with(index, &request.query, request.prefix)?;
    let clauses = build_query(index, &access, request, user_query);
    let searcher = index.searcher();
    let restricted = !access.is_unrestricted();
    let seconds = u64::try_from(now.timestamp()).unwrap_or(0);
    let key = AnswerKey {
        segments: AnswerKey::segments_of(&searcher),
        filter: access.cache_key(),
        request: serde_json::json!([
            request.query,
            request.prefix,
            format!("{:?}", request.kind),
            request.project,
            request.version,
            fields,
            size,
        ])
        .to_string(),
    };
    if let Some(kept) = index.facet_cache().get(&key, seconds) {
        return Ok(kept);
    }
    let fruit = searcher.search(
        &BooleanQuery::new(clauses),
        &FacetCounter {
            fields,
            now: restricted.then_some(seconds),
        },
    )?;
    // Kept unless documents had to be re-checked with the caller's whole scope.
    let keep = fruit.suspects.is_empty();
    let next_expiry = fruit.next_expiry;
    let mut counts = fruit.counts;
    let stored = index.fields().access;
    for (address, terms) in fruit.suspects {
        let document: TantivyDocument = searcher.doc(address)?;
        let access: DocumentAccess = stored_json(&document, stored).unwrap_or_default();
        if !scope.matches(&access, now) {
            continue;
        }
        for (into, terms) in counts.iter_mut().zip(terms) {
            for term in terms {
                *into.entry(term).or_insert(0) += 1;
            }
        }
    }
    let facets: Facets = names
        .iter()
        .zip(counts)
        .map(|(name, counts)| {
            let mut counts: Vec<(String, u64)> = counts.into_iter().collect();
            counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            counts.truncate(size);
            (qualified(name), counts)
        })
        .collect();
    if keep {
        index.facet_cache().insert(key, facets.clone(), next_expiry);
    }
    Ok(facets)
}

/// Term counts of one aggregatable field over what `query` finds among files (ArtifactDB's
/// `/aggregate`).
pub fn aggregate(
    index: &SearchIndex,
    scope: &AccessScope,
    query: &str,
    field: &str,
    size: usize,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<(String, u64)>, SearchError> {
    let request = SearchRequest {
        query: query.to_owned(),
        size: 1,
        ..SearchRequest::default()
    };
    let mut facets = facets(index, scope, &request, &[field.to_owned()], size, now)?;
    Ok(facets.pop().map(|(_, counts)| counts).unwrap_or_default())
}
