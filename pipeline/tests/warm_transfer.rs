//! Warm transfer in the call core, as a transport sees it (16-bit PCM at
//! 16 kHz, so what goes in and out can be compared sample for sample), with
//! scripted providers and the real WebRTC VAD on a paused clock: the
//! caller asks for a person, the agent says it will connect them and calls
//! `transfer_to_human` with a summary; the caller then hears the hold tune
//! (and takes no turn) while the transport is asked to reach the human
//! with the announcement. Connected, the caller's audio goes to the human
//! and the human's to the caller; failed, the agent is back.

use std::sync::Arc;

use voxgate_pipeline::call::{Action, CallClock, CallCore, CallParts, Output, Wake};
use voxgate_pipeline::dsp::vad::{WebRtcMode, WebRtcVad};
use voxgate_pipeline::providers::ToolCall;
use voxgate_pipeline::providers::scripted::{LlmScript, ScriptedLlm, ScriptedStt, ScriptedTts, SttScript};
use voxgate_pipeline::session::{
    Announcement, CallEventKind, CallLog, EndReason, Providers, SessionConfig, SessionParts, Speaker,
    TransferFailure, TransferMode, TransferOutcome,
};

const HOLD_LINE: &str = "Please hold while I connect you.";
const SUMMARY: &str = "Ann wants to move her table to Friday.";
const TARGET: &str = "sip:desk@example.com";

fn fixture(name: &str) -> Vec<i16> {
    let path = format!("{}/../fixtures/audio/{name}", env!("CARGO_MANIFEST_DIR"));
    let mut reader = hound::WavReader::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    reader.samples::<i16>().map(|s| s.expect("sample")).collect()
}

fn core(llm: Arc<ScriptedLlm>) -> CallCore {
    let mut config = SessionConfig {
        transfer_target: Some(TARGET.into()),
        transfer_mode: TransferMode::Warm,
        ..SessionConfig::default()
    };
    config.turn.greeting = None;
    let providers = Providers {
        stt: Arc::new(ScriptedStt::new(vec![
            SttScript::Text("I'd like to speak to a person.".into()),
            SttScript::Text("Hello, anyone there?".into()),
            SttScript::Text("Then book me for Friday.".into()),
        ])),
        llm,
        tts: Arc::new(ScriptedTts::default()),
        knowledge: None,
        speech_to_speech: None,
    };
    let session = SessionParts {
        config,
        providers,
        vad: Box::new(WebRtcVad::new(WebRtcMode::Aggressive)),
        recording: None,
    };
    CallCore::start(voxgate_pipeline::call::now(), CallParts::pcm16(session)).expect("PCM")
}

fn llm() -> Arc<ScriptedLlm> {
    let transfer = ToolCall {
        id: "call_1".into(),
        name: "transfer_to_human".into(),
        arguments: serde_json::json!({ "summary": SUMMARY }).to_string(),
    };
    Arc::new(ScriptedLlm::new(vec![
        LlmScript::Reply { text: HOLD_LINE.into(), tool_calls: vec![transfer] },
        LlmScript::text("Sure, Friday it is."),
    ]))
}

/// What the transport saw on one tick.
#[derive(Debug, Default, Clone)]
struct Tick {
    /// The frame sent to the caller (16 kHz samples), if any.
    sent: Option<Vec<i16>>,
    actions: Vec<Action>,
    /// While bridged: the caller's frame of the tick, for the human.
    to_human: Option<Vec<i16>>,
}

/// The caller's audio: `parts` of speech, each starting at its ms.
fn caller_audio(parts: &[(u64, &[i16])], total_ms: u64) -> Vec<i16> {
    let mut audio = vec![0i16; (total_ms * 16) as usize];
    for (at, speech) in parts {
        let start = (*at * 16) as usize;
        let end = (start + speech.len()).min(audio.len());
        audio[start..end].copy_from_slice(&speech[..end - start]);
    }
    audio
}

/// Runs the call for `ms` with `caller` as the caller's audio; `respond`
/// sees each tick (its index and what happened so far) and may act as the
/// transport (report the transfer, pass the human's audio).
async fn run(
    core: &mut CallCore,
    caller: &[i16],
    ms: u64,
    mut respond: impl FnMut(&mut CallCore, u64, &[Tick]),
) -> Vec<Tick> {
    let mut clock = CallClock::new();
    let mut ticks: Vec<Tick> = Vec::new();
    while (ticks.len() as u64) * 20 < ms {
        let Wake::Tick(now) = clock.wait(core).await else { continue };
        let n = ticks.len();
        let mut bytes = Vec::with_capacity(640);
        for s in caller.get(n * 320..(n + 1) * 320).unwrap_or(&[0; 320]) {
            bytes.extend_from_slice(&s.to_le_bytes());
        }
        core.handle_audio(now, &bytes);
        core.handle_tick(now);
        let mut tick =
            Tick { to_human: core.is_bridged().then(|| core.caller_frame().to_vec()), ..Tick::default() };
        respond(core, n as u64, &ticks);
        while let Some(output) = core.poll_output() {
            match output {
                Output::Media(f) => {
                    tick.sent =
                        Some(f.payload.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect());
                }
                Output::Action(a) => tick.actions.push(a),
            }
        }
        ticks.push(tick);
    }
    ticks
}

