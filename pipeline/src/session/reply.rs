//! One agent turn's work, run as its own task: knowledge retrieval, the
//! LLM (with tool rounds), sentence splitting and TTS, resampled to the
//! canonical 16 kHz. Everything it makes goes to the session as
//! [`WorkerEvent`]s; it stops the moment its turn's token is cancelled.
//!
//! The LLM and TTS run side by side: sentences go to TTS as the LLM
//! finishes them, so the first audio is ready while the model still writes.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use voxgate_codecs::SampleRate;
use voxgate_codecs::resample::FrameResampler;

use super::config::{Providers, SessionConfig};
use super::grounding::{Gate, Verdict, repeats};
use super::log::{Stage, UsageMeter};
use super::sentences::SentenceSplitter;
use super::tools::{self, END_CALL, ESCALATE, SEND_DTMF, TRANSFER, Tool};
use crate::providers::{
    CancellationToken, ChatMessage, ChatRequest, LlmEvent, ProviderError, Role, ToolCall, ToolSpec,
};
use crate::turn::TurnId;

/// What a turn's worker reports to the session.
#[derive(Debug)]
pub(crate) enum WorkerEvent {
    /// The audio that follows speaks `text`.
    Sentence { turn: TurnId, text: String },
    /// 16 kHz audio of the current sentence.
    Audio { turn: TurnId, samples: Vec<i16> },
    /// The LLM's first token (for the latency breakdown).
    FirstToken { turn: TurnId, at: Instant },
    /// TTS's first audio of the turn.
    FirstAudio { turn: TurnId, at: Instant },
    /// Tool calls and their results, for the conversation history.
    ToolMessages { turn: TurnId, messages: Vec<ChatMessage> },
    /// The knowledge retrieved for the turn's question, for the history.
    Retrieved { turn: TurnId, passages: Vec<String> },
    /// The model's answer ignored or contradicted the facts: the agent read
    /// the best passage instead.
    Grounded { turn: TurnId },
    /// A tool ran.
    ToolRan { name: String, ok: bool, elapsed: Duration },
    /// The model asked to end the call, once this turn has played.
    EndCall { turn: TurnId },
    /// The model asked to hand the caller to a human, once this turn has
    /// played; with its summary of the call (for a warm transfer).
    Transfer { turn: TurnId, target: String, summary: Option<String> },
    /// The model handed a text conversation to the human desk.
    Escalate { reason: String },
    /// The agent presses `digits` on the keypad.
    Dtmf { turn: TurnId, digits: String },
    /// A provider failed and is tried again.
    Retrying { stage: Stage, provider: &'static str, attempt: u32, backoff: Duration, error: String },
    /// A provider failed for good; `spoke`: some of the reply was already said.
    Failed { turn: TurnId, stage: Stage, provider: &'static str, error: String, spoke: bool },
    /// The turn has all its audio.
    Closed { turn: TurnId },
}

/// What the worker is asked to do.
#[derive(Debug)]
pub(crate) enum Job {
    /// Say a fixed line.
    Line(String),
    /// Say a line made for this call only (a warm transfer's
    /// announcement): spoken as a line, never kept in the lines' cache.
    Once(String),
    /// Play a recording (16 kHz) of a line: `text` is what it says.
    Recorded { text: String, audio: Arc<[i16]> },
    /// Answer the conversation (whose last message is the caller's).
    Reply { messages: Vec<ChatMessage>, query: String },
}

/// Shared by every worker of a call.
pub(crate) struct WorkerContext {
    pub config: Arc<SessionConfig>,
    pub providers: Providers,
    /// What the call asks of its providers, for billing.
    pub usage: Arc<UsageMeter>,
}

impl WorkerContext {
    pub(crate) fn tool_specs(&self) -> Vec<ToolSpec> {
        let c = &self.config;
        let mut specs: Vec<ToolSpec> = c.tools.iter().map(|t| t.spec().clone()).collect();
        if c.end_call_tool {
            specs.push(tools::end_call_spec());
        }
        if c.transfer_target.is_some() {
            specs.push(tools::transfer_spec(c.transfer_mode == super::TransferMode::Warm));
        }
        if c.dtmf_tool {
            specs.push(tools::send_dtmf_spec());
        }
        if c.escalate_tool {
            specs.push(tools::escalate_spec());
        }
        specs
    }

    pub(crate) fn tool(&self, name: &str) -> Option<&dyn Tool> {
        self.config.tools.iter().find(|t| t.spec().name == name).map(AsRef::as_ref)
    }
}

/// Runs `job` as turn `turn` until done or cancelled.
pub(crate) async fn run(
    ctx: Arc<WorkerContext>,
    turn: TurnId,
    job: Job,
    cancel: CancellationToken,
    tx: mpsc::Sender<WorkerEvent>,
) {
    if let Job::Recorded { text, audio } = &job {
        let _ = tx.send(WorkerEvent::Sentence { turn, text: text.clone() }).await;
        let _ = tx.send(WorkerEvent::FirstAudio { turn, at: Instant::now() }).await;
        let _ = tx.send(WorkerEvent::Audio { turn, samples: audio.to_vec() }).await;
        let _ = tx.send(WorkerEvent::Closed { turn }).await;
        return;
    }
    // A fixed line spoken before by this voice plays from the cache.
    if let Job::Line(text) = &job
        && let Some(audio) = lines::get(&ctx.providers.tts, text)
    {
        let _ = tx.send(WorkerEvent::Sentence { turn, text: text.clone() }).await;
        let _ = tx.send(WorkerEvent::FirstAudio { turn, at: Instant::now() }).await;
        let _ = tx.send(WorkerEvent::Audio { turn, samples: audio.to_vec() }).await;
        let _ = tx.send(WorkerEvent::Closed { turn }).await;
        return;
    }
    let line = match &job {
        Job::Line(text) => Some(text.clone()),
        Job::Reply { .. } | Job::Recorded { .. } | Job::Once(_) => None,
    };
    let work = async {
        let (ctx, tx, cancel) = (&*ctx, &tx, &cancel);
        let (sentences_tx, sentences_rx) = mpsc::unbounded_channel();
        let think = async move {
            let result = match job {
                Job::Line(text) | Job::Once(text) | Job::Recorded { text, .. } => {
                    let _ = sentences_tx.send(text);
                    Ok(())
                }
                Job::Reply { messages, query } => {
                    let mut words = Words::sentences(&sentences_tx);
                    converse(ctx, turn, messages, query, &mut words, cancel, tx).await
                }
            };
            // Dropping the sender tells the speaker there is no more text.
            drop(sentences_tx);
            result
        };
        let speak = speak(ctx, turn, sentences_rx, cancel, tx, line);
        let (thought, spoken) = tokio::join!(think, speak);
        for failure in [thought.err(), spoken.err()].into_iter().flatten() {
            let (stage, error, spoke) = failure;
            let _ = tx
                .send(WorkerEvent::Failed {
                    turn,
                    stage,
                    provider: error.provider(),
                    error: error.to_string(),
                    spoke,
                })
                .await;
        }
        let _ = tx.send(WorkerEvent::Closed { turn }).await;
    };
    tokio::select! {
        () = cancel.cancelled() => {}
        () = work => {}
    }
}

type Failure = (Stage, ProviderError, bool);

/// Counts one LLM request's tokens: as the provider reports them, or, when
/// it reports none (a local model, a stream cut short by barge-in or an
/// error), estimated at four characters a token when dropped.
pub(crate) struct TokenCount<'a> {
    usage: &'a UsageMeter,
    prompt_chars: usize,
    pub(crate) completion_chars: usize,
    reported: bool,
}

impl<'a> TokenCount<'a> {
    pub(crate) fn new(usage: &'a UsageMeter, request: &ChatRequest) -> Self {
        let prompt_chars = request.messages.iter().map(|m| m.content.len()).sum::<usize>()
            + request.knowledge.iter().map(String::len).sum::<usize>()
            + request.tools.iter().map(|t| t.description.len() + t.parameters.len()).sum::<usize>();
        Self { usage, prompt_chars, completion_chars: 0, reported: false }
    }

