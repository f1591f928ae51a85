//! Figures for the local models, each run a few times (median reported):
//! Whisper's real-time factor, Piper's time to first audio, SmolLM2's time to
//! first token and tokens per second, MiniLM's time per embedding.
//!
//! `cargo bench -p voxgate-benches --bench local_models` (models fetched
//! first with `scripts/fetch-models.sh`). Figures go to BENCHMARKS.md.

#![allow(clippy::print_stdout)]

use std::path::Path;
use std::time::{Duration, Instant};

use voxgate_pipeline::providers::local::embed::{Embedder, EmbedderConfig};
use voxgate_pipeline::providers::local::llm::{SmolLm, SmolLmConfig};
use voxgate_pipeline::providers::local::piper::{PiperConfig, PiperVoice};
use voxgate_pipeline::providers::local::whisper::{WhisperConfig, WhisperStt};
use voxgate_pipeline::providers::{CancellationToken, ChatMessage, ChatRequest, Role};

const RUNS: usize = 5;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` passes `--bench`; anything else is a filter we ignore.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let models = root.join("models");

    // Whisper: a 7.6 s, three-sentence fixture.
    let stt = WhisperStt::load(&WhisperConfig::with_models_dir(&models))?;
    let mut reader = hound::WavReader::open(root.join("fixtures/audio/internet_issue_16k.wav"))?;
    let audio: Vec<i16> = reader.samples::<i16>().collect::<Result<_, _>>()?;
    let seconds = audio.len() as f64 / 16_000.0;
    let times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            stt.transcribe(&audio).map(|_| t.elapsed())
        })
        .collect::<Result<_, _>>()?;
    let t = median(times);
    println!(
        "whisper_tiny_en_int8  {seconds:.1} s of speech in {:.0} ms: real-time factor {:.3}",
        t.as_secs_f64() * 1e3,
        t.as_secs_f64() / seconds
    );

    // Piper: time to the first sentence's audio, and the whole reply.
    let mut voice = PiperVoice::load(&PiperConfig::with_models_dir(&models))?;
    let reply = "Yes, we are open on Saturday from nine until two. Would you like to order a cake?";
    let mut first = Vec::new();
    let mut whole = Vec::new();
    let mut spoken = 0.0;
    for _ in 0..RUNS {
        let t = Instant::now();
        let sentences = voice.phonemize(reply)?;
        let mut samples = 0;
        for (i, s) in sentences.iter().enumerate() {
            samples += voice.synthesize_phonemes(s)?.len();
            if i == 0 {
                first.push(t.elapsed());
            }
        }
        whole.push(t.elapsed());
        spoken = samples as f64 / f64::from(voice.sample_rate());
    }
    let (first, whole) = (median(first), median(whole));
    println!(
        "piper_joe_medium      first audio after {:.0} ms; {spoken:.1} s of speech in {:.0} ms: real-time factor {:.3}",
        first.as_secs_f64() * 1e3,
        whole.as_secs_f64() * 1e3,
        whole.as_secs_f64() / spoken
    );

    // SmolLM2: time to first token and decode speed over 64 tokens.
    let llm = SmolLm::load(&SmolLmConfig::with_models_dir(&models))?;
    let request = ChatRequest {
        messages: vec![
            ChatMessage::new(Role::System, "You are the phone assistant of a bakery."),
            ChatMessage::new(Role::User, "Tell me about your cakes and your opening hours."),
        ],
        knowledge: vec!["On Saturdays the bakery opens at 9 am and closes at 2 pm.".into()],
        tools: Vec::new(),
        max_tokens: 64,
        temperature: 0.0,
        response_schema: None,
    };
    let mut ttft = Vec::new();
    let mut rates = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let mut first: Option<Duration> = None;
        let mut deltas = 0u32;
        llm.generate(&request, &CancellationToken::new(), |_| {
            first.get_or_insert_with(|| t.elapsed());
            deltas += 1;
            true
        })?;
        let total = t.elapsed();
        let first = first.unwrap_or(total);
        ttft.push(first);
        // Deltas after the first, per second of decoding (one delta is about one token).
        let decode = (total - first).as_secs_f64().max(1e-9);
        rates.push(Duration::from_secs_f64(f64::from(deltas.saturating_sub(1)) / decode / 1000.0));
    }
    println!(
        "smollm2_135m (llama.cpp Q8_0) first token after {:.0} ms; {:.1} tokens/s",
        median(ttft).as_secs_f64() * 1e3,
        median(rates).as_secs_f64() * 1000.0
    );

    // MiniLM: one sentence.
    let embedder = Embedder::load(&EmbedderConfig::with_models_dir(&models))?;
    let times: Vec<Duration> = (0..RUNS * 4)
        .map(|_| {
            let t = Instant::now();
            embedder.embed("What time do you open on Saturday?").map(|_| t.elapsed())
        })
        .collect::<Result<_, _>>()?;
    println!("minilm_l6_embed       {:.1} ms per sentence", median(times).as_secs_f64() * 1e3);
    Ok(())
}
