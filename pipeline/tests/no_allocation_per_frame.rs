//! The receive path allocates nothing per frame once set up: jitter buffer,
//! playout with concealment, the WebRTC VAD and the endpointer.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use voxgate_codecs::G711Decoder;
use voxgate_codecs::g711::G711Law;
use voxgate_pipeline::dsp::endpoint::{EndpointConfig, Endpointer};
use voxgate_pipeline::dsp::jitter::{JitterConfig, RtpPacket};
use voxgate_pipeline::dsp::playout::AudioPlayout;
use voxgate_pipeline::dsp::vad::{VoiceActivityDetector, WebRtcMode, WebRtcVad};

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

#[test]
fn receive_path_does_not_allocate_per_frame() {
    let mut playout = AudioPlayout::new(
        JitterConfig::default(),
        Box::new(G711Decoder(G711Law::Ulaw)),
    );
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
            let packet = RtpPacket {
                seq: n as u16,
                timestamp: 160 * n,
                ssrc: 1,
                marker: n == 0,
                payload: &payload,
            };
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
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for n in 10..1010 {
        step(n);
    }
    let count = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert_eq!(count, 0, "{count} allocations in 1000 frames");
    assert!(playout.jitter().stats().lost > 100);
}
