//! The agent's own voice echoed back by the caller's phone (100-300 ms late,
//! 10 dB down, as a handset's echo is) does not stop the agent, while the
//! caller's real barge-in over that echo still does. A session on the
//! transport's 20 ms clock, the real WebRTC VAD and endpointer, an agent
//! voice of recorded speech, and a caller whose every frame carries the
//! agent's frames from `delay` before.

mod support;

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::mpsc;
use voxgate_codecs::SampleRate;
use voxgate_pipeline::dsp::vad::{WebRtcMode, WebRtcVad};
use voxgate_pipeline::providers::scripted::{LlmScript, ScriptedLlm, ScriptedStt, SttScript};
use voxgate_pipeline::providers::{CancellationToken, ProviderName, TextToSpeech, TtsStream};
use voxgate_pipeline::session::{
    CallEventKind, CallLog, Frame, Providers, Session, SessionConfig, SessionParts,
};

fn fixture(name: &str) -> Vec<i16> {
    let path = format!("{}/../fixtures/audio/{name}", env!("CARGO_MANIFEST_DIR"));
    let mut reader = hound::WavReader::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(reader.spec().sample_rate, 16_000, "{name}");
    reader.samples::<i16>().map(|s| s.expect("sample")).collect()
}

/// A voice that says every line with the same recorded speech.
struct RecordedVoice(Arc<Vec<i16>>);

impl TextToSpeech for RecordedVoice {
    fn name(&self) -> ProviderName {
        "recorded-voice"
    }

    fn sample_rate(&self) -> SampleRate {
        SampleRate::HZ_16000
    }

    fn synthesize(&self, _text: String, _cancel: CancellationToken) -> TtsStream {
        let (tx, audio) = mpsc::channel(4);
        let speech = self.0.clone();
        tokio::spawn(async move {
            let _ = tx.send(Ok(speech.to_vec())).await;
        });
        TtsStream { rate: SampleRate::HZ_16000, audio }
    }
}

const GREETING: &str = "Thanks for calling, here is everything about our opening hours.";

/// A call in which the agent greets (with two fixtures' speech, about 6 s)
/// and the caller's phone echoes it back `delay_ms` late at a third of its
/// level; with `barge_in` (when, and how many times quieter than the
/// recording), the caller talks over it. The call's log.
/// A call whose line brings the agent's voice back `delay_ms` late, a third
/// as loud (`echo`; else not at all), with the caller talking over it from
/// `barge_in.0` ms on, `barge_in.1` times quieter than the recording.
async fn call(echo_cancellation: bool, delay_ms: usize, barge_in: Option<(usize, i16)>) -> CallLog {
    call_on(echo_cancellation, true, delay_ms, barge_in).await
}

async fn call_on(
    echo_cancellation: bool,
    echo: bool,
    delay_ms: usize,
    barge_in: Option<(usize, i16)>,
) -> CallLog {
    let mut voice = fixture("store_hours_16k.wav");
    voice.extend(fixture("book_table_16k.wav"));
    let config = SessionConfig {
        echo_cancellation,
        turn: voxgate_pipeline::turn::TurnConfig { greeting: Some(GREETING.into()), ..Default::default() },
        ..SessionConfig::default()
    };
    let providers = Providers {
        stt: Arc::new(ScriptedStt::new(vec![SttScript::Text("Wait, I have a question.".into())])),
        llm: Arc::new(ScriptedLlm::new(vec![LlmScript::text("Of course, go ahead.")])),
        tts: Arc::new(RecordedVoice(Arc::new(voice))),
        knowledge: None,
        speech_to_speech: None,
    };
    let vad = Box::new(WebRtcVad::new(WebRtcMode::Aggressive));
    let now = voxgate_pipeline::call::now;
    let mut session = Session::start(now(), SessionParts { config, providers, vad, recording: None });
    let caller = fixture("book_table_16k.wav");
    // What the agent sent, one entry a tick (zeros when it was silent),
    // `delay_ms` of it on the way back.
    let mut sent: VecDeque<Frame> = VecDeque::from(vec![[0; 320]; delay_ms / 20]);
    let mut ticks = support::Ticks::new();
    let mut n = 0;
    while n < 12_000_usize / 20 {
        ticks.next(&mut session).await;
        if session.is_ended() {
            break;
        }
        // The agent's frame of `delay` ago, a third as loud.
        let mut frame: Frame = sent.pop_front().unwrap_or([0; 320]).map(|s| if echo { s / 3 } else { 0 });
        if let Some((at, quieter)) = barge_in {
            let into = (n * 20).checked_sub(at).map(|ms| ms * 16);
            if let Some(from) = into.filter(|&i| i + 320 <= caller.len()) {
                for (s, c) in frame.iter_mut().zip(&caller[from..from + 320]) {
                    *s = s.saturating_add(*c / quieter);
                }
            }
        }
        session.handle_caller_frame(now(), &frame);
        let mut out = [0; 320];
        while let Some(f) = session.poll_frame() {
            out = f;
        }
        sent.push_back(out);
        while session.poll_event().is_some() {}
        n += 1;
    }
    session.finish(now())
}

fn interrupted(log: &CallLog) -> bool {
    log.events.iter().any(|e| matches!(e.kind, CallEventKind::Interrupted { .. }))
}

fn paused(log: &CallLog) -> bool {
    log.events.iter().any(|e| matches!(e.kind, CallEventKind::FalseInterruption { .. }))
}

#[tokio::test(start_paused = true)]
async fn the_agents_own_echo_does_not_stop_it() {
    for delay in [100, 200, 300] {
        let log = call(true, delay, None).await;
        assert!(!interrupted(&log) && !paused(&log), "echo {delay} ms late: {:#?}", log.events);
        let greeting = log.transcript.first().expect("the greeting");
        assert!(!greeting.interrupted, "echo {delay} ms late: {greeting:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn without_echo_cancellation_the_echo_stops_the_agent() {
    // Why the canceller is there: the same call, the echo heard as the caller.
    let log = call(false, 200, None).await;
    assert!(interrupted(&log) || paused(&log), "{:#?}", log.events);
}

#[tokio::test(start_paused = true)]
async fn the_callers_barge_in_over_the_echo_still_stops_the_agent() {
    // At the recording's level, and 6 dB under it.
    for quieter in [1, 2] {
        let log = call(true, 200, Some((2500, quieter))).await;
        assert!(interrupted(&log), "{quieter}: {:#?}", log.events);
        let greeting = log.transcript.first().expect("the greeting");
        assert!(greeting.interrupted, "{quieter}: {greeting:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_quiet_caller_on_a_line_without_echo_still_stops_the_agent() {
    // 20 dB under the recording: far under the 6 dB an unmeasured echo may
    // reach, well over the echo this line has shown (none).
    let log = call_on(true, false, 200, Some((2500, 10))).await;
    assert!(interrupted(&log), "{:#?}", log.events);
}
