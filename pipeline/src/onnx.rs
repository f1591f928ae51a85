//! The process-wide ONNX Runtime environment, loaded from a shared library
//! at run time (ort's `load-dynamic`), so nothing is downloaded at build time.
//!
//! ONNX Runtime allows one environment per process; Silero VAD and the Piper
//! voice share it. The first caller's library path wins.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// ONNX Runtime could not be loaded or a model could not be run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OnnxError {
    /// The shared library is missing (run `scripts/fetch-models.sh`).
    #[error("onnxruntime library not found at {path}")]
    LibraryMissing { path: PathBuf },
    /// The shared library or a model failed to load, or inference failed.
    #[error("onnxruntime: {message}")]
    Runtime { message: String },
}

impl From<ort::Error> for OnnxError {
    fn from(e: ort::Error) -> Self {
        Self::Runtime { message: e.to_string() }
    }
}

static ENVIRONMENT: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();

/// Loads `libonnxruntime.so` from `library` once per process.
///
/// # Errors
/// The library is missing or does not load.
pub fn environment(library: &Path) -> Result<ort::environment::Environment, OnnxError> {
    if ENVIRONMENT.get().is_none() && !library.exists() {
        return Err(OnnxError::LibraryMissing { path: library.to_owned() });
    }
    ENVIRONMENT
        .get_or_init(|| {
            ort::init_from(library)
                .map_err(|e| e.to_string())?
                .with_name("voxgate")
                .build()
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|message| OnnxError::Runtime { message })
}

/// Builds a single-threaded session for `model` (calls run one per task;
/// parallelism comes from running many calls).
///
/// # Errors
/// The runtime or the model failed to load.
pub fn session(library: &Path, model: &Path) -> Result<ort::session::Session, OnnxError> {
    let env = environment(library)?;
    let session = ort::session::Session::builder(&env)?
        .with_intra_threads(1)
        .map_err(ort::Error::from)?
        .with_inter_threads(1)
        .map_err(ort::Error::from)?
        .commit_from_file(model)?;
    Ok(session)
}
