//! Ranked pages: the best admitted candidates found with the access filter inside the
//! scorers, counted, rescored within the window, and sorted with their ties broken.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use tantivy::DocAddress;
use tantivy::Searcher;
use tantivy::TantivyDocument;
use tantivy::query::BooleanQuery;
use tantivy::query::Occur;
use tantivy::query::Query;
use tantivy::query_grammar::Delimiter;
use tantivy::query_grammar::UserInputAst;
use tantivy::query_grammar::UserInputLeaf;

use super::count::{allowed_set_only, count_admitted, count_in_set};
use super::free_text::{FreeTextRanking, Word, free_text_clauses, free_text_words, plain_words};
use super::query::json_key_of;
use super::{SearchError, SearchRequest, stored_json};
use crate::index::SearchIndex;
use crate::index::columns::TIE_FIELDS;

/// How many of the best candidates of plain words are rescored with the full ranking
/// (per-word dis-max, coordination and proximity); past it, pages follow the candidates' order (as Elasticsearch's
/// rescore window does). Pages stay consistent: the window does not depend on the offset.
pub const RESCORE_WINDOW: usize = 100;

/// Matches counted exactly by a relevance-ordered search; past this many (and past the
/// requested page), `total` is a lower bound (as Elasticsearch's `track_total_hits`), so a
/// common word does not cost a pass over every document that contains it.
pub const TOTAL_EXACT_UP_TO: usize = 10_000;

/// A document in the running for a page.
#[derive(Debug, Clone)]
pub(super) struct Candidate {
    pub(super) address: DocAddress,
    pub(super) score: f32,
    /// A file's document (it has a path), not a project record.
    pub(super) is_file: bool,
    /// Stable order among equal scores: project, version, path (read only for candidates
    /// that tie).
    pub(super) tie: Option<[Option<Arc<str>>; 3]>,
}

/// A min-heap entry: the worst candidate on top (lowest score; among equal scores the later
/// document, since the earlier one was seen first and pruning keeps what it saw first).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Ranked {
    score: f32,
    address: DocAddress,
}

impl Eq for Ranked {}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other
            .score
            .total_cmp(&self.score)
            .then_with(|| self.address.cmp(&other.address))
    }
}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Whether `filter` (a docset moving forward only) holds `doc`.
fn admits(filter: Option<&mut Box<dyn tantivy::query::Scorer>>, doc: tantivy::DocId) -> bool {
    use tantivy::DocSet as _;
    let Some(filter) = filter else {
        return true;
    };
    if filter.doc() < doc {
        filter.seek(doc);
    }
    filter.doc() == doc
}

/// The `limit` best documents of `weight` that `filter` admits, best first (equal scores in
/// index order), with pruning: the threshold is the `limit`-th best score *admitted*, so
/// documents the filter refuses never raise it, and block-max WAND skips only blocks that
/// could not enter the page anyway. When `weight` is a sum of term queries (`terms`, its
/// clauses; or `weight` itself a term query), the filter is asked before a document is scored
/// and refused runs are skipped without decoding them ([`crate::index::wand`]); otherwise tantivy's
/// pruning runs and the filter checks each document it hands over.
fn top_admitted(
    searcher: &Searcher,
    weight: &dyn tantivy::query::Weight,
    terms: &[Box<dyn tantivy::query::Weight>],
    filter: Option<&dyn tantivy::query::Weight>,
    limit: usize,
) -> Result<Vec<Ranked>, SearchError> {
    let (ranked, set_aside) = top_admitted_pass(searcher, weight, terms, filter, limit, true)?;
    if set_aside && ranked.len() < limit {
        // The informative words did not fill the window: the others' documents count too.
        return Ok(top_admitted_pass(searcher, weight, terms, filter, limit, false)?.0);
    }
    Ok(ranked)
}

/// A term list whose highest possible score is below this share of the query's best list's
/// is set aside by the candidate pass (see [`top_admitted_pass`]).
const UNINFORMATIVE_SHARE: f32 = 1e-3;

