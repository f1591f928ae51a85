//! The per-call conversation engine.
//!
//! # Layout
//! - [`call`]: the call core every transport drives: caller audio in
//!   (packets or an in-order stream) -> session -> the agent's encoded
//!   frames out, with their timestamps, and the transport's actions.
//!   Sans-IO, time passed in; [`call::CallClock`] is the async side.
//! - [`session`]: the conversation of one call: VAD and endpointing, the
//!   turn machine, reply workers, barge-in, the recording and call log.
//! - [`turn`]: the turn machine (who speaks, barge-in, false interruptions).
//! - [`providers`]: speech-to-text, language model and text-to-speech
//!   traits with local, cloud and scripted implementations.
//! - [`knowledge`]: an agent's knowledge, retrieved by embeddings.
//! - [`dsp`]: pure signal processing, time passed in.
//!   - [`dsp::jitter`]: the adaptive jitter buffer.
//!   - [`dsp::playout`]: jitter buffer -> decoder -> FEC / PLC / comfort noise.
//!   - [`dsp::conceal`]: fade-out and comfort noise for codecs without PLC.
//!   - [`dsp::vad`]: voice activity detection (WebRTC, Silero).
//!   - [`dsp::endpoint`]: speech-start / speech-end from VAD probabilities.
//!   - [`dsp::echo`], [`dsp::denoise`]: the agent's echo, and background
//!     noise, out of what the VAD hears.
//!   - [`dsp::amd`]: who answered a call we placed, a person or a machine
//!     (and its beep).
//! - [`metrics`]: the pipeline's Prometheus metrics.
//! - [`onnx`]: the process-wide ONNX Runtime, loaded from a shared library.
//! - [`timer`]: a sans-IO core's deadline as one reusable tokio timer.
//!
//! # Example
//!
//! A G.711 stream through the playout stage, with the simulated clock a
//! test would use:
//!
//! ```
//! use std::time::{Duration, Instant};
//! use voxgate_codecs::{G711Decoder, g711::G711Law};
//! use voxgate_pipeline::dsp::jitter::{JitterConfig, RtpPacket};
//! use voxgate_pipeline::dsp::playout::{AudioPlayout, FrameSource};
//!
//! let mut playout = AudioPlayout::new(JitterConfig::default(), Box::new(G711Decoder(G711Law::Ulaw)));
//! let t0 = Instant::now();
//! let payload = [0xFFu8; 160]; // µ-law silence
//! let mut out = [0i16; 160];
//! let mut sources = Vec::new();
//! for n in 0..10u16 {
//!     let now = t0 + Duration::from_millis(20 * u64::from(n));
//!     let packet = RtpPacket { seq: n, timestamp: 160 * u32::from(n), ssrc: 7, marker: n == 0, payload: &payload };
//!     playout.handle_packet(now, packet);
//!     sources.push(playout.poll_frame(now, &mut out).expect("one frame fits"));
//! }
//! // The first frames wait out the 60 ms start delay, then packets decode.
//! assert_eq!(sources[0], FrameSource::Idle);
//! assert_eq!(sources[9], FrameSource::Decoded);
//! ```

pub mod call;
pub mod dsp;
pub mod knowledge;
pub mod metrics;
#[cfg(feature = "onnx")]
pub mod onnx;
pub mod providers;
pub mod session;
pub mod timer;
pub mod turn;
