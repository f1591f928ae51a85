//! An agent's definition, as the control API reads and writes it and the
//! database keeps it (JSON): prompt, voice, providers, turn-taking,
//! knowledge, tools, numbers, widget and post-call settings.
//!
//! The configured agent (`[agent]` in config.toml) is one of these too
//! ([`AgentSpec::from_config`]), so every call is built the same way.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use voxgate_pipeline::session::tools::ToolError;

use crate::config::{ControlConfig, EndpointSettings, LlmChoice, SttChoice, TtsChoice, WidgetConfig};

/// Written in place of a stored secret when an agent is read; writing it
/// back keeps the stored value.
pub const REDACTED: &str = "********";

/// An agent. Every field has a default except `name`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AgentSpec {
    /// 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    pub system_prompt: String,
    /// First words of every call; empty: listen first.
    pub greeting: String,
    /// BCP 47 tag, e.g. `en` or `en-US`.
    pub language: String,
    pub stt: SttSpec,
    pub llm: LlmSpec,
    pub tts: TtsSpec,
    pub turn: TurnSpec,
    pub endpointing: EndpointSettings,
    /// Documents the agent answers from: chunked into passages and embedded
    /// (MiniLM); each question retrieves the closest.
    pub knowledge: Vec<KnowledgeDoc>,
    /// HTTP endpoints the agent's model may call.
    pub tools: Vec<HttpTool>,
    /// Numbers (SIP user parts, e.g. `+15550100` or `1000`) routed to this agent.
    pub numbers: Vec<String>,
    pub widget: WidgetConfig,
    pub post_call: PostCall,
    /// Where the transfer-to-human tool sends callers (a SIP URI); empty: no such tool.
    pub transfer_to: String,
    /// `blind`: the caller is sent to `transfer_to` at once (SIP REFER).
    /// `warm`: the caller holds while the agent calls `transfer_to` through
    /// the trunk and tells them about the call, then the two are joined (or
    /// the caller is back with the agent if nobody takes it). Phone calls.
    pub transfer_mode: crate::config::TransferModeChoice,
    /// Give the agent a tool that presses phone keys (RFC 4733).
    pub send_dtmf: bool,
    /// Words or phrases that hand a WhatsApp conversation to the team at
    /// once when the contact writes one (any case), e.g. `human`, `speak to
    /// a person`; the agent's `escalate_to_human` tool does the same when it
    /// judges so. At most 20, each 1 to 50 characters.
    pub handoff_keywords: Vec<String>,
    /// Calls and chats it takes at once, below its tenant's limit (0: only
    /// the tenant's and the server's limits apply); at most 100000.
    #[schema(maximum = 100_000)]
    pub max_concurrent_calls: u32,
    /// Anonymous visitors may reach it over the public media endpoints (the
    /// widget, chat, WebRTC, websocket streams); off, only clients with the
    /// media key or a media token (the widget mints them for public agents).
    pub public: bool,
    /// Its phone calls' media: `off`, `offer` or `require` SRTP (SDES keys,
    /// only over SIP over TLS); none: the server's `rtp.srtp`.
    pub srtp: Option<voxgate_calls::agent::SrtpMode>,
    /// On the calls it places: answering-machine detection, and what to do
    /// about a machine.
    pub answering_machine: super::answering::AnsweringMachineSpec,
}

/// Speech to text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SttSpec {
    pub provider: SttChoice,
    /// Empty: the provider's configured default.
    pub model: String,
    /// Provider-specific options, passed through.
    #[schema(value_type = Object)]
    pub params: BTreeMap<String, serde_json::Value>,
}

/// The language model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LlmSpec {
    pub provider: LlmChoice,
    /// Empty: the provider's configured default.
    pub model: String,
    /// 0 to 2; none: the provider's default.
    pub temperature: Option<f32>,
    /// Longest reply, in tokens (1 to 4096); none: the provider's default.
    pub max_tokens: Option<u32>,
    #[schema(value_type = Object)]
    pub params: BTreeMap<String, serde_json::Value>,
}

/// Text to speech.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TtsSpec {
    pub provider: TtsChoice,
    /// Empty: the provider's configured default.
    pub model: String,
    /// Empty: the provider's configured default.
    pub voice: String,
    #[schema(value_type = Object)]
    pub params: BTreeMap<String, serde_json::Value>,
}