    pub(crate) fn reported(&mut self, prompt: u32, completion: u32) {
        self.reported = true;
        self.usage.add_llm(prompt.into(), completion.into(), false);
    }
}

impl Drop for TokenCount<'_> {
    fn drop(&mut self) {
        if !self.reported {
            let tokens = |chars: usize| chars.div_ceil(4) as u64;
            self.usage.add_llm(tokens(self.prompt_chars), tokens(self.completion_chars), true);
        }
    }
}

/// The wait before retry `attempt` (0-based), or `None` when retries are used up.
fn backoff(config: &SessionConfig, error: &ProviderError, attempt: usize) -> Option<Duration> {
    if !error.is_retryable() {
        return None;
    }
    let planned = *config.retry_backoff.get(attempt)?;
    Some(match error {
        // Honour the server's wish when it asks for longer (within reason).
        ProviderError::RateLimited { retry_after: Some(after), .. } => {
            planned.max(*after).min(Duration::from_secs(10))
        }
        _ => planned,
    })
}

/// Where the model's words go: cut into sentences (for speech), or passed
/// on as they come (for chat). On a fact question spoken, the pieces wait
/// until the first sentence is whole and the [`Gate`] has judged it; each
/// later sentence waits until it is whole and holds to the facts' numbers.
pub(crate) struct Words<'a> {
    tx: &'a mpsc::UnboundedSender<String>,
    splitter: Option<SentenceSplitter>,
    gate: Option<Gate>,
    /// The gate passed the start: later sentences are only checked for numbers.
    judged: bool,
    held: Vec<String>,
    /// Whole sentences among `held`.
    held_sentences: usize,
    /// What the gate said in place of the model, once it has.
    replaced: Option<String>,
    /// The reply ends here: the gate replaced it or a later sentence invented a number.
    cut: bool,
    /// With no gate: the caller's words, while the reply's first sentence may
    /// still be them said back, and the line said instead if it is.
    echo: Option<(String, String)>,
    /// A sentence of the caller's words was left out.
    echoed: bool,
}

