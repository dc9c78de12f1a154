//! Block-max WAND with the caller's access filter inside it.
//!
//! tantivy prunes a sum of term scores with block-max WAND ("Faster Top-k Document Retrieval
//! Using Block-Max Indexes", Ding & Suel), but it can only hand a document to a callback after
//! scoring it: a filter applied there sees every document that beats the threshold, and the
//! threshold itself (the k-th best score *admitted*) stays low while most of what beats it is
//! thrown away. For a caller who may read a sixth of the index, that scored about six times as
//! many documents as the page needed.
//!
//! Here the filter is asked first: at each pivot (the first document whose summed maximum
//! scores could beat the threshold), the next document the caller may see at or after it is
//! looked up, and every posting list jumps straight there. Documents of a project the caller
//! may not read are contiguous in the index, so whole runs of blocks are skipped without being
//! decoded. The rest is tantivy's algorithm: block maxima checked before a document is scored
//! (with shallow seeks), alignment of the lists before the pivot, scoring of the pivot.
//!
//! The result is exactly what scoring every admitted document and keeping those above the
//! running threshold would give (tested against that in `tests`).

use tantivy::query::{Scorer as _, TermScorer};
use tantivy::{DocId, DocSet as _, Score, TERMINATED};

/// Calls `callback` with every document that `admit` accepts and whose summed score over
/// `scorers` beats the threshold (`threshold` at first, then what `callback` returns), in
/// increasing document order. `admit(target)` returns the first document at or after `target`
/// the caller may see ([`TERMINATED`] when none); it is called with increasing targets.
pub(crate) fn for_each_admitted(
    mut scorers: Vec<TermScorer>,
    admit: &mut dyn FnMut(DocId) -> DocId,
    mut threshold: Score,
    callback: &mut dyn FnMut(DocId, Score) -> Score,
) {
    scorers.retain(|scorer| scorer.doc() != TERMINATED);
    scorers.sort_by_key(|scorer| scorer.doc());
    loop {
        // The pivot: the first list whose maximum, with those of the lists before it, could
        // beat the threshold. No document before the pivot's can.
        let mut upper: Score = 0.0;
        let Some(before_pivot_len) = scorers.iter().position(|scorer| {
            upper += scorer.max_score();
            upper > threshold
        }) else {
            return;
        };
        let pivot_doc = scorers[before_pivot_len].doc();
        // The filter first: nothing between the pivot and the next document the caller may
        // see can enter the page, whatever it scores.
        let admitted = admit(pivot_doc);
        if admitted == TERMINATED {
            return;
        }
        if admitted > pivot_doc {
            seek_all_before(&mut scorers, admitted);
            continue;
        }
        let pivot_len = before_pivot_len
            + 1
            + scorers[before_pivot_len + 1..]
                .iter()
                .take_while(|scorer| scorer.doc() == pivot_doc)
                .count();
        // Block maxima of the lists that may hold the pivot, without decoding their blocks.
        let bound: Score = scorers[..pivot_len]
            .iter_mut()
            .map(|scorer| {
                scorer.seek_block(pivot_doc);
                scorer.block_max_score()
            })
            .sum();
        if bound <= threshold {
            // No document from the pivot to the end of the first of these blocks (or to the
            // next list's document) can beat the threshold: only these lists hold documents
            // there, and their blocks' maxima do not add up.
            let mut next = scorers[..pivot_len]
                .iter()
                .map(TermScorer::last_doc_in_block)
                .min()
                .unwrap_or(TERMINATED);
            if next != TERMINATED {
                next += 1;
            }
            if let Some(after) = scorers.get(pivot_len) {
                next = next.min(after.doc());
            }
            seek_all_before(&mut scorers, next);
            continue;
        }
        // Align the lists before the pivot on it; one that skips past it goes back in order
        // and the pivot is chosen again.
        let mut aligned = true;
        for scorer in &mut scorers[..before_pivot_len] {
            if scorer.seek(pivot_doc) != pivot_doc {
                aligned = false;
            }
        }
        if !aligned {
            reorder(&mut scorers);
            continue;
        }
        let score: Score = scorers[..pivot_len]
            .iter_mut()
            .map(|scorer| scorer.score())
            .sum();
        if score > threshold {
            threshold = callback(pivot_doc, score);
        }
        for scorer in &mut scorers[..pivot_len] {
            scorer.advance();
        }
        reorder(&mut scorers);
    }
}