/// Turn-taking and barge-in. Times in ms; 0 means never (for the optional ones).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TurnSpec {
    /// Whether the caller can talk over the agent (barge-in).
    pub allow_interruptions: bool,
    pub min_interruption_speech_ms: u32,
    pub min_interruption_words: u32,
    pub false_interruption_timeout_ms: u32,
    /// Take the agent's own voice, echoed back by the caller's phone, out
    /// of what the caller says (so it cannot interrupt the agent).
    pub echo_cancellation: bool,
    /// Turn the caller's background noise (an office, a street) down
    /// before voice activity detection (RNNoise), so it does not pause the
    /// agent; the recogniser and the recording hear the caller as they came.
    pub noise_suppression: bool,
    pub endpointing_min_delay_ms: u32,
    pub endpointing_max_delay_ms: u32,
    /// Silence before "Are you still there?"; 0: never.
    pub reprompt_after_ms: u32,
    /// Silence before the agent says goodbye and hangs up; 0: never.
    pub hangup_after_silence_ms: u32,
    /// Longest call, in seconds; 0: no limit.
    pub max_call_duration_s: u32,
}

impl Default for TurnSpec {
    fn default() -> Self {
        Self::from_config(&crate::config::AgentSettings::default())
    }
}

impl TurnSpec {
    fn from_config(a: &crate::config::AgentSettings) -> Self {
        Self {
            allow_interruptions: a.allow_interruptions,
            min_interruption_speech_ms: a.min_interruption_speech_ms,
            min_interruption_words: a.min_interruption_words,
            false_interruption_timeout_ms: a.false_interruption_timeout_ms,
            echo_cancellation: a.echo_cancellation,
            noise_suppression: a.noise_suppression,
            endpointing_min_delay_ms: a.endpointing_min_delay_ms,
            endpointing_max_delay_ms: a.endpointing_max_delay_ms,
            reprompt_after_ms: a.reprompt_after_ms,
            hangup_after_silence_ms: a.hangup_after_silence_ms,
            max_call_duration_s: a.max_call_duration_s,
        }
    }
}

/// A knowledge document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KnowledgeDoc {
    /// 1 to 200 characters, e.g. a file name.
    pub name: String,
    #[serde(default)]
    pub format: DocFormat,
    /// At most 256 KiB.
    pub content: String,
}

/// How a knowledge document is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DocFormat {
    #[default]
    Text,
    Markdown,
}

/// An HTTP endpoint the model may call: its arguments, checked against
/// `parameters`, are POSTed as JSON; the response body goes back to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpTool {
    /// What the model calls it: letters, digits, `_` and `-`, up to 64; not
    /// a built-in's name (`end_call`, `transfer_to_human`, `send_dtmf`,
    /// `escalate_to_human`).
    pub name: String,
    /// When to use it, for the model.
    pub description: String,
    /// `http://` or `https://`.
    pub url: String,
    /// How long to wait for its answer, in ms (100 to 30000).
    #[serde(default = "tool_timeout_ms")]
    pub timeout_ms: u32,
    /// The arguments' JSON Schema (an object schema).
    #[serde(default = "empty_object_schema")]
    #[schema(value_type = Object)]
    pub parameters: serde_json::Value,
    /// Sent with every request, e.g. an `Authorization` header; values are secrets.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn tool_timeout_ms() -> u32 {
    5_000
}

impl HttpTool {
    /// The tool as the pipeline runs it.
    ///
    /// # Errors
    /// A malformed or built-in name, or a schema that does not compile.
    pub fn to_pipeline(
        &self,
        allow_private: bool,
    ) -> Result<voxgate_pipeline::session::tools::HttpTool, ToolError> {
        let tool = voxgate_pipeline::session::tools::HttpTool::new(
            &self.name,
            &self.description,
            self.parameters.clone(),
            &self.url,
            self.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            std::time::Duration::from_millis(u64::from(self.timeout_ms)),
        )?;
        Ok(tool.through(voxgate_guarded_http::shared(allow_private)))
    }
}

