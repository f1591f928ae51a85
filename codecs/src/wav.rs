//! A streaming WAV recorder that a crash cannot ruin.
//!
//! Samples go to disk as they come, and the RIFF header is patched with the
//! current length after every half second of audio (through `hound`'s
//! `flush`), so a recorder killed with `kill -9` leaves a valid file that
//! plays to within half a second of the kill. Stereo recordings put the caller on the left and the agent on
//! the right.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use crate::{CodecError, SampleRate};

/// What the channels of a recording hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WavLayout {
    /// One channel (a mix, or one side).
    Mono,
    /// Caller on the left, agent on the right.
    CallerLeftAgentRight,
}

impl WavLayout {
    fn channels(self) -> u16 {
        match self {
            Self::Mono => 1,
            Self::CallerLeftAgentRight => 2,
        }
    }
}

/// Writes 16-bit PCM to a WAV file while a call runs.
pub struct WavRecorder {
    writer: hound::WavWriter<BufWriter<File>>,
    layout: WavLayout,
    rate: SampleRate,
    /// Sample frames (one per channel) written since the header was last patched.
    since_flush: usize,
    /// Patch the header after this many sample frames: half a second. (At
    /// a second, a call killed just before a patch lost a whole second.)
    flush_every: usize,
    frames_written: u64,
}

impl std::fmt::Debug for WavRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WavRecorder")
            .field("layout", &self.layout)
            .field("rate", &self.rate)
            .field("frames_written", &self.frames_written)
            .finish_non_exhaustive()
    }
}

