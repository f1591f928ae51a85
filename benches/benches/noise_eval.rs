//! What noise suppression (RNNoise, `pipeline::dsp::denoise`) does for the
//! agent's ears, on the hard backgrounds of `fixtures/audio` (babble,
//! clicks, music, traffic) and the office hiss:
//!
//! - false barge-ins: speech onsets the endpointer finds in the background
//!   alone, as loud as in the mixes below (each would pause the agent),
//!   per minute, with and without;
//! - turns kept: questions mixed into each background at 5 dB SNR, where
//!   the endpointer finds a speech onset within the question (a turn the
//!   agent can take; a background heard as endless speech hides it);
//! - with the `models` feature, Whisper tiny.en's word error rate on those
//!   mixes, and the onsets with Silero as well as WebRTC's VAD;
//! - CPU: the suppressor's time per 20 ms frame.
//!
//! ```sh
//! cargo bench -p voxgate-benches --no-default-features --bench noise_eval   # CPU, WebRTC VAD
//! cargo bench -p voxgate-benches --bench noise_eval                          # + Silero, Whisper WER
//! cargo test -p voxgate-benches --bench noise_eval                           # the same, a debug build (no CPU figure)
//! ```

use std::path::Path;
use std::time::Instant;

use voxgate_pipeline::dsp::denoise::NoiseSuppressor;
use voxgate_pipeline::dsp::endpoint::{EndpointConfig, EndpointEvent, Endpointer};
use voxgate_pipeline::dsp::vad::{VoiceActivityDetector, WebRtcMode, WebRtcVad};

const FRAME: usize = 320;
const NOISES: [&str; 5] = [
    "noise_office_16k.wav",
    "noise_babble_16k.wav",
    "noise_clicks_16k.wav",
    "noise_music_16k.wav",
    "noise_traffic_16k.wav",
];

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn read(path: &Path) -> Result<Vec<i16>> {
    let mut r = hound::WavReader::open(path)?;
    assert_eq!(r.spec().sample_rate, 16_000, "{}", path.display());
    Ok(r.samples::<i16>().collect::<std::result::Result<_, _>>()?)
}

fn rms(x: &[i16]) -> f64 {
    (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

/// `audio` through the suppressor (or not), frame by frame.
fn suppressed(audio: &[i16], on: bool) -> Vec<i16> {
    if !on {
        return audio.to_vec();
    }
    let mut ns = NoiseSuppressor::new();
    audio.chunks_exact(FRAME).flat_map(|f| *ns.process(f.try_into().expect("a frame"))).collect()
}

/// The endpointer's speech onsets in `audio`, with `vad`.
fn onsets(vad: &mut dyn VoiceActivityDetector, audio: &[i16]) -> Result<Vec<u64>> {
    vad.reset();
    let mut ep = Endpointer::new(EndpointConfig::default(), 20);
    let mut at = Vec::new();
    for (i, f) in audio.chunks_exact(FRAME).enumerate() {
        let p = vad.process(f)?;
        if let Some(EndpointEvent::SpeechStart { at_ms }) = ep.handle_frame(20 * i as u64, p) {
            at.push(at_ms);
        }
    }
    Ok(at)
}

/// The signal-to-noise ratio of the mixes.
const SNR_DB: f64 = 5.0;

/// `noise` scaled to `level` (RMS).
fn at_level(noise: &[i16], level: f64) -> Vec<i16> {
    let gain = level / rms(noise);
    noise.iter().map(|&s| (f64::from(s) * gain).clamp(-32768.0, 32767.0) as i16).collect()
}

/// `speech` over `noise` (looped, as it is), with 1 s of the noise before.
fn mix(speech: &[i16], noise: &[i16]) -> Vec<i16> {
    let lead = 16_000;
    let len = (lead + speech.len()).div_ceil(FRAME) * FRAME;
    (0..len)
        .map(|i| {
            let s = if i >= lead { speech.get(i - lead).copied().unwrap_or(0) } else { 0 };
            (i32::from(s) + i32::from(noise[i % noise.len()])).clamp(-32768, 32767) as i16
        })
        .collect()
}

fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .replace('-', " ")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '\'' || c == ' ' { c } else { ' ' })
        .collect::<String>()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Word-level edit distance.
fn distance(a: &[String], b: &[String]) -> usize {
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, x) in a.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, y) in b.iter().enumerate() {
            let cur = (row[j + 1] + 1).min(row[j] + 1).min(prev + usize::from(x != y));
            prev = row[j + 1];
            row[j + 1] = cur;
        }
    }
    row[b.len()]
}