/// A reply whose first sentence is the caller's words said back is not
/// said from this many words on (shorter: "Thank you." for "Thank you.").
const ECHO_WORDS: usize = 3;

impl<'a> Words<'a> {
    pub(crate) fn sentences(tx: &'a mpsc::UnboundedSender<String>) -> Self {
        Self {
            tx,
            splitter: Some(SentenceSplitter::new()),
            gate: None,
            judged: false,
            held: Vec::new(),
            held_sentences: 0,
            replaced: None,
            cut: false,
            echo: None,
            echoed: false,
        }
    }

    pub(crate) fn deltas(tx: &'a mpsc::UnboundedSender<String>) -> Self {
        Self { splitter: None, ..Self::sentences(tx) }
    }

    /// Holds the start of the spoken reply for `gate` to judge.
    fn check_with(&mut self, gate: Option<Gate>) {
        if self.splitter.is_some() {
            self.gate = gate;
        }
    }

    /// Holds the start of a spoken reply that has no gate while it is
    /// `caller`'s own words: said back whole, the caller hears `line` instead.
    fn asked_back_with(&mut self, caller: &str, line: &str) {
        if self.splitter.is_some() && self.gate.is_none() {
            self.echo = Some((caller.to_owned(), line.to_owned()));
        }
    }

    /// More of the reply; true when something went out.
    fn push(&mut self, delta: &str) -> bool {
        let Some(splitter) = self.splitter.as_mut() else {
            return !delta.is_empty() && self.tx.send(delta.to_owned()).is_ok();
        };
        let pieces = splitter.push(delta);
        let mut sent = false;
        for piece in pieces {
            sent |= self.piece(piece, false);
        }
        sent
    }

    /// One speakable piece: out at once, or held for the gate until a
    /// sentence ends (`last`: the reply ended).
    fn piece(&mut self, piece: String, last: bool) -> bool {
        if self.cut {
            return false;
        }
        let Some(gate) = &self.gate else {
            return self.unchecked(piece, last);
        };
        let whole = last || piece.trim_end().ends_with(['.', '!', '?']);
        self.held.push(piece);
        if !whole {
            return false;
        }
        self.held_sentences += 1;
        let text = self.held.join(" ");
        if self.judged {
            // A later sentence: said unless it invents a number, which ends the reply.
            if gate.invents(&text) {
                self.held.clear();
                self.cut = true;
                return false;
            }
            return self.release();
        }
        let verdict = gate.judge(&text);
        // "Good question." may come before the fact: give it one more sentence,
        // unless what it said already contradicts the facts, asks back or refuses.
        if matches!(verdict, Verdict::Replace(_))
            && !last
            && self.held_sentences < 2
            && !gate.invents(&text)
            && !Gate::asks_back(&text)
            && !Gate::refuses(&text)
        {
            return false;
        }
        match verdict {
            Verdict::Grounded => {
                self.judged = true;
                self.release()
            }
            Verdict::Replace(reading) => {
                self.held.clear();
                let sent = self.tx.send(reading.clone()).is_ok();
                self.replaced = Some(reading);
                self.cut = true;
                sent
            }
        }
    }

