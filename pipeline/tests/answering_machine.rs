//! Answering-machine detection in a session, on the transport's 20 ms
//! clock with the real WebRTC VAD: the far end is a voicemail greeting
//! (recorded speech, then a 1 kHz beep) or a person who says "Hello?" and
//! waits. The agent must say nothing over the greeting, leave its message
//! as the beep ends and hang up, or greet the person.

mod support;

use std::sync::Arc;

use voxgate_pipeline::dsp::amd::{AmdConfig, AmdReason, AmdResult, MessageCue};
use voxgate_pipeline::dsp::vad::{WebRtcMode, WebRtcVad};
use voxgate_pipeline::providers::scripted::{LlmScript, ScriptedLlm, ScriptedStt, ScriptedTts, SttScript};
use voxgate_pipeline::session::{
    AnsweringMachine, CallEventKind, CallLog, EndReason, OnMachine, Providers, Session, SessionConfig,
    SessionEvent, SessionParts, Speaker, Voicemail,
};

const GREETING: &str = "Hello, this is the Sunrise Bakery.";
const MESSAGE: &str = "Hi, this is the Sunrise Bakery: your order is ready for pickup.";

fn fixture(name: &str) -> Vec<i16> {
    let path = format!("{}/../fixtures/audio/{name}", env!("CARGO_MANIFEST_DIR"));
    let mut reader = hound::WavReader::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(reader.spec().sample_rate, 16_000, "{name}");
    reader.samples::<i16>().map(|s| s.expect("sample")).collect()
}

/// A voicemail greeting: two recorded sentences (about 5 s of speech),
/// 600 ms of silence, a 1 kHz beep of 400 ms, then silence; and where the
/// beep ends, in ms.
fn voicemail() -> (Vec<i16>, usize) {
    let mut audio = fixture("store_hours_16k.wav");
    audio.extend(fixture("book_table_16k.wav"));
    audio.extend(std::iter::repeat_n(0, 16 * 600));
    let beep_start = audio.len();
    audio.extend((0..16 * 400).map(|i| {
        let t = i as f64 / 16_000.0;
        (9000.0 * (std::f64::consts::TAU * 1000.0 * t).sin()) as i16
    }));
    let beep_end_ms = audio.len() / 16;
    assert!(beep_start / 16 > 4000, "a long greeting");
    (audio, beep_end_ms)
}

/// A person: "What time..." cut to its first 800 ms ("Hello?"), silence,
/// then at 6 s a question.
fn person() -> Vec<i16> {
    let question = fixture("store_hours_16k.wav");
    let mut audio = question[..16 * 800].to_vec();
    audio.resize(16 * 6000, 0);
    audio.extend(question);
    audio
}

struct Call {
    /// Per 20 ms tick: whether the agent's frame carried sound.
    played: Vec<bool>,
    /// The agent's audio, in order.
    agent_audio: Vec<i16>,
    events: Vec<SessionEvent>,
    log: CallLog,
    /// The tick the session ended on, if it did.
    ended_at: Option<usize>,
}

/// Plays `far_end` (then silence) into a call we placed, for up to 20 s.
async fn call(far_end: &[i16], on_machine: OnMachine, stt: Vec<SttScript>) -> Call {
    let config = SessionConfig {
        turn: voxgate_pipeline::turn::TurnConfig { greeting: Some(GREETING.into()), ..Default::default() },
        answering_machine: Some(AnsweringMachine { detector: AmdConfig::default(), on_machine }),
        ..SessionConfig::default()
    };
    let providers = Providers {
        stt: Arc::new(ScriptedStt::new(stt)),
        llm: Arc::new(ScriptedLlm::new(vec![LlmScript::text("At nine.")])),
        tts: Arc::new(ScriptedTts::default()),
        knowledge: None,
        speech_to_speech: None,
    };
    let vad = Box::new(WebRtcVad::new(WebRtcMode::Aggressive));
    let now = voxgate_pipeline::call::now;
    let mut session = Session::start(now(), SessionParts { config, providers, vad, recording: None });
    let mut ticks = support::Ticks::new();
    let (mut played, mut agent_audio, mut events, mut ended_at) = (Vec::new(), Vec::new(), Vec::new(), None);
    while played.len() < 20_000 / 20 {
        ticks.next(&mut session).await;
        if session.is_ended() {
            ended_at = Some(played.len());
            break;
        }
        let n = played.len();
        let mut frame = [0i16; 320];
        if let Some(audio) = far_end.get(n * 320..(n + 1) * 320) {
            frame.copy_from_slice(audio);
        }
        session.handle_caller_frame(now(), &frame);
        let mut sound = false;
        while let Some(f) = session.poll_frame() {
            sound |= f.iter().any(|&s| s != 0);
            agent_audio.extend_from_slice(&f);
        }
        played.push(sound);
        while let Some(e) = session.poll_event() {
            events.push(e);
        }
    }
    let log = session.finish(now());
    Call { played, agent_audio, events, log, ended_at }
}

fn first_sound_ms(played: &[bool]) -> Option<usize> {
    played.iter().position(|&p| p).map(|i| i * 20)
}