/// Highest possible score below which a term list only adds noise: BM25's idf of a word in
/// all but one in a thousand documents, times (k1 + 1) and the field's boost, is about this
/// (a word carrying any information scores 0.1–20).
const NOISE_MAX_SCORE: f32 = 1e-3;

/// One pass of [`top_admitted`]. With `set_aside_uninformative`, the term lists that can add
/// almost nothing to any score — a word in (nearly) every document of a field, whose BM25 idf
/// is ≈ 0 (`model` in a model registry), at most [`UNINFORMATIVE_SHARE`] of the best list's
/// maximum — are left out of the candidate pass: they hold every document, so the pruning
/// would walk all of them for differences in the sixth decimal. The candidates' order is then
/// exact up to that share, and the rescoring counts every word again. Returns whether any list
/// was set aside (then a window left short is filled by a pass with all of them).
fn top_admitted_pass(
    searcher: &Searcher,
    weight: &dyn tantivy::query::Weight,
    terms: &[Box<dyn tantivy::query::Weight>],
    filter: Option<&dyn tantivy::query::Weight>,
    limit: usize,
    set_aside_uninformative: bool,
) -> Result<(Vec<Ranked>, bool), SearchError> {
    use tantivy::DocSet as _;
    let mut set_aside = false;
    let mut heap: std::collections::BinaryHeap<Ranked> =
        std::collections::BinaryHeap::with_capacity(limit + 1);
    // Every list of the query uninformative (its word in nearly every document of every
    // field it is searched in): the scores differ only in their sixth decimal, so the window
    // is the first admitted matches, found without walking every list to its end.
    // The best list's highest possible score over the whole index: a word absent from one
    // segment (a rare word in a new upload) may be in another, and must count everywhere.
    let mut best = 0.0_f32;
    if set_aside_uninformative {
        for reader in searcher.segment_readers() {
            if let Some(scorers) = term_scorers(reader, weight, terms)? {
                best = scorers
                    .iter()
                    .map(tantivy::query::TermScorer::max_score)
                    .fold(best, f32::max);
            }
        }
    }
    let noise_only = set_aside_uninformative && best > 0.0 && best < NOISE_MAX_SCORE;
    for (ordinal, reader) in searcher.segment_readers().iter().enumerate() {
        if noise_only && heap.len() >= limit {
            break;
        }
        let segment = u32::try_from(ordinal).unwrap_or(u32::MAX);
        let mut filter = match filter {
            Some(filter) => Some(filter.scorer(reader, 1.0)?),
            None => None,
        };
        let alive = reader.alive_bitset();
        let mut threshold = match heap.peek() {
            Some(worst) if heap.len() >= limit => worst.score,
            _ => f32::MIN,
        };
        let start = threshold;
        let window_full = std::cell::Cell::new(heap.len() >= limit);
        let mut keep = |doc: tantivy::DocId, score: f32| {
            heap.push(Ranked {
                score,
                address: DocAddress::new(segment, doc),
            });
            if heap.len() > limit {
                heap.pop();
            }
            if heap.len() >= limit
                && let Some(worst) = heap.peek()
            {
                threshold = worst.score;
                window_full.set(true);
            }
            // Nothing but noise to rank: the first admitted documents are as good as any.
            if noise_only && window_full.get() {
                f32::MAX
            } else {
                threshold
            }
        };
        if let Some(mut scorers) = term_scorers(reader, weight, terms)? {
            if set_aside_uninformative {
                let before = scorers.len();
                scorers.retain(|scorer| scorer.max_score() > best * UNINFORMATIVE_SHARE);
                set_aside |= scorers.len() < before;
            }
            let max_doc = reader.max_doc();
            let mut admit = |target: tantivy::DocId| {
                let mut doc = target;
                loop {
                    if let Some(filter) = filter.as_mut() {
                        if filter.doc() < doc {
                            filter.seek(doc);
                        }
                        doc = filter.doc();
                    }
                    if doc >= max_doc {
                        return tantivy::TERMINATED;
                    }
                    if !alive.is_some_and(|alive| alive.is_deleted(doc)) {
                        return doc;
                    }
                    doc += 1;
                }
            };
            crate::index::wand::for_each_admitted(scorers, &mut admit, start, &mut keep);
        } else {
            let mut current = start;
            weight.for_each_pruning(start, reader, &mut |doc, score| {
                if !alive.is_some_and(|alive| alive.is_deleted(doc)) && admits(filter.as_mut(), doc)
                {
                    current = keep(doc, score);
                }
                current
            })?;
        }
    }
    Ok((heap.into_sorted_vec(), set_aside))
}

