//! The call core as a transport sees it: encoded packets in, encoded frames
//! with their timestamps and markers out, and the actions it asks for.
//! Scripted providers on a paused clock, driven by [`CallClock`] as the
//! real transports drive it.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use voxgate_codecs::dtmf::TelephoneEvent;
use voxgate_codecs::{Codec, SampleRate};
use voxgate_pipeline::call::{Action, Arrival, CallClock, CallCore, CallParts, MediaKind, Output, Wake};
use voxgate_pipeline::dsp::jitter::{JitterConfig, RtpPacket};
use voxgate_pipeline::dsp::vad::{WebRtcMode, WebRtcVad};
use voxgate_pipeline::providers::ToolCall;
use voxgate_pipeline::providers::scripted::{LlmScript, ScriptedLlm, ScriptedStt, ScriptedTts, SttScript};
use voxgate_pipeline::session::{CallLog, EndReason, Providers, SessionConfig, SessionParts, Speaker};

const GREETING: &str = "Hello there, how can I help?";
const INITIAL: u32 = u32::MAX - 30 * 160 + 1;

fn fixture(name: &str) -> Vec<i16> {
    let path = format!("{}/../fixtures/audio/{name}", env!("CARGO_MANIFEST_DIR"));
    let mut reader = hound::WavReader::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    reader.samples::<i16>().map(|s| s.expect("sample")).collect()
}

fn parts(codec: Codec, arrival: Arrival, config: SessionConfig, llm: Vec<LlmScript>) -> CallParts {
    let providers = Providers {
        stt: Arc::new(ScriptedStt::new(vec![SttScript::Text("Press one for me.".into())])),
        llm: Arc::new(ScriptedLlm::new(llm)),
        tts: Arc::new(ScriptedTts::default()),
        knowledge: None,
        speech_to_speech: None,
    };
    CallParts {
        session: SessionParts {
            config,
            providers,
            vad: Box::new(WebRtcVad::new(WebRtcMode::Aggressive)),
            recording: None,
        },
        codec,
        arrival,
        telephone_events: true,
        no_media: None,
        // Thirty frames of 8 kHz before RTP's 32-bit timestamp wraps.
        initial_timestamp: INITIAL,
    }
}

fn greeting() -> SessionConfig {
    let mut config = SessionConfig::default();
    config.turn.greeting = Some(GREETING.into());
    config
}

/// One frame out, as the transport saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sent {
    at_ms: u64,
    kind: MediaKind,
    len: usize,
    timestamp: u64,
    marker: bool,
    payload: Vec<u8>,
}

#[derive(Debug, Default)]
struct Seen {
    frames: Vec<Sent>,
    actions: Vec<(u64, Action)>,
}

impl Seen {
    fn audio(&self) -> Vec<&Sent> {
        self.frames.iter().filter(|f| f.kind == MediaKind::Audio).collect()
    }
}

/// Runs the core for `ms`, calling `feed` on each tick (with the tick's
/// index) before the core's own tick; stops early once the call is over.
async fn run(
    core: &mut CallCore,
    ms: u64,
    mut feed: impl FnMut(&mut CallCore, std::time::Instant, u64),
) -> Seen {
    let start = Instant::now();
    let mut clock = CallClock::starting_at(start);
    let mut seen = Seen::default();
    let mut ticks = 0;
    while ticks * 20 < ms {
        if let Wake::Tick(now) = clock.wait(core).await {
            feed(core, now, ticks);
            core.handle_tick(now);
            ticks += 1;
        }
        let at_ms = start.elapsed().as_millis() as u64;
        while let Some(output) = core.poll_output() {
            match output {
                Output::Media(f) => seen.frames.push(Sent {
                    at_ms,
                    kind: f.kind,
                    len: f.payload.len(),
                    timestamp: f.timestamp,
                    marker: f.marker,
                    payload: f.payload.to_vec(),
                }),
                Output::Action(a) => seen.actions.push((at_ms, a)),
            }
        }
        if core.is_ended() && seen.actions.iter().any(|(_, a)| *a == Action::HangUp) {
            break;
        }
    }
    seen
}

fn finish(core: CallCore) -> CallLog {
    core.finish(voxgate_pipeline::call::now())
}