fn detection(call: &Call) -> voxgate_pipeline::dsp::amd::Detection {
    let reported = call.events.iter().find_map(|e| match e {
        SessionEvent::AnsweringMachine(d) => Some(d.clone()),
        _ => None,
    });
    let logged = call.log.events.iter().find_map(|e| match &e.kind {
        CallEventKind::AnsweringMachine(d) => Some(d.clone()),
        _ => None,
    });
    assert_eq!(reported, logged, "the transport and the call log are told the same");
    reported.expect("a verdict")
}

#[tokio::test(start_paused = true)]
async fn the_message_is_left_on_a_machine_after_its_beep_then_the_call_ends() {
    let (greeting, beep_end_ms) = voicemail();
    let words = "Hi, you have reached Sam. Please leave a message after the tone.";
    let message = Voicemail { text: MESSAGE.into(), recording: None };
    let call = call(&greeting, OnMachine::LeaveMessage(message), vec![SttScript::Text(words.into())]).await;
    let d = detection(&call);
    assert_eq!(d.result, AmdResult::Machine, "{d:?}");
    assert!(d.decided_ms <= 2500, "decided in {} ms", d.decided_ms);
    let started = first_sound_ms(&call.played).expect("the agent spoke");
    assert!(
        started >= beep_end_ms && started <= beep_end_ms + 200,
        "the message began at {started} ms; the beep ended at {beep_end_ms} ms"
    );
    let cue = call.log.events.iter().find_map(|e| match e.kind {
        CallEventKind::MessageLeft { cue } => Some(cue),
        _ => None,
    });
    assert_eq!(cue, Some(MessageCue::Beep));
    // All of the message played, then the call ended.
    let message_ms = MESSAGE.split_whitespace().count() * 300;
    let played_ms = call.played.iter().filter(|&&p| p).count() * 20;
    assert!(played_ms.abs_diff(message_ms) <= 40, "played {played_ms} ms of a {message_ms} ms message");
    assert!(call.ended_at.is_some(), "the call did not end");
    assert_eq!(call.log.end, EndReason::MessageLeft);
    let said: Vec<_> = call.log.transcript.iter().map(|l| (l.speaker, l.text.as_str())).collect();
    assert_eq!(said, [(Speaker::Caller, words), (Speaker::Agent, MESSAGE)], "no greeting, no reply");
}

#[tokio::test(start_paused = true)]
async fn a_machine_is_hung_up_on_when_no_message_is_set() {
    let (greeting, _) = voicemail();
    let call = call(&greeting, OnMachine::HangUp, vec![]).await;
    let d = detection(&call);
    assert_eq!((d.result, d.reason), (AmdResult::Machine, AmdReason::LongGreeting), "{d:?}");
    assert_eq!(first_sound_ms(&call.played), None, "the agent said nothing");
    assert_eq!(call.ended_at.map(|n| n * 20), Some(d.decided_ms as usize), "hung up on the verdict");
    assert_eq!(call.log.end, EndReason::AnsweringMachine);
}

#[tokio::test(start_paused = true)]
async fn a_recorded_message_plays_as_recorded() {
    let (greeting, beep_end_ms) = voicemail();
    let recording: Arc<[i16]> = fixture("book_table_16k.wav").into();
    let message = Voicemail { text: MESSAGE.into(), recording: Some(recording.clone()) };
    let call = call(&greeting, OnMachine::LeaveMessage(message), vec![]).await;
    assert!(first_sound_ms(&call.played).is_some_and(|ms| ms >= beep_end_ms));
    let start = call.agent_audio.iter().position(|&s| s != 0).expect("audio");
    let lead = recording.iter().position(|&s| s != 0).expect("audio");
    let heard = &call.agent_audio[start..];
    assert!(heard.len() >= recording.len() - lead, "all of it played");
    assert_eq!(&heard[..recording.len() - lead], &recording[lead..], "sample for sample");
    assert_eq!(call.log.end, EndReason::MessageLeft);
}

#[tokio::test(start_paused = true)]
async fn a_person_who_says_hello_is_greeted() {
    let hello = person();
    let stt =
        vec![SttScript::Text("Hello?".into()), SttScript::Text("What time do you open on Saturday?".into())];
    let call = call(&hello, OnMachine::HangUp, stt).await;
    let d = detection(&call);
    assert_eq!((d.result, d.reason), (AmdResult::Human, AmdReason::ShortGreeting), "{d:?}");
    assert!(d.greeting_ms < 1000, "{d:?}");
    let greeted = first_sound_ms(&call.played).expect("the agent greeted them");
    assert!(greeted >= d.decided_ms as usize, "greeted at {greeted} ms, before the verdict");
    let greeting_ms = GREETING.split_whitespace().count() * 300;
    let played_ms = call.played.iter().filter(|&&p| p).count() * 20;
    assert!(played_ms >= greeting_ms - 40, "the greeting played: {played_ms} ms");
    // Then the conversation goes on as any other: their question is answered.
    let said: Vec<_> = call.log.transcript.iter().map(|l| (l.speaker, l.text.as_str())).collect();
    assert_eq!(
        said[..4],
        [
            (Speaker::Caller, "Hello?"),
            (Speaker::Agent, GREETING),
            (Speaker::Caller, "What time do you open on Saturday?"),
            (Speaker::Agent, "At nine.")
        ]
    );
}
