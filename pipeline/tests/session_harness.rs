//! The call core and its session, deterministically: scripted providers,
//! a paused tokio clock, fixture speech fed as 20 ms frames through the
//! real WebRTC VAD and endpointer, driven as a transport drives them (the
//! call's clock, its timers and the providers' input awaited by
//! [`CallClock`]). Each test asserts the sequence of what happened.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use voxgate_codecs::dtmf::DtmfKey;
use voxgate_pipeline::call::{Action, CallClock, CallCore, CallParts, Output, Wake};
use voxgate_pipeline::dsp::vad::{WebRtcMode, WebRtcVad};
use voxgate_pipeline::providers::scripted::{LlmScript, ScriptedLlm, ScriptedStt, ScriptedTts, SttScript};
use voxgate_pipeline::providers::{ProviderError, ToolCall};
use voxgate_pipeline::session::{
    CallEventKind, CallLog, Control, EndReason, Frame, Knowledge, Providers, SessionConfig, SessionParts,
    Speaker, Stage,
};

const QUESTION: &str = "What time does your store open on Saturday?";
const BOOKING: &str = "Hello, I would like to book a table for two people tomorrow evening.";

fn fixture(name: &str) -> Vec<i16> {
    let path = format!("{}/../fixtures/audio/{name}", env!("CARGO_MANIFEST_DIR"));
    let mut reader = hound::WavReader::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(reader.spec().sample_rate, 16_000, "{name}");
    reader.samples::<i16>().map(|s| s.expect("sample")).collect()
}

/// Milliseconds into `samples` where speech starts.
fn onset_ms(samples: &[i16]) -> u64 {
    samples.iter().position(|s| s.unsigned_abs() > 1000).unwrap_or(0) as u64 / 16
}

