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
    /// `[stripe]`: the Stripe account sign-ups pay through.
    pub stripe: voxgate_control::config::StripeSettings,
    /// `[signup]`: businesses signing themselves up.
    pub signup: voxgate_control::config::SignupSettings,
    pub scripted: ScriptedSettings,
    /// `[livekit]`: the LiveKit project agents are dispatched into.
    pub livekit: voxgate_control::livekit::LiveKitSettings,
    /// `[whatsapp]`: tenants' WhatsApp numbers (Meta's Graph API, idle conversations).
    pub whatsapp: voxgate_control::whatsapp::WhatsAppSettings,
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
    /// clients reach the public agents ([`voxgate_media::media_access`]).
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

pub use voxgate_control::config::{
    AgentSettings, AuthSettings, BillingSettings, ControlConfig, DeepgramSettings, EndpointSettings,
    ModelsConfig, OpenAiSettings, OutboundSettings, PostCallSettings, S3Settings, ScriptedSettings,
    SmtpSettings, StorageConfig,
};
pub use voxgate_domain::Secret;
pub use voxgate_media::config::{
    DialSettings, JitterSettings, LimitsSettings, MediaConfig, RtpConfig, SipConfig, TrunkSettings,
    VadSettings, WebRtcConfig, WidgetConfig,
};

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
        self.media().check().map_err(|e| ConfigError::Setting { setting: e.setting, reason: e.reason })?;
        self.control().check().map_err(|e| ConfigError::Setting { setting: e.setting, reason: e.reason })?;
        self.whatsapp.check().map_err(|e| ConfigError::Setting { setting: e.setting, reason: e.reason })?;
        if let Some(reason) = voxgate_control::plans::problem(&self.billing.plans) {
            return Err(ConfigError::Setting { setting: "billing.plans", reason });
        }
        Ok(())
    }

    /// What the media plane runs on: its sections, and what it takes from others.
    #[must_use]
    pub fn media(&self) -> MediaConfig {
        MediaConfig {
            sip: self.sip.clone(),
            rtp: self.rtp.clone(),
            webrtc: self.webrtc.clone(),
            widget: self.widget.clone(),
            vad: self.vad.clone(),
            jitter: self.jitter.clone(),
            trunk: self.trunk.clone(),
            dial: self.dial.clone(),
            limits: self.limits.clone(),
            models_dir: self.models.dir.clone(),
            recordings_dir: self.storage.recordings_dir.clone(),
            media_key: self.http.media_key.clone(),
            public_url: self.http.public_url.clone(),
            public_rate_limit: self.http.public_rate_limit,
            show_pii: self.log.show_pii,
        }
    }

    /// What the control plane runs on: its sections, the media plane's, and
    /// the listener's address and key.
    #[must_use]
    pub fn control(&self) -> ControlConfig {
        ControlConfig {
            numbers: self.sip.numbers.clone(),
            widget: self.widget.clone(),
            vad: self.vad.clone(),
            limits: self.limits.clone(),
            media_key: self.http.media_key.clone(),
            public_url: self.http.public_url.clone(),
            show_pii: self.log.show_pii,
            listen: self.http.listen,
            api_key: self.http.api_key.clone(),
            storage: self.storage.clone(),
            models: self.models.clone(),
            endpointing: self.endpointing.clone(),
            agent: self.agent.clone(),
            openai: self.openai.clone(),
            deepgram: self.deepgram.clone(),
            auth: self.auth.clone(),
            s3: self.s3.clone(),
            post_call: self.post_call.clone(),
            outbound: self.outbound.clone(),
            smtp: self.smtp.clone(),
            billing: self.billing.clone(),
            stripe: self.stripe.clone(),
            signup: self.signup.clone(),
            scripted: self.scripted.clone(),
        }
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
        assert_eq!(c.vad.backend, voxgate_media::config::VadBackend::Webrtc);
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
        assert_eq!(c.agent.llm, voxgate_control::config::LlmChoice::Openai);
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
