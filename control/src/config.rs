//! The control plane's settings: the sections of `config.toml` it reads
//! (`[storage]`, `[models]`, `[agent]`, `[endpointing]`, `[openai]`,
//! `[deepgram]`, `[auth]`, `[s3]`, `[post_call]`, `[outbound]`, `[smtp]`,
//! `[billing]` with its plans, `[stripe]`, `[signup]`, `[scripted]`), and [`ControlConfig`], which gathers them
//! with what it reads of the media plane's sections (the configured
//! agent's numbers and widget, the turn settings, the limits) and of
//! `[http]`.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
pub use voxgate_calls::settings::{Invalid, LimitsSettings, TurnModel, VadSettings, WidgetConfig};
pub use voxgate_domain::Secret;

fn invalid(setting: &'static str, reason: impl Into<String>) -> Invalid {
    Invalid { setting, reason: reason.into() }
}

/// What the control plane runs on.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlConfig {
    /// `[sip] numbers`: the configured agent's numbers.
    pub numbers: Vec<String>,
    /// `[widget]`: the configured agent's widget.
    pub widget: WidgetConfig,
    /// `[vad]`: the turn settings agents' sessions get.
    pub vad: VadSettings,
    /// `[limits]`: the operator's maxima on agents' sessions.
    pub limits: LimitsSettings,
    /// `[http] media_key`: the media endpoints' key (agent tests call with it).
    pub media_key: Secret,
    /// `[http] public_url`: how clients reach this server; empty: the request's `Host`.
    pub public_url: String,
    /// `[log] show_pii`: numbers in full in logs.
    pub show_pii: bool,
    /// Where the HTTP listener listens (`[http] listen`): agent tests call
    /// this server back there, and recording links name it when
    /// `http.public_url` is empty.
    pub listen: SocketAddr,
    /// `[http] api_key`: the operator's control API key; empty: none.
    pub api_key: Secret,
    pub storage: StorageConfig,
    pub models: ModelsConfig,
    pub endpointing: EndpointSettings,
    pub agent: AgentSettings,
    pub openai: OpenAiSettings,
    pub deepgram: DeepgramSettings,
    pub auth: AuthSettings,
    pub s3: S3Settings,
    pub post_call: PostCallSettings,
    pub outbound: OutboundSettings,
    pub smtp: SmtpSettings,
    pub billing: BillingSettings,
    pub stripe: StripeSettings,
    pub signup: SignupSettings,
    pub scripted: ScriptedSettings,
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self {
            numbers: vec!["1000".to_owned()],
            widget: WidgetConfig::default(),
            vad: VadSettings::default(),
            limits: LimitsSettings::default(),
            media_key: Secret::default(),
            public_url: String::new(),
            show_pii: false,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            api_key: Secret::default(),
            storage: StorageConfig::default(),
            models: ModelsConfig::default(),
            endpointing: EndpointSettings::default(),
            agent: AgentSettings::default(),
            openai: OpenAiSettings::default(),
            deepgram: DeepgramSettings::default(),
            auth: AuthSettings::default(),
            s3: S3Settings::default(),
            post_call: PostCallSettings::default(),
            outbound: OutboundSettings::default(),
            smtp: SmtpSettings::default(),
            billing: BillingSettings::default(),
            stripe: StripeSettings::default(),
            signup: SignupSettings::default(),
            scripted: ScriptedSettings::default(),
        }
    }
}

impl ControlConfig {
    /// The first setting out of range.
    ///
    /// # Errors
    /// That setting, and why.
    pub fn check(&self) -> Result<(), Invalid> {
        if self.billing.increment_s == 0 {
            return Err(invalid("billing.increment_s", "must be at least 1"));
        }
        let b = &self.billing;
        for (setting, rate) in [
            ("billing.sip_per_minute", b.sip_per_minute),
            ("billing.webrtc_per_minute", b.webrtc_per_minute),
            ("billing.stream_per_minute", b.stream_per_minute),
            ("billing.chat_per_minute", b.chat_per_minute),
            ("billing.whatsapp_per_conversation", b.whatsapp_per_conversation),
        ] {
            if !(rate.is_finite() && (0.0..=1000.0).contains(&rate)) {
                return Err(invalid(setting, "must be 0..=1000"));
            }
        }
        if !(0.0..=1.0).contains(&self.endpointing.threshold) {
            return Err(invalid("endpointing.threshold", "must be 0.0..=1.0"));
        }
        if self.agent.answering_machine == OnMachineChoice::LeaveMessage
            && self.agent.voicemail_message.trim().is_empty()
        {
            return Err(invalid("agent.voicemail_message", "answering_machine = \"leave_message\" needs it"));
        }
        Ok(())
    }
}

