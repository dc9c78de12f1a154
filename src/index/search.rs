//! Authorized search: the user's query (tantivy query-parser syntax) parsed into a query
//! object and ANDed with the caller's access filter.
//!
//! [`search`] is the only way to run a query against the index, and its access argument is
//! required, so a route cannot forget the filter. Queries that do not parse, name internal
//! fields, or nest absurdly are refused with [`SearchError::InvalidQuery`] before tantivy sees
//! them.

use std::collections::{HashMap, HashSet};

use serde_json::Value;
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{
    AllQuery, BooleanQuery, ConstScoreQuery, Occur, Query, QueryParser, TermQuery, TermSetQuery,
};
use tantivy::query_grammar::{Delimiter, UserInputAst, UserInputLeaf, UserInputLiteral};
use tantivy::schema::{IndexRecordOption, Value as _};
use tantivy::{DocAddress, Order, Searcher, TantivyDocument, Term};

use super::SearchIndex;
use super::filter::{AllowQuery, SearchFilter};
use crate::permissions::{AccessScope, DocumentAccess};

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

/// One hit.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The stored document (with `_extra`, including `_extra.permissions`).
    pub source: Value,
    /// Its access data.
    pub access: DocumentAccess,
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

/// Checks the user's query AST: no forbidden field, no absurd nesting.
fn check_ast(ast: &UserInputAst, depth: usize) -> Result<(), SearchError> {
    if depth > MAX_QUERY_DEPTH {
        return Err(SearchError::InvalidQuery(
            "query nests too deeply".to_owned(),
        ));
    }
    let check_field = |field: Option<&str>| -> Result<(), SearchError> {
        match field {
            Some(name)
                if FORBIDDEN_FIELDS.iter().any(|forbidden| {
                    name == *forbidden || name.starts_with(&format!("{forbidden}."))
                }) =>
            {
                Err(SearchError::InvalidQuery(format!(
                    "field {name:?} is not searchable"
                )))
            }
            _ => Ok(()),
        }
    };
    match ast {
        UserInputAst::Clause(clauses) => clauses
            .iter()
            .try_for_each(|(_, clause)| check_ast(clause, depth + 1)),
        UserInputAst::Boost(inner, _) => check_ast(inner, depth + 1),
        UserInputAst::Leaf(leaf) => match leaf.as_ref() {
            UserInputLeaf::Literal(literal) => check_field(literal.field_name.as_deref()),
            UserInputLeaf::All => Ok(()),
            // Regular expressions are not part of the language (costly automata); the prefix
            // search builds its own, anchored ones.
            UserInputLeaf::Regex { .. } => Err(SearchError::InvalidQuery(
                "regular expressions are not supported; use prefix=true".to_owned(),
            )),
            UserInputLeaf::Range { field, .. } | UserInputLeaf::Set { field, .. } => {
                check_field(field.as_deref())
            }
            UserInputLeaf::Exists { field } => check_field(Some(field)),
        },
    }
}

/// Rewrites `field:*` (existence) into a term of the `fields_present` field, which records
/// every key path of a document: tantivy's own existence query needs fast fields, which the
/// JSON document does not have.
fn exists_as_terms(ast: UserInputAst) -> UserInputAst {
    match ast {
        UserInputAst::Clause(clauses) => UserInputAst::Clause(
            clauses
                .into_iter()
                .map(|(occur, clause)| (occur, exists_as_terms(clause)))
                .collect(),
        ),
        UserInputAst::Boost(inner, boost) => {
            UserInputAst::Boost(Box::new(exists_as_terms(*inner)), boost)
        }
        UserInputAst::Leaf(leaf) => match *leaf {
            UserInputLeaf::Exists { field } => {
                UserInputAst::Leaf(Box::new(UserInputLeaf::Literal(UserInputLiteral {
                    field_name: Some("fields_present".to_owned()),
                    phrase: field,
                    delimiter: Delimiter::None,
                    slop: 0,
                    prefix: false,
                })))
            }
            other => UserInputAst::Leaf(Box::new(other)),
        },
    }
}

/// A query made only of exclusions (`NOT x`) means "everything but x": pair it with `*`
/// (tantivy matches nothing with a query that only excludes) — at any depth, so `vision AND
/// NOT imagenet` (parsed `+vision +(-imagenet)`) means what it says.
fn complete_negative_query(ast: UserInputAst) -> UserInputAst {
    match ast {
        UserInputAst::Clause(clauses) => {
            let mut clauses: Vec<_> = clauses
                .into_iter()
                .map(|(occur, clause)| (occur, complete_negative_query(clause)))
                .collect();
            if !clauses.is_empty()
                && clauses
                    .iter()
                    .all(|(occur, _)| *occur == Some(Occur::MustNot))
            {
                clauses.push((
                    Some(Occur::Must),
                    UserInputAst::Leaf(Box::new(UserInputLeaf::All)),
                ));
            }
            UserInputAst::Clause(clauses)
        }
        UserInputAst::Boost(inner, boost) => {
            UserInputAst::Boost(Box::new(complete_negative_query(*inner)), boost)
        }
        leaf => leaf,
    }
}

/// Boosts of the free-text fields an unqualified word searches: the project's name above its
/// description and tags, above other metadata values, above paths.
const FREE_TEXT_BOOSTS: [(&str, f32); 4] = [
    ("text_name", 4.0),
    ("text_about", 2.0),
    ("text_meta", 1.0),
    ("text_path", 0.5),
];

/// How much of the other fields' scores a word's best field adds (a dis-max tie breaker): a
/// word counts mostly where it matches best, so a title that nearly is the query beats a
/// title plus a description that both merely mention it.
const FREE_TEXT_TIE_BREAKER: f32 = 0.2;

/// How many leading words of a query take part in coordination and proximity.
const FREE_TEXT_RANKED_WORDS: usize = 16;

/// Weight of two typed words found side by side in a field, against each word's own score.
const FREE_TEXT_PROXIMITY_BOOST: f32 = 2.0;

