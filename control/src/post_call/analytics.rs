//! What a conversation was about, read by the agent's language model from
//! the transcript: intent, summary, one of five categories with a quote that
//! justifies it, and sentiment overall and per caller turn.
//!
//! The model is asked for JSON fitting [`schema`]; its reply is checked
//! ([`validate`]) beyond what a schema says: the quote must be in the
//! transcript, there must be one sentiment per caller line. A reply that
//! fails, or a provider that fails, is asked again; after the last attempt a
//! local reading fills the record ([`fallback`]: a sentiment lexicon and
//! keyword rules), marked `source: fallback`.

use serde::{Deserialize, Serialize};
use voxgate_pipeline::providers::{
    CancellationToken, ChatMessage, ChatRequest, LanguageModel, LlmEvent, ResponseSchema, Role,
};
use voxgate_pipeline::session::{Speaker, TranscriptLine};

/// The five ways a conversation is classed.
pub const CATEGORIES: [&str; 5] =
    ["Immediate Buyer", "Potential Buyer", "Just Exploring", "Facing Issue", "Others"];

/// The analytics of one conversation, as stored on the call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Analytics {
    /// What the caller wanted, in a few words.
    pub intent: String,
    /// What happened, in a sentence or three.
    pub summary: String,
    /// One of `Immediate Buyer`, `Potential Buyer`, `Just Exploring`, `Facing Issue`, `Others`.
    pub category: String,
    /// Why that category.
    pub justification: String,
    /// Words from the conversation that show it, verbatim.
    pub quote: String,
    /// Overall sentiment of the caller, -1 (negative) to 1 (positive).
    pub sentiment: f64,
    /// The caller's sentiment at each of their lines.
    pub turn_sentiments: Vec<TurnSentiment>,
    /// `llm`, or `fallback` when the model gave no valid answer.
    pub source: String,
    /// The model asked (or `lexicon` for the fallback).
    pub model: String,
    /// How many times the model was asked.
    pub attempts: u32,
    /// Why earlier attempts were refused (no transcript text).
    pub errors: Vec<String>,
}

/// One caller line's sentiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TurnSentiment {
    /// The turn the line belongs to.
    pub turn: u64,
    /// -1 to 1.
    pub sentiment: f64,
}

/// What the model must answer: the fields it fills.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelAnswer {
    intent: String,
    summary: String,
    category: String,
    justification: String,
    quote: String,
    sentiment: f64,
    turn_sentiments: Vec<f64>,
}

/// The JSON schema of the model's answer.
#[must_use]
pub fn schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "intent": { "type": "string", "description": "what the caller wanted, in a few words" },
            "summary": { "type": "string", "description": "what happened, in one to three sentences" },
            "category": { "type": "string", "enum": CATEGORIES },
            "justification": { "type": "string", "description": "why this category" },
            "quote": { "type": "string", "description": "words copied exactly from the conversation that show the category" },
            "sentiment": { "type": "number", "minimum": -1, "maximum": 1 },
            "turn_sentiments": {
                "type": "array",
                "items": { "type": "number", "minimum": -1, "maximum": 1 },
                "description": "one number per caller line, in order"
            }
        },
        "required": ["intent", "summary", "category", "justification", "quote", "sentiment", "turn_sentiments"],
        "additionalProperties": false
    })
}

/// The caller's lines, which get a sentiment each.
fn caller_lines(transcript: &[TranscriptLine]) -> impl Iterator<Item = &TranscriptLine> {
    transcript.iter().filter(|l| l.speaker == Speaker::Caller && !l.text.trim().is_empty())
}

/// The request that asks `transcript`'s analytics.
#[must_use]
pub fn request(transcript: &[TranscriptLine]) -> ChatRequest {
    let callers = caller_lines(transcript).count();
    let conversation: String = transcript
        .iter()
        .filter(|l| !l.text.trim().is_empty())
        .map(|l| {
            let who = match l.speaker {
                Speaker::Caller => "Caller",
                Speaker::Agent => "Agent",
                // A person of the team who took the conversation over: not the AI agent.
                Speaker::Staff => "Staff",
            };
            format!("{who}: {}\n", l.text.trim())
        })
        .collect();
    let system = format!(
        "You analyse a conversation between a business's AI agent (Staff: a person of its team who took \
         over) and a caller. Answer with one JSON object \
         and nothing else, fitting this JSON schema:\n{}\n\
         category is exactly one of: {}. quote is copied word for word from the conversation. \
         sentiment is the caller's, from -1 (angry) to 1 (delighted). turn_sentiments has exactly {callers} \
         numbers, one per caller line in order.",
        schema(),
        CATEGORIES.join(", "),
    );
    ChatRequest {
        messages: vec![ChatMessage::new(Role::System, system), ChatMessage::new(Role::User, conversation)],
        knowledge: Vec::new(),
        tools: Vec::new(),
        max_tokens: 400,
        temperature: 0.0,
        response_schema: Some(ResponseSchema { name: "call_analytics".into(), schema: schema().to_string() }),
    }
}

