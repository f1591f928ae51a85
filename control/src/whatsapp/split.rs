//! WhatsApp takes at most 4096 characters in a text message: a longer reply
//! goes out as several, each ending at a sentence where one ends in time.

/// The most characters one WhatsApp text message holds.
pub const MAX_CHARS: usize = 4096;

/// `text` in messages of at most `max` characters (not bytes), cut after a
/// sentence's end where one falls in the second half of a message, else
/// after a space, else anywhere. Nothing is lost but the spaces at a cut.
#[must_use]
pub fn messages(text: &str, max: usize) -> Vec<String> {
    let max = max.max(2);
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let chars: Vec<(usize, char)> = rest.char_indices().take(max + 1).collect();
        if chars.len() <= max {
            out.push(rest.to_owned());
            break;
        }
        // Byte offset just after the last character that fits.
        let limit = chars[max].0;
        let window = &rest[..limit];
        let half = chars[max / 2].0;
        let sentence = window
            .char_indices()
            .filter(|&(i, c)| i >= half && matches!(c, '.' | '!' | '?' | '\n'))
            .map(|(i, c)| i + c.len_utf8())
            .next_back();
        let space = window.rfind(char::is_whitespace).filter(|&i| i > 0);
        let cut = sentence.or(space).unwrap_or(limit);
        out.push(rest[..cut].trim_end().to_owned());
        rest = rest[cut..].trim_start();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_reply_is_one_message() {
        assert_eq!(messages("  We open at nine.  ", MAX_CHARS), vec!["We open at nine."]);
        assert!(messages("   ", MAX_CHARS).is_empty());
    }

    #[test]
    fn a_long_reply_is_cut_after_sentences_within_the_limit() {
        let sentence = "We bake sourdough every morning at six. ";
        let text = sentence.repeat(300);
        let parts = messages(&text, MAX_CHARS);
        assert!(parts.len() >= 3, "{}", parts.len());
        for p in &parts {
            assert!(p.chars().count() <= MAX_CHARS);
            assert!(p.ends_with('.'), "cut mid-sentence: ...{}", &p[p.len() - 20..]);
        }
        assert_eq!(parts.join(" "), text.trim());
    }

    #[test]
    fn characters_not_bytes_are_counted_and_no_character_is_split() {
        let text = "é".repeat(10);
        let parts = messages(&text, 4);
        assert_eq!(parts, vec!["éééé", "éééé", "éé"]);
        let words = messages("aaa bbb ccc", 5);
        assert_eq!(words, vec!["aaa", "bbb", "ccc"]);
    }
}
