//! Answering-machine detection (`pipeline::dsp::amd`) on phone audio:
//! people answering ("Hello?", "Yes?", "Hi, who is this?") and voicemail
//! greetings with and without a record tone, each in four voices at two
//! speeds (espeak-ng, through sox at 8 kHz as a phone line carries it, back
//! to 16 kHz with the call's resampler), judged with the WebRTC VAD as the
//! call's session does, on cadence and tone alone (no recogniser: a
//! machine's words would only add evidence). Reported: verdicts per class,
//! the time to decide, how far the message's start is from the end of the
//! beep, and the detector's CPU per 20 ms frame.
//!
//! ```sh
//! cargo bench -p voxgate-benches --no-default-features --bench amd_eval   # WebRTC's VAD
//! cargo test -p voxgate-benches --bench amd_eval                          # and Silero (debug: no CPU figure)
//! ```

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use voxgate_codecs::SampleRate;
use voxgate_codecs::resample::FrameResampler;
use voxgate_pipeline::dsp::Frame;
use voxgate_pipeline::dsp::amd::{AmdConfig, AmdEvent, AmdResult, Detector, MessageCue};
use voxgate_pipeline::dsp::vad::{VoiceActivityDetector, WebRtcMode, WebRtcVad};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const PEOPLE: [&str; 6] =
    ["Hello?", "Hello.", "Yes?", "Hi, who is this?", "Speaking.", "Hello, Sam speaking."];
const MACHINES: [&str; 5] = [
    "Hi, you've reached Sam. I can't take your call right now. Please leave a message after the tone.",
    "The person you are calling is not available. Please record your message.",
    "Hello, this is the Baker family. We're not home, leave us a message and we'll call you back.",
    "You have reached the voicemail of extension two one four.",
    "Please leave a message.",
];
const VOICES: [&str; 4] = ["en-us", "en-gb", "en-gb-scotland", "en-029"];
const SPEEDS: [&str; 2] = ["150", "190"];

/// `text` in `voice` at `speed` words a minute, as a phone line carries it
/// (8 kHz), at 16 kHz.
fn spoken(dir: &Path, text: &str, voice: &str, speed: &str) -> Result<Vec<i16>> {
    let (raw, phone) = (dir.join("raw.wav"), dir.join("phone.wav"));
    let ok = Command::new("espeak-ng")
        .args(["-v", voice, "-s", speed, "-w"])
        .arg(&raw)
        .arg(text)
        .status()?
        .success()
        && Command::new("sox")
            .arg(&raw)
            .args(["-r", "8000", "-c", "1", "-b", "16"])
            .arg(&phone)
            .status()?
            .success();
    if !ok {
        return Err("espeak-ng or sox failed".into());
    }
    let samples: Vec<i16> =
        hound::WavReader::open(&phone)?.samples::<i16>().collect::<std::result::Result<_, _>>()?;
    let mut up = FrameResampler::new(SampleRate::HZ_8000, SampleRate::HZ_16000)?;
    let mut out = Vec::new();
    let mut frame = [0i16; 320];
    let mut padded = samples;
    padded.resize(padded.len().div_ceil(160) * 160, 0);
    for chunk in padded.chunks_exact(160) {
        up.process(chunk, &mut frame)?;
        out.extend_from_slice(&frame);
    }
    Ok(out)
}

/// A 1 kHz record tone of 500 ms at 16 kHz.
fn beep() -> Vec<i16> {
    (0..8000)
        .map(|i| (6000.0 * (std::f64::consts::TAU * 1000.0 * f64::from(i) / 16_000.0).sin()) as i16)
        .collect()
}

struct Run {
    verdict: Option<(AmdResult, u64)>,
    message_at: Option<(MessageCue, u64)>,
    /// Time in the detector, and frames.
    spent: std::time::Duration,
    frames: u32,
}

/// 300 ms of line silence, `audio`, then silence: the detector with `vad`.
fn detect(vad: &mut dyn VoiceActivityDetector, audio: &[i16]) -> Result<Run> {
    vad.reset();
    let mut detector = Detector::new(AmdConfig::default());
    let mut line = vec![0i16; 16 * 300];
    line.extend_from_slice(audio);
    line.resize(line.len() + 16 * 5000, 0);
    let mut run = Run { verdict: None, message_at: None, spent: std::time::Duration::ZERO, frames: 0 };
    for (i, chunk) in line.chunks_exact(320).enumerate() {
        let frame: &Frame = chunk.try_into()?;
        let p = vad.process(frame)?;
        let started = Instant::now();
        let event = detector.handle_frame(20 * (i as u64 + 1), frame, p);
        run.spent += started.elapsed();
        run.frames += 1;
        match event {
            Some(AmdEvent::Decided(d)) => run.verdict = Some((d.result, d.decided_ms)),
            Some(AmdEvent::LeaveMessage { cue, at_ms }) => {
                run.message_at = Some((cue, at_ms));
                break;
            }
            None => {}
        }
        if run.verdict.is_some_and(|(r, _)| r != AmdResult::Machine) {
            break;
        }
    }
    Ok(run)
}

