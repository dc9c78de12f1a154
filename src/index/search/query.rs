//! The user's query: its text checked, parsed and rewritten into a query object (existence
//! terms, negative-only completion, key ranges, the last word as a prefix), and the term
//! queries the rest of search builds on.

use tantivy::Term;
use tantivy::query::AllQuery;
use tantivy::query::BooleanQuery;
use tantivy::query::ConstScoreQuery;
use tantivy::query::Occur;
use tantivy::query::Query;
use tantivy::query::QueryParser;
use tantivy::query::TermQuery;
use tantivy::query::TermSetQuery;
use tantivy::query_grammar::Delimiter;
use tantivy::query_grammar::UserInputAst;
use tantivy::query_grammar::UserInputLeaf;
use tantivy::query_grammar::UserInputLiteral;
use tantivy::schema::IndexRecordOption;

use super::free_text::{FREE_TEXT_BOOSTS, Word, free_text_query, free_text_words, plain_words};
use super::{FORBIDDEN_FIELDS, MAX_QUERY_BYTES, MAX_QUERY_DEPTH, SearchError};
use crate::index::SearchIndex;

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
/// JSON document does not have. The paths of `_extra` that every file or project document
/// has are recorded as one marker term per document (see
/// [`crate::index::extra::standard_keys`]): for them the marker is asked for too.
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
                let present = |phrase: String| {
                    UserInputAst::Leaf(Box::new(UserInputLeaf::Literal(UserInputLiteral {
                        field_name: Some("fields_present".to_owned()),
                        phrase,
                        delimiter: Delimiter::None,
                        slop: 0,
                        prefix: false,
                    })))
                };
                let markers: Vec<&str> = crate::index::extra::markers_implying(&field).collect();
                if markers.is_empty() {
                    return present(field);
                }
                UserInputAst::Clause(
                    std::iter::once(field)
                        .chain(markers.into_iter().map(str::to_owned))
                        .map(|phrase| (Some(Occur::Should), present(phrase)))
                        .collect(),
                )
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
pub(super) fn json_key_of(
    index: &SearchIndex,
    name: &str,
) -> Option<(tantivy::schema::Field, String)> {
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

pub(super) fn term_query(field: tantivy::schema::Field, value: &str) -> Box<dyn Query> {
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
pub(super) fn any_term(terms: Vec<Term>) -> Box<dyn Query> {
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
