//! Pure signal processing: jitter buffer, concealment, echo cancellation,
//! VAD, endpointing.
pub mod conceal;
pub mod echo;
pub mod endpoint;
pub mod jitter;
pub mod log_mel;
pub mod playout;
pub mod smart_turn;
pub mod vad;
