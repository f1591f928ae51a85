//! A caller's background noise and the agent: a session on the transport's
//! 20 ms clock with the real WebRTC VAD and endpointer, the agent greeting,
//! and a caller who says nothing on a line that carries loud hiss. Without
//! noise suppression the hiss holds the agent paused (it sounds like the
//! caller talking); with it (RNNoise) the greeting plays on, and the
//! caller's real question over the same hiss still stops it.

mod support;

use std::sync::Arc;

use voxgate_pipeline::dsp::vad::{WebRtcMode, WebRtcVad};
use voxgate_pipeline::providers::scripted::{LlmScript, ScriptedLlm, ScriptedStt, ScriptedTts, SttScript};
use voxgate_pipeline::session::{Providers, Session, SessionConfig, SessionParts};

/// The background the session hears under the caller, at -26 dBFS RMS (5 dB
/// under a caller's speech): an office's hiss, loud (see BENCHMARKS.md).
const NOISE: &str = "noise_office_16k.wav";

fn background() -> Vec<i16> {
    let noise = fixture(NOISE);
    let rms = (noise.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / noise.len() as f64).sqrt();
    let gain = 32768.0 * 10f64.powf(-26.0 / 20.0) / rms;
    noise.iter().map(|&s| (f64::from(s) * gain).clamp(-32768.0, 32767.0) as i16).collect()
}

fn fixture(name: &str) -> Vec<i16> {
    let path = format!("{}/../fixtures/audio/{name}", env!("CARGO_MANIFEST_DIR"));
    let mut reader = hound::WavReader::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(reader.spec().sample_rate, 16_000, "{name}");
    reader.samples::<i16>().map(|s| s.expect("sample")).collect()
}

/// A 10 s call: the agent's long greeting, the caller's line carrying the
/// noise from 1 s on, and with `ask_at_ms` the caller's question over it.
/// Whether the agent's frame at each tick carried sound.
async fn call(noise_suppression: bool, ask_at_ms: Option<usize>) -> Vec<bool> {
    let config = SessionConfig {
        noise_suppression,
        turn: voxgate_pipeline::turn::TurnConfig {
            greeting: Some(
                "Thanks for calling the Sunrise Bakery on the corner of Park Lane, where everything is baked \
                 fresh every morning, and here is everything you could want to know about our hours."
                    .into(),
            ),
            ..Default::default()
        },
        ..SessionConfig::default()
    };
    let providers = Providers {
        stt: Arc::new(ScriptedStt::new(vec![SttScript::Text("What time do you open on Saturday?".into())])),
        llm: Arc::new(ScriptedLlm::new(vec![LlmScript::text("At nine.")])),
        // 300 ms a word: the greeting is about eight seconds of the agent talking.
        tts: Arc::new(ScriptedTts::default()),
        knowledge: None,
        speech_to_speech: None,
    };
    let vad = Box::new(WebRtcVad::new(WebRtcMode::Aggressive));
    let now = voxgate_pipeline::call::now;
    let mut session = Session::start(now(), SessionParts { config, providers, vad, recording: None });
    let noise = background();
    let question = fixture("store_hours_16k.wav");
    let mut ticks = support::Ticks::new();
    let (mut n, mut played) = (0, vec![false; 10_000 / 20]);
    while n < 10_000_usize / 20 {
        ticks.next(&mut session).await;
        if session.is_ended() {
            break;
        }
        // The noise comes up a second in, while the agent talks.
        let mut frame = [0i16; 320];
        if n >= 50 {
            let at = (n - 50) * 320 % noise.len();
            frame.copy_from_slice(&noise[at..at + 320]);
        }
        if let Some(from) = ask_at_ms.and_then(|a| (n * 20).checked_sub(a)).map(|ms| ms * 16)
            && from + 320 <= question.len()
        {
            for (s, q) in frame.iter_mut().zip(&question[from..from + 320]) {
                *s = s.saturating_add(*q);
            }
        }
        session.handle_caller_frame(now(), &frame);
        while let Some(f) = session.poll_frame() {
            played[n] |= f.iter().any(|&s| s != 0);
        }
        while session.poll_event().is_some() {}
        n += 1;
    }
    let _ = session.finish(now());
    played
}

/// The greeting: 27 words at 300 ms, about 400 frames.
const GREETING_FRAMES: usize = 27 * 15;

#[tokio::test(start_paused = true)]
async fn background_noise_holds_the_agent_unless_it_is_suppressed() {
    let played = |frames: Vec<bool>| frames.iter().filter(|&&p| p).count();
    let quiet_line = GREETING_FRAMES;
    let plain = played(call(false, None).await);
    assert!(
        plain < quiet_line / 2,
        "{NOISE} did not hold the agent without suppression: {plain} frames played"
    );
    let suppressed = played(call(true, None).await);
    assert!(
        suppressed > quiet_line * 8 / 10,
        "with suppression the agent was still held: {suppressed} of {quiet_line} frames played"
    );
}

#[tokio::test(start_paused = true)]
async fn with_suppression_the_callers_question_over_the_noise_still_stops_the_agent() {
    // The question starts 3 s in, its speech at 3.3 s (the fixture leads with
    // 300 ms of silence): from 3.5 to 5 s, while the caller asks, the agent is silent.
    let while_asking = |played: &[bool]| played[3500 / 20..5000 / 20].iter().filter(|&&p| p).count();
    let asked = while_asking(&call(true, Some(3000)).await);
    assert_eq!(asked, 0, "the caller's question over {NOISE} did not stop the agent");
    let not_asked = while_asking(&call(true, None).await);
    assert_eq!(not_asked, 1500 / 20, "without the question the agent talks on");
}
