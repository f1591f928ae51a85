use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

const SSRC: u32 = 0x1234_5678;

/// One packet on the simulated wire: sent every 20 ms, delivered after `delay_ms`.
#[derive(Debug, Clone)]
struct Wire {
    seq: u16,
    ts: u32,
    ssrc: u32,
    marker: bool,
    arrive_ms: u64,
}

fn stream(first_seq: u16, first_ts: u32, count: usize, delay_ms: impl Fn(usize) -> u64) -> Vec<Wire> {
    (0..count)
        .map(|i| Wire {
            seq: first_seq.wrapping_add(i as u16),
            ts: first_ts.wrapping_add(160 * i as u32),
            ssrc: SSRC,
            marker: i == 0,
            arrive_ms: 20 * i as u64 + delay_ms(i),
        })
        .collect()
}

/// What came out of one poll, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Out {
    Frame(u64, Vec<u8>),
    Lost(u64, bool),
    Dry,
    Idle,
}

/// Runs the wire through a buffer, polling every 20 ms for `duration_ms`.
fn run(jb: &mut JitterBuffer, wire: &[Wire], duration_ms: u64) -> Vec<Out> {
    let t0 = Instant::now();
    let mut arrivals: Vec<&Wire> = wire.iter().collect();
    arrivals.sort_by_key(|w| w.arrive_ms); // stable: equal times keep wire order
    let mut arrivals = arrivals.into_iter().peekable();
    let mut outs = Vec::new();
    let mut tick = 0;
    while tick <= duration_ms {
        while let Some(w) = arrivals.next_if(|w| w.arrive_ms <= tick) {
            let payload = w.seq.to_be_bytes();
            jb.handle_packet(
                t0 + Duration::from_millis(w.arrive_ms),
                RtpPacket { seq: w.seq, timestamp: w.ts, ssrc: w.ssrc, marker: w.marker, payload: &payload },
            );
        }
        outs.push(match jb.poll_frame(t0 + Duration::from_millis(tick)) {
            Playout::Frame { seq, payload } => Out::Frame(seq, payload.to_vec()),
            Playout::Conceal { lost_seq: Some(seq), next } => Out::Lost(seq, next.is_some()),
            Playout::Conceal { lost_seq: None, .. } => Out::Dry,
            Playout::Idle => Out::Idle,
        });
        tick += 20;
    }
    outs
}

/// The 16-bit sequence numbers of the frames played, in order.
fn played(outs: &[Out]) -> Vec<u16> {
    outs.iter()
        .filter_map(|o| match o {
            Out::Frame(_, p) => Some(u16::from_be_bytes([p[0], p[1]])),
            _ => None,
        })
        .collect()
}

fn seqs(first: u16, count: usize) -> Vec<u16> {
    (0..count).map(|i| first.wrapping_add(i as u16)).collect()
}

#[test]
fn steady_stream_plays_every_frame_in_order_after_the_start_delay() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    assert!(jb.target_delay_ms() <= 80);
    let outs = run(&mut jb, &stream(100, 0, 50, |_| 5), 1500);
    assert_eq!(played(&outs), seqs(100, 50));
    let first_frame = outs.iter().position(|o| matches!(o, Out::Frame(..)));
    // The first packet arrived at 5 ms and plays 60 ms later: the poll at 80 ms.
    assert_eq!(first_frame, Some(4));
    let stats = jb.stats();
    assert_eq!((stats.received, stats.lost, stats.late, stats.duplicates), (50, 0, 0, 0));
}

#[test]
fn reordered_packets_come_out_in_order() {
    // Every odd packet overtakes the even one before it.
    let wire = stream(7, 0, 40, |i| if i % 2 == 0 { 30 } else { 5 });
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let outs = run(&mut jb, &wire, 1500);
    assert_eq!(played(&outs), seqs(7, 40));
    assert_eq!(jb.stats().lost, 0);
}

