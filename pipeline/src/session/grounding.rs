//! Answers held to the agent's knowledge. On a fact question (the caller
//! asks, and the best retrieved passage is about what they asked), the
//! start of the model's answer is checked before anyone hears it: it must
//! carry one of the passage's key terms (its words and numbers that the
//! question did not already say) and no number that no passage and not the
//! question holds. An answer that ignores or contradicts the facts is
//! replaced by a short reading of the passage, and so is one that asks the
//! caller back. Later sentences are held to the same numbers: the first that
//! says a number no fact holds ends the reply. Pure; the reply task holds
//! each sentence back while [`Gate`] decides.
//!
//! Greetings, small talk and requests ("book me a table") are not fact
//! questions: the gate is never set up for them, so it never fires there.

/// Words too common to carry a fact.
const STOP_WORDS: &[&str] = &[
    "about", "also", "always", "been", "being", "call", "could", "does", "doing", "from", "have", "here",
    "just", "like", "make", "many", "much", "need", "please", "should", "sure", "tell", "than", "thank",
    "thanks", "that", "their", "them", "then", "there", "these", "they", "this", "those", "very", "want",
    "what", "when", "where", "which", "while", "will", "with", "would", "your", "yours", "know", "help",
    "happy", "glad",
];

/// Words that open a question.
const QUESTION_OPENERS: &[&str] = &[
    "what", "whats", "when", "where", "wheres", "which", "who", "whos", "whom", "whose", "why", "how",
    "hows", "do", "does", "did", "is", "isnt", "are", "arent", "can", "could", "will", "would", "should",
    "may", "have", "has",
];

/// Verbs of a request: the caller wants something done, not a fact.
const REQUESTS: &[&str] =
    &["book", "booking", "reserve", "reservation", "schedule", "cancel", "transfer", "speak", "talk"];

/// What a refusal or an apology says: on a fact question whose fact is in
/// the knowledge, reading the fact beats either (measured: the small model
/// opened "I'm sorry for your loss, but ..." and then said the day asked about).
const REFUSALS: &[&str] = &[
    "sorry",
    "apologize",
    "apologise",
    "cannot provide",
    "can't provide",
    "unable to",
    "don't have",
    "do not have",
    "not sure",
    "no information",
    "don't know",
];

/// The numbers spoken as words, as the model may write them.
const UNITS: &[(&str, u64)] = &[
    ("zero", 0),
    ("one", 1),
    ("two", 2),
    ("three", 3),
    ("four", 4),
    ("five", 5),
    ("six", 6),
    ("seven", 7),
    ("eight", 8),
    ("nine", 9),
    ("ten", 10),
    ("eleven", 11),
    ("twelve", 12),
    ("thirteen", 13),
    ("fourteen", 14),
    ("fifteen", 15),
    ("sixteen", 16),
    ("seventeen", 17),
    ("eighteen", 18),
    ("nineteen", 19),
];
const TENS: &[(&str, u64)] = &[
    ("twenty", 20),
    ("thirty", 30),
    ("forty", 40),
    ("fifty", 50),
    ("sixty", 60),
    ("seventy", 70),
    ("eighty", 80),
    ("ninety", 90),
];

/// Lower-case words, digits apart from letters ("7am" -> "7", "am").
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        let boundary = word.chars().last().is_some_and(|l| l.is_ascii_digit() != c.is_ascii_digit());
        if !c.is_alphanumeric() || boundary {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            if c == '\'' || !c.is_alphanumeric() {
                continue;
            }
        }
        word.extend(c.to_lowercase());
    }
    if !word.is_empty() {
        out.push(word);
    }
    // "don't" came out as "don", "t": join contractions back.
    out.into_iter().filter(|w| w != "t" && w != "s" && w != "re" && w != "ll" && w != "m").collect()
}

/// Whether two words share a stem: their first letters, as many as the
/// shorter has up to five ("saturdays" ~ "saturday", "open" ~ "opens").
fn same_stem(a: &str, b: &str) -> bool {
    let n = a.chars().count().min(b.chars().count()).min(5);
    a.chars().take(n).eq(b.chars().take(n))
}

