//! The local language model, demo quality, answering from the agent's
//! knowledge retrieved with MiniLM embeddings.

use std::path::{Path, PathBuf};

use voxgate_pipeline::knowledge::KnowledgeBase;
use voxgate_pipeline::providers::local::embed::{Embedder, EmbedderConfig, similarity};
use voxgate_pipeline::providers::local::llm::{SmolLm, SmolLmConfig};
use voxgate_pipeline::providers::{
    CancellationToken, ChatMessage, ChatRequest, LanguageModel, LlmEvent, Role,
};
use voxgate_pipeline::session::grounding::{Gate, Verdict};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn models_dir() -> PathBuf {
    std::env::var_os("VOXGATE_MODELS__DIR")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../models"), PathBuf::from)
}

const KNOWLEDGE: &str = "\
Sunrise Bakery is a family bakery at 12 Harbour Street.

Opening hours: Monday to Friday from 7 am to 6 pm. On Saturdays the bakery opens at 9 am and closes at 2 pm. It is closed on Sundays.

Delivery: orders over 20 dollars are delivered free within the city, usually within two hours.

Cakes: birthday cakes must be ordered at least two days in advance. A chocolate cake costs 35 dollars.";

#[test]
fn minilm_puts_related_sentences_close_and_unrelated_ones_apart() -> TestResult {
    let e = Embedder::load(&EmbedderConfig::with_models_dir(&models_dir()))?;
    let q = e.embed("What time do you open on Saturday?")?;
    let related = e.embed("On Saturdays the bakery opens at 9 am.")?;
    let unrelated = e.embed("A chocolate cake costs 35 dollars.")?;
    assert_eq!(q.len(), 384);
    let norm: f32 = q.iter().map(|x| x * x).sum();
    assert!((norm - 1.0).abs() < 1e-4, "unit length: {norm}");
    let (r, u) = (similarity(&q, &related), similarity(&q, &unrelated));
    assert!(r > 0.5 && u < 0.3 && r > u + 0.3, "related {r}, unrelated {u}");
    Ok(())
}

