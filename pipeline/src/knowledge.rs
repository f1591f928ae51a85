//! An agent's knowledge, retrieved by meaning for each question.
//!
//! The knowledge text is cut into passages of about a sentence, each
//! embedded once; a question retrieves the passages nearest in meaning,
//! which go into the LLM's request.
//!
//! Retrieval is hybrid: embedding similarity plus a lexical score, the share
//! of the question's content words found in the passage. Embeddings alone
//! underweight the exact terms callers ask about (days, product names):
//! "When are you open on Saturday?" ranked the weekday hours first.

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

/// Share of `query` words found in `passage`, matching on the first letters
/// both share, at most five (a crude stem: "saturday" finds "saturdays",
/// "open" finds "opens", "deliver" finds "delivery").
fn lexical_score(query: &[String], passage: &[String]) -> f32 {
    if query.is_empty() {
        return 0.0;
    }
    let same_stem = |a: &str, b: &str| {
        let n = a.chars().count().min(b.chars().count()).min(5);
        a.chars().take(n).eq(b.chars().take(n))
    };
    let found = query.iter().filter(|q| passage.iter().any(|p| same_stem(p, q))).count();
    found as f32 / query.len() as f32
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
        let mut scored: Vec<(&str, f32)> = self
            .passages
            .iter()
            .map(|(p, v, w)| (p.as_str(), similarity(&q, v) + LEXICAL_WEIGHT * lexical_score(&words, w)))
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
    use super::{content_words, lexical_score, passages};

    #[test]
    fn lexical_score_matches_content_words_by_stem() {
        let q = content_words("When are you open on Saturday?");
        assert_eq!(q, ["open", "saturday"]);
        assert_eq!(lexical_score(&q, &content_words("On Saturdays the bakery opens at 9 am.")), 1.0);
        assert_eq!(lexical_score(&q, &content_words("Opening hours: Monday to Friday.")), 0.5);
        assert_eq!(lexical_score(&[], &content_words("anything")), 0.0);
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
