//! Text helpers for retrieval: the words a full-text query uses, and the date words added to
//! an item's indexed text so "when" questions and dated queries can match it. Pure.

use std::collections::HashSet;

/// Most words a full-text query uses (the rest are dropped, longest first kept).
pub const MAX_QUERY_TERMS: usize = 32;

/// Words too common to rank by; dropping them keeps full-text queries selective and fast.
const STOPWORDS: &[&str] = &[
    "a", "about", "after", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be", "been", "before", "but",
    "by", "can", "could", "did", "do", "does", "doing", "for", "from", "had", "has", "have", "having", "he", "her",
    "here", "hers", "him", "his", "how", "i", "if", "in", "into", "is", "it", "its", "just", "me", "my", "of", "on",
    "or", "our", "ours", "she", "so", "some", "than", "that", "the", "their", "them", "then", "there", "these", "they",
    "this", "those", "to", "too", "us", "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom",
    "why", "will", "with", "would", "you", "your", "yours",
];

/// The distinct, lower-cased, non-stopword words of `query` (letters and digits only), in
/// order of first appearance, at most [`MAX_QUERY_TERMS`].
pub fn query_terms(query: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for word in query.split(|c: char| !c.is_alphanumeric()) {
        if word.is_empty() {
            continue;
        }
        let lower = word.to_lowercase();
        if STOPWORDS.contains(&lower.as_str()) || lower.chars().count() > 64 {
            continue;
        }
        if seen.insert(lower.clone()) {
            out.push(lower);
        }
        if out.len() == MAX_QUERY_TERMS {
            break;
        }
    }
    out
}

/// A date in words, e.g. `8 May 2023 (Monday)`, from epoch ms (UTC).
pub fn date_words(at_ms: i64) -> Option<String> {
    let ts = jiff::Timestamp::from_millisecond(at_ms).ok()?;
    Some(ts.strftime("%-d %B %Y (%A)").to_string())
}

/// What the index reads for an item: its text, then when it happened in words.
pub fn search_text(text: &str, occurred_at_ms: Option<i64>) -> String {
    match occurred_at_ms.and_then(date_words) {
        Some(date) => format!("{} [{date}]", text.trim()),
        None => text.trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_drop_stopwords_and_punctuation() {
        assert_eq!(
            query_terms("When did we ship the v2 API? \"ship\" OR NOT"),
            vec!["ship", "v2", "api", "not"]
        );
        assert!(query_terms("the and of").is_empty());
    }

    #[test]
    fn dates_are_in_words() {
        // 2023-05-08T00:00:00Z
        assert_eq!(date_words(1_683_504_000_000).unwrap(), "8 May 2023 (Monday)");
        assert_eq!(search_text(" x ", Some(1_683_504_000_000)), "x [8 May 2023 (Monday)]");
        assert_eq!(search_text("x", None), "x");
    }
}