/// What the caller does, in order.
enum Step {
    Silence(u64),
    Say(&'static str),
    /// A short sound: `ms` of a fixture's speech, from its onset.
    Cough(&'static str, u64),
    Dtmf(&'static str),
    Hangup,
}

#[derive(Debug)]
struct Outcome {
    log: CallLog,
    /// Each action the core asked of the transport, with the simulated ms it came at.
    events: Vec<(u64, Action)>,
    /// The simulated ms of each agent frame sent.
    agent_frames: Vec<u64>,
    /// The simulated ms at which the speech of each `Say` began.
    caller_onsets: Vec<u64>,
}

impl Outcome {
    fn kinds(&self) -> Vec<&CallEventKind> {
        self.log.events.iter().map(|e| &e.kind).collect()
    }

    fn lines(&self) -> Vec<(Speaker, &str, bool)> {
        self.log.transcript.iter().map(|l| (l.speaker, l.text.as_str(), l.interrupted)).collect()
    }
}

struct Fakes {
    stt: ScriptedStt,
    llm: Arc<ScriptedLlm>,
    tts: ScriptedTts,
    knowledge: Option<Arc<dyn Knowledge>>,
}

fn fakes(stt: Vec<SttScript>, llm: Vec<LlmScript>) -> Fakes {
    Fakes {
        stt: ScriptedStt::new(stt),
        llm: Arc::new(ScriptedLlm::new(llm)),
        tts: ScriptedTts::default(),
        knowledge: None,
    }
}

/// Knowledge that always retrieves the same passages.
struct Facts(Vec<String>);

impl Knowledge for Facts {
    fn retrieve(&self, _query: &str, k: usize) -> Vec<String> {
        self.0.iter().take(k).cloned().collect()
    }
}

fn say(text: &str) -> SttScript {
    SttScript::Text(text.to_owned())
}

fn no_greeting() -> SessionConfig {
    let mut config = SessionConfig::default();
    config.turn.greeting = None;
    config
}

/// What the transport hands the core, 20 ms frame by frame.
#[allow(clippy::large_enum_variant)] // a test script, mostly frames
enum Input {
    Frame(Frame),
    Control(Control),
}

/// The caller's steps as the transport's input, and the ms at which the
/// speech of each `Say` begins.
fn script(steps: Vec<Step>) -> (Vec<Input>, Vec<u64>) {
    let (mut actions, mut onsets) = (Vec::new(), Vec::new());
    let frames = |actions: &mut Vec<Input>, samples: &[i16]| {
        for chunk in samples.chunks(320) {
            let mut frame: Frame = [0; 320];
            frame[..chunk.len()].copy_from_slice(chunk);
            actions.push(Input::Frame(frame));
        }
    };
    for step in steps {
        match step {
            Step::Silence(n) => frames(&mut actions, &vec![0; n as usize * 16]),
            Step::Say(name) => {
                let speech = fixture(name);
                let sent = actions.iter().filter(|a| matches!(a, Input::Frame(_))).count() as u64;
                onsets.push(sent * 20 + onset_ms(&speech));
                frames(&mut actions, &speech);
            }
            Step::Cough(name, n) => {
                let speech = fixture(name);
                let from = onset_ms(&speech) as usize * 16;
                frames(&mut actions, &speech[from..from + n as usize * 16]);
            }
            Step::Dtmf(keys) => {
                for key in keys.chars().filter_map(DtmfKey::from_char) {
                    actions.push(Input::Control(Control::Dtmf(key)));
                    frames(&mut actions, &[0; 320 * 5]);
                }
            }
            Step::Hangup => {
                actions.push(Input::Control(Control::Hangup));
                break;
            }
        }
    }
    (actions, onsets)
}

async fn call(config: SessionConfig, fakes: Fakes, steps: Vec<Step>) -> Outcome {
    let providers = Providers {
        stt: Arc::new(fakes.stt),
        llm: fakes.llm.clone(),
        tts: Arc::new(fakes.tts),
        knowledge: fakes.knowledge,
        speech_to_speech: None,
    };
    call_with(config, providers, steps).await
}

/// The call as a transport runs it: 16 kHz PCM in order, a tick every 20 ms
/// from the start.
async fn call_with(config: SessionConfig, providers: Providers, steps: Vec<Step>) -> Outcome {
    let vad = Box::new(WebRtcVad::new(WebRtcMode::Aggressive));
    let parts = CallParts::pcm16(SessionParts { config, providers, vad, recording: None });
    let (inputs, caller_onsets) = script(steps);
    let start = Instant::now();
    let ms = move || start.elapsed().as_millis() as u64;
    let (mut events, mut agent_frames) = (Vec::new(), Vec::new());
    let mut core = CallCore::start(start.into_std(), parts).expect("a PCM call");
    let mut clock = CallClock::starting_at(start);
    let mut inputs = inputs.into_iter();
    let mut bytes = Vec::with_capacity(640);
    while !core.is_ended() {
        if let Wake::Tick(now) = clock.wait(&mut core).await {
            // Keys and hang-up, then the caller's frame (silence once the
            // script is done, as RTP's playout goes on).
            let mut frame = [0; 320];
            for input in inputs.by_ref() {
                match input {
                    Input::Control(c) => core.handle_control(now, c),
                    Input::Frame(f) => {
                        frame = f;
                        break;
                    }
                }
            }
            bytes.clear();
            bytes.extend(frame.iter().flat_map(|s| s.to_le_bytes()));
            assert!(core.handle_audio(now, &bytes));
            core.handle_tick(now);
        }
        while let Some(output) = core.poll_output() {
            match output {
                Output::Media(_) => agent_frames.push(ms()),
                Output::Action(action) => events.push((ms(), action)),
            }
        }
    }
    let log = core.finish(voxgate_pipeline::call::now());
    Outcome { log, events, agent_frames, caller_onsets }
}

#[tokio::test(start_paused = true)]
async fn a_fact_answer_is_said_only_when_it_holds_to_the_facts() {
    const HOURS: &str = "On Saturdays the store opens at 9 am and closes at 2 pm.";
    let right = "We open at nine on Saturdays.";
    let steps =
        || vec![Step::Silence(500), Step::Say("store_hours_16k.wav"), Step::Silence(5000), Step::Hangup];
    for (reply, heard, fell_back) in [
        // The model answers from the facts: it is said as it came.
        (right, right, false),
        // It ignores them, or says a time they do not hold: the fact is read instead.
        ("I'm sorry for your loss. Please accept our condolences.", HOURS, true),
        ("On Saturdays we open at ten.", HOURS, true),
    ] {
        let mut f = fakes(vec![say(QUESTION)], vec![LlmScript::text(reply)]);
        f.knowledge = Some(Arc::new(Facts(vec![HOURS.to_owned()])));
        let out = call(no_greeting(), f, steps()).await;
        assert_eq!(
            out.lines(),
            vec![(Speaker::Caller, QUESTION, false), (Speaker::Agent, heard, false)],
            "{reply}"
        );
        let fallbacks =
            out.kinds().iter().filter(|k| matches!(k, CallEventKind::GroundingFallback { .. })).count();
        assert_eq!(fallbacks, usize::from(fell_back), "{reply}: {:?}", out.kinds());
    }
    // A request is not a fact question: whatever the model says is said.
    let mut f = fakes(vec![say(BOOKING)], vec![LlmScript::text("Sure, for what time?")]);
    f.knowledge = Some(Arc::new(Facts(vec!["Tables can be booked for up to eight people tomorrow.".into()])));
    let out = call(no_greeting(), f, steps()).await;
    assert_eq!(out.lines()[1], (Speaker::Agent, "Sure, for what time?", false));
    assert!(!out.kinds().iter().any(|k| matches!(k, CallEventKind::GroundingFallback { .. })));
}

#[tokio::test(start_paused = true)]
async fn greeting_then_a_committed_turn_and_its_reply() {
    let reply = "We open at nine on Saturdays.";
    let mut f = fakes(vec![say(QUESTION)], vec![LlmScript::text(reply)]);
    // Speech comes between the transport's ticks.
    f.tts.first_audio = Duration::from_millis(7);
    let llm = f.llm.clone();
    let tts = ScriptedTts::default();
    let greeting = SessionConfig::default().turn.greeting.expect("a greeting");
    let out = call(
        SessionConfig::default(),
        f,
        vec![Step::Silence(3000), Step::Say("store_hours_16k.wav"), Step::Silence(5000), Step::Hangup],
    )
    .await;

    assert_eq!(
        out.lines(),
        vec![
            (Speaker::Agent, greeting.as_str(), false),
            (Speaker::Caller, QUESTION, false),
            (Speaker::Agent, reply, false)
        ]
    );
    assert!(
        matches!(out.kinds()[..], [CallEventKind::TurnCommitted { turn: 2, dtmf: false }]),
        "{:?}",
        out.kinds()
    );
    assert_eq!(out.log.end, EndReason::CallerHungUp);

    // The model saw the greeting and the question.
    let request = &llm.requests()[0];
    let said: Vec<&str> = request.messages.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(said[1..], [greeting.as_str(), QUESTION]);

    // Every sample of both lines went out, in whole frames, and the reply
    // after the caller's question.
    let frames = |text: &str| tts.samples_for(text).div_ceil(320);
    assert_eq!(out.agent_frames.len(), frames(&greeting) + frames(reply));
    let reply_start = out.agent_frames[frames(&greeting)];
    assert!(reply_start > out.caller_onsets[0]);
    // On the transport's ticks only, a talkspurt's first frame too: the
    // caller's jitter buffer times the talkspurt by its first packet.
    let off_tick: Vec<u64> = out.agent_frames.iter().copied().filter(|t| t % 20 != 0).collect();
    assert!(off_tick.is_empty(), "agent frames between ticks at {off_tick:?} ms");
    // One a tick.
    assert!(out.agent_frames.windows(2).all(|w| w[1] > w[0]), "two frames on one tick");

    // The latency breakdown is complete and in order.
    let l = &out.log.latencies[0];
    let stages =
        [l.final_transcript_ms, l.committed_ms, l.llm_first_token_ms, l.tts_first_audio_ms, l.first_frame_ms];
    assert!(stages.iter().all(Option::is_some), "{l:?}");
    assert!(stages.windows(2).all(|w| w[0] <= w[1]), "{l:?}");
    // The metrics of it: tests/turn_metrics.rs (a process of its own).

    // Usage for billing: the caller's audio went to STT, the reply's text to
    // TTS (the greeting too, unless another call already cached it), and the
    // scripted model reports no tokens, so they are estimated.
    let u = out.log.usage;
    assert!(u.stt_audio_ms >= 3000 && u.stt_audio_ms <= out.log.duration_ms, "{u:?}");
    let (reply_chars, greeting_chars) = (reply.chars().count() as u64, greeting.chars().count() as u64);
    assert!(u.tts_characters == reply_chars || u.tts_characters == reply_chars + greeting_chars, "{u:?}");
    assert!(u.llm_tokens_estimated, "{u:?}");
    assert_eq!(u.llm_completion_tokens, reply.len().div_ceil(4) as u64);
    assert!(u.llm_prompt_tokens > 10, "{u:?}");
}

#[tokio::test(start_paused = true)]
async fn a_hang_up_mid_line_keeps_what_was_heard_of_it() {
    let greeting = SessionConfig::default().turn.greeting.expect("a greeting");
    let out =
        call(SessionConfig::default(), fakes(vec![], vec![]), vec![Step::Silence(1000), Step::Hangup]).await;
    let lines = out.lines();
    let [(Speaker::Agent, heard, true)] = lines[..] else { panic!("{lines:?}") };
    assert!(!heard.is_empty() && heard.len() < greeting.len(), "{heard:?} of {greeting:?}");
    assert!(greeting.starts_with(heard), "{heard:?} of {greeting:?}");
}

#[tokio::test(start_paused = true)]
async fn barge_in_stops_the_agent_and_keeps_only_what_was_heard() {
    let long = "Our store opens at nine in the morning on Saturdays and closes at six in the evening, \
                and on Sundays we open at ten and close at four in the afternoon.";
    let f = fakes(
        vec![say(QUESTION), say(BOOKING)],
        vec![LlmScript::text(long), LlmScript::text("Sure, for two.")],
    );
    let llm = f.llm.clone();
    let out = call(
        no_greeting(),
        f,
        vec![
            Step::Say("store_hours_16k.wav"),
            Step::Silence(3000),
            Step::Say("book_table_16k.wav"),
            Step::Silence(4000),
            Step::Hangup,
        ],
    )
    .await;

    let barge = out.caller_onsets[1];
    let heard = match &out.lines()[..] {
        [
            (Speaker::Caller, q, false),
            (Speaker::Agent, heard, true),
            (Speaker::Caller, b, false),
            (Speaker::Agent, "Sure, for two.", false),
        ] if *q == QUESTION && *b == BOOKING => heard.to_string(),
        other => panic!("{other:?}"),
    };
    assert!(!heard.is_empty() && long.starts_with(&heard) && heard.len() < long.len(), "{heard}");
    assert!(out.kinds().iter().any(|k| matches!(k, CallEventKind::Interrupted { turn: 1, .. })));
    assert!(out.events.iter().any(|(at, e)| *e == Action::Clear && *at >= barge));

    // The agent was talking when the caller began, went quiet within the
    // caller's first word, and the next frame it sent was the answer to
    // the new question.
    let last_before = out.agent_frames.iter().copied().filter(|&t| t < barge).max().expect("talking");
    assert!(barge - last_before <= 20, "quiet {} ms before the barge-in", barge - last_before);
    let after: Vec<u64> = out.agent_frames.iter().copied().filter(|&t| t >= barge).collect();
    let stopped = after.iter().copied().filter(|&t| t < barge + 300).max().unwrap_or(last_before);
    let reply = after.iter().copied().find(|&t| t >= barge + 300).expect("a reply");
    assert!(reply - stopped > 1000, "agent still talking {} ms after the barge-in", reply - barge);

    // The model was told only what the caller heard.
    let second = &llm.requests()[1];
    let assistant: Vec<&str> = second
        .messages
        .iter()
        .filter(|m| m.role.as_str() == "assistant")
        .map(|m| m.content.as_str())
        .collect();
    assert_eq!(assistant, [heard.as_str()]);
}

#[tokio::test(start_paused = true)]
async fn a_cough_pauses_the_agent_which_then_resumes() {
    let reply = "Our store opens at nine in the morning on Saturdays and closes at six in the evening.";
    let f = fakes(vec![say(QUESTION), say("")], vec![LlmScript::text(reply)]);
    let out = call(
        no_greeting(),
        f,
        vec![
            Step::Say("store_hours_16k.wav"),
            Step::Silence(2500),
            Step::Cough("book_table_16k.wav", 200),
            Step::Silence(7000),
            Step::Hangup,
        ],
    )
    .await;
    assert!(
        out.kinds().iter().any(|k| matches!(k, CallEventKind::FalseInterruption { turn: 1 })),
        "{:?}",
        out.kinds()
    );
    assert!(!out.events.iter().any(|(_, e)| *e == Action::Clear));
    assert_eq!(out.lines(), vec![(Speaker::Caller, QUESTION, false), (Speaker::Agent, reply, false)]);
    assert_eq!(
        out.agent_frames.len(),
        ScriptedTts::default().samples_for(reply).div_ceil(320),
        "all of it played"
    );
}

#[tokio::test(start_paused = true)]
async fn a_backchannel_lets_the_agent_go_on_at_once() {
    let reply = "Our store opens at nine in the morning on Saturdays and closes at six in the evening.";
    let f = fakes(vec![say(QUESTION), say("Uh-huh.")], vec![LlmScript::text(reply)]);
    let out = call(
        no_greeting(),
        f,
        vec![
            Step::Say("store_hours_16k.wav"),
            Step::Silence(2500),
            // Longer than the minimum interruption speech: only its words tell.
            Step::Cough("book_table_16k.wav", 700),
            Step::Silence(7000),
            Step::Hangup,
        ],
    )
    .await;
    assert!(!out.events.iter().any(|(_, e)| *e == Action::Clear), "not interrupted");
    assert_eq!(out.lines(), vec![(Speaker::Caller, QUESTION, false), (Speaker::Agent, reply, false)]);
    assert_eq!(
        out.agent_frames.len(),
        ScriptedTts::default().samples_for(reply).div_ceil(320),
        "all of it played"
    );
    // The agent went on as soon as the word was heard, not after the
    // false-interruption window (1.5 s of quiet).
    let longest_gap = out.agent_frames.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    assert!(longest_gap < 1500, "the agent stopped for {longest_gap} ms");
}

fn dropped() -> ProviderError {
    ProviderError::Connection { provider: "scripted-stt", message: "socket dropped".into() }
}

#[tokio::test(start_paused = true)]
async fn stt_failure_retries_then_speaks_the_fallback_and_recovers() {
    let reply = "We open at nine.";
    let mut f = fakes(vec![SttScript::Fail(dropped()), say(QUESTION)], vec![LlmScript::text(reply)]);
    f.stt = ScriptedStt::new(vec![SttScript::Fail(dropped()), say(QUESTION)]).failing_reopens(vec![
        dropped(),
        dropped(),
        dropped(),
    ]);
    let config = no_greeting();
    let fallback = config.fallback_line.clone();
    let out = call(
        config,
        f,
        vec![
            Step::Say("store_hours_16k.wav"),
            Step::Silence(10_000),
            Step::Say("store_hours_16k.wav"),
            Step::Silence(4000),
            Step::Hangup,
        ],
    )
    .await;
    let backoffs: Vec<u64> = out
        .kinds()
        .iter()
        .filter_map(|k| match k {
            CallEventKind::ProviderRetry { stage: Stage::Stt, backoff_ms, .. } => Some(*backoff_ms),
            _ => None,
        })
        .collect();
    assert_eq!(backoffs, [1000, 2000, 4000]);
    assert!(out.kinds().iter().any(|k| matches!(k, CallEventKind::ProviderFailed { stage: Stage::Stt, .. })));
    assert!(out.kinds().contains(&&CallEventKind::Fallback));
    assert_eq!(
        out.lines(),
        vec![
            (Speaker::Agent, fallback.as_str(), false),
            (Speaker::Caller, QUESTION, false),
            (Speaker::Agent, reply, false)
        ]
    );
    assert_eq!(out.log.end, EndReason::CallerHungUp);
}

#[tokio::test(start_paused = true)]
async fn a_short_stt_outage_loses_no_words() {
    let mut f = fakes(vec![], vec![LlmScript::text("We open at nine.")]);
    f.stt =
        ScriptedStt::new(vec![SttScript::Fail(dropped()), say(QUESTION)]).failing_reopens(vec![dropped()]);
    let out =
        call(no_greeting(), f, vec![Step::Say("store_hours_16k.wav"), Step::Silence(8000), Step::Hangup])
            .await;
    assert!(!out.kinds().contains(&&CallEventKind::Fallback), "{:?}", out.kinds());
    assert_eq!(out.lines()[0], (Speaker::Caller, QUESTION, false), "replayed into the new stream");
}

#[tokio::test(start_paused = true)]
async fn llm_errors_are_retried_with_backoff() {
    let busy = ProviderError::Server { provider: "scripted-llm", status: 503 };
    let f = fakes(vec![say(QUESTION)], vec![LlmScript::Fail(busy), LlmScript::text("We open at nine.")]);
    let out =
        call(no_greeting(), f, vec![Step::Say("store_hours_16k.wav"), Step::Silence(5000), Step::Hangup])
            .await;
    assert!(out.kinds().iter().any(|k| matches!(
        k,
        CallEventKind::ProviderRetry { stage: Stage::Llm, attempt: 1, backoff_ms: 1000, .. }
    )));
    assert!(!out.kinds().contains(&&CallEventKind::Fallback));
    assert_eq!(out.lines()[1], (Speaker::Agent, "We open at nine.", false));
}

#[tokio::test(start_paused = true)]
async fn repeated_failures_end_the_call_with_a_goodbye() {
    let refused = || ProviderError::Unauthorized { provider: "scripted-llm" };
    let f = fakes(
        vec![say(QUESTION), say(QUESTION)],
        vec![LlmScript::Fail(refused()), LlmScript::Fail(refused())],
    );
    let config = no_greeting();
    let (fallback, goodbye) = (config.fallback_line.clone(), config.failure_goodbye.clone());
    let out = call(
        config,
        f,
        vec![
            Step::Say("store_hours_16k.wav"),
            Step::Silence(5000),
            Step::Say("store_hours_16k.wav"),
            Step::Silence(15_000),
            Step::Hangup,
        ],
    )
    .await;
    assert_eq!(out.log.end, EndReason::ProviderFailure, "{out:#?}");
    let agent: Vec<&str> = out.lines().into_iter().filter(|l| l.0 == Speaker::Agent).map(|l| l.1).collect();
    assert_eq!(agent, [fallback.as_str(), goodbye.as_str()]);
    let failed = out.kinds().iter().filter(|k| matches!(k, CallEventKind::ProviderFailed { .. })).count();
    assert_eq!(failed, 2);
}

#[tokio::test(start_paused = true)]
async fn dtmf_digits_make_a_turn() {
    let f = fakes(vec![], vec![LlmScript::text("Thanks, order 42 is on its way.")]);
    let llm = f.llm.clone();
    let out = call(no_greeting(), f, vec![Step::Dtmf("42#"), Step::Silence(4000), Step::Hangup]).await;
    assert!(out.kinds().iter().any(|k| matches!(k, CallEventKind::TurnCommitted { dtmf: true, .. })));
    assert_eq!(out.lines()[0], (Speaker::Caller, "42", false));
    let last = llm.requests()[0].messages.last().cloned().expect("a message");
    assert!(last.content.contains("42"), "{last:?}");
}

fn tool_call(name: &str) -> ToolCall {
    ToolCall { id: "call_1".into(), name: name.into(), arguments: "{}".into() }
}

#[tokio::test(start_paused = true)]
async fn end_call_tool_hangs_up_after_the_goodbye_plays() {
    let bye = "Thanks for calling, goodbye!";
    let script = LlmScript::Reply { text: bye.into(), tool_calls: vec![tool_call("end_call")] };
    let f = fakes(vec![say("That's all, bye.")], vec![script]);
    let out = call(no_greeting(), f, vec![Step::Say("store_hours_16k.wav"), Step::Silence(20_000)]).await;
    assert_eq!(out.log.end, EndReason::AgentEnded);
    assert_eq!(out.lines().last(), Some(&(Speaker::Agent, bye, false)), "played to the end first");
}

#[tokio::test(start_paused = true)]
async fn transfer_tool_hands_over_after_the_line_plays() {
    let line = "Let me connect you to a colleague.";
    let script = LlmScript::Reply { text: line.into(), tool_calls: vec![tool_call("transfer_to_human")] };
    let f = fakes(vec![say("Can I talk to a person?")], vec![script]);
    let mut config = no_greeting();
    config.transfer_target = Some("sip:desk@example.com".into());
    let out = call(config, f, vec![Step::Say("store_hours_16k.wav"), Step::Silence(20_000)]).await;
    let target = "sip:desk@example.com".to_owned();
    assert_eq!(out.log.end, EndReason::Transferred { target: target.clone() });
    assert!(out.events.iter().any(|(_, e)| *e == Action::Transfer { target: target.clone() }));
    assert_eq!(out.lines().last(), Some(&(Speaker::Agent, line, false)));
}

#[tokio::test(start_paused = true)]
async fn the_send_dtmf_tool_presses_keys_and_the_model_hears_back() {
    let press =
        ToolCall { id: "call_1".into(), name: "send_dtmf".into(), arguments: r#"{"digits": "1#"}"#.into() };
    let f = fakes(
        vec![say("Press one for sales.")],
        vec![LlmScript::Reply { text: String::new(), tool_calls: vec![press] }, LlmScript::text("Done.")],
    );
    let llm = f.llm.clone();
    let mut config = no_greeting();
    config.dtmf_tool = true;
    let out =
        call(config, f, vec![Step::Say("store_hours_16k.wav"), Step::Silence(5_000), Step::Hangup]).await;
    assert!(out.events.iter().any(|(_, e)| *e == Action::Dtmf { digits: "1#".into() }), "{:?}", out.events);
    assert!(out.kinds().contains(&&CallEventKind::DtmfSent { digits: "1#".into() }), "{:?}", out.kinds());
    let requests = llm.requests();
    assert!(requests[0].tools.iter().any(|t| t.name == "send_dtmf"), "offered");
    let result = requests[1].messages.last().expect("the tool's result");
    assert_eq!(result.content, r#"{"pressed":"1#"}"#);
    assert_eq!(out.lines().last(), Some(&(Speaker::Agent, "Done.", false)));
}

/// Real time, real HTTP: an agent tool on a local server, slow enough for
/// the filler line, and a call with arguments the schema refuses.
#[tokio::test]
async fn http_tools_run_with_checked_arguments_and_a_filler_while_slow() {
    use std::sync::Mutex;

    use axum::Json;
    use axum::routing::post;
    use serde_json::{Value, json};
    use voxgate_pipeline::session::tools::HttpTool;

    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/hours",
        post(move |Json(args): Json<Value>| async move {
            log.lock().expect("lock").push(args);
            tokio::time::sleep(Duration::from_millis(400)).await;
            Json(json!({"saturday": "9am to 1pm"}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hours", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let schema = json!({
        "type": "object",
        "properties": {"day": {"type": "string", "enum": ["saturday", "sunday"]}},
        "required": ["day"]
    });
    let tool =
        HttpTool::new("get_hours", "Opening hours for a day", schema, &url, vec![], Duration::from_secs(5))
            .expect("valid tool")
            // The endpoint is on loopback, which the default client refuses.
            .through(voxgate_guarded_http::shared(true));
    let call_with = |args: &str| LlmScript::Reply {
        text: String::new(),
        tool_calls: vec![ToolCall { id: "call_1".into(), name: "get_hours".into(), arguments: args.into() }],
    };
    let f = fakes(
        vec![say(QUESTION)],
        vec![
            call_with(r#"{"day": 6}"#),
            call_with(r#"{"day": "saturday"}"#),
            LlmScript::text("We open at nine."),
        ],
    );
    let llm = f.llm.clone();
    let mut config = no_greeting();
    config.tools = vec![Arc::new(tool)];
    config.filler = Some((Duration::from_millis(150), "One moment, please.".into()));
    let out =
        call(config, f, vec![Step::Say("store_hours_16k.wav"), Step::Silence(5000), Step::Hangup]).await;

    // The refused arguments never reached the server; the valid ones did.
    assert_eq!(*seen.lock().expect("lock"), [json!({"day": "saturday"})]);
    let ran: Vec<(String, bool)> = out
        .log
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            CallEventKind::ToolCalled { name, ok, .. } => Some((name.clone(), *ok)),
            _ => None,
        })
        .collect();
    assert_eq!(ran, [("get_hours".to_owned(), false), ("get_hours".to_owned(), true)]);

    // Both results went back to the model, the error first.
    let last = llm.requests().pop().expect("three requests");
    let tool_results: Vec<&str> =
        last.messages.iter().filter(|m| m.role.as_str() == "tool").map(|m| m.content.as_str()).collect();
    assert_eq!(tool_results.len(), 2, "{:?}", last.messages);
    assert!(tool_results[0].contains("invalid arguments"), "{}", tool_results[0]);
    assert!(tool_results[1].contains("9am to 1pm"), "{}", tool_results[1]);

    // The caller heard the filler while the slow tool ran, then the answer.
    assert_eq!(out.lines()[1], (Speaker::Agent, "One moment, please. We open at nine.", false));
}

/// The greeting is the same in every call: the voice makes it once, and
/// the next call plays it from the cache.
#[tokio::test(start_paused = true)]
async fn fixed_lines_are_synthesised_once_per_voice() {
    let tts = Arc::new(ScriptedTts::default());
    let greeting = SessionConfig::default().turn.greeting.expect("a greeting");
    for _ in 0..2 {
        let providers = Providers {
            stt: Arc::new(ScriptedStt::default()),
            llm: Arc::new(ScriptedLlm::new(vec![])),
            tts: tts.clone(),
            knowledge: None,
            speech_to_speech: None,
        };
        let out =
            call_with(SessionConfig::default(), providers, vec![Step::Silence(5000), Step::Hangup]).await;
        assert_eq!(out.log.transcript[0].text, greeting);
        assert_eq!(
            out.agent_frames.len(),
            ScriptedTts::default().samples_for(&greeting).div_ceil(320),
            "all of it, both times"
        );
    }
    assert_eq!(tts.requests(), 1);
}
