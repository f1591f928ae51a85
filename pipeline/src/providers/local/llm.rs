//! SmolLM2-135M-Instruct (GGUF) through llama.cpp (`llama-cpp-2`).
//!
//! Demo quality: a 135M-parameter model. Given a short, strict prompt and the
//! agent's retrieved knowledge it answers simple questions from that
//! knowledge; it is no substitute for a real model behind the
//! OpenAI-compatible provider.
//!
//! Why llama.cpp and not candle: on two cores its AVX2 kernels read the
//! prompt many times faster (BENCHMARKS.md, "The local language model"), and
//! its KV cache can be cut and shared between sequences, which is what lets
//! a turn read only its new tokens:
//!
//! - The prompt is ChatML, built so that a conversation only grows at its
//!   end: the system prompt, then every turn as it was asked, each caller
//!   message with the facts retrieved for it (kept in the history), so a
//!   turn reads only the reply the caller heard and its own question.
//! - [`PromptCache`] keeps which tokens each of a few sequences holds; a
//!   request continues the sequence that holds its conversation, or starts
//!   from the longest shared prefix (a new call of an agent shares its
//!   system prompt and greeting with the calls before it).
//! - Old turns leave the prompt a page ([`PAGE_MESSAGES`]) at a time, so the
//!   prompt's start moves rarely and the cache stays valid in between.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use llama_cpp_2::DecodeError;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::mpsc;

use super::LocalModelError;
use super::prompt_cache::{Plan, PromptCache};
use crate::providers::{
    CancellationToken, ChatRequest, LanguageModel, LlmEvent, ProviderError, ProviderName, Role,
};

const NAME: ProviderName = "local-llm";
/// Tokens of the conversation kept in the prompt.
const MAX_PROMPT_TOKENS: usize = 1536;
/// Old turns leave the prompt this many messages at a time.
const PAGE_MESSAGES: usize = 8;
/// Tokens read in one pass of the model.
const BATCH: usize = 512;

/// Where the model is and how it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmolLmConfig {
    /// The `.gguf` file.
    pub model: PathBuf,
    /// Threads that read a prompt (many tokens at once: compute bound).
    pub prompt_threads: u32,
    /// Threads that write the reply (a token at a time: memory bound, and
    /// one thread leaves the other core to the calls' media).
    pub reply_threads: u32,
    /// Conversations whose state is kept at once.
    pub slots: u32,
    /// llama.cpp's fused attention kernel (faster here: BENCHMARKS.md).
    pub flash_attention: bool,
    /// Requantise the file's weights once, at first load, and run those:
    /// the shipped Q4_1 has slower kernels than Q8_0 (which keeps its
    /// values) or Q4_0 (which loses a little more).
    pub requantise: Option<Requantise>,
}

impl SmolLmConfig {
    /// SmolLM2 in a models folder laid out by `scripts/fetch-models.sh`.
    #[must_use]
    pub fn with_models_dir(models: &Path) -> Self {
        Self::for_file(models.join("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
    }

    /// A GGUF file with a ChatML chat format (SmolLM2, Qwen2.5), requantised
    /// to Q8_0 when it is Q4_1 (the only type here without fast kernels).
    #[must_use]
    pub fn for_file(model: PathBuf) -> Self {
        let q4_1 = model.to_string_lossy().contains("Q4_1");
        Self {
            model,
            prompt_threads: 2,
            reply_threads: 1,
            slots: 4,
            flash_attention: true,
            requantise: q4_1.then_some(Requantise::Q8_0),
        }
    }
}

/// llama.cpp's process-wide state: initialised once, never torn down.
fn backend() -> &'static LlamaBackend {
    static BACKEND: OnceLock<LlamaBackend> = OnceLock::new();
    BACKEND.get_or_init(|| {
        // Only this function initialises it, once, so this cannot fail.
        #[allow(clippy::expect_used)]
        let mut backend = LlamaBackend::init().expect("llama.cpp backend initialised once");
        // Its load-time chatter goes nowhere; failures come back as errors.
        backend.void_logs();
        backend
    })
}

/// The weights of `path`, loaded once per process and shared by every
/// context (a context borrows its model for as long as it lives).
fn model(path: &Path) -> Result<&'static LlamaModel, LocalModelError> {
    static MODELS: Mutex<Vec<(PathBuf, &'static LlamaModel)>> = Mutex::new(Vec::new());
    let mut models = MODELS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, m)) = models.iter().find(|(p, _)| p == path) {
        return Ok(m);
    }
    if !path.exists() {
        return Err(LocalModelError::Missing { path: path.to_owned() });
    }
    let loaded = LlamaModel::load_from_file(backend(), path, &LlamaModelParams::default())
        .map_err(|e| llama_err("loading the model", e))?;
    let loaded: &'static LlamaModel = Box::leak(Box::new(loaded));
    models.push((path.to_owned(), loaded));
    Ok(loaded)
}

