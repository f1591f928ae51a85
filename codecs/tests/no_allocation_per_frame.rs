//! The per-frame calls of every codec allocate nothing once set up.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use voxgate_codecs::g711::G711Law;
use voxgate_codecs::opus::{OpusDecoder, OpusEncoder, OpusEncoderConfig};
use voxgate_codecs::resample::FrameResampler;
use voxgate_codecs::{AudioDecoder, SampleRate, pcm};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged, only counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    f();
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

#[test]
fn codecs_and_resampler_do_not_allocate_per_frame() {
    let pcm8: Vec<i16> = (0..160).map(|i| (i * 97 % 2000) as i16).collect();
    let pcm48: Vec<i16> = (0..960).map(|i| (i * 31 % 3000) as i16).collect();
    let mut wire = [0u8; 1500];
    let mut out = [0i16; 960];
    let mut enc =
        OpusEncoder::new(OpusEncoderConfig::voice(SampleRate::HZ_48000)).expect("encoder");
    let mut dec = OpusDecoder::new(SampleRate::HZ_48000).expect("decoder");
    let mut up = FrameResampler::new(SampleRate::HZ_8000, SampleRate::HZ_16000).expect("resampler");
    let mut down =
        FrameResampler::new(SampleRate::HZ_48000, SampleRate::HZ_16000).expect("resampler");
    // One warm-up frame, in case a library sizes something on first use.
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
    run();
    let count = allocations_during(|| {
        for _ in 0..100 {
            run();
        }
    });
    assert_eq!(count, 0, "{count} allocations in 100 frames");
}
