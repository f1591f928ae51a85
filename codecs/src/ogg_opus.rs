//! Opus in an Ogg file (RFC 7845), as WhatsApp voice notes and most voice
//! recorders write it: the pages demuxed with the `ogg` crate (a
//! maintained, pure-Rust demuxer), each packet decoded by libopus at the
//! rate asked for (mixed down to mono), the encoder's pre-skip dropped.

use std::io::Cursor;

use crate::opus::OpusDecoder;
use crate::{AudioDecoder, CodecError, SampleRate};

/// Opus packets hold at most 120 ms.
const MAX_PACKET_MS: usize = 120;

/// The audio of Ogg Opus file `file`, mono at `rate` (8, 12, 16, 24 or
/// 48 kHz), at most `max_seconds` of it.
///
/// # Errors
/// Not an Ogg Opus file (a bad page, no `OpusHead`), a packet libopus
/// refuses, or more than `max_seconds` of audio.
pub fn decode(file: &[u8], rate: SampleRate, max_seconds: u32) -> Result<Vec<i16>, CodecError> {
    let not_opus = |reason: &'static str| CodecError::Container { reason };
    let mut reader = ogg::PacketReader::new(Cursor::new(file));
    let head =
        reader.read_packet().map_err(|_| not_opus("not an Ogg file"))?.ok_or(not_opus("an empty file"))?;
    let serial = head.stream_serial();
    // OpusHead: magic, version 1, channels, pre-skip (48 kHz samples, LE), ... (RFC 7845 5.1).
    if head.data.len() < 19 || &head.data[..8] != b"OpusHead" || head.data[8] & 0xf0 != 0 {
        return Err(not_opus("no OpusHead: not Opus"));
    }
    let pre_skip = usize::from(u16::from_le_bytes([head.data[10], head.data[11]]));
    let mut decoder = OpusDecoder::new(rate)?;
    let per_ms = rate.hz() as usize / 1000;
    let max = max_seconds as usize * 1000 * per_ms;
    let mut frame = vec![0i16; MAX_PACKET_MS * per_ms];
    let mut pcm = Vec::new();
    let mut tags_seen = false;
    while let Some(packet) = reader.read_packet().map_err(|_| not_opus("a damaged Ogg page"))? {
        // Another logical stream (e.g. a video track) is not ours.
        if packet.stream_serial() != serial {
            continue;
        }
        if !tags_seen {
            // OpusTags comes second: comments, not audio.
            tags_seen = true;
            if packet.data.starts_with(b"OpusTags") {
                continue;
            }
        }
        if packet.data.is_empty() {
            continue;
        }
        let n = decoder.decode(&packet.data, &mut frame)?;
        if pcm.len() + n > max {
            return Err(CodecError::TooLong { seconds: max_seconds });
        }
        pcm.extend_from_slice(&frame[..n]);
    }
    let skip = (pre_skip * rate.hz() as usize / 48_000).min(pcm.len());
    pcm.drain(..skip);
    Ok(pcm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::opus::{OpusEncoder, OpusEncoderConfig};

    /// An Ogg Opus file of `pcm` (16 kHz mono), written with the ogg crate's writer.
    fn ogg_opus(pcm: &[i16], pre_skip: u16) -> Vec<u8> {
        let mut file = Vec::new();
        let mut writer = ogg::PacketWriter::new(&mut file);
        let mut head = b"OpusHead".to_vec();
        head.extend_from_slice(&[1, 1]);
        head.extend_from_slice(&pre_skip.to_le_bytes());
        head.extend_from_slice(&16_000u32.to_le_bytes());
        head.extend_from_slice(&[0, 0, 0]);
        writer.write_packet(head, 7, ogg::PacketWriteEndInfo::EndPage, 0).expect("head");
        let tags = b"OpusTags\x07\x00\x00\x00voxgate\x00\x00\x00\x00".to_vec();
        writer.write_packet(tags, 7, ogg::PacketWriteEndInfo::EndPage, 0).expect("tags");
        let mut encoder = OpusEncoder::new(OpusEncoderConfig::voice(SampleRate::HZ_16000)).expect("encoder");
        let frames: Vec<&[i16]> = pcm.chunks_exact(320).collect();
        let mut out = [0u8; 1500];
        for (i, f) in frames.iter().enumerate() {
            let n = encoder.encode(f, &mut out).expect("encode");
            let end = if i + 1 == frames.len() {
                ogg::PacketWriteEndInfo::EndStream
            } else {
                ogg::PacketWriteEndInfo::NormalPacket
            };
            writer.write_packet(out[..n].to_vec(), 7, end, (i as u64 + 1) * 960).expect("packet");
        }
        file
    }

    fn tone(samples: usize) -> Vec<i16> {
        (0..samples)
            .map(|i| ((i as f32 * 440.0 * std::f32::consts::TAU / 16_000.0).sin() * 8000.0) as i16)
            .collect()
    }

    #[test]
    fn a_voice_note_decodes_to_its_length_at_the_rate_asked() {
        let file = ogg_opus(&tone(16_000), 312);
        let pcm = decode(&file, SampleRate::HZ_16000, 60).expect("decodes");
        // One second, less the pre-skip (312 at 48 kHz = 104 at 16 kHz).
        assert_eq!(pcm.len(), 16_000 - 104);
        let energy = pcm.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / pcm.len() as f64;
        assert!(energy.sqrt() > 3000.0, "the tone is lost: rms {}", energy.sqrt());
        let at_8k = decode(&file, SampleRate::HZ_8000, 60).expect("decodes at 8 kHz");
        assert_eq!(at_8k.len(), 8_000 - 52);
    }

    #[test]
    fn what_is_not_ogg_opus_or_too_long_is_refused() {
        let file = ogg_opus(&tone(32_000), 0);
        assert!(matches!(decode(&file, SampleRate::HZ_16000, 1), Err(CodecError::TooLong { seconds: 1 })));
        assert!(matches!(
            decode(b"RIFF....WAVE", SampleRate::HZ_16000, 60),
            Err(CodecError::Container { .. })
        ));
        assert!(matches!(decode(&[], SampleRate::HZ_16000, 60), Err(CodecError::Container { .. })));
        let mut vorbis = file.clone();
        let at = vorbis.windows(8).position(|w| w == b"OpusHead").expect("a head");
        vorbis[at..at + 8].copy_from_slice(b"OpusHeaX");
        assert!(decode(&vorbis, SampleRate::HZ_16000, 60).is_err());
        // Cut anywhere, it fails cleanly or decodes what is whole.
        for cut in (0..file.len()).step_by(97) {
            let _ = decode(&file[..cut], SampleRate::HZ_16000, 60);
        }
    }
}
