//! Voxgate's configuration: `config.toml`, then environment overrides.
//!
//! Every setting `section.key` can be overridden by the environment variable
//! `VOXGATE_SECTION__KEY` (upper case, two underscores between section and
//! key), e.g. `VOXGATE_HTTP__LISTEN=0.0.0.0:8080`. The value is read as TOML
//! (numbers, booleans, arrays) and falls back to a plain string. Unknown
//! sections or keys, in the file or the environment, are errors.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Prefix of overriding environment variables.
pub const ENV_PREFIX: &str = "VOXGATE_";

/// The configuration could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file or an override is not valid.
    #[error("invalid configuration: {0}")]
    Invalid(#[from] toml::de::Error),
    /// An environment variable names no setting.
    #[error("environment variable {var} does not name a setting (expected VOXGATE_SECTION__KEY)")]
    UnknownVariable { var: String },
    /// A value is out of range.
    #[error("invalid setting {setting}: {reason}")]
    Setting { setting: &'static str, reason: String },
}

/// The whole configuration. Defaults run offline with embedded stores.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub http: HttpConfig,
    pub sip: SipConfig,
    pub rtp: RtpConfig,
    pub webrtc: WebRtcConfig,
    pub widget: WidgetConfig,
    pub models: ModelsConfig,
    pub vad: VadSettings,
    pub endpointing: EndpointSettings,
    pub jitter: JitterSettings,
    pub storage: StorageConfig,
    pub log: LogConfig,
    pub agent: AgentSettings,
    pub openai: OpenAiSettings,
    pub deepgram: DeepgramSettings,
    pub trunk: TrunkSettings,
    pub dial: DialSettings,
    pub limits: LimitsSettings,
    pub auth: AuthSettings,
    pub s3: S3Settings,
    pub post_call: PostCallSettings,
    pub outbound: OutboundSettings,
    pub smtp: SmtpSettings,
    pub billing: BillingSettings,
    pub scripted: ScriptedSettings,
}

/// Requests to addresses tenants choose: agents' HTTP tools, webhooks, the CRM.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundSettings {
    /// Let them reach loopback, private and link-local addresses. Off, they
    /// reach only public ones (a cloud's metadata service, say, is not).
    pub allow_private_targets: bool,
}

impl Config {
    /// Whether tenants' tools, webhooks and CRM may reach non-public
    /// addresses (`outbound.allow_private_targets`, or the older
    /// `post_call.allow_private_targets`).
    #[must_use]
    pub const fn allow_private_targets(&self) -> bool {
        self.outbound.allow_private_targets || self.post_call.allow_private_targets
    }
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

/// Where visitors' emails are sent from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpSettings {
    /// The SMTP server; empty: no email is sent (attempts are logged as failed).
    pub host: String,
    pub port: u16,
    /// `starttls` (upgrade, the submission port's way), `tls` (TLS from the start) or `none`.
    pub security: String,
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
            security: "starttls".into(),
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
        }
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

/// The control API and health endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// A control API key (`Authorization: Bearer <key>`) for the default
    /// tenant, for scripts; empty: none (make keys with `POST /v1/api-keys`).
    pub api_key: Secret,
    /// The media endpoints' key (`?key=<key>`): it reaches every agent.
    /// Set, every other client needs a media token; empty, anonymous
    /// clients reach the public agents ([`crate::media_access`]).
    pub media_key: Secret,
    /// How clients reach this server (e.g. `https://voice.example.com`),
    /// for links it hands out; empty: the request's `Host`.
    pub public_url: String,
    /// Requests per second one client address may make to the public
    /// endpoints (widget, chat, WebRTC offers, login, recording links);
    /// bursts of twice that. 0: no limit.
    pub public_rate_limit: u32,
    /// Connections open at once; more are closed as they arrive.
    pub max_connections: u32,
    /// Seconds a client has to send a request's headers, and the longest a
    /// kept-alive connection may sit idle between requests.
    pub header_timeout_s: u32,
    /// Seconds a request may take to be answered (408 after that; a
    /// websocket only until it is upgraded).
    pub request_timeout_s: u32,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            api_key: Secret::default(),
            media_key: Secret::default(),
            public_url: String::new(),
            public_rate_limit: 10,
            max_connections: 4096,
            header_timeout_s: 10,
            request_timeout_s: 60,
        }
    }
}