/// The demo agent's knowledge.
const DEMO_KNOWLEDGE: &str = "Sunrise Bakery is a family bakery at 12 Harbour Street.
Opening hours: Monday to Friday from 7 am to 6 pm. On Saturdays the bakery opens at 9 am and closes at 2 pm. It is closed on Sundays.
Orders over 20 dollars are delivered free within the city, usually within two hours.
Birthday cakes must be ordered at least two days in advance. A chocolate cake costs 35 dollars.
";

/// Requests to addresses tenants choose: agents' HTTP tools, webhooks, the CRM.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundSettings {
    /// Let them reach loopback, private and link-local addresses. Off, they
    /// reach only public ones (a cloud's metadata service, say, is not).
    pub allow_private_targets: bool,
}

/// The work after each call (analytics, email, CRM, webhooks, billing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostCallSettings {
    /// Jobs run at once on this node (0: this node runs none).
    pub workers: u32,
    /// Times the language model is asked for a call's analytics before the
    /// local fallback fills it.
    pub analytics_attempts: u32,
    /// Tries of an email, CRM sync or webhook before it is given up.
    pub max_attempts: u32,
    /// The first retry's wait, in seconds; each next one waits four times longer (at most an hour).
    pub retry_after_s: u32,
    /// Ask the local model (SmolLM2-135M) for analytics too. Off: agents on
    /// the local model get the local fallback at once; measured, the 135M
    /// model never wrote the schema's JSON and each try took about 12 s of a core.
    pub local_model_analytics: bool,
    /// The older name of `outbound.allow_private_targets` (either lifts it).
    pub allow_private_targets: bool,
    /// Finished jobs (done, or failed for good) are deleted after this many days (0: kept).
    pub job_retention_days: u32,
}

impl Default for PostCallSettings {
    fn default() -> Self {
        Self {
            workers: 1,
            analytics_attempts: 4,
            max_attempts: 8,
            retry_after_s: 1,
            local_model_analytics: false,
            allow_private_targets: false,
            job_retention_days: 30,
        }
    }
}

/// How the connection to the SMTP server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain, then upgraded (STARTTLS): the submission port's way.
    Starttls,
    /// TLS from the start (port 465).
    Tls,
    /// No encryption: a relay on this machine or a test sink only.
    None,
}

/// Where visitors' emails are sent from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpSettings {
    /// The SMTP server; empty: no email is sent (attempts are logged as failed).
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: String,
    pub password: Secret,
    /// The sender, e.g. `Sunrise Bakery <hello@example.com>`.
    pub from: String,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: 587,
            security: SmtpSecurity::Starttls,
            username: String::new(),
            password: Secret::default(),
            from: "Voxgate <noreply@localhost>".into(),
        }
    }
}

/// Stand-in providers for load tests and benchmarks (`stt`, `llm`, `tts` =
/// `"scripted"`): no model, fixed latencies, so a measurement shows
/// Voxgate's own cost. Every end of speech is heard as `transcript`, every
/// reply is `reply`, and speech is a 440 Hz tone, `tts_per_word_ms` a word.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScriptedSettings {
    pub transcript: String,
    /// End of speech -> the final transcript.
    pub stt_latency_ms: u32,
    pub reply: String,
    /// Request -> first token, then between tokens (words).
    pub llm_first_token_ms: u32,
    pub llm_per_token_ms: u32,
    /// Text -> first audio, and audio per word.
    pub tts_first_audio_ms: u32,
    pub tts_per_word_ms: u32,
}