/// The unqualified words of a query made only of them (`vision transformer imagenet`: no
/// field, no quotes, no operator, no boost); `None` for anything else, which the query parser
/// handles.
fn plain_words(ast: &UserInputAst) -> Option<Vec<String>> {
    fn collect(ast: &UserInputAst, words: &mut Vec<String>) -> bool {
        match ast {
            UserInputAst::Leaf(leaf) => match leaf.as_ref() {
                UserInputLeaf::Literal(literal)
                    if literal.field_name.is_none()
                        && literal.delimiter == Delimiter::None
                        && literal.slop == 0
                        && !literal.prefix =>
                {
                    words.push(literal.phrase.clone());
                    true
                }
                _ => false,
            },
            UserInputAst::Clause(clauses) => clauses.iter().all(|(occur, clause)| {
                matches!(occur, None | Some(Occur::Should)) && collect(clause, words)
            }),
            UserInputAst::Boost(..) => false,
        }
    }
    let mut words = Vec::new();
    (collect(ast, &mut words) && !words.is_empty()).then_some(words)
}

/// One typed word of a free-text query.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Word {
    /// The word's tokens: one is a term, several (a file name, `bert-base`) a phrase, as the
    /// query parser reads them.
    Tokens(Vec<String>),
    /// The last word of a search box (`prefix=true`): the index's terms it begins, most
    /// frequent first, at most [`MAX_PREFIX_EXPANSIONS`].
    Prefix(Vec<String>),
}

/// Most terms a prefix stands for (the most frequent ones that begin with it).
const MAX_PREFIX_EXPANSIONS: usize = 32;
/// Most dictionary terms looked at per field and segment for one prefix.
const MAX_PREFIX_SCAN: usize = 20_000;

/// Each plain word as the free-text fields' tokenizer splits it, without repeats; with
/// `prefix`, a last word of one token stands for the terms it begins (`whisp` → `whisper`).
fn free_text_words(
    index: &SearchIndex,
    searcher: &Searcher,
    words: &[String],
    prefix: bool,
) -> Result<Vec<Word>, SearchError> {
    let fields = index.fields();
    let mut groups: Vec<Vec<String>> = Vec::new();
    if let Ok(mut analyzer) = index.index().tokenizer_for_field(fields.text_meta) {
        for word in words {
            let mut tokens = Vec::new();
            let mut stream = analyzer.token_stream(word);
            while let Some(token) = stream.next() {
                tokens.push(token.text.clone());
            }
            if !tokens.is_empty() {
                groups.push(tokens);
            }
        }
    }
    let last_is_prefix = prefix && groups.last().is_some_and(|tokens| tokens.len() == 1);
    let prefix_word = if last_is_prefix { groups.pop() } else { None };
    let mut seen: HashSet<Vec<String>> = HashSet::new();
    let mut result: Vec<Word> = groups
        .into_iter()
        .filter(|tokens| seen.insert(tokens.clone()))
        .map(Word::Tokens)
        .collect();
    if let Some(tokens) = prefix_word {
        result.push(Word::Prefix(prefix_expansions(
            index, searcher, &tokens[0],
        )?));
    }
    Ok(result)
}

/// The terms of the free-text fields that begin with `prefix`, most frequent first.
fn prefix_expansions(
    index: &SearchIndex,
    searcher: &Searcher,
    prefix: &str,
) -> Result<Vec<String>, SearchError> {
    let mut frequency: HashMap<Vec<u8>, u64> = HashMap::new();
    for reader in searcher.segment_readers() {
        for (field, _) in boosted_fields(index) {
            let inverted = reader.inverted_index(field)?;
            let mut stream = inverted
                .terms()
                .range()
                .ge(prefix.as_bytes())
                .into_stream()
                .map_err(|error| SearchError::Index(error.into()))?;
            let mut scanned = 0;
            while stream.advance() && scanned < MAX_PREFIX_SCAN {
                let key = stream.key();
                if !key.starts_with(prefix.as_bytes()) {
                    break;
                }
                scanned += 1;
                *frequency.entry(key.to_vec()).or_insert(0) += u64::from(stream.value().doc_freq);
            }
        }
    }
    let mut terms: Vec<(Vec<u8>, u64)> = frequency.into_iter().collect();
    terms.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(terms
        .into_iter()
        .take(MAX_PREFIX_EXPANSIONS)
        .filter_map(|(term, _)| String::from_utf8(term).ok())
        .collect())
}

/// The free-text fields with their boosts, in [`FREE_TEXT_BOOSTS`] order.
fn boosted_fields(index: &SearchIndex) -> [(tantivy::schema::Field, f32); 4] {
    let fields = index.fields();
    [
        (fields.text_name, FREE_TEXT_BOOSTS[0].1),
        (fields.text_about, FREE_TEXT_BOOSTS[1].1),
        (fields.text_meta, FREE_TEXT_BOOSTS[2].1),
        (fields.text_path, FREE_TEXT_BOOSTS[3].1),
    ]
}

/// One word (its tokens) in one field: a term, or a phrase of several tokens.
fn word_in_field(field: tantivy::schema::Field, tokens: &[String]) -> Box<dyn Query> {
    if let [token] = tokens {
        Box::new(TermQuery::new(
            Term::from_field_text(field, token),
            IndexRecordOption::WithFreqs,
        ))
    } else {
        Box::new(tantivy::query::PhraseQuery::new(
            tokens
                .iter()
                .map(|token| Term::from_field_text(field, token))
                .collect(),
        ))
    }
}

/// The query that finds the candidates of plain words: every word in every free-text field,
/// boosted, summed. It matches exactly the documents the full ranking can score (a document
/// with at least one word somewhere), and a sum of term queries is what tantivy's block-max
/// WAND prunes, so the best candidates come without scoring every match; the full ranking
/// ([`FreeTextRanking`]) then rescores the best [`RESCORE_WINDOW`] of them.
fn free_text_query(index: &SearchIndex, words: &[Word]) -> Box<dyn Query> {
    // No word (only separators, or a prefix nothing begins with): nothing matches, as the
    // parser would answer.
    Box::new(BooleanQuery::new(
        free_text_clauses(index, words)
            .into_iter()
            .map(|clause| (Occur::Should, clause))
            .collect(),
    ))
}

/// The summed clauses of [`free_text_query`]: each word (each term a prefix stands for) in
/// each free-text field, boosted.
fn free_text_clauses(index: &SearchIndex, words: &[Word]) -> Vec<Box<dyn Query>> {
    let boosted = boosted_fields(index);
    let mut clauses: Vec<Box<dyn Query>> = Vec::new();
    for word in words {
        for (field, boost) in &boosted {
            let queries: Vec<Box<dyn Query>> = match word {
                Word::Tokens(tokens) => vec![word_in_field(*field, tokens)],
                Word::Prefix(terms) => terms
                    .iter()
                    .map(|term| word_in_field(*field, std::slice::from_ref(term)))
                    .collect(),
            };
            for query in queries {
                clauses.push(Box::new(tantivy::query::BoostQuery::new(query, *boost)));
            }
        }
    }
    clauses
}

