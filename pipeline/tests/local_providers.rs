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

/// Piper's voice at 16 kHz, in 20 ms frames.
async fn spoken_frames(tts: &LocalTts, text: &str) -> Result<Vec<Vec<i16>>, Box<dyn std::error::Error>> {
    let mut resampler = FrameResampler::new(SampleRate(22_050), SampleRate::HZ_16000)?;
    let mut audio: Vec<i16> = speak(tts, text).await?.concat();
    audio.resize(audio.len().div_ceil(441) * 441 + 5 * 441, 0);
    let mut frames = Vec::new();
    for chunk in audio.chunks_exact(441) {
        let mut frame = vec![0i16; 320];
        resampler.process(chunk, &mut frame)?;
        frames.push(frame);
    }
    Ok(frames)
}

/// Says `first`, pauses (`resume`: then the voice comes back), says
/// `second`, ends: the final transcript.
async fn transcribe_around_a_pause(
    stt: &LocalStt,
    first: &[Vec<i16>],
    resume: bool,
    second: &[Vec<i16>],
) -> Result<String, Box<dyn std::error::Error>> {
    let mut stream = stt.open(CancellationToken::new())?;
    for frame in first {
        stream.input.send(SttInput::Audio(frame.clone())).await?;
    }
    stream.input.send(SttInput::Pause).await?;
    if resume {
        stream.input.send(SttInput::Resume).await?;
    }
    for frame in second {
        stream.input.send(SttInput::Audio(frame.clone())).await?;
    }
    stream.input.send(SttInput::EndOfSpeech).await?;
    match stream.events.recv().await.ok_or("stream ended")?? {
        SttEvent::Final { text, .. } => Ok(text.to_lowercase().replace([',', '.'], "")),
        other => Err(format!("expected a final transcript, got {other:?}").into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transcript_started_at_a_pause_is_the_answer_unless_the_caller_went_on() -> TestResult {
    let (tts, _) = LocalTts::load(&PiperConfig::with_models_dir(&models_dir()));
    let stt = LocalStt::new(WhisperStt::load(&WhisperConfig::with_models_dir(&models_dir()))?);
    let first = spoken_frames(&tts, "We are open today.").await?;
    let second = spoken_frames(&tts, "Please come to the front desk.").await?;
    // No voice after the pause as far as the endpointer knows: the
    // transcript started at the pause is the final one (what came after it
    // is taken for silence, so its words are not in it). It is awaited, so
    // the model is idle for the next call's early start.
    let early = transcribe_around_a_pause(&stt, &first, false, &second).await?;
    assert_eq!(early, "we are open today", "heard {early:?}");
    // The voice came back after the pause: the early transcript is stale,
    // and the whole utterance is read at its end.
    let whole = transcribe_around_a_pause(&stt, &first, true, &second).await?;
    assert_eq!(whole, "we are open today please come to the front desk", "heard {whole:?}");
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