/// SIP signalling for phone callers and trunks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    pub enabled: bool,
    pub udp_listen: SocketAddr,
    pub tcp_listen: SocketAddr,
    /// The address put in Via, Contact and SDP; empty means the listen address.
    pub public_address: String,
    /// Numbers (SIP user parts) that reach the agent; others get 404.
    pub numbers: Vec<String>,
    /// Ring (180 Ringing) this long before answering; 0 answers at once.
    pub ring_ms: u32,
    /// Networks (CIDR) whose calls need no authentication and whose traffic
    /// is not rate limited: your trunks and PBXs.
    pub trusted: Vec<String>,
    /// `name:password` pairs that may call from anywhere else (Digest).
    pub users: Vec<Secret>,
    /// Requests per second from one untrusted network (/24, /56; bursts of twice that).
    pub rate_limit: u32,
    /// SIP over TCP connections open at once, and from one address.
    pub tcp_max_connections: u32,
    pub tcp_max_per_source: u32,
    /// A TCP connection that sends nothing (not even a keep-alive) this long is closed.
    pub tcp_idle_timeout_s: u32,
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            udp_listen: SocketAddr::from(([0, 0, 0, 0], 5060)),
            tcp_listen: SocketAddr::from(([0, 0, 0, 0], 5060)),
            public_address: String::new(),
            numbers: vec!["1000".to_owned()],
            ring_ms: 0,
            trusted: ["127.0.0.0/8", "::1/128"].map(str::to_owned).to_vec(),
            users: Vec::new(),
            rate_limit: 20,
            tcp_max_connections: 1024,
            tcp_max_per_source: 16,
            tcp_idle_timeout_s: 600,
        }
    }
}

/// Media ports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RtpConfig {
    pub port_min: u16,
    pub port_max: u16,
    /// A call with no RTP from the caller for this long is hung up.
    pub no_media_timeout_s: u32,
}

impl Default for RtpConfig {
    fn default() -> Self {
        Self { port_min: 10_000, port_max: 20_000, no_media_timeout_s: 30 }
    }
}

/// Browser calls over WebRTC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebRtcConfig {
    pub enabled: bool,
    /// The interface addresses a call's media sockets bind to (one each),
    /// which are its host candidates.
    pub addresses: Vec<std::net::IpAddr>,
    /// Announced instead of `address` behind a 1:1 NAT (e.g. a cloud VM's public IP); empty: none.
    pub public_address: String,
    /// Answered offers not yet connected (each holds a port for up to
    /// 10 s) from one client network (/24, /56); more get 429.
    pub max_pending_per_network: u32,
    /// The same on the whole server.
    pub max_pending: u32,
}

impl Default for WebRtcConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            addresses: vec![std::net::IpAddr::from([127, 0, 0, 1])],
            public_address: String::new(),
            max_pending_per_network: 4,
            max_pending: 100,
        }
    }
}

/// How the embeddable widget looks, and where it may be embedded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct WidgetConfig {
    pub title: String,
    /// `#rrggbb`.
    pub colour: String,
    /// An image URL; empty: the title's first letter.
    pub avatar: String,
    /// `bottom-right` or `bottom-left`.
    pub position: String,
    /// Origins (`https://www.example.com`) whose pages may show the widget; empty: any.
    pub allowed_origins: Vec<String>,
}

