//! Free text: unqualified words searched across the boosted catch-all fields, with prefix
//! expansion, and the full ranking (per-word dis-max, coordination, proximity) that rescores
//! the best candidates.

use std::collections::HashMap;
use std::collections::HashSet;

use tantivy::Searcher;
use tantivy::Term;
use tantivy::query::BooleanQuery;
use tantivy::query::Occur;
use tantivy::query::Query;
use tantivy::query::TermQuery;
use tantivy::query_grammar::Delimiter;
use tantivy::query_grammar::UserInputAst;
use tantivy::query_grammar::UserInputLeaf;
use tantivy::schema::IndexRecordOption;

use super::SearchError;
use super::ranking::Candidate;
use crate::index::SearchIndex;

/// Boosts of the free-text fields an unqualified word searches: the project's name above its
/// description and tags, above other metadata values, above paths.
pub(super) const FREE_TEXT_BOOSTS: [(&str, f32); 4] = [
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
pub(super) fn plain_words(ast: &UserInputAst) -> Option<Vec<String>> {
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
pub(super) enum Word {
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
pub(super) fn free_text_words(
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
pub(super) fn free_text_query(index: &SearchIndex, words: &[Word]) -> Box<dyn Query> {
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
pub(super) fn free_text_clauses(index: &SearchIndex, words: &[Word]) -> Vec<Box<dyn Query>> {
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
pub(super) struct FreeTextRanking {
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
    pub(super) fn new(
        index: &SearchIndex,
        searcher: &Searcher,
        groups: &[Word],
    ) -> Result<Self, SearchError> {
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
    pub(super) fn rescore(
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
