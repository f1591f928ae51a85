//! Pure signal processing: jitter buffer, concealment, VAD, endpointing.
pub mod conceal;
pub mod endpoint;
pub mod jitter;
pub mod playout;
pub mod vad;
