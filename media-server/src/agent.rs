//! The agent callers talk to, built from `[agent]` and the provider
//! sections: its turn-taking and prompt ([`SessionConfig`]) and its
//! providers, loaded once and shared by every call.

use std::sync::Arc;

use anyhow::Context as _;
use voxgate_codecs::SampleRate;
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
use voxgate_pipeline::providers::openai_speech::{OpenAiSpeech, OpenAiSpeechConfig};
use voxgate_pipeline::providers::{LanguageModel, SpeechToText, TextToSpeech};
use voxgate_pipeline::session::{Knowledge, Providers, SessionConfig};

use crate::config::{Config, LlmChoice, SttChoice, TtsChoice};

/// An agent ready to take calls.
#[derive(Debug, Clone)]
pub struct Agent {
    pub name: String,
    pub session: SessionConfig,
    pub providers: Providers,
}

/// The session settings `[agent]` and `[endpointing]` describe.
#[must_use]
pub fn session_config(config: &Config) -> SessionConfig {
    let a = &config.agent;
    let e = &config.endpointing;
    let nonzero = |v: u32| (v > 0).then_some(v);
    let mut s = SessionConfig::default();
    s.turn.greeting = Some(a.greeting.clone()).filter(|g| !g.trim().is_empty());
    s.turn.allow_interruptions = a.allow_interruptions;
    s.turn.min_interruption_speech_ms = a.min_interruption_speech_ms;
    s.turn.min_interruption_words = a.min_interruption_words;
    s.turn.false_interruption_timeout_ms = a.false_interruption_timeout_ms;
    s.turn.endpointing_min_delay_ms = a.endpointing_min_delay_ms;
    s.turn.endpointing_max_delay_ms = a.endpointing_max_delay_ms;
    s.turn.reprompt_after_ms = nonzero(a.reprompt_after_ms);
    s.turn.hangup_after_silence_ms = nonzero(a.hangup_after_silence_ms);
    s.turn.max_call_duration_ms = nonzero(a.max_call_duration_s).map(|v| u64::from(v) * 1000);
    s.endpoint.threshold = e.threshold;
    s.endpoint.min_speech_ms = e.min_speech_ms;
    s.endpoint.min_silence_ms = e.min_silence_ms;
    s.endpoint.pre_padding_ms = e.pre_padding_ms;
    s.endpoint.post_padding_ms = e.post_padding_ms;
    s.system_prompt.clone_from(&a.system_prompt);
    s.transfer_target = Some(a.transfer_to.clone()).filter(|t| !t.is_empty());
    s.dtmf_tool = a.send_dtmf;
    // A 135M model answers best from one precise fact; larger ones use more.
    s.knowledge_passages = if a.llm == LlmChoice::Local { 1 } else { 3 };
    // The local model does not call tools.
    s.end_call_tool = a.llm != LlmChoice::Local;
    s
}

/// Loads the configured agent: local models from `models.dir`, clients for
/// cloud providers. Slow (model loading): run it off the async threads.
///
/// # Errors
/// A local model that is configured but cannot be loaded.
pub fn load(config: &Config) -> anyhow::Result<Agent> {
    let a = &config.agent;
    let models = &config.models.dir;
    let stt: Arc<dyn SpeechToText> = match a.stt {
        SttChoice::Local => Arc::new(LocalStt::new(
            WhisperStt::load(&WhisperConfig::with_models_dir(models)).context("loading Whisper")?,
        )),
        SttChoice::Deepgram => Arc::new(DeepgramStt::new(DeepgramConfig {
            base_url: config.deepgram.base_url.clone(),
            api_key: config.deepgram.api_key.or_env("DEEPGRAM_API_KEY"),
            model: config.deepgram.stt_model.clone(),
            endpointing_ms: 300,
            utterance_end_ms: 1000,
        })),
    };
    let llm: Arc<dyn LanguageModel> = match a.llm {
        LlmChoice::Local => {
            Arc::new(SmolLm::load(&SmolLmConfig::with_models_dir(models)).context("loading SmolLM2")?)
        }
        LlmChoice::Openai => Arc::new(OpenAiChat::new(&OpenAiConfig {
            base_url: config.openai.base_url.clone(),
            api_key: config.openai.api_key.or_env("OPENAI_API_KEY"),
            model: config.openai.model.clone(),
        })),
    };
    let tts: Arc<dyn TextToSpeech> = match a.tts {
        TtsChoice::Local => {
            let (tts, piper_error) = LocalTts::load(&PiperConfig::with_models_dir(models));
            if let Some(e) = piper_error {
                tracing::warn!(error = %e, "Piper voice unavailable; speaking with espeak-ng");
            }
            Arc::new(tts)
        }
        TtsChoice::Openai => Arc::new(OpenAiSpeech::new(OpenAiSpeechConfig {
            base_url: config.openai.base_url.clone(),
            api_key: config.openai.api_key.or_env("OPENAI_API_KEY"),
            model: config.openai.tts_model.clone(),
            voice: config.openai.tts_voice.clone(),
        })),
        TtsChoice::Deepgram => Arc::new(DeepgramSpeech::new(DeepgramSpeechConfig {
            base_url: config.deepgram.base_url.clone(),
            api_key: config.deepgram.api_key.or_env("DEEPGRAM_API_KEY"),
            model: config.deepgram.tts_model.clone(),
            sample_rate: SampleRate::HZ_24000,
        })),
    };
    let knowledge: Option<Arc<dyn Knowledge>> = if a.knowledge.trim().is_empty() {
        None
    } else {
        let embedder = Embedder::load(&EmbedderConfig::with_models_dir(models)).context("loading MiniLM")?;
        let base =
            LocalKnowledge::build(Arc::new(embedder), &a.knowledge).context("embedding the knowledge")?;
        Some(Arc::new(base))
    };
    Ok(Agent {
        name: a.name.clone(),
        session: session_config(config),
        providers: Providers { stt, llm, tts, knowledge },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_agent_keeps_the_pipeline_defaults_and_greets() {
        let s = session_config(&Config::default());
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
        let mut c = Config::default();
        c.agent.greeting = " ".into();
        c.agent.reprompt_after_ms = 0;
        c.agent.max_call_duration_s = 0;
        c.agent.transfer_to = "sip:desk@example.com".into();
        let s = session_config(&c);
        assert_eq!(
            (s.turn.greeting, s.turn.reprompt_after_ms, s.turn.max_call_duration_ms),
            (None, None, None)
        );
        assert_eq!(s.transfer_target.as_deref(), Some("sip:desk@example.com"));
    }
}
