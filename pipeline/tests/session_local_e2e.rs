//! End to end on the local, offline providers: a fixture question goes into
//! a call core as 20 ms frames in real time, driven as a transport drives it; Whisper transcribes it, SmolLM2
//! answers from the agent's knowledge, Piper speaks the answer. The agent's
//! audio is then transcribed again: it must say what the LLM wrote.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use support::wer;
use voxgate_pipeline::call::{CallClock, CallCore, CallParts, Output, Wake, now};
use voxgate_pipeline::dsp::vad::{self, VadConfig};
use voxgate_pipeline::knowledge::LocalKnowledge;
use voxgate_pipeline::providers::local::embed::{Embedder, EmbedderConfig};
use voxgate_pipeline::providers::local::llm::{SmolLm, SmolLmConfig};
use voxgate_pipeline::providers::local::piper::PiperConfig;
use voxgate_pipeline::providers::local::stt::LocalStt;
use voxgate_pipeline::providers::local::tts::LocalTts;
use voxgate_pipeline::providers::local::whisper::{WhisperConfig, WhisperStt};
use voxgate_pipeline::session::{EndReason, Providers, SessionConfig, SessionParts, Speaker};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn models_dir() -> PathBuf {
    std::env::var_os("VOXGATE_MODELS__DIR").map_or_else(|| root().join("models"), PathBuf::from)
}

const KNOWLEDGE: &str = "\
Sunrise Bakery is a family bakery at 12 Harbour Street.

Opening hours: Monday to Friday from 7 am to 6 pm. On Saturdays the bakery opens at 9 am and closes at 2 pm. It is closed on Sundays.

Cakes: birthday cakes must be ordered at least two days in advance. A chocolate cake costs 35 dollars.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoken_question_gets_a_spoken_answer_from_the_local_models() -> TestResult {
    let models = models_dir();
    let stt = LocalStt::new(WhisperStt::load(&WhisperConfig::with_models_dir(&models))?);
    let llm = SmolLm::load(&SmolLmConfig::with_models_dir(&models))?;
    let (tts, piper_error) = LocalTts::load(&PiperConfig::with_models_dir(&models));
    assert!(tts.is_piper(), "Piper failed to load: {piper_error:?}");
    let embedder = Arc::new(Embedder::load(&EmbedderConfig::with_models_dir(&models))?);
    let knowledge = LocalKnowledge::build(embedder, KNOWLEDGE)?;
    let providers = Providers {
        stt: Arc::new(stt),
        llm: Arc::new(llm),
        tts: Arc::new(tts),
        knowledge: Some(Arc::new(knowledge)),
        speech_to_speech: None,
    };

    let mut config = SessionConfig::default();
    config.turn.greeting = None;
    config.system_prompt =
        "You are the phone assistant of Sunrise Bakery. Answer in one short sentence.".into();
    config.knowledge_passages = 1;
    config.max_tokens = 48;
    let recording = std::env::temp_dir().join(format!("voxgate-e2e-{}.wav", std::process::id()));
    let vad = vad::build(&VadConfig::with_models_dir(&models))?;
    let parts = CallParts::pcm16(SessionParts { config, providers, vad, recording: Some(recording.clone()) });
    let mut core = CallCore::start(now(), parts)?;

    // The caller: the question, then silence while the agent answers.
    let mut reader = hound::WavReader::open(root().join("fixtures/audio/store_hours_16k.wav"))?;
    let question: Vec<i16> = reader.samples::<i16>().collect::<Result<_, _>>()?;
    let mut said = question.chunks(320);
    // Collect the agent's audio until it has been quiet for two seconds.
    let mut heard_audio: Vec<i16> = Vec::new();
    let mut clock = CallClock::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let mut last_heard = None;
    while tokio::time::Instant::now() < deadline
        && last_heard.is_none_or(|t: tokio::time::Instant| t.elapsed() < Duration::from_secs(2))
    {
        if let Wake::Tick(at) = clock.wait(&mut core).await {
            let mut frame = [0i16; 320];
            if let Some(chunk) = said.next() {
                frame[..chunk.len()].copy_from_slice(chunk);
            }
            core.handle_samples(at, &frame);
            core.handle_tick(at);
        }
        while let Some(output) = core.poll_output() {
            if let Output::Media(f) = output {
                heard_audio.extend(f.payload.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])));
                last_heard = Some(tokio::time::Instant::now());
            }
        }
    }
    core.hang_up(now());
    let log = core.finish(now());
    assert_eq!(log.end, EndReason::CallerHungUp);

    let lines: Vec<_> = log.transcript.iter().map(|l| (l.speaker, l.text.as_str(), l.interrupted)).collect();
    let [(Speaker::Caller, asked, false), (Speaker::Agent, reply, false)] = lines[..] else {
        panic!("transcript: {}", log.transcript_text());
    };
    assert!(wer("What time does your store open on Saturday?", asked) <= 0.2, "asked: {asked}");
    let lower = reply.to_lowercase();
    assert!(lower.contains('9') || lower.contains("nine"), "answers from the knowledge: {reply}");

    // What the caller heard, transcribed, is what the LLM wrote.
    let whisper = WhisperStt::load(&WhisperConfig::with_models_dir(&models))?;
    let transcribed = whisper.transcribe(&heard_audio)?;
    let error = wer(reply, &transcribed);
    assert!(error <= 0.2, "WER {error:.2}\nLLM wrote: {reply}\ncaller heard: {transcribed}");

    // The whole call is in the recording: caller left, agent right.
    let latency = &log.latencies[0];
    assert!(latency.first_frame_ms.is_some(), "{latency:?}");
    let wav = hound::WavReader::open(&recording)?;
    assert_eq!((wav.spec().channels, wav.spec().sample_rate), (2, 16_000));
    assert_eq!(u64::from(wav.duration()) / 16, log.recorded_ms);
    assert!(log.recorded_ms >= 3000 + heard_audio.len() as u64 / 16, "{} ms recorded", log.recorded_ms);
    std::fs::remove_file(&recording)?;
    Ok(())
}