impl Default for ScriptedSettings {
    fn default() -> Self {
        Self {
            transcript: "What time do you open on Saturday?".into(),
            stt_latency_ms: 200,
            reply: "On Saturdays we open at nine in the morning and close at two in the afternoon.".into(),
            llm_first_token_ms: 300,
            llm_per_token_ms: 20,
            tts_first_audio_ms: 100,
            tts_per_word_ms: 300,
        }
    }
}

/// How calls are billed: rounded up to whole increments, at a rate per
/// minute that depends on the channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BillingSettings {
    /// Currency of the rates (a label only).
    pub currency: String,
    /// Billable time is rounded up to a multiple of this many seconds (60: per started minute; 1: per second).
    pub increment_s: u32,
    /// Every call with any time is billed at least this many seconds.
    pub minimum_s: u32,
    /// Rates per minute, by channel.
    pub sip_per_minute: f64,
    pub webrtc_per_minute: f64,
    /// Twilio Media Streams and plain websocket streams.
    pub stream_per_minute: f64,
    pub chat_per_minute: f64,
    /// A WhatsApp conversation, whole (they last hours, mostly idle).
    pub whatsapp_per_conversation: f64,
    /// The plans tenants sign up for (`[[billing.plans]]`).
    pub plans: Vec<PlanSettings>,
}

impl Default for BillingSettings {
    fn default() -> Self {
        Self {
            currency: "USD".into(),
            increment_s: 60,
            minimum_s: 0,
            sip_per_minute: 0.05,
            webrtc_per_minute: 0.03,
            stream_per_minute: 0.04,
            chat_per_minute: 0.01,
            whatsapp_per_conversation: 0.02,
            plans: vec![PlanSettings::free_trial()],
        }
    }
}

/// A plan tenants sign up for. Limits of 0 are no limit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PlanSettings {
    /// What sign-ups and the API call it, e.g. `starter`.
    pub name: String,
    /// Stripe's price (`price_…`) of its subscription; empty: a free plan,
    /// given without payment once the email is verified.
    pub price_id: String,
    /// Calls and chats at once.
    pub max_concurrent_calls: u32,
    /// Minutes of calls and chats a calendar month (UTC).
    pub minutes_per_month: u32,
    /// Agents the tenant keeps.
    pub max_agents: u32,
    /// Bytes of knowledge documents over all its agents.
    pub knowledge_bytes: u64,
    /// WhatsApp conversations opened a calendar month.
    pub whatsapp_conversations_per_month: u32,
    /// Days a tenant has on it from sign-up, then its calls stop; 0: no end.
    pub trial_days: u32,
}

impl PlanSettings {
    /// The free trial the shipped configuration offers.
    #[must_use]
    pub fn free_trial() -> Self {
        Self {
            name: "free_trial".into(),
            max_concurrent_calls: 1,
            minutes_per_month: 60,
            max_agents: 1,
            knowledge_bytes: 1_000_000,
            whatsapp_conversations_per_month: 50,
            trial_days: 14,
            ..Self::default()
        }
    }
}

/// `[stripe]`: the Stripe account sign-ups pay through.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StripeSettings {
    /// Stripe's API (a test server's URL in tests).
    pub api_url: String,
    /// The secret API key (`sk_…`); empty: `STRIPE_SECRET_KEY` from the environment.
    pub secret_key: Secret,
    /// The webhook endpoint's signing secret (`whsec_…`); empty:
    /// `STRIPE_WEBHOOK_SECRET` from the environment.
    pub webhook_secret: Secret,
    /// Where Checkout sends a payer who paid; empty: the dashboard.
    pub success_url: String,
    /// Where Checkout sends a payer who gave up; empty: the dashboard.
    pub cancel_url: String,
    /// How old (or how far ahead) a signed webhook may be, in seconds.
    pub tolerance_s: u32,
}

impl Default for StripeSettings {
    fn default() -> Self {
        Self {
            api_url: "https://api.stripe.com".into(),
            secret_key: Secret::default(),
            webhook_secret: Secret::default(),
            success_url: String::new(),
            cancel_url: String::new(),
            tolerance_s: 300,
        }
    }
}

