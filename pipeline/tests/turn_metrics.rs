//! A reply's latency reaches the process's metrics. Its own test binary, so
//! no other test's calls are counted: the counts are exact.

use std::sync::Arc;

use voxgate_pipeline::call::{CallClock, CallCore, CallParts, Wake, now};
use voxgate_pipeline::dsp::vad::{WebRtcMode, WebRtcVad};
use voxgate_pipeline::providers::scripted::{LlmScript, ScriptedLlm, ScriptedStt, ScriptedTts, SttScript};
use voxgate_pipeline::session::{Providers, SessionConfig, SessionParts};

/// `voxgate_turn_latency_seconds_count{stage="…"}`, 0 before any.
fn count(stage: &str) -> u64 {
    let metrics = voxgate_pipeline::metrics::encode();
    let key = format!("voxgate_turn_latency_seconds_count{{stage=\"{stage}\"}} ");
    metrics.lines().find_map(|l| l.strip_prefix(&key)).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

#[tokio::test(start_paused = true)]
async fn each_reply_counts_once_in_every_stage_of_its_latency() {
    let path = format!("{}/../fixtures/audio/store_hours_16k.wav", env!("CARGO_MANIFEST_DIR"));
    let speech: Vec<i16> = hound::WavReader::open(&path)
        .expect("fixture")
        .samples::<i16>()
        .map(|s| s.expect("sample"))
        .collect();
    let mut config = SessionConfig::default();
    config.turn.greeting = None;
    let providers = Providers {
        stt: Arc::new(ScriptedStt::new(vec![SttScript::Text("When do you open?".into())])),
        llm: Arc::new(ScriptedLlm::new(vec![LlmScript::text("At nine.")])),
        tts: Arc::new(ScriptedTts::default()),
        knowledge: None,
        speech_to_speech: None,
    };
    let vad = Box::new(WebRtcVad::new(WebRtcMode::Aggressive));
    let mut core =
        CallCore::start(now(), CallParts::pcm16(SessionParts { config, providers, vad, recording: None }))
            .expect("a PCM call");
    let stages = ["final_transcript", "committed", "llm_first_token", "tts_first_audio", "first_frame"];
    assert!(stages.iter().all(|s| count(s) == 0), "nothing counted before the call");
    let mut clock = CallClock::starting_at(tokio::time::Instant::now());
    let mut said = speech.chunks(320);
    // Eight seconds: the question, the reply, and quiet.
    let mut ticks = 0;
    while ticks < 400 {
        if let Wake::Tick(at) = clock.wait(&mut core).await {
            ticks += 1;
            let mut frame = [0i16; 320];
            if let Some(chunk) = said.next() {
                frame[..chunk.len()].copy_from_slice(chunk);
            }
            core.handle_samples(at, &frame);
            core.handle_tick(at);
        }
        while core.poll_output().is_some() {}
    }
    let log = core.finish(now());
    assert_eq!(log.latencies.len(), 1, "{:?}", log.latencies);
    for stage in stages {
        assert_eq!(count(stage), 1, "{stage}");
    }
}
