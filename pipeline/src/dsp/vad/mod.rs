//! Voice activity detection behind one trait, with two backends.
//!
//! - [`WebRtcVad`]: the WebRTC GMM detector (libfvad through `webrtc-vad`),
//!   no model, about a microsecond per frame; answers yes or no.
//! - [`SileroVad`]: the Silero neural detector through ONNX Runtime; better in
//!   noise, answers a probability. Used when its files are present.
//!
//! Both take 20 ms frames of 16 kHz mono audio, the canonical format inside a call.

#[cfg(feature = "onnx")]
mod silero;
mod webrtc;

use std::path::PathBuf;

#[cfg(feature = "onnx")]
pub use silero::{SileroModel, SileroVad};
pub use webrtc::{WebRtcMode, WebRtcVad};

#[cfg(feature = "onnx")]
use crate::onnx::OnnxError;

/// Samples in one 20 ms frame at 16 kHz.
pub const FRAME_SAMPLES: usize = 320;

/// A VAD refused a frame or failed to run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VadError {
    /// The frame is not 20 ms at 16 kHz.
    #[error("frame of {len} samples, {FRAME_SAMPLES} expected")]
    FrameSize { len: usize },
    /// The WebRTC detector rejected the frame.
    #[error("webrtc vad rejected the frame")]
    WebRtc,
    /// ONNX Runtime failed.
    #[cfg(feature = "onnx")]
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    /// Silero was asked for in a build without ONNX Runtime (the `onnx` feature).
    #[error("this build has no Silero VAD (built without the `onnx` feature)")]
    Unavailable,
    /// The model's output was not what Silero gives.
    #[error("unexpected model output: {what}")]
    ModelOutput { what: &'static str },
}

/// A voice activity detector over 20 ms frames at 16 kHz.
pub trait VoiceActivityDetector: Send {
    /// The probability (0.0..=1.0) that the frame holds speech.
    ///
    /// # Errors
    /// A frame of the wrong size, or the backend failing.
    fn process(&mut self, frame: &[i16]) -> Result<f32, VadError>;

    /// Forgets all state (a new stream).
    fn reset(&mut self);

    /// A short name for logs and metrics.
    fn name(&self) -> &'static str;
}

/// Which VAD to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VadKind {
    /// Silero when its model and ONNX Runtime are present, else WebRTC.
    #[default]
    Auto,
    /// Always the WebRTC detector.
    WebRtc,
    /// Always Silero (an error when its files are missing).
    Silero,
}

/// Where the VAD's files are and how it behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VadConfig {
    /// Backend choice.
    pub kind: VadKind,
    /// Aggressiveness of the WebRTC detector.
    pub webrtc_mode: WebRtcMode,
    /// `silero_vad.onnx`.
    pub silero_model: PathBuf,
    /// `libonnxruntime.so`.
    pub onnxruntime: PathBuf,
}

impl VadConfig {
    /// Defaults for a models folder laid out by `scripts/fetch-models.sh`.
    #[must_use]
    pub fn with_models_dir(models: &std::path::Path) -> Self {
        Self {
            kind: VadKind::Auto,
            webrtc_mode: WebRtcMode::Aggressive,
            silero_model: models.join("silero/silero_vad.onnx"),
            onnxruntime: models.join("onnxruntime/libonnxruntime.so"),
        }
    }
}

/// Builds the configured detector.
///
/// # Errors
/// Silero was asked for explicitly and cannot be loaded.
pub fn build(config: &VadConfig) -> Result<Box<dyn VoiceActivityDetector>, VadError> {
    let silero_present = config.silero_model.exists() && config.onnxruntime.exists();
    match config.kind {
        VadKind::WebRtc => Ok(Box::new(WebRtcVad::new(config.webrtc_mode))),
        VadKind::Silero => silero(config),
        VadKind::Auto if silero_present && cfg!(feature = "onnx") => silero(config),
        VadKind::Auto => Ok(Box::new(WebRtcVad::new(config.webrtc_mode))),
    }
}

#[cfg(feature = "onnx")]
fn silero(config: &VadConfig) -> Result<Box<dyn VoiceActivityDetector>, VadError> {
    Ok(Box::new(SileroVad::new(&config.onnxruntime, &config.silero_model)?))
}

#[cfg(not(feature = "onnx"))]
fn silero(_: &VadConfig) -> Result<Box<dyn VoiceActivityDetector>, VadError> {
    Err(VadError::Unavailable)
}