/// The term scorers of `terms` (or of `weight` alone when `terms` is empty) in `reader`,
/// `None` when one of them is something else (a phrase): then only tantivy's own pruning
/// applies. Terms absent from the segment drop out.
fn term_scorers(
    reader: &tantivy::SegmentReader,
    weight: &dyn tantivy::query::Weight,
    terms: &[Box<dyn tantivy::query::Weight>],
) -> Result<Option<Vec<tantivy::query::TermScorer>>, SearchError> {
    let single = [weight];
    let weights: Vec<&dyn tantivy::query::Weight> = if terms.is_empty() {
        single.to_vec()
    } else {
        terms.iter().map(AsRef::as_ref).collect()
    };
    let mut scorers = Vec::with_capacity(weights.len());
    for weight in weights {
        match weight
            .scorer(reader, 1.0)?
            .downcast::<tantivy::query::TermScorer>()
        {
            Ok(scorer) => scorers.push(*scorer),
            Err(other) if other.is::<tantivy::query::EmptyScorer>() => {}
            Err(_) => return Ok(None),
        }
    }
    Ok(Some(scorers))
}

/// The fast string columns that order equal scores (project, version, path), per segment
/// (by its ordinal: a searcher's segments are numbered from 0), taken from the index's kept
/// columns when first needed.
struct TieColumns {
    kept: Arc<crate::index::columns::SegmentColumns>,
    live: Vec<tantivy::index::SegmentId>,
    by_segment: Vec<Option<Arc<crate::index::columns::TieColumns>>>,
}

/// The names of a segment's ordinals in each of the [`TIE_FIELDS`] columns.
type ColumnNames = [HashMap<u64, Arc<str>>; 3];

impl TieColumns {
    fn new(index: &SearchIndex, searcher: &Searcher) -> Self {
        Self {
            kept: index.columns(),
            live: searcher
                .segment_readers()
                .iter()
                .map(tantivy::SegmentReader::segment_id)
                .collect(),
            by_segment: Vec::new(),
        }
    }

    fn of(
        &mut self,
        searcher: &Searcher,
        segment: u32,
    ) -> Result<&[Option<tantivy::columnar::StrColumn>; 3], SearchError> {
        let index = segment as usize;
        if self.by_segment.len() <= index {
            self.by_segment.resize_with(index + 1, || None);
        }
        let columns = match self.by_segment[index].take() {
            Some(columns) => columns,
            None => self
                .kept
                .ties(searcher.segment_reader(segment), &self.live)?,
        };
        Ok(&**self.by_segment[index].insert(columns))
    }
}

/// Fills in what the ranking of plain words needs of each candidate: whether it is a file's
/// document (it has a path, read as a term ordinal: no dictionary lookup).
fn describe(
    searcher: &Searcher,
    columns: &mut TieColumns,
    ranked: &[Ranked],
) -> Result<Vec<Candidate>, SearchError> {
    let mut candidates = Vec::with_capacity(ranked.len());
    for entry in ranked {
        let [_, _, path] = columns.of(searcher, entry.address.segment_ord)?;
        let is_file = path
            .as_ref()
            .is_some_and(|path| path.term_ords(entry.address.doc_id).next().is_some());
        candidates.push(Candidate {
            address: entry.address,
            score: entry.score,
            is_file,
            tie: None,
        });
    }
    Ok(candidates)
}