/// How much a project's words (its id, title, description and tags, on the `text_name` and
/// `text_about` fields) count on the documents of its files, against the file's own values
/// (metadata and path): a file whose own metadata names the word is about it; a file that only
/// belongs to a project mentioning it is context. Project records are their own words (1).
const INHERITED_WORDS_WEIGHT: f32 = 0.25;

/// The full ranking of plain words, computed for the best candidates only: each word scores
/// BM25 on the field where it matches best (boosted: name, about, metadata, path; a project's
/// words on its files weighted by [`INHERITED_WORDS_WEIGHT`]) plus [`FREE_TEXT_TIE_BREAKER`]
/// of the others (dis-max); a document matching every word of several scores its words once
/// more (coordination), so matching all the words typed outranks one word in a heavier field;
/// and each pair of typed words found side by side in the name or description scores
/// [`FREE_TEXT_PROXIMITY_BOOST`] times more (proximity: `vision transformer`).
struct FreeTextRanking {
    /// Per word, per free-text field (in [`FREE_TEXT_BOOSTS`] order): its weights (several
    /// for a prefix: the best counts).
    words: Vec<[Vec<Box<dyn tantivy::query::Weight>>; 4]>,
    /// Per pair of consecutive words (the first [`FREE_TEXT_RANKED_WORDS`]): the pair as a
    /// phrase in the name and in the description.
    pairs: Vec<[Box<dyn tantivy::query::Weight>; 2]>,
    /// How many leading words take part in coordination (0 for a single word).
    ranked: usize,
}

impl FreeTextRanking {
    fn new(index: &SearchIndex, searcher: &Searcher, groups: &[Word]) -> Result<Self, SearchError> {
        let scoring = tantivy::query::EnableScoring::enabled_from_searcher(searcher);
        let boosted = boosted_fields(index);
        let weight = |field: tantivy::schema::Field, tokens: &[String]| {
            word_in_field(field, tokens).weight(scoring)
        };
        let mut words = Vec::with_capacity(groups.len());
        for word in groups {
            let mut per_field: [Vec<Box<dyn tantivy::query::Weight>>; 4] = Default::default();
            for (into, (field, _)) in per_field.iter_mut().zip(boosted) {
                match word {
                    Word::Tokens(tokens) => into.push(weight(field, tokens)?),
                    Word::Prefix(terms) => {
                        for term in terms {
                            into.push(weight(field, std::slice::from_ref(term))?);
                        }
                    }
                }
            }
            words.push(per_field);
        }
        let ranked = if groups.len() > 1 {
            groups.len().min(FREE_TEXT_RANKED_WORDS)
        } else {
            0
        };
        let mut pairs = Vec::new();
        if ranked > 1 {
            for pair in groups[..ranked].windows(2) {
                // A prefix stands for several terms: no phrase with it.
                if let [Word::Tokens(first), Word::Tokens(second)] = pair {
                    let tokens = [first.as_slice(), second.as_slice()].concat();
                    pairs.push([
                        weight(boosted[0].0, &tokens)?,
                        weight(boosted[1].0, &tokens)?,
                    ]);
                }
            }
        }
        Ok(Self {
            words,
            pairs,
            ranked,
        })
    }

    /// Rescores `candidates` (all of one segment, in ascending document order).
    fn rescore(
        &self,
        reader: &tantivy::SegmentReader,
        candidates: &mut [Candidate],
    ) -> Result<(), SearchError> {
        let scorers = |weights: &[Box<dyn tantivy::query::Weight>]| {
            weights
                .iter()
                .map(|weight| weight.scorer(reader, 1.0))
                .collect::<tantivy::Result<Vec<_>>>()
        };
        let mut words = Vec::with_capacity(self.words.len());
        for per_field in &self.words {
            let mut fields: [Vec<Box<dyn tantivy::query::Scorer>>; 4] = Default::default();
            for (into, weights) in fields.iter_mut().zip(per_field) {
                *into = scorers(weights)?;
            }
            words.push(fields);
        }
        let mut pairs = Vec::with_capacity(self.pairs.len());
        for weights in &self.pairs {
            pairs.push(scorers(weights)?);
        }
        let boosts = FREE_TEXT_BOOSTS.map(|(_, boost)| boost);
        for candidate in candidates {
            let doc = candidate.address.doc_id;
            let inherited = if candidate.is_file {
                INHERITED_WORDS_WEIGHT
            } else {
                1.0
            };
            let weights = [inherited, inherited, 1.0, 1.0];
            let mut total = 0.0;
            let mut coordination = 0.0;
            let mut all_matched = true;
            for (position, scorers) in words.iter_mut().enumerate() {
                let mut best: f32 = 0.0;
                let mut sum = 0.0;
                for (field, alternatives) in scorers.iter_mut().enumerate() {
                    let raw = alternatives
                        .iter_mut()
                        .map(|scorer| score_at(scorer.as_mut(), doc))
                        .fold(0.0_f32, f32::max);
                    let score = raw * boosts[field] * weights[field];
                    best = best.max(score);
                    sum += score;
                }
                let word = best + FREE_TEXT_TIE_BREAKER * (sum - best);
                total += word;
                if position < self.ranked {
                    coordination += word;
                    all_matched &= word > 0.0;
                }
            }
            if self.ranked > 0 && all_matched {
                total += coordination;
            }
            for scorers in &mut pairs {
                let name = score_at(scorers[0].as_mut(), doc) * boosts[0] * weights[0];
                let about = score_at(scorers[1].as_mut(), doc) * boosts[1] * weights[1];
                let best = name.max(about);
                total += FREE_TEXT_PROXIMITY_BOOST
                    * (best + FREE_TEXT_TIE_BREAKER * (name + about - best));
            }
            candidate.score = total;
        }
        Ok(())
    }
}

/// The score of `scorer` at `doc` (scorers only move forward: documents in ascending order),
/// 0 when it does not match.
fn score_at(scorer: &mut dyn tantivy::query::Scorer, doc: tantivy::DocId) -> f32 {
    if scorer.doc() < doc {
        scorer.seek(doc);
    }
    if scorer.doc() == doc {
        scorer.score()
    } else {
        0.0
    }
}

