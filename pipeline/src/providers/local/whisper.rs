//! Whisper (CTranslate2 format: tiny.en, or the multilingual base) through `ct2rs`.
//!
//! ct2rs's high-level `Whisper::generate` drops the first words of English
//! speech: it always sends the multilingual prompt and normalises the log-mel
//! frame by frame (see `../shared/OFFLINE-MODELS.md`). So this computes the
//! log-mel spectrogram as the reference implementation does (one
//! normalisation over the whole window, [`LogMel`]) and prompts the English-only
//! model with `<|startoftranscript|><|notimestamps|>` through ct2rs's
//! lower-level `sys::Whisper`, after `<|startofprev|>` and the agent's
//! vocabulary when it has one ([`WhisperStt::prompt`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use ct2rs::sys::{ComputeType, Config, Device, StorageView, WhisperOptions};

use super::LocalModelError;
use crate::dsp::log_mel::{HOP, LogMel, N_MELS, RATE};

/// Whisper's own window: 30 s.
const WINDOW_SAMPLES: usize = 30 * RATE;
const FRAMES: usize = WINDOW_SAMPLES / HOP;

/// Where the model is and how to run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhisperConfig {
    /// The folder with `model.bin`, `config.json`, `tokenizer.json`, `preprocessor_config.json`.
    pub model_dir: PathBuf,
    /// CPU threads for one transcription.
    pub threads: usize,
    /// Beam width (1: greedy).
    pub beam_size: usize,
    /// The shortest window the encoder reads, in ms. Whisper pads every
    /// utterance to its 30 s window; CTranslate2 also takes shorter ones,
    /// and the encoder's time grows with the window. An utterance is read
    /// in a window of its own length plus [`WINDOW_TAIL_MS`], at least this
    /// long (30 000: always the full window).
    pub min_window_ms: u32,
}

/// The longest vocabulary prompt, in tokens (Whisper allows 224 before the
/// transcript; a short one keeps decoding fast).
pub const MAX_PROMPT_TOKENS: usize = 96;

/// Silence after the speech in a shortened window: the model was trained to
/// see audio end before its window does.
pub const WINDOW_TAIL_MS: u32 = 1000;

impl WhisperConfig {
    /// tiny.en in a models folder laid out by `scripts/fetch-models.sh`.
    #[must_use]
    pub fn with_models_dir(models: &Path) -> Self {
        Self { model_dir: models.join("whisper-tiny-en"), threads: 2, beam_size: 5, min_window_ms: 30_000 }
    }
}

