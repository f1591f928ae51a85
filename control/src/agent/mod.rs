//! The agents callers talk to: each built from its definition
//! ([`spec::AgentSpec`], from the database or `[agent]` in config.toml)
//! into turn-taking settings ([`SessionConfig`]) and providers. Local
//! models are loaded once and shared by every agent ([`LocalModels`]);
//! [`registry::Agents`] caches built agents and routes numbers to them.

pub mod answering;
pub mod registry;
pub mod spec;

use std::sync::{Arc, Mutex};

use voxgate_codecs::SampleRate;
use voxgate_pipeline::dsp::smart_turn::SmartTurnModel;
use voxgate_pipeline::knowledge::LocalKnowledge;
use voxgate_pipeline::providers::deepgram::{DeepgramConfig, DeepgramStt};
use voxgate_pipeline::providers::deepgram_speech::{DeepgramSpeech, DeepgramSpeechConfig};
use voxgate_pipeline::providers::local::embed::{Embedder, EmbedderConfig};
use voxgate_pipeline::providers::local::llm::{SmolLm, SmolLmConfig};
use voxgate_pipeline::providers::local::piper::PiperConfig;
use voxgate_pipeline::providers::local::stt::LocalStt;
use voxgate_pipeline::providers::local::tts::LocalTts;
use voxgate_pipeline::providers::local::whisper::{WhisperConfig, WhisperStt};
use voxgate_pipeline::providers::openai::{OpenAiChat, OpenAiConfig};
use voxgate_pipeline::providers::openai_realtime::{OpenAiRealtime, OpenAiRealtimeConfig};
use voxgate_pipeline::providers::openai_speech::{OpenAiSpeech, OpenAiSpeechConfig};
use voxgate_pipeline::providers::scripted::{ScriptedLlm, ScriptedStt, ScriptedTts};
use voxgate_pipeline::providers::{LanguageModel, SpeechToSpeech, SpeechToText, TextToSpeech};
use voxgate_pipeline::session::{Knowledge, Providers, SessionConfig};

use crate::config::{ControlConfig, LlmChoice, SttChoice, TtsChoice, TurnModel};
use spec::{AgentSpec, DocFormat};
use voxgate_calls::CallAgent;

/// An agent ready to take calls, with what runs after them.
#[derive(Clone)]
pub struct Agent {
    /// What its calls need: the media plane holds this.
    pub call: CallAgent,
    /// What runs after its calls.
    pub post_call: spec::PostCall,
    /// The model that reads its calls' transcripts afterwards: its own
    /// language model, or for the local one a second copy (so post-call work
    /// never holds up a live call's reply) when
    /// `post_call.local_model_analytics` asks for it; `None`: the local
    /// fallback reads them.
    pub analyst: Option<Arc<dyn LanguageModel>>,
    /// What hands a WhatsApp conversation to the team when the contact writes it (lower case).
    pub handoff_keywords: Vec<String>,
}

/// Its call settings read as its own (`agent.tenant_id`, `agent.session`).
impl std::ops::Deref for Agent {
    type Target = CallAgent;
    fn deref(&self) -> &CallAgent {
        &self.call
    }
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("call", &self.call)
            .field("analyst", &self.analyst.as_ref().map(|a| a.name()))
            .finish_non_exhaustive()
    }
}

