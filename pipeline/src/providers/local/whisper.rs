//! Whisper tiny.en (CTranslate2 format) through `ct2rs`.
//!
//! ct2rs's high-level `Whisper::generate` drops the first words of English
//! speech: it always sends the multilingual prompt and normalises the log-mel
//! frame by frame (see `../shared/OFFLINE-MODELS.md`). So this computes the
//! log-mel spectrogram as the reference implementation does (one
//! normalisation over the whole 30 s window) and prompts the English-only
//! model with `<|startoftranscript|><|notimestamps|>` through ct2rs's
//! lower-level `sys::Whisper`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ct2rs::sys::{ComputeType, Config, Device, StorageView, WhisperOptions};
use realfft::{RealFftPlanner, RealToComplex};

use super::LocalModelError;

/// Whisper's fixed input: 16 kHz, 30 s windows, 400-point FFT, hop 160, 80 mel bins.
const RATE: usize = 16_000;
const WINDOW_SAMPLES: usize = 30 * RATE;
const N_FFT: usize = 400;
const HOP: usize = 160;
const N_MELS: usize = 80;
const FRAMES: usize = WINDOW_SAMPLES / HOP;
const BINS: usize = N_FFT / 2 + 1;

/// Where the model is and how to run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhisperConfig {
    /// The folder with `model.bin`, `config.json`, `tokenizer.json`, `preprocessor_config.json`.
    pub model_dir: PathBuf,
    /// CPU threads for one transcription.
    pub threads: usize,
    /// Beam width (1: greedy).
    pub beam_size: usize,
}

impl WhisperConfig {
    /// tiny.en in a models folder laid out by `scripts/fetch-models.sh`.
    #[must_use]
    pub fn with_models_dir(models: &Path) -> Self {
        Self { model_dir: models.join("whisper-tiny-en"), threads: 2, beam_size: 5 }
    }
}

/// A loaded Whisper model. Transcribes whole utterances (up to 30 s at a
/// time; longer audio is cut into 30 s windows).
pub struct WhisperStt {
    model: ct2rs::sys::Whisper,
    tokenizer: ct2rs::tokenizers::hf::Tokenizer,
    /// Slaney mel filterbank, `N_MELS` rows of `BINS`.
    filters: Vec<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
    window: Vec<f32>,
    beam_size: usize,
}

impl std::fmt::Debug for WhisperStt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperStt").field("beam_size", &self.beam_size).finish_non_exhaustive()
    }
}

fn model_error(dir: &Path, e: impl std::fmt::Display) -> LocalModelError {
    LocalModelError::Format { path: dir.to_owned(), message: e.to_string() }
}

impl WhisperStt {
    /// Loads the model (int8 weights on the CPU).
    ///
    /// # Errors
    /// Missing or unreadable model files.
    pub fn load(config: &WhisperConfig) -> Result<Self, LocalModelError> {
        let dir = &config.model_dir;
        for file in ["model.bin", "tokenizer.json"] {
            if !dir.join(file).exists() {
                return Err(LocalModelError::Missing { path: dir.join(file) });
            }
        }
        let ct2_config = Config {
            device: Device::CPU,
            compute_type: ComputeType::INT8,
            num_threads_per_replica: config.threads.max(1),
            ..Config::default()
        };
        let model = ct2rs::sys::Whisper::new(dir, ct2_config).map_err(|e| model_error(dir, e))?;
        let tokenizer = ct2rs::tokenizers::hf::Tokenizer::new(dir).map_err(|e| model_error(dir, e))?;
        let bank = mel_spec::mel::mel(RATE as f64, N_FFT, N_MELS, None, None, false, true);
        let filters = bank.iter().map(|&w| w as f32).collect::<Vec<_>>();
        if filters.len() != N_MELS * BINS {
            return Err(model_error(dir, "mel filterbank of unexpected shape"));
        }
        // Periodic Hann window, as torch.hann_window.
        let window = (0..N_FFT)
            .map(|n| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * n as f32 / N_FFT as f32).cos())
            .collect();
        Ok(Self {
            model,
            tokenizer,
            filters,
            fft: RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT),
            window,
            beam_size: config.beam_size.max(1),
        })
    }

    /// Transcribes mono 16 kHz audio.
    ///
    /// # Errors
    /// CTranslate2 or the tokenizer failing.
    pub fn transcribe(&self, pcm: &[i16]) -> Result<String, LocalModelError> {
        let mut text = String::new();
        for window in pcm.chunks(WINDOW_SAMPLES) {
            let part = self.transcribe_window(window)?;
            if !part.is_empty() {
                if !text.is_empty() {
                    text.push(' ');
                }
                text.push_str(&part);
            }
        }
        Ok(text)
    }

    fn transcribe_window(&self, pcm: &[i16]) -> Result<String, LocalModelError> {
        let mut features = self.log_mel(pcm);
        let here = Path::new("whisper");
        let storage = StorageView::new(&[1, N_MELS, FRAMES], &mut features, Device::CPU)
            .map_err(|e| model_error(here, e))?;
        let options = WhisperOptions { beam_size: self.beam_size, ..WhisperOptions::default() };
        let prompt = [vec!["<|startoftranscript|>", "<|notimestamps|>"]];
        let results = self.model.generate(&storage, &prompt, &options).map_err(|e| model_error(here, e))?;
        let Some(ids) = results.first().and_then(|r| r.sequences_ids.first()) else {
            return Ok(String::new());
        };
        let ids: Vec<u32> = ids.iter().map(|&i| i as u32).collect();
        let text = self.tokenizer.decode(&ids, true).map_err(|e| model_error(here, e))?;
        Ok(text.trim().to_owned())
    }

    /// The log-mel spectrogram of one window, `[N_MELS][FRAMES]`, as Whisper computes it.
    fn log_mel(&self, pcm: &[i16]) -> Vec<f32> {
        // Zero-pad to 30 s, then reflect-pad N_FFT/2 each side (torch.stft, center=True).
        let pad = N_FFT / 2;
        let mut audio = vec![0f32; WINDOW_SAMPLES + 2 * pad];
        for (a, &s) in audio[pad..].iter_mut().zip(pcm) {
            *a = f32::from(s) / 32768.0;
        }
        for i in 0..pad {
            audio[pad - 1 - i] = audio[pad + 1 + i];
            audio[pad + WINDOW_SAMPLES + i] = audio[pad + WINDOW_SAMPLES - 2 - i];
        }
        let mut frame = vec![0f32; N_FFT];
        let mut spectrum = self.fft.make_output_vec();
        let mut power = vec![0f32; BINS];
        let mut mel = vec![0f32; N_MELS * FRAMES];
        for t in 0..FRAMES {
            let start = t * HOP;
            for ((f, &a), &w) in frame.iter_mut().zip(&audio[start..start + N_FFT]).zip(&self.window) {
                *f = a * w;
            }
            // Lengths match the plan, so the FFT cannot fail.
            if self.fft.process(&mut frame, &mut spectrum).is_err() {
                continue;
            }
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = c.norm_sqr();
            }
            for m in 0..N_MELS {
                let row = &self.filters[m * BINS..(m + 1) * BINS];
                let energy: f32 = row.iter().zip(&power).map(|(w, p)| w * p).sum();
                mel[m * FRAMES + t] = energy.max(1e-10).log10();
            }
        }
        let max = mel.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for v in &mut mel {
            *v = ((*v).max(max - 8.0) + 4.0) / 4.0;
        }
        mel
    }
}
