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
        // Hard backgrounds (babble is speech) are benches/noise_eval's, not a pass or fail.
        if fx.kind == "dtmf"
            || fx.kind == "background"
            || (fx.file.contains("noisy") && !noisy_speech_is_a_turn)
        {
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

/// The 8 kHz speech fixtures as a phone sends them (µ-law, 20 ms packets),
/// through Gilbert-Elliott burst loss and the call's playout (jitter buffer,
/// decoder, concealment), resampled to 16 kHz frames as a call does.
fn frames_over_lossy_rtp(
    file: &str,
    seed: u64,
    burst: Option<(f64, f64, f64)>,
) -> Result<Vec<Vec<i16>>, Box<dyn std::error::Error>> {
    use std::time::{Duration, Instant};
    use voxgate_codecs::G711Decoder;
    use voxgate_codecs::g711::G711Law;
    use voxgate_pipeline::dsp::jitter::{JitterConfig, RtpPacket};
    use voxgate_pipeline::dsp::playout::AudioPlayout;

    let mut reader = hound::WavReader::open(root().join("fixtures/audio").join(file))?;
    assert_eq!(reader.spec().sample_rate, 8000);
    let mut samples: Vec<i16> = reader.samples::<i16>().collect::<Result<_, _>>()?;
    samples.resize(samples.len().next_multiple_of(160) + 160 * 50, 0); // a second of silence after
    let mut playout = AudioPlayout::new(JitterConfig::default(), Box::new(G711Decoder(G711Law::Ulaw)));
    let mut resampler = FrameResampler::new(SampleRate::HZ_8000, SampleRate::HZ_16000)?;
    let (mut rng, mut bad) = (seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1, false);
    let mut uniform = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng >> 11) as f64 / (1u64 << 53) as f64
    };
    let t0 = Instant::now();
    let (mut pcm, mut out, mut payload) = ([0i16; 160], vec![0i16; 320], [0u8; 160]);
    let mut frames = Vec::new();
    for (n, chunk) in samples.chunks_exact(160).enumerate() {
        let now = t0 + Duration::from_millis(20 * n as u64);
        let lost = match burst {
            Some((p_gb, p_bg, loss_bad)) => {
                bad = if bad { uniform() >= p_bg } else { uniform() < p_gb };
                bad && uniform() < loss_bad
            }
            None => false,
        };
        if !lost {
            G711Law::Ulaw.encode(chunk, &mut payload)?;
            let packet = RtpPacket {
                seq: n as u16,
                timestamp: 160 * n as u32,
                ssrc: 1,
                marker: n == 0,
                payload: &payload,
            };
            playout.handle_packet(now, packet);
        }
        playout.poll_frame(now, &mut pcm)?;
        resampler.process(&pcm, &mut out)?;
        frames.push(out.clone());
    }
    Ok(frames)
}

#[test]
fn an_utterance_stays_one_turn_under_bursty_loss() -> TestResult {
    let mut config = VadConfig::with_models_dir(&models_dir());
    config.kind = VadKind::WebRtc;
    let mut vad = vad::build(&config)?;
    let mut report = String::new();
    let (mut runs, mut split) = (0, 0);
    for fx in manifest()? {
        if fx.kind != "speech" || !fx.file.ends_with("_8k.wav") {
            continue;
        }
        let clean = endpoint(vad.as_mut(), &frames_over_lossy_rtp(&fx.file, 0, None)?)?;
        assert_eq!(clean.len(), 2, "{} without loss: {clean:?}", fx.file);
        for seed in 1..=20 {
            let frames = frames_over_lossy_rtp(&fx.file, seed, Some((0.02, 0.25, 0.9)))?;
            let events = endpoint(vad.as_mut(), &frames)?;
            runs += 1;
            if events.len() != 2 {
                split += 1;
                report.push_str(&format!("{} seed {seed}: {events:?}\n", fx.file));
            }
        }
    }
    eprintln!("{split} of {runs} runs split\n{report}");
    assert_eq!(split, 0, "{split} of {runs} utterances split by loss:\n{report}");
    Ok(())
}
