//! Whether an answer, as the caller heard it (transcribed), holds what a
//! test asks: words compared after lower-casing and dropping punctuation,
//! so "9 a.m." matches "9 a m" and "Nine." matches "nine".

/// Lower case, letters and digits only, single spaces, digits apart from
/// letters; a digit group separator (`1,200`) is dropped rather than split.
#[must_use]
pub fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let between_digits = |i: usize| {
            i > 0 && chars[i - 1].is_ascii_digit() && chars.get(i + 1).is_some_and(char::is_ascii_digit)
        };
        if c.is_alphanumeric() {
            // "7am" and "A17" read as "7 am" and "a 17", as they are said.
            let last = out.chars().last();
            if last.is_some_and(|l| l != ' ' && (l.is_ascii_digit() != c.is_ascii_digit())) {
                out.push(' ');
            }
            out.extend(c.to_lowercase());
        } else if c == '\'' || (c == ',' && between_digits(i)) {
            // "don't" stays one word; "1,200" stays one number.
        } else if !out.ends_with(' ') {
            out.push(' ');
        }
    }
    out.trim().to_owned()
}

/// Whether `phrase` (normalised) occurs in `heard` (normalised) on word boundaries.
fn contains(heard: &str, phrase: &str) -> bool {
    if phrase.is_empty() {
        return false;
    }
    let (h, p) = (format!(" {heard} "), format!(" {phrase} "));
    h.contains(&p)
}

/// Whether any `|`-separated alternative of `expectation` was heard.
#[must_use]
pub fn heard(heard: &str, expectation: &str) -> bool {
    let heard = normalise(heard);
    expectation.split('|').any(|alt| contains(&heard, &normalise(alt)))
}

/// What a turn's checks found: the failures, in words (empty: it passed).
#[must_use]
pub fn failures(
    text: &str,
    expect: &[String],
    reject: &[String],
    tool: Option<&str>,
    tools_run: &[String],
) -> Vec<String> {
    let mut out = Vec::new();
    for e in expect {
        if !heard(text, e) {
            out.push(format!("missing {e:?}"));
        }
    }
    for r in reject {
        if heard(text, r) {
            out.push(format!("said {r:?}"));
        }
    }
    if let Some(t) = tool
        && !tools_run.iter().any(|run| run == t)
    {
        out.push(format!("tool {t:?} not called"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_match_whatever_the_punctuation() {
        assert_eq!(normalise("We open at 9 a.m., Monday—Friday!"), "we open at 9 a m monday friday");
        assert_eq!(normalise("It's $1,200."), "its 1200");
        assert!(heard("We open at 9 a.m.", "nine|9"));
        assert!(heard("Nine o'clock.", "nine|9"));
        assert!(heard("That's 12 Harbour Street.", "harbour street"));
        assert!(heard("We open at 7am.", "7 am"));
        assert!(heard("Order A17 has shipped.", "a 17"));
    }

    #[test]
    fn a_word_is_not_found_inside_another() {
        assert!(!heard("We open at 19:00.", "9"));
        assert!(!heard("Ninety", "nine"));
        assert!(!heard("anything", "|"), "an empty alternative never matches");
    }

    #[test]
    fn failures_name_what_was_wrong() {
        let s = |v: &[&str]| v.iter().map(|&x| x.to_owned()).collect::<Vec<_>>();
        assert!(failures("Open at nine.", &s(&["nine|9"]), &s(&["sorry"]), None, &[]).is_empty());
        assert_eq!(
            failures("Sorry, we are closed.", &s(&["nine|9"]), &s(&["sorry"]), Some("book"), &s(&["lookup"])),
            ["missing \"nine|9\"", "said \"sorry\"", "tool \"book\" not called"]
        );
    }
}
