//! A call's audio format on the wire, whichever transport carries it: the
//! decoder and encoder it needs, built in one place.

use crate::g711::G711Law;
use crate::g722::{G722Decoder, G722Encoder};
use crate::opus::{OpusDecoder, OpusEncoder, OpusEncoderConfig};
use crate::{AudioDecoder, CodecError, G711Decoder, SampleRate};

/// An audio format a transport carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// G.711 µ-law, 8 kHz (RTP PCMU, Twilio Media Streams).
    Pcmu,
    /// G.711 A-law, 8 kHz (RTP PCMA).
    Pcma,
    /// G.722, 16 kHz audio on an 8 kHz RTP clock (RTP G722).
    G722,
    /// Opus, 48 kHz RTP clock (WebRTC, SIP).
    Opus,
    /// 16-bit little-endian PCM at a rate (plain websocket streams).
    PcmLe(SampleRate),
}

impl Codec {
    /// The rate of the audio it carries.
    #[must_use]
    pub fn sample_rate(self) -> SampleRate {
        match self {
            Self::Pcmu | Self::Pcma => SampleRate::HZ_8000,
            Self::G722 => SampleRate::HZ_16000,
            Self::Opus => SampleRate::HZ_48000,
            Self::PcmLe(rate) => rate,
        }
    }

    /// Its RTP clock rate, in Hz: the sample rate, but for G.722's 8000
    /// (RFC 3551) against its 16 kHz audio.
    #[must_use]
    pub fn clock_rate(self) -> u32 {
        match self {
            Self::G722 => crate::g722::RTP_CLOCK_HZ,
            other => other.sample_rate().hz(),
        }
    }

    /// RTP timestamp units in one 20 ms frame.
    #[must_use]
    pub fn clock_per_frame(self) -> u32 {
        self.clock_rate() / 50
    }

    /// A decoder of this codec's payloads.
    ///
    /// # Errors
    /// The codec cannot run at its rate.
    pub fn decoder(self) -> Result<Box<dyn AudioDecoder>, CodecError> {
        Ok(match self {
            Self::Pcmu => Box::new(G711Decoder(G711Law::Ulaw)),
            Self::Pcma => Box::new(G711Decoder(G711Law::Alaw)),
            Self::G722 => Box::new(G722Decoder::default()),
            Self::Opus => Box::new(OpusDecoder::new(SampleRate::HZ_48000)?),
            Self::PcmLe(rate) => Box::new(PcmLeDecoder(rate)),
        })
    }

    /// An encoder of this codec's payloads.
    ///
    /// # Errors
    /// The codec cannot run at its rate.
    pub fn encoder(self) -> Result<Encoder, CodecError> {
        Ok(Encoder(match self {
            Self::Pcmu => Inner::G711(G711Law::Ulaw),
            Self::Pcma => Inner::G711(G711Law::Alaw),
            Self::G722 => Inner::G722(Box::default()),
            Self::Opus => {
                Inner::Opus(Box::new(OpusEncoder::new(OpusEncoderConfig::voice(SampleRate::HZ_48000))?))
            }
            Self::PcmLe(_) => Inner::PcmLe,
        }))
    }
}

/// Encodes frames of one [`Codec`] into buffers the caller owns.
#[derive(Debug)]
pub struct Encoder(Inner);

#[derive(Debug)]
enum Inner {
    G711(G711Law),
    G722(Box<G722Encoder>),
    Opus(Box<OpusEncoder>),
    PcmLe,
}

impl Encoder {
    /// Encodes one frame of `pcm` (at the codec's rate) into `out`; returns the bytes written.
    ///
    /// # Errors
    /// A short `out`, or a frame of the wrong size for Opus.
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        match &mut self.0 {
            Inner::G711(law) => law.encode(pcm, out),
            Inner::G722(encoder) => encoder.encode(pcm, out),
            Inner::Opus(encoder) => encoder.encode(pcm, out),
            Inner::PcmLe => crate::pcm::le16_encode(pcm, out),
        }
    }
}

/// Little-endian 16-bit PCM as an [`AudioDecoder`]; no concealment of its own.
#[derive(Debug, Clone, Copy)]
pub struct PcmLeDecoder(pub SampleRate);

impl AudioDecoder for PcmLeDecoder {
    fn sample_rate(&self) -> SampleRate {
        self.0
    }

    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        if !payload.len().is_multiple_of(2) {
            return Err(CodecError::Truncated { len: payload.len(), unit: 2 });
        }
        let needed = payload.len() / 2;
        let capacity = out.len();
        let out = out.get_mut(..needed).ok_or(CodecError::OutputTooSmall { needed, capacity })?;
        for (sample, pair) in out.iter_mut().zip(payload.chunks_exact(2)) {
            *sample = i16::from_le_bytes([pair[0], pair[1]]);
        }
        Ok(needed)
    }

    fn conceal(&mut self, _out: &mut [i16]) -> Result<Option<usize>, CodecError> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_round_trips_a_frame_at_its_rate() -> Result<(), CodecError> {
        for codec in [Codec::Pcmu, Codec::Pcma, Codec::G722, Codec::Opus, Codec::PcmLe(SampleRate::HZ_16000)]
        {
            let n = codec.sample_rate().samples_per_frame();
            let pcm: Vec<i16> = (0..n).map(|i| ((i as f32 * 0.05).sin() * 8000.0) as i16).collect();
            let mut wire = [0u8; 1500];
            let len = codec.encoder()?.encode(&pcm, &mut wire)?;
            let mut back = vec![0i16; n];
            let got = codec.decoder()?.decode(&wire[..len], &mut back)?;
            assert_eq!(got, n, "{codec:?}");
            if codec == Codec::PcmLe(SampleRate::HZ_16000) {
                assert_eq!(back, pcm, "lossless");
                assert_eq!(wire[..2], pcm[0].to_le_bytes());
            }
        }
        Ok(())
    }

    #[test]
    fn g722_runs_a_16_khz_frame_on_an_8_khz_clock() {
        assert_eq!(
            (Codec::G722.sample_rate().samples_per_frame(), Codec::G722.clock_per_frame()),
            (320, 160)
        );
        assert_eq!((Codec::Pcmu.clock_per_frame(), Codec::Opus.clock_per_frame()), (160, 960));
    }

    #[test]
    fn odd_pcm_is_an_error() {
        let mut out = [0i16; 8];
        assert!(PcmLeDecoder(SampleRate::HZ_16000).decode(&[1, 2, 3], &mut out).is_err());
    }
}