fn empty_object_schema() -> serde_json::Value {
    serde_json::json!({ "type": "object", "properties": {} })
}

/// What runs after each call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PostCall {
    /// Email the visitor a summary when their address is known.
    pub email: bool,
    /// The email's body; `{{summary}}`, `{{agent}}` and `{{transcript}}` are filled in.
    pub email_template: String,
    /// Sync the contact and a note to a CRM; none: no sync.
    pub crm: Option<CrmSpec>,
    pub webhooks: Vec<Webhook>,
}

/// A HubSpot-compatible CRM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CrmSpec {
    /// e.g. `https://api.hubapi.com`.
    pub base_url: String,
    /// A private-app token (secret).
    pub token: String,
}

/// Where call events are POSTed, signed with HMAC-SHA256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    pub url: String,
    /// The signing key (secret).
    pub secret: String,
    /// Any of `call.started`, `call.ended`, `call.analyzed`,
    /// `conversation.escalated` (WhatsApp, handed to the team); empty: all.
    #[serde(default)]
    pub events: Vec<String>,
}

/// Events a webhook can subscribe to.
pub const WEBHOOK_EVENTS: [&str; 4] =
    ["call.started", "call.ended", "call.analyzed", "conversation.escalated"];

impl Default for AgentSpec {
    fn default() -> Self {
        Self {
            name: String::new(),
            system_prompt: String::new(),
            greeting: String::new(),
            language: "en".into(),
            stt: SttSpec::default(),
            llm: LlmSpec::default(),
            tts: TtsSpec::default(),
            turn: TurnSpec::default(),
            endpointing: EndpointSettings::default(),
            knowledge: Vec::new(),
            tools: Vec::new(),
            numbers: Vec::new(),
            widget: WidgetConfig::default(),
            post_call: PostCall::default(),
            transfer_to: String::new(),
            transfer_mode: crate::config::TransferModeChoice::Blind,
            send_dtmf: false,
            handoff_keywords: Vec::new(),
            max_concurrent_calls: 0,
            public: false,
            srtp: None,
            answering_machine: super::answering::AnsweringMachineSpec::default(),
        }
    }
}

/// Why an agent definition is refused: the field and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct SpecError {
    pub field: String,
    pub reason: String,
}

/// `s` is `min` to `max` characters long.
fn len_within(field: &str, s: &str, min: usize, max: usize) -> Result<(), SpecError> {
    let n = s.chars().count();
    if n < min || n > max {
        Err(refuse(field, format!("must be {min} to {max} characters (is {n})")))
    } else {
        Ok(())
    }
}

fn refuse(field: impl Into<String>, reason: impl Into<String>) -> SpecError {
    SpecError { field: field.into(), reason: reason.into() }
}

fn http_url(s: &str) -> bool {
    (s.starts_with("http://") || s.starts_with("https://"))
        && s.len() > 8
        && s.len() <= 2048
        && !s.contains(char::is_whitespace)
}

impl AgentSpec {
    /// Bytes of knowledge documents it holds (plans limit them).
    #[must_use]
    pub fn knowledge_bytes(&self) -> u64 {
        self.knowledge.iter().map(|d| d.content.len() as u64).sum()
    }

    /// The agent `[agent]` (and `[endpointing]`, `[widget]`) configure.
    #[must_use]
    pub fn from_config(config: &ControlConfig) -> Self {
        let a = &config.agent;
        Self {
            name: a.name.clone(),
            system_prompt: a.system_prompt.clone(),
            greeting: a.greeting.clone(),
            stt: SttSpec { provider: a.stt, ..SttSpec::default() },
            llm: LlmSpec { provider: a.llm, ..LlmSpec::default() },
            tts: TtsSpec { provider: a.tts, ..TtsSpec::default() },
            turn: TurnSpec::from_config(a),
            endpointing: config.endpointing.clone(),
            knowledge: if a.knowledge.trim().is_empty() {
                Vec::new()
            } else {
                vec![KnowledgeDoc {
                    name: "config.toml".into(),
                    format: DocFormat::Text,
                    content: a.knowledge.clone(),
                }]
            },
            numbers: config.numbers.clone(),
            widget: config.widget.clone(),
            transfer_to: a.transfer_to.clone(),
            transfer_mode: a.transfer_mode,
            send_dtmf: a.send_dtmf,
            answering_machine: super::answering::AnsweringMachineSpec {
                on_machine: a.answering_machine,
                message: a.voicemail_message.clone(),
                ..super::answering::AnsweringMachineSpec::default()
            },
            max_concurrent_calls: 0,
            public: a.public,
            ..Self::default()
        }
    }