/// Why a model's answer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidAnswer {
    #[error("no JSON object in the reply")]
    NotJson,
    #[error("does not fit the schema: {0}")]
    Schema(String),
    #[error("{field} is empty")]
    Empty { field: &'static str },
    #[error("category {0:?} is not one of the five")]
    Category(String),
    #[error("{field} is outside -1..1")]
    OutOfRange { field: &'static str },
    #[error("{got} turn sentiments for {expected} caller lines")]
    TurnCount { got: usize, expected: usize },
    #[error("the quote is not in the conversation")]
    QuoteNotFound,
}

/// Letters and digits only, lower case, single spaces: how quotes are compared.
fn normalise(text: &str) -> String {
    let mapped: String =
        text.chars().map(|c| if c.is_alphanumeric() { c.to_ascii_lowercase() } else { ' ' }).collect();
    mapped.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Checks `reply` (the model's text) against the schema and the transcript.
///
/// # Errors
/// What is wrong with it, to say in the log and the record.
pub fn validate(reply: &str, transcript: &[TranscriptLine]) -> Result<ModelFields, InvalidAnswer> {
    // Models wrap JSON in prose or code fences; take the outermost object.
    let (Some(start), Some(end)) = (reply.find('{'), reply.rfind('}')) else {
        return Err(InvalidAnswer::NotJson);
    };
    if end < start {
        return Err(InvalidAnswer::NotJson);
    }
    let a: ModelAnswer =
        serde_json::from_str(&reply[start..=end]).map_err(|e| InvalidAnswer::Schema(e.to_string()))?;
    for (field, value) in [
        ("intent", &a.intent),
        ("summary", &a.summary),
        ("justification", &a.justification),
        ("quote", &a.quote),
    ] {
        if value.trim().is_empty() {
            return Err(InvalidAnswer::Empty { field });
        }
    }
    let category = CATEGORIES
        .iter()
        .find(|c| c.eq_ignore_ascii_case(a.category.trim()))
        .ok_or_else(|| InvalidAnswer::Category(a.category.clone()))?;
    let in_range = |v: f64| v.is_finite() && (-1.0..=1.0).contains(&v);
    if !in_range(a.sentiment) {
        return Err(InvalidAnswer::OutOfRange { field: "sentiment" });
    }
    if !a.turn_sentiments.iter().copied().all(in_range) {
        return Err(InvalidAnswer::OutOfRange { field: "turn_sentiments" });
    }
    let callers: Vec<&TranscriptLine> = caller_lines(transcript).collect();
    if a.turn_sentiments.len() != callers.len() {
        return Err(InvalidAnswer::TurnCount { got: a.turn_sentiments.len(), expected: callers.len() });
    }
    let quote = normalise(&a.quote);
    let said = normalise(&transcript.iter().map(|l| l.text.as_str()).collect::<Vec<_>>().join(" "));
    if quote.is_empty() || !said.contains(&quote) {
        return Err(InvalidAnswer::QuoteNotFound);
    }
    Ok(ModelFields {
        intent: a.intent.trim().to_owned(),
        summary: a.summary.trim().to_owned(),
        category: (*category).to_owned(),
        justification: a.justification.trim().to_owned(),
        quote: a.quote.trim().to_owned(),
        sentiment: a.sentiment,
        turn_sentiments: callers
            .iter()
            .zip(a.turn_sentiments)
            .map(|(l, sentiment)| TurnSentiment { turn: l.turn, sentiment })
            .collect(),
    })
}

/// The fields an answer (the model's or the fallback's) fills.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFields {
    pub intent: String,
    pub summary: String,
    pub category: String,
    pub justification: String,
    pub quote: String,
    pub sentiment: f64,
    pub turn_sentiments: Vec<TurnSentiment>,
}

impl ModelFields {
    fn into_analytics(self, source: &str, model: &str, attempts: u32, errors: Vec<String>) -> Analytics {
        Analytics {
            intent: self.intent,
            summary: self.summary,
            category: self.category,
            justification: self.justification,
            quote: self.quote,
            sentiment: self.sentiment,
            turn_sentiments: self.turn_sentiments,
            source: source.to_owned(),
            model: model.to_owned(),
            attempts,
            errors,
        }
    }
}

/// Asks `llm` for `transcript`'s analytics up to `attempts` times; falls
/// back to the local reading when no answer is valid. Stops asking when
/// `cancel` is cancelled (shutdown), falling back too.
pub async fn analyze(
    llm: &dyn LanguageModel,
    transcript: &[TranscriptLine],
    attempts: u32,
    cancel: &CancellationToken,
) -> Analytics {
    let mut errors = Vec::new();
    if caller_lines(transcript).next().is_none() {
        // Nothing was said to analyse; asking a model would only invent.
        return fallback(transcript).into_analytics(
            "fallback",
            "lexicon",
            0,
            vec!["the caller said nothing".into()],
        );
    }
    let mut request = request(transcript);
    for attempt in 1..=attempts {
        if cancel.is_cancelled() {
            break;
        }
        // Greedy first; a retry at the same temperature would get the same answer.
        request.temperature = if attempt == 1 { 0.0 } else { 0.7 };
        let mut events = llm.stream(request.clone(), cancel.child_token());
        let mut reply = String::new();
        let mut failed = None;
        while let Some(event) = events.recv().await {
            match event {
                Ok(LlmEvent::Delta(d)) => reply.push_str(&d),
                Ok(LlmEvent::Done) => break,
                Ok(_) => {}
                Err(e) => {
                    failed = Some(e.to_string());
                    break;
                }
            }
        }
        let outcome = match failed {
            Some(e) => Err(e),
            None => validate(&reply, transcript).map_err(|e| e.to_string()),
        };
        match outcome {
            Ok(fields) => return fields.into_analytics("llm", llm.name(), attempt, errors),
            Err(e) => {
                tracing::info!(attempt, error = %e, provider = llm.name(), "analytics answer refused");
                errors.push(format!("attempt {attempt}: {e}"));
            }
        }
    }
    let asked = u32::try_from(errors.len()).unwrap_or(u32::MAX);
    fallback(transcript).into_analytics("fallback", "lexicon", asked, errors)
}

/// The fallback's analytics, when there is no model to ask (`why`).
#[must_use]
pub fn analyze_without_model(transcript: &[TranscriptLine], why: &str) -> Analytics {
    fallback(transcript).into_analytics("fallback", "lexicon", 0, vec![why.to_owned()])
}

/// Words that carry sentiment, with their weight.
const LEXICON: &[(&str, f64)] = &[
    ("amazing", 1.0),
    ("awesome", 1.0),
    ("excellent", 1.0),
    ("fantastic", 1.0),
    ("perfect", 1.0),
    ("love", 0.9),
    ("wonderful", 0.9),
    ("great", 0.8),
    ("delighted", 0.8),
    ("happy", 0.7),
    ("thanks", 0.5),
    ("thank", 0.5),
    ("good", 0.5),
    ("nice", 0.5),
    ("helpful", 0.6),
    ("glad", 0.6),
    ("pleased", 0.6),
    ("interested", 0.4),
    ("yes", 0.2),
    ("sure", 0.2),
    ("fine", 0.2),
    ("ok", 0.1),
    ("okay", 0.1),
    ("terrible", -1.0),
    ("awful", -1.0),
    ("horrible", -1.0),
    ("worst", -1.0),
    ("hate", -0.9),
    ("angry", -0.9),
    ("furious", -1.0),
    ("useless", -0.8),
    ("ridiculous", -0.8),
    ("disappointed", -0.8),
    ("frustrated", -0.8),
    ("annoyed", -0.7),
    ("upset", -0.7),
    ("bad", -0.6),
    ("broken", -0.6),
    ("wrong", -0.5),
    ("problem", -0.4),
    ("issue", -0.4),
    ("late", -0.4),
    ("never", -0.3),
    ("refund", -0.4),
    ("complaint", -0.6),
    ("cancel", -0.3),
    ("expensive", -0.3),
    ("unfortunately", -0.3),
];

/// Words that flip the sentiment of the next few words.
const NEGATIONS: &[&str] =
    &["not", "no", "never", "dont", "didnt", "isnt", "wasnt", "cant", "wont", "doesnt", "nothing"];

/// The lexicon's sentiment of `text`, -1..1 (0 when no word carries any).
#[must_use]
pub fn lexicon_sentiment(text: &str) -> f64 {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase().replace('\'', ""))
        .collect();
    let (mut sum, mut hits) = (0.0, 0u32);
    for (i, w) in words.iter().enumerate() {
        let Some(&(_, weight)) = LEXICON.iter().find(|(word, _)| word == w) else { continue };
        let negated = words[i.saturating_sub(3)..i].iter().any(|p| NEGATIONS.contains(&p.as_str()));
        sum += if negated { -weight * 0.7 } else { weight };
        hits += 1;
    }
    if hits == 0 { 0.0 } else { (sum / f64::from(hits)).clamp(-1.0, 1.0) }
}

/// Keyword rules for the categories, strongest first; the first rule a
/// caller line matches decides, and that line is the quote.
const RULES: &[(&str, &[&str])] = &[
    (
        "Facing Issue",
        &[
            "problem",
            "issue",
            "broken",
            "not working",
            "doesn't work",
            "complaint",
            "refund",
            "wrong",
            "damaged",
            "late",
            "error",
            "help with",
        ],
    ),
    (
        "Immediate Buyer",
        &[
            "i'll take",
            "i will take",
            "i want to order",
            "i'd like to order",
            "place an order",
            "buy now",
            "book",
            "reserve",
            "sign me up",
            "i want to buy",
            "i'd like to buy",
            "order",
        ],
    ),
    (
        "Potential Buyer",
        &["price", "how much", "cost", "quote", "discount", "available", "delivery", "offer"],
    ),
    (
        "Just Exploring",
        &[
            "just looking",
            "just browsing",
            "curious",
            "what do you",
            "tell me about",
            "hours",
            "open",
            "where",
        ],
    ),
];

/// The local reading: lexicon sentiment, keyword category, the first caller
/// line as the intent. Plain, and marked as such.
#[must_use]
pub fn fallback(transcript: &[TranscriptLine]) -> ModelFields {
    let callers: Vec<&TranscriptLine> = caller_lines(transcript).collect();
    let turn_sentiments: Vec<TurnSentiment> = callers
        .iter()
        .map(|l| TurnSentiment { turn: l.turn, sentiment: round2(lexicon_sentiment(&l.text)) })
        .collect();
    let sentiment = if turn_sentiments.is_empty() {
        0.0
    } else {
        round2(turn_sentiments.iter().map(|t| t.sentiment).sum::<f64>() / turn_sentiments.len() as f64)
    };
    let matched = RULES.iter().find_map(|(category, keys)| {
        callers.iter().find_map(|l| {
            let lower = l.text.to_lowercase();
            keys.iter().find(|k| contains_words(&lower, k)).map(|k| (*category, *l, *k))
        })
    });
    let first = callers.first().map(|l| l.text.trim().to_owned());
    let (category, quote, justification) = match matched {
        Some((category, line, key)) => (
            category,
            line.text.trim().to_owned(),
            format!("The caller said \"{}\" (\"{key}\" marks {category}).", line.text.trim()),
        ),
        None => (
            "Others",
            first.clone().unwrap_or_default(),
            "No words in the conversation mark a buying interest, an issue or exploring.".to_owned(),
        ),
    };
    let agent_lines = transcript.iter().filter(|l| l.speaker == Speaker::Agent).count();
    let summary = match &first {
        Some(f) => format!(
            "The caller said \"{}\"; {} caller and {agent_lines} agent lines in all.",
            clip(f, 160),
            callers.len()
        ),
        None => "The caller said nothing.".to_owned(),
    };
    ModelFields {
        intent: first.map_or_else(|| "unknown".to_owned(), |f| clip(&f, 80)),
        summary,
        category: category.to_owned(),
        justification,
        quote,
        sentiment,
        turn_sentiments,
    }
}

/// Whether `key` appears in `text` as whole words.
fn contains_words(text: &str, key: &str) -> bool {
    text.match_indices(key).any(|(i, _)| {
        let before = text[..i].chars().next_back().is_none_or(|c| !c.is_alphanumeric());
        let after = text[i + key.len()..].chars().next().is_none_or(|c| !c.is_alphanumeric());
        before && after
    })
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// At most `max` characters of `text`, with an ellipsis when cut.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max).collect();
    format!("{}...", cut.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(turn: u64, speaker: Speaker, text: &str) -> TranscriptLine {
        TranscriptLine { turn, speaker, text: text.into(), at_ms: turn * 1000, interrupted: false }
    }

    fn conversation() -> Vec<TranscriptLine> {
        vec![
            line(0, Speaker::Agent, "Hello, Sunrise Bakery, how can I help?"),
            line(1, Speaker::Caller, "Hi, how much is a sourdough loaf?"),
            line(1, Speaker::Agent, "A sourdough loaf is six dollars."),
            line(2, Speaker::Caller, "Great, thanks, I'll think about it."),
        ]
    }

    fn answer(category: &str, quote: &str, turns: &str) -> String {
        format!(
            r#"Here you go: {{"intent": "price of sourdough", "summary": "Asked the price.", "category": "{category}",
            "justification": "Asked for a price.", "quote": "{quote}", "sentiment": 0.4, "turn_sentiments": {turns}}}"#
        )
    }

    #[test]
    fn a_valid_answer_is_taken_with_turns_numbered() {
        let f = validate(
            &answer("potential buyer", "how much is a Sourdough loaf", "[0.1, 0.6]"),
            &conversation(),
        )
        .expect("valid");
        assert_eq!(f.category, "Potential Buyer");
        assert_eq!(
            f.turn_sentiments,
            [TurnSentiment { turn: 1, sentiment: 0.1 }, TurnSentiment { turn: 2, sentiment: 0.6 }]
        );
    }

    #[test]
    fn answers_that_do_not_fit_are_refused_with_the_reason() {
        let t = conversation();
        let cases = [
            ("no json at all".to_owned(), InvalidAnswer::NotJson),
            (
                answer("Window Shopper", "how much", "[0, 0]"),
                InvalidAnswer::Category("Window Shopper".into()),
            ),
            (answer("Others", "how much", "[0]"), InvalidAnswer::TurnCount { got: 1, expected: 2 }),
            (answer("Others", "a croissant please", "[0, 0]"), InvalidAnswer::QuoteNotFound),
            (answer("Others", "how much", "[0, 3]"), InvalidAnswer::OutOfRange { field: "turn_sentiments" }),
            (answer("Others", " ", "[0, 0]"), InvalidAnswer::Empty { field: "quote" }),
        ];
        for (reply, want) in cases {
            assert_eq!(validate(&reply, &t), Err(want), "{reply}");
        }
        let extra = r#"{"intent":"a","summary":"b","category":"Others","justification":"c","quote":"how much",
            "sentiment":0,"turn_sentiments":[0,0],"mood":"x"}"#;
        assert!(matches!(validate(extra, &t), Err(InvalidAnswer::Schema(_))));
    }

    #[test]
    fn the_teams_lines_are_not_the_agents() {
        let t = vec![
            line(1, Speaker::Caller, "I want a refund"),
            line(1, Speaker::Agent, "Let me find a colleague."),
            line(2, Speaker::Staff, "Hi, this is Sam from the bakery."),
        ];
        let asked = format!("{:?}", request(&t));
        assert!(asked.contains("Staff: Hi, this is Sam") && asked.contains("Agent: Let me find"), "{asked}");
        assert!(!asked.contains("Agent: Hi, this is Sam"), "{asked}");
    }

    #[test]
    fn the_lexicon_reads_negation() {
        assert!(lexicon_sentiment("This is great, thank you!") > 0.5);
        assert!(lexicon_sentiment("This is terrible, I am furious") < -0.9);
        assert!(lexicon_sentiment("It's not good at all") < 0.0);
        assert!(lexicon_sentiment("The sky is blue").abs() < f64::EPSILON);
    }

    #[test]
    fn the_fallback_classes_by_keyword_and_quotes_the_line() {
        let f = fallback(&conversation());
        assert_eq!(f.category, "Potential Buyer");
        assert_eq!(f.quote, "Hi, how much is a sourdough loaf?");
        assert!(f.justification.contains("how much"), "{}", f.justification);
        assert_eq!(f.turn_sentiments.len(), 2);
        assert!(f.turn_sentiments[1].sentiment > 0.0);
        // The fallback's own answer passes the checks a model's must.
        let json = serde_json::json!({
            "intent": f.intent, "summary": f.summary, "category": f.category, "justification": f.justification,
            "quote": f.quote, "sentiment": f.sentiment,
            "turn_sentiments": f.turn_sentiments.iter().map(|t| t.sentiment).collect::<Vec<_>>(),
        });
        assert!(validate(&json.to_string(), &conversation()).is_ok());

        let issue = vec![line(1, Speaker::Caller, "My order arrived damaged and I want a refund")];
        assert_eq!(fallback(&issue).category, "Facing Issue");
        let nothing = vec![line(1, Speaker::Caller, "Hello there")];
        assert_eq!(fallback(&nothing).category, "Others");
        // "open" inside "opened" is not the word.
        assert!(!contains_words("it opened", "open"));
    }

    #[test]
    fn the_schema_names_every_field_the_answer_needs() {
        let s = schema();
        let required: Vec<&str> =
            s["required"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
        assert_eq!(required.len(), 7);
        assert_eq!(s["properties"]["category"]["enum"].as_array().unwrap().len(), 5);
    }
}
