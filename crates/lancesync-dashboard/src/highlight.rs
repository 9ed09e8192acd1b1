//! The query's words marked in a hit's text, so a person sees why it matched.

use maud::{Markup, html};

/// Words too common to mark.
const STOP_WORDS: [&str; 24] = [
    "a", "an", "and", "are", "as", "at", "be", "by", "do", "for", "from", "how", "i", "in", "is",
    "it", "of", "on", "or", "that", "the", "to", "what", "with",
];

/// The query's words worth marking, lower-cased.
fn terms(query: &str) -> Vec<String> {
    let mut terms: Vec<String> = query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
        .collect();
    terms.sort();
    terms.dedup();
    terms
}

/// Whether a word of the text is one of the terms: the same word, or (for words of four
/// letters or more) one a prefix of the other, as the full-text index's stemming treats
/// "water" and "watering".
fn matches(word: &str, terms: &[String]) -> bool {
    let word = word.to_lowercase();
    terms.iter().any(|t| {
        word == *t
            || (t.chars().count() >= 4
                && word.chars().count() >= 4
                && (word.starts_with(t.as_str()) || t.starts_with(word.as_str())))
    })
}

/// `text` split into runs, each marked or not.
pub(crate) fn segments<'a>(text: &'a str, query: &str) -> Vec<(&'a str, bool)> {
    let terms = terms(query);
    let mut out: Vec<(&'a str, bool)> = Vec::new();
    let mut in_word = false;
    let mut word_start = 0;
    let mut plain_start = 0;
    for (i, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        let alnum = c.is_alphanumeric() && i < text.len();
        if alnum && !in_word {
            in_word = true;
            word_start = i;
        } else if !alnum && in_word {
            in_word = false;
            let word = &text[word_start..i];
            if !terms.is_empty() && matches(word, &terms) {
                if plain_start < word_start {
                    out.push((&text[plain_start..word_start], false));
                }
                out.push((word, true));
                plain_start = i;
            }
        }
    }
    if plain_start < text.len() {
        out.push((&text[plain_start..], false));
    }
    out
}

/// `text` with the query's words in `<mark>`.
pub(crate) fn marked(text: &str, query: &str) -> Markup {
    html! {
        @for (piece, mark) in segments(text, query) {
            @if mark { mark { (piece) } } @else { (piece) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_words_are_marked_and_nothing_else() {
        let text = "Water the tomatoes; watering daily helps tomato plants.";
        let marked: Vec<&str> = segments(text, "tomato watering")
            .into_iter()
            .filter(|(_, m)| *m)
            .map(|(p, _)| p)
            .collect();
        assert_eq!(marked, ["Water", "tomatoes", "watering", "tomato"]);
        let joined: String = segments(text, "tomato watering")
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(joined, text, "nothing lost or added");
    }

    #[test]
    fn stop_words_and_empty_queries_mark_nothing() {
        assert!(segments("the cat", "the").iter().all(|(_, m)| !m));
        assert_eq!(segments("text", ""), [("text", false)]);
        assert_eq!(segments("", "x"), Vec::<(&str, bool)>::new());
    }

    #[test]
    fn marked_text_is_escaped() {
        let html = marked("<b>bread</b> & butter", "bread").into_string();
        assert_eq!(html, "&lt;b&gt;<mark>bread</mark>&lt;/b&gt; &amp; butter");
    }
}