/// Sorts `candidates` best first, equal scores by project, version and path — whatever order
/// the documents were indexed in. Only candidates that tie read those strings, and each
/// segment's dictionary is read once for all of them, in ordinal order (one lookup per
/// candidate and column was over half of a rare word's search: ties are common there).
fn sort_with_ties(
    names: &crate::index::ord_names::OrdNames,
    searcher: &Searcher,
    columns: &mut TieColumns,
    candidates: &mut [Candidate],
) -> Result<(), SearchError> {
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut runs = Vec::new();
    let mut start = 0;
    while start < candidates.len() {
        let score = candidates[start].score;
        let stop = start
            + candidates[start..]
                .iter()
                .take_while(|candidate| candidate.score.total_cmp(&score).is_eq())
                .count();
        if stop - start > 1 {
            runs.push(start..stop);
        }
        start = stop;
    }
    if runs.is_empty() {
        return Ok(());
    }
    // The ordinals each tied candidate holds (project, version, path), then the names of
    // each segment's ordinals, one dictionary read per segment and column: no map keyed by
    // candidate, no string copied (the names are shared `Arc<str>`s).
    let mut held: Vec<(usize, u32, [Option<u64>; 3])> = Vec::new();
    for run in &runs {
        for index in run.clone() {
            let address = candidates[index].address;
            let mut ords = [None; 3];
            for (column_index, column) in columns
                .of(searcher, address.segment_ord)?
                .iter()
                .enumerate()
            {
                if let Some(column) = column {
                    ords[column_index] = column.term_ords(address.doc_id).next();
                }
            }
            held.push((index, address.segment_ord, ords));
        }
    }
    let mut segments: Vec<u32> = held.iter().map(|(_, segment, _)| *segment).collect();
    segments.sort_unstable();
    segments.dedup();
    let mut named: Vec<(u32, ColumnNames)> = Vec::with_capacity(segments.len());
    for segment in segments {
        let segment_id = searcher.segment_reader(segment).segment_id();
        let segment_columns = columns.of(searcher, segment)?;
        let mut by_column = ColumnNames::default();
        for (column_index, names_of) in by_column.iter_mut().enumerate() {
            if let Some(column) = &segment_columns[column_index] {
                let ords = held
                    .iter()
                    .filter(|(_, of, _)| *of == segment)
                    .filter_map(|(_, _, ords)| ords[column_index]);
                *names_of = names.names(segment_id, TIE_FIELDS[column_index], column, ords);
            }
        }
        named.push((segment, by_column));
    }
    for (index, segment, ords) in held {
        let by_column = named
            .iter()
            .find(|(of, _)| *of == segment)
            .map(|(_, by_column)| by_column);
        candidates[index].tie = Some([0, 1, 2].map(|column_index| {
            let ord = ords[column_index]?;
            by_column?[column_index].get(&ord).cloned()
        }));
    }
    for run in runs {
        candidates[run].sort_by(|a, b| a.tie.cmp(&b.tie));
    }
    Ok(())
}

