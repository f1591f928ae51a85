//! The local providers through the provider traits, as the session uses them.

use std::path::{Path, PathBuf};

use voxgate_codecs::SampleRate;
use voxgate_codecs::resample::FrameResampler;
use voxgate_pipeline::providers::local::piper::PiperConfig;
use voxgate_pipeline::providers::local::stt::LocalStt;
use voxgate_pipeline::providers::local::tts::LocalTts;
use voxgate_pipeline::providers::local::whisper::{WhisperConfig, WhisperStt};
use voxgate_pipeline::providers::{CancellationToken, SpeechToText, SttEvent, SttInput, TextToSpeech};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn models_dir() -> PathBuf {
    std::env::var_os("VOXGATE_MODELS__DIR")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../models"), PathBuf::from)
}

async fn speak(tts: &LocalTts, text: &str) -> Result<Vec<Vec<i16>>, Box<dyn std::error::Error>> {
    let mut stream = tts.synthesize(text.to_owned(), CancellationToken::new());
    assert_eq!(stream.rate, SampleRate(22_050));
    let mut chunks = Vec::new();
    while let Some(chunk) = stream.audio.recv().await {
        chunks.push(chunk?);
    }
    Ok(chunks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn piper_streams_one_chunk_per_sentence_and_whisper_hears_it() -> TestResult {
    let (tts, piper_error) = LocalTts::load(&PiperConfig::with_models_dir(&models_dir()));
    assert!(piper_error.is_none(), "Piper failed to load: {piper_error:?}");
    assert!(tts.is_piper());
    let chunks = speak(&tts, "Yes, we are open today. Please come to the front desk.").await?;
    assert_eq!(chunks.len(), 2, "one chunk per sentence");

    let stt = LocalStt::new(WhisperStt::load(&WhisperConfig::with_models_dir(&models_dir()))?);
    let mut stream = stt.open(CancellationToken::new())?;
    let mut resampler = FrameResampler::new(SampleRate(22_050), SampleRate::HZ_16000)?;
    let mut audio: Vec<i16> = chunks.concat();
    audio.resize(audio.len().div_ceil(441) * 441 + 5 * 441, 0);
    let mut frame = vec![0i16; 320];
    for chunk in audio.chunks_exact(441) {
        resampler.process(chunk, &mut frame)?;
        stream.input.send(SttInput::Audio(frame.clone())).await?;
    }
    stream.input.send(SttInput::EndOfSpeech).await?;
    let event = stream.events.recv().await.ok_or("stream ended")??;
    let SttEvent::Final { text, speech_final: true } = event else {
        return Err(format!("expected a final transcript, got {event:?}").into());
    };
    let norm = |s: &str| s.to_lowercase().replace([',', '.'], "");
    assert_eq!(norm(&text), norm("Yes, we are open today. Please come to the front desk."), "heard {text:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_turn_makes_no_audio() -> TestResult {
    let (tts, _) = LocalTts::load(&PiperConfig::with_models_dir(&models_dir()));
    let cancel = CancellationToken::new();
    cancel.cancel();
    let mut stream = tts.synthesize("One. Two. Three. Four.".to_owned(), cancel);
    assert!(stream.audio.recv().await.is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn espeak_stands_in_when_piper_is_missing() -> TestResult {
    let mut config = PiperConfig::with_models_dir(&models_dir());
    config.model = PathBuf::from("/nonexistent/voice.onnx");
    let (tts, error) = LocalTts::load(&config);
    assert!(error.is_some());
    assert!(!tts.is_piper());
    let chunks = speak(&tts, "Sorry, I didn't catch that.").await?;
    let samples: usize = chunks.iter().map(Vec::len).sum();
    assert!(samples > 22_050 / 2, "{samples} samples");
    Ok(())
}
