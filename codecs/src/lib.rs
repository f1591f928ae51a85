//! Voxgate's audio codecs: pure, synchronous, no tokio, no allocation per frame.
//!
//! # Layout
//! - [`g711`]: µ-law and A-law per ITU-T G.711 (RTP PCMU/PCMA).
//! - [`g722`]: G.722, 16 kHz wideband at 64 kbit/s (RTP clock 8000).
//! - [`opus`]: Opus through libopus, with packet-loss concealment and in-band FEC.
//! - [`ogg_opus`]: Opus files (Ogg, RFC 7845), such as WhatsApp voice notes, decoded whole.
//! - [`pcm`]: L16 (RFC 3551, network byte order) and sample-format helpers.
//! - [`resample`]: fixed 20 ms frame resampling between 8/16/24/48 kHz over `rubato`.
//! - [`wav`]: a streaming WAV recorder that survives `kill -9`.
//! - [`dtmf`]: RFC 4733 telephone-event payloads, and sending keys as them.
//! - [`Codec`]: a transport's audio format, with its [`Encoder`] and decoder.
//!
//! Encoders and decoders write into buffers the caller owns, and every
//! decoder turns bad input into a [`CodecError`] rather than a panic.
//!
//! ```
//! use voxgate_codecs::{g711::G711Law, SampleRate};
//!
//! let rate = SampleRate::HZ_8000;
//! let pcm = [0i16, 1000, -1000, 32000];
//! let mut wire = [0u8; 4];
//! let mut back = [0i16; 4];
//! G711Law::Ulaw.encode(&pcm, &mut wire)?;
//! G711Law::Ulaw.decode(&wire, &mut back)?;
//! assert_eq!(rate.samples_per_frame(), 160);
//! assert!((back[1] - 1000).abs() <= 32);
//! # Ok::<(), voxgate_codecs::CodecError>(())
//! ```

mod codec;
pub mod dtmf;
mod error;
pub mod g711;
pub mod g722;
pub mod ogg_opus;
pub mod opus;
pub mod pcm;
pub mod resample;
pub mod wav;

pub use codec::{Codec, Encoder, PcmLeDecoder};
pub use error::CodecError;

/// Duration of every audio frame inside Voxgate, in milliseconds.
pub const FRAME_MS: u32 = 20;

/// A sample rate in Hz. A newtype so a rate is never mixed up with a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SampleRate(pub u32);

impl SampleRate {
    /// Narrowband telephony (G.711).
    pub const HZ_8000: Self = Self(8_000);
    /// Wideband: the canonical rate inside a call.
    pub const HZ_16000: Self = Self(16_000);
    /// Common TTS output rate.
    pub const HZ_24000: Self = Self(24_000);
    /// Fullband: WebRTC Opus.
    pub const HZ_48000: Self = Self(48_000);

    /// Hz as a plain number.
    #[must_use]
    pub const fn hz(self) -> u32 {
        self.0
    }

    /// Samples in one [`FRAME_MS`] frame at this rate.
    #[must_use]
    pub const fn samples_per_frame(self) -> usize {
        (self.0 * FRAME_MS / 1000) as usize
    }

    /// Samples in `ms` milliseconds at this rate.
    #[must_use]
    pub const fn samples_in_ms(self, ms: u32) -> usize {
        (self.0 as u64 * ms as u64 / 1000) as usize
    }
}

impl std::fmt::Display for SampleRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A decoder for one RTP payload format, as the jitter buffer drives it.
pub trait AudioDecoder: Send {
    /// The rate this decoder produces.
    fn sample_rate(&self) -> SampleRate;

    /// Decodes one packet's payload into `out`; returns the samples written.
    ///
    /// # Errors
    /// Garbage, truncated or oversize payloads and a short `out`.
    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError>;

    /// Fills `out` with one frame of concealment for a lost packet.
    ///
    /// Returns `Ok(None)` when the codec has no packet-loss concealment of its
    /// own; the caller then fades out and plays comfort noise.
    ///
    /// # Errors
    /// A short `out`, or the codec's own failure.
    fn conceal(&mut self, out: &mut [i16]) -> Result<Option<usize>, CodecError>;

    /// Rebuilds a lost frame from the forward error correction carried by
    /// the packet after it. `Ok(None)` when the codec has no FEC.
    ///
    /// # Errors
    /// Garbage in `next_payload`, or a short `out`.
    fn recover(&mut self, next_payload: &[u8], out: &mut [i16]) -> Result<Option<usize>, CodecError> {
        let _ = (next_payload, out);
        Ok(None)
    }
}

/// G.711 as an [`AudioDecoder`]: 8 kHz, no concealment of its own.
#[derive(Debug, Clone, Copy)]
pub struct G711Decoder(pub g711::G711Law);

impl AudioDecoder for G711Decoder {
    fn sample_rate(&self) -> SampleRate {
        SampleRate::HZ_8000
    }

    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        // One packet of G.711 at 8 kHz is at most 120 ms in practice; refuse
        // anything larger than an Ethernet MTU as a sign of garbage.
        if payload.len() > pcm::MAX_PAYLOAD_BYTES {
            return Err(CodecError::Oversize { len: payload.len(), max: pcm::MAX_PAYLOAD_BYTES });
        }
        self.0.decode(payload, out)
    }

    fn conceal(&mut self, _out: &mut [i16]) -> Result<Option<usize>, CodecError> {
        Ok(None)
    }
}