fn main() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = root.join("fixtures/audio");
    let manifest = std::fs::read_to_string(dir.join("manifest.tsv"))?;
    let questions: Vec<(Vec<i16>, String)> = manifest
        .lines()
        .filter_map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            (c.len() == 6
                && c[1] == "16000"
                && (c[3] == "speech" || c[3] == "multi")
                && !c[0].contains("noisy"))
            .then(|| Ok((read(&dir.join(c[0]))?, c[5].to_owned())))
        })
        .collect::<Result<_>>()?;

    let best = cpu_per_frame(&read(&dir.join("noise_babble_16k.wav"))?);
    if cfg!(debug_assertions) {
        println!("(a debug build: no CPU figure)\n");
    } else {
        println!(
            "noise suppression: {best:.1} µs per 20 ms frame ({:.2} % of a core per call)\n",
            best / 200.0
        );
    }

    let mut vads: Vec<(&str, Box<dyn VoiceActivityDetector>)> =
        vec![("webrtc", Box::new(WebRtcVad::new(WebRtcMode::Aggressive)))];
    #[cfg(feature = "models")]
    {
        use voxgate_pipeline::dsp::vad::{self, VadConfig, VadKind};
        let mut config = VadConfig::with_models_dir(&root.join("models"));
        config.kind = VadKind::Silero;
        vads.push(("silero", vad::build(&config)?));
    }
    #[cfg(feature = "models")]
    let whisper = voxgate_pipeline::providers::local::whisper::WhisperStt::load(
        &voxgate_pipeline::providers::local::whisper::WhisperConfig::with_models_dir(&root.join("models")),
    )?;

    // The questions' speech level, without their silences (above -40 dBFS frames).
    let voiced: Vec<i16> = questions
        .iter()
        .flat_map(|(q, _)| q.chunks_exact(FRAME).filter(|f| rms(f) > 327.0).flatten().copied())
        .collect();
    let noise_level = rms(&voiced) / 10f64.powf(SNR_DB / 20.0);
    println!(
        "backgrounds at {:.0} dBFS RMS: {SNR_DB} dB under the questions' speech\n",
        20.0 * (noise_level / 32768.0).log10()
    );
    println!(
        "| background | VAD | false onsets per minute, off / on | questions with an onset in their speech, off / on |"
    );
    println!("|---|---|---|---|");
    let mut backgrounds = Vec::new();
    for noise_file in NOISES {
        backgrounds.push((noise_file, at_level(&read(&dir.join(noise_file))?, noise_level)));
    }
    for (noise_file, noise) in &backgrounds {
        let minutes = noise.len() as f64 / 16_000.0 / 60.0;
        for (name, vad) in &mut vads {
            let mut row = Vec::new();
            for on in [false, true] {
                let n = onsets(vad.as_mut(), &suppressed(noise, on))?.len();
                row.push(format!("{:.0}", n as f64 / minutes));
            }
            let mut found = Vec::new();
            for on in [false, true] {
                let mut n = 0;
                for (speech, _) in &questions {
                    let mixed = suppressed(&mix(speech, noise), on);
                    // Found: an onset within the speech (after the 1 s lead of noise).
                    n += usize::from(onsets(vad.as_mut(), &mixed)?.iter().any(|&t| t >= 1000));
                }
                found.push(format!("{n}/{}", questions.len()));
            }
            println!(
                "| {} | {name} | {} | {} |",
                noise_file.trim_end_matches("_16k.wav"),
                row.join(" / "),
                found.join(" / ")
            );
        }
    }

    #[cfg(feature = "models")]
    word_errors(&whisper, &questions, &backgrounds)?;
    #[cfg(not(feature = "models"))]
    let _ = (words, distance);
    Ok(())
}

/// The suppressor's time per 20 ms frame over `audio`, in µs: the best of three.
fn cpu_per_frame(audio: &[i16]) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        let _ = suppressed(audio, true);
        best = best.min(started.elapsed().as_secs_f64() * 1e6 / (audio.len() / FRAME) as f64);
    }
    best
}

/// Whisper's word error rate on the clean questions, and on each mix with
/// the suppressor off and on.
#[cfg(feature = "models")]
fn word_errors(
    whisper: &voxgate_pipeline::providers::local::whisper::WhisperStt,
    questions: &[(Vec<i16>, String)],
    backgrounds: &[(&str, Vec<i16>)],
) -> Result<()> {
    println!("\n| background | Whisper tiny.en WER at {SNR_DB} dB SNR, off / on |");
    println!("|---|---|");
    let (mut errors, mut total) = (0, 0);
    for (speech, text) in questions {
        let (said, heard) = (words(text), words(&whisper.transcribe(speech)?));
        errors += distance(&said, &heard);
        total += said.len();
    }
    println!("| none (the clean questions) | {:.1} % |", 100.0 * errors as f64 / total.max(1) as f64);
    for (noise_file, noise) in backgrounds {
        let mut wer = Vec::new();
        for on in [false, true] {
            let (mut errors, mut total) = (0, 0);
            for (speech, text) in questions {
                let heard = whisper.transcribe(&suppressed(&mix(speech, noise), on))?;
                let (said, heard) = (words(text), words(&heard));
                errors += distance(&said, &heard);
                total += said.len();
            }
            wer.push(format!("{:.1} %", 100.0 * errors as f64 / total.max(1) as f64));
        }
        println!("| {} | {} |", noise_file.trim_end_matches("_16k.wav"), wer.join(" / "));
    }
    Ok(())
}
