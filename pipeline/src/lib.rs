//! The per-call conversation engine.
pub mod dsp;
pub mod onnx;
