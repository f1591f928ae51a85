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
//!
//! The ranking ([`ranking`], with the `embeddings` feature) embeds with
//! MiniLM; the rest here is plain text work.

#[cfg(feature = "embeddings")]
mod ranking;

#[cfg(feature = "embeddings")]
pub use ranking::{KnowledgeBase, LocalKnowledge};

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

/// Passages of an agent's knowledge that answer a question.
pub trait Knowledge: Send + Sync {
    /// Up to `k` passages for `query`, best first. Runs on a blocking thread.
    fn retrieve(&self, query: &str, k: usize) -> Vec<String>;
}

/// Fragments shorter than this ("Opening hours:") join the next sentence.
const MIN_PASSAGE_CHARS: usize = 16;

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

#[cfg(test)]
mod tests {
    use super::{answers_form, passages};

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