    /// A piece of a reply with no gate: out at once, unless the reply so far
    /// is the caller's words said back.
    fn unchecked(&mut self, piece: String, last: bool) -> bool {
        let Some((caller, line)) = &self.echo else {
            return self.tx.send(piece).is_ok();
        };
        self.held.push(piece);
        let text = self.held.join(" ");
        if !repeats(caller, &text) {
            self.echo = None;
            return self.release();
        }
        if !(last || text.trim_end().ends_with(['.', '!', '?'])) {
            return false;
        }
        if text.split_whitespace().count() < ECHO_WORDS {
            self.echo = None;
            return self.release();
        }
        // A whole sentence of the caller's words is not said; what follows
        // it may be the answer. A reply of nothing else asks them again.
        self.held.clear();
        self.echoed = true;
        if last {
            let line = line.clone();
            self.echo = None;
            self.cut = true;
            return self.tx.send(line).is_ok();
        }
        false
    }

    /// Sends what was held.
    fn release(&mut self) -> bool {
        let mut sent = false;
        for held in std::mem::take(&mut self.held) {
            sent |= self.tx.send(held).is_ok();
        }
        sent
    }

    /// The end of a reply (or of one round of it); true when something went out.
    fn finish(&mut self) -> bool {
        let rest = self.splitter.as_mut().and_then(SentenceSplitter::finish);
        let mut sent = match rest {
            Some(rest) => self.piece(rest, true),
            None => false,
        };
        // The reply ended inside a held sentence.
        if !self.held.is_empty() {
            let last = self.held.pop().unwrap_or_default();
            sent |= self.piece(last, true);
        }
        // The reply was the caller's words and nothing else.
        if self.echoed
            && let Some((_, line)) = self.echo.take()
        {
            self.cut = true;
            sent |= self.tx.send(line).is_ok();
        }
        sent
    }

    /// Whether the gate replaced the model's answer (the rest of it is not said).
    fn replaced(&self) -> bool {
        self.replaced.is_some()
    }

    /// Whether the reply ends here (replaced, or a later sentence invented a number).
    fn cut(&self) -> bool {
        self.cut
    }

    /// A whole line of the agent's own (a filler).
    fn line(&mut self, text: &str) {
        let _ = self.tx.send(text.to_owned());
    }
}

