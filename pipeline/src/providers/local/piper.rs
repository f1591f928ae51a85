//! The Piper neural voice (VITS, ONNX) through ONNX Runtime, with
//! espeak-ng's IPA phonemes.
//!
//! Text is split into sentences by espeak-ng; each sentence becomes phoneme
//! ids per the voice's `.onnx.json` map (BOS, PAD, then each phoneme followed
//! by PAD, then EOS) and is synthesised on its own, so the first sentence can
//! play while the next is made.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ort::value::TensorRef;
use serde::Deserialize;

use super::{LocalModelError, espeak};
use crate::onnx;

#[derive(Debug, Deserialize)]
struct VoiceFile {
    audio: AudioSection,
    espeak: EspeakSection,
    inference: InferenceSection,
    phoneme_id_map: HashMap<String, Vec<i64>>,
}

#[derive(Debug, Deserialize)]
struct AudioSection {
    sample_rate: u32,
}

#[derive(Debug, Deserialize)]
struct EspeakSection {
    voice: String,
}

#[derive(Debug, Deserialize)]
struct InferenceSection {
    noise_scale: f32,
    length_scale: f32,
    noise_w: f32,
}

/// A loaded Piper voice.
pub struct PiperVoice {
    session: ort::session::Session,
    ids: HashMap<char, Vec<i64>>,
    espeak_voice: String,
    scales: [f32; 3],
    rate: u32,
}

impl std::fmt::Debug for PiperVoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PiperVoice")
            .field("espeak_voice", &self.espeak_voice)
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}

/// Where a Piper voice's files are.
#[derive(Debug, Clone, PartialEq)]
pub struct PiperConfig {
    /// The `.onnx` model; its `.onnx.json` sits beside it.
    pub model: PathBuf,
    /// `libonnxruntime.so`.
    pub onnxruntime: PathBuf,
    /// Speaking rate: above 1.0 slower, below faster.
    pub length_scale: Option<f32>,
}

impl PiperConfig {
    /// The joe voice in a models folder laid out by `scripts/fetch-models.sh`.
    #[must_use]
    pub fn with_models_dir(models: &Path) -> Self {
        Self {
            model: models.join("piper/en_US-joe-medium.onnx"),
            onnxruntime: models.join("onnxruntime/libonnxruntime.so"),
            length_scale: None,
        }
    }
}

impl PiperVoice {
    /// Loads the voice.
    ///
    /// # Errors
    /// A missing or malformed model or voice file, or ONNX Runtime failing.
    pub fn load(config: &PiperConfig) -> Result<Self, LocalModelError> {
        let json_path = PathBuf::from(format!("{}.json", config.model.display()));
        let json = std::fs::read_to_string(&json_path)
            .map_err(|source| LocalModelError::Io { path: json_path.clone(), source })?;
        let voice: VoiceFile = serde_json::from_str(&json)
            .map_err(|e| LocalModelError::Format { path: json_path.clone(), message: e.to_string() })?;
        let ids = voice
            .phoneme_id_map
            .into_iter()
            .filter_map(|(k, v)| {
                let mut chars = k.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => Some((c, v)),
                    _ => None,
                }
            })
            .collect::<HashMap<_, _>>();
        for special in ['^', '_', '$'] {
            if !ids.contains_key(&special) {
                return Err(LocalModelError::Format {
                    path: json_path,
                    message: format!("phoneme_id_map lacks {special:?}"),
                });
            }
        }
        if !config.model.exists() {
            return Err(LocalModelError::Missing { path: config.model.clone() });
        }
        let session = onnx::session(&config.onnxruntime, &config.model)?;
        let i = voice.inference;
        Ok(Self {
            session,
            ids,
            espeak_voice: voice.espeak.voice,
            scales: [i.noise_scale, config.length_scale.unwrap_or(i.length_scale), i.noise_w],
            rate: voice.audio.sample_rate,
        })
    }

    /// The voice's output rate (22050 Hz for medium voices).
    #[must_use]
    pub fn sample_rate(&self) -> u32 {
        self.rate
    }

    /// Splits `text` into sentences of phonemes.
    ///
    /// # Errors
    /// espeak-ng failing.
    pub fn phonemize(&self, text: &str) -> Result<Vec<String>, LocalModelError> {
        espeak::phonemize(text, &self.espeak_voice)
    }

    /// The model's input ids for one sentence of phonemes.
    #[must_use]
    pub fn phoneme_ids(&self, phonemes: &str) -> Vec<i64> {
        // The three specials are checked in `load`.
        let id = |c: char| self.ids.get(&c).map_or(&[][..], Vec::as_slice);
        let mut out = Vec::with_capacity(2 * phonemes.len() + 3);
        out.extend_from_slice(id('^'));
        out.extend_from_slice(id('_'));
        for c in phonemes.chars() {
            // Phonemes the voice was not trained on are skipped, as Piper does.
            if let Some(ids) = self.ids.get(&c) {
                out.extend_from_slice(ids);
                out.extend_from_slice(id('_'));
            }
        }
        out.extend_from_slice(id('$'));
        out
    }

    /// Synthesises one sentence of phonemes to 16-bit samples at [`Self::sample_rate`].
    ///
    /// # Errors
    /// ONNX Runtime failing.
    pub fn synthesize_phonemes(&mut self, phonemes: &str) -> Result<Vec<i16>, LocalModelError> {
        let ids = self.phoneme_ids(phonemes);
        let lengths = [ids.len() as i64];
        let input =
            TensorRef::from_array_view(([1usize, ids.len()], &ids[..])).map_err(onnx::OnnxError::from)?;
        let lengths = TensorRef::from_array_view(([1usize], &lengths[..])).map_err(onnx::OnnxError::from)?;
        let scales =
            TensorRef::from_array_view(([3usize], &self.scales[..])).map_err(onnx::OnnxError::from)?;
        let outputs = self
            .session
            .run(ort::inputs!["input" => input, "input_lengths" => lengths, "scales" => scales])
            .map_err(onnx::OnnxError::from)?;
        let (_, audio) = outputs["output"].try_extract_tensor::<f32>().map_err(onnx::OnnxError::from)?;
        // Piper normalises each sentence to full scale; keep a little headroom.
        let peak = audio.iter().fold(0.01f32, |m, &s| m.max(s.abs()));
        let gain = 0.9 * 32767.0 / peak;
        Ok(audio.iter().map(|&s| (s * gain) as i16).collect())
    }

    /// Synthesises `text`, sentence by sentence.
    ///
    /// # Errors
    /// espeak-ng or ONNX Runtime failing.
    pub fn synthesize(&mut self, text: &str) -> Result<Vec<i16>, LocalModelError> {
        let mut audio = Vec::new();
        for sentence in self.phonemize(text)? {
            audio.extend(self.synthesize_phonemes(&sentence)?);
        }
        Ok(audio)
    }
}