/// Words of four letters or more that carry meaning.
fn content(text: &str) -> Vec<String> {
    words(text)
        .into_iter()
        .filter(|w| {
            w.chars().count() >= 4
                && !w.chars().all(|c| c.is_ascii_digit())
                && !STOP_WORDS.contains(&w.as_str())
        })
        .collect()
}

fn any_stem(words: &[String], word: &str) -> bool {
    words.iter().any(|w| same_stem(w, word))
}

/// The numbers in `text`, whether written as digits or as words
/// ("forty five" -> 45, "six hundred and fifty" -> 650, "six thirty" -> 6, 30).
fn numbers(text: &str) -> Vec<u64> {
    let mut out = Vec::new();
    let mut current: Option<u64> = None;
    let mut last_was_tens = false;
    for w in words(text) {
        let unit = UNITS.iter().find(|(n, _)| *n == w).map(|&(_, v)| v);
        let tens = TENS.iter().find(|(n, _)| *n == w).map(|&(_, v)| v);
        match (unit, tens, w.as_str()) {
            (Some(u), _, _) if last_was_tens && u < 10 => {
                current = current.map(|c| c + u);
                last_was_tens = false;
            }
            (Some(u), _, _) => {
                out.extend(current.take());
                current = Some(u);
                last_was_tens = false;
            }
            (_, Some(t), _) => {
                match current {
                    // "six hundred fifty": the tens add to the hundreds.
                    Some(c) if c >= 100 && c % 100 == 0 => current = Some(c + t),
                    _ => {
                        out.extend(current.take());
                        current = Some(t);
                    }
                }
                last_was_tens = true;
            }
            (_, _, "hundred") => {
                current = Some(current.unwrap_or(1) * 100);
                last_was_tens = false;
            }
            (_, _, "and") if current.is_some_and(|c| c >= 100) => {}
            _ => {
                out.extend(current.take());
                last_was_tens = false;
                if let Ok(n) = w.parse::<u64>() {
                    out.push(n);
                }
            }
        }
    }
    out.extend(current);
    out
}

/// Words a caller may put before a question ("Well, what ...", "Hi, do you ...").
const LEAD_INS: &[&str] =
    &["well", "so", "and", "but", "um", "uh", "oh", "okay", "ok", "hi", "hello", "hey", "yes"];

/// Whether `text` is a question asking for information (not a request).
fn asks(text: &str) -> bool {
    let w = words(text);
    if w.iter().any(|w| REQUESTS.contains(&w.as_str())) {
        return false;
    }
    let first = w.iter().find(|w| !LEAD_INS.contains(&w.as_str()));
    text.trim_end().ends_with('?') || first.is_some_and(|f| QUESTION_OPENERS.contains(&f.as_str()))
}

/// Words of greetings and thanks, which are fine to say back.
const COURTESIES: &[&str] =
    &["hello", "hi", "hey", "morning", "afternoon", "evening", "thanks", "thank", "bye", "goodbye"];

/// Whether `said` (the start of a reply, or all of it) is the caller's own
/// words said back: the words of a stretch of `caller` in order, with one
/// in four changed at most ("Can I park my car" -> "Can I park your car").
/// A small model does that when it cannot make sense of what it heard.
#[must_use]
pub fn repeats(caller: &str, said: &str) -> bool {
    // Who is speaking changes the pronouns, not the words.
    let person = |w: String| match w.as_str() {
        "my" | "your" => "your".to_owned(),
        "i" | "you" | "me" => "you".to_owned(),
        "am" | "are" => "are".to_owned(),
        _ => w,
    };
    let caller: Vec<String> = words(caller).into_iter().map(person).collect();
    let said: Vec<String> = words(said).into_iter().map(person).collect();
    // "Good morning!" for "Good morning!" is manners, not an echo.
    if said.len() > caller.len() || said.iter().any(|w| COURTESIES.contains(&w.as_str())) {
        return false;
    }
    (0..=caller.len() - said.len()).any(|start| {
        let changed = said.iter().zip(&caller[start..]).filter(|(a, b)| a != b).count();
        changed <= said.len() / 4
    })
}

/// The check of one fact question's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gate {
    /// What the answer must share one of: the passage's words the question
    /// did not say, and its numbers.
    key_terms: Vec<String>,
    key_numbers: Vec<u64>,
    /// Numbers an answer may say.
    known_numbers: Vec<String>,
    /// What the caller hears if the answer fails.
    fallback: String,
}