/// Weights of a GGUF file, requantised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requantise {
    /// 8-bit blocks (llama.cpp's simplest AVX2 kernel).
    Q8_0,
    /// 4-bit blocks without offsets (repacked for AVX2 matrix kernels).
    Q4_0,
}

/// Writes `from`'s weights requantised to `to` beside it (once; the file is
/// kept), and returns the new file's path.
///
/// # Errors
/// llama.cpp could not read or write the files.
pub fn requantised(from: &Path, to: Requantise) -> Result<PathBuf, LocalModelError> {
    let (suffix, ftype) = match to {
        Requantise::Q8_0 => ("Q8_0", llama_cpp_sys_2::LLAMA_FTYPE_MOSTLY_Q8_0),
        Requantise::Q4_0 => ("Q4_0", llama_cpp_sys_2::LLAMA_FTYPE_MOSTLY_Q4_0),
    };
    let stem = from.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
    let stem = stem.rsplit_once('.').map_or(stem, |(s, _)| s);
    let out = from.with_file_name(format!("{stem}.{suffix}.gguf"));
    if out.exists() {
        return Ok(out);
    }
    if !from.exists() {
        return Err(LocalModelError::Missing { path: from.to_owned() });
    }
    backend();
    // Its own temporary file: two processes starting at once (a server and
    // `voxgate test`, or two test servers) each write theirs, and the
    // rename puts a whole file in place whichever finishes first.
    let tmp = out.with_extension(format!("gguf.{}.tmp", std::process::id()));
    let c = |p: &Path| {
        std::ffi::CString::new(p.to_string_lossy().as_bytes()).map_err(|e| llama_err("naming a file", e))
    };
    let (src, dst) = (c(from)?, c(&tmp)?);
    // SAFETY: the default parameters are plain values; the paths are valid
    // C strings for the call's duration.
    let failed = unsafe {
        let mut params = llama_cpp_sys_2::llama_model_quantize_default_params();
        params.ftype = ftype;
        params.allow_requantize = true;
        params.nthread = 2;
        llama_cpp_sys_2::llama_model_quantize(src.as_ptr(), dst.as_ptr(), &params)
    };
    if failed != 0 {
        let _ = std::fs::remove_file(&tmp);
        return Err(LocalModelError::Format {
            path: from.to_owned(),
            message: format!("requantising to {suffix} failed"),
        });
    }
    std::fs::rename(&tmp, &out).map_err(|source| LocalModelError::Io { path: out.clone(), source })?;
    Ok(out)
}

fn llama_err(op: &'static str, e: impl std::error::Error + Send + Sync + 'static) -> LocalModelError {
    LocalModelError::Llama { op, source: Box::new(e) }
}

/// A context: the KV cache and what each of its slots holds.
struct Engine {
    ctx: LlamaContext<'static>,
    cache: PromptCache,
    batch: LlamaBatch<'static>,
}

