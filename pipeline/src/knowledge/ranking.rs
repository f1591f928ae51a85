//! Ranking an agent's passages for a question: embedding similarity (MiniLM),
//! plus the lexical score and the question's form (see the parent module).

use super::{Knowledge, answers_form, passages};
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

/// A passage that answers the question's form ranks above those that do
/// not (similarity and the lexical score together stay below 1.3).
const FORM_WEIGHT: f32 = 1.0;

/// Embedded passages of one agent's knowledge.
#[derive(Debug, Default)]
pub struct KnowledgeBase {
    /// Each passage with its embedding and content words.
    passages: Vec<(String, Vec<f32>, Vec<String>)>,
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

impl Knowledge for LocalKnowledge {
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
    use super::{content_words, lexical_score, word_weights};

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
}
