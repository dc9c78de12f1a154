//! Highlights: a short snippet of a hit's own text with the words of the query marked, built
//! only from the hit's stored document (never from another document or the index).

use serde_json::Value;

/// Longest snippet, in characters (before marks and escaping).
const SNIPPET_CHARS: usize = 160;

/// Operator words of the query language, never highlighted.
const OPERATORS: &[&str] = &["and", "or", "not", "to"];

/// The words to mark from a query text: the values of `field:value` clauses and bare words,
/// lower-cased and split like the free-text tokenizer (on anything not alphanumeric). With
/// `prefix`, the last word also marks the words it starts.
#[must_use]
pub fn query_words(query: &str) -> Vec<String> {
    let mut words = Vec::new();
    for token in query.split_whitespace() {
        let value = token.rsplit_once(':').map_or(token, |(_, value)| value);
        for word in value.split(|c: char| !c.is_alphanumeric()) {
            let word = word.to_lowercase();
            if !word.is_empty() && !OPERATORS.contains(&word.as_str()) && !words.contains(&word) {
                words.push(word);
            }
        }
    }
    words.truncate(32);
    words
}

/// Every string of a document (the `_extra` object left out but its `path`), in order.
fn strings(value: &Value, top: bool, out: &mut Vec<String>) {
    match value {
        Value::String(text) => out.push(text.clone()),
        Value::Array(items) => items.iter().for_each(|item| strings(item, false, out)),
        Value::Object(object) => {
            for (key, child) in object {
                if top && key == "_extra" {
                    continue;
                }
                strings(child, false, out);
            }
        }
        _ => {}
    }
}

fn escape(text: &str, out: &mut String) {
    for character in text.chars() {
        match character {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
}

/// Whether a word of the text matches one of the query's words (the last one as a prefix
/// when `prefix`).
fn matches(word: &str, words: &[String], prefix: bool) -> bool {
    let lower = word.to_lowercase();
    words.iter().enumerate().any(|(index, wanted)| {
        lower == *wanted
            || (prefix && index + 1 == words.len() && lower.starts_with(wanted.as_str()))
    })
}

/// The snippet of `document` for `words`: the first string with a matching word, cut to about
/// 160 characters around the first match, HTML-escaped, with matches in
/// `<em>…</em>`. `None` when no string of the document matches.
#[must_use]
pub fn snippet(document: &Value, words: &[String], prefix: bool) -> Option<String> {
    if words.is_empty() {
        return None;
    }
    let mut texts = Vec::new();
    strings(document, true, &mut texts);
    if let Some(path) = document["_extra"]["path"].as_str() {
        texts.push(path.to_owned());
    }
    for text in texts {
        // Word boundaries (byte offsets) of the alphanumeric runs.
        let mut runs = Vec::new();
        let mut start = None;
        for (offset, character) in text.char_indices() {
            match (character.is_alphanumeric(), start) {
                (true, None) => start = Some(offset),
                (false, Some(begin)) => {
                    runs.push((begin, offset));
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(begin) = start {
            runs.push((begin, text.len()));
        }
        let hits: Vec<(usize, usize)> = runs
            .into_iter()
            .filter(|(begin, end)| matches(&text[*begin..*end], words, prefix))
            .collect();
        let Some(&(first, _)) = hits.first() else {
            continue;
        };
        // A window of characters around the first match.
        let before = text[..first].chars().count();
        let skip = before.saturating_sub(SNIPPET_CHARS / 3);
        let window_start = text
            .char_indices()
            .nth(skip)
            .map_or(0, |(offset, _)| offset);
        let window_end = text[window_start..]
            .char_indices()
            .nth(SNIPPET_CHARS)
            .map_or(text.len(), |(offset, _)| window_start + offset);
        let mut out = String::new();
        if window_start > 0 {
            out.push('…');
        }
        let mut cursor = window_start;
        for (begin, end) in hits {
            if begin < window_start || end > window_end {
                continue;
            }
            escape(&text[cursor..begin], &mut out);
            out.push_str("<em>");
            escape(&text[begin..end], &mut out);
            out.push_str("</em>");
            cursor = end;
        }
        escape(&text[cursor..window_end], &mut out);
        if window_end < text.len() {
            out.push('…');
        }
        return Some(out);
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn query_words_skip_fields_and_operators() {
        assert_eq!(
            query_words("BERT AND title:\"base model\" OR NOT x.json"),
            ["bert", "base", "model", "x", "json"]
        );
    }

    #[test]
    fn the_first_matching_string_is_marked_and_escaped() {
        let document = json!({"title": "ResNet", "description": "A <b>BERT</b> base model & more",
            "_extra": {"path": "config/bert.json", "project_id": "bert"}});
        assert_eq!(
            snippet(&document, &query_words("bert"), false).unwrap(),
            "A &lt;b&gt;<em>BERT</em>&lt;/b&gt; base model &amp; more"
        );
        assert_eq!(
            snippet(&document, &query_words("ber"), true).unwrap(),
            "A &lt;b&gt;<em>BERT</em>&lt;/b&gt; base model &amp; more"
        );
        assert_eq!(snippet(&document, &query_words("ber"), false), None);
        // Only the hit's own text: `_extra` values other than the path are not used.
        assert_eq!(
            snippet(&document, &query_words("config"), false).unwrap(),
            "<em>config</em>/bert.json"
        );
    }

    #[test]
    fn long_text_is_cut_around_the_match() {
        let long = format!("{} needle {}", "hay ".repeat(100), "straw ".repeat(100));
        let document = json!({"notes": long});
        let snippet = snippet(&document, &query_words("needle"), false).unwrap();
        assert!(
            snippet.starts_with('…') && snippet.ends_with('…'),
            "{snippet}"
        );
        assert!(snippet.contains("<em>needle</em>"));
        assert!(snippet.chars().count() < SNIPPET_CHARS + 20);
    }
}