/// The loaded model; one request at a time (requests of several calls
/// queue), each call's conversation kept in the KV cache between turns.
#[derive(Clone)]
pub struct SmolLm {
    model: &'static LlamaModel,
    engine: Arc<Mutex<Engine>>,
    /// ChatML markers, tokenised once.
    markers: Arc<Markers>,
}

struct Markers {
    /// `<|im_start|>` + role + newline, per role.
    start: [Vec<LlamaToken>; 3],
    /// `<|im_end|>` + newline.
    end: Vec<LlamaToken>,
}

impl std::fmt::Debug for SmolLm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmolLm").finish_non_exhaustive()
    }
}

impl SmolLm {
    /// Loads the model (once per process) and makes a context for it.
    ///
    /// # Errors
    /// A missing or malformed file; llama.cpp failing to make a context.
    pub fn load(config: &SmolLmConfig) -> Result<Self, LocalModelError> {
        // One load at a time: requantising writes a file, and llama.cpp
        // makes contexts of one model unsoundly when two are made at once.
        static LOADING: Mutex<()> = Mutex::new(());
        let _loading = LOADING.lock().unwrap_or_else(PoisonError::into_inner);
        let path = match config.requantise {
            Some(to) => requantised(&config.model, to)?,
            None => config.model.clone(),
        };
        let model = model(&path)?;
        let slots = config.slots.max(1);
        let n_ctx = (slots as usize * (MAX_PROMPT_TOKENS + 512)).min(model.n_ctx_train() as usize * 2);
        // llama.cpp uses the batch threads for many tokens, the others for one.
        let prompt_threads = config.prompt_threads.max(1) as i32;
        let reply_threads = config.reply_threads.max(1) as i32;
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx as u32))
            .with_n_batch(BATCH as u32)
            .with_n_ubatch(BATCH as u32)
            .with_n_seq_max(slots)
            // One pool of cells for all slots: a copied prefix shares its cells.
            .with_kv_unified(true)
            .with_n_threads(reply_threads)
            .with_n_threads_batch(prompt_threads)
            .with_flash_attention_policy(if config.flash_attention {
                llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_ENABLED
            } else {
                llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_DISABLED
            });
        let ctx = model.new_context(backend(), params).map_err(|e| llama_err("making a context", e))?;
        let special = |text: &str| model.vocab().tokenize(text.as_bytes(), false, true);
        let markers = Markers {
            start: [Role::System, Role::User, Role::Assistant]
                .map(|r| special(&format!("<|im_start|>{}\n", r.as_str()))),
            end: special("<|im_end|>\n"),
        };
        let engine =
            Engine { ctx, cache: PromptCache::new(slots as usize), batch: LlamaBatch::new(BATCH, 1) };
        Ok(Self { model, engine: Arc::new(Mutex::new(engine)), markers: Arc::new(markers) })
    }

    /// Text as tokens, with no special tokens: what a caller says cannot
    /// close a message or open another.
    fn tokens(&self, text: &str) -> Vec<LlamaToken> {
        self.model.vocab().tokenize(text.as_bytes(), false, false)
    }

    fn message(&self, role: Role, content: &str) -> Vec<LlamaToken> {
        let start = match role {
            Role::System => &self.markers.start[0],
            Role::User | Role::Tool => &self.markers.start[1],
            Role::Assistant => &self.markers.start[2],
        };
        let mut ids = start.clone();
        ids.extend(self.tokens(content.trim()));
        ids.extend_from_slice(&self.markers.end);
        ids
    }

    /// The ChatML prompt for `request`, ending where the agent's reply starts.
    ///
    /// System messages come first. Each caller message carries the facts
    /// retrieved for it, as it was asked (the last one's come from the
    /// request): a 135M model heeds facts in the question far better than
    /// in the system prompt (measured: it invented opening hours
    /// otherwise), and a question that keeps its facts keeps the prompt
    /// growing only at its end, so a turn reads only what is new. When the
    /// turns do not fit, whole pages of the oldest leave, never the system
    /// prompt.
    fn prompt(&self, request: &ChatRequest) -> Vec<LlamaToken> {
        let (system, rest): (Vec<_>, Vec<_>) = request.messages.iter().partition(|m| m.role == Role::System);
        let mut prompt: Vec<LlamaToken> =
            system.iter().flat_map(|m| self.message(Role::System, &m.content)).collect();
        let last_user = rest.iter().rposition(|m| m.role == Role::User);
        let turns: Vec<Vec<LlamaToken>> = rest
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let facts = match (&m.knowledge, Some(i) == last_user) {
                    (k, _) if !k.is_empty() => k.as_slice(),
                    (_, true) => request.knowledge.as_slice(),
                    _ => &[],
                };
                if m.role == Role::User && !facts.is_empty() {
                    let content = format!(
                        "Facts: {}\n\nUsing only the facts, answer: {}",
                        facts.join(" "),
                        m.content.trim()
                    );
                    self.message(m.role, &content)
                } else {
                    // Tool results are shown to this small model as plain context.
                    self.message(m.role, &m.content)
                }
            })
            .collect();
        let tail = &self.markers.start[2];
        let budget = MAX_PROMPT_TOKENS.saturating_sub(prompt.len() + tail.len());
        let mut first = 0;
        while first + 1 < turns.len() && turns[first..].iter().map(Vec::len).sum::<usize>() > budget {
            first = (first + PAGE_MESSAGES).min(turns.len() - 1);
        }
        for t in &turns[first..] {
            prompt.extend_from_slice(t);
        }
        prompt.extend_from_slice(tail);
        prompt
    }

    /// How many tokens the prompt for `request` has.
    #[must_use]
    pub fn prompt_tokens(&self, request: &ChatRequest) -> usize {
        self.prompt(request).len()
    }

    /// Generates the reply to `request`, calling `on_delta` with each new
    /// piece of text; stops at the end token, `max_tokens`, or `cancel`.
    ///
    /// # Errors
    /// llama.cpp failing.
    pub fn generate(
        &self,
        request: &ChatRequest,
        cancel: &CancellationToken,
        mut on_delta: impl FnMut(&str) -> bool,
    ) -> Result<Reply, LocalModelError> {
        let prompt = self.prompt(request);
        let mut engine = self.engine.lock().unwrap_or_else(PoisonError::into_inner);
        let plan = engine.read_prompt(&prompt)?;
        let vocab = self.model.vocab();
        let mut sampler = sampler(self.model.n_vocab(), request.temperature);
        let mut last = engine.batch.n_tokens() - 1;
        let mut bytes: Vec<u8> = Vec::new();
        let mut emitted = 0; // bytes of `bytes` already sent
        let mut completion_tokens = 0;
        // Each written token is read back at the next position.
        for position in (prompt.len()..).take(request.max_tokens as usize) {
            if cancel.is_cancelled() {
                break;
            }
            let next = sampler.sample(&engine.ctx, last);
            if vocab.is_eog(next) {
                break;
            }
            completion_tokens += 1;
            vocab.token_to_piece_into(next, &mut bytes, false, None);
            // Send what is whole UTF-8 so far; a character cut mid-way waits.
            let whole = match std::str::from_utf8(&bytes[emitted..]) {
                Ok(s) => s.len(),
                Err(e) => e.valid_up_to(),
            };
            if whole > 0 {
                let piece = String::from_utf8_lossy(&bytes[emitted..emitted + whole]).into_owned();
                emitted += whole;
                if !on_delta(&piece) {
                    break;
                }
            }
            engine.read_token(plan.slot, next, position)?;
            last = 0;
        }
        let text = String::from_utf8_lossy(&bytes).trim().to_owned();
        Ok(Reply {
            text,
            prompt_tokens: prompt.len(),
            read_tokens: prompt.len() - plan.keep,
            completion_tokens,
        })
    }
}