impl WidgetConfig {
    /// The first setting that is wrong, and why (shared by `[widget]` and
    /// stored agents' widgets).
    #[must_use]
    pub fn problem(&self) -> Option<(&'static str, String)> {
        let hex = self.colour.len() == 7
            && self.colour.starts_with('#')
            && self.colour[1..].chars().all(|c| c.is_ascii_hexdigit());
        if !hex {
            return Some(("widget.colour", "not #rrggbb".into()));
        }
        if !["bottom-right", "bottom-left"].contains(&self.position.as_str()) {
            return Some(("widget.position", "bottom-right or bottom-left".into()));
        }
        let origin_ok = |o: &String| {
            let host = o.strip_prefix("https://").or_else(|| o.strip_prefix("http://")).unwrap_or_default();
            !host.is_empty() && !host.contains(['/', ' ', ';', '\'', '"']) && o.len() <= 200
        };
        if let Some(bad) = self.allowed_origins.iter().find(|o| !origin_ok(o)) {
            return Some((
                "widget.allowed_origins",
                format!("{bad:?} is not an origin like https://www.example.com"),
            ));
        }
        let url = |u: &str| {
            (u.starts_with("https://") || u.starts_with("http://")) && !u.contains(char::is_whitespace)
        };
        if !(self.avatar.is_empty() || url(&self.avatar)) {
            return Some(("widget.avatar", "an http(s) URL".into()));
        }
        None
    }
}

impl Default for WidgetConfig {
    fn default() -> Self {
        Self {
            title: "Sunrise Bakery".to_owned(),
            colour: "#d9480f".to_owned(),
            avatar: String::new(),
            position: "bottom-right".to_owned(),
            allowed_origins: Vec::new(),
        }
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

/// Which voice activity detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VadBackend {
    #[default]
    Auto,
    Webrtc,
    Silero,
}

/// Voice activity detection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VadSettings {
    pub backend: VadBackend,
    /// WebRTC aggressiveness, 0 (least) to 3 (most).
    pub webrtc_mode: u8,
    /// The learned end of turn asked at each of the caller's pauses.
    pub turn_model: TurnModel,
    /// Silence before it is asked.
    pub turn_check_ms: u32,
    /// Silence that ends a turn it called incomplete.
    pub incomplete_silence_ms: u32,
    /// Silence after which the local recogniser starts on what the caller
    /// said, before the turn is known to be over; 0: only at its end.
    pub transcribe_early_ms: u32,
}

impl Default for VadSettings {
    fn default() -> Self {
        Self {
            backend: VadBackend::Auto,
            webrtc_mode: 2,
            turn_model: TurnModel::Auto,
            turn_check_ms: 200,
            incomplete_silence_ms: voxgate_pipeline::dsp::endpoint::EndpointConfig::default()
                .incomplete_silence_ms,
            transcribe_early_ms: 120,
        }
    }
}

/// Which learned end of turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnModel {
    /// Smart Turn when its model is in `models/`, else silence alone.
    #[default]
    Auto,
    /// Smart Turn v3.2 (its model must load).
    SmartTurn,
    /// Silence alone ends a turn.
    Off,
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

/// The receive jitter buffer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JitterSettings {
    pub start_delay_ms: u32,
    pub min_delay_ms: u32,
    pub max_delay_ms: u32,
}

impl Default for JitterSettings {
    fn default() -> Self {
        let d = voxgate_pipeline::dsp::jitter::JitterConfig::default();
        Self { start_delay_ms: d.start_delay_ms, min_delay_ms: d.min_delay_ms, max_delay_ms: d.max_delay_ms }
    }
}

/// The SIP trunk outbound calls go through, and that we may register with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrunkSettings {
    /// The registrar, e.g. `sip:sip.provider.example:5060`; empty: no registration.
    pub registrar: String,
    /// Our address of record, e.g. `sip:voxgate@sip.provider.example`: our
    /// From, and its host completes dialled numbers (`sip:<number>@<host>`).
    pub aor: String,
    /// Where outbound requests are sent (e.g. `sip:proxy.provider.example`);
    /// empty: the registrar, or else the dialled URI's own host.
    pub outbound_proxy: String,
    pub username: String,
    /// Empty: `VOXGATE_TRUNK__PASSWORD`.
    pub password: Secret,
    /// The Digest realm the credentials answer (e.g. `sip.provider.example`);
    /// empty: whatever realm the trunk's proxy or registrar names. They are
    /// never sent to a far end that is not the trunk.
    pub realm: String,
    /// Registration lifetime asked for, in seconds.
    pub expires: u32,
    /// An outbound call nobody answers is cancelled after this many seconds.
    pub ring_timeout_s: u32,
}