/// `[signup]`: whether businesses may sign themselves up, and its bounds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignupSettings {
    /// `POST /v1/signup` is open (off: 404, the operator makes tenants).
    pub enabled: bool,
    /// Seconds a verification or set-password link works.
    pub link_ttl_s: u32,
    /// Sign-ups one email address may ask for in an hour.
    pub per_email_per_hour: u32,
    /// Sign-ups one client network (/24, /56) may ask for in an hour.
    pub per_network_per_hour: u32,
}

impl Default for SignupSettings {
    fn default() -> Self {
        Self { enabled: false, link_ttl_s: 24 * 3600, per_email_per_hour: 3, per_network_per_hour: 20 }
    }
}

/// S3 (or any S3-compatible store) for recordings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Settings {
    /// Empty: recordings stay in `storage.recordings_dir`.
    pub bucket: String,
    /// Put before each recording's name, e.g. `recordings/`.
    pub prefix: String,
    /// Empty: AWS itself. An S3-compatible server's URL, e.g. `http://127.0.0.1:9000`.
    pub endpoint: String,
    pub region: String,
    /// Empty: `AWS_ACCESS_KEY_ID` (and the secret, session token) from the environment.
    pub access_key_id: String,
    pub secret_access_key: Secret,
    /// Bucket in the path rather than the host name (most S3-compatible servers).
    pub path_style: bool,
}

impl Default for S3Settings {
    fn default() -> Self {
        Self {
            bucket: String::new(),
            prefix: "recordings/".to_owned(),
            endpoint: String::new(),
            region: "us-east-1".to_owned(),
            access_key_id: String::new(),
            secret_access_key: Secret::default(),
            path_style: false,
        }
    }
}

/// Operators' logins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Signs login tokens (HS256); empty: a random key made on first start
    /// and kept in the database, shared by every node.
    pub jwt_secret: Secret,
    /// How long a login token works, in seconds.
    pub token_ttl_s: u32,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self { jwt_secret: Secret::default(), token_ttl_s: 8 * 3600 }
    }
}

/// Where the offline models are (see `scripts/fetch-models.sh`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    pub dir: PathBuf,
    /// The shortest window Whisper's encoder reads, in ms (30000: its own
    /// fixed window, the most accurate; shorter is faster).
    pub whisper_min_window_ms: u32,
    /// The Whisper model's folder in `dir`: `whisper-tiny-en` (English
    /// only) or `whisper-base` (multilingual, larger).
    pub whisper: String,
    /// Whether Whisper is prompted with each agent's vocabulary (the names
    /// in its knowledge), which biases it toward them.
    pub whisper_vocabulary: bool,
    /// The local language model: a GGUF file in `dir` with a ChatML chat
    /// format (SmolLM2, Qwen2.5).
    pub llm: PathBuf,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("models"),
            whisper_min_window_ms: 30_000,
            whisper: "whisper-tiny-en".into(),
            whisper_vocabulary: true,
            llm: PathBuf::from("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
        }
    }
}

/// When a caller's turn starts and ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct EndpointSettings {
    pub threshold: f32,
    pub min_speech_ms: u32,
    pub min_silence_ms: u32,
    pub pre_padding_ms: u32,
    pub post_padding_ms: u32,
}

impl Default for EndpointSettings {
    fn default() -> Self {
        let d = voxgate_pipeline::dsp::endpoint::EndpointConfig::default();
        Self {
            threshold: d.threshold,
            min_speech_ms: d.min_speech_ms,
            min_silence_ms: d.min_silence_ms,
            pre_padding_ms: d.pre_padding_ms,
            post_padding_ms: d.post_padding_ms,
        }
    }
}

/// Records and recordings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub database_url: String,
    pub recordings_dir: PathBuf,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            database_url: "sqlite://data/voxgate.db".to_owned(),
            recordings_dir: PathBuf::from("data/recordings"),
        }
    }
}

/// Speech to text for the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SttChoice {
    /// Whisper tiny.en, offline.
    #[default]
    Local,
    /// Deepgram live streaming.
    Deepgram,
    /// Stand-ins with fixed latencies, for load tests (`[scripted]`).
    Scripted,
}

