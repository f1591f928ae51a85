//! The process-wide ONNX Runtime environment, loaded from a shared library
//! at run time (ort's `load-dynamic`), so nothing is downloaded at build time.
//!
//! ONNX Runtime allows one environment per process; Silero VAD and the Piper
//! voice share it. The first caller's library path wins.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, TryLockError};

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

/// Sessions of one model, one per core, shared by every call: a call takes
/// whichever is free, so calls infer on all cores at once, and none loads a
/// session of its own (tens of milliseconds of CPU each).
#[derive(Clone)]
pub struct SessionPool(Arc<[Mutex<ort::session::Session>]>);

impl std::fmt::Debug for SessionPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionPool({})", self.0.len())
    }
}

impl SessionPool {
    /// A session of `model` per core.
    ///
    /// # Errors
    /// The runtime or the model failed to load.
    pub fn load(library: &Path, model: &Path) -> Result<Self, OnnxError> {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Self::with_sessions(library, model, cores)
    }

    /// `n` sessions of `model` (at least one).
    ///
    /// # Errors
    /// The runtime or the model failed to load.
    pub fn with_sessions(library: &Path, model: &Path, n: usize) -> Result<Self, OnnxError> {
        let sessions =
            (0..n.max(1)).map(|_| session(library, model).map(Mutex::new)).collect::<Result<Vec<_>, _>>()?;
        Ok(Self(sessions.into()))
    }

    /// How many sessions there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are none (never, once loaded).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A free session, or (all busy) the first one when it is free.
    pub fn get(&self) -> MutexGuard<'_, ort::session::Session> {
        for session in self.0.iter() {
            match session.try_lock() {
                Ok(guard) => return guard,
                Err(TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        self.0[0].lock().unwrap_or_else(PoisonError::into_inner)
    }
}