impl Default for TrunkSettings {
    fn default() -> Self {
        Self {
            registrar: String::new(),
            aor: String::new(),
            outbound_proxy: String::new(),
            username: String::new(),
            password: Secret::default(),
            realm: String::new(),
            expires: 300,
            ring_timeout_s: 30,
        }
    }
}

/// Where outbound calls (`POST /v1/calls`, campaigns) may go, and how many.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DialSettings {
    /// SIP hosts a `sip:` URI may name besides the trunk's (its AOR's,
    /// registrar's and proxy's hosts): host names, or IP networks
    /// (`192.0.2.10/32`). Empty: the trunk only.
    pub allowed_hosts: Vec<String>,
    /// Outbound calls one tenant may have up at once (0: no limit).
    pub max_concurrent_per_tenant: u32,
    /// Outbound calls one tenant may place in 24 hours (0: no limit).
    pub max_per_day_per_tenant: u32,
}

impl Default for DialSettings {
    fn default() -> Self {
        Self { allowed_hosts: Vec::new(), max_concurrent_per_tenant: 10, max_per_day_per_tenant: 1000 }
    }
}

/// Calls and chats this node runs at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSettings {
    /// On the whole node, every channel together (0: no limit).
    pub max_calls: u32,
    /// For one tenant (0: no limit); an agent may set a lower one of its own.
    pub max_calls_per_tenant: u32,
    /// The wait a refused caller is asked for (`Retry-After`), in seconds.
    pub retry_after_s: u32,
    /// The longest call any agent may have, in seconds: an agent's longer
    /// or unlimited (0) `max_call_duration_s` is cut to it (0: no maximum).
    pub max_call_duration_s: u32,
    /// The longest silence any agent waits before hanging up, in ms: an
    /// agent's longer or unlimited (0) `hangup_after_silence_ms` is cut to it
    /// (0: no maximum).
    pub max_hangup_after_silence_ms: u32,
    /// The conversation sent to the model in each turn, in tokens (about
    /// four characters each): past it the oldest turns are left out (0: no bound).
    pub max_history_tokens: u32,
}

impl Default for LimitsSettings {
    fn default() -> Self {
        Self {
            max_calls: 1000,
            max_calls_per_tenant: 0,
            retry_after_s: 30,
            max_call_duration_s: 4 * 3600,
            max_hangup_after_silence_ms: 10 * 60 * 1000,
            max_history_tokens: 4000,
        }
    }
}

impl LimitsSettings {
    /// `turn`'s durations within the operator's maxima: an agent asking for
    /// none, or for more, gets the maximum.
    pub fn cap(&self, turn: &mut voxgate_pipeline::turn::TurnConfig) {
        if self.max_call_duration_s > 0 {
            let max = u64::from(self.max_call_duration_s) * 1000;
            turn.max_call_duration_ms = Some(turn.max_call_duration_ms.map_or(max, |ms| ms.min(max)));
        }
        if self.max_hangup_after_silence_ms > 0 {
            let max = self.max_hangup_after_silence_ms;
            turn.hangup_after_silence_ms = Some(turn.hangup_after_silence_ms.map_or(max, |ms| ms.min(max)));
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

/// Logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter, e.g. `info` or `voxgate=debug,info`.
    pub filter: String,
    /// Print phone numbers in logs (off: redacted). What callers and agents
    /// say is never logged.
    pub show_pii: bool,
    /// `text` (key=value, for people) or `json` (one object per line, for
    /// log collectors).
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { filter: "info".to_owned(), show_pii: false, format: LogFormat::Text }
    }
}

/// A credential: read from the file or environment, never printed.
/// `voxgate config` shows `<set>` in its place.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The value, for the one place that sends it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// This secret, or else the environment variable `var` (a vendor's
    /// usual name, e.g. `OPENAI_API_KEY`), or empty.
    #[must_use]
    pub fn or_env(&self, var: &str) -> String {
        if self.0.is_empty() { std::env::var(var).unwrap_or_default() } else { self.expose().to_owned() }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "<set>" })
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "<set>" })
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
    /// Offer the agent a tool that presses phone keys (RFC 4733), e.g. to
    /// get through a phone menu on an outbound call.
    pub send_dtmf: bool,
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
            endpointing_min_delay_ms: turn.endpointing_min_delay_ms,
            endpointing_max_delay_ms: turn.endpointing_max_delay_ms,
            reprompt_after_ms: turn.reprompt_after_ms.unwrap_or(0),
            hangup_after_silence_ms: turn.hangup_after_silence_ms.unwrap_or(0),
            max_call_duration_s: turn.max_call_duration_ms.map_or(0, |ms| (ms / 1000) as u32),
            transfer_to: String::new(),
            send_dtmf: false,
            public: true,
        }
    }
}