/// Moves every list still before `target` to its first document at or after it.
fn seek_all_before(scorers: &mut Vec<TermScorer>, target: DocId) {
    for scorer in scorers.iter_mut() {
        if scorer.doc() < target {
            scorer.seek(target);
        }
    }
    reorder(scorers);
}

/// Drops exhausted lists and sorts the rest by their current document.
fn reorder(scorers: &mut Vec<TermScorer>) {
    scorers.retain(|scorer| scorer.doc() != TERMINATED);
    // Nearly sorted: the standard library's sort finds the runs.
    scorers.sort_by_key(|scorer| scorer.doc());
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use tantivy::collector::TopDocs;
    use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery};
    use tantivy::schema::{IndexRecordOption, Schema, TEXT};
    use tantivy::{Index, IndexWriter, TantivyDocument, Term};

    use super::*;

    /// Documents with their scores, best first.
    type Hits = Vec<(DocId, Score)>;

    const WORDS: [&str; 6] = ["alpha", "beta", "gamma", "delta", "omega", "sigma"];

    /// An index of `docs` (each a list of word indexes into [`WORDS`], repeated words raise
    /// their frequency), in two fields, committed as a single segment.
    fn index_of(docs: &[(Vec<usize>, Vec<usize>)]) -> (Index, [tantivy::schema::Field; 2]) {
        let mut builder = Schema::builder();
        let first = builder.add_text_field("first", TEXT);
        let second = builder.add_text_field("second", TEXT);
        let index = Index::create_in_ram(builder.build());
        let mut writer: IndexWriter = index.writer_with_num_threads(1, 15_000_000).unwrap();
        for (a, b) in docs {
            let mut document = TantivyDocument::default();
            let text = |words: &Vec<usize>| {
                words
                    .iter()
                    .map(|word| WORDS[*word])
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            document.add_text(first, text(a));
            document.add_text(second, text(b));
            writer.add_document(document).unwrap();
        }
        writer.commit().unwrap();
        (index, [first, second])
    }

    /// (word, field, boost) clauses as boosted term queries.
    fn clauses(
        fields: [tantivy::schema::Field; 2],
        terms: &[(usize, usize, f32)],
    ) -> Vec<Box<dyn Query>> {
        terms
            .iter()
            .map(|(word, field, boost)| {
                let query: Box<dyn Query> = Box::new(BoostQuery::new(
                    Box::new(TermQuery::new(
                        Term::from_field_text(fields[*field], WORDS[*word]),
                        IndexRecordOption::WithFreqs,
                    )),
                    *boost,
                ));
                query
            })
            .collect()
    }

    /// The best `limit` admitted documents by [`for_each_admitted`], and by scoring every
    /// document of the summed query and filtering afterwards.
    fn both_ways(
        docs: &[(Vec<usize>, Vec<usize>)],
        terms: &[(usize, usize, f32)],
        allowed: &[bool],
        limit: usize,
    ) -> (Hits, Hits) {
        let (index, fields) = index_of(docs);
        let reader = index.reader().unwrap();
        let searcher = reader.searcher();
        let segment = searcher.segment_reader(0);
        let scoring = tantivy::query::EnableScoring::enabled_from_searcher(&searcher);
        let mut scorers = Vec::new();
        for clause in clauses(fields, terms) {
            let scorer = clause
                .weight(scoring)
                .unwrap()
                .scorer(segment, 1.0)
                .unwrap();
            if let Ok(term) = scorer.downcast::<TermScorer>() {
                scorers.push(*term);
            }
        }
        let mut heap: Vec<(DocId, Score)> = Vec::new();
        let mut admit = |target: DocId| {
            (target..allowed.len() as DocId)
                .find(|doc| allowed[*doc as usize])
                .unwrap_or(TERMINATED)
        };
        for_each_admitted(scorers, &mut admit, Score::MIN, &mut |doc, score| {
            heap.push((doc, score));
            heap.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            heap.truncate(limit);
            if heap.len() == limit {
                heap[limit - 1].1
            } else {
                Score::MIN
            }
        });
        let query = BooleanQuery::new(
            clauses(fields, terms)
                .into_iter()
                .map(|clause| (Occur::Should, clause))
                .collect(),
        );
        let mut expected: Vec<(DocId, Score)> = searcher
            .search(
                &query,
                &TopDocs::with_limit(docs.len().max(1)).order_by_score(),
            )
            .unwrap()
            .into_iter()
            .map(|(score, address)| (address.doc_id, score))
            .filter(|(doc, _)| allowed[*doc as usize])
            .collect();
        expected.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        expected.truncate(limit);
        (heap, expected)
    }

    fn same_scores(found: &[(DocId, Score)], expected: &[(DocId, Score)]) {
        assert_eq!(found.len(), expected.len(), "{found:?} vs {expected:?}");
        for (a, b) in found.iter().zip(expected) {
            // Equal scores may be summed in another order: compare scores, not documents,
            // where they tie.
            assert!(
                (a.1 - b.1).abs() <= 1e-4 * b.1.abs().max(1.0),
                "{found:?} vs {expected:?}"
            );
            if (a.1 - b.1).abs() > 1e-4 {
                assert_eq!(a.0, b.0);
            }
        }
    }

    #[test]
    fn a_refused_run_is_skipped_and_the_admitted_best_are_found() {
        // 1,000 documents: the best ones (a word repeated in a short field) in a run the
        // caller may not read; the caller reads every tenth document elsewhere.
        let docs: Vec<(Vec<usize>, Vec<usize>)> = (0..1_000)
            .map(|doc| {
                if (300..600).contains(&doc) {
                    (vec![0, 0, 0], vec![1])
                } else {
                    (vec![0, 2, 3, 4, doc % 6], vec![1, 5, doc % 4])
                }
            })
            .collect();
        let allowed: Vec<bool> = (0..1_000)
            .map(|doc| !(300..600).contains(&doc) && doc % 10 == 0)
            .collect();
        let terms = [(0, 0, 4.0), (1, 1, 2.0), (5, 1, 1.0)];
        let (found, expected) = both_ways(&docs, &terms, &allowed, 10);
        assert_eq!(found.len(), 10);
        assert!(found.iter().all(|(doc, _)| allowed[*doc as usize]));
        same_scores(&found, &expected);
    }

    #[test]
    fn nothing_admitted_finds_nothing() {
        let docs: Vec<(Vec<usize>, Vec<usize>)> =
            (0..300).map(|doc| (vec![doc % 3], vec![1])).collect();
        let (found, expected) = both_ways(&docs, &[(0, 0, 1.0), (1, 1, 1.0)], &[false; 300], 5);
        assert!(found.is_empty() && expected.is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn finds_what_scoring_everything_and_filtering_finds(
            docs in prop::collection::vec(
                (prop::collection::vec(0..6_usize, 0..6), prop::collection::vec(0..6_usize, 0..4)),
                1..700,
            ),
            terms in prop::collection::vec((0..6_usize, 0..2_usize, 0.5_f32..4.0), 1..6),
            allowed_every in 1..5_usize,
            refused_run in 0..700_usize,
            limit in 1..20_usize,
        ) {
            let allowed: Vec<bool> = (0..docs.len())
                .map(|doc| doc % allowed_every == 0 && !(refused_run..refused_run + 150).contains(&doc))
                .collect();
            let (found, expected) = both_ways(&docs, &terms, &allowed, limit);
            same_scores(&found, &expected);
        }
    }
}