/// Greedy at temperature 0, else nucleus sampling; a mild penalty on the
/// last 64 tokens, as small models loop.
fn sampler(n_vocab: i32, temperature: f32) -> LlamaSampler {
    let penalty = LlamaSampler::penalties(n_vocab, 64, 1.2, 0.0, 0.0);
    if temperature <= 0.0 {
        LlamaSampler::chain_simple([penalty, LlamaSampler::greedy()])
    } else {
        LlamaSampler::chain_simple([
            penalty,
            LlamaSampler::top_p(0.9, 1),
            LlamaSampler::temp(temperature),
            LlamaSampler::dist(42),
        ])
    }
}

impl Engine {
    /// Brings the slot `prompt` goes to up to date with it, reading only
    /// what it does not hold yet. The last token's output is in the batch.
    fn read_prompt(&mut self, prompt: &[LlamaToken]) -> Result<Plan, LocalModelError> {
        let ids: Vec<u32> = prompt.iter().map(|t| t.0 as u32).collect();
        let plan = self.cache.plan(&ids);
        let seq = plan.slot as i32;
        let keep = plan.keep as u32;
        if let Some((from, shared)) = plan.copy_from {
            self.ctx
                .clear_kv_cache_seq(Some(seq as u32), None, None)
                .map_err(|e| llama_err("clearing", e))?;
            self.ctx
                .kv_cache_seq_cp(from as i32, seq, Some(0), Some(shared as u32))
                .map_err(|e| llama_err("copying a prefix", e))?;
        } else {
            self.ctx
                .clear_kv_cache_seq(Some(seq as u32), Some(keep), None)
                .map_err(|e| llama_err("cutting a sequence", e))?;
        }
        // Until the prompt is whole, the slot holds no known state.
        self.cache.clear(plan.slot);
        let rest = &prompt[plan.keep..];
        let mut position = plan.keep;
        for (i, chunk) in rest.chunks(BATCH).enumerate() {
            self.batch.clear();
            let last_chunk = (i + 1) * BATCH >= rest.len();
            for (j, token) in chunk.iter().enumerate() {
                let is_last = last_chunk && j + 1 == chunk.len();
                self.batch
                    .add(*token, (position + j) as i32, &[seq], is_last)
                    .map_err(|e| llama_err("batching", e))?;
            }
            self.decode(plan.slot)?;
            position += chunk.len();
        }
        self.cache.prompt_read(plan, &ids);
        Ok(plan)
    }

