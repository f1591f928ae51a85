//! Whisper tiny.en on the speech fixtures, and the closed loop the end-to-end
//! tests rely on: what the Piper voice says, Whisper hears.

use std::path::{Path, PathBuf};

use voxgate_codecs::SampleRate;
use voxgate_codecs::resample::FrameResampler;
use voxgate_pipeline::providers::local::piper::{PiperConfig, PiperVoice};
use voxgate_pipeline::providers::local::whisper::{WhisperConfig, WhisperStt};

mod support;
use support::{wer, words};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn models_dir() -> PathBuf {
    std::env::var_os("VOXGATE_MODELS__DIR").map_or_else(|| root().join("models"), PathBuf::from)
}

/// Resamples whole-frame audio to 16 kHz the way a call does.
fn to_16k(samples: &[i16], rate: SampleRate) -> Result<Vec<i16>, Box<dyn std::error::Error>> {
    let mut r = FrameResampler::new(rate, SampleRate::HZ_16000)?;
    let mut out = vec![0i16; 320];
    let mut all = Vec::new();
    let n = rate.samples_per_frame();
    let mut padded = samples.to_vec();
    padded.resize(samples.len().div_ceil(n) * n + 5 * n, 0); // flush the delay
    for chunk in padded.chunks_exact(n) {
        r.process(chunk, &mut out)?;
        all.extend_from_slice(&out);
    }
    Ok(all)
}

#[test]
fn whisper_transcribes_the_speech_fixtures() -> TestResult {
    let stt = WhisperStt::load(&WhisperConfig::with_models_dir(&models_dir()))?;
    let manifest = std::fs::read_to_string(root().join("fixtures/audio/manifest.tsv"))?;
    let mut espeak_errors = Vec::new();
    let mut report = String::new();
    let mut failed = false;
    for line in manifest.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (file, voice, kind, transcript) = (cols[0], cols[2], cols[3], cols[5]);
        if !(kind == "speech" || kind == "multi") {
            continue;
        }
        let mut reader = hound::WavReader::open(root().join("fixtures/audio").join(file))?;
        let rate = SampleRate(reader.spec().sample_rate);
        let samples: Vec<i16> = reader.samples::<i16>().collect::<Result<_, _>>()?;
        let heard = stt.transcribe(&to_16k(&samples, rate)?)?;
        let error = wer(transcript, &heard);
        report.push_str(&format!("{file}: WER {error:.2}: {heard}\n"));
        // Piper speech comes back word for word, at 8 kHz and in noise too.
        // espeak-ng's robotic voices are tiny.en's hard case (measured here:
        // 0-0.2 WER at 16 kHz, 0-0.9 at 8 kHz): judged on their mean, with a
        // cap per file. At 8 kHz one file's WER swings with the audio's
        // alignment alone: order_status_8k scored 0.82-0.91 with the audio
        // 3 to 7 ms later, under 0.6 with it 10 ms later (the old resampler's
        // delay), the same samples otherwise. A broken front end scores near 1.0.
        if voice.starts_with("piper") {
            failed |= error > 0.1;
        } else {
            failed |= error > 0.95;
            espeak_errors.push(error);
        }
    }
    let mean = espeak_errors.iter().sum::<f64>() / espeak_errors.len().max(1) as f64;
    assert!(!failed && mean <= 0.35, "espeak mean WER {mean:.2}\n{report}");
    assert!(report.lines().count() >= 10, "only {} fixtures\n{report}", report.lines().count());
    Ok(())
}

#[test]
fn what_piper_says_whisper_hears_even_over_the_phone_band() -> TestResult {
    let mut voice = PiperVoice::load(&PiperConfig::with_models_dir(&models_dir()))?;
    let stt = WhisperStt::load(&WhisperConfig::with_models_dir(&models_dir()))?;
    let text = "Our store opens at nine in the morning on Saturdays.";
    let audio = voice.synthesize(text)?;
    // Piper's 22050 Hz down to the telephone's 8 kHz, then up to 16 kHz as a call would.
    let phone = {
        let mut r = FrameResampler::new(SampleRate(22_050), SampleRate::HZ_8000)?;
        let mut out = vec![0i16; 160];
        let mut all = Vec::new();
        let mut padded = audio.clone();
        padded.resize(audio.len().div_ceil(441) * 441 + 5 * 441, 0);
        for chunk in padded.chunks_exact(441) {
            r.process(chunk, &mut out)?;
            all.extend_from_slice(&out);
        }
        all
    };
    let heard = stt.transcribe(&to_16k(&phone, SampleRate::HZ_8000)?)?;
    assert!(wer(text, &heard) <= 0.1, "said: {text}\nheard: {heard}");
    Ok(())
}

#[test]
fn silence_transcribes_to_nothing_much() -> TestResult {
    let stt = WhisperStt::load(&WhisperConfig::with_models_dir(&models_dir()))?;
    let heard = stt.transcribe(&vec![0i16; 16_000])?;
    assert!(words(&heard).len() <= 2, "heard {heard:?} in silence");
    Ok(())
}

#[test]
fn wer_counts_edits_over_reference_words() {
    assert_eq!(wer("a b c d", "a b c d"), 0.0);
    assert_eq!(wer("a b c d", "a x c d"), 0.25);
    assert_eq!(wer("a b c d", "a b c"), 0.25);
    assert_eq!(wer("Hello, there!", "hello there"), 0.0);
    assert_eq!(wer("number four five seven two", "number 4572"), 0.0);
    assert_eq!(wer("open at 9 am until 2 p.m.", "open at 9am until 2pm"), 0.0);
}