/// µ-law of `samples` (8 kHz), 20 ms a packet.
fn ulaw_packets(samples_16k: &[i16]) -> Vec<Vec<u8>> {
    // Every other sample is a crude 8 kHz version, enough for a VAD.
    let narrow: Vec<i16> = samples_16k.iter().step_by(2).copied().collect();
    narrow
        .chunks(160)
        .map(|c| {
            let mut frame = [0i16; 160];
            frame[..c.len()].copy_from_slice(c);
            let mut out = vec![0u8; 160];
            voxgate_codecs::g711::G711Law::Ulaw.encode(&frame, &mut out).expect("encodes");
            out
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn the_greeting_goes_out_encoded_with_rtp_timestamps_and_one_marker() {
    let mut core = CallCore::start(
        voxgate_pipeline::call::now(),
        parts(Codec::Pcmu, Arrival::Packets(JitterConfig::default()), greeting(), vec![]),
    )
    .expect("PCMU");
    let seen = run(&mut core, 4000, |_, _, _| {}).await;
    let audio = seen.audio();
    let expected = ScriptedTts::default().samples_for(GREETING).div_ceil(320);
    assert_eq!(audio.len(), expected, "every frame of the greeting");
    assert!(audio.iter().all(|f| f.len == 160), "20 ms of µ-law each");
    // The first frame is stamped with the initial timestamp and marked; the
    // rest step by 160 on the same talkspurt.
    assert_eq!((audio[0].timestamp, audio[0].marker), (u64::from(INITIAL), true));
    for pair in audio.windows(2) {
        assert_eq!(pair[1].timestamp, pair[0].timestamp + 160);
        assert!(!pair[1].marker);
    }
    // Past 2^32 the 64-bit clock goes on; RTP's low bits wrap.
    let last = audio.last().expect("frames");
    assert!(last.timestamp > u64::from(u32::MAX), "{}", last.timestamp);
    // One frame a tick, on the tick.
    assert!(audio.windows(2).all(|w| w[1].at_ms == w[0].at_ms + 20));
    let log = finish(core);
    assert_eq!(log.transcript[0].text, GREETING);
}

/// A sound card's rates (the console): 20 ms of 16-bit PCM at 44.1 or
/// 48 kHz is more than a network packet's 1500 bytes, and goes out whole.
#[tokio::test(start_paused = true)]
async fn pcm_at_a_sound_cards_rate_goes_out_a_whole_frame_a_tick() {
    for rate in [44_100, 48_000] {
        let codec = Codec::PcmLe(SampleRate(rate));
        let mut core = CallCore::start(
            voxgate_pipeline::call::now(),
            parts(codec, Arrival::InOrder, greeting(), vec![]),
        )
        .expect("PCM");
        let seen = run(&mut core, 4000, |_, _, _| {}).await;
        let audio = seen.audio();
        let expected = ScriptedTts::default().samples_for(GREETING).div_ceil(320);
        assert_eq!(audio.len(), expected, "every frame of the greeting at {rate} Hz");
        let bytes = SampleRate(rate).samples_per_frame() * 2;
        assert!(audio.iter().all(|f| f.len == bytes), "{bytes} bytes each at {rate} Hz");
        finish(core);
    }
}

#[tokio::test(start_paused = true)]
async fn the_callers_packets_reach_the_session_through_the_jitter_buffer() {
    let question = ulaw_packets(&fixture("store_hours_16k.wav"));
    let mut core = CallCore::start(
        voxgate_pipeline::call::now(),
        parts(
            Codec::Pcmu,
            Arrival::Packets(JitterConfig::default()),
            SessionConfig::default(),
            vec![LlmScript::text("Sure.")],
        ),
    )
    .expect("PCMU");
    let seen = run(&mut core, 10_000, |core, now, tick| {
        // After a second of silence, the question: one packet a tick, in order.
        let n = tick.checked_sub(50).map(|n| n as usize);
        if let Some(payload) = n.and_then(|n| question.get(n)) {
            let seq = n.unwrap_or(0) as u16;
            let packet =
                RtpPacket { seq, timestamp: u32::from(seq) * 160, ssrc: 9, marker: seq == 0, payload };
            core.handle_packet(now, packet);
        }
    })
    .await;
    let caller_said = seen.actions.iter().any(|(_, a)| {
        matches!(a, Action::Transcript { speaker: Speaker::Caller, text, is_final: true } if text == "Press one for me.")
    });
    assert!(caller_said, "{:?}", seen.actions);
    let log = finish(core);
    let lines: Vec<&str> = log.transcript.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(lines[1..], ["Press one for me.", "Sure."]);
}

#[tokio::test(start_paused = true)]
async fn keys_the_agent_presses_go_as_telephone_events_on_the_media_clock() {
    let press =
        ToolCall { id: "call_1".into(), name: "send_dtmf".into(), arguments: r#"{"digits": "1"}"#.into() };
    let mut config = SessionConfig::default();
    config.turn.greeting = None;
    config.dtmf_tool = true;
    let speech = fixture("store_hours_16k.wav");
    let mut core = CallCore::start(
        voxgate_pipeline::call::now(),
        parts(
            Codec::PcmLe(SampleRate::HZ_16000),
            Arrival::InOrder,
            config,
            vec![LlmScript::Reply { text: String::new(), tool_calls: vec![press] }, LlmScript::text("Done.")],
        ),
    )
    .expect("PCM");
    let seen = run(&mut core, 8000, |core, now, tick| {
        let from = tick as usize * 320;
        let mut frame = [0i16; 320];
        if let Some(chunk) = speech.get(from..(from + 320).min(speech.len())) {
            frame[..chunk.len()].copy_from_slice(chunk);
        }
        let bytes: Vec<u8> = frame.iter().flat_map(|s| s.to_le_bytes()).collect();
        assert!(core.handle_audio(now, &bytes));
    })
    .await;
    let keys: Vec<&Sent> = seen.frames.iter().filter(|f| f.kind == MediaKind::TelephoneEvent).collect();
    // Five tone packets and three end packets, one a tick, all stamped
    // with the key's start; only the first is marked.
    assert_eq!(keys.len(), 8, "{keys:?}");
    assert!(keys.iter().all(|k| k.timestamp == keys[0].timestamp));
    assert_eq!(keys.iter().filter(|k| k.marker).count(), 1);
    assert!(keys[0].marker);
    let events: Vec<TelephoneEvent> =
        keys.iter().map(|k| TelephoneEvent::decode(&k.payload).expect("RFC 4733")).collect();
    assert!(events.iter().all(|e| e.event == 1));
    assert_eq!(events.iter().filter(|e| e.end).count(), 3);
    assert!(keys.windows(2).all(|w| w[1].at_ms == w[0].at_ms + 20));
    // The agent's answer after the keys starts a new talkspurt, later on the clock.
    let after: Vec<&Sent> = seen.audio().into_iter().filter(|f| f.at_ms > keys[7].at_ms).collect();
    assert!(after[0].marker && after[0].timestamp > keys[0].timestamp, "{:?}", after.first());
    assert!(!seen.actions.iter().any(|(_, a)| matches!(a, Action::Dtmf { .. })), "sent in the media");
}

#[tokio::test(start_paused = true)]
async fn without_telephone_events_the_keys_are_the_transports_to_send() {
    let press =
        ToolCall { id: "call_1".into(), name: "send_dtmf".into(), arguments: r#"{"digits": "9"}"#.into() };
    let mut config = SessionConfig::default();
    config.turn.greeting = None;
    config.dtmf_tool = true;
    let speech = fixture("store_hours_16k.wav");
    let mut p = parts(
        Codec::PcmLe(SampleRate::HZ_16000),
        Arrival::InOrder,
        config,
        vec![LlmScript::Reply { text: String::new(), tool_calls: vec![press] }],
    );
    p.telephone_events = false;
    let mut core = CallCore::start(voxgate_pipeline::call::now(), p).expect("PCM");
    let seen = run(&mut core, 6000, |core, now, tick| {
        let from = (tick as usize * 320).min(speech.len());
        core.handle_samples(now, &speech[from..(from + 320).min(speech.len())]);
    })
    .await;
    assert!(
        seen.actions.iter().any(|(_, a)| *a == Action::Dtmf { digits: "9".into() }),
        "{:?}",
        seen.actions
    );
    assert!(!seen.frames.iter().any(|f| f.kind == MediaKind::TelephoneEvent));
}

#[tokio::test(start_paused = true)]
async fn silence_from_the_caller_hangs_up_once_after_the_limit() {
    let mut p = parts(Codec::Pcmu, Arrival::Packets(JitterConfig::default()), greeting(), vec![]);
    p.no_media = Some(Duration::from_secs(2));
    let mut core = CallCore::start(voxgate_pipeline::call::now(), p).expect("PCMU");
    let silence = [0xFFu8; 160];
    let seen = run(&mut core, 10_000, |core, now, tick| {
        // A second of packets, then nothing.
        if tick < 50 {
            let seq = tick as u16;
            core.handle_packet(
                now,
                RtpPacket { seq, timestamp: u32::from(seq) * 160, ssrc: 1, marker: false, payload: &silence },
            );
        }
    })
    .await;
    let hangups: Vec<u64> =
        seen.actions.iter().filter(|(_, a)| *a == Action::HangUp).map(|(t, _)| *t).collect();
    assert_eq!(hangups.len(), 1, "{:?}", seen.actions);
    // The last packet came at 980 ms: the call ends just over 2 s later.
    assert!((2980..3100).contains(&hangups[0]), "{}", hangups[0]);
    assert_eq!(finish(core).end, EndReason::NoMedia);
}

#[tokio::test(start_paused = true)]
async fn the_transport_hanging_up_needs_no_hang_up_back_and_keeps_what_was_heard() {
    let mut core = CallCore::start(
        voxgate_pipeline::call::now(),
        parts(Codec::Opus, Arrival::Packets(JitterConfig::default()), greeting(), vec![]),
    )
    .expect("Opus");
    let seen = run(&mut core, 1000, |_, _, _| {}).await;
    let audio = seen.audio();
    assert!(!audio.is_empty() && audio.iter().all(|f| f.len > 0));
    // 48 kHz clock: 960 a frame.
    assert!(audio.windows(2).all(|w| w[1].timestamp == w[0].timestamp + 960));
    core.hang_up(voxgate_pipeline::call::now());
    assert!(core.is_ended());
    assert!(core.poll_output().is_none(), "nothing to do: the transport hung up");
    let log = finish(core);
    assert_eq!(log.end, EndReason::CallerHungUp);
    assert!(log.transcript[0].interrupted, "cut off mid-greeting");
}

#[tokio::test(start_paused = true)]
async fn in_order_audio_is_taken_a_frame_a_tick_whatever_the_message_sizes() {
    let speech = fixture("store_hours_16k.wav");
    let bytes: Vec<u8> = speech.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut config = SessionConfig::default();
    config.turn.greeting = None;
    let mut core = CallCore::start(
        voxgate_pipeline::call::now(),
        parts(Codec::PcmLe(SampleRate::HZ_16000), Arrival::InOrder, config, vec![LlmScript::text("Sure.")]),
    )
    .expect("PCM");
    // Messages of odd sizes (a byte short of a frame, then a frame and a byte),
    // 640 bytes a tick on average, as a client streaming in real time sends them.
    let mut sent = 0;
    let seen = run(&mut core, 8000, |core, now, tick| {
        let size = if tick % 2 == 0 { 639 } else { 641 };
        let end = (sent + size).min(bytes.len());
        assert!(core.handle_audio(now, &bytes[sent..end]));
        sent = end;
    })
    .await;
    assert!(
        seen.actions.iter().any(|(_, a)| matches!(a, Action::Transcript { speaker: Speaker::Caller, .. }))
    );
    let log = finish(core);
    assert_eq!(
        log.transcript.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(),
        ["Press one for me.", "Sure."]
    );
}

#[test]
fn opus_cannot_arrive_in_order() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
    let _guard = rt.enter();
    let p = parts(Codec::Opus, Arrival::InOrder, SessionConfig::default(), vec![]);
    assert!(CallCore::start(std::time::Instant::now(), p).is_err());
}

#[tokio::test(start_paused = true)]
async fn a_codec_change_keeps_the_stream_at_the_same_rate_and_starts_anew_at_another() {
    let mut core = CallCore::start(
        voxgate_pipeline::call::now(),
        parts(Codec::Pcmu, Arrival::Packets(JitterConfig::default()), greeting(), vec![]),
    )
    .expect("PCMU");
    let before = run(&mut core, 200, |_, _, _| {}).await.audio().last().map(|f| f.timestamp).expect("frames");
    // PCMA is 8 kHz too: the same stream, its clock going on.
    assert!(matches!(core.change_codec(Codec::Pcma, 7), Ok(false)));
    let pcma = run(&mut core, 100, |_, _, _| {}).await;
    let first = pcma.audio()[0];
    assert_eq!((first.timestamp, first.marker), (before + 160, false));
    assert_ne!(first.payload, ulaw_of(&first.payload), "A-law now");
    // Opus is 48 kHz: a new stream from the timestamp given, marked.
    assert!(matches!(core.change_codec(Codec::Opus, 7), Ok(true)));
    let opus = run(&mut core, 100, |_, _, _| {}).await;
    assert_eq!((opus.audio()[0].timestamp, opus.audio()[0].marker), (7, true));
}

#[tokio::test(start_paused = true)]
async fn g722_sends_16_khz_audio_on_an_8_khz_clock_and_a_change_to_it_is_a_new_stream() {
    let mut core = CallCore::start(
        voxgate_pipeline::call::now(),
        parts(Codec::G722, Arrival::Packets(JitterConfig::default()), greeting(), vec![]),
    )
    .expect("G.722");
    let seen = run(&mut core, 400, |_, _, _| {}).await;
    let audio = seen.audio();
    assert!(audio.len() > 5, "frames went out");
    // 320 samples in 160 bytes, 160 timestamp units apart (RFC 3551).
    assert!(audio.iter().all(|f| f.len == 160), "20 ms of G.722 each");
    assert!(audio.windows(2).all(|w| w[1].timestamp == w[0].timestamp + 160));
    // PCMU shares G.722's clock but not its sample rate: a new stream.
    assert!(matches!(core.change_codec(Codec::Pcmu, 9), Ok(true)));
    let pcmu = run(&mut core, 100, |_, _, _| {}).await;
    assert_eq!((pcmu.audio()[0].timestamp, pcmu.audio()[0].marker), (9, true));
}

#[tokio::test(start_paused = true)]
async fn the_callers_jitter_is_measured_on_its_codecs_rtp_clock() {
    // Steady packets, 20 ms apart: no jitter, whatever the clock (Opus 48 kHz, G.722 8 kHz).
    for (codec, step) in [(Codec::Opus, 960), (Codec::G722, 160)] {
        let mut core = CallCore::start(
            voxgate_pipeline::call::now(),
            parts(codec, Arrival::Packets(JitterConfig::default()), SessionConfig::default(), vec![]),
        )
        .expect("a codec");
        let mut encoder = codec.encoder().expect("an encoder");
        let silence = vec![0i16; codec.sample_rate().samples_per_frame()];
        let mut payload = [0u8; 1500];
        let len = encoder.encode(&silence, &mut payload).expect("encodes");
        run(&mut core, 2000, |core, now, tick| {
            let seq = tick as u16;
            let packet = RtpPacket {
                seq,
                timestamp: u32::from(seq) * step,
                ssrc: 9,
                marker: seq == 0,
                payload: &payload[..len],
            };
            core.handle_packet(now, packet);
        })
        .await;
        assert!(core.caller_jitter_ms() < 1.0, "{codec:?}: {} ms", core.caller_jitter_ms());
    }
}

/// The bytes re-encoded as µ-law after decoding as A-law: equal only if they were µ-law.
fn ulaw_of(alaw: &[u8]) -> Vec<u8> {
    use voxgate_codecs::g711::G711Law;
    let mut pcm = vec![0i16; alaw.len()];
    G711Law::Alaw.decode(alaw, &mut pcm).expect("decodes");
    let mut out = vec![0u8; alaw.len()];
    G711Law::Ulaw.encode(&pcm, &mut out).expect("encodes");
    out
}
