//! Smart Turn v3.2: a learned end of turn.
//!
//! Silence alone cannot tell "What time do you open on Saturday?" (done)
//! from "My number is five five five, (pause) one two..." (not done). Smart
//! Turn reads the caller's last 8 s of audio (intonation, the words' shape)
//! and says how likely the turn is complete. The endpointer asks it at each
//! pause, and waits a short silence when it says complete, a long one when
//! the caller is mid-thought.
//!
//! Sessions are pooled as Silero's are ([`onnx::SessionPool`]).
//!
//! Input `input_features`, f32 `[1, 80, 800]`: the last 8 s at 16 kHz,
//! zero-padded at the front, normalised to zero mean and unit variance, then
//! Whisper's log-mel ([`LogMel`]; 800 frames, the 801st dropped). Output:
//! one probability, complete above 0.5. (As pipecat's local analyser feeds
//! it; the model ships in the `pipecat-ai` wheel, BSD-2-Clause.)

#[cfg(feature = "onnx")]
use std::path::Path;

#[cfg(feature = "onnx")]
use ort::value::TensorRef;

#[cfg(feature = "onnx")]
use super::log_mel::{HOP, LogMel, N_MELS};
#[cfg(feature = "onnx")]
use crate::onnx::{self, OnnxError};

/// Whether a pause ends the caller's turn, read from their last seconds of
/// audio by a learned model ([`SmartTurnModel`] with the `onnx` feature).
pub trait TurnDetector: Send + Sync + std::fmt::Debug {
    /// How likely the turn is complete (16 kHz audio so far; the model reads
    /// the end). Tens of milliseconds of a core: called from a blocking
    /// thread. `None`: no verdict (silence decides).
    fn complete(&self, audio: &[i16]) -> Option<f32>;
}

/// Seconds of audio the model reads.
pub const WINDOW_SECONDS: usize = 8;
/// Samples it reads.
pub const WINDOW_SAMPLES: usize = WINDOW_SECONDS * 16_000;
#[cfg(feature = "onnx")]
const FRAMES: usize = WINDOW_SAMPLES / HOP;
/// Above this the turn is complete.
pub const COMPLETE: f32 = 0.5;

/// The loaded model: a session per core, like Silero's.
#[cfg(feature = "onnx")]
#[derive(Clone)]
pub struct SmartTurnModel {
    sessions: onnx::SessionPool,
    mel: LogMel,
}

#[cfg(feature = "onnx")]
impl std::fmt::Debug for SmartTurnModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SmartTurnModel")
    }
}

/// The model's input for `audio` (16 kHz): its last 8 s, zero-padded at the
/// front, normalised, as log-mel features `[N_MELS][800]`.
#[cfg(feature = "onnx")]
#[must_use]
pub fn features(mel: &LogMel, audio: &[i16]) -> Vec<f32> {
    let tail = &audio[audio.len().saturating_sub(WINDOW_SAMPLES)..];
    let mut x = vec![0f32; WINDOW_SAMPLES];
    for (d, &s) in x[WINDOW_SAMPLES - tail.len()..].iter_mut().zip(tail) {
        *d = f32::from(s) / 32768.0;
    }
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = x.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / n;
    let scale = 1.0 / (var + 1e-7).sqrt();
    for v in &mut x {
        *v = ((f64::from(*v) - mean) * scale) as f32;
    }
    mel.compute(&x, FRAMES)
}

#[cfg(feature = "onnx")]
impl SmartTurnModel {
    /// Loads the model with the ONNX Runtime library at `onnxruntime`.
    ///
    /// # Errors
    /// Either file is missing or fails to load.
    pub fn load(onnxruntime: &Path, model: &Path) -> Result<Self, OnnxError> {
        if !model.exists() {
            return Err(OnnxError::Runtime {
                message: format!("smart turn model not found at {}", model.display()),
            });
        }
        Ok(Self { sessions: onnx::SessionPool::load(onnxruntime, model)?, mel: LogMel::new() })
    }

    /// How likely the caller's turn is complete, from their audio so far
    /// (16 kHz; the last 8 s are read). Tens of milliseconds of a core: call
    /// from a blocking thread, never from the media tick.
    ///
    /// # Errors
    /// Inference failed.
    pub fn predict(&self, audio: &[i16]) -> Result<f32, OnnxError> {
        let input = features(&self.mel, audio);
        let input = TensorRef::from_array_view(([1usize, N_MELS, FRAMES], &input[..]))?;
        let mut session = self.sessions.get();
        let outputs = session.run(ort::inputs!["input_features" => input])?;
        let (_, p) = outputs[0].try_extract_tensor::<f32>()?;
        p.first().copied().ok_or(OnnxError::Runtime { message: "smart turn gave no output".into() })
    }
}

#[cfg(feature = "onnx")]
impl TurnDetector for SmartTurnModel {
    fn complete(&self, audio: &[i16]) -> Option<f32> {
        // A failed inference is no verdict: silence decides, as without the model.
        self.predict(audio).ok()
    }
}

#[cfg(all(test, feature = "onnx"))]
mod tests {
    use super::*;
    use crate::dsp::log_mel::RATE;

    #[test]
    fn features_read_the_last_eight_seconds_padded_at_the_front() {
        let mel = LogMel::new();
        // One second of tone: the first seven seconds of the window are padding.
        let tone: Vec<i16> = (0..RATE)
            .map(|i| (8000.0 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / RATE as f32).sin()) as i16)
            .collect();
        let f = features(&mel, &tone);
        assert_eq!(f.len(), N_MELS * FRAMES);
        let loudest = |t: usize| (0..N_MELS).map(|m| f[m * FRAMES + t]).fold(f32::NEG_INFINITY, f32::max);
        assert!(
            loudest(750) > loudest(100) + 1.0,
            "the tone is at the end: {} vs {}",
            loudest(750),
            loudest(100)
        );
        // Longer audio: only its last 8 s count, so a loud start is gone.
        let mut long = vec![20_000i16; 3 * RATE];
        long.extend(std::iter::repeat_n(0, WINDOW_SAMPLES));
        let f = features(&mel, &long);
        let first = (0..N_MELS).map(|m| f[m * FRAMES]).sum::<f32>();
        let last = (0..N_MELS).map(|m| f[m * FRAMES + FRAMES - 1]).sum::<f32>();
        assert!((first - last).abs() < 1e-3, "all silence: {first} vs {last}");
    }
}