/// The demo agent's knowledge.
const DEMO_KNOWLEDGE: &str = "Sunrise Bakery is a family bakery at 12 Harbour Street.
Opening hours: Monday to Friday from 7 am to 6 pm. On Saturdays the bakery opens at 9 am and closes at 2 pm. It is closed on Sundays.
Orders over 20 dollars are delivered free within the city, usually within two hours.
Birthday cakes must be ordered at least two days in advance. A chocolate cake costs 35 dollars.
";

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
}

impl Default for OpenAiSettings {
    fn default() -> Self {
        Self {
            base_url: "https://api.openai.com/v1".to_owned(),
            api_key: Secret::default(),
            model: "gpt-4o-mini".to_owned(),
            tts_model: "gpt-4o-mini-tts".to_owned(),
            tts_voice: "alloy".to_owned(),
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

impl Config {
    /// Reads `path` (if given) and applies `env` overrides on top.
    ///
    /// # Errors
    /// An unreadable file, invalid TOML, an unknown setting or a bad value.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
                text.parse::<toml::Table>()?
            }
            None => toml::Table::new(),
        };
        for (var, value) in env {
            let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if rest == "CONFIG" || rest == "ADMIN_PASSWORD" {
                continue; // read by the command line: the file, `admin create`'s password
            }
            let Some((section, key)) = rest.split_once("__") else {
                return Err(ConfigError::UnknownVariable { var });
            };
            let value = parse_env_value(&value);
            let section = table
                .entry(section.to_ascii_lowercase())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match section {
                toml::Value::Table(t) => {
                    t.insert(key.to_ascii_lowercase(), value);
                }
                _ => return Err(ConfigError::UnknownVariable { var }),
            }
        }
        let config: Self = table.try_into()?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.rtp.port_min >= self.rtp.port_max {
            return Err(ConfigError::Setting {
                setting: "rtp.port_min",
                reason: format!("{} is not below port_max {}", self.rtp.port_min, self.rtp.port_max),
            });
        }
        for net in &self.sip.trusted {
            if net.parse::<ipnet::IpNet>().is_err() {
                return Err(ConfigError::Setting {
                    setting: "sip.trusted",
                    reason: format!("{net} is not a CIDR"),
                });
            }
        }
        if self.sip.users.iter().any(|u| !u.expose().contains(':')) {
            return Err(ConfigError::Setting {
                setting: "sip.users",
                reason: "each entry is name:password".into(),
            });
        }
        let t = &self.trunk;
        if !t.registrar.is_empty() && t.aor.is_empty() {
            return Err(ConfigError::Setting {
                setting: "trunk.aor",
                reason: "a registrar needs an AOR".into(),
            });
        }
        for (setting, uri) in [
            ("trunk.registrar", &t.registrar),
            ("trunk.aor", &t.aor),
            ("trunk.outbound_proxy", &t.outbound_proxy),
        ] {
            let ok = uri.is_empty()
                || matches!(
                    voxgate_sip_bridge::message::Uri::parse(uri),
                    Ok(voxgate_sip_bridge::message::Uri::Sip(_))
                );
            if !ok {
                return Err(ConfigError::Setting { setting, reason: format!("{uri:?} is not a sip: URI") });
            }
        }
        let w = &self.webrtc;
        if !w.public_address.is_empty() && w.public_address.parse::<std::net::IpAddr>().is_err() {
            return Err(ConfigError::Setting {
                setting: "webrtc.public_address",
                reason: "not an IP address".into(),
            });
        }
        if w.enabled && (w.addresses.is_empty() || w.addresses.iter().any(std::net::IpAddr::is_unspecified)) {
            return Err(ConfigError::Setting {
                setting: "webrtc.addresses",
                reason: "name each interface (its address is a host candidate), not 0.0.0.0".into(),
            });
        }
        if let Some((setting, reason)) = self.widget.problem() {
            return Err(ConfigError::Setting { setting, reason });
        }
        if self.vad.webrtc_mode > 3 {
            return Err(ConfigError::Setting { setting: "vad.webrtc_mode", reason: "must be 0..=3".into() });
        }
        let j = &self.jitter;
        if !(j.min_delay_ms <= j.start_delay_ms && j.start_delay_ms <= j.max_delay_ms) {
            return Err(ConfigError::Setting {
                setting: "jitter.start_delay_ms",
                reason: "need min_delay_ms <= start_delay_ms <= max_delay_ms".into(),
            });
        }
        if self.billing.increment_s == 0 {
            return Err(ConfigError::Setting {
                setting: "billing.increment_s",
                reason: "must be at least 1".into(),
            });
        }
        let b = &self.billing;
        for (setting, rate) in [
            ("billing.sip_per_minute", b.sip_per_minute),
            ("billing.webrtc_per_minute", b.webrtc_per_minute),
            ("billing.stream_per_minute", b.stream_per_minute),
            ("billing.chat_per_minute", b.chat_per_minute),
        ] {
            if !(rate.is_finite() && (0.0..=1000.0).contains(&rate)) {
                return Err(ConfigError::Setting { setting, reason: "must be 0..=1000".into() });
            }
        }
        if !["starttls", "tls", "none"].contains(&self.smtp.security.as_str()) {
            return Err(ConfigError::Setting {
                setting: "smtp.security",
                reason: "must be starttls, tls or none".into(),
            });
        }
        if !(0.0..=1.0).contains(&self.endpointing.threshold) {
            return Err(ConfigError::Setting {
                setting: "endpointing.threshold",
                reason: "must be 0.0..=1.0".into(),
            });
        }
        Ok(())
    }

