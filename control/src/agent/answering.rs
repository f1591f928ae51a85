//! Answering machines on the calls an agent (or a campaign) places: off,
//! hang up on them, or leave a message after the beep (spoken by the
//! agent's voice, or a recording). See `voxgate_pipeline::dsp::amd`.

use std::sync::Arc;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use voxgate_codecs::SampleRate;
use voxgate_codecs::resample::FrameResampler;
use voxgate_pipeline::dsp::amd::AmdConfig;
use voxgate_pipeline::session::{AnsweringMachine, OnMachine, Voicemail};

use super::spec::SpecError;
pub use crate::config::OnMachineChoice;

/// A recording's WAV, at most this many bytes (about 60 s at 16 kHz).
const MAX_RECORDING_BYTES: usize = 2 * 1024 * 1024;

/// Answering-machine detection on the calls it places. With detection on,
/// the agent listens first: a short "Hello?" then silence is a person (who
/// is greeted), a long greeting, a record tone or a machine's words
/// ("leave a message") a machine. The verdict and its evidence are on the
/// call (`amd`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AnsweringMachineSpec {
    pub on_machine: OnMachineChoice,
    /// The message (1 to 1000 characters with `leave_message`): spoken by
    /// the agent's voice, or what the recording says (for the transcript).
    pub message: String,
    /// A recording to play instead of the voice: a WAV file (16-bit PCM,
    /// mono, 8, 16, 24 or 48 kHz) in base64, at most 2 MiB.
    pub recording_wav: String,
    /// The longest wait for a verdict, 2000 to 10000 ms (then `unknown`,
    /// and the agent greets).
    #[schema(minimum = 2000, maximum = 10_000)]
    pub max_detection_ms: u32,
}

impl Default for AnsweringMachineSpec {
    fn default() -> Self {
        Self {
            on_machine: OnMachineChoice::Off,
            message: String::new(),
            recording_wav: String::new(),
            max_detection_ms: AmdConfig::default().max_analysis_ms,
        }
    }
}

fn refuse(field: &str, name: &str, reason: impl Into<String>) -> SpecError {
    SpecError { field: format!("{field}.{name}"), reason: reason.into() }
}

impl AnsweringMachineSpec {
    /// Checks it, as `field`.
    ///
    /// # Errors
    /// What is wrong with it.
    pub fn validate(&self, field: &str) -> Result<(), SpecError> {
        if !(2000..=10_000).contains(&self.max_detection_ms) {
            return Err(refuse(field, "max_detection_ms", "must be 2000 to 10000"));
        }
        let n = self.message.chars().count();
        if n > 1000 {
            return Err(refuse(field, "message", "at most 1000 characters"));
        }
        if self.on_machine == OnMachineChoice::LeaveMessage && self.message.trim().is_empty() {
            return Err(refuse(field, "message", "leave_message needs the message"));
        }
        if !self.recording_wav.is_empty() {
            self.recording(field)?;
        }
        Ok(())
    }

    /// What a call's session does with it; `None` when off.
    ///
    /// # Errors
    /// The recording does not decode.
    pub fn to_session(&self) -> Result<Option<AnsweringMachine>, SpecError> {
        let on_machine = match self.on_machine {
            OnMachineChoice::Off => return Ok(None),
            OnMachineChoice::HangUp => OnMachine::HangUp,
            OnMachineChoice::LeaveMessage => OnMachine::LeaveMessage(Voicemail {
                text: self.message.trim().to_owned(),
                recording: if self.recording_wav.is_empty() {
                    None
                } else {
                    Some(self.recording("answering_machine")?)
                },
            }),
        };
        let detector = AmdConfig { max_analysis_ms: self.max_detection_ms, ..AmdConfig::default() };
        Ok(Some(AnsweringMachine { detector, on_machine }))
    }