#[test]
fn duplicates_are_dropped_and_counted() {
    let mut wire = stream(0, 0, 30, |_| 5);
    let copies: Vec<Wire> = wire.iter().map(|w| Wire { arrive_ms: w.arrive_ms + 7, ..w.clone() }).collect();
    wire.extend(copies);
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let outs = run(&mut jb, &wire, 1000);
    assert_eq!(played(&outs), seqs(0, 30));
    assert_eq!(jb.stats().duplicates, 30);
}

#[test]
fn a_packet_after_its_playout_time_is_late_and_its_frame_concealed() {
    let wire = stream(0, 0, 40, |i| if i == 10 { 400 } else { 5 });
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let outs = run(&mut jb, &wire, 1500);
    let expected: Vec<u16> = (0..40).filter(|&s| s != 10).collect();
    assert_eq!(played(&outs), expected);
    assert!(outs.contains(&Out::Lost(u64::from(10u16) + (1 << 32), true)));
    let stats = jb.stats();
    assert_eq!((stats.lost, stats.late), (1, 1));
}

#[test]
fn sequence_and_timestamp_wrap_around() {
    let wire = stream(65_500, u32::MAX - 160 * 20, 300, |_| 5);
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let outs = run(&mut jb, &wire, 6500);
    let frames = played(&outs);
    let stats = jb.stats();
    // Every frame plays in order across the wrap, except those dropped on
    // purpose as the start target decays to the minimum.
    assert_eq!(frames.len() as u64 + stats.dropped_to_shrink, 300);
    assert!(stats.dropped_to_shrink <= 2);
    let expected = seqs(65_500, 300);
    assert!(frames.iter().all(|s| expected.contains(s)));
    assert!(frames.windows(2).all(|w| w[1] == w[0].wrapping_add(1) || w[1] == w[0].wrapping_add(2)));
    assert_eq!((stats.lost, stats.restarts, stats.late), (0, 0, 0));
    // A steady stream across the wrap measures no jitter: after 6 s the
    // start target has decayed to the minimum.
    assert_eq!(stats.target_delay_ms, 40);
    assert!(stats.jitter_ms < 1.0, "jitter {}", stats.jitter_ms);
}

#[test]
fn new_ssrc_restarts_the_buffer() {
    let mut wire = stream(1000, 0, 20, |_| 5);
    let second: Vec<Wire> = stream(50, 999, 20, |_| 5)
        .into_iter()
        .map(|w| Wire { ssrc: 42, arrive_ms: w.arrive_ms + 600, ..w })
        .collect();
    wire.extend(second);
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let outs = run(&mut jb, &wire, 1500);
    let mut expected = seqs(1000, 20);
    expected.extend(seqs(50, 20));
    assert_eq!(played(&outs), expected);
    assert_eq!(jb.stats().restarts, 1);
}

#[test]
fn a_talkspurt_after_silence_starts_at_its_marker() {
    // 20 packets, 1 s of silence (no packets, timestamps jump), 20 more with the marker.
    let mut wire = stream(0, 0, 20, |_| 5);
    let second: Vec<Wire> = stream(20, 160 * 70, 20, |_| 5)
        .into_iter()
        .map(|w| Wire { arrive_ms: w.arrive_ms + 1400, ..w })
        .collect();
    wire.extend(second);
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let outs = run(&mut jb, &wire, 2500);
    assert_eq!(played(&outs), seqs(0, 40));
    let stats = jb.stats();
    assert_eq!(stats.lost, 0);
    assert!(stats.concealed > 0, "the silence was played as concealment");
    // The gap makes no jitter: the marker re-buffers to the target, no more.
    assert!(stats.target_delay_ms <= 60, "target {}", stats.target_delay_ms);
}

#[test]
fn a_lost_packet_reports_the_next_payload_for_fec() {
    let wire: Vec<Wire> = stream(0, 0, 30, |_| 5).into_iter().filter(|w| w.seq != 12).collect();
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let outs = run(&mut jb, &wire, 1000);
    assert!(outs.contains(&Out::Lost((1 << 32) + 12, true)));
    assert_eq!(jb.stats().lost, 1);
}

#[test]
fn oversize_payloads_are_dropped() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let big = vec![0u8; MAX_PAYLOAD + 1];
    let packet = RtpPacket { seq: 1, timestamp: 0, ssrc: 1, marker: false, payload: &big };
    assert_eq!(jb.handle_packet(Instant::now(), packet), PacketFate::Oversize);
    assert_eq!(jb.stats().oversize, 1);
}