/// What the gate makes of an answer so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Say it (and the rest of the reply).
    Grounded,
    /// Say this instead, and drop the model's reply.
    Replace(String),
}

impl Gate {
    /// The gate for a turn: `None` unless `question` asks for information
    /// and `passages[0]` (the best) is about it (shares a content word, or
    /// answers the question's form: an address for "where").
    #[must_use]
    pub fn for_question(question: &str, passages: &[String]) -> Option<Self> {
        let best = passages.first()?;
        if !asks(question) {
            return None;
        }
        let asked = content(question);
        let passage = content(best);
        if !asked.iter().any(|a| any_stem(&passage, a)) && !crate::knowledge::answers_form(question, best) {
            return None;
        }
        let asked_numbers = numbers(question);
        let key_terms: Vec<String> = passage.into_iter().filter(|p| !any_stem(&asked, p)).collect();
        let key_numbers: Vec<u64> =
            numbers(best).into_iter().filter(|n| !asked_numbers.contains(n)).collect();
        if key_terms.is_empty() && key_numbers.is_empty() {
            return None;
        }
        let known_numbers = passages
            .iter()
            .chain(std::iter::once(&question.to_owned()))
            .flat_map(|p| numbers(p))
            .map(|n| n.to_string())
            .collect();
        Some(Self { key_terms, key_numbers, known_numbers, fallback: best.trim().to_owned() })
    }

    /// Whether `answer` says a number no fact holds ("we open at 10" when
    /// the facts say 9). A part of a fact's number is no contradiction
    /// ("nineteen ninety-eight").
    #[must_use]
    pub fn invents(&self, answer: &str) -> bool {
        numbers(answer).iter().map(u64::to_string).any(|n| !self.known_numbers.iter().any(|k| k.contains(&n)))
    }

    /// Whether `answer` ends by asking the caller something: on a fact
    /// question that is the model echoing the question back ("Are you open
    /// on Sundays?" for "Are you open on Mondays?"), never the fact.
    #[must_use]
    pub fn asks_back(answer: &str) -> bool {
        answer.trim_end().ends_with('?')
    }

    /// Whether `answer` apologises or refuses ("I'm sorry, ...", "I cannot
    /// provide ...").
    #[must_use]
    pub fn refuses(answer: &str) -> bool {
        // Lower case, apostrophes dropped ("can't" -> "cant"), other marks as spaces.
        let plain = |t: &str| -> String {
            let t: String = t
                .to_lowercase()
                .chars()
                .filter(|c| !matches!(c, '\'' | '\u{2019}'))
                .map(|c| if c.is_alphanumeric() { c } else { ' ' })
                .collect();
            format!(" {} ", t.split_whitespace().collect::<Vec<_>>().join(" "))
        };
        let said = plain(answer);
        REFUSALS.iter().any(|r| said.contains(&plain(r)))
    }