/// A loaded Whisper model. Transcribes whole utterances (up to 30 s at a
/// time; longer audio is cut into 30 s windows).
pub struct WhisperStt {
    model: ct2rs::sys::Whisper,
    tokenizer: ct2rs::tokenizers::hf::Tokenizer,
    log_mel: LogMel,
    beam_size: usize,
    min_frames: usize,
    /// Whisper base and the like (not an `.en` model): the prompt names the language.
    multilingual: bool,
    /// Transcriptions running now.
    running: AtomicUsize,
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
        let multilingual = model.is_multilingual();
        let tokenizer = ct2rs::tokenizers::hf::Tokenizer::new(dir).map_err(|e| model_error(dir, e))?;
        Ok(Self {
            model,
            tokenizer,
            log_mel: LogMel::new(),
            beam_size: config.beam_size.max(1),
            min_frames: (config.min_window_ms as usize * RATE / 1000 / HOP).clamp(200, FRAMES),
            multilingual,
            running: AtomicUsize::new(0),
        })
    }

    /// Whisper's prompt for an agent's vocabulary (its names, streets,
    /// products): tokens that go before the transcript as if said earlier,
    /// which biases the recogniser toward those words. At most
    /// [`MAX_PROMPT_TOKENS`]; empty for no vocabulary.
    ///
    /// # Errors
    /// The tokenizer failing.
    pub fn prompt(&self, vocabulary: &[String]) -> Result<Vec<String>, LocalModelError> {
        if vocabulary.is_empty() {
            return Ok(Vec::new());
        }
        let text = format!(" {}.", vocabulary.join(", "));
        let encoding =
            self.tokenizer.encode(text, false).map_err(|e| model_error(Path::new("whisper tokenizer"), e))?;
        let tokens = encoding.get_tokens();
        Ok(tokens[..tokens.len().min(MAX_PROMPT_TOKENS)].to_vec())
    }

    /// Transcribes mono 16 kHz audio.
    ///
    /// # Errors
    /// CTranslate2 or the tokenizer failing.
    pub fn transcribe(&self, pcm: &[i16]) -> Result<String, LocalModelError> {
        self.transcribe_prompted(pcm, &[])
    }

    /// Transcribes mono 16 kHz audio after `prompt` (from [`WhisperStt::prompt`]).
    ///
    /// # Errors
    /// CTranslate2 or the tokenizer failing.
    pub fn transcribe_prompted(&self, pcm: &[i16], prompt: &[String]) -> Result<String, LocalModelError> {
        /// Counts a transcription while it runs, a panicking one too.
        struct Running<'a>(&'a AtomicUsize);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.running.fetch_add(1, Ordering::Relaxed);
        let _running = Running(&self.running);
        self.transcribe_windows(pcm, prompt)
    }

    /// True while a transcription runs (of any call): work that may be
    /// thrown away should wait for idle cores.
    #[must_use]
    pub fn is_busy(&self) -> bool {
        self.running.load(Ordering::Relaxed) > 0
    }

    fn transcribe_windows(&self, pcm: &[i16], prompt: &[String]) -> Result<String, LocalModelError> {
        let mut text = String::new();
        for window in pcm.chunks(WINDOW_SAMPLES) {
            let part = self.transcribe_window(window, prompt)?;
            if !part.is_empty() {
                if !text.is_empty() {
                    text.push(' ');
                }
                text.push_str(&part);
            }
        }
        Ok(text)
    }

    /// Frames of the window that reads `samples`: the utterance and its
    /// tail, at least the configured minimum, rounded up to a whole second.
    fn frames_for(&self, samples: usize) -> usize {
        let wanted = (samples + WINDOW_TAIL_MS as usize * RATE / 1000).div_ceil(HOP);
        wanted.max(self.min_frames).next_multiple_of(RATE / HOP).min(FRAMES)
    }

    fn transcribe_window(&self, pcm: &[i16], vocabulary: &[String]) -> Result<String, LocalModelError> {
        let frames = self.frames_for(pcm.len());
        let audio: Vec<f32> = pcm.iter().map(|&s| f32::from(s) / 32768.0).collect();
        let mut features = self.log_mel.compute(&audio, frames);
        let here = Path::new("whisper");
        let storage = StorageView::new(&[1, N_MELS, frames], &mut features, Device::CPU)
            .map_err(|e| model_error(here, e))?;
        let options = WhisperOptions { beam_size: self.beam_size, ..WhisperOptions::default() };
        let mut prompt: Vec<&str> = Vec::with_capacity(vocabulary.len() + 3);
        if !vocabulary.is_empty() {
            prompt.push("<|startofprev|>");
            prompt.extend(vocabulary.iter().map(String::as_str));
        }
        prompt.push("<|startoftranscript|>");
        if self.multilingual {
            // A multilingual model is told the language and the task.
            prompt.extend(["<|en|>", "<|transcribe|>"]);
        }
        prompt.push("<|notimestamps|>");
        let prompt = [prompt];
        let results = self.model.generate(&storage, &prompt, &options).map_err(|e| model_error(here, e))?;
        let Some(ids) = results.first().and_then(|r| r.sequences_ids.first()) else {
            return Ok(String::new());
        };
        let ids: Vec<u32> = ids.iter().map(|&i| i as u32).collect();
        let text = self.tokenizer.decode(&ids, true).map_err(|e| model_error(here, e))?;
        Ok(text.trim().to_owned())
    }
}