/// The LLM side: stream the reply into `words`, run tools.
pub(crate) async fn converse(
    ctx: &WorkerContext,
    turn: TurnId,
    messages: Vec<ChatMessage>,
    query: String,
    words: &mut Words<'_>,
    cancel: &CancellationToken,
    tx: &mpsc::Sender<WorkerEvent>,
) -> Result<(), Failure> {
    let config = &ctx.config;
    // A long call or chat sends its latest turns, not all of them.
    let mut messages = super::history::within_budget(messages, config.max_history_tokens);
    let knowledge = retrieve(ctx, &query).await;
    // A fact question's answer is checked against the facts before it is said.
    words.check_with(Gate::for_question(&query, &knowledge));
    // Any other turn: a reply that only says the caller's words back asks them again.
    words.asked_back_with(&query, &config.fallback_line);
    if !knowledge.is_empty() {
        // The question carries its facts from now on, in this request and in the history.
        if let Some(question) = messages.iter_mut().rev().find(|m| m.role == Role::User) {
            question.knowledge.clone_from(&knowledge);
        }
        let _ = tx.send(WorkerEvent::Retrieved { turn, passages: knowledge.clone() }).await;
    }
    let llm = &ctx.providers.llm;
    let tools = ctx.tool_specs();
    let mut first_token = true;
    let mut spoke = false;
    let mut filler_said = false;
    for _round in 0..=config.max_tool_rounds {
        let request = ChatRequest {
            messages: messages.clone(),
            knowledge: knowledge.clone(),
            tools: tools.clone(),
            max_tokens: config.max_tokens,
            temperature: config.temperature,
            response_schema: None,
        };
        let mut attempt = 0;
        let (text, calls) = 'attempt: loop {
            let mut events = llm.stream(request.clone(), cancel.child_token());
            let (mut text, mut calls) = (String::new(), Vec::<ToolCall>::new());
            let mut count = TokenCount::new(&ctx.usage, &request);
            while let Some(event) = events.recv().await {
                match event {
                    Ok(LlmEvent::Usage { prompt_tokens, completion_tokens }) => {
                        count.reported(prompt_tokens, completion_tokens);
                    }
                    Ok(LlmEvent::Delta(delta)) => {
                        if first_token {
                            first_token = false;
                            let _ = tx.send(WorkerEvent::FirstToken { turn, at: Instant::now() }).await;
                        }
                        text.push_str(&delta);
                        count.completion_chars += delta.len();
                        spoke |= words.push(&delta);
                        if words.cut() {
                            // The rest of the model's answer is not said.
                            if words.replaced() {
                                let _ = tx.send(WorkerEvent::Grounded { turn }).await;
                            }
                            return Ok(());
                        }
                    }
                    Ok(LlmEvent::ToolCall(call)) => calls.push(call),
                    Ok(LlmEvent::Done) => break,
                    Err(error) => {
                        let produced = !text.is_empty() || !calls.is_empty();
                        match backoff(config, &error, attempt).filter(|_| !produced) {
                            Some(wait) => {
                                retrying(tx, Stage::Llm, &error, attempt, wait).await;
                                tokio::time::sleep(wait).await;
                                attempt += 1;
                                continue 'attempt;
                            }
                            None => {
                                words.finish();
                                return Err((Stage::Llm, error, spoke || produced));
                            }
                        }
                    }
                }
            }
            break (text, calls);
        };
        spoke |= words.finish();
        if words.cut() {
            if words.replaced() {
                let _ = tx.send(WorkerEvent::Grounded { turn }).await;
            }
            return Ok(());
        }
        if calls.is_empty() {
            return Ok(());
        }
        if ended_by_built_in(ctx, &calls, turn, tx).await {
            return Ok(());
        }
        let exchange = run_tools(ctx, (text, calls), turn, tx, words, &mut filler_said).await;
        spoke |= filler_said;
        messages.extend(exchange.iter().cloned());
        let _ = tx.send(WorkerEvent::ToolMessages { turn, messages: exchange }).await;
    }
    Ok(())
}

/// The passages of the agent's knowledge that answer `query` (none without knowledge).
async fn retrieve(ctx: &WorkerContext, query: &str) -> Vec<String> {
    match ctx.providers.knowledge.clone() {
        Some(k) if ctx.config.knowledge_passages > 0 => {
            let (n, query) = (ctx.config.knowledge_passages, query.to_owned());
            tokio::task::spawn_blocking(move || k.retrieve(&query, n)).await.unwrap_or_default()
        }
        _ => Vec::new(),
    }
}