/// One page of a relevance-ordered search over the whole index: the addresses of the page
/// and `total` (exact up to [`TOTAL_EXACT_UP_TO`], a lower bound past it).
pub(super) fn ranked_page(
    index: &SearchIndex,
    searcher: &Searcher,
    request: &SearchRequest,
    user_query: &dyn Query,
    filter: Option<&BooleanQuery>,
) -> Result<(Vec<DocAddress>, usize, bool), SearchError> {
    let scoring = tantivy::query::EnableScoring::enabled_from_searcher(searcher);
    let unscored = tantivy::query::EnableScoring::disabled_from_searcher(searcher);
    let weight = user_query.weight(scoring)?;
    let filter_weight = match filter {
        Some(filter) => Some(filter.weight(unscored)?),
        None => None,
    };
    let end = request.offset + request.size;
    let words = match plain_words_of(&request.query) {
        Some(words) => {
            let words = free_text_words(index, searcher, &words, request.prefix)?;
            (!request.prefix || matches!(words.last(), Some(Word::Prefix(_)))).then_some(words)
        }
        None => None,
    };
    // At least the window, whatever the page: the first `RESCORE_WINDOW` are then always the
    // same documents, reordered the same way, so pages never overlap nor skip one.
    let window = end.max(RESCORE_WINDOW);
    // Plain words are a sum of boosted term queries: their clauses, for the filtered pruning.
    let terms = match &words {
        Some(words) => free_text_clauses(index, words)
            .iter()
            .map(|clause| clause.weight(scoring))
            .collect::<tantivy::Result<Vec<_>>>()?,
        None => Vec::new(),
    };
    let ranked = top_admitted(
        searcher,
        weight.as_ref(),
        &terms,
        filter_weight.as_deref(),
        window,
    )?;
    let mut columns = TieColumns::new(index, searcher);
    let mut candidates = describe(searcher, &mut columns, &ranked)?;
    if let Some(groups) = &words
        && !groups.is_empty()
    {
        let ranking = FreeTextRanking::new(index, searcher, groups)?;
        let rescored = candidates.len().min(RESCORE_WINDOW);
        let (head, _) = candidates.split_at_mut(rescored);
        head.sort_by_key(|candidate| candidate.address);
        for segment in head.chunk_by_mut(|a, b| a.address.segment_ord == b.address.segment_ord) {
            let reader = searcher.segment_reader(segment[0].address.segment_ord);
            ranking.rescore(reader, segment)?;
        }
    }
    // Best first; equal scores by project, version and path, whatever order the documents
    // were indexed in. Only the window is reordered (past it, index order breaks ties).
    let reorder = candidates.len().min(RESCORE_WINDOW);
    sort_with_ties(
        &index.ord_names(),
        searcher,
        &mut columns,
        &mut candidates[..reorder],
    )?;
    if words.is_none() {
        shortest_keys_first(
            index,
            searcher,
            &request.query,
            &mut candidates[..reorder],
            request.offset..end,
        )?;
    }
    // Count: the user's query and the filter, unscored, as tantivy intersects them.
    let mut count_clauses: Vec<(Occur, Box<dyn Query>)> = vec![(
        Occur::Must,
        tantivy::query::QueryClone::box_clone(user_query),
    )];
    if let Some(filter) = filter {
        count_clauses.push((Occur::Must, tantivy::query::QueryClone::box_clone(filter)));
    }
    let count_weight = BooleanQuery::new(count_clauses).weight(unscored)?;
    let cap = TOTAL_EXACT_UP_TO.max(end + 1);
    let (total, exact) = match allowed_set_only(filter) {
        Some(allow) => {
            let matches = user_query.weight(unscored)?;
            count_in_set(
                searcher,
                matches.as_ref(),
                allow,
                count_weight.as_ref(),
                cap,
            )?
        }
        None => count_admitted(searcher, count_weight.as_ref(), cap)?,
    };
    let addresses = candidates
        .into_iter()
        .skip(request.offset)
        .take(request.size)
        .map(|candidate| candidate.address)
        .collect();
    Ok((addresses, total, exact))
}

/// The keys of the metadata document a query names (`title:bert` → `title`).
fn queried_keys(index: &SearchIndex, text: &str) -> Vec<String> {
    fn collect(index: &SearchIndex, ast: &UserInputAst, keys: &mut Vec<String>) {
        match ast {
            UserInputAst::Clause(clauses) => {
                for (occur, clause) in clauses {
                    if *occur != Some(Occur::MustNot) {
                        collect(index, clause, keys);
                    }
                }
            }
            UserInputAst::Boost(inner, _) => collect(index, inner, keys),
            UserInputAst::Leaf(leaf) => {
                if let UserInputLeaf::Literal(literal) = leaf.as_ref()
                    && let Some(name) = &literal.field_name
                    && let Some((field, path)) = json_key_of(index, name)
                    && field == index.fields().document
                    && !keys.contains(&path)
                {
                    keys.push(path);
                }
            }
        }
    }
    let mut keys = Vec::new();
    if let Ok(ast) = tantivy::query_grammar::parse_query(text.trim()) {
        collect(index, &ast, &mut keys);
    }
    keys
}