    /// Who may call over SIP.
    #[must_use]
    pub fn sip_policy(&self) -> voxgate_sip_bridge::responder::Policy {
        voxgate_sip_bridge::responder::Policy {
            trusted: self.sip.trusted.iter().filter_map(|n| n.parse().ok()).collect(),
            users: self
                .sip
                .users
                .iter()
                .filter_map(|u| u.expose().split_once(':'))
                .map(|(n, p)| (n.to_owned(), p.to_owned()))
                .collect(),
            realm: "voxgate".to_owned(),
            rate_per_second: self.sip.rate_limit,
        }
    }

    /// The VAD configuration for the pipeline.
    #[must_use]
    pub fn vad_config(&self) -> voxgate_pipeline::dsp::vad::VadConfig {
        use voxgate_pipeline::dsp::vad::{VadConfig, VadKind, WebRtcMode};
        let mut c = VadConfig::with_models_dir(&self.models.dir);
        c.kind = match self.vad.backend {
            VadBackend::Auto => VadKind::Auto,
            VadBackend::Webrtc => VadKind::WebRtc,
            VadBackend::Silero => VadKind::Silero,
        };
        c.webrtc_mode = match self.vad.webrtc_mode {
            0 => WebRtcMode::Quality,
            1 => WebRtcMode::LowBitrate,
            2 => WebRtcMode::Aggressive,
            _ => WebRtcMode::VeryAggressive,
        };
        c
    }
}