/// Whether a built-in tool among `calls` ends the turn (the transport acts
/// once what was said has played): hanging up, or a transfer.
async fn ended_by_built_in(
    ctx: &WorkerContext,
    calls: &[ToolCall],
    turn: TurnId,
    tx: &mpsc::Sender<WorkerEvent>,
) -> bool {
    if calls.iter().any(|c| c.name == END_CALL) {
        let _ = tx.send(WorkerEvent::EndCall { turn }).await;
        return true;
    }
    if let Some(call) = calls.iter().find(|c| c.name == TRANSFER)
        && let Some(target) = ctx.config.transfer_target.clone()
    {
        let summary = tools::transfer_summary(call);
        let _ = tx.send(WorkerEvent::Transfer { turn, target, summary }).await;
        return true;
    }
    if ctx.config.escalate_tool
        && let Some(call) = calls.iter().find(|c| c.name == ESCALATE)
    {
        let reason = serde_json::from_str::<serde_json::Value>(&call.arguments)
            .ok()
            .and_then(|v| v["reason"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let _ = tx.send(WorkerEvent::Escalate { reason }).await;
        return true;
    }
    false
}

/// Runs the model's tool calls in order: the exchange (its message that
/// called them, then each result) to send back to it.
async fn run_tools(
    ctx: &WorkerContext,
    (text, calls): (String, Vec<ToolCall>),
    turn: TurnId,
    tx: &mpsc::Sender<WorkerEvent>,
    words: &mut Words<'_>,
    filler_said: &mut bool,
) -> Vec<ChatMessage> {
    let mut exchange =
        vec![ChatMessage { tool_calls: calls.clone(), ..ChatMessage::new(Role::Assistant, text) }];
    for call in &calls {
        let result = run_tool(ctx, call, turn, tx, words, filler_said).await;
        let _ = tx
            .send(WorkerEvent::ToolRan { name: call.name.clone(), ok: result.ok, elapsed: result.elapsed })
            .await;
        exchange.push(ChatMessage {
            tool_call_id: Some(call.id.clone()),
            ..ChatMessage::new(Role::Tool, result.content)
        });
    }
    exchange
}

/// Runs one tool call; a slow tool gets the filler line once a turn
/// (`filler_said` then holds).
async fn run_tool(
    ctx: &WorkerContext,
    call: &ToolCall,
    turn: TurnId,
    tx: &mpsc::Sender<WorkerEvent>,
    words: &mut Words<'_>,
    filler_said: &mut bool,
) -> tools::ToolResult {
    match ctx.tool(&call.name) {
        // Keys go out through the transport, in order with the agent's audio.
        None if call.name == SEND_DTMF && ctx.config.dtmf_tool => {
            let (content, ok) = match tools::dtmf_digits(call) {
                Ok(digits) => {
                    let content = format!(r#"{{"pressed":"{digits}"}}"#);
                    let _ = tx.send(WorkerEvent::Dtmf { turn, digits }).await;
                    (content, true)
                }
                Err(e) => (serde_json::json!({ "error": e }).to_string(), false),
            };
            tools::ToolResult { content, ok, elapsed: Duration::ZERO }
        }
        None => tools::ToolResult {
            content: format!(r#"{{"error":"no tool named {}"}}"#, call.name.replace('"', "")),
            ok: false,
            elapsed: Duration::ZERO,
        },
        Some(tool) => {
            let running = tool.run(call);
            tokio::pin!(running);
            match (&ctx.config.filler, *filler_said) {
                (Some((after, line)), false) => tokio::select! {
                    r = &mut running => r,
                    () = tokio::time::sleep(*after) => {
                        *filler_said = true;
                        words.line(line);
                        running.await
                    }
                },
                _ => running.await,
            }
        }
    }
}

async fn retrying(
    tx: &mpsc::Sender<WorkerEvent>,
    stage: Stage,
    error: &ProviderError,
    attempt: usize,
    wait: Duration,
) {
    let _ = tx
        .send(WorkerEvent::Retrying {
            stage,
            provider: error.provider(),
            attempt: attempt as u32 + 1,
            backoff: wait,
            error: error.to_string(),
        })
        .await;
}

/// The TTS side: speak each sentence in turn, retrying a voice that fails
/// before its first audio.
async fn speak(
    ctx: &WorkerContext,
    turn: TurnId,
    mut sentences: mpsc::UnboundedReceiver<String>,
    cancel: &CancellationToken,
    tx: &mpsc::Sender<WorkerEvent>,
    line: Option<String>,
) -> Result<(), Failure> {
    let tts = &ctx.providers.tts;
    // A fixed line's audio is kept for the next call.
    let mut kept: Option<Vec<i16>> = line.as_ref().map(|_| Vec::new());
    let mut canonical = ToCanonical::new(tts.sample_rate());
    let mut first_audio = true;
    let mut spoke = false;
    while let Some(text) = sentences.recv().await {
        let _ = tx.send(WorkerEvent::Sentence { turn, text: text.clone() }).await;
        let mut attempt = 0;
        'attempt: loop {
            ctx.usage.add_tts(&text);
            let mut stream = tts.synthesize(text.clone(), cancel.child_token());
            if stream.rate != canonical.rate {
                canonical = ToCanonical::new(stream.rate);
            }
            let mut produced = false;
            while let Some(chunk) = stream.audio.recv().await {
                match chunk {
                    Ok(samples) => {
                        if first_audio {
                            first_audio = false;
                            let _ = tx.send(WorkerEvent::FirstAudio { turn, at: Instant::now() }).await;
                        }
                        produced = true;
                        spoke = true;
                        let samples = canonical.push(&samples);
                        if let Some(k) = kept.as_mut() {
                            k.extend_from_slice(&samples);
                        }
                        if !samples.is_empty() {
                            let _ = tx.send(WorkerEvent::Audio { turn, samples }).await;
                        }
                    }
                    Err(error) => match backoff(&ctx.config, &error, attempt).filter(|_| !produced) {
                        Some(wait) => {
                            retrying(tx, Stage::Tts, &error, attempt, wait).await;
                            tokio::time::sleep(wait).await;
                            attempt += 1;
                            continue 'attempt;
                        }
                        None => return Err((Stage::Tts, error, spoke)),
                    },
                }
            }
            let tail = canonical.flush();
            if let Some(k) = kept.as_mut() {
                k.extend_from_slice(&tail);
            }
            if !tail.is_empty() {
                let _ = tx.send(WorkerEvent::Audio { turn, samples: tail }).await;
            }
            break;
        }
    }
    if let (Some(text), Some(audio)) = (line, kept)
        && !cancel.is_cancelled()
        && !audio.is_empty()
    {
        lines::put(&ctx.providers.tts, text, audio);
    }
    Ok(())
}

/// Fixed lines (greeting, reprompt, fallback, goodbye, filler) are the same
/// in every call of an agent: each voice synthesises them once, and later
/// calls replay the audio at once, without the TTS time or cost.
mod lines {
    use std::collections::HashMap;
    use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};

    use crate::providers::TextToSpeech;

    /// Lines kept, across all voices; past it, the cache starts over.
    const MAX_LINES: usize = 256;

    /// (the voice instance's address, the text) -> the voice and its 16 kHz
    /// audio. The voice is kept (weakly) because an address is reused once
    /// a provider is dropped: a line is the cache's only while its voice lives.
    type Cache = HashMap<(usize, String), (Weak<dyn TextToSpeech>, Arc<[i16]>)>;

    static CACHE: LazyLock<Mutex<Cache>> = LazyLock::new(Mutex::default);

    fn voice(tts: &Arc<dyn TextToSpeech>) -> usize {
        Arc::as_ptr(tts).cast::<()>() as usize
    }

    pub(super) fn get(tts: &Arc<dyn TextToSpeech>, text: &str) -> Option<Arc<[i16]>> {
        let cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
        let (kept, audio) = cache.get(&(voice(tts), text.to_owned()))?;
        kept.upgrade().is_some_and(|v| Arc::ptr_eq(&v, tts)).then(|| audio.clone())
    }

    pub(super) fn put(tts: &Arc<dyn TextToSpeech>, text: String, audio: Vec<i16>) {
        let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= MAX_LINES {
            cache.clear();
        }
        cache.insert((voice(tts), text), (Arc::downgrade(tts), audio.into()));
    }
}

/// TTS audio of any rate and chunking -> 16 kHz, in whole 20 ms frames.
struct ToCanonical {
    rate: SampleRate,
    resampler: Option<FrameResampler>,
    pending: Vec<i16>,
}

impl ToCanonical {
    fn new(rate: SampleRate) -> Self {
        let resampler = (rate != SampleRate::HZ_16000)
            .then(|| FrameResampler::new(rate, SampleRate::HZ_16000).ok())
            .flatten();
        Self { rate, resampler, pending: Vec::new() }
    }

    fn push(&mut self, samples: &[i16]) -> Vec<i16> {
        let Some(resampler) = self.resampler.as_mut() else {
            return samples.to_vec();
        };
        self.pending.extend_from_slice(samples);
        let n_in = self.rate.samples_per_frame();
        let mut out = Vec::with_capacity(self.pending.len() / n_in * 320 + 320);
        let mut frame = [0i16; 320];
        let mut used = 0;
        while self.pending.len() - used >= n_in {
            if resampler.process(&self.pending[used..used + n_in], &mut frame).is_ok() {
                out.extend_from_slice(&frame);
            }
            used += n_in;
        }
        self.pending.drain(..used);
        out
    }

    /// Pads the last partial frame with silence and pushes it through.
    fn flush(&mut self) -> Vec<i16> {
        if self.resampler.is_none() || self.pending.is_empty() {
            return Vec::new();
        }
        let n_in = self.rate.samples_per_frame();
        let mut padded = std::mem::take(&mut self.pending);
        padded.resize(n_in, 0);
        self.push(&padded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tts_audio_at_any_rate_comes_out_as_whole_16k_frames() {
        let mut c = ToCanonical::new(SampleRate::HZ_24000);
        let mut out = c.push(&[100; 700]); // 1.46 frames of 480
        assert_eq!(out.len(), 320);
        out.extend(c.flush());
        assert_eq!(out.len(), 640);
        let mut same = ToCanonical::new(SampleRate::HZ_16000);
        assert_eq!(same.push(&[1; 123]).len(), 123);
        assert!(same.flush().is_empty());
    }

    /// What `reply`, fed in small deltas to [`Words`] set up by `setup`,
    /// comes out as, and whether the gate replaced it.
    fn fed(setup: impl FnOnce(&mut Words<'_>), reply: &str) -> (String, bool) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut words = Words::sentences(&tx);
        setup(&mut words);
        let chars: Vec<char> = reply.chars().collect();
        for delta in chars.chunks(3) {
            words.push(&delta.iter().collect::<String>());
        }
        words.finish();
        let replaced = words.replaced();
        drop(words);
        drop(tx);
        let mut out = Vec::new();
        while let Ok(piece) = rx.try_recv() {
            out.push(piece.trim().to_owned());
        }
        (out.join(" "), replaced)
    }

    /// What `reply` comes out as, on a fact question.
    fn said(question: &str, passage: &str, reply: &str) -> (String, bool) {
        fed(|w| w.check_with(Gate::for_question(question, &[passage.to_owned()])), reply)
    }

    /// What `reply` comes out as on a turn with no gate (`caller` said).
    fn said_to(caller: &str, reply: &str) -> String {
        fed(|w| w.asked_back_with(caller, "Sorry, could you say it again?"), reply).0
    }

    #[test]
    fn a_reply_that_says_the_callers_words_back_asks_them_again() {
        let caller = "I don't own a mat. Is that a problem?";
        assert_eq!(
            said_to(caller, "I don't own a mat. Is that a problem?"),
            "Sorry, could you say it again?"
        );
        assert_eq!(
            said_to("Which meant it weren't there.", "Which meant it wasn't there."),
            "Sorry, could you say it again?"
        );
        // Answers, even ones that start with the caller's words, are said whole.
        let answer = "I don't have one either, but you can rent a mat for 2 dollars.";
        assert_eq!(said_to(caller, answer), answer);
        assert_eq!(said_to("Thank you.", "Thank you. Goodbye!"), "Thank you. Goodbye!");
        // The question said back before the answer: only the answer is said.
        assert_eq!(
            said_to(
                "What time do you open on Saturday?",
                "What time do you open on Saturday? We open at 9 am."
            ),
            "We open at 9 am."
        );
    }

    #[test]
    fn a_fact_answer_stops_at_the_first_sentence_that_invents_a_number() {
        let passage = "A cleaning costs $85 and a check-up $60.";
        let (out, replaced) = said(
            "How much is a cleaning?",
            passage,
            "A cleaning costs $85. A whitening is $38. Anything else?",
        );
        assert_eq!((out.as_str(), replaced), ("A cleaning costs $85.", false));
        // A reply true to the facts is said whole.
        let (out, _) =
            said("How much is a cleaning?", passage, "A cleaning is $85, a check-up $60. Anything else?");
        assert_eq!(out, "A cleaning is $85, a check-up $60. Anything else?");
    }

    #[test]
    fn a_fact_answer_that_asks_back_is_replaced_at_once() {
        let passage = "We are open Tuesday to Sunday; closed on Mondays.";
        let (out, replaced) = said(
            "Are you open on Mondays?",
            passage,
            "Are you open on Sundays? Yes, we are open on Mondays.",
        );
        assert_eq!((out.as_str(), replaced), (passage, true));
    }
}