/// A deterministic pseudo-random generator for network delays.
fn lcg(seed: &mut u64) -> u64 {
    *seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    *seed >> 33
}

#[test]
fn target_grows_with_jitter_and_shrinks_back_when_the_network_calms() {
    let mut seed = 7;
    let jitter: Vec<u64> = (0..500).map(|_| lcg(&mut seed) % 120).collect();
    // 10 s of 0-120 ms random delay, then 20 s of a steady 5 ms.
    let wire = stream(0, 0, 1500, |i| if i < 500 { 5 + jitter[i] } else { 5 });
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let outs = run(&mut jb, &wire[..500], 10_000);
    let rough = jb.stats();
    assert!(rough.target_delay_ms >= 100, "target under jitter {}", rough.target_delay_ms);
    assert!(rough.jitter_ms > 10.0, "measured jitter {}", rough.jitter_ms);
    // With the target up, few packets are late.
    assert!(rough.late < 25, "late {} of 500", rough.late);
    drop(outs);

    let t_calm: Vec<Wire> = wire[500..].to_vec();
    let mut jb2 = jb;
    // Continue the same clock: run() starts at t0 = now, so feed the calm part
    // with arrival times relative to its own start.
    let calm: Vec<Wire> =
        t_calm.iter().map(|w| Wire { arrive_ms: w.arrive_ms - 10_000, ..w.clone() }).collect();
    let outs = run(&mut jb2, &calm, 20_000);
    let calm_stats = jb2.stats();
    assert_eq!(calm_stats.target_delay_ms, 40, "target after calm");
    assert!(calm_stats.current_delay_ms <= 60, "held {} ms", calm_stats.current_delay_ms);
    assert!(calm_stats.dropped_to_shrink > 0);
    let frames = played(&outs);
    assert!(frames.windows(2).all(|w| w[1] > w[0]));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Any permutation of packets that all arrive within the window is played
    /// in order, each exactly once, whatever the starting sequence number.
    #[test]
    fn any_permutation_within_the_window_plays_in_order(
        first in any::<u16>(),
        order in Just((0..40usize).collect::<Vec<_>>()).prop_shuffle(),
    ) {
        let mut wire = stream(first, 0, 40, |_| 0);
        for (w, &pos) in wire.iter_mut().zip(&order) {
            w.arrive_ms = pos as u64; // all within 40 ms, in shuffled order
        }
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let outs = run(&mut jb, &wire, 2000);
        prop_assert_eq!(played(&outs), seqs(first, 40));
        prop_assert_eq!(jb.stats().lost, 0);
    }

    /// Under random delay, duplication and loss, playout never goes backwards
    /// and never repeats a packet.
    #[test]
    fn playout_is_monotonic_without_duplicates(
        first in any::<u16>(),
        delays in proptest::collection::vec(0u64..300, 200),
        dup in proptest::collection::vec(any::<bool>(), 200),
        keep in proptest::collection::vec(0u8..10, 200),
    ) {
        let mut wire: Vec<Wire> = stream(first, 123, 200, |i| delays[i])
            .into_iter()
            .enumerate()
            .filter(|(i, _)| keep[*i] != 0)
            .map(|(_, w)| w)
            .collect();
        let copies: Vec<Wire> = wire.iter().enumerate().filter(|(i, _)| dup[*i]).map(|(_, w)| Wire { arrive_ms: w.arrive_ms + 13, ..w.clone() }).collect();
        wire.extend(copies);
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let outs = run(&mut jb, &wire, 5000);
        let extended: Vec<u64> = outs.iter().filter_map(|o| match o { Out::Frame(s, _) => Some(*s), _ => None }).collect();
        prop_assert!(extended.windows(2).all(|w| w[1] > w[0]), "not increasing: {:?}", extended);
        let stats = jb.stats();
        prop_assert!(stats.target_delay_ms <= 400);
        prop_assert_eq!(stats.restarts, 0);
    }
}