impl WavRecorder {
    /// Creates (or truncates) `path` and writes a valid, empty WAV file there.
    ///
    /// # Errors
    /// The file cannot be created or written.
    pub fn create(path: &Path, rate: SampleRate, layout: WavLayout) -> Result<Self, CodecError> {
        let spec = hound::WavSpec {
            channels: layout.channels(),
            sample_rate: rate.hz(),
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let file = BufWriter::with_capacity(64 * 1024, File::create(path)?);
        let mut writer = hound::WavWriter::new(file, spec)?;
        writer.flush()?;
        Ok(Self {
            writer,
            layout,
            rate,
            since_flush: 0,
            flush_every: rate.hz() as usize / 2,
            frames_written: 0,
        })
    }

    /// The channel layout.
    #[must_use]
    pub fn layout(&self) -> WavLayout {
        self.layout
    }

    /// Audio written so far, in milliseconds.
    #[must_use]
    pub fn duration_ms(&self) -> u64 {
        self.frames_written * 1000 / u64::from(self.rate.hz())
    }

    /// Appends mono samples.
    ///
    /// # Errors
    /// The recorder is stereo, or writing failed.
    pub fn write_mono(&mut self, pcm: &[i16]) -> Result<(), CodecError> {
        if self.layout != WavLayout::Mono {
            return Err(CodecError::WrongLayout { layout: "stereo" });
        }
        let mut w = self.writer.get_i16_writer(pcm.len() as u32);
        for &s in pcm {
            w.write_sample(s);
        }
        w.flush()?;
        self.advance(pcm.len())
    }

    /// Appends one stretch of both sides, caller left and agent right.
    ///
    /// # Errors
    /// The sides differ in length, the recorder is mono, or writing failed.
    pub fn write_stereo(&mut self, caller: &[i16], agent: &[i16]) -> Result<(), CodecError> {
        if self.layout != WavLayout::CallerLeftAgentRight {
            return Err(CodecError::WrongLayout { layout: "mono" });
        }
        if caller.len() != agent.len() {
            return Err(CodecError::FrameSize { len: agent.len(), expected: caller.len() });
        }
        let mut w = self.writer.get_i16_writer(2 * caller.len() as u32);
        for (&l, &r) in caller.iter().zip(agent) {
            w.write_sample(l);
            w.write_sample(r);
        }
        w.flush()?;
        self.advance(caller.len())
    }

    fn advance(&mut self, frames: usize) -> Result<(), CodecError> {
        self.frames_written += frames as u64;
        self.since_flush += frames;
        if self.since_flush >= self.flush_every {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes buffered samples and patches the header now.
    ///
    /// # Errors
    /// Writing failed.
    pub fn flush(&mut self) -> Result<(), CodecError> {
        self.writer.flush()?;
        self.since_flush = 0;
        Ok(())
    }

    /// Writes the final header and closes the file.
    ///
    /// # Errors
    /// Writing failed.
    pub fn finish(self) -> Result<(), CodecError> {
        self.writer.finalize()?;
        Ok(())
    }
}

/// What [`repair_header`] found in a recording left by a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repaired {
    /// Bytes of whole sample frames now in the `data` chunk.
    pub data_bytes: u32,
    /// Their duration.
    pub duration_ms: u64,
    /// The header said less than the file holds (it was patched).
    pub patched: bool,
}

/// Reads a RIFF/WAVE header: the offset of the `data` chunk's size field,
/// and the format's sample rate and block align. Pure, on the first bytes
/// of a file (a malformed or hostile header is an error, never a panic).
///
/// # Errors
/// Not a PCM WAV header, or no `data` chunk within `head`.
pub fn parse_header(head: &[u8]) -> Result<(usize, u32, u16), CodecError> {
    let bad = |what: &'static str| CodecError::Wav(hound::Error::FormatError(what));
    let u32_at = |i: usize| head.get(i..i + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let u16_at = |i: usize| head.get(i..i + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    if head.get(0..4) != Some(b"RIFF") || head.get(8..12) != Some(b"WAVE") {
        return Err(bad("no RIFF/WAVE"));
    }
    let (mut at, mut format) = (12usize, None);
    while let (Some(id), Some(size)) = (head.get(at..at + 4), u32_at(at + 4)) {
        match id {
            b"fmt " => {
                let (Some(rate), Some(align)) = (u32_at(at + 12), u16_at(at + 20)) else {
                    return Err(bad("short fmt chunk"));
                };
                if rate == 0 || align == 0 {
                    return Err(bad("zero rate or block align"));
                }
                format = Some((rate, align));
            }
            b"data" => {
                let (rate, align) = format.ok_or_else(|| bad("data before fmt"))?;
                return Ok((at + 4, rate, align));
            }
            _ => {}
        }
        // Chunks are padded to an even size.
        at = at
            .checked_add(8)
            .and_then(|a| a.checked_add(size as usize + (size as usize & 1)))
            .ok_or_else(|| bad("chunk size"))?;
    }
    Err(bad("no data chunk"))
}

/// Makes a recording left by a crash (`kill -9`, power cut) whole: the
/// header is patched to cover every complete sample frame in the file, not
/// only those of the last one-second patch. What the recorder still held
/// in memory (under a second) is lost.
///
/// # Errors
/// The file cannot be read or written, or is not a WAV recording.
pub fn repair_header(path: &Path) -> Result<Repaired, CodecError> {
    use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
    let mut file = std::fs::OpenOptions::new().read(true).write(true).open(path)?;
    let len = file.metadata()?.len();
    let mut head = vec![0u8; 4096.min(len as usize)];
    file.read_exact(&mut head)?;
    let (size_at, rate, align) = parse_header(&head)?;
    let data_start = size_at as u64 + 4;
    let whole = len.saturating_sub(data_start) / u64::from(align) * u64::from(align);
    let data_bytes = u32::try_from(whole)
        .map_err(|_| CodecError::Wav(hound::Error::FormatError("longer than WAV allows")))?;
    let said = u32::from_le_bytes([head[size_at], head[size_at + 1], head[size_at + 2], head[size_at + 3]]);
    let patched = said != data_bytes;
    if patched {
        file.seek(SeekFrom::Start(size_at as u64))?;
        file.write_all(&data_bytes.to_le_bytes())?;
        let riff = u32::try_from(data_start - 8 + whole).unwrap_or(u32::MAX);
        file.seek(SeekFrom::Start(4))?;
        file.write_all(&riff.to_le_bytes())?;
        // Bytes of a partial frame at the end go.
        file.set_len(data_start + whole)?;
        file.sync_all()?;
    }
    let frames = u64::from(data_bytes) / u64::from(align);
    Ok(Repaired { data_bytes, duration_ms: frames * 1000 / u64::from(rate), patched })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recording_killed_mid_call_is_repaired_to_its_last_whole_frame() -> Result<(), CodecError> {
        let path = temp_path("killed");
        let mut rec = WavRecorder::create(&path, SampleRate::HZ_16000, WavLayout::CallerLeftAgentRight)?;
        // 2.3 s: the header was last patched at 2 s.
        for _ in 0..115 {
            rec.write_stereo(&[100; 320], &[-100; 320])?;
        }
        std::mem::forget(rec); // killed: no finish, no drop, its buffer lost
        // What its buffer had written out past the last patch: half a
        // second, and half a sample frame.
        std::fs::OpenOptions::new().append(true).open(&path).and_then(|mut f| {
            use std::io::Write as _;
            f.write_all(&[7; 8000 * 4 + 2])
        })?;
        let before = hound::WavReader::open(&path)?.duration();
        assert_eq!(before, 32_000, "the last patch said 2 s");
        let r = repair_header(&path)?;
        assert_eq!((r.duration_ms, r.patched), (2500, true));
        let wav = hound::WavReader::open(&path)?;
        assert_eq!(wav.duration(), 40_000);
        assert_eq!(wav.into_samples::<i16>().count(), 80_000);
        // Whole already: left alone.
        assert!(!repair_header(&path)?.patched);
        std::fs::remove_file(&path)?;
        Ok(())
    }

    #[test]
    fn headers_that_are_not_wav_are_refused() {
        for bytes in [
            &b""[..],
            b"RIFF\0\0\0\0WAVE",
            b"RIFF\0\0\0\0WAVEdata\0\0\0\0",
            b"RIFF\xff\xff\xff\xffWAVEfmt \xff\xff\xff\xff",
        ] {
            assert!(parse_header(bytes).is_err(), "{bytes:?}");
        }
    }

    fn temp_path(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("voxgate-wav-{}-{name}.wav", std::process::id()))
    }

    #[test]
    fn stereo_puts_caller_left_and_agent_right() -> Result<(), CodecError> {
        let path = temp_path("stereo");
        let mut rec = WavRecorder::create(&path, SampleRate::HZ_16000, WavLayout::CallerLeftAgentRight)?;
        for _ in 0..60 {
            rec.write_stereo(&[100; 320], &[-200; 320])?;
        }
        assert_eq!(rec.duration_ms(), 1200);
        rec.finish()?;
        let mut reader = hound::WavReader::open(&path)?;
        assert_eq!(reader.spec().channels, 2);
        let samples: Vec<i16> = reader.samples::<i16>().collect::<Result<_, _>>()?;
        assert_eq!(samples.len(), 2 * 60 * 320);
        assert!(samples.chunks(2).all(|lr| lr == [100, -200]));
        std::fs::remove_file(path)?;
        Ok(())
    }

    #[test]
    fn header_is_patched_each_half_second_without_finish() -> Result<(), CodecError> {
        let path = temp_path("unfinished");
        let mut rec = WavRecorder::create(&path, SampleRate::HZ_8000, WavLayout::Mono)?;
        for _ in 0..40 {
            rec.write_mono(&[7; 160])?;
        }
        // Read while the recorder is still open, 0.8 s in: the header says 0.5 s.
        let reader = hound::WavReader::open(&path)?;
        assert_eq!(reader.duration(), 4000);
        drop(rec);
        std::fs::remove_file(path)?;
        Ok(())
    }

    #[test]
    fn mismatched_sides_are_an_error() -> Result<(), CodecError> {
        let path = temp_path("mismatch");
        let mut rec = WavRecorder::create(&path, SampleRate::HZ_8000, WavLayout::CallerLeftAgentRight)?;
        assert!(matches!(rec.write_stereo(&[0; 160], &[0; 159]), Err(CodecError::FrameSize { .. })));
        assert!(matches!(rec.write_mono(&[0; 160]), Err(CodecError::WrongLayout { .. })));
        drop(rec);
        std::fs::remove_file(path)?;
        Ok(())
    }
}
