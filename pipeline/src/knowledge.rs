//! An agent's knowledge, retrieved by meaning for each question.
//!
//! The knowledge text is cut into passages of about a sentence, each
//! embedded once; a question retrieves the passages nearest in meaning,
//! which go into the LLM's request.
//!
//! Retrieval is hybrid: embedding similarity plus a lexical score, the share
//! of the question's content words found in the passage. Embeddings alone
//! underweight the exact terms callers ask about (days, product names):
//! "When are you open on Saturday?" ranked the weekday hours first. Words
//! few passages hold weigh more in that score than words all of them hold.
//! And a passage that answers the question's form ([`answers_form`]: an
//! address for "where", a price for "how much", a time of day for "what
//! time") ranks above those that do not.

use crate::providers::local::LocalModelError;
use crate::providers::local::embed::{Embedder, similarity};

/// Weight of the lexical score against cosine similarity (both 0..1).
const LEXICAL_WEIGHT: f32 = 0.3;

/// Words too common to say what a question is about.
const STOP_WORDS: &[&str] = &[
    "about", "also", "could", "does", "from", "have", "just", "like", "much", "please", "should", "tell",
    "than", "that", "their", "them", "then", "there", "they", "this", "what", "when", "where", "which",
    "will", "with", "would", "your",
];

/// Lower-case words of four letters or more that are not stop words.
fn content_words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .filter(|w| w.chars().count() >= 4 && !STOP_WORDS.contains(&w.as_str()))
        .collect()
}

/// Whether two words share a stem: the first letters both have, at most
/// five (a crude stem: "saturday" finds "saturdays", "open" finds "opens",
/// "deliver" finds "delivery").
fn same_stem(a: &str, b: &str) -> bool {
    let n = a.chars().count().min(b.chars().count()).min(5);
    a.chars().take(n).eq(b.chars().take(n))
}

/// How much each `query` word says about which passage is meant: rare
/// words weigh more (BM25's inverse document frequency over `passages`), so
/// "Friday" outweighs "clinic" when every passage names the clinic.
fn word_weights(query: &[String], passages: &[&[String]]) -> Vec<f32> {
    let n = passages.len() as f32;
    query
        .iter()
        .map(|q| {
            let df = passages.iter().filter(|p| p.iter().any(|w| same_stem(w, q))).count() as f32;
            (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
        })
        .collect()
}

/// The weighted share of `query` words found in `passage` (0..1).
fn lexical_score(query: &[String], weights: &[f32], passage: &[String]) -> f32 {
    let total: f32 = weights.iter().sum();
    if total <= 0.0 {
        return 0.0;
    }
    let found: f32 = query
        .iter()
        .zip(weights)
        .filter(|(q, _)| passage.iter().any(|p| same_stem(p, q)))
        .map(|(_, w)| w)
        .sum();
    found / total
}

/// What a question asks for by its form, and words of a passage that answer
/// that form: neither the embedding nor shared words find "... is at 7 Canal
/// Road" for "Where's your shop?", or "costs 45 dollars" for "What do you
/// charge?". (Question words, then answer words; `$` is a word here.)
const FORMS: &[(&[&str], &[&str])] = &[
    (
        &["where", "wheres", "address", "located", "location", "directions"],
        &[
            "street",
            "road",
            "avenue",
            "lane",
            "drive",
            "boulevard",
            "square",
            "floor",
            "located",
            "address",
            "corner",
            "opposite",
            "behind",
            "near",
            "next",
        ],
    ),
    (
        &[
            "much",
            "cost",
            "costs",
            "price",
            "prices",
            "charge",
            "charges",
            "fee",
            "fees",
            "expensive",
            "cheap",
        ],
        &[
            "$", "dollar", "dollars", "cost", "costs", "price", "prices", "priced", "fee", "free", "euros",
            "pounds",
        ],
    ),
    // "When" is left out: it asks for dates and years as often as for hours.
    (&["time", "late", "early", "hours"], &["am", "pm", "noon", "midnight", "oclock", "hours"]),
];

/// A passage that answers the question's form ranks above those that do
/// not (similarity and the lexical score together stay below 1.3).
const FORM_WEIGHT: f32 = 1.0;

/// Lower-case words of `text`, `$` a word of its own.
fn all_words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric() && c != '$')
        .flat_map(|w| {
            let (dollar, rest) = w.split_at(usize::from(w.starts_with('$')));
            [dollar, rest]
        })
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// Whether `passage` answers the form of `question` (a place for "where", a
/// price for "how much").
#[must_use]
pub fn answers_form(question: &str, passage: &str) -> bool {
    let asked: Vec<String> = all_words(question).collect();
    let said: Vec<String> = all_words(passage).collect();
    FORMS.iter().any(|(asks, answers)| {
        asked.iter().any(|w| asks.contains(&w.as_str())) && said.iter().any(|w| answers.contains(&w.as_str()))
    })
}