#[test]
fn retrieval_finds_the_passage_that_answers() -> TestResult {
    let e = Embedder::load(&EmbedderConfig::with_models_dir(&models_dir()))?;
    let kb = KnowledgeBase::build(&e, KNOWLEDGE)?;
    assert_eq!(kb.len(), 7, "{kb:?}");
    for (question, expected) in [
        ("When are you open on Saturday?", "On Saturdays"),
        ("Do you deliver my order for free?", "delivered free"),
        ("How much is a chocolate cake?", "chocolate cake costs"),
        ("Where is the bakery?", "Harbour Street"),
    ] {
        let top = kb.retrieve(&e, question, 1)?;
        assert!(top[0].0.contains(expected), "{question} -> {:?}", top[0]);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smollm_answers_from_the_retrieved_knowledge() -> TestResult {
    let e = Embedder::load(&EmbedderConfig::with_models_dir(&models_dir()))?;
    let kb = KnowledgeBase::build(&e, KNOWLEDGE)?;
    let llm = SmolLm::load(&SmolLmConfig::with_models_dir(&models_dir()))?;
    let question = "What time do you open on Saturday?";
    let knowledge: Vec<String> =
        kb.retrieve(&e, question, 2)?.into_iter().map(|(p, _)| p.to_owned()).collect();
    let system = "You are the phone assistant of Sunrise Bakery. Answer in one short sentence.";
    let request = ChatRequest {
        messages: vec![ChatMessage::new(Role::System, system), ChatMessage::new(Role::User, question)],
        knowledge,
        tools: Vec::new(),
        max_tokens: 48,
        temperature: 0.0,
        response_schema: None,
    };
    let mut stream = llm.stream(request, CancellationToken::new());
    let mut reply = String::new();
    let mut deltas = 0;
    let mut usage = None;
    loop {
        match stream.recv().await.ok_or("stream ended without Done")?? {
            LlmEvent::Delta(d) => {
                reply.push_str(&d);
                deltas += 1;
            }
            LlmEvent::Usage { prompt_tokens, completion_tokens } => {
                usage = Some((prompt_tokens, completion_tokens))
            }
            LlmEvent::Done => break,
            LlmEvent::ToolCall(c) => return Err(format!("unexpected tool call {c:?}").into()),
        }
    }
    assert!(deltas > 3, "the reply streams in pieces ({deltas})");
    let (prompt, completion) = usage.ok_or("no token usage before Done")?;
    assert!(
        prompt > 20 && completion >= deltas,
        "usage: {prompt} read, {completion} written, {deltas} deltas"
    );
    let reply = reply.to_lowercase();
    assert!(reply.contains('9') || reply.contains("nine"), "reply: {reply}");
    Ok(())
}

#[test]
fn smollm_quotes_a_price_from_the_knowledge() -> TestResult {
    let e = Embedder::load(&EmbedderConfig::with_models_dir(&models_dir()))?;
    let kb = KnowledgeBase::build(&e, KNOWLEDGE)?;
    let llm = SmolLm::load(&SmolLmConfig::with_models_dir(&models_dir()))?;
    let question = "How much does a chocolate cake cost?";
    let request = ChatRequest {
        messages: vec![
            ChatMessage::new(
                Role::System,
                "You are the phone assistant of Sunrise Bakery. Answer in one short sentence.",
            ),
            ChatMessage::new(Role::User, question),
        ],
        knowledge: kb.retrieve(&e, question, 1)?.into_iter().map(|(p, _)| p.to_owned()).collect(),
        tools: Vec::new(),
        max_tokens: 40,
        temperature: 0.0,
        response_schema: None,
    };
    let reply = llm.generate(&request, &CancellationToken::new(), |_| true)?.text;
    assert!(reply.contains("35"), "reply: {reply}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_reply_stops_early() -> TestResult {
    let llm = SmolLm::load(&SmolLmConfig::with_models_dir(&models_dir()))?;
    let cancel = CancellationToken::new();
    let request = ChatRequest {
        messages: vec![ChatMessage::new(Role::User, "Tell me a long story about a bakery.")],
        knowledge: Vec::new(),
        tools: Vec::new(),
        max_tokens: 400,
        temperature: 0.0,
        response_schema: None,
    };
    let mut stream = llm.stream(request, cancel.clone());
    let first = stream.recv().await.ok_or("no first event")??;
    assert!(matches!(first, LlmEvent::Delta(_)));
    cancel.cancel();
    let mut after = 0;
    while let Some(event) = stream.recv().await {
        if matches!(event?, LlmEvent::Delta(_)) {
            after += 1;
        }
    }
    assert!(after < 20, "{after} deltas after cancel");
    Ok(())
}

/// A call's second turn, as the session asks it: the first exchange, then a
/// new question with its facts.
fn two_turns(
    knowledge: &KnowledgeBase,
    e: &Embedder,
) -> Result<[ChatRequest; 2], Box<dyn std::error::Error>> {
    let system = "You are the phone assistant of Sunrise Bakery. Answer in one short sentence.";
    let greeting = "Hello, thanks for calling Sunrise Bakery! How can I help you today?";
    let (q1, q2) = ("How much does a chocolate cake cost?", "And when do you open on Saturday?");
    let request = |messages: Vec<ChatMessage>,
                   question: &str|
     -> Result<ChatRequest, Box<dyn std::error::Error>> {
        Ok(ChatRequest {
            messages,
            knowledge: knowledge.retrieve(e, question, 2)?.into_iter().map(|(p, _)| p.to_owned()).collect(),
            tools: Vec::new(),
            max_tokens: 40,
            temperature: 0.0,
            response_schema: None,
        })
    };
    let mut history = vec![
        ChatMessage::new(Role::System, system),
        ChatMessage::new(Role::Assistant, greeting),
        ChatMessage::new(Role::User, q1),
    ];
    let first = request(history.clone(), q1)?;
    // The session keeps each question's facts in the history.
    history[2].knowledge.clone_from(&first.knowledge);
    history.push(ChatMessage::new(Role::Assistant, "A chocolate cake costs 35 dollars."));
    history.push(ChatMessage::new(Role::User, q2));
    Ok([first, request(history, q2)?])
}

#[test]
fn a_kept_conversation_reads_only_its_new_turn_and_answers_as_if_read_afresh() -> TestResult {
    let e = Embedder::load(&EmbedderConfig::with_models_dir(&models_dir()))?;
    let kb = KnowledgeBase::build(&e, KNOWLEDGE)?;
    let [first, second] = two_turns(&kb, &e)?;
    let config = SmolLmConfig::with_models_dir(&models_dir());
    let kept = SmolLm::load(&config)?;
    let one = kept.generate(&first, &CancellationToken::new(), |_| true)?;
    assert_eq!(one.read_tokens, one.prompt_tokens, "nothing cached yet: {one:?}");
    let two = kept.generate(&second, &CancellationToken::new(), |_| true)?;
    // Only what is new is read: the reply the caller heard (where it differs
    // from the one written) and the new question with its facts.
    let new = two.prompt_tokens - one.prompt_tokens;
    assert!(two.read_tokens <= new && two.read_tokens * 2 < two.prompt_tokens, "{one:?} then {two:?}");
    let afresh = SmolLm::load(&SmolLmConfig { slots: 1, ..config })?;
    let fresh = afresh.generate(&second, &CancellationToken::new(), |_| true)?;
    assert_eq!(fresh.read_tokens, fresh.prompt_tokens);
    assert_eq!(two.text, fresh.text, "the cached state answers as the whole prompt read afresh does");
    // What the caller hears holds the fact: the model's answer when the
    // session's grounding check lets it through, else the check's reading of
    // the best passage. (SmolLM2 answered this turn with its previous answer,
    // "A chocolate cake costs 35 dollars.", which the check replaces.)
    let gate =
        Gate::for_question(&second_question(&second), &second.knowledge).ok_or("not a fact question")?;
    let heard = match gate.judge(&two.text) {
        Verdict::Grounded => two.text.clone(),
        Verdict::Replace(reading) => reading,
    };
    assert!(heard.contains('9') || heard.to_lowercase().contains("nine"), "{two:?} heard as {heard:?}");
    Ok(())
}

/// The caller's words of a request's last turn.
fn second_question(request: &ChatRequest) -> String {
    request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .map(|m| m.content.clone())
        .unwrap_or_default()
}

#[test]
fn a_new_call_starts_from_the_agents_prefix_and_leaves_the_first_call_cached() -> TestResult {
    let e = Embedder::load(&EmbedderConfig::with_models_dir(&models_dir()))?;
    let kb = KnowledgeBase::build(&e, KNOWLEDGE)?;
    let [first, second] = two_turns(&kb, &e)?;
    let llm = SmolLm::load(&SmolLmConfig::with_models_dir(&models_dir()))?;
    llm.generate(&first, &CancellationToken::new(), |_| true)?;
    // Another caller of the same agent asks something else.
    let mut other = first.clone();
    if let Some(last) = other.messages.last_mut() {
        last.content = "Where is the bakery?".into();
    }
    let b = llm.generate(&other, &CancellationToken::new(), |_| true)?;
    // The system prompt and greeting (less the few tokens that open the reply).
    let agent_prefix =
        llm.prompt_tokens(&ChatRequest { messages: first.messages[..2].to_vec(), ..first.clone() }) - 5;
    assert!(
        b.read_tokens + agent_prefix <= b.prompt_tokens,
        "the agent's prefix comes from the cache: {b:?}"
    );
    // The first call's state was not overwritten by the second.
    let a = llm.generate(&second, &CancellationToken::new(), |_| true)?;
    assert!(a.read_tokens * 2 < a.prompt_tokens, "{a:?}");
    Ok(())
}
