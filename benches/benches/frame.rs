//! Per-frame costs of the audio hot path (one 20 ms frame unless named).
//!
//! `cargo bench -p voxgate-benches --bench frame`; figures go to BENCHMARKS.md.

use std::hint::black_box;
#[cfg(feature = "models")]
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use voxgate_codecs::g711::G711Law;
use voxgate_codecs::opus::{OpusDecoder, OpusEncoder, OpusEncoderConfig};
use voxgate_codecs::resample::FrameResampler;
use voxgate_codecs::{AudioDecoder, SampleRate};
use voxgate_pipeline::dsp::jitter::{JitterBuffer, JitterConfig, RtpPacket};
#[cfg(feature = "models")]
use voxgate_pipeline::dsp::vad::SileroVad;
use voxgate_pipeline::dsp::vad::{VoiceActivityDetector, WebRtcMode, WebRtcVad};

/// Speech-like test signal: two harmonics with a slow amplitude wobble.
fn voice(rate: SampleRate, frames: usize) -> Vec<i16> {
    (0..rate.samples_per_frame() * frames)
        .map(|i| {
            let t = i as f32 / rate.hz() as f32;
            let env = 0.6 + 0.4 * (2.0 * std::f32::consts::PI * 3.0 * t).sin();
            let s = (2.0 * std::f32::consts::PI * 180.0 * t).sin()
                + 0.5 * (2.0 * std::f32::consts::PI * 720.0 * t).sin();
            (s * env * 8000.0) as i16
        })
        .collect()
}

fn g711(c: &mut Criterion) {
    let pcm = voice(SampleRate::HZ_8000, 1);
    let mut wire = [0u8; 160];
    let mut back = [0i16; 160];
    c.bench_function("g711_ulaw_encode_decode_20ms", |b| {
        b.iter(|| {
            G711Law::Ulaw.encode(black_box(&pcm), &mut wire).ok();
            G711Law::Ulaw.decode(black_box(&wire), &mut back).ok();
        });
    });
    c.bench_function("g711_alaw_encode_decode_20ms", |b| {
        b.iter(|| {
            G711Law::Alaw.encode(black_box(&pcm), &mut wire).ok();
            G711Law::Alaw.decode(black_box(&wire), &mut back).ok();
        });
    });
}

fn opus(c: &mut Criterion) {
    let rate = SampleRate::HZ_48000;
    let pcm = voice(rate, 50);
    let frames: Vec<&[i16]> = pcm.chunks(960).collect();
    for complexity in [5u8, 10] {
        let mut config = OpusEncoderConfig::voice(rate);
        config.complexity = complexity;
        let mut enc = OpusEncoder::new(config).expect("encoder");
        let mut packet = [0u8; 1500];
        let mut i = 0;
        c.bench_function(&format!("opus_encode_48k_c{complexity}_20ms"), |b| {
            b.iter(|| {
                i = (i + 1) % frames.len();
                enc.encode(black_box(frames[i]), &mut packet).ok()
            });
        });
    }
    let mut enc = OpusEncoder::new(OpusEncoderConfig::voice(rate)).expect("encoder");
    let packets: Vec<Vec<u8>> = frames
        .iter()
        .map(|f| {
            let mut p = [0u8; 1500];
            let n = enc.encode(f, &mut p).expect("encode");
            p[..n].to_vec()
        })
        .collect();
    let mut dec = OpusDecoder::new(rate).expect("decoder");
    let mut out = [0i16; 960];
    let mut i = 0;
    c.bench_function("opus_decode_48k_20ms", |b| {
        b.iter(|| {
            i = (i + 1) % packets.len();
            dec.decode(black_box(&packets[i]), &mut out).ok()
        });
    });
}