/// The session settings an agent's definition describes.
#[must_use]
pub fn session_config(spec: &AgentSpec) -> SessionConfig {
    let t = &spec.turn;
    let e = &spec.endpointing;
    let nonzero = |v: u32| (v > 0).then_some(v);
    let mut s = SessionConfig::default();
    s.turn.greeting = Some(spec.greeting.clone()).filter(|g| !g.trim().is_empty());
    s.turn.allow_interruptions = t.allow_interruptions;
    s.turn.min_interruption_speech_ms = t.min_interruption_speech_ms;
    s.turn.min_interruption_words = t.min_interruption_words;
    s.turn.false_interruption_timeout_ms = t.false_interruption_timeout_ms;
    s.echo_cancellation = t.echo_cancellation;
    s.noise_suppression = t.noise_suppression;
    s.turn.endpointing_min_delay_ms = t.endpointing_min_delay_ms;
    s.turn.endpointing_max_delay_ms = t.endpointing_max_delay_ms;
    // Whisper answers each end of speech with one final transcript.
    s.turn.final_per_speech_end = spec.stt.provider == SttChoice::Local;
    s.turn.reprompt_after_ms = nonzero(t.reprompt_after_ms);
    s.turn.hangup_after_silence_ms = nonzero(t.hangup_after_silence_ms);
    s.turn.max_call_duration_ms = nonzero(t.max_call_duration_s).map(|v| u64::from(v) * 1000);
    s.endpoint.threshold = e.threshold;
    s.endpoint.min_speech_ms = e.min_speech_ms;
    s.endpoint.min_silence_ms = e.min_silence_ms;
    s.endpoint.pre_padding_ms = e.pre_padding_ms;
    s.endpoint.post_padding_ms = e.post_padding_ms;
    s.system_prompt.clone_from(&spec.system_prompt);
    if let Some(t) = spec.llm.temperature {
        s.temperature = t;
    }
    if let Some(m) = spec.llm.max_tokens {
        s.max_tokens = m;
    }
    s.transfer_target = Some(spec.transfer_to.clone()).filter(|t| !t.is_empty());
    s.transfer_mode = spec.transfer_mode.into();
    s.dtmf_tool = spec.send_dtmf;
    let local_llm = spec.llm.provider == LlmChoice::Local;
    // A 135M model answers best from one precise fact; larger ones use more.
    s.knowledge_passages = if local_llm { 1 } else { 3 };
    // The local model does not call tools.
    s.end_call_tool = !local_llm;
    s
}

/// Names from an agent's knowledge given to its recogniser.
const VOCABULARY_TERMS: usize = 24;

/// The offline models, each loaded the first time an agent needs it and
/// then shared by every agent. Loading is slow: call from blocking threads.
pub struct LocalModels {
    dir: std::path::PathBuf,
    whisper_min_window_ms: u32,
    whisper_vocabulary: bool,
    whisper_dir: std::path::PathBuf,
    llm: SmolLmConfig,
    whisper: Mutex<Option<Arc<LocalStt>>>,
    smollm: Mutex<Option<Arc<dyn LanguageModel>>>,
    /// A second copy for post-call analytics (the model runs one request at a time).
    smollm_analyst: Mutex<Option<Arc<dyn LanguageModel>>>,
    tts: Mutex<Option<Arc<dyn TextToSpeech>>>,
    embedder: Mutex<Option<Arc<Embedder>>>,
    smart_turn: Mutex<Option<Arc<SmartTurnModel>>>,
}

impl std::fmt::Debug for LocalModels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalModels").field("dir", &self.dir).finish_non_exhaustive()
    }
}

