//! The local voices: espeak-ng phonemes, the Piper voice, espeak-ng's own voice.

use std::path::{Path, PathBuf};

use voxgate_pipeline::providers::local::espeak;
use voxgate_pipeline::providers::local::piper::{PiperConfig, PiperVoice};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn models_dir() -> PathBuf {
    std::env::var_os("VOXGATE_MODELS__DIR")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../models"), PathBuf::from)
}

#[test]
fn phonemes_keep_clause_punctuation_and_split_sentences() -> TestResult {
    let sentences = espeak::phonemize("Hello, I would like a table. Is seven OK?", "en-us")?;
    assert_eq!(sentences.len(), 2, "{sentences:?}");
    assert!(sentences[0].contains(", "), "comma kept between clauses: {:?}", sentences[0]);
    assert!(sentences[0].ends_with('.'), "{:?}", sentences[0]);
    assert!(sentences[1].ends_with('?'), "{:?}", sentences[1]);
    // IPA, not ASCII mnemonics: "hello" has a stress mark and /ə/ or /ɛ/.
    assert!(sentences[0].contains('ˈ'), "{:?}", sentences[0]);
    Ok(())
}

/// Duration of audio above a speech-ish level, in seconds.
fn voiced_seconds(samples: &[i16], rate: u32) -> f64 {
    let window = (rate / 50) as usize;
    let loud = samples
        .chunks(window)
        .filter(|w| (w.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / w.len() as f64).sqrt() > 500.0)
        .count();
    loud as f64 / 50.0
}

#[test]
fn piper_speaks_a_sentence_at_a_natural_length() -> TestResult {
    let mut voice = PiperVoice::load(&PiperConfig::with_models_dir(&models_dir()))?;
    assert_eq!(voice.sample_rate(), 22050);
    let sentences = voice.phonemize("Your table for two is booked for seven o'clock.")?;
    let ids = voice.phoneme_ids(&sentences[0]);
    assert_eq!((ids.first(), ids.get(1), ids.last()), (Some(&1), Some(&0), Some(&2)), "BOS, PAD ... EOS");
    let audio = voice.synthesize("Your table for two is booked for seven o'clock.")?;
    let seconds = audio.len() as f64 / 22050.0;
    // About 10 words: between 1.5 and 5 seconds, mostly voiced.
    assert!((1.5..5.0).contains(&seconds), "{seconds} s");
    assert!(voiced_seconds(&audio, 22050) > 0.5 * seconds, "mostly speech");
    Ok(())
}

#[test]
fn espeak_voice_is_the_fallback() -> TestResult {
    let audio = espeak::synthesize("Sorry, I didn't catch that.", "en-us")?;
    let rate = espeak::sample_rate()?;
    assert_eq!(rate, 22050);
    let seconds = audio.len() as f64 / f64::from(rate);
    assert!((0.8..4.0).contains(&seconds), "{seconds} s");
    assert!(voiced_seconds(&audio, rate) > 0.3);
    assert!(espeak::synthesize("x", "no-such-voice").is_err());
    Ok(())
}
