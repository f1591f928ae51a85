//! What the call core and its session add, on real time with zero-latency
//! scripted providers, so only Voxgate's own work is measured. Each caller
//! drives a call core as a transport does (its 20 ms clock, 16 kHz PCM in
//! order), so the agent's first frame waits for the call's next tick, as on
//! every transport:
//!
//! - turn latency: from the commit of the caller's turn (the end of the
//!   endpointing wait) to the first frame of the reply leaving the session;
//! - barge-in: from the onset of the caller's speech over the agent to the
//!   last agent frame the transport receives (plus that frame's 20 ms).
//!
//! Each simulated caller repeats: ask a question; once the agent's (long)
//! answer has played for a second, ask the next question over it. Every
//! cycle gives one turn-latency and one barge-in sample. Run with 1 caller
//! and with 20 at once, in one process.
//!
//! `cargo bench -p voxgate-benches --bench session` (models optional: the
//! VAD is Silero when `models/` has it, WebRTC otherwise).

#![allow(clippy::print_stdout)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use voxgate_pipeline::call::{CallClock, CallCore, CallParts, Output, Wake, now};
use voxgate_pipeline::dsp::vad::{self, VadConfig};
use voxgate_pipeline::providers::scripted::{ScriptedLlm, ScriptedStt, ScriptedTts};
use voxgate_pipeline::session::{Frame, Providers, SessionConfig, SessionParts};

const CYCLES: usize = 12;
const LONG_REPLY: &str = "Our store opens at nine in the morning on Saturdays and closes at six in the \
                          evening, and on Sundays we open at ten and close at four in the afternoon.";

struct Samples {
    turn_ms: Vec<f64>,
    barge_in_ms: Vec<f64>,
    vad: &'static str,
}

async fn caller(question: Arc<Vec<i16>>, onset: usize, models: &Path) -> Samples {
    let mut config = SessionConfig::default();
    config.turn.greeting = None;
    let mut stt = ScriptedStt::default();
    stt.default_text = "What time does your store open on Saturday?".into();
    let mut llm = ScriptedLlm::new(Vec::new());
    llm.default_reply = LONG_REPLY.into();
    let providers = Providers {
        stt: Arc::new(stt),
        llm: Arc::new(llm),
        tts: Arc::new(ScriptedTts::default()),
        knowledge: None,
        speech_to_speech: None,
    };
    let vad = vad::build(&VadConfig::with_models_dir(models)).expect("a VAD");
    let vad_name = if vad.name() == "silero" { "silero" } else { "webrtc" };
    let parts = CallParts::pcm16(SessionParts { config, providers, vad, recording: None });
    let mut core = CallCore::start(now(), parts).expect("a PCM call");
    let mut clock = CallClock::new();

    let mut barge_in_ms = Vec::new();
    // Where in the question we are (None: silent), when the current
    // utterance's speech began, when agent audio began and last came.
    let mut speaking: Option<usize> = Some(0);
    let mut onset_at: Option<Instant> = None;
    let mut agent_since: Option<Instant> = None;
    let mut last_agent: Option<Instant> = None;
    let mut cycles = 0;
    while cycles < CYCLES {
        if let Wake::Tick(at) = clock.wait(&mut core).await {
            let mut frame: Frame = [0; 320];
            if let Some(at) = speaking {
                let end = (at + 320).min(question.len());
                frame[..end - at].copy_from_slice(&question[at..end]);
                if at <= onset && onset < end {
                    onset_at = Some(Instant::now());
                }
                speaking = (end < question.len()).then_some(end);
            }
            core.handle_samples(at, &frame);
            core.handle_tick(at);
            // A second into the agent's answer, talk over it.
            if speaking.is_none() && agent_since.is_some_and(|t| t.elapsed() >= Duration::from_secs(1)) {
                speaking = Some(0);
                onset_at = None;
                agent_since = None;
                cycles += 1;
            }
        }
        while let Some(output) = core.poll_output() {
            if let Output::Media(_) = output {
                let now = Instant::now();
                if speaking.is_none() && agent_since.is_none() {
                    agent_since = Some(now);
                }
                last_agent = Some(now);
            }
        }
        // Once the caller has spoken over the agent for 600 ms, the agent's
        // last frame is known: its stop time is a sample.
        if let (Some(onset), Some(last)) = (onset_at, last_agent)
            && speaking.is_some()
            && onset.elapsed() >= Duration::from_millis(600)
            && cycles > 0
        {
            let stopped = last.saturating_duration_since(onset) + Duration::from_millis(20);
            barge_in_ms.push(if last < onset { 0.0 } else { stopped.as_secs_f64() * 1000.0 });
            onset_at = None;
        }
    }
    core.hang_up(now());
    let log = core.finish(now());
    let turn_ms = log
        .latencies
        .iter()
        .filter_map(|l| Some(l.first_frame_ms?.checked_sub(l.committed_ms?)? as f64))
        .collect();
    Samples { turn_ms, barge_in_ms, vad: vad_name }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report(name: &str, mut v: Vec<f64>) {
    v.sort_by(f64::total_cmp);
    println!(
        "{name}: n={} p50={:.1} ms p90={:.1} ms p99={:.1} ms max={:.1} ms",
        v.len(),
        percentile(&v, 0.5),
        percentile(&v, 0.9),
        percentile(&v, 0.99),
        v.last().copied().unwrap_or(f64::NAN)
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let models = root.join("models");
    let mut reader = hound::WavReader::open(root.join("fixtures/audio/store_hours_16k.wav"))?;
    let question: Vec<i16> = reader.samples::<i16>().collect::<Result<_, _>>()?;
    let onset = question.iter().position(|s| s.unsigned_abs() > 1000).unwrap_or(0);
    let question = Arc::new(question);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    for callers in [1usize, 20] {
        let samples: Vec<Samples> = runtime.block_on(async {
            let tasks: Vec<_> = (0..callers)
                .map(|i| {
                    let (q, m) = (question.clone(), models.clone());
                    tokio::spawn(async move {
                        // Stagger the callers so they do not all speak in step.
                        tokio::time::sleep(Duration::from_millis(97 * i as u64)).await;
                        caller(q, onset, &m).await
                    })
                })
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.expect("caller"));
            }
            out
        });
        println!("{callers} concurrent caller(s), VAD {}:", samples[0].vad);
        report(
            "  turn latency added by the session",
            samples.iter().flat_map(|s| s.turn_ms.clone()).collect(),
        );
        report(
            "  barge-in: agent audio stops after onset",
            samples.iter().flat_map(|s| s.barge_in_ms.clone()).collect(),
        );
    }
    Ok(())
}