/// Parses the user's query into a query object (never combined as text).
pub fn parse_user_query(index: &SearchIndex, text: &str) -> Result<Box<dyn Query>, SearchError> {
    parse_user_query_with(index, text, false)
}

/// Marks the last unqualified word (or phrase) of the query as a prefix: a phrase of several
/// words becomes a phrase prefix, a single word a prefix of the terms of every free-text
/// field (tantivy's phrase prefix needs two words).
fn last_word_as_prefix(ast: &mut UserInputAst) -> bool {
    match ast {
        UserInputAst::Clause(clauses) => clauses
            .iter_mut()
            .rev()
            .any(|(_, clause)| last_word_as_prefix(clause)),
        UserInputAst::Boost(inner, _) => last_word_as_prefix(inner),
        UserInputAst::Leaf(leaf) => {
            let UserInputLeaf::Literal(literal) = leaf.as_mut() else {
                return false;
            };
            if literal.field_name.is_some() {
                return false;
            }
            let words: Vec<String> = literal
                .phrase
                .split(|c: char| !c.is_alphanumeric())
                .filter(|word| !word.is_empty())
                .map(str::to_lowercase)
                .collect();
            match words.as_slice() {
                [] => false,
                [word] => {
                    let pattern = format!("{}.*", regex_escape(word));
                    *ast = UserInputAst::Clause(
                        FREE_TEXT_BOOSTS
                            .iter()
                            .map(|(field, boost)| {
                                let leaf = UserInputAst::Leaf(Box::new(UserInputLeaf::Regex {
                                    field: Some((*field).to_owned()),
                                    pattern: pattern.clone(),
                                }));
                                (
                                    Some(Occur::Should),
                                    UserInputAst::Boost(Box::new(leaf), f64::from(*boost).into()),
                                )
                            })
                            .collect(),
                    );
                    true
                }
                _ => {
                    literal.prefix = true;
                    true
                }
            }
        }
    }
}

