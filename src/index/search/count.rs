//! The total of a relevance-ordered search: the matches of the user's query that the filter
//! admits, counted up to a cap.

use tantivy::Searcher;
use tantivy::query::{BooleanQuery, Occur};

use super::SearchError;
use crate::index::filter::AllowQuery;

/// How many documents `weight` (unscored) and `filter` both hold, counting up to `cap`: the
/// count, and whether it is exact.
pub(super) fn count_admitted(
    searcher: &Searcher,
    weight: &dyn tantivy::query::Weight,
    cap: usize,
) -> Result<(usize, bool), SearchError> {
    let mut count = 0;
    for reader in searcher.segment_readers() {
        let mut scorer = weight.scorer(reader, 1.0)?;
        if count_alive(scorer.as_mut(), reader.alive_bitset(), &mut count, cap) {
            return Ok((count, false));
        }
    }
    Ok((count, true))
}

/// Adds to `count` the documents of `docs` that are alive, up to `cap`; whether it got there.
fn count_alive(
    docs: &mut dyn tantivy::DocSet,
    alive: Option<&tantivy::fastfield::AliveBitSet>,
    count: &mut usize,
    cap: usize,
) -> bool {
    let mut doc = docs.doc();
    while doc != tantivy::TERMINATED {
        if !alive.is_some_and(|alive| alive.is_deleted(doc)) {
            *count += 1;
            if *count >= cap {
                return true;
            }
        }
        doc = docs.advance();
    }
    false
}

/// The access filter's clause when `filter` is that alone (the usual search: the caller's
/// allowed set with the kind folded in, `AllowQuery::and_term`), else `None`.
pub(super) fn allowed_set_only(filter: Option<&BooleanQuery>) -> Option<&AllowQuery> {
    match filter?.clauses() {
        [(Occur::Must, clause)] => clause.downcast_ref::<AllowQuery>(),
        _ => None,
    }
}

/// An allowed set at most this many times smaller than a segment's matches is checked per
/// match; a sparser one leads the intersection instead (it seeks the matches).
const SET_CHECK_RATIO: u64 = 8;

/// [`count_admitted`] when the filter is one allowed set: a segment's matches of `matches`
/// (the user's query, unscored) are walked block by block and each checked against the
/// cached set — no seeks — unless the set is much smaller than the matches, where the
/// intersection of `both` (query and filter) is cheaper.
pub(super) fn count_in_set(
    searcher: &Searcher,
    matches: &dyn tantivy::query::Weight,
    allow: &AllowQuery,
    both: &dyn tantivy::query::Weight,
    cap: usize,
) -> Result<(usize, bool), SearchError> {
    use tantivy::DocSet as _;
    let mut count = 0;
    let mut buffer = [0; tantivy::COLLECT_BLOCK_BUFFER_LEN];
    for reader in searcher.segment_readers() {
        let allowed = allow.allow_set(reader)?;
        let mut scorer = matches.scorer(reader, 1.0)?;
        let alive = reader.alive_bitset();
        let sparse =
            (allowed.len() as u64).saturating_mul(SET_CHECK_RATIO) < u64::from(scorer.size_hint());
        if sparse {
            let mut both = both.scorer(reader, 1.0)?;
            if count_alive(both.as_mut(), alive, &mut count, cap) {
                return Ok((count, false));
            }
            continue;
        }
        loop {
            let filled = scorer.fill_buffer(&mut buffer);
            for &doc in &buffer[..filled] {
                if allowed.contains(doc) && !alive.is_some_and(|alive| alive.is_deleted(doc)) {
                    count += 1;
                    if count >= cap {
                        return Ok((count, false));
                    }
                }
            }
            if filled < buffer.len() {
                break;
            }
        }
    }
    Ok((count, true))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use tantivy::query::{EnableScoring, Query as _};

    use super::super::first::tests::{document, empty_index};
    use super::super::{
        KindFilter, SearchRequest, access_filter, build_query, parse_user_query_with,
    };
    use super::*;
    use crate::index::writer::WriteOp;
    use crate::permissions::AccessScope;

    /// Counting a query's matches against the allowed set alone (checked per match, or the
    /// intersection when the set is sparse) gives what the intersection of the query and the
    /// filter gives: several segments, replaced documents, dense, sparse and empty scopes,
    /// broad and selective queries, exact and capped counts.
    #[tokio::test]
    async fn counting_in_the_allowed_set_counts_as_the_intersection() {
        let (_directory, index) = empty_index();
        let fields = *index.fields();
        for round in 0..3_usize {
            let mut ops = Vec::new();
            for project in 0..40_usize {
                if round == 1 && project % 3 != 0 {
                    continue;
                }
                let name = format!("p{project:02}");
                let reader = format!("r{}", (project + round) % 10);
                // The second round replaces the first's documents of its projects.
                let version = format!("v{}", if round == 1 { 1 } else { round + 1 });
                let files: Vec<_> = (0..1 + project % 5)
                    .map(|file| {
                        document(
                            &name,
                            Some(&version),
                            Some(&format!("f{file}.json")),
                            &reader,
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
        assert!(
            searcher
                .segment_readers()
                .iter()
                .any(|reader| reader.num_deleted_docs() > 0),
            "no replaced document"
        );
        let unscored = EnableScoring::disabled_from_searcher(&searcher);
        let scope = |tokens: &[&str]| AccessScope::Principals {
            tokens: std::sync::Arc::new(
                tokens
                    .iter()
                    .map(|t| (*t).to_owned())
                    .collect::<BTreeSet<_>>(),
            ),
        };
        let mut compared = 0;
        for scope in [
            scope(&["everyone"]),
            scope(&["r3"]),
            scope(&["r3", "r4"]),
            scope(&["nobody"]),
        ] {
            for query in ["title", "f4", "title:words", "p07"] {
                let request = SearchRequest {
                    query: query.to_owned(),
                    kind: KindFilter::File,
                    ..SearchRequest::default()
                };
                let user = parse_user_query_with(&index, query, false).unwrap();
                let mut clauses =
                    build_query(&index, &access_filter(&scope), &request, user.box_clone());
                clauses.remove(0);
                let filter = BooleanQuery::new(clauses);
                let allow = allowed_set_only(Some(&filter)).expect("the allowed set alone");
                let both = BooleanQuery::new(vec![
                    (Occur::Must, user.box_clone()),
                    (Occur::Must, Box::new(filter.clone())),
                ])
                .weight(unscored)
                .unwrap();
                let matches = user.weight(unscored).unwrap();
                for cap in [usize::MAX, 7] {
                    let expected = count_admitted(&searcher, both.as_ref(), cap).unwrap();
                    let counted =
                        count_in_set(&searcher, matches.as_ref(), allow, both.as_ref(), cap)
                            .unwrap();
                    assert_eq!(counted, expected, "{query} {cap}");
                    compared += 1;
                }
            }
        }
        assert_eq!(compared, 32);
    }
}
