//! End of turn on the turn fixtures (`fixtures/audio/turns/`): utterances
//! with pauses the caller does not mean as the end (a hesitation, a number or
//! an address read in groups, a list) and complete ones, at 16 and 8 kHz.
//! Each goes through the Silero VAD and the endpointer as a call's audio
//! does, with silence alone (the 600 ms default, and shorter) and with Smart
//! Turn asked at each pause; counted: false cut-offs (a turn ended inside
//! the utterance) and the decision delay (the end of the speech -> the end
//! of the turn).
//!
//! `cargo bench -p voxgate-benches --bench turn_detection`. Figures go to
//! BENCHMARKS.md ("End of turn").

#![allow(clippy::print_stdout)]

use std::path::Path;
use std::time::Instant;

use voxgate_benches::wav_frames_16k;
use voxgate_pipeline::dsp::endpoint::{EndpointConfig, EndpointEvent, Endpointer};
use voxgate_pipeline::dsp::smart_turn::{COMPLETE, SmartTurnModel};
use voxgate_pipeline::dsp::vad::{self, VadConfig, VadKind};

struct Fixture {
    file: String,
    rate: u32,
    speech_end_ms: u64,
    frames: Vec<Vec<i16>>,
}

/// Turn ends: (the frame time the turn ended at, the speech end it reports).
struct Outcome {
    ends_at: Vec<u64>,
    inference_ms: Vec<f64>,
}

fn run(
    fixture: &Fixture,
    config: EndpointConfig,
    model: Option<&SmartTurnModel>,
    vad: &mut dyn vad::VoiceActivityDetector,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    vad.reset();
    let mut ep = Endpointer::new(config, 20);
    let mut audio: Vec<i16> = Vec::new();
    let mut out = Outcome { ends_at: Vec::new(), inference_ms: Vec::new() };
    // The line stays open after the file: 2.5 s more of silence.
    let silence = vec![0i16; 320];
    let frames = fixture.frames.iter().chain(std::iter::repeat_n(&silence, 125));
    for (i, frame) in frames.enumerate() {
        let at = 20 * i as u64;
        audio.extend_from_slice(frame);
        let p = vad.process(frame)?;
        let mut event = ep.handle_frame(at, p);
        if let (Some(EndpointEvent::TurnCheck { pause }), Some(model)) = (event, model) {
            let t = Instant::now();
            let complete = model.predict(&audio)? > COMPLETE;
            out.inference_ms.push(t.elapsed().as_secs_f64() * 1e3);
            event = ep.handle_turn_verdict(pause, complete, at + 20);
        }
        if let Some(EndpointEvent::SpeechEnd { .. }) = event {
            out.ends_at.push(at + 20);
        }
    }
    Ok(out)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = root.join("fixtures/audio/turns");
    let manifest = std::fs::read_to_string(dir.join("manifest.tsv"))?;
    let mut fixtures = Vec::new();
    for line in manifest.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let [file, _, _, _, _, speech_end_ms, _] = cols[..] else { continue };
        let (rate, frames) = wav_frames_16k(&dir.join(file))?;
        fixtures.push(Fixture { file: file.to_owned(), rate, speech_end_ms: speech_end_ms.parse()?, frames });
    }
    let models = root.join("models");
    let mut vad_config = VadConfig::with_models_dir(&models);
    vad_config.kind = VadKind::Silero;
    let mut vad = vad::build(&vad_config)?;
    let model =
        SmartTurnModel::load(&vad_config.onnxruntime, &models.join("smart-turn/smart-turn-v3.2-cpu.onnx"))?;
    let silence = |ms: u32| EndpointConfig { min_silence_ms: ms, ..EndpointConfig::default() };
    let learned = |check: u32, incomplete: u32| EndpointConfig {
        turn_check_ms: check,
        incomplete_silence_ms: incomplete,
        ..EndpointConfig::default()
    };
    let setups: Vec<(String, EndpointConfig, bool)> = vec![
        ("silence 600 ms (default before)".into(), silence(600), false),
        ("silence 400 ms".into(), silence(400), false),
        ("silence 300 ms".into(), silence(300), false),
        ("smart turn at 200 ms, else 1500".into(), learned(200, 1500), true),
        ("smart turn at 300 ms, else 1500".into(), learned(300, 1500), true),
        ("smart turn at 200 ms, else 1000".into(), learned(200, 1000), true),
    ];
    for rate in [16000, 8000] {
        for (name, config, uses_model) in &setups {
            let (mut cut, mut delays, mut inference, mut late) = (0, Vec::new(), Vec::new(), 0);
            for fx in fixtures.iter().filter(|f| f.rate == rate) {
                let outcome = run(fx, *config, uses_model.then_some(&model), vad.as_mut())?;
                // A turn that ended before the speech did cut the caller off.
                let early = outcome.ends_at.iter().filter(|&&t| t < fx.speech_end_ms).count();
                cut += usize::from(early > 0);
                match outcome.ends_at.iter().find(|&&t| t >= fx.speech_end_ms) {
                    Some(&t) => delays.push((t - fx.speech_end_ms) as f64),
                    None => late += 1,
                }
                inference.extend(outcome.inference_ms);
                if early > 0 {
                    println!(
                        "    {name}: {} cut off at {:?} (speech to {} ms)",
                        fx.file, outcome.ends_at, fx.speech_end_ms
                    );
                }
            }
            delays.sort_by(f64::total_cmp);
            inference.sort_by(f64::total_cmp);
            let median = |v: &[f64]| if v.is_empty() { 0.0 } else { v[v.len() / 2] };
            println!(
                "{} kHz  {name:34} utterances cut off {cut:2} of {}  decision delay median {:4.0} ms, max {:4.0} ms{}{}",
                rate / 1000,
                fixtures.iter().filter(|f| f.rate == rate).count(),
                median(&delays),
                delays.last().copied().unwrap_or(0.0),
                if late > 0 { format!("  never ended: {late}") } else { String::new() },
                if inference.is_empty() {
                    String::new()
                } else {
                    format!("  inference median {:.0} ms", median(&inference))
                },
            );
        }
    }
    Ok(())
}