fn announcement(ticks: &[Tick]) -> Option<(usize, Announcement)> {
    ticks.iter().enumerate().find_map(|(i, t)| {
        t.actions.iter().find_map(|a| match a {
            Action::WarmTransfer { target, announcement } => {
                assert_eq!(target, TARGET);
                Some((i, announcement.clone()))
            }
            _ => None,
        })
    })
}

fn loud(frame: &[i16]) -> bool {
    frame.iter().any(|&s| s.unsigned_abs() > 500)
}

/// ScriptedTts speaks a 440 Hz tone: a frame of it crosses zero about 17 times.
fn is_voice(frame: &[i16]) -> bool {
    let crossings = frame.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
    loud(frame) && (15..=20).contains(&crossings)
}

fn events(log: &CallLog) -> Vec<&CallEventKind> {
    log.events.iter().map(|e| &e.kind).collect()
}

#[tokio::test(start_paused = true)]
async fn the_caller_holds_while_the_human_hears_the_summary_then_the_two_are_joined() {
    let question = fixture("store_hours_16k.wav");
    let hello = fixture("book_table_16k.wav");
    // The caller asks at 0.5 s, and talks again on hold at 8 s.
    let caller = caller_audio(&[(500, &question), (8000, &hello)], 30_000);
    let llm = llm();
    let mut core = core(llm.clone());
    // A 200 Hz square wave: not the agent's voice, not the hold tune.
    let human: Vec<i16> = (0..320).map(|i| if i % 80 < 40 { 4000 } else { -4000 }).collect();
    let mut connected_at = None;
    let ticks = run(&mut core, &caller, 30_000, |core, n, seen| {
        // The human has heard the announcement 12 s in: join them.
        if n == 600 {
            assert!(announcement(seen).is_some(), "no warm transfer asked for by 12 s");
            assert!(core.handle_transfer(voxgate_pipeline::call::now(), TransferOutcome::Connected));
            connected_at = Some(n as usize);
        }
        if core.is_bridged() {
            core.send_bridged(voxgate_pipeline::call::now(), human.as_slice().try_into().expect("a frame"));
        }
    })
    .await;
    let (asked_at, announced) = announcement(&ticks).expect("a warm transfer");
    let joined = connected_at.expect("joined");
    // The announcement: the model's summary, in the agent's voice.
    assert!(announced.text.contains(SUMMARY), "{announced:?}");
    assert_eq!(announced.audio.len(), ScriptedTts::default().samples_for(&announced.text));
    // The caller heard the hold line, then only the hold tune until joined.
    let hold_line_frames = ScriptedTts::default().samples_for(HOLD_LINE).div_ceil(320);
    let voice: Vec<usize> = ticks
        .iter()
        .enumerate()
        .filter(|(_, t)| t.sent.as_deref().is_some_and(is_voice))
        .map(|(i, _)| i)
        .collect();
    let first = *voice.first().expect("the agent spoke");
    let line = voice.iter().enumerate().take_while(|&(k, &i)| i == first + k).count();
    assert_eq!(line, hold_line_frames, "the hold line, whole, in the agent's voice");
    let hold_start = first + line;
    assert!(hold_start <= asked_at, "the human is called once the caller is on hold");
    // (The tick the line ends on has no frame: the tune starts on the next.)
    let held = &ticks[hold_start + 1..joined];
    assert!(held.iter().all(|t| t.sent.is_some()), "a frame every tick on hold");
    let tune = held.iter().filter(|t| t.sent.as_deref().is_some_and(loud)).count();
    assert!(tune * 2 > held.len(), "the hold tune sounds ({tune} of {} frames)", held.len());
    // (A note's onset may look like the scripted voice for a frame; speech would be a run.)
    let spoken = held.iter().filter(|t| t.sent.as_deref().is_some_and(is_voice)).count();
    assert!(spoken * 20 < held.len(), "the agent spoke on hold ({spoken} frames)");
    // What the caller said on hold took no turn: the model was asked once.
    assert_eq!(llm.requests().len(), 1, "a turn was taken on hold");
    // Joined: the human's frames reach the caller, the caller's reach the
    // human, sample for sample, and no hang-up is asked for.
    for t in &ticks[joined + 1..] {
        assert_eq!(t.sent.as_deref(), Some(human.as_slice()), "the human's audio, as it was sent");
    }
    let to_human: Vec<i16> =
        ticks[joined + 1..].iter().flat_map(|t| t.to_human.clone().expect("bridged")).collect();
    let from = (joined + 1) * 320;
    assert_eq!(to_human, caller[from..from + to_human.len()], "the caller's audio, as it came");
    assert!(ticks.iter().all(|t| !t.actions.contains(&Action::HangUp)), "the agent hung up on the bridge");
    let log = core.finish(voxgate_pipeline::call::now());
    assert_eq!(log.end, EndReason::Transferred { target: TARGET.into() });
    assert!(
        events(&log).contains(&&CallEventKind::TransferConnected { target: TARGET.into() }),
        "{:?}",
        log.events
    );
    assert!(log.duration_ms >= 29_000, "the call lasts through the bridge: {} ms", log.duration_ms);
    let agent: Vec<&str> =
        log.transcript.iter().filter(|l| l.speaker == Speaker::Agent).map(|l| l.text.as_str()).collect();
    assert_eq!(agent, [HOLD_LINE], "the caller's transcript holds what the caller heard");
}