/// The words an agent's callers may say that a general recogniser does not
/// expect, for biasing it: the agent's name, then the names in its knowledge
/// ("Cigna", "Doctor Patel", "Maple Avenue", "QuickFlow"): capitalised words
/// that are not only a sentence's first word, neighbours joined, each once,
/// in order, at most `max`.
#[must_use]
pub fn vocabulary(name: &str, text: &str, max: usize) -> Vec<String> {
    let sentences: Vec<Vec<&str>> = text
        .split(['.', '!', '?', ':', ';', '\n'])
        .map(|s| {
            s.split(|c: char| c.is_whitespace() || c == ',')
                .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
                .filter(|w| !w.is_empty())
                .collect()
        })
        .collect();
    let capital = |w: &str| w.chars().next().is_some_and(char::is_uppercase);
    let inside: Vec<&str> =
        sentences.iter().flat_map(|s| s.iter().skip(1)).copied().filter(|w| capital(w)).collect();
    // A name: capitalised inside a sentence somewhere, or with a capital inside.
    let is_name = |w: &str| capital(w) && (inside.contains(&w) || w.chars().skip(1).any(char::is_uppercase));
    let mut out: Vec<String> = Vec::new();
    let mut add = |term: String| {
        if !term.is_empty() && !out.iter().any(|t| t.eq_ignore_ascii_case(&term)) {
            out.push(term);
        }
    };
    add(name.split_whitespace().collect::<Vec<_>>().join(" "));
    for sentence in &sentences {
        let mut run: Vec<&str> = Vec::new();
        for &word in sentence {
            if is_name(word) {
                run.push(word);
            } else {
                add(std::mem::take(&mut run).join(" "));
            }
        }
        add(run.join(" "));
    }
    out.truncate(max);
    out
}

/// Fragments shorter than this ("Opening hours:") join the next sentence.
const MIN_PASSAGE_CHARS: usize = 16;

/// Embedded passages of one agent's knowledge.
#[derive(Debug, Default)]
pub struct KnowledgeBase {
    /// Each passage with its embedding and content words.
    passages: Vec<(String, Vec<f32>, Vec<String>)>,
}

/// Splits text into passages of about one sentence: small models answer
/// best from one or two precise facts rather than whole paragraphs.
#[must_use]
pub fn passages(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for paragraph in text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        let paragraph = paragraph.split_whitespace().collect::<Vec<_>>().join(" ");
        let first_of_paragraph = out.len();
        let mut current = String::new();
        for piece in paragraph
            .split_inclusive(". ")
            .flat_map(|s| s.split_inclusive("? "))
            .flat_map(|s| s.split_inclusive("! "))
        {
            current.push_str(piece);
            if current.trim().len() >= MIN_PASSAGE_CHARS {
                out.push(std::mem::take(&mut current).trim().to_owned());
            }
        }
        let tail = current.trim();
        let has_sentence_before = out.len() > first_of_paragraph;
        match out.last_mut() {
            // A short tail belongs with the sentence before it, in its paragraph.
            Some(last) if has_sentence_before && !tail.is_empty() && tail.len() < MIN_PASSAGE_CHARS => {
                last.push(' ');
                last.push_str(tail);
            }
            _ if !tail.is_empty() => out.push(tail.to_owned()),
            _ => {}
        }
    }
    out
}

impl KnowledgeBase {
    /// Embeds every passage of `text`.
    ///
    /// # Errors
    /// The embedder failing.
    pub fn build(embedder: &Embedder, text: &str) -> Result<Self, LocalModelError> {
        let passages = passages(text)
            .into_iter()
            .map(|p| embedder.embed(&p).map(|v| (content_words(&p), v, p)).map(|(w, v, p)| (p, v, w)))
            .collect::<Result<_, _>>()?;
        Ok(Self { passages })
    }

    /// Number of passages.
    #[must_use]
    pub fn len(&self) -> usize {
        self.passages.len()
    }

    /// True when there is no knowledge.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.passages.is_empty()
    }

    /// The `k` passages that best answer `query`, best first, with their score.
    ///
    /// # Errors
    /// The embedder failing.
    pub fn retrieve(
        &self,
        embedder: &Embedder,
        query: &str,
        k: usize,
    ) -> Result<Vec<(&str, f32)>, LocalModelError> {
        if self.passages.is_empty() {
            return Ok(Vec::new());
        }
        let q = embedder.embed(query)?;
        let words = content_words(query);
        let all: Vec<&[String]> = self.passages.iter().map(|(_, _, w)| w.as_slice()).collect();
        let weights = word_weights(&words, &all);
        let mut scored: Vec<(&str, f32)> = self
            .passages
            .iter()
            .map(|(p, v, w)| {
                let form = if answers_form(query, p) { FORM_WEIGHT } else { 0.0 };
                (p.as_str(), similarity(&q, v) + LEXICAL_WEIGHT * lexical_score(&words, &weights, w) + form)
            })
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        scored.truncate(k);
        Ok(scored)
    }
}

