//! Providers that run on this machine with no network: Whisper (STT),
//! Piper and espeak-ng (TTS), SmolLM2 with MiniLM retrieval (LLM).

#[cfg(feature = "embeddings")]
pub mod embed;
#[cfg(feature = "onnx")]
pub mod espeak;
#[cfg(feature = "llama")]
pub mod llm;
#[cfg(feature = "onnx")]
pub mod piper;
#[cfg(feature = "llama")]
mod prompt_cache;
#[cfg(feature = "whisper")]
pub mod stt;
#[cfg(feature = "onnx")]
pub mod tts;
#[cfg(feature = "whisper")]
pub mod whisper;

use std::path::PathBuf;

#[cfg(feature = "onnx")]
use crate::onnx::OnnxError;

/// A local model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalModelError {
    /// A model file is missing (run `scripts/fetch-models.sh`).
    #[error("model file {path} not found (run scripts/fetch-models.sh)")]
    Missing { path: PathBuf },
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file is not what the model needs.
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    /// llama.cpp failed at `op`.
    #[error("llama.cpp, {op}: {source}")]
    Llama {
        op: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// espeak-ng failed.
    #[error("espeak-ng: {message}")]
    Espeak { message: String },
    /// ONNX Runtime failed.
    #[cfg(feature = "onnx")]
    #[error(transparent)]
    Onnx(#[from] OnnxError),
}
