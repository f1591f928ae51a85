//! Pure signal processing: jitter buffer, concealment, VAD, endpointing.
pub mod endpoint;
pub mod jitter;
pub mod vad;
