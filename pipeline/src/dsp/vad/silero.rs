//! Silero VAD (v5/v6 ONNX) through ONNX Runtime.
//!
//! The model takes 512 new samples at 16 kHz plus the last 64 samples of the
//! previous chunk as context, and carries a recurrent state of shape
//! [2, 1, 128]. Voxgate's 20 ms frames (320 samples) are gathered into 32 ms
//! chunks; each frame reports the latest chunk's probability.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use ort::value::TensorRef;

use super::{FRAME_SAMPLES, VadError, VoiceActivityDetector};
use crate::onnx::{self, OnnxError};

const CHUNK: usize = 512;
const CONTEXT: usize = 64;
const STATE_LEN: usize = 2 * 128;

/// A loaded Silero model, shared by every call's detector: one session per
/// core, taken by whichever call's inference finds it free. A session is
/// stateless (each call keeps its own recurrent state) and one inference
/// takes about 0.1 ms, so calls take turns on them. Loading a session per
/// call instead cost tens of milliseconds of CPU each and could not keep up
/// with 100 new calls a second; one session for all let only one core
/// infer at a time, which capped the calls a machine could carry.
#[derive(Clone)]
pub struct SileroModel(onnx::SessionPool);

impl std::fmt::Debug for SileroModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SileroModel")
    }
}

impl SileroModel {
    /// Loads the model with the ONNX Runtime library at `onnxruntime`.
    ///
    /// # Errors
    /// Either file is missing or fails to load.
    pub fn load(onnxruntime: &Path, model: &Path) -> Result<Self, VadError> {
        if !model.exists() {
            return Err(OnnxError::Runtime {
                message: format!("silero model not found at {}", model.display()),
            }
            .into());
        }
        Ok(Self(onnx::SessionPool::load(onnxruntime, model)?))
    }

    fn session(&self) -> MutexGuard<'_, ort::session::Session> {
        self.0.get()
    }

    /// The process-wide model for `model`, loaded on first use.
    ///
    /// # Errors
    /// As [`SileroModel::load`], the first time.
    pub fn shared(onnxruntime: &Path, model: &Path) -> Result<Self, VadError> {
        static MODELS: OnceLock<Mutex<HashMap<PathBuf, SileroModel>>> = OnceLock::new();
        let mut models = MODELS.get_or_init(Mutex::default).lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(m) = models.get(model) {
            return Ok(m.clone());
        }
        let loaded = Self::load(onnxruntime, model)?;
        models.insert(model.to_owned(), loaded.clone());
        Ok(loaded)
    }
}

/// The Silero detector: a shared model, this stream's state.
pub struct SileroVad {
    model: SileroModel,
    /// Context (64) followed by the chunk being filled (512).
    window: [f32; CONTEXT + CHUNK],
    filled: usize,
    state: [f32; STATE_LEN],
    probability: f32,
}

impl std::fmt::Debug for SileroVad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SileroVad").field("probability", &self.probability).finish_non_exhaustive()
    }
}

impl SileroVad {
    /// A detector on the process-wide model (see [`SileroModel::shared`]).
    ///
    /// # Errors
    /// Either file is missing or fails to load.
    pub fn new(onnxruntime: &Path, model: &Path) -> Result<Self, VadError> {
        Ok(Self::with_model(SileroModel::shared(onnxruntime, model)?))
    }

    /// A detector with its own state on `model`.
    #[must_use]
    pub fn with_model(model: SileroModel) -> Self {
        Self { model, window: [0.0; CONTEXT + CHUNK], filled: 0, state: [0.0; STATE_LEN], probability: 0.0 }
    }

    fn infer(&mut self) -> Result<(), VadError> {
        let sr = [16_000i64];
        let input = TensorRef::from_array_view(([1usize, CONTEXT + CHUNK], &self.window[..]))
            .map_err(OnnxError::from)?;
        let state =
            TensorRef::from_array_view(([2usize, 1, 128], &self.state[..])).map_err(OnnxError::from)?;
        let sr = TensorRef::from_array_view(([0usize; 0], &sr[..])).map_err(OnnxError::from)?;
        let mut session = self.model.session();
        let outputs = session
            .run(ort::inputs!["input" => input, "state" => state, "sr" => sr])
            .map_err(OnnxError::from)?;
        let (_, probability) = outputs["output"].try_extract_tensor::<f32>().map_err(OnnxError::from)?;
        let (_, state) = outputs["stateN"].try_extract_tensor::<f32>().map_err(OnnxError::from)?;
        let (Some(&p), true) = (probability.first(), state.len() == STATE_LEN) else {
            return Err(VadError::ModelOutput { what: "output or state of the wrong size" });
        };
        self.probability = p;
        self.state.copy_from_slice(state);
        Ok(())
    }
}

impl VoiceActivityDetector for SileroVad {
    fn process(&mut self, frame: &[i16]) -> Result<f32, VadError> {
        if frame.len() != FRAME_SAMPLES {
            return Err(VadError::FrameSize { len: frame.len() });
        }
        for &s in frame {
            self.window[CONTEXT + self.filled] = f32::from(s) / 32768.0;
            self.filled += 1;
            if self.filled == CHUNK {
                self.infer()?;
                self.window.copy_within(CHUNK.., 0);
                self.filled = 0;
            }
        }
        Ok(self.probability)
    }

    fn reset(&mut self) {
        self.window = [0.0; CONTEXT + CHUNK];
        self.filled = 0;
        self.state = [0.0; STATE_LEN];
        self.probability = 0.0;
    }

    fn name(&self) -> &'static str {
        "silero"
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::dsp::vad::VadConfig;

    /// With a session per core, one call's inference never waits for
    /// another's (the single shared session made them take turns).
    #[test]
    fn a_call_infers_while_another_holds_a_session() {
        let models = std::env::var_os("VOXGATE_MODELS__DIR")
            .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../models"), PathBuf::from);
        let config = VadConfig::with_models_dir(&models);
        let loaded = SileroModel::load(&config.onnxruntime, &config.silero_model)
            .expect("Silero files missing: run scripts/fetch-models.sh");
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        assert_eq!(loaded.0.len(), cores, "a session per core");
        // Two sessions whatever the machine: one held, one free.
        let model = SileroModel(
            onnx::SessionPool::with_sessions(&config.onnxruntime, &config.silero_model, 2).expect("loads"),
        );
        let held = model.session();
        let (tx, rx) = std::sync::mpsc::channel();
        let other = model.clone();
        std::thread::spawn(move || {
            let mut vad = SileroVad::with_model(other);
            // Two 20 ms frames fill a 32 ms chunk: the model runs.
            for _ in 0..2 {
                vad.process(&[0; FRAME_SAMPLES]).expect("inference");
            }
            let _ = tx.send(());
        });
        let inferred = rx.recv_timeout(Duration::from_secs(30));
        drop(held);
        assert!(inferred.is_ok(), "the second call waited for the first's session");
    }
}