    /// Reads one token of the reply into `slot` at `position`.
    fn read_token(&mut self, slot: usize, token: LlamaToken, position: usize) -> Result<(), LocalModelError> {
        self.batch.clear();
        self.batch.add(token, position as i32, &[slot as i32], true).map_err(|e| llama_err("batching", e))?;
        self.decode(slot)?;
        self.cache.token_read(slot, token.0 as u32);
        Ok(())
    }

    /// Runs the batch; when the cache has no room, drops the conversations
    /// unused longest until it fits.
    fn decode(&mut self, slot: usize) -> Result<(), LocalModelError> {
        loop {
            match self.ctx.decode(&mut self.batch) {
                Ok(()) => return Ok(()),
                Err(DecodeError::NoKvCacheSlot) => {
                    let Some(victim) = self.cache.evictable(slot) else {
                        self.cache.clear(slot);
                        return Err(llama_err("reading", DecodeError::NoKvCacheSlot));
                    };
                    let _ = self.ctx.clear_kv_cache_seq(Some(victim as u32), None, None);
                    self.cache.clear(victim);
                }
                Err(e) => {
                    // A failed read leaves the slot's state unknown.
                    let _ = self.ctx.clear_kv_cache_seq(Some(slot as u32), None, None);
                    self.cache.clear(slot);
                    return Err(llama_err("reading", e));
                }
            }
        }
    }
}

/// A reply and what it cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The reply, trimmed.
    pub text: String,
    /// Tokens of the prompt.
    pub prompt_tokens: usize,
    /// Of those, the ones the model read now (the rest were in its cache).
    pub read_tokens: usize,
    /// Tokens of the reply.
    pub completion_tokens: usize,
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
            let result = this.generate(&request, &cancel, |delta| {
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