    /// Checks what serde cannot: lengths, ranges, URLs, schemas.
    ///
    /// # Errors
    /// The first field that is wrong, and why.
    pub fn validate(&self) -> Result<(), SpecError> {
        // As sent, as the schema says; then not blank (it is stored trimmed).
        len_within("name", &self.name, 1, 100)?;
        if self.name.trim().is_empty() {
            return Err(refuse("name", "must not be blank"));
        }
        len_within("system_prompt", &self.system_prompt, 0, 20_000)?;
        len_within("greeting", &self.greeting, 0, 2_000)?;
        let lang_ok = !self.language.is_empty()
            && self.language.len() <= 35
            && self
                .language
                .split('-')
                .all(|p| !p.is_empty() && p.len() <= 8 && p.chars().all(|c| c.is_ascii_alphanumeric()));
        if !lang_ok {
            return Err(refuse("language", "not a BCP 47 tag (e.g. en, en-US)"));
        }
        len_within("stt.model", &self.stt.model, 0, 100)?;
        len_within("llm.model", &self.llm.model, 0, 100)?;
        len_within("tts.model", &self.tts.model, 0, 100)?;
        len_within("tts.voice", &self.tts.voice, 0, 100)?;
        if self.llm.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
            return Err(refuse("llm.temperature", "must be 0 to 2"));
        }
        if self.llm.max_tokens.is_some_and(|t| !(1..=4096).contains(&t)) {
            return Err(refuse("llm.max_tokens", "must be 1 to 4096"));
        }
        self.validate_turn()?;
        if self.knowledge.len() > 50 {
            return Err(refuse("knowledge", "at most 50 documents"));
        }
        for (i, d) in self.knowledge.iter().enumerate() {
            len_within(&format!("knowledge[{i}].name"), &d.name, 1, 200)?;
            if d.content.len() > 256 * 1024 {
                return Err(refuse(format!("knowledge[{i}].content"), "at most 256 KiB"));
            }
        }
        self.validate_tools()?;
        if self.numbers.len() > 100 {
            return Err(refuse("numbers", "at most 100"));
        }
        if self.handoff_keywords.len() > 20 {
            return Err(refuse("handoff_keywords", "at most 20"));
        }
        for (i, k) in self.handoff_keywords.iter().enumerate() {
            len_within(&format!("handoff_keywords[{i}]"), k.trim(), 1, 50)?;
        }
        if self.max_concurrent_calls > 100_000 {
            return Err(refuse("max_concurrent_calls", "must be at most 100000"));
        }
        for (i, n) in self.numbers.iter().enumerate() {
            if let Err(reason) = check_number(n) {
                return Err(refuse(format!("numbers[{i}]"), reason));
            }
            if self.numbers[..i].contains(n) {
                return Err(refuse(format!("numbers[{i}]"), "listed twice"));
            }
        }
        len_within("widget.title", &self.widget.title, 0, 100)?;
        if let Some((setting, reason)) = self.widget.problem() {
            return Err(refuse(setting, reason));
        }
        let p = &self.post_call;
        len_within("post_call.email_template", &p.email_template, 0, 20_000)?;
        if let Some(crm) = &p.crm {
            if !http_url(&crm.base_url) {
                return Err(refuse("post_call.crm.base_url", "must be an http(s) URL"));
            }
            len_within("post_call.crm.token", &crm.token, 1, 500)?;
        }
        if p.webhooks.len() > 10 {
            return Err(refuse("post_call.webhooks", "at most 10"));
        }
        for (i, h) in p.webhooks.iter().enumerate() {
            if !http_url(&h.url) {
                return Err(refuse(format!("post_call.webhooks[{i}].url"), "must be an http(s) URL"));
            }
            len_within(&format!("post_call.webhooks[{i}].secret"), &h.secret, 16, 200)?;
            if let Some(e) = h.events.iter().find(|e| !WEBHOOK_EVENTS.contains(&e.as_str())) {
                return Err(refuse(
                    format!("post_call.webhooks[{i}].events"),
                    format!("unknown event {e:?}"),
                ));
            }
        }
        self.answering_machine.validate("answering_machine")?;
        if !self.transfer_to.is_empty()
            && !self.transfer_to.starts_with("sip:")
            && !self.transfer_to.starts_with("sips:")
        {
            return Err(refuse("transfer_to", "must be empty or a sip: URI"));
        }
        Ok(())
    }

    /// The turn-taking and endpointing settings within their ranges.
    fn validate_turn(&self) -> Result<(), SpecError> {
        let t = &self.turn;
        for (field, v, max) in [
            ("turn.min_interruption_speech_ms", t.min_interruption_speech_ms, 10_000),
            ("turn.min_interruption_words", t.min_interruption_words, 20),
            ("turn.false_interruption_timeout_ms", t.false_interruption_timeout_ms, 10_000),
            ("turn.endpointing_min_delay_ms", t.endpointing_min_delay_ms, 10_000),
            ("turn.endpointing_max_delay_ms", t.endpointing_max_delay_ms, 30_000),
            ("turn.reprompt_after_ms", t.reprompt_after_ms, 600_000),
            ("turn.hangup_after_silence_ms", t.hangup_after_silence_ms, 3_600_000),
            ("turn.max_call_duration_s", t.max_call_duration_s, 86_400),
        ] {
            if v > max {
                return Err(refuse(field, format!("must be at most {max}")));
            }
        }
        if t.endpointing_min_delay_ms > t.endpointing_max_delay_ms {
            return Err(refuse("turn.endpointing_min_delay_ms", "must not exceed endpointing_max_delay_ms"));
        }
        let e = &self.endpointing;
        if !(0.0..=1.0).contains(&e.threshold) {
            return Err(refuse("endpointing.threshold", "must be 0 to 1"));
        }
        for (field, v) in [
            ("endpointing.min_speech_ms", e.min_speech_ms),
            ("endpointing.min_silence_ms", e.min_silence_ms),
            ("endpointing.pre_padding_ms", e.pre_padding_ms),
            ("endpointing.post_padding_ms", e.post_padding_ms),
        ] {
            if v > 10_000 {
                return Err(refuse(field, "must be at most 10000"));
            }
        }
        Ok(())
    }

    /// The HTTP tools: unique names, URLs, timeouts, schemas and headers.
    fn validate_tools(&self) -> Result<(), SpecError> {
        if self.tools.len() > 20 {
            return Err(refuse("tools", "at most 20 tools"));
        }
        for (i, tool) in self.tools.iter().enumerate() {
            let field = |f: &str| format!("tools[{i}].{f}");
            if self.tools[..i].iter().any(|o| o.name == tool.name) {
                return Err(refuse(field("name"), "used twice"));
            }
            len_within(&field("description"), &tool.description, 1, 1_000)?;
            if !http_url(&tool.url) {
                return Err(refuse(field("url"), "must be an http:// or https:// URL"));
            }
            if !(100..=30_000).contains(&tool.timeout_ms) {
                return Err(refuse(field("timeout_ms"), "must be 100 to 30000"));
            }
            if tool.parameters.get("type").and_then(serde_json::Value::as_str) != Some("object") {
                return Err(refuse(field("parameters"), "must be a JSON Schema with \"type\": \"object\""));
            }
            // The name and schema rules are the pipeline's, where the tool runs.
            if let Err(e) = tool.to_pipeline(false) {
                return Err(match e {
                    ToolError::Name { .. } => {
                        refuse(field("name"), "1 to 64 letters, digits, _ or -, not a built-in tool's name")
                    }
                    ToolError::Schema { message, .. } => {
                        refuse(field("parameters"), format!("not a valid JSON Schema: {message}"))
                    }
                    e => refuse(field("name"), e.to_string()),
                });
            }
            if tool.headers.len() > 20 || tool.headers.iter().any(|(k, v)| !header_ok(k, v)) {
                return Err(refuse(field("headers"), "at most 20 valid HTTP header names and values"));
            }
        }
        Ok(())
    }

    /// This spec with its secrets (tool headers, CRM token, webhook
    /// secrets) replaced by [`REDACTED`], for reading back.
    #[must_use]
    pub fn redacted(mut self) -> Self {
        for tool in &mut self.tools {
            tool.headers.values_mut().for_each(|v| REDACTED.clone_into(v));
        }
        if let Some(crm) = &mut self.post_call.crm {
            REDACTED.clone_into(&mut crm.token);
        }
        for hook in &mut self.post_call.webhooks {
            REDACTED.clone_into(&mut hook.secret);
        }
        self
    }

    /// Fills secrets written back as [`REDACTED`] from `stored` (matched by
    /// tool name and header, by webhook URL), but only while the URL they
    /// go to keeps its scheme, host and port: a stored secret never follows
    /// its URL to another host.
    ///
    /// # Errors
    /// A secret written back as [`REDACTED`] whose URL's host changed, or
    /// that has no stored value: it must be sent again.
    pub fn keep_secrets(&mut self, stored: &Self) -> Result<(), SpecError> {
        let send_again =
            |field: String| refuse(field, "send the secret again: it was not stored for this URL's host");
        for (i, tool) in self.tools.iter_mut().enumerate() {
            let old = stored.tools.iter().find(|t| t.name == tool.name && same_origin(&t.url, &tool.url));
            for (name, value) in &mut tool.headers {
                if value == REDACTED {
                    let kept = old.and_then(|t| t.headers.get(name)).cloned();
                    *value = kept.ok_or_else(|| send_again(format!("tools[{i}].headers.{name}")))?;
                }
            }
        }
        if let Some(crm) = &mut self.post_call.crm
            && crm.token == REDACTED
        {
            let old = stored.post_call.crm.as_ref().filter(|old| same_origin(&old.base_url, &crm.base_url));
            crm.token =
                old.map(|o| o.token.clone()).ok_or_else(|| send_again("post_call.crm.token".into()))?;
        }
        for (i, hook) in self.post_call.webhooks.iter_mut().enumerate() {
            if hook.secret == REDACTED {
                let old = stored.post_call.webhooks.iter().find(|h| h.url == hook.url);
                hook.secret = old
                    .map(|h| h.secret.clone())
                    .ok_or_else(|| send_again(format!("post_call.webhooks[{i}].secret")))?;
            }
        }
        Ok(())
    }
}

