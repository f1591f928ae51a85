//! A streaming WAV recorder that a crash cannot ruin.
//!
//! Samples go to disk as they come, and the RIFF header is patched with the
//! current length after every second of audio (through `hound`'s `flush`), so
//! a recorder killed with `kill -9` leaves a valid file that plays up to the
//! last second. Stereo recordings put the caller on the left and the agent on
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
    /// Patch the header after this many sample frames: one second.
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
        Ok(Self { writer, layout, rate, since_flush: 0, flush_every: rate.hz() as usize, frames_written: 0 })
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn header_is_patched_after_each_second_without_finish() -> Result<(), CodecError> {
        let path = temp_path("unfinished");
        let mut rec = WavRecorder::create(&path, SampleRate::HZ_8000, WavLayout::Mono)?;
        for _ in 0..60 {
            rec.write_mono(&[7; 160])?;
        }
        // Read while the recorder is still open: the header says 1 s at least.
        let reader = hound::WavReader::open(&path)?;
        assert!(reader.duration() >= 8000, "duration {}", reader.duration());
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