/// How many words the values of `path` (dotted, through arrays) hold in `value`.
fn words_at(value: &Value, path: &[&str]) -> usize {
    match (value, path) {
        (Value::Array(items), _) => items.iter().map(|item| words_at(item, path)).sum(),
        (Value::String(text), []) => text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|word| !word.is_empty())
            .count(),
        (Value::Object(object), [key, rest @ ..]) => {
            object.get(*key).map_or(0, |child| words_at(child, rest))
        }
        (_, []) => 1,
        _ => 0,
    }
}

/// Most documents of equal score read to order them by [`shortest_keys_first`] (more equal
/// scores keep the project, version, path order).
const MAX_TIE_READS: usize = 16;

/// Orders candidates of equal score that reach the page (`page`) by the length of the
/// values of the keys the query names, shortest first: tantivy keeps one length per JSON
/// field, not per key, so `title:bert` scores "BERT base uncased" and "BERT: Pre-training of
/// Deep Bidirectional Transformers…" alike when their whole documents are about as long;
/// the title that is nearly the query comes first, as a per-key BM25 norm would have it.
fn shortest_keys_first(
    index: &SearchIndex,
    searcher: &Searcher,
    text: &str,
    candidates: &mut [Candidate],
    page: std::ops::Range<usize>,
) -> Result<(), SearchError> {
    let keys = queried_keys(index, text);
    if keys.is_empty() {
        return Ok(());
    }
    let mut start = 0;
    while start < candidates.len().min(page.end) {
        let score = candidates[start].score;
        let stop = start
            + candidates[start..]
                .iter()
                .take_while(|candidate| candidate.score.total_cmp(&score).is_eq())
                .count();
        if stop - start > 1 && stop - start <= MAX_TIE_READS && stop > page.start {
            let mut lengths = HashMap::new();
            for candidate in &candidates[start..stop] {
                let document: TantivyDocument = searcher.doc(candidate.address)?;
                let source =
                    stored_json::<Value>(&document, index.fields().source).unwrap_or(Value::Null);
                let length: usize = keys
                    .iter()
                    .map(|key| words_at(&source, &key.split('.').collect::<Vec<_>>()))
                    .sum();
                lengths.insert(candidate.address, length);
            }
            candidates[start..stop].sort_by_key(|candidate| {
                lengths
                    .get(&candidate.address)
                    .copied()
                    .unwrap_or(usize::MAX)
            });
        }
        start = stop;
    }
    Ok(())
}

/// Whether a query is worth the pruned pass ([`ranked_page`]): plain words (whose full ranking
/// is a rescoring of the best candidates) and a single field word (`title:model`), which
/// tantivy's block-max WAND prunes. Anything else (phrases, ranges, prefixes, operators) scores
/// every match anyway, and is cheaper in one pass with the filter intersected.
pub(super) fn prunes(text: &str) -> bool {
    let text = text.trim();
    if text.is_empty() || text == "*" {
        return false;
    }
    let Ok(ast) = tantivy::query_grammar::parse_query(text) else {
        return false;
    };
    if plain_words(&ast).is_some() {
        return true;
    }
    let mut ast = &ast;
    while let UserInputAst::Clause(clauses) = ast
        && let [(None | Some(Occur::Must | Occur::Should), only)] = clauses.as_slice()
    {
        ast = only;
    }
    matches!(
        ast,
        UserInputAst::Leaf(leaf) if matches!(
            leaf.as_ref(),
            UserInputLeaf::Literal(literal)
                if literal.field_name.is_some()
                    && literal.delimiter == Delimiter::None
                    && !literal.prefix
                    && literal.phrase.chars().all(char::is_alphanumeric)
        )
    )
}

/// The plain words of a query text (see [`plain_words`]), `None` when it is anything else.
fn plain_words_of(text: &str) -> Option<Vec<String>> {
    let text = text.trim();
    if text.is_empty() || text == "*" {
        return None;
    }
    tantivy::query_grammar::parse_query(text)
        .ok()
        .and_then(|ast| plain_words(&ast))
}