/// The agent's language model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LlmChoice {
    /// SmolLM2-135M, offline, demo quality.
    #[default]
    Local,
    /// Any OpenAI-compatible chat completions endpoint.
    Openai,
    /// A speech-to-speech model over OpenAI's Realtime websocket protocol
    /// (`[openai] realtime_*`): it hears the caller and answers in its own
    /// voice; the chat model (`[openai] model`) and the agent's voice take
    /// over while it fails, and read the calls afterwards.
    #[serde(rename = "openai_realtime")]
    OpenaiRealtime,
    /// Stand-ins with fixed latencies, for load tests (`[scripted]`).
    Scripted,
}

/// Text to speech for the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TtsChoice {
    /// Piper (espeak-ng as fallback), offline.
    #[default]
    Local,
    /// An OpenAI-compatible `/v1/audio/speech`.
    Openai,
    /// Deepgram Aura.
    Deepgram,
    /// Stand-ins with fixed latencies, for load tests (`[scripted]`).
    Scripted,
}

/// The default agent: what callers talk to until agents live in the
/// database (the control plane).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentSettings {
    pub name: String,
    /// First words of every call; empty: listen first.
    pub greeting: String,
    pub system_prompt: String,
    /// Facts the agent answers from (retrieved per question with MiniLM).
    pub knowledge: String,
    pub stt: SttChoice,
    pub llm: LlmChoice,
    pub tts: TtsChoice,
    pub allow_interruptions: bool,
    pub min_interruption_speech_ms: u32,
    pub min_interruption_words: u32,
    pub false_interruption_timeout_ms: u32,
    /// Take the agent's own voice, echoed back by the caller's phone, out
    /// of what the caller says (so it cannot interrupt the agent).
    pub echo_cancellation: bool,
    /// Turn the caller's background noise down before voice activity detection.
    pub noise_suppression: bool,
    pub endpointing_min_delay_ms: u32,
    pub endpointing_max_delay_ms: u32,
    /// Silence before "Are you still there?"; 0: never.
    pub reprompt_after_ms: u32,
    /// Silence before the agent says goodbye and hangs up; 0: never.
    pub hangup_after_silence_ms: u32,
    /// Longest call; 0: no limit.
    pub max_call_duration_s: u32,
    /// Where the transfer-to-human tool sends callers (a SIP URI); empty: no such tool.
    pub transfer_to: String,
    /// `blind` (the caller is handed over at once) or `warm` (the caller
    /// holds while the agent calls `transfer_to` and tells them about the
    /// call; back to the agent if nobody takes it).
    pub transfer_mode: TransferModeChoice,
    /// Offer the agent a tool that presses phone keys (RFC 4733), e.g. to
    /// get through a phone menu on an outbound call.
    pub send_dtmf: bool,
    /// On the calls it places (`POST /v1/calls`, campaigns): `off` (greet
    /// whoever answers), `hang_up` on answering machines, or
    /// `leave_message` on them (`voicemail_message`, after the beep).
    pub answering_machine: OnMachineChoice,
    /// The message left on answering machines.
    pub voicemail_message: String,
    /// Anonymous visitors (the widget, chat, WebRTC, streams without the
    /// media key or a token) may reach it; the demo page needs it.
    pub public: bool,
}