/// An environment value as TOML where it parses (`8080`, `true`, `[1, 2]`), else a string.
fn parse_env_value(value: &str) -> toml::Value {
    format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn the_shipped_config_toml_is_the_defaults() -> Result<(), ConfigError> {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config.toml");
        assert_eq!(Config::load(Some(&shipped), env(&[]))?, Config::default());
        Ok(())
    }

    #[test]
    fn environment_overrides_the_file() -> Result<(), ConfigError> {
        let c = Config::load(
            None,
            env(&[
                ("VOXGATE_HTTP__LISTEN", "127.0.0.1:9999"),
                ("VOXGATE_RTP__PORT_MIN", "30000"),
                ("VOXGATE_RTP__PORT_MAX", "30100"),
                ("VOXGATE_VAD__BACKEND", "webrtc"),
                ("VOXGATE_LOG__SHOW_PII", "true"),
                ("VOXGATE_CONFIG", "ignored.toml"),
                ("PATH", "/usr/bin"),
            ]),
        )?;
        assert_eq!(c.http.listen, SocketAddr::from(([127, 0, 0, 1], 9999)));
        assert_eq!((c.rtp.port_min, c.rtp.port_max), (30000, 30100));
        assert_eq!(c.vad.backend, VadBackend::Webrtc);
        assert!(c.log.show_pii);
        Ok(())
    }

    #[test]
    fn api_keys_come_from_the_environment_and_are_never_printed() -> Result<(), Box<dyn std::error::Error>> {
        let c = Config::load(
            None,
            env(&[("VOXGATE_OPENAI__API_KEY", "sk-test-123"), ("VOXGATE_AGENT__LLM", "openai")]),
        )?;
        assert_eq!(c.openai.api_key.expose(), "sk-test-123");
        assert_eq!(c.agent.llm, LlmChoice::Openai);
        let printed = toml::to_string_pretty(&c)?;
        assert!(!printed.contains("sk-test-123") && printed.contains("<set>"), "{printed}");
        assert!(!format!("{c:?}").contains("sk-test-123"));
        Ok(())
    }

    #[test]
    fn a_tenants_unlimited_or_longer_durations_are_cut_to_the_operators_maxima() {
        let limits = LimitsSettings::default();
        let mut turn = voxgate_pipeline::turn::TurnConfig {
            max_call_duration_ms: None,
            hangup_after_silence_ms: Some(24 * 3600 * 1000),
            ..Default::default()
        };
        limits.cap(&mut turn);
        assert_eq!(turn.max_call_duration_ms, Some(4 * 3600 * 1000), "none: the maximum");
        assert_eq!(turn.hangup_after_silence_ms, Some(10 * 60 * 1000), "more: the maximum");
        let mut short = voxgate_pipeline::turn::TurnConfig {
            max_call_duration_ms: Some(60_000),
            hangup_after_silence_ms: Some(5_000),
            ..Default::default()
        };
        limits.cap(&mut short);
        assert_eq!((short.max_call_duration_ms, short.hangup_after_silence_ms), (Some(60_000), Some(5_000)));
        let open = LimitsSettings { max_call_duration_s: 0, max_hangup_after_silence_ms: 0, ..limits };
        let mut unlimited = voxgate_pipeline::turn::TurnConfig {
            max_call_duration_ms: None,
            hangup_after_silence_ms: None,
            ..Default::default()
        };
        open.cap(&mut unlimited);
        assert_eq!((unlimited.max_call_duration_ms, unlimited.hangup_after_silence_ms), (None, None));
    }

    #[test]
    fn unknown_settings_and_bad_values_are_errors() {
        assert!(matches!(
            Config::load(None, env(&[("VOXGATE_HTTP__LISTNE", "1.2.3.4:5")])),
            Err(ConfigError::Invalid(_))
        ));
        assert!(matches!(
            Config::load(None, env(&[("VOXGATE_NOSECTION", "1")])),
            Err(ConfigError::UnknownVariable { .. })
        ));
        assert!(matches!(
            Config::load(
                None,
                env(&[("VOXGATE_RTP__PORT_MIN", "20000"), ("VOXGATE_RTP__PORT_MAX", "10000")])
            ),
            Err(ConfigError::Setting { .. })
        ));
        assert!(matches!(
            Config::load(None, env(&[("VOXGATE_HTTP__LISTEN", "not an address")])),
            Err(ConfigError::Invalid(_))
        ));
    }
}