/// An agent's knowledge with the embedder that searches it: what a
/// session retrieves from, for any LLM provider.
#[derive(Debug)]
pub struct LocalKnowledge {
    embedder: std::sync::Arc<Embedder>,
    base: KnowledgeBase,
}

impl LocalKnowledge {
    /// Embeds `text`'s passages.
    ///
    /// # Errors
    /// The embedder failing.
    pub fn build(embedder: std::sync::Arc<Embedder>, text: &str) -> Result<Self, LocalModelError> {
        let base = KnowledgeBase::build(&embedder, text)?;
        Ok(Self { embedder, base })
    }
}

impl crate::session::Knowledge for LocalKnowledge {
    fn retrieve(&self, query: &str, k: usize) -> Vec<String> {
        match self.base.retrieve(&self.embedder, query, k) {
            Ok(found) => found.into_iter().map(|(p, _)| p.to_owned()).collect(),
            Err(e) => {
                // Answering without knowledge beats not answering.
                tracing::warn!(error = %e, "knowledge retrieval failed");
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{answers_form, content_words, lexical_score, passages, word_weights};

    #[test]
    fn the_vocabulary_is_the_names_in_the_knowledge() {
        let text = "Brightsmile Dental is at 48 Maple Avenue.\nOn Fridays the clinic closes at 1 pm. \
                    The clinic accepts Delta Dental and Cigna. The dentists are Doctor Patel and Doctor Romero.\n\
                    QuickFlow serves the Eastwood district.";
        assert_eq!(
            super::vocabulary("Brightsmile  Dental", text, 20),
            [
                "Brightsmile Dental",
                "Dental",
                "Maple Avenue",
                "Fridays",
                "Delta Dental",
                "Cigna",
                "Doctor Patel",
                "Doctor Romero",
                "QuickFlow",
                "Eastwood"
            ]
        );
        assert_eq!(super::vocabulary("Shop", text, 2), ["Shop", "Dental"]);
    }

    #[test]
    fn a_place_answers_where_and_a_price_answers_how_much() {
        let address = "Spoke and Chain is at 7 Canal Road, next to the train station.";
        let price = "Fixing a flat tyre costs $15.";
        assert!(answers_form("Where's your shop?", address));
        assert!(!answers_form("Where's your shop?", price));
        assert!(answers_form("What do you charge?", price));
        assert!(answers_form("How much is it?", "A tune-up is 45 dollars."));
        assert!(!answers_form("When do you open?", address), "no form asked");
    }

    #[test]
    fn lexical_score_matches_content_words_by_stem() {
        let q = content_words("When are you open on Saturday?");
        assert_eq!(q, ["open", "saturday"]);
        let even = [1.0, 1.0];
        assert_eq!(lexical_score(&q, &even, &content_words("On Saturdays the bakery opens at 9 am.")), 1.0);
        assert_eq!(lexical_score(&q, &even, &content_words("Opening hours: Monday to Friday.")), 0.5);
        assert_eq!(lexical_score(&[], &[], &content_words("anything")), 0.0);
    }

    #[test]
    fn a_word_few_passages_hold_weighs_more_than_one_they_all_hold() {
        let passages: Vec<Vec<String>> = [
            "The clinic opens Monday to Thursday.",
            "Fridays are half days.",
            "The clinic opens at 8 am.",
            "The clinic is near the station.",
        ]
        .iter()
        .map(|p| content_words(p))
        .collect();
        let all: Vec<&[String]> = passages.iter().map(Vec::as_slice).collect();
        let q = content_words("Does the clinic open on Friday?");
        let weights = word_weights(&q, &all);
        let score = |i: usize| lexical_score(&q, &weights, &passages[i]);
        // Unweighted, the first would win: two words of three against one.
        assert!(score(1) > score(0), "Friday outweighs clinic and open: {} vs {}", score(1), score(0));
        assert!(score(0) > score(3));
    }

    #[test]
    fn sentences_are_passages_and_fragments_join_their_neighbours() {
        let text = "Opening hours: Monday to Friday from 7 am to 6 pm. On Saturdays we open at 9 am.\n\n  Closed on\n Sundays. Ok.\n\nShort.";
        assert_eq!(
            passages(text),
            [
                "Opening hours: Monday to Friday from 7 am to 6 pm.",
                "On Saturdays we open at 9 am.",
                "Closed on Sundays. Ok.",
                "Short.",
            ]
        );
    }
}
