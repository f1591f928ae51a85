//! Pure signal processing: jitter buffer, concealment, VAD, endpointing.
pub mod jitter;