    /// The recording, at 16 kHz.
    fn recording(&self, field: &str) -> Result<Arc<[i16]>, SpecError> {
        let bad = |reason: String| refuse(field, "recording_wav", reason);
        if self.recording_wav.len() > MAX_RECORDING_BYTES * 4 / 3 + 4 {
            return Err(bad("at most 2 MiB of WAV".into()));
        }
        let wav = base64::engine::general_purpose::STANDARD
            .decode(self.recording_wav.trim())
            .map_err(|e| bad(format!("not base64: {e}")))?;
        let reader =
            hound::WavReader::new(std::io::Cursor::new(wav)).map_err(|e| bad(format!("not a WAV: {e}")))?;
        let spec = reader.spec();
        if spec.channels != 1 || spec.bits_per_sample != 16 || spec.sample_format != hound::SampleFormat::Int
        {
            return Err(bad("must be 16-bit PCM, mono".into()));
        }
        let rate = SampleRate(spec.sample_rate);
        let mut resampler = FrameResampler::new(rate, SampleRate::HZ_16000)
            .map_err(|_| bad(format!("{} Hz is not one of 8, 16, 24 or 48 kHz", spec.sample_rate)))?;
        let samples: Vec<i16> =
            reader.into_samples::<i16>().collect::<Result<_, _>>().map_err(|e| bad(e.to_string()))?;
        if samples.is_empty() {
            return Err(bad("holds no audio".into()));
        }
        let per_frame = rate.samples_per_frame();
        let mut padded = samples;
        padded.resize(padded.len().div_ceil(per_frame) * per_frame, 0);
        let mut out = Vec::with_capacity(padded.len() * 16_000 / spec.sample_rate as usize);
        let mut frame = [0i16; 320];
        for chunk in padded.chunks_exact(per_frame) {
            resampler.process(chunk, &mut frame).map_err(|e| bad(e.to_string()))?;
            out.extend_from_slice(&frame);
        }
        Ok(out.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(rate: u32, samples: &[i16]) -> String {
        let mut bytes = std::io::Cursor::new(Vec::new());
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::new(&mut bytes, spec).unwrap();
        for s in samples {
            w.write_sample(*s).unwrap();
        }
        w.finalize().unwrap();
        base64::engine::general_purpose::STANDARD.encode(bytes.into_inner())
    }

    #[test]
    fn off_by_default_and_a_message_is_needed_to_leave_one() {
        let spec = AnsweringMachineSpec::default();
        assert!(spec.validate("answering_machine").is_ok());
        assert!(spec.to_session().unwrap().is_none());
        let leave = AnsweringMachineSpec { on_machine: OnMachineChoice::LeaveMessage, ..spec.clone() };
        assert_eq!(leave.validate("answering_machine").unwrap_err().field, "answering_machine.message");
        let slow = AnsweringMachineSpec { max_detection_ms: 20_000, ..spec };
        assert_eq!(slow.validate("x").unwrap_err().field, "x.max_detection_ms");
    }

    #[test]
    fn a_recording_is_read_at_16_khz() {
        let one_second_at_8k: Vec<i16> = (0..8000).map(|i| ((i % 40) * 100) as i16).collect();
        let spec = AnsweringMachineSpec {
            on_machine: OnMachineChoice::LeaveMessage,
            message: "Your order is ready.".into(),
            recording_wav: wav(8000, &one_second_at_8k),
            max_detection_ms: 4000,
        };
        spec.validate("answering_machine").unwrap();
        let Some(AnsweringMachine { detector, on_machine: OnMachine::LeaveMessage(v) }) =
            spec.to_session().unwrap()
        else {
            panic!("not a message")
        };
        assert_eq!(detector.max_analysis_ms, 4000);
        assert_eq!(v.text, "Your order is ready.");
        assert_eq!(v.recording.map(|r| r.len()), Some(16_000));
        for bad in [
            "not base64!",
            &wav(11_025, &[1; 441]),
            &base64::engine::general_purpose::STANDARD.encode(b"RIFF"),
        ] {
            let spec = AnsweringMachineSpec { recording_wav: bad.to_owned(), ..spec.clone() };
            assert_eq!(spec.validate("a").unwrap_err().field, "a.recording_wav", "{bad:.20}");
        }
    }
}
