//! Both VADs, through the endpointer at its default setting, on the speech,
//! silence and noise fixtures: one turn per utterance (no end of speech in
//! the pauses between sentences), none in silence or noise.

use std::path::{Path, PathBuf};

use voxgate_codecs::SampleRate;
use voxgate_codecs::resample::FrameResampler;
use voxgate_pipeline::dsp::endpoint::{EndpointConfig, EndpointEvent, Endpointer};
use voxgate_pipeline::dsp::vad::{self, VadConfig, VadKind, VoiceActivityDetector};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn models_dir() -> PathBuf {
    std::env::var_os("VOXGATE_MODELS__DIR").map_or_else(|| root().join("models"), PathBuf::from)
}

struct Fixture {
    file: String,
    kind: String,
    transcript: String,
}

fn manifest() -> Result<Vec<Fixture>, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(root().join("fixtures/audio/manifest.tsv"))?;
    Ok(text
        .lines()
        .skip(1)
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            Fixture {
                file: cols[0].to_owned(),
                kind: cols[3].to_owned(),
                transcript: cols.get(5).copied().unwrap_or("").to_owned(),
            }
        })
        .collect())
}

/// The fixture as 16 kHz 20 ms frames, resampled the way a call does it.
fn frames_16k(file: &str) -> Result<Vec<Vec<i16>>, Box<dyn std::error::Error>> {
    let mut reader = hound::WavReader::open(root().join("fixtures/audio").join(file))?;
    let rate = SampleRate(reader.spec().sample_rate);
    let samples: Vec<i16> = reader.samples::<i16>().collect::<Result<_, _>>()?;
    let mut resampler = FrameResampler::new(rate, SampleRate::HZ_16000)?;
    let mut out = vec![0i16; 320];
    let mut frames = Vec::new();
    for chunk in samples.chunks_exact(rate.samples_per_frame()) {
        resampler.process(chunk, &mut out)?;
        frames.push(out.clone());
    }
    // Flush the resampler's delay with silence so the tail is heard too.
    for _ in 0..5 {
        resampler.process(&vec![0; rate.samples_per_frame()], &mut out)?;
        frames.push(out.clone());
    }
    Ok(frames)
}

fn endpoint(
    vad: &mut dyn VoiceActivityDetector,
    frames: &[Vec<i16>],
) -> Result<Vec<EndpointEvent>, Box<dyn std::error::Error>> {
    vad.reset();
    let mut ep = Endpointer::new(EndpointConfig::default(), 20);
    let mut events = Vec::new();
    for (i, frame) in frames.iter().enumerate() {
        let p = vad.process(frame)?;
        events.extend(ep.handle_frame(20 * i as u64, p));
    }
    // Turns are what these tests count; pauses within speech are for barge-in.
    let is_turn_edge =
        |e: &EndpointEvent| matches!(e, EndpointEvent::SpeechStart { .. } | EndpointEvent::SpeechEnd { .. });
    // End of file counts as silence long enough to end a turn.
    let mut t = 20 * frames.len() as u64;
    while ep.in_speech() && t < 20 * frames.len() as u64 + 2000 {
        events.extend(ep.handle_frame(t, 0.0));
        t += 20;
    }
    events.retain(is_turn_edge);
    Ok(events)
}

fn check_backend(vad: &mut dyn VoiceActivityDetector, noisy_speech_is_a_turn: bool) -> TestResult {
    let mut checked = 0;
    for fx in manifest()? {
        if fx.kind == "dtmf" || (fx.file.contains("noisy") && !noisy_speech_is_a_turn) {
            continue;
        }
        let frames = frames_16k(&fx.file)?;
        let events = endpoint(vad, &frames)?;
        let name = vad.name();
        match fx.kind.as_str() {
            "speech" | "multi" => {
                assert_eq!(events.len(), 2, "{name} on {} ({}): {events:?}", fx.file, fx.transcript);
                let EndpointEvent::SpeechStart { at_ms: start } = events[0] else {
                    panic!("{name} on {}: first event {:?}", fx.file, events[0]);
                };
                // Every fixture has 300 ms of silence before its speech.
                assert!((50..=400).contains(&start), "{name} on {}: start at {start} ms", fx.file);
                let EndpointEvent::SpeechEnd { at_ms: end, .. } = events[1] else {
                    panic!("{name} on {}: second event {:?}", fx.file, events[1]);
                };
                let speech_end_ms = 20 * frames.len() as u64 - 100 - 500; // flush frames, 500 ms tail
                assert!(
                    end + 300 >= speech_end_ms,
                    "{name} on {}: ended at {end} ms, speech to {speech_end_ms} ms",
                    fx.file
                );
            }
            _ => assert_eq!(events, [], "{name} on {} ({})", fx.file, fx.kind),
        }
        checked += 1;
    }
    assert!(checked >= 14, "only {checked} fixtures checked");
    Ok(())
}

#[test]
fn webrtc_vad_finds_one_turn_per_utterance_and_none_in_silence_or_noise() -> TestResult {
    let mut config = VadConfig::with_models_dir(&models_dir());
    config.kind = VadKind::WebRtc;
    let mut vad = vad::build(&config)?;
    assert_eq!(vad.name(), "webrtc");
    check_backend(vad.as_mut(), false)
}

#[test]
fn silero_vad_finds_one_turn_per_utterance_even_in_noise() -> TestResult {
    let config = VadConfig::with_models_dir(&models_dir());
    assert!(
        config.silero_model.exists() && config.onnxruntime.exists(),
        "Silero files missing under {}: run scripts/fetch-models.sh",
        models_dir().display()
    );
    // Auto picks Silero when its files are present.
    let mut vad = vad::build(&config)?;
    assert_eq!(vad.name(), "silero");
    check_backend(vad.as_mut(), true)
}