impl Default for AgentSettings {
    fn default() -> Self {
        let turn = voxgate_pipeline::turn::TurnConfig::default();
        Self {
            name: "Sunrise Bakery (demo)".to_owned(),
            greeting: "Hello, thanks for calling Sunrise Bakery! How can I help you today?".to_owned(),
            system_prompt: "You are the phone assistant of Sunrise Bakery. Answer in one or two short \
                            spoken sentences."
                .to_owned(),
            knowledge: DEMO_KNOWLEDGE.to_owned(),
            stt: SttChoice::Local,
            llm: LlmChoice::Local,
            tts: TtsChoice::Local,
            allow_interruptions: turn.allow_interruptions,
            min_interruption_speech_ms: turn.min_interruption_speech_ms,
            min_interruption_words: turn.min_interruption_words,
            false_interruption_timeout_ms: turn.false_interruption_timeout_ms,
            echo_cancellation: voxgate_pipeline::session::SessionConfig::default().echo_cancellation,
            noise_suppression: voxgate_pipeline::session::SessionConfig::default().noise_suppression,
            endpointing_min_delay_ms: turn.endpointing_min_delay_ms,
            endpointing_max_delay_ms: turn.endpointing_max_delay_ms,
            reprompt_after_ms: turn.reprompt_after_ms.unwrap_or(0),
            hangup_after_silence_ms: turn.hangup_after_silence_ms.unwrap_or(0),
            max_call_duration_s: turn.max_call_duration_ms.map_or(0, |ms| (ms / 1000) as u32),
            transfer_to: String::new(),
            transfer_mode: TransferModeChoice::Blind,
            send_dtmf: false,
            answering_machine: OnMachineChoice::Off,
            voicemail_message: String::new(),
            public: true,
        }
    }
}

/// How the agent's `transfer_to_human` tool hands a caller over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransferModeChoice {
    /// At once: a SIP REFER sends the caller to the target.
    #[default]
    Blind,
    /// The caller holds (music) while the agent calls the target through
    /// the trunk and speaks its summary of the call; then the two are
    /// joined, or the caller is back with the agent if nobody takes it.
    /// Phone calls only.
    Warm,
}

impl From<TransferModeChoice> for voxgate_pipeline::session::TransferMode {
    fn from(choice: TransferModeChoice) -> Self {
        match choice {
            TransferModeChoice::Blind => Self::Blind,
            TransferModeChoice::Warm => Self::Warm,
        }
    }
}

/// What the agent does when a machine answers a call it placed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnMachineChoice {
    /// No detection: the agent greets whoever answers at once.
    #[default]
    Off,
    /// Hang up on a machine.
    HangUp,
    /// Wait for the beep (or the end of the greeting), leave `message`, hang up.
    LeaveMessage,
}

/// An OpenAI-compatible endpoint (OpenAI, Ollama, vLLM, llama.cpp).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenAiSettings {
    /// Up to and including `/v1`.
    pub base_url: String,
    /// Empty: `OPENAI_API_KEY` from the environment, or none (local servers).
    pub api_key: Secret,
    pub model: String,
    pub tts_model: String,
    pub tts_voice: String,
    /// The Realtime API's websocket (`llm = "openai_realtime"`), without the model.
    pub realtime_url: String,
    pub realtime_model: String,
    pub realtime_voice: String,
}

impl Default for OpenAiSettings {
    fn default() -> Self {
        Self {
            base_url: "https://api.openai.com/v1".to_owned(),
            api_key: Secret::default(),
            model: "gpt-4o-mini".to_owned(),
            tts_model: "gpt-4o-mini-tts".to_owned(),
            tts_voice: "alloy".to_owned(),
            realtime_url: "wss://api.openai.com/v1/realtime".to_owned(),
            realtime_model: "gpt-realtime".to_owned(),
            realtime_voice: "marin".to_owned(),
        }
    }
}

/// Deepgram (speech to text and Aura text to speech).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeepgramSettings {
    pub base_url: String,
    /// Empty: `DEEPGRAM_API_KEY` from the environment.
    pub api_key: Secret,
    pub stt_model: String,
    pub tts_model: String,
}

impl Default for DeepgramSettings {
    fn default() -> Self {
        Self {
            base_url: "https://api.deepgram.com".to_owned(),
            api_key: Secret::default(),
            stt_model: "nova-3".to_owned(),
            tts_model: "aura-2-thalia-en".to_owned(),
        }
    }
}

impl ControlConfig {
    /// Whether tenants' tools, webhooks and CRM may reach non-public
    /// addresses (`outbound.allow_private_targets`, or the older
    /// `post_call.allow_private_targets`).
    #[must_use]
    pub const fn allow_private_targets(&self) -> bool {
        self.outbound.allow_private_targets || self.post_call.allow_private_targets
    }
}
