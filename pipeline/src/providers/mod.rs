//! Speech to text, language models and text to speech: one trait per
//! capability, local implementations that run offline, cloud ones that speak
//! the vendors' protocols.

pub mod local;