/// Escapes the characters of `text` that a regular expression would interpret.
fn regex_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        if !character.is_alphanumeric() {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

/// [`parse_user_query`], with the last unqualified word as a prefix when `prefix`.
///
/// An unqualified word searches the free-text fields (project id and title, description and
/// tags, every string value of the document, path and version) with BM25 and field boosts;
/// `field:value` searches that key of the JSON document exactly as before.
pub fn parse_user_query_with(
    index: &SearchIndex,
    text: &str,
    prefix: bool,
) -> Result<Box<dyn Query>, SearchError> {
    let text = text.trim();
    if text.len() > MAX_QUERY_BYTES {
        return Err(SearchError::InvalidQuery(format!(
            "query longer than {MAX_QUERY_BYTES} bytes"
        )));
    }
    if text.is_empty() || text == "*" {
        return Ok(Box::new(AllQuery));
    }
    // Bound the nesting before the recursive grammar runs.
    let mut depth = 0_usize;
    for character in text.chars() {
        match character {
            '(' => {
                depth += 1;
                if depth > MAX_QUERY_DEPTH {
                    return Err(SearchError::InvalidQuery(
                        "query nests too deeply".to_owned(),
                    ));
                }
            }
            ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    let ast = tantivy::query_grammar::parse_query(text)
        .map_err(|_| SearchError::InvalidQuery(format!("cannot parse {text:?}")))?;
    check_ast(&ast, 0)?;
    if let Some(words) = plain_words(&ast) {
        let words = free_text_words(index, &index.searcher(), &words, prefix)?;
        let last_word_is_prefix = matches!(words.last(), Some(Word::Prefix(_)));
        // A last word of several tokens (`bert-ba`) as a prefix: the parser's phrase prefix.
        if !prefix || last_word_is_prefix {
            return Ok(free_text_query(index, &words));
        }
    }
    let mut ast = complete_negative_query(exists_as_terms(ast));
    if prefix {
        last_word_as_prefix(&mut ast);
    }
    let fields = index.fields();
    let mut parser = QueryParser::for_index(
        index.index(),
        vec![
            fields.text_name,
            fields.text_about,
            fields.text_meta,
            fields.text_path,
            // Keys of the JSON document (`title:bert`) resolve through it.
            fields.document,
        ],
    );
    // Only the prefix rewrite above produces regular expressions (`check_ast` refuses the
    // user's own).
    parser.allow_regexes();
    for (name, boost) in FREE_TEXT_BOOSTS {
        if let Ok(field) = index.index().schema().get_field(name) {
            parser.set_field_boost(field, boost);
        }
    }
    build_ast(index, &parser, ast)
}

/// The JSON field and key path a range names when it is a key of a JSON field (`year`, a key
/// of the metadata document; `document.year`; `_extra.numerical_revision`), `None` for a
/// schema field the parser handles itself.
fn json_key_of(index: &SearchIndex, name: &str) -> Option<(tantivy::schema::Field, String)> {
    let schema = index.index().schema();
    match schema.find_field(name) {
        Some((field, path)) => {
            let is_json = matches!(
                schema.get_field_entry(field).field_type(),
                tantivy::schema::FieldType::JsonObject(_)
            );
            (is_json && !path.is_empty()).then(|| (field, path.to_owned()))
        }
        None => Some((index.fields().document, name.to_owned())),
    }
}

/// Whether the query holds a range over a key of a JSON field.
fn has_key_range(index: &SearchIndex, ast: &UserInputAst) -> bool {
    match ast {
        UserInputAst::Clause(clauses) => clauses
            .iter()
            .any(|(_, clause)| has_key_range(index, clause)),
        UserInputAst::Boost(inner, _) => has_key_range(index, inner),
        UserInputAst::Leaf(leaf) => matches!(
            leaf.as_ref(),
            UserInputLeaf::Range { field: Some(field), .. } if json_key_of(index, field).is_some()
        ),
    }
}

/// Builds the query of `ast` with `parser`, but for ranges over keys of JSON fields, which
/// tantivy runs only on fast fields (the metadata document has no columnar copy): those become
/// ranges of the inverted index's terms of that key ([`key_range_query`]).
fn build_ast(
    index: &SearchIndex,
    parser: &QueryParser,
    ast: UserInputAst,
) -> Result<Box<dyn Query>, SearchError> {
    if !has_key_range(index, &ast) {
        return parser
            .build_query_from_user_input_ast(ast)
            .map_err(|error| SearchError::InvalidQuery(error.to_string()));
    }
    match ast {
        UserInputAst::Clause(clauses) => {
            let mut built = Vec::with_capacity(clauses.len());
            for (occur, clause) in clauses {
                built.push((
                    occur.unwrap_or(Occur::Should),
                    build_ast(index, parser, clause)?,
                ));
            }
            Ok(Box::new(BooleanQuery::new(built)))
        }
        UserInputAst::Boost(inner, boost) => {
            #[allow(clippy::cast_possible_truncation)]
            let boost = boost.into_inner() as f32;
            Ok(Box::new(tantivy::query::BoostQuery::new(
                build_ast(index, parser, *inner)?,
                boost,
            )))
        }
        UserInputAst::Leaf(leaf) => match *leaf {
            UserInputLeaf::Range {
                field: Some(name),
                lower,
                upper,
            } => {
                let (field, path) = json_key_of(index, &name)
                    .ok_or_else(|| SearchError::InvalidQuery(format!("no field {name:?}")))?;
                Ok(key_range_query(field, &path, &lower, &upper))
            }
            other => parser
                .build_query_from_user_input_ast(UserInputAst::Leaf(Box::new(other)))
                .map_err(|error| SearchError::InvalidQuery(error.to_string())),
        },
    }
}

/// A range over the values of one key of a JSON field, on its terms: numbers (the index
/// keeps a JSON number as a signed, unsigned or floating-point term, so the range covers the
/// three) when both bounds are numbers or open, else words (lower-cased, in byte order).
fn key_range_query(
    field: tantivy::schema::Field,
    path: &str,
    lower: &tantivy::query_grammar::UserInputBound,
    upper: &tantivy::query_grammar::UserInputBound,
) -> Box<dyn Query> {
    use std::ops::Bound;
    use tantivy::query::InvertedIndexRangeQuery;
    use tantivy::query_grammar::UserInputBound;

    let key = || Term::from_field_json_path(field, path, false);
    let text = |bound: &UserInputBound| match bound {
        UserInputBound::Inclusive(text) | UserInputBound::Exclusive(text) => Some(text.clone()),
        UserInputBound::Unbounded => None,
    };
    let numeric = [lower, upper]
        .iter()
        .all(|bound| text(bound).is_none_or(|text| text.parse::<f64>().is_ok_and(f64::is_finite)));
    if !numeric {
        let term = |value: &str| {
            let mut term = key();
            term.append_type_and_str(&value.to_lowercase());
            term
        };
        let lower = match lower {
            UserInputBound::Inclusive(value) => Bound::Included(term(value)),
            UserInputBound::Exclusive(value) => Bound::Excluded(term(value)),
            UserInputBound::Unbounded => Bound::Included(term("")),
        };
        let upper = match upper {
            UserInputBound::Inclusive(value) => Bound::Included(term(value)),
            UserInputBound::Exclusive(value) => Bound::Excluded(term(value)),
            // Past every string of the key (the byte after the string type's code).
            UserInputBound::Unbounded => {
                let mut term = key();
                term.append_type_and_str("\u{10FFFF}");
                Bound::Included(term)
            }
        };
        return Box::new(InvertedIndexRangeQuery::new(lower, upper));
    }
    let number = |bound: &UserInputBound| text(bound).and_then(|text| text.parse::<f64>().ok());
    let inclusive = |bound: &UserInputBound| matches!(bound, UserInputBound::Inclusive(_));
    let (low, high) = (number(lower), number(upper));
    // Integer bounds: the smallest and largest integers inside the range.
    let low_integer = low.map(|low| {
        if !inclusive(lower) && low.fract() == 0.0 {
            low + 1.0
        } else {
            low.ceil()
        }
    });
    let high_integer = high.map(|high| {
        if !inclusive(upper) && high.fract() == 0.0 {
            high - 1.0
        } else {
            high.floor()
        }
    });
    let mut ranges: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    let typed = |value: &dyn Fn(&mut Term)| {
        let mut term = key();
        value(&mut term);
        term
    };
    // Floating-point values.
    let float_bound = |value: Option<f64>, included: bool, open: f64| match value {
        Some(value) if included => Bound::Included(typed(&|term: &mut Term| {
            term.append_type_and_fast_value(value)
        })),
        Some(value) => Bound::Excluded(typed(&|term: &mut Term| {
            term.append_type_and_fast_value(value)
        })),
        None => Bound::Included(typed(&|term: &mut Term| {
            term.append_type_and_fast_value(open)
        })),
    };
    ranges.push((
        Occur::Should,
        Box::new(InvertedIndexRangeQuery::new(
            float_bound(low, inclusive(lower), f64::NEG_INFINITY),
            float_bound(high, inclusive(upper), f64::INFINITY),
        )),
    ));
    // Signed and unsigned integers (`as` saturates at the type's limits).
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    {
        let (from, to) = (
            low_integer.map_or(i64::MIN, |low| low as i64),
            high_integer.map_or(i64::MAX, |high| high as i64),
        );
        if from <= to {
            ranges.push((
                Occur::Should,
                Box::new(InvertedIndexRangeQuery::new(
                    Bound::Included(typed(&|term: &mut Term| {
                        term.append_type_and_fast_value(from)
                    })),
                    Bound::Included(typed(&|term: &mut Term| {
                        term.append_type_and_fast_value(to)
                    })),
                )),
            ));
        }
        let (from, to) = (
            low_integer.map_or(0, |low| low.max(0.0) as u64),
            high_integer.map_or(u64::MAX, |high| high as u64),
        );
        if high_integer.is_none_or(|high| high >= 0.0) && from <= to {
            ranges.push((
                Occur::Should,
                Box::new(InvertedIndexRangeQuery::new(
                    Bound::Included(typed(&|term: &mut Term| {
                        term.append_type_and_fast_value(from)
                    })),
                    Bound::Included(typed(&|term: &mut Term| {
                        term.append_type_and_fast_value(to)
                    })),
                )),
            ));
        }
    }
    Box::new(BooleanQuery::new(ranges))
}

/// The access clause of `access`, `None` for the unrestricted filter (admins).
fn allow_clause(index: &SearchIndex, access: &SearchFilter) -> Option<Box<dyn Query>> {
    if access.is_unrestricted() {
        return None;
    }
    let fields = index.fields();
    Some(Box::new(AllowQuery::new(
        access.clone(),
        index.allow_cache(),
        fields.readers,
        fields.state,
    )))
}

/// A stored JSON field of a document (`source`, `access`), `None` when absent or unreadable.
/// The stored document with `_extra.permissions` put back (it is stored apart, serialized once
/// per version).
pub(crate) fn stored_source(document: &TantivyDocument, fields: &super::IndexFields) -> Value {
    let mut source = stored_json(document, fields.source).unwrap_or(Value::Null);
    if let Some(permissions) = stored_json::<Value>(document, fields.permissions)
        && let Some(extra) = source.get_mut("_extra").and_then(Value::as_object_mut)
    {
        extra.insert("permissions".to_owned(), permissions);
    }
    source
}

fn stored_json<T: serde::de::DeserializeOwned>(
    document: &TantivyDocument,
    field: tantivy::schema::Field,
) -> Option<T> {
    document
        .get_first(field)
        .and_then(|value| value.as_bytes())
        .and_then(|bytes| serde_json::from_slice(bytes).ok())
}

fn term_query(field: tantivy::schema::Field, value: &str) -> Box<dyn Query> {
    Box::new(TermQuery::new(
        Term::from_field_text(field, value),
        IndexRecordOption::Basic,
    ))
}

/// Most terms [`any_term`] unions one by one; beyond it, a [`TermSetQuery`].
const TERM_UNION_MAX: usize = 128;

/// Matches documents holding any of `terms` (unscored). A few terms are a union of term
/// queries: `TermSetQuery` builds an FST per query whose builder allocates and zeroes a fixed
/// 10,000-cell registry, which measured 31 % of all CPU of `GET /projects/{p}/versions` at 32
/// connections (one term!). Many terms (a `latest=true` search over thousands of versions)
/// are still a `TermSetQuery`, whose fixed cost is then small beside the union.
fn any_term(terms: Vec<Term>) -> Box<dyn Query> {
    if terms.len() > TERM_UNION_MAX {
        return Box::new(TermSetQuery::new(terms));
    }
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = terms
        .into_iter()
        .map(|term| {
            let query: Box<dyn Query> = Box::new(TermQuery::new(term, IndexRecordOption::Basic));
            (Occur::Should, query)
        })
        .collect();
    let union: Box<dyn Query> = match clauses.pop() {
        Some((_, query)) if clauses.is_empty() => query,
        Some(last) => {
            clauses.push(last);
            Box::new(BooleanQuery::new(clauses))
        }
        // No term at all: a union of nothing matches nothing, as the set query did.
        None => Box::new(BooleanQuery::new(Vec::new())),
    };
    // The set query scored every match 1.0; so does the union, so a scored search ranks
    // exactly as before.
    Box::new(ConstScoreQuery::new(union, 1.0))
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
    if let Some(allow) = allow_clause(index, access) {
        clauses.push((Occur::Must, allow));
    }
    match request.kind {
        KindFilter::File => clauses.push((Occur::Must, term_query(fields.kind, "file"))),
        KindFilter::Project => clauses.push((Occur::Must, term_query(fields.kind, "project"))),
        KindFilter::All => {}
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
        None => {
            let (docs, total) = searcher.search(&query, &(top.order_by_score(), Count))?;
            (
                docs.into_iter().map(|(_, address)| address).collect(),
                total,
            )
        }
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
    let fields = index.fields();
    let mut hits = Vec::with_capacity(addresses.len());
    for address in addresses {
        let document: TantivyDocument = searcher.doc(address)?;
        let access: DocumentAccess = stored_json(&document, fields.access).unwrap_or_default();
        if !scope.matches(&access, now) {
            total = total.saturating_sub(1);
            continue;
        }
        let source = stored_source(&document, fields);
        hits.push(Hit { source, access });
    }
    Ok(SearchPage {
        hits,
        total,
        total_exact: true,
    })
}

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
struct Candidate {
    address: DocAddress,
    score: f32,
    /// A file's document (it has a path), not a project record.
    is_file: bool,
    /// Stable order among equal scores: project, version, path (read only for candidates
    /// that tie).
    tie: Option<(String, String, String)>,
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
/// and refused runs are skipped without decoding them ([`super::wand`]); otherwise tantivy's
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
            super::wand::for_each_admitted(scorers, &mut admit, start, &mut keep);
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

/// How many documents `weight` (unscored) and `filter` both hold, counting up to `cap`: the
/// count, and whether it is exact.
fn count_admitted(
    searcher: &Searcher,
    weight: &dyn tantivy::query::Weight,
    cap: usize,
) -> Result<(usize, bool), SearchError> {
    use tantivy::DocSet as _;
    let mut count = 0;
    for reader in searcher.segment_readers() {
        let mut scorer = weight.scorer(reader, 1.0)?;
        let alive = reader.alive_bitset();
        let mut doc = scorer.doc();
        while doc != tantivy::TERMINATED {
            if !alive.is_some_and(|alive| alive.is_deleted(doc)) {
                count += 1;
                if count >= cap {
                    return Ok((count, false));
                }
            }
            doc = scorer.advance();
        }
    }
    Ok((count, true))
}

/// The fast string columns that order equal scores (project, version, path), per segment,
/// opened when first needed.
#[derive(Default)]
struct TieColumns(HashMap<u32, [Option<tantivy::columnar::StrColumn>; 3]>);

impl TieColumns {
    fn of(
        &mut self,
        searcher: &Searcher,
        segment: u32,
    ) -> Result<&[Option<tantivy::columnar::StrColumn>; 3], SearchError> {
        Ok(match self.0.entry(segment) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                let fast = searcher.segment_reader(segment).fast_fields();
                entry.insert([
                    fast.str("project_id")?,
                    fast.str("version")?,
                    fast.str("path")?,
                ])
            }
        })
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
    // (segment, column) → the ordinals the tied candidates hold, then their strings.
    let mut wanted: HashMap<(u32, usize), Vec<u64>> = HashMap::new();
    let mut ords_of = HashMap::new();
    for run in &runs {
        for candidate in &candidates[run.clone()] {
            let segment = candidate.address.segment_ord;
            let mut ords = [None; 3];
            for (column_index, column) in columns.of(searcher, segment)?.iter().enumerate() {
                if let Some(column) = column
                    && let Some(ord) = column.term_ords(candidate.address.doc_id).next()
                {
                    ords[column_index] = Some(ord);
                    wanted.entry((segment, column_index)).or_default().push(ord);
                }
            }
            ords_of.insert(candidate.address, ords);
        }
    }
    let mut strings: HashMap<(u32, usize, u64), String> = HashMap::new();
    for ((segment, column_index), mut ords) in wanted {
        ords.sort_unstable();
        ords.dedup();
        if let Some(column) = &columns.of(searcher, segment)?[column_index] {
            let mut next = ords.iter();
            column
                .dictionary()
                .sorted_ords_to_term_cb(&ords, |bytes| {
                    if let Some(ord) = next.next() {
                        strings.insert(
                            (segment, column_index, *ord),
                            String::from_utf8_lossy(bytes).into_owned(),
                        );
                    }
                })
                .map_err(|error| SearchError::Index(error.into()))?;
        }
    }
    for run in runs {
        for candidate in &mut candidates[run.clone()] {
            let segment = candidate.address.segment_ord;
            let ords = ords_of.get(&candidate.address).copied().unwrap_or_default();
            let [project, version, path] = [0, 1, 2].map(|column_index| {
                ords[column_index]
                    .and_then(|ord| strings.get(&(segment, column_index, ord)).cloned())
                    .unwrap_or_default()
            });
            candidate.tie = Some((project, version, path));
        }
        candidates[run].sort_by(|a, b| a.tie.cmp(&b.tie));
    }
    Ok(())
}

/// One page of a relevance-ordered search over the whole index: the addresses of the page
/// and `total` (exact up to [`TOTAL_EXACT_UP_TO`], a lower bound past it).
fn ranked_page(
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
    let mut columns = TieColumns::default();
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
    sort_with_ties(searcher, &mut columns, &mut candidates[..reorder])?;
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
    let (total, exact) = count_admitted(searcher, count_weight.as_ref(), cap)?;
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
fn prunes(text: &str) -> bool {
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

/// Term counts per field: (API name, [(term, documents)]), most frequent first.
pub type Facets = Vec<(String, Vec<(String, u64)>)>;

/// Most fields one aggregation counts at once.
pub const MAX_FACET_FIELDS: usize = 8;

/// Counts documents per term of several fast string fields at once; documents whose reader
/// grants may have expired since they were indexed are set aside, to be re-checked against
/// their stored access data like search hits.
struct FacetCounter {
    fields: Vec<String>,
    /// Unix seconds of the request; `None` when nothing needs a re-check (admins).
    now: Option<u64>,
}

struct FacetSegment {
    segment: tantivy::SegmentOrdinal,
    columns: Vec<tantivy::columnar::StrColumn>,
    expiry: Option<tantivy::columnar::Column<u64>>,
    now: Option<u64>,
    counts: Vec<HashMap<u64, u64>>,
    suspects: Vec<tantivy::DocId>,
}

/// Counts per field (term → documents), and the documents to re-check with their terms.
#[derive(Default)]
struct FacetFruit {
    counts: Vec<HashMap<String, u64>>,
    suspects: Vec<(DocAddress, Vec<Vec<String>>)>,
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
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<FacetFruit>) -> tantivy::Result<FacetFruit> {
        let mut merged = FacetFruit {
            counts: vec![HashMap::new(); self.fields.len()],
            suspects: Vec::new(),
        };
        for fruit in fruits {
            for (into, counts) in merged.counts.iter_mut().zip(fruit.counts) {
                for (term, count) in counts {
                    *into.entry(term).or_insert(0) += count;
                }
            }
            merged.suspects.extend(fruit.suspects);
        }
        Ok(merged)
    }
}

impl tantivy::collector::SegmentCollector for FacetSegment {
    type Fruit = FacetFruit;

    fn collect(&mut self, doc: tantivy::DocId, _score: tantivy::Score) {
        if let (Some(now), Some(expiry)) = (self.now, &self.expiry)
            && expiry.first(doc).is_some_and(|at| at != 0 && at <= now)
        {
            self.suspects.push(doc);
            return;
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
        FacetFruit { counts, suspects }
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
    let fruit = searcher.search(
        &BooleanQuery::new(clauses),
        &FacetCounter {
            fields,
            now: restricted.then(|| u64::try_from(now.timestamp()).unwrap_or(0)),
        },
    )?;
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
    Ok(names
        .iter()
        .zip(counts)
        .map(|(name, counts)| {
            let mut counts: Vec<(String, u64)> = counts.into_iter().collect();
            counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            counts.truncate(size);
            (qualified(name), counts)
        })
        .collect())
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
    let document: TantivyDocument = searcher.doc(address)?;
    let access: DocumentAccess = stored_json(&document, fields.access).unwrap_or_default();
    if !scope.matches(&access, now) {
        return Ok(None);
    }
    let source = stored_source(&document, fields);
    Ok(Some(Hit { source, access }))
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
    readable_versions_in(index, &index.searcher(), scope, Some(projects), now)
}

/// [`readable_versions`] on `searcher`, of every project when `projects` is `None`.
fn readable_versions_in(
    index: &SearchIndex,
    searcher: &Searcher,
    scope: &AccessScope,
    projects: Option<&[String]>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<HashMap<String, ReadableVersions>, SearchError> {
    let fields = index.fields();
    let access = access_filter(scope);
    let mut clauses: Vec<(Occur, Box<dyn Query>)> =
        vec![(Occur::Must, term_query(fields.kind, "file"))];
    if let Some(allow) = allow_clause(index, &access) {
        clauses.push((Occur::Must, allow));
    }
    if let Some(projects) = projects {
        let terms = projects
            .iter()
            .map(|project| Term::from_field_text(fields.project_id, project));
        clauses.push((Occur::Must, any_term(terms.collect())));
    }
    let restricted = !access.is_unrestricted();
    let fruit = searcher.search(
        &BooleanQuery::new(clauses),
        &VersionsCollector {
            now: restricted.then(|| u64::try_from(now.timestamp()).unwrap_or(0)),
        },
    )?;
    let mut seen = fruit.seen;
    for (address, found) in fruit.suspects {
        let document: TantivyDocument = searcher.doc(address)?;
        let access: DocumentAccess = stored_json(&document, fields.access).unwrap_or_default();
        if scope.matches(&access, now) {
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
    Ok(answer
        .into_iter()
        .map(|(project, (versions, _, latest))| {
            let mut versions: Vec<String> = versions.into_iter().collect();
            versions.sort();
            (project, ReadableVersions { versions, latest })
        })
        .collect())
}

/// A (project, version) pair of dictionary ordinals of one segment.
type OrdPair = (u64, u64);

/// The strings of `ords` in `column`, decoded in one sorted pass over its dictionary: the
/// dictionary's blocks are zstd-compressed, and `ord_to_str` decompresses a block (with a new
/// decompression context) per call, which measured a sixth of `GET /projects?size=50`'s CPU.
fn ord_names(
    column: &tantivy::columnar::StrColumn,
    ords: impl Iterator<Item = u64>,
) -> HashMap<u64, String> {
    let mut ords: Vec<u64> = ords.collect();
    ords.sort_unstable();
    ords.dedup();
    let mut names = Vec::with_capacity(ords.len());
    let decoded = column.dictionary().sorted_ords_to_term_cb(&ords, |bytes| {
        names.push(String::from_utf8_lossy(bytes).into_owned());
    });
    if decoded.is_err() || names.len() != ords.len() {
        // A dictionary that cannot be read names nothing (the caller skips unnamed keys).
        return HashMap::new();
    }
    ords.into_iter().zip(names).collect()
}

/// Collects the distinct (project, version, revision) of the matching documents from fast
/// columns; documents whose grants may have expired are set aside for a re-check.
struct VersionsCollector {
    /// Unix seconds of the request; `None` when nothing needs a re-check (admins).
    now: Option<u64>,
}

struct VersionsSegmentCollector {
    segment: tantivy::SegmentOrdinal,
    project: tantivy::columnar::StrColumn,
    version: tantivy::columnar::StrColumn,
    revision: tantivy::columnar::Column<u64>,
    expiry: Option<tantivy::columnar::Column<u64>>,
    now: Option<u64>,
    /// (project ord, version ord) → revision.
    seen: HashMap<(u64, u64), u64>,
    suspects: Vec<tantivy::DocId>,
}

/// (project, version, revision) found, and suspects with what they would add.
#[derive(Default)]
struct VersionsFruit {
    seen: Vec<(String, String, u64)>,
    suspects: Vec<(DocAddress, (String, String, u64))>,
}

impl tantivy::collector::Collector for VersionsCollector {
    type Fruit = VersionsFruit;
    type Child = VersionsSegmentCollector;

    fn for_segment(
        &self,
        segment: tantivy::SegmentOrdinal,
        reader: &tantivy::SegmentReader,
    ) -> tantivy::Result<Self::Child> {
        let fast = reader.fast_fields();
        let missing =
            |name: &str| tantivy::TantivyError::SchemaError(format!("{name} is not a fast field"));
        Ok(VersionsSegmentCollector {
            segment,
            project: fast
                .str("project_id")?
                .ok_or_else(|| missing("project_id"))?,
            version: fast.str("version")?.ok_or_else(|| missing("version"))?,
            revision: fast.u64("numerical_revision")?,
            expiry: match self.now {
                Some(_) => Some(fast.u64("grant_expiry")?),
                None => None,
            },
            now: self.now,
            seen: HashMap::new(),
            suspects: Vec::new(),
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
            && expiry.first(doc).is_some_and(|at| at != 0 && at <= now)
        {
            self.suspects.push(doc);
            return;
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
        let projects = ord_names(&self.project, keys.clone().map(|&(project, _)| project));
        let versions = ord_names(&self.version, keys.map(|&(_, version)| version));
        let names = |(project, version): (u64, u64)| {
            Some((
                projects.get(&project)?.clone(),
                versions.get(&version)?.clone(),
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
        VersionsFruit { seen, suspects }
    }
}

#[cfg(test)]
mod free_text_tests {
    use super::*;

    fn words(text: &str) -> Option<Vec<String>> {
        plain_words(&tantivy::query_grammar::parse_query(text).unwrap())
    }

    #[test]
    fn only_plain_unqualified_words_take_the_free_text_path() {
        assert_eq!(
            words("vision transformer imagenet"),
            Some(vec![
                "vision".to_owned(),
                "transformer".to_owned(),
                "imagenet".to_owned()
            ])
        );
        assert_eq!(words("model.json"), Some(vec!["model.json".to_owned()]));
        // Fields, phrases, operators, exclusions and boosts keep the query parser's meaning.
        for text in [
            "title:bert",
            "\"bert base\"",
            "bert AND base",
            "bert -base",
            "bert^2",
            "*",
        ] {
            assert_eq!(words(text), None, "{text}");
        }
    }
}

#[cfg(test)]
mod any_term_tests {
    use super::*;
    use tantivy::collector::Count;
    use tantivy::schema::{STRING, Schema};

    #[test]
    fn any_term_matches_exactly_the_documents_holding_one_of_its_terms() {
        let mut builder = Schema::builder();
        let field = builder.add_text_field("key", STRING);
        let index = tantivy::Index::create_in_ram(builder.build());
        let mut writer: tantivy::IndexWriter = index.writer(15_000_000).unwrap();
        for key in ["a", "b", "c"] {
            writer.add_document(tantivy::doc!(field => key)).unwrap();
        }
        writer.commit().unwrap();
        let searcher = index.reader().unwrap().searcher();
        let count = |keys: &[&str]| {
            let terms = keys
                .iter()
                .map(|key| Term::from_field_text(field, key))
                .collect();
            searcher.search(&any_term(terms), &Count).unwrap()
        };
        // No term matches nothing (a `latest=true` search with no readable version).
        assert_eq!(count(&[]), 0);
        assert_eq!(count(&["a"]), 1);
        assert_eq!(count(&["a", "c", "zzz"]), 2);
        // Past the union's limit, the set query answers the same.
        let many: Vec<String> = (0..=TERM_UNION_MAX).map(|n| format!("x{n}")).collect();
        let mut keys: Vec<&str> = many.iter().map(String::as_str).collect();
        keys.push("b");
        assert!(keys.len() > TERM_UNION_MAX);
        assert_eq!(count(&keys), 1);
        // Scored, every match counts 1.0 whatever the term (relevance order unchanged).
        let top = searcher
            .search(
                &any_term(vec![
                    Term::from_field_text(field, "a"),
                    Term::from_field_text(field, "b"),
                ]),
                &tantivy::collector::TopDocs::with_limit(5).order_by_score(),
            )
            .unwrap();
        assert_eq!(top.len(), 2);
        assert!(
            top.iter()
                .all(|(score, _)| (*score - 1.0).abs() < f32::EPSILON)
        );
    }
}