    /// Judges `answer` (the reply's first sentence or more).
    #[must_use]
    pub fn judge(&self, answer: &str) -> Verdict {
        if Self::asks_back(answer) || Self::refuses(answer) {
            return Verdict::Replace(self.fallback.clone());
        }
        let said_numbers = numbers(answer);
        let invented = self.invents(answer);
        // A number said in two parts ("nineteen ninety-eight") is one number.
        let joined = said_numbers.windows(2).filter_map(|w| format!("{}{}", w[0], w[1]).parse::<u64>().ok());
        let carries = said_numbers.iter().copied().chain(joined).any(|n| self.key_numbers.contains(&n))
            || content(answer).iter().any(|w| any_stem(&self.key_terms, w));
        if carries && !invented { Verdict::Grounded } else { Verdict::Replace(self.fallback.clone()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(question: &str, passage: &str) -> Option<Gate> {
        Gate::for_question(question, &[passage.to_owned()])
    }

    const HOURS: &str = "On Saturdays the bakery opens at 9 am and closes at 2 pm.";

    #[test]
    fn numbers_are_read_as_digits_and_as_words() {
        assert_eq!(numbers("We open at 7am, and it's forty five dollars."), [7, 45]);
        assert_eq!(numbers("six hundred and fifty"), [650]);
        assert_eq!(numbers("classes at six thirty"), [6, 30]);
        assert_eq!(numbers("one hundred twenty"), [120]);
        assert_eq!(numbers("nineteen ninety-eight"), [19, 98]);
        assert_eq!(numbers("call 555 0199"), [555, 199]);
    }

    #[test]
    fn a_right_answer_is_said() {
        let g = gate("What time do you open on Saturday?", HOURS).expect("a fact question");
        assert_eq!(g.judge("On Saturdays we open at nine in the morning."), Verdict::Grounded);
        assert_eq!(g.judge("We open at 9 am."), Verdict::Grounded);
    }

    #[test]
    fn an_answer_that_ignores_or_contradicts_the_facts_is_replaced() {
        let g = gate("What time do you open on Saturday?", HOURS).expect("a fact question");
        let reading = Verdict::Replace(HOURS.to_owned());
        // Echoes the question back.
        assert_eq!(g.judge("What time do you open on Saturday?"), reading);
        assert_eq!(g.judge("I'm sorry for your loss."), reading);
        // Says a time the facts do not hold.
        assert_eq!(g.judge("On Saturdays we open at 10 am."), reading);
        // Asks back, with one word changed: it carries a passage word, still no answer.
        let g = gate("Are you open on Mondays?", "We are open Tuesday to Sunday; closed on Mondays.")
            .expect("a fact question");
        assert_eq!(g.judge("Are you open on Sundays?"), Verdict::Replace(g.fallback.clone()));
        assert_eq!(g.judge("No, we are closed on Mondays."), Verdict::Grounded);
        // Apologises or refuses, even while naming a day of the passage.
        let refusals = [
            "I'm sorry for your loss, but I cannot tell you about Sundays.",
            "I don't have the hours for Tuesday.",
            "I can\u{2019}t provide the hours for Tuesday.",
        ];
        assert_eq!(g.judge("We can provide the hours: closed on Mondays."), Verdict::Grounded);
        for answer in refusals {
            assert_eq!(g.judge(answer), Verdict::Replace(g.fallback.clone()), "{answer}");
        }
    }

    #[test]
    fn the_callers_words_said_back_are_told_from_an_answer() {
        let caller = "You might have to pay for my first class.";
        assert!(repeats(caller, "You might have to pay for my first class."));
        assert!(repeats(
            "Can I call her to my car somewhere near you?",
            "Can I call her to your car somewhere near you?"
        ));
        assert!(repeats(caller, "You might"), "a start that may still become the caller's words");
        // An answer that takes up the question's words is not an echo.
        assert!(!repeats(
            "Can I park my car somewhere near you?",
            "Yes, you can park your car behind the building."
        ));
        assert!(!repeats(
            "Do I have to pay for my first class?",
            "The first class is free for new students."
        ));
        assert!(!repeats("Hi.", "Hi, how can I help you today?"));
        assert!(!repeats("Hello, how are you?", "Hello, how are you?"), "manners");
    }

    #[test]
    fn greetings_small_talk_and_requests_are_not_fact_questions() {
        for said in [
            "Hi, good morning.",
            "Thanks, that's all.",
            "I'd like a cake on Saturday.",
            "Can I book a table for Saturday?",
            "Could you schedule a visit on Saturday?",
        ] {
            assert_eq!(gate(said, HOURS), None, "{said}");
        }
        // A question about something the passage does not hold.
        assert_eq!(gate("Do you sell gluten free bread?", HOURS), None);
    }

    #[test]
    fn a_fact_question_without_a_question_mark_still_counts() {
        assert!(gate("what time do you open on saturday", HOURS).is_some());
        // Punctuation is the recogniser's guess; a lead-in does not hide the question.
        assert!(gate("Well, what time do you open on Saturday.", HOURS).is_some());
        assert!(gate("Well, I open my shop on Saturday.", HOURS).is_none());
        // A year split into two spoken numbers is not an invented number.
        let g = gate("How long have you been licensed?", "QuickFlow has been a licensed plumber since 1998.")
            .expect("asks");
        assert_eq!(g.judge("We have been licensed since nineteen ninety-eight."), Verdict::Grounded);
    }
}