/// An agent could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A local model it needs does not load.
    #[error("loading {model}: {source}")]
    Model {
        model: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// One of its tools is not valid.
    #[error("the agent's tools: {0}")]
    Tools(#[from] voxgate_pipeline::session::tools::ToolError),
    /// Its answering-machine message does not decode.
    #[error("the agent's answering machine settings: {0}")]
    AnsweringMachine(#[from] spec::SpecError),
    /// The build's thread panicked (a bug).
    #[error("the build panicked: {0}")]
    Panicked(String),
}

/// A failure to load `model`, as a [`BuildError`].
fn loading<E: Into<Box<dyn std::error::Error + Send + Sync>>>(
    model: &'static str,
) -> impl FnOnce(E) -> BuildError {
    move |e| BuildError::Model { model, source: e.into() }
}

/// The shared instance in `slot`, loaded by `load` if there is none yet.
fn shared<T: ?Sized>(
    slot: &Mutex<Option<Arc<T>>>,
    load: impl FnOnce() -> Result<Arc<T>, BuildError>,
) -> Result<Arc<T>, BuildError> {
    // Loading under the lock: a second agent waits rather than loading twice.
    let mut slot = slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(v) = slot.as_ref() {
        return Ok(v.clone());
    }
    let v = load()?;
    *slot = Some(v.clone());
    Ok(v)
}

impl LocalModels {
    /// The models `[models]` names, none loaded yet.
    #[must_use]
    pub fn new(config: &crate::config::ModelsConfig) -> Self {
        Self {
            dir: config.dir.clone(),
            whisper_min_window_ms: config.whisper_min_window_ms,
            whisper_vocabulary: config.whisper_vocabulary,
            whisper_dir: config.dir.join(&config.whisper),
            llm: SmolLmConfig::for_file(config.dir.join(&config.llm)),
            whisper: Mutex::default(),
            smollm: Mutex::default(),
            smollm_analyst: Mutex::default(),
            tts: Mutex::default(),
            embedder: Mutex::default(),
            smart_turn: Mutex::default(),
        }
    }

    /// Whisper, biased toward `vocabulary` (the model itself is shared).
    fn whisper(&self, vocabulary: &[String]) -> Result<Arc<dyn SpeechToText>, BuildError> {
        let shared = shared(&self.whisper, || {
            let config = WhisperConfig {
                model_dir: self.whisper_dir.clone(),
                min_window_ms: self.whisper_min_window_ms,
                ..WhisperConfig::with_models_dir(&self.dir)
            };
            let w = WhisperStt::load(&config).map_err(loading("Whisper"))?;
            Ok(Arc::new(LocalStt::new(w)))
        })?;
        if !self.whisper_vocabulary {
            return Ok(shared);
        }
        Ok(Arc::new(shared.with_vocabulary(vocabulary).map_err(loading("Whisper's vocabulary prompt"))?))
    }

    fn smollm(&self) -> Result<Arc<dyn LanguageModel>, BuildError> {
        shared(&self.smollm, || {
            let m = SmolLm::load(&self.llm).map_err(loading("the language model"))?;
            Ok(Arc::new(m) as Arc<dyn LanguageModel>)
        })
    }

    fn smollm_analyst(&self) -> Result<Arc<dyn LanguageModel>, BuildError> {
        shared(&self.smollm_analyst, || {
            let m = SmolLm::load(&self.llm).map_err(loading("the language model"))?;
            Ok(Arc::new(m) as Arc<dyn LanguageModel>)
        })
    }

    fn tts(&self) -> Result<Arc<dyn TextToSpeech>, BuildError> {
        shared(&self.tts, || {
            let (tts, piper_error) = LocalTts::load(&PiperConfig::with_models_dir(&self.dir));
            if let Some(e) = piper_error {
                tracing::warn!(error = %e, "Piper voice unavailable; speaking with espeak-ng");
            }
            Ok(Arc::new(tts) as Arc<dyn TextToSpeech>)
        })
    }

    /// Smart Turn, as `[vad] turn_model` asks: `None` when off, or when
    /// "auto" finds no model.
    fn smart_turn(&self, config: &ControlConfig) -> Result<Option<SmartTurnModel>, BuildError> {
        let model = self.dir.join("smart-turn/smart-turn-v3.2-cpu.onnx");
        match config.vad.turn_model {
            TurnModel::Off => return Ok(None),
            TurnModel::Auto if !model.exists() => return Ok(None),
            TurnModel::Auto | TurnModel::SmartTurn => {}
        }
        let onnxruntime =
            voxgate_pipeline::dsp::vad::VadConfig::with_models_dir(&config.models.dir).onnxruntime;
        let loaded = shared(&self.smart_turn, || {
            Ok(Arc::new(SmartTurnModel::load(&onnxruntime, &model).map_err(loading("Smart Turn"))?))
        })?;
        Ok(Some((*loaded).clone()))
    }

    fn embedder(&self) -> Result<Arc<Embedder>, BuildError> {
        shared(&self.embedder, || {
            Ok(Arc::new(
                Embedder::load(&EmbedderConfig::with_models_dir(&self.dir)).map_err(loading("MiniLM"))?,
            ))
        })
    }
}

fn ms(v: u32) -> std::time::Duration {
    std::time::Duration::from_millis(u64::from(v))
}

/// `text` unless empty, else `default`.
fn or<'a>(text: &'a str, default: &'a str) -> &'a str {
    if text.trim().is_empty() { default } else { text }
}

/// Builds an agent from its definition: cloud providers get clients (with
/// the spec's model and voice, else the configured ones), local ones are
/// shared, and knowledge documents are chunked and embedded. Slow (model
/// loading, embedding): run it off the async threads.
///
/// # Errors
/// A local model that is needed but cannot be loaded, or embedding fails.
pub fn build(spec: &AgentSpec, config: &ControlConfig, local: &LocalModels) -> Result<Agent, BuildError> {
    let text: String = spec
        .knowledge
        .iter()
        .map(|d| match d.format {
            DocFormat::Text => d.content.clone(),
            DocFormat::Markdown => markdown_to_text(&d.content),
        })
        .collect::<Vec<_>>()
        .join("\n\n");
    // The names callers will say, for the recogniser to expect.
    let vocabulary = voxgate_pipeline::knowledge::vocabulary(&spec.name, &text, VOCABULARY_TERMS);
    let stt = speech_to_text(spec, config, local, vocabulary)?;
    let (llm, analyst) = language_model(spec, config, local)?;
    let tts = text_to_speech(spec, config, local)?;
    let tools =
        spec.tools
            .iter()
            .map(|tool| {
                let tool = tool.to_pipeline(config.allow_private_targets())?;
                Ok::<
                    Arc<dyn voxgate_pipeline::session::tools::Tool>,
                    voxgate_pipeline::session::tools::ToolError,
                >(Arc::new(tool))
            })
            .collect::<Result<Vec<_>, _>>()?;
    let knowledge: Option<Arc<dyn Knowledge>> = if text.trim().is_empty() {
        None
    } else {
        let base =
            LocalKnowledge::build(local.embedder()?, &text).map_err(loading("the knowledge's embeddings"))?;
        Some(Arc::new(base))
    };
    let mut session = SessionConfig { tools, ..session_config(spec) };
    // "No limit" from a tenant is the operator's maximum.
    config.limits.cap(&mut session.turn);
    session.max_history_tokens = config.limits.max_history_tokens as usize;
    session.endpoint.transcribe_early_ms = config.vad.transcribe_early_ms;
    // Scripted agents (load tests) load no model at all.
    let learned_turns = spec.stt.provider != SttChoice::Scripted;
    if learned_turns && let Some(model) = local.smart_turn(config)? {
        session.turn_detector = Some(Arc::new(model));
        session.endpoint.turn_check_ms = config.vad.turn_check_ms;
        session.endpoint.incomplete_silence_ms = config.vad.incomplete_silence_ms;
    }
    let call = CallAgent {
        id: None,
        tenant_id: None,
        name: spec.name.clone(),
        session,
        providers: Providers { stt, llm, tts, knowledge, speech_to_speech: speech_to_speech(spec, config) },
        widget: spec.widget.clone(),
        max_calls: spec.max_concurrent_calls,
        public: spec.public,
        plan: voxgate_calls::PlanGate::default(),
        srtp: spec.srtp,
        answering_machine: spec.answering_machine.to_session()?,
    };
    let handoff_keywords = spec.handoff_keywords.iter().map(|k| k.trim().to_lowercase()).collect();
    Ok(Agent { call, post_call: spec.post_call.clone(), analyst, handoff_keywords })
}

/// The recogniser `spec` names, expecting `vocabulary`.
fn speech_to_text(
    spec: &AgentSpec,
    config: &ControlConfig,
    local: &LocalModels,
    vocabulary: Vec<String>,
) -> Result<Arc<dyn SpeechToText>, BuildError> {
    Ok(match spec.stt.provider {
        SttChoice::Local => local.whisper(&vocabulary)?,
        SttChoice::Scripted => {
            let mut stt = ScriptedStt::default();
            stt.default_text.clone_from(&config.scripted.transcript);
            stt.latency = ms(config.scripted.stt_latency_ms);
            Arc::new(stt)
        }
        SttChoice::Deepgram => Arc::new(DeepgramStt::new(DeepgramConfig {
            base_url: config.deepgram.base_url.clone(),
            api_key: config.deepgram.api_key.or_env("DEEPGRAM_API_KEY"),
            model: or(&spec.stt.model, &config.deepgram.stt_model).to_owned(),
            language: spec.language.clone(),
            endpointing_ms: 300,
            utterance_end_ms: 1000,
            vocabulary,
        })),
    })
}

/// The model that reads an agent's calls afterwards, if not the local fallback.
type Analyst = Option<Arc<dyn LanguageModel>>;

/// The language model `spec` names, and the one that reads its calls afterwards.
fn language_model(
    spec: &AgentSpec,
    config: &ControlConfig,
    local: &LocalModels,
) -> Result<(Arc<dyn LanguageModel>, Analyst), BuildError> {
    Ok(match spec.llm.provider {
        LlmChoice::Local if config.post_call.local_model_analytics => {
            (local.smollm()?, Some(local.smollm_analyst()?))
        }
        LlmChoice::Local => (local.smollm()?, None),
        LlmChoice::Scripted => {
            let s = &config.scripted;
            let mut llm = ScriptedLlm::new(Vec::new());
            llm.default_reply.clone_from(&s.reply);
            llm.first_token = ms(s.llm_first_token_ms);
            llm.per_token = ms(s.llm_per_token_ms);
            // Analytics get the local reading: a scripted model writes no JSON.
            (Arc::new(llm), None)
        }
        LlmChoice::Openai | LlmChoice::OpenaiRealtime => {
            let chat = Arc::new(OpenAiChat::new(&OpenAiConfig {
                base_url: config.openai.base_url.clone(),
                api_key: config.openai.api_key.or_env("OPENAI_API_KEY"),
                // A realtime agent's model is the speech-to-speech one; its chat model is the server's.
                model: match spec.llm.provider {
                    LlmChoice::OpenaiRealtime => config.openai.model.clone(),
                    _ => or(&spec.llm.model, &config.openai.model).to_owned(),
                },
            }));
            (chat.clone(), Some(chat))
        }
    })
}

/// The speech-to-speech model `spec` names, if any (`llm.params.voice`
/// chooses its voice).
fn speech_to_speech(spec: &AgentSpec, config: &ControlConfig) -> Option<Arc<dyn SpeechToSpeech>> {
    if spec.llm.provider != LlmChoice::OpenaiRealtime {
        return None;
    }
    let o = &config.openai;
    Some(Arc::new(OpenAiRealtime::new(OpenAiRealtimeConfig {
        url: o.realtime_url.clone(),
        api_key: o.api_key.or_env("OPENAI_API_KEY"),
        model: or(&spec.llm.model, &o.realtime_model).to_owned(),
        voice: spec.llm.params.get("voice").and_then(|v| v.as_str()).unwrap_or(&o.realtime_voice).to_owned(),
        ..OpenAiRealtimeConfig::default()
    })))
}

/// The voice `spec` names.
fn text_to_speech(
    spec: &AgentSpec,
    config: &ControlConfig,
    local: &LocalModels,
) -> Result<Arc<dyn TextToSpeech>, BuildError> {
    Ok(match spec.tts.provider {
        TtsChoice::Local => local.tts()?,
        TtsChoice::Scripted => {
            let mut tts = ScriptedTts::default();
            tts.first_audio = ms(config.scripted.tts_first_audio_ms);
            tts.per_word = ms(config.scripted.tts_per_word_ms);
            Arc::new(tts)
        }
        TtsChoice::Openai => Arc::new(OpenAiSpeech::new(OpenAiSpeechConfig {
            base_url: config.openai.base_url.clone(),
            api_key: config.openai.api_key.or_env("OPENAI_API_KEY"),
            model: or(&spec.tts.model, &config.openai.tts_model).to_owned(),
            voice: or(&spec.tts.voice, &config.openai.tts_voice).to_owned(),
        })),
        TtsChoice::Deepgram => Arc::new(DeepgramSpeech::new(DeepgramSpeechConfig {
            base_url: config.deepgram.base_url.clone(),
            api_key: config.deepgram.api_key.or_env("DEEPGRAM_API_KEY"),
            // Aura names the voice in the model (aura-2-thalia-en).
            model: or(&spec.tts.voice, or(&spec.tts.model, &config.deepgram.tts_model)).to_owned(),
            sample_rate: SampleRate::HZ_24000,
        })),
    })
}

/// Markdown as the plain text passages are cut from: headings, list
/// markers, emphasis and link targets dropped; a heading starts a paragraph.
#[must_use]
pub fn markdown_to_text(md: &str) -> String {
    let mut out = String::with_capacity(md.len());
    let mut in_code = false;
    for line in md.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let heading = trimmed.starts_with('#');
        let mut text = trimmed.trim_start_matches('#').trim_start();
        for marker in ["- ", "* ", "+ ", "> "] {
            text = text.strip_prefix(marker).unwrap_or(text);
        }
        let digits = text.chars().take_while(char::is_ascii_digit).count();
        if digits > 0 && text[digits..].starts_with(". ") {
            text = &text[digits + 2..];
        }
        // [label](target) -> label; **, __, ` dropped.
        let mut plain = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(open) = rest.find('[') {
            let Some(close) = rest[open..].find("](").map(|i| open + i) else { break };
            let Some(end) = rest[close..].find(')').map(|i| close + i) else { break };
            plain.push_str(&rest[..open]);
            plain.push_str(&rest[open + 1..close]);
            rest = &rest[end + 1..];
        }
        plain.push_str(rest);
        let plain = plain.replace("**", "").replace("__", "").replace('`', "");
        if heading {
            // A heading opens a paragraph and reads as its first sentence.
            out.push('\n');
            out.push_str(plain.trim_end_matches(['.', ':']));
            out.push_str(".\n");
        } else {
            out.push_str(&plain);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_agent_keeps_the_pipeline_defaults_and_greets() {
        let s = session_config(&AgentSpec::from_config(&ControlConfig::default()));
        let defaults = SessionConfig::default();
        assert_eq!(s.turn.min_interruption_speech_ms, defaults.turn.min_interruption_speech_ms);
        assert_eq!(s.turn.reprompt_after_ms, defaults.turn.reprompt_after_ms);
        assert_eq!(s.turn.max_call_duration_ms, defaults.turn.max_call_duration_ms);
        assert_eq!(s.endpoint, defaults.endpoint);
        assert!(s.turn.greeting.is_some_and(|g| g.contains("Sunrise Bakery")));
        assert_eq!(s.knowledge_passages, 1);
    }

    #[test]
    fn zero_means_never_and_empty_greeting_listens_first() {
        let mut c = ControlConfig::default();
        c.agent.greeting = " ".into();
        c.agent.reprompt_after_ms = 0;
        c.agent.max_call_duration_s = 0;
        c.agent.transfer_to = "sip:desk@example.com".into();
        let s = session_config(&AgentSpec::from_config(&c));
        assert_eq!(
            (s.turn.greeting, s.turn.reprompt_after_ms, s.turn.max_call_duration_ms),
            (None, None, None)
        );
        assert_eq!(s.transfer_target.as_deref(), Some("sip:desk@example.com"));
        assert_eq!(s.transfer_mode, voxgate_pipeline::session::TransferMode::Blind, "blind by default");
        c.agent.transfer_mode = crate::config::TransferModeChoice::Warm;
        let s = session_config(&AgentSpec::from_config(&c));
        assert_eq!(s.transfer_mode, voxgate_pipeline::session::TransferMode::Warm);
    }

    #[test]
    fn a_realtime_agent_answers_with_the_speech_to_speech_model() {
        let choice: LlmChoice = serde_json::from_str("\"openai_realtime\"").expect("a choice");
        assert_eq!(choice, LlmChoice::OpenaiRealtime);
        let config = ControlConfig::default();
        let mut spec = AgentSpec::from_config(&config);
        assert!(speech_to_speech(&spec, &config).is_none(), "the local model is no speech-to-speech one");
        spec.llm.provider = LlmChoice::OpenaiRealtime;
        let model = speech_to_speech(&spec, &config).expect("a speech-to-speech model");
        assert_eq!(model.name(), "openai-realtime");
    }

    #[test]
    fn echo_cancellation_is_the_agents_choice() {
        let mut c = ControlConfig::default();
        assert!(!session_config(&AgentSpec::from_config(&c)).echo_cancellation, "off by default");
        c.agent.echo_cancellation = true;
        assert!(session_config(&AgentSpec::from_config(&c)).echo_cancellation);
        let mut spec = AgentSpec::from_config(&ControlConfig::default());
        spec.turn.echo_cancellation = true;
        assert!(session_config(&spec).echo_cancellation);
    }

    #[test]
    fn noise_suppression_is_the_agents_choice() {
        let mut c = ControlConfig::default();
        assert!(!session_config(&AgentSpec::from_config(&c)).noise_suppression, "off by default");
        c.agent.noise_suppression = true;
        assert!(session_config(&AgentSpec::from_config(&c)).noise_suppression);
        let mut spec = AgentSpec::from_config(&ControlConfig::default());
        spec.turn.noise_suppression = true;
        assert!(session_config(&spec).noise_suppression);
    }

    #[test]
    fn markdown_reads_as_plain_sentences() {
        let md = "# Opening hours\n- **Weekdays**: 7 to 6\n1. See [our map](https://x.example/map)\n```\nraw\n```\n";
        let text = markdown_to_text(md);
        assert!(text.contains("Opening hours.\n"), "{text}");
        assert!(text.contains("Weekdays: 7 to 6"), "{text}");
        assert!(text.contains("See our map") && !text.contains("https://"), "{text}");
        assert!(text.contains("raw"), "{text}");
    }
}