fn main() -> Result<()> {
    let mut vads: Vec<(&str, Box<dyn VoiceActivityDetector>)> =
        vec![("WebRTC", Box::new(WebRtcVad::new(WebRtcMode::Aggressive)))];
    #[cfg(feature = "models")]
    {
        use voxgate_pipeline::dsp::vad::{self, VadConfig, VadKind};
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut config = VadConfig::with_models_dir(&root.join("models"));
        config.kind = VadKind::Silero;
        vads.push(("Silero", vad::build(&config)?));
    }
    for (name, vad) in &mut vads {
        println!("== {name} VAD");
        evaluate(vad.as_mut())?;
    }
    Ok(())
}

fn evaluate(vad: &mut dyn VoiceActivityDetector) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("voxgate-amd-eval-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (mut spent, mut frames) = (std::time::Duration::ZERO, 0u32);
    println!("people ({} greetings x {} voices x {} speeds):", PEOPLE.len(), VOICES.len(), SPEEDS.len());
    let (mut greeted, mut total, mut times) = (0, 0, Vec::new());
    for text in PEOPLE {
        let mut verdicts = Vec::new();
        for voice in VOICES {
            for speed in SPEEDS {
                let run = detect(vad, &spoken(&dir, text, voice, speed)?)?;
                spent += run.spent;
                frames += run.frames;
                total += 1;
                let (result, at) = run.verdict.ok_or("no verdict")?;
                // The 300 ms of line silence before the answer's first word count.
                times.push(at);
                if result != AmdResult::Machine {
                    greeted += 1;
                }
                verdicts.push(result.as_str());
            }
        }
        println!("  {text:<24} {}", verdicts.join(" "));
    }
    let mean = |t: &[u64]| t.iter().sum::<u64>() / t.len().max(1) as u64;
    println!(
        "  greeted as people (human or unknown): {greeted}/{total}; decided in {} ms on average, at most {} ms",
        mean(&times),
        times.iter().max().unwrap_or(&0)
    );
    println!(
        "machines ({} greetings x {} voices x {} speeds, with and without a beep):",
        MACHINES.len(),
        VOICES.len(),
        SPEEDS.len()
    );
    let (mut caught, mut total, mut times, mut beep_errors, mut silent_cues) =
        (0, 0, Vec::new(), Vec::new(), 0);
    for text in MACHINES {
        let mut verdicts = Vec::new();
        for voice in VOICES {
            for speed in SPEEDS {
                let greeting = spoken(&dir, text, voice, speed)?;
                for with_beep in [false, true] {
                    let mut audio = greeting.clone();
                    let mut beep_end = None;
                    if with_beep {
                        audio.resize(audio.len() + 16 * 600, 0);
                        audio.extend(beep());
                        beep_end = Some(300 + audio.len() as u64 / 16);
                    }
                    let run = detect(vad, &audio)?;
                    spent += run.spent;
                    frames += run.frames;
                    total += 1;
                    let (result, at) = run.verdict.ok_or("no verdict")?;
                    if result == AmdResult::Machine {
                        caught += 1;
                        times.push(at);
                    }
                    verdicts.push(result.as_str());
                    match (beep_end, run.message_at) {
                        (Some(end), Some((MessageCue::Beep, at))) => beep_errors.push(at.abs_diff(end)),
                        (Some(_), Some(_)) => silent_cues += 1,
                        _ => {}
                    }
                }
            }
        }
        let machine = verdicts.iter().filter(|v| **v == "machine").count();
        println!("  {:<60} machine {machine}/{}", format!("{text:.58}"), verdicts.len());
    }
    println!(
        "  found to be machines: {caught}/{total}; decided in {} ms on average, at most {} ms",
        mean(&times),
        times.iter().max().unwrap_or(&0)
    );
    println!(
        "  with a beep, the message began {} ms from its end on average (at most {} ms), {} of {} cued by the beep",
        mean(&beep_errors),
        beep_errors.iter().max().unwrap_or(&0),
        beep_errors.len(),
        beep_errors.len() + silent_cues
    );
    println!(
        "detector CPU: {:.1} us per 20 ms frame ({} frames)",
        spent.as_secs_f64() * 1e6 / f64::from(frames.max(1)),
        frames
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
