//! The audio hot path allocates nothing per frame once set up: the codecs and
//! the resampler, the jitter buffer, playout with concealment, the WebRTC VAD
//! and the endpointer.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

use voxgate_codecs::g711::G711Law;
use voxgate_codecs::opus::{OpusDecoder, OpusEncoder, OpusEncoderConfig};
use voxgate_codecs::resample::FrameResampler;
use voxgate_codecs::{AudioDecoder, G711Decoder, SampleRate, pcm};
use voxgate_pipeline::dsp::endpoint::{EndpointConfig, Endpointer};
use voxgate_pipeline::dsp::jitter::{JitterConfig, RtpPacket};
use voxgate_pipeline::dsp::playout::AudioPlayout;
use voxgate_pipeline::dsp::vad::{VoiceActivityDetector, WebRtcMode, WebRtcVad};

struct Counting;

thread_local! {
    /// Allocations made by this thread: tests run in parallel, each counts its own.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_one() {
    // `try_with`: the slot may already be gone while a thread shuts down.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: forwards to the system allocator unchanged, only counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn codecs_and_resampler_do_not_allocate_per_frame() {
    let pcm8: Vec<i16> = (0..160).map(|i| (i * 97 % 2000) as i16).collect();
    let pcm48: Vec<i16> = (0..960).map(|i| (i * 31 % 3000) as i16).collect();
    let mut wire = [0u8; 1500];
    let mut out = [0i16; 960];
    let mut enc = OpusEncoder::new(OpusEncoderConfig::voice(SampleRate::HZ_48000)).expect("encoder");
    let mut dec = OpusDecoder::new(SampleRate::HZ_48000).expect("decoder");
    let mut up = FrameResampler::new(SampleRate::HZ_8000, SampleRate::HZ_16000).expect("resampler");
    let mut down = FrameResampler::new(SampleRate::HZ_48000, SampleRate::HZ_16000).expect("resampler");
    let mut run = || {
        for law in [G711Law::Ulaw, G711Law::Alaw] {
            law.encode(&pcm8, &mut wire).expect("g711 encode");
            law.decode(&wire[..160], &mut out).expect("g711 decode");
        }
        pcm::l16_encode(&pcm8, &mut wire).expect("l16 encode");
        pcm::l16_decode(&wire[..320], &mut out).expect("l16 decode");
        let n = enc.encode(&pcm48, &mut wire).expect("opus encode");
        dec.decode(&wire[..n], &mut out).expect("opus decode");
        dec.conceal(&mut out).expect("opus plc");
        up.process(&pcm8, &mut out).expect("8->16");
        down.process(&pcm48, &mut out).expect("48->16");
    };
    // One warm-up frame, in case a library sizes something on first use.
    run();
    let count = allocations_during(|| {
        for _ in 0..100 {
            run();
        }
    });
    assert_eq!(count, 0, "{count} allocations in 100 frames");
}

#[test]
fn receive_path_does_not_allocate_per_frame() {
    let mut playout = AudioPlayout::new(JitterConfig::default(), Box::new(G711Decoder(G711Law::Ulaw)));
    let mut vad = WebRtcVad::new(WebRtcMode::Aggressive);
    let mut endpointer = Endpointer::new(EndpointConfig::default(), 20);
    let payload: Vec<u8> = (0..160).map(|i| (i * 7) as u8).collect();
    let mut out8 = [0i16; 160];
    let frame16 = [300i16; 320];
    let t0 = Instant::now();

    let mut step = |n: u32| {
        let now = t0 + Duration::from_millis(20 * u64::from(n));
        // Every 7th packet is lost, every 5th arrives twice: all paths run.
        if n % 7 != 3 {
            let packet =
                RtpPacket { seq: n as u16, timestamp: 160 * n, ssrc: 1, marker: n == 0, payload: &payload };
            playout.handle_packet(now, packet);
            if n.is_multiple_of(5) {
                playout.handle_packet(now, packet);
            }
        }
        playout.poll_frame(now, &mut out8).expect("frame fits");
        let p = vad.process(&frame16).expect("vad");
        endpointer.handle_frame(20 * u64::from(n), p);
    };
    for n in 0..10 {
        step(n);
    }
    let count = allocations_during(|| {
        for n in 10..1010 {
            step(n);
        }
    });
    assert_eq!(count, 0, "{count} allocations in 1000 frames");
    assert!(playout.jitter().stats().lost > 100);
}