/// Whether two URLs go to the same scheme, host and port.
fn same_origin(a: &str, b: &str) -> bool {
    let origin = |u: &str| reqwest::Url::parse(u).ok().map(|u| u.origin());
    matches!((origin(a), origin(b)), (Some(x), Some(y)) if x.is_tuple() && x == y)
}

fn header_ok(name: &str, value: &str) -> bool {
    axum::http::HeaderName::from_bytes(name.as_bytes()).is_ok()
        && axum::http::HeaderValue::from_str(value).is_ok()
        && value.len() <= 4096
}

/// A phone number as callers dial it (the user part of a SIP URI).
///
/// # Errors
/// Why it is not one.
pub fn check_number(n: &str) -> Result<(), &'static str> {
    let ok = !n.is_empty()
        && n.len() <= 32
        && n.chars().all(|c| c.is_ascii_alphanumeric() || "+*#._-".contains(c));
    if ok { Ok(()) } else { Err("1 to 32 of letters, digits and + * # . _ -") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> AgentSpec {
        AgentSpec { name: "Front desk".into(), ..AgentSpec::default() }
    }

    #[test]
    fn the_configured_agent_is_a_valid_spec() {
        let spec = AgentSpec::from_config(&ControlConfig::default());
        spec.validate().unwrap();
        assert_eq!(spec.numbers, ["1000"]);
        assert_eq!(spec.knowledge.len(), 1);
    }

    #[test]
    fn each_bad_field_is_named() {
        type Spoil = Box<dyn Fn(&mut AgentSpec)>;
        let cases: Vec<(&str, Spoil)> = vec![
            ("name", Box::new(|s| s.name = " ".into())),
            // 101 characters as sent, even if trimming would bring it to 100.
            ("name", Box::new(|s| s.name = format!("{} ", "x".repeat(100)))),
            ("language", Box::new(|s| s.language = "en_US!".into())),
            ("llm.temperature", Box::new(|s| s.llm.temperature = Some(3.0))),
            ("turn.endpointing_min_delay_ms", Box::new(|s| s.turn.endpointing_min_delay_ms = 9_000)),
            ("numbers[1]", Box::new(|s| s.numbers = vec!["100".into(), "100".into()])),
            ("widget.colour", Box::new(|s| s.widget.colour = "red".into())),
            (
                "post_call.webhooks[0].secret",
                Box::new(|s| {
                    s.post_call.webhooks = vec![Webhook {
                        url: "https://h.example/x".into(),
                        secret: "short".into(),
                        events: vec![],
                    }];
                }),
            ),
            (
                "tools[0].parameters",
                Box::new(|s| {
                    s.tools = vec![HttpTool {
                        name: "lookup".into(),
                        description: "Find an order".into(),
                        url: "https://api.example/orders".into(),
                        timeout_ms: 5_000,
                        parameters: serde_json::json!({"type": "object", "properties": {"id": {"type": 5}}}),
                        headers: BTreeMap::new(),
                    }];
                }),
            ),
            (
                "tools[0].name",
                Box::new(|s| {
                    s.tools = vec![HttpTool {
                        name: "send_dtmf".into(),
                        description: "Shadows a built-in".into(),
                        url: "https://api.example/keys".into(),
                        timeout_ms: 5_000,
                        parameters: serde_json::json!({"type": "object"}),
                        headers: BTreeMap::new(),
                    }];
                }),
            ),
        ];
        for (field, spoil) in cases {
            let mut s = valid();
            spoil(&mut s);
            assert_eq!(s.validate().map_err(|e| e.field), Err(field.to_owned()));
        }
    }

    #[test]
    fn secrets_read_back_redacted_and_survive_a_round_trip() {
        let mut s = valid();
        s.post_call.webhooks = vec![Webhook {
            url: "https://h.example/x".into(),
            secret: "0123456789abcdef".into(),
            events: vec![],
        }];
        s.post_call.crm = Some(CrmSpec { base_url: "https://crm.example".into(), token: "pat-1".into() });
        let shown = s.clone().redacted();
        let text = serde_json::to_string(&shown).unwrap();
        assert!(!text.contains("0123456789abcdef") && !text.contains("pat-1"), "{text}");
        let mut written_back = shown.clone();
        written_back.keep_secrets(&s).unwrap();
        assert_eq!(written_back, s);
        // A secret never follows its URL to another host.
        let mut moved = shown.clone();
        moved.post_call.crm.as_mut().unwrap().base_url = "https://attacker.example".into();
        assert_eq!(moved.keep_secrets(&s).map_err(|e| e.field), Err("post_call.crm.token".into()));
        let mut moved = shown.clone();
        moved.post_call.crm.as_mut().unwrap().base_url = "https://crm.example:8443".into();
        assert!(moved.keep_secrets(&s).is_err(), "another port is another target");
        let mut moved = shown;
        moved.post_call.webhooks[0].url = "https://attacker.example/x".into();
        assert_eq!(moved.keep_secrets(&s).map_err(|e| e.field), Err("post_call.webhooks[0].secret".into()));
        // A tool's header follows the tool only on its host.
        let mut t = valid();
        t.tools = vec![HttpTool {
            name: "crm".into(),
            description: "d".into(),
            url: "https://api.example/v1/look".into(),
            parameters: empty_object_schema(),
            headers: [("Authorization".to_owned(), "Bearer t-1".to_owned())].into(),
            timeout_ms: 5000,
        }];
        let mut same_host = t.clone().redacted();
        same_host.tools[0].url = "https://api.example/v2/look".into();
        same_host.keep_secrets(&t).unwrap();
        assert_eq!(same_host.tools[0].headers["Authorization"], "Bearer t-1");
        let mut other_host = t.clone().redacted();
        other_host.tools[0].url = "http://169.254.169.254/latest".into();
        assert_eq!(
            other_host.keep_secrets(&t).map_err(|e| e.field),
            Err("tools[0].headers.Authorization".into())
        );
    }
}