fn resample(c: &mut Criterion) {
    let pairs = [
        (SampleRate::HZ_8000, SampleRate::HZ_16000),
        (SampleRate::HZ_16000, SampleRate::HZ_8000),
        (SampleRate::HZ_48000, SampleRate::HZ_16000),
        (SampleRate::HZ_16000, SampleRate::HZ_48000),
    ];
    for (from, to) in pairs {
        let pcm = voice(from, 1);
        let mut r = FrameResampler::new(from, to).expect("resampler");
        let mut out = vec![0i16; to.samples_per_frame()];
        c.bench_function(&format!("resample_{}k_to_{}k_20ms", from.hz() / 1000, to.hz() / 1000), |b| {
            b.iter(|| r.process(black_box(&pcm), &mut out).ok());
        });
    }
    // As on a loaded server: a thousand calls, each with its resampler both
    // ways, taking turns, so each one's state is out of cache when it runs.
    let (narrow, wide) = (voice(SampleRate::HZ_8000, 1), voice(SampleRate::HZ_16000, 1));
    let mut calls: Vec<_> = (0..1000)
        .map(|_| {
            let up = FrameResampler::new(SampleRate::HZ_8000, SampleRate::HZ_16000).expect("resampler");
            let down = FrameResampler::new(SampleRate::HZ_16000, SampleRate::HZ_8000).expect("resampler");
            (up, down)
        })
        .collect();
    let (mut out16, mut out8) = ([0i16; 320], [0i16; 160]);
    c.bench_function("resample_8k_16k_both_ways_1000_calls_per_call", |b| {
        let mut next = 0;
        b.iter(|| {
            let (up, down) = &mut calls[next];
            next = (next + 1) % 1000;
            up.process(black_box(&narrow), &mut out16).ok();
            down.process(black_box(&wide), &mut out8).ok();
        });
    });
}

fn jitter(c: &mut Criterion) {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let payload = [0x55u8; 160];
    let t0 = Instant::now();
    let mut n: u32 = 0;
    c.bench_function("jitter_push_pop_20ms", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            let now = t0 + Duration::from_millis(20 * u64::from(n));
            let packet = RtpPacket {
                seq: n as u16,
                timestamp: n.wrapping_mul(160),
                ssrc: 1,
                marker: false,
                payload: &payload,
            };
            jb.handle_packet(now, black_box(packet));
            black_box(jb.poll_frame(now + Duration::from_millis(60)));
        });
    });
}

fn vad(c: &mut Criterion) {
    let frames = voice(SampleRate::HZ_16000, 50);
    let frames: Vec<&[i16]> = frames.chunks(320).collect();
    let mut webrtc = WebRtcVad::new(WebRtcMode::Aggressive);
    let mut i = 0;
    c.bench_function("vad_webrtc_20ms", |b| {
        b.iter(|| {
            i = (i + 1) % frames.len();
            webrtc.process(black_box(frames[i])).ok()
        });
    });

    #[cfg(feature = "models")]
    silero(c, &frames);
}

/// Silero, when the models are there (the `models` feature).
#[cfg(feature = "models")]
fn silero(c: &mut Criterion, frames: &[&[i16]]) {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    match SileroVad::new(
        &models.join("onnxruntime/libonnxruntime.so"),
        &models.join("silero/silero_vad.onnx"),
    ) {
        Ok(mut silero) => {
            // 8 frames = 160 ms = 5 Silero chunks of 32 ms.
            c.bench_function("vad_silero_160ms_5_chunks", |b| {
                b.iter(|| {
                    for f in &frames[..8] {
                        black_box(silero.process(f).ok());
                    }
                });
            });
        }
        Err(e) => eprintln!("skipping Silero (run scripts/fetch-models.sh): {e}"),
    }
}

fn g722(c: &mut Criterion) {
    use voxgate_codecs::AudioDecoder as _;
    let pcm = voice(SampleRate::HZ_16000, 1);
    let mut wire = [0u8; 160];
    let mut back = [0i16; 320];
    let (mut encoder, mut decoder) =
        (voxgate_codecs::g722::G722Encoder::default(), voxgate_codecs::g722::G722Decoder::default());
    c.bench_function("g722_encode_20ms", |b| {
        b.iter(|| encoder.encode(black_box(&pcm), &mut wire).ok());
    });
    c.bench_function("g722_decode_20ms", |b| {
        b.iter(|| decoder.decode(black_box(&wire), &mut back).ok());
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = g711, g722, opus, resample, jitter, vad
}
criterion_main!(benches);
