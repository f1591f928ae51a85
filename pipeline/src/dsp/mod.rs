//! Pure signal processing: jitter buffer, concealment, echo cancellation,
//! noise suppression, VAD, endpointing, answering-machine detection, and
//! the tune a caller on hold hears.
pub mod amd;
pub mod conceal;
pub mod denoise;
pub mod echo;
pub mod endpoint;
pub mod hold;
pub mod jitter;
#[cfg(any(feature = "onnx", feature = "whisper"))]
pub mod log_mel;
pub mod playout;
pub mod smart_turn;
pub mod vad;

/// One 20 ms frame of 16 kHz mono audio, the format inside a call.
pub type Frame = [i16; vad::FRAME_SAMPLES];