#[tokio::test(start_paused = true)]
async fn a_human_who_does_not_take_the_call_returns_the_caller_to_the_agent() {
    let question = fixture("store_hours_16k.wav");
    let again = fixture("book_table_16k.wav");
    // The caller asks at 0.5 s, and again at 14 s, after the failure.
    let caller = caller_audio(&[(500, &question), (14_000, &again)], 24_000);
    let llm = llm();
    let mut core = core(llm.clone());
    let mut failed_at = None;
    let ticks = run(&mut core, &caller, 24_000, |core, n, seen| {
        if n == 400 {
            assert!(announcement(seen).is_some(), "no warm transfer asked for by 8 s");
            let outcome = TransferOutcome::Failed(TransferFailure::Busy);
            assert!(!core.handle_transfer(voxgate_pipeline::call::now(), outcome));
            failed_at = Some(n as usize);
        }
    })
    .await;
    let failed = failed_at.expect("reported");
    assert!(!core.is_bridged());
    // The hold tune stops; the agent tells the caller, in its voice.
    let back =
        ScriptedTts::default().samples_for(&SessionConfig::default().transfer_failed_line).div_ceil(320);
    let voice_after = ticks[failed..].iter().filter(|t| t.sent.as_deref().is_some_and(is_voice)).count();
    let spoken = ticks[failed + 1..failed + 1 + back]
        .iter()
        .filter(|t| t.sent.as_deref().is_some_and(is_voice))
        .count();
    assert!(spoken + 2 >= back, "the failure line follows at once ({spoken} of {back} frames)");
    assert!(voice_after > back, "the agent answered the caller's next question too");
    // The model heard why, and answered the caller's next turn.
    let requests = llm.requests();
    assert_eq!(requests.len(), 2, "the caller's next words were a turn");
    let told = requests[1].messages.iter().any(|m| m.content.contains("their line was busy"));
    assert!(told, "the model was not told the transfer failed: {:?}", requests[1].messages);
    let log = core.finish(voxgate_pipeline::call::now());
    assert!(
        events(&log).contains(&&CallEventKind::TransferFailed {
            target: TARGET.into(),
            reason: TransferFailure::Busy
        }),
        "{:?}",
        log.events
    );
    assert_eq!(log.end, EndReason::CallerHungUp);
    let agent: Vec<&str> =
        log.transcript.iter().filter(|l| l.speaker == Speaker::Agent).map(|l| l.text.as_str()).collect();
    assert_eq!(agent[..2], [HOLD_LINE, SessionConfig::default().transfer_failed_line.as_str()]);
}

#[tokio::test(start_paused = true)]
async fn a_report_with_no_transfer_waiting_joins_nobody() {
    let mut core = core(llm());
    let ticks = run(&mut core, &[], 2000, |core, n, _| {
        if n == 10 {
            assert!(!core.handle_transfer(voxgate_pipeline::call::now(), TransferOutcome::Connected));
        }
    })
    .await;
    assert!(!core.is_bridged());
    assert!(ticks.iter().all(|t| t.to_human.is_none()));
    let log = core.finish(voxgate_pipeline::call::now());
    assert_eq!(log.end, EndReason::CallerHungUp);
}
