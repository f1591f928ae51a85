//! Cuts the LLM's streamed text into pieces worth sending to TTS on their
//! own: whole sentences, or, for the first piece of a reply, a long enough
//! clause, so the caller hears the agent start before the model has
//! finished. Pure; no allocation beyond the text itself.

/// The first piece may end at a clause (`,` `;` `:` `—`) once it is this long.
const FIRST_CLAUSE_MIN_CHARS: usize = 24;
/// A sentence this short is held back and joined to the next one, so TTS
/// does not get a lone "Sure." with its own prosody and request overhead.
const MIN_SENTENCE_CHARS: usize = 12;
/// Text with no break at all is cut at a space beyond this length.
const MAX_CHARS: usize = 240;

/// Abbreviations whose full stop does not end a sentence.
const ABBREVIATIONS: &[&str] =
    &["mr", "mrs", "ms", "dr", "st", "vs", "etc", "e.g", "i.e", "no", "approx", "inc"];

/// Accumulates deltas and hands out speakable pieces.
#[derive(Debug, Default)]
pub struct SentenceSplitter {
    buffer: String,
    emitted: usize,
}

impl SentenceSplitter {
    /// An empty splitter for one reply.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a delta; returns the pieces now complete.
    pub fn push(&mut self, delta: &str) -> Vec<String> {
        self.buffer.push_str(delta);
        let mut out = Vec::new();
        while let Some(end) = self.find_break() {
            let piece: String = self.buffer.drain(..end).collect();
            let piece = piece.trim();
            if !piece.is_empty() {
                out.push(piece.to_owned());
                self.emitted += 1;
            }
        }
        out
    }

    /// The rest of the text, at the end of the reply.
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.buffer);
        let rest = rest.trim();
        (!rest.is_empty()).then(|| rest.to_owned())
    }

    /// The byte index just past the first break in the buffer, if any.
    fn find_break(&self) -> Option<usize> {
        let text = &self.buffer;
        let mut chars = text.char_indices().peekable();
        let mut last_space = None;
        while let Some((i, c)) = chars.next() {
            let end = i + c.len_utf8();
            // A break needs the following whitespace, so "3.5" and "e.g." mid-word wait.
            let followed_by_space = matches!(chars.peek(), Some((_, n)) if n.is_whitespace());
            if c.is_whitespace() && i <= MAX_CHARS {
                last_space = Some(i);
            }
            if !followed_by_space {
                continue;
            }
            let long = text[..end].trim().chars().count();
            match c {
                '.' | '!' | '?' if long >= MIN_SENTENCE_CHARS && !ends_with_abbreviation(&text[..i]) => {
                    return Some(end);
                }
                ',' | ';' | ':' | '—' if self.emitted == 0 && long >= FIRST_CLAUSE_MIN_CHARS => {
                    return Some(end);
                }
                _ => {}
            }
        }
        if text.len() > MAX_CHARS { last_space.filter(|&i| i > 0) } else { None }
    }
}

fn ends_with_abbreviation(before_dot: &str) -> bool {
    let word = before_dot.rsplit(|c: char| c.is_whitespace()).next().unwrap_or("");
    let word = word.trim_start_matches(|c: char| !c.is_alphanumeric()).to_ascii_lowercase();
    // A single letter ("J. Smith") is an initial.
    ABBREVIATIONS.contains(&word.as_str())
        || (word.chars().count() == 1 && word.chars().all(char::is_alphabetic))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(deltas: &[&str]) -> Vec<String> {
        let mut s = SentenceSplitter::new();
        let mut out: Vec<String> = deltas.iter().flat_map(|d| s.push(d)).collect();
        out.extend(s.finish());
        out
    }

    #[test]
    fn sentences_come_out_as_soon_as_they_end() {
        let mut s = SentenceSplitter::new();
        assert!(s.push("We open at nine").is_empty());
        assert!(s.push(" in the morning.").is_empty(), "needs the following space to be sure");
        assert_eq!(s.push(" And we close"), vec!["We open at nine in the morning."]);
        assert_eq!(s.finish().as_deref(), Some("And we close"));
    }

    #[test]
    fn the_first_piece_may_be_a_clause_later_ones_are_sentences() {
        let out = split(&[
            "Thanks for waiting, I looked that up for you, and ",
            "the answer is yes. Anything else?",
        ]);
        assert_eq!(
            out,
            // "Thanks for waiting," alone is too short to be worth a request of its own.
            vec!["Thanks for waiting, I looked that up for you,", "and the answer is yes.", "Anything else?"]
        );
    }

    #[test]
    fn numbers_abbreviations_and_initials_do_not_break() {
        let out =
            split(&["It costs 3.50 dollars at St. Mary's, says Dr. J. Smith, e.g. today. Bye now, friend."]);
        assert_eq!(
            out,
            vec![
                "It costs 3.50 dollars at St. Mary's,",
                "says Dr. J. Smith, e.g. today.",
                "Bye now, friend."
            ]
        );
    }

    #[test]
    fn short_sentences_join_the_next() {
        assert_eq!(split(&["Sure. We open at nine every day. "]), vec!["Sure. We open at nine every day."]);
    }

    #[test]
    fn text_without_breaks_is_cut_at_a_space() {
        let long = "word ".repeat(80);
        let out = split(&[&long]);
        assert!(out.len() >= 2, "{out:?}");
        assert!(out.iter().all(|p| p.len() <= MAX_CHARS + 5));
        assert_eq!(out.join(" "), long.trim());
    }

    #[test]
    fn multibyte_text_is_safe() {
        let out = split(&["Café crème — très bien, merci beaucoup. Ça va? Oui."]);
        assert_eq!(out.concat().replace(' ', ""), "Cafécrème—trèsbien,mercibeaucoup.Çava?Oui.");
    }
}
