//! The record-tone detector of answering-machine detection on every audio
//! fixture: no speech, noise or music is taken for a beep; a voicemail
//! beep mixed into the hard backgrounds is found, at its time.

use std::path::{Path, PathBuf};

use voxgate_codecs::SampleRate;
use voxgate_codecs::resample::FrameResampler;
use voxgate_pipeline::dsp::Frame;
use voxgate_pipeline::dsp::amd::{BeepDetector, BeepEvent};
use voxgate_pipeline::dsp::vad::FRAME_SAMPLES;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn audio() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/audio")
}

/// A WAV's first channel at 16 kHz, in whole frames.
fn frames(path: &Path) -> Result<Vec<Frame>, Box<dyn std::error::Error>> {
    let mut reader = hound::WavReader::open(path)?;
    let spec = reader.spec();
    let samples: Vec<i16> =
        reader.samples::<i16>().step_by(usize::from(spec.channels)).collect::<Result<_, _>>()?;
    let rate = SampleRate(spec.sample_rate);
    let per_frame = rate.samples_per_frame();
    let mut resampler = FrameResampler::new(rate, SampleRate::HZ_16000)?;
    let mut out = Vec::new();
    for chunk in samples.chunks_exact(per_frame) {
        let mut frame = [0i16; FRAME_SAMPLES];
        resampler.process(chunk, &mut frame)?;
        out.push(frame);
    }
    Ok(out)
}

fn beeps(frames: &[Frame]) -> Vec<BeepEvent> {
    let mut detector = BeepDetector::new();
    frames.iter().enumerate().filter_map(|(i, f)| detector.handle(20 * (i as u64 + 1), f)).collect()
}

#[test]
fn no_fixture_holds_a_beep() -> TestResult {
    let mut checked = 0;
    for dir in [audio(), audio().join("turns")] {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            // DTMF keys are dual tones, two frequencies: not a beep either.
            if path.extension().is_some_and(|e| e == "wav") {
                let found = beeps(&frames(&path)?);
                assert_eq!(found, [], "{}", path.display());
                checked += 1;
            }
        }
    }
    assert!(checked >= 30, "only {checked} fixtures");
    Ok(())
}

#[test]
fn a_beep_over_hard_backgrounds_is_found_at_its_time() -> TestResult {
    for background in ["noise_office_16k", "noise_babble_16k", "noise_traffic_16k", "noise_music_16k"] {
        let mut frames = frames(&audio().join(format!("{background}.wav")))?;
        // A 1 kHz beep at -13 dBFS RMS (a voicemail system's is about that; the hard backgrounds are at -26), 1.5 s in, 500 ms long.
        for (n, frame) in frames.iter_mut().skip(75).take(25).enumerate() {
            for (i, s) in frame.iter_mut().enumerate() {
                let t = (n * FRAME_SAMPLES + i) as f64 / 16_000.0;
                let beep = 10_000.0 * (std::f64::consts::TAU * 1000.0 * t).sin();
                *s = (f64::from(*s) + beep).clamp(-32768.0, 32767.0) as i16;
            }
        }
        let found = beeps(&frames);
        let [BeepEvent::Started { hz, at_ms: start }, BeepEvent::Ended { at_ms: end, .. }] = found[..] else {
            panic!("{background}: {found:?}")
        };
        assert_eq!(hz, 1000, "{background}");
        assert!(start.abs_diff(1500) <= 40 && end.abs_diff(2000) <= 40, "{background}: {start}..{end} ms");
    }
    Ok(())
}
