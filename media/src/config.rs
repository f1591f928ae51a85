//! The media plane's settings: the sections of `config.toml` it reads
//! (`[sip]`, `[rtp]`, `[webrtc]`, `[widget]`, `[vad]`, `[jitter]`,
//! `[trunk]`, `[dial]`, `[limits]`), each read straight into typed values
//! (networks, addresses, enums), and [`MediaConfig`], which gathers them
//! with the few values it takes from other sections.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
pub use voxgate_calls::settings::{
    Invalid, LimitsSettings, TurnModel, VadBackend, VadSettings, WidgetConfig, WidgetPosition,
};
use voxgate_domain::Secret;

fn invalid(setting: &'static str, reason: impl Into<String>) -> Invalid {
    Invalid { setting, reason: reason.into() }
}

/// What the media plane runs on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MediaConfig {
    pub sip: SipConfig,
    pub rtp: RtpConfig,
    pub webrtc: WebRtcConfig,
    pub widget: WidgetConfig,
    pub vad: VadSettings,
    pub jitter: JitterSettings,
    pub trunk: TrunkSettings,
    pub dial: DialSettings,
    pub limits: LimitsSettings,
    /// Where the offline models are (`[models] dir`): Silero's VAD.
    pub models_dir: PathBuf,
    /// Where calls' recordings are written (`[storage] recordings_dir`).
    pub recordings_dir: PathBuf,
    /// The media endpoints' key (`[http] media_key`): it reaches every agent.
    /// Set, every other client needs a media token; empty, anonymous
    /// clients reach the public agents ([`crate::media_access`]).
    pub media_key: Secret,
    /// How clients reach this server (`[http] public_url`); empty: the request's `Host`.
    pub public_url: String,
    /// Requests per second one client network may make to the public
    /// endpoints (`[http] public_rate_limit`); 0: no limit.
    pub public_rate_limit: u32,
    /// Log numbers in full (`[log] show_pii`).
    pub show_pii: bool,
}

impl MediaConfig {
    /// The first setting out of range.
    ///
    /// # Errors
    /// That setting, and why.
    pub fn check(&self) -> Result<(), Invalid> {
        if self.rtp.port_min >= self.rtp.port_max {
            return Err(invalid(
                "rtp.port_min",
                format!("{} is not below port_max {}", self.rtp.port_min, self.rtp.port_max),
            ));
        }
        if self.sip.users.iter().any(|u| !u.expose().contains(':')) {
            return Err(invalid("sip.users", "each entry is name:password"));
        }
        self.trunk.check()?;
        let w = &self.webrtc;
        if w.enabled && (w.addresses.is_empty() || w.addresses.iter().any(IpAddr::is_unspecified)) {
            return Err(invalid(
                "webrtc.addresses",
                "name each interface (its address is a host candidate), not 0.0.0.0",
            ));
        }
        if let Some((setting, reason)) = self.widget.problem() {
            return Err(invalid(setting, reason));
        }
        if self.vad.webrtc_mode > 3 {
            return Err(invalid("vad.webrtc_mode", "must be 0..=3"));
        }
        let j = &self.jitter;
        if !(j.min_delay_ms <= j.start_delay_ms && j.start_delay_ms <= j.max_delay_ms) {
            return Err(invalid(
                "jitter.start_delay_ms",
                "need min_delay_ms <= start_delay_ms <= max_delay_ms",
            ));
        }
        Ok(())
    }

    /// Who may call over SIP.
    #[must_use]
    pub fn sip_policy(&self) -> voxgate_sip_bridge::responder::Policy {
        voxgate_sip_bridge::responder::Policy {
            trusted: self.sip.trusted.clone(),
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

    /// The voice activity detector each call gets.
    #[must_use]
    pub fn vad_config(&self) -> voxgate_pipeline::dsp::vad::VadConfig {
        use voxgate_pipeline::dsp::vad::{VadConfig, VadKind, WebRtcMode};
        let mut c = VadConfig::with_models_dir(&self.models_dir);
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

    /// The receive jitter buffer `[jitter]` describes.
    #[must_use]
    pub fn jitter(&self) -> voxgate_pipeline::dsp::jitter::JitterConfig {
        let j = &self.jitter;
        voxgate_pipeline::dsp::jitter::JitterConfig {
            start_delay_ms: j.start_delay_ms,
            min_delay_ms: j.min_delay_ms,
            max_delay_ms: j.max_delay_ms,
            ..Default::default()
        }
    }
}

impl TrunkSettings {
    fn check(&self) -> Result<(), Invalid> {
        if !self.registrar.is_empty() && self.aor.is_empty() {
            return Err(invalid("trunk.aor", "a registrar needs an AOR"));
        }
        for (setting, uri) in [
            ("trunk.registrar", &self.registrar),
            ("trunk.aor", &self.aor),
            ("trunk.outbound_proxy", &self.outbound_proxy),
        ] {
            let ok = uri.is_empty()
                || matches!(
                    voxgate_sip_bridge::message::Uri::parse(uri),
                    Ok(voxgate_sip_bridge::message::Uri::Sip(_))
                );
            if !ok {
                return Err(invalid(setting, format!("{uri:?} is not a sip: URI")));
            }
        }
        Ok(())
    }
}

/// An optional address written as the address, or `""` for none.
mod empty_is_none {
    use std::net::IpAddr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<IpAddr>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(ip) => s.collect_str(ip),
            None => s.serialize_str(""),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IpAddr>, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() { Ok(None) } else { s.parse().map(Some).map_err(serde::de::Error::custom) }
    }
}

/// SIP signalling for phone callers and trunks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    pub enabled: bool,
    pub udp_listen: SocketAddr,
    /// The same address as `udp_listen` with port 0: the port UDP was given.
    pub tcp_listen: SocketAddr,
    /// The address put in Via, Contact and SDP (behind NAT); empty: the
    /// listen address, or per caller the interface that reaches it.
    #[serde(with = "empty_is_none")]
    pub public_address: Option<IpAddr>,
    /// Numbers (SIP user parts) that reach the agent; others get 404.
    pub numbers: Vec<String>,
    /// Ring (180 Ringing) this long before answering; 0 answers at once.
    pub ring_ms: u32,
    /// Networks (CIDR) whose calls need no authentication and whose traffic
    /// is not rate limited: your trunks and PBXs.
    pub trusted: Vec<ipnet::IpNet>,
    /// `name:password` pairs that may call from anywhere else (Digest).
    pub users: Vec<Secret>,
    /// Requests per second from one untrusted network (/24, /56; bursts of twice that).
    pub rate_limit: u32,
    /// SIP over TCP connections open at once, and from one address.
    pub tcp_max_connections: u32,
    pub tcp_max_per_source: u32,
    /// A TCP connection that sends nothing (not even a keep-alive) this long is closed.
    pub tcp_idle_timeout_s: u32,
    /// SIP over TLS listens here when `tls_cert` and `tls_key` are set.
    pub tls_listen: SocketAddr,
    /// PEM files: our certificate chain and its private key (reread on SIGHUP).
    pub tls_cert: String,
    pub tls_key: String,
    /// A PEM file of CAs: when set, a TLS client must present a certificate
    /// they signed (mutual TLS for trunks); empty: no client certificate asked.
    pub tls_client_ca: String,
    /// A TLS connection must finish its handshake within this many seconds.
    pub tls_handshake_timeout_s: u32,
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            udp_listen: SocketAddr::from(([0, 0, 0, 0], 5060)),
            tcp_listen: SocketAddr::from(([0, 0, 0, 0], 5060)),
            public_address: None,
            numbers: vec!["1000".to_owned()],
            ring_ms: 0,
            trusted: ["127.0.0.0/8", "::1/128"].map(|n| n.parse().expect("a CIDR")).to_vec(),
            users: Vec::new(),
            rate_limit: 20,
            tcp_max_connections: 1024,
            tcp_max_per_source: 16,
            tcp_idle_timeout_s: 600,
            tls_listen: SocketAddr::from(([0, 0, 0, 0], 5061)),
            tls_cert: String::new(),
            tls_key: String::new(),
            tls_client_ca: String::new(),
            tls_handshake_timeout_s: 10,
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
    /// SRTP for phone calls whose agent and trunk do not say.
    pub srtp: voxgate_calls::agent::SrtpMode,
}

impl Default for RtpConfig {
    fn default() -> Self {
        Self { port_min: 10_000, port_max: 20_000, no_media_timeout_s: 30, srtp: Default::default() }
    }
}

/// Browser calls over WebRTC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebRtcConfig {
    pub enabled: bool,
    /// The interface addresses a call's media sockets bind to (one each),
    /// which are its host candidates.
    pub addresses: Vec<IpAddr>,
    /// Announced instead of `address` behind a 1:1 NAT (e.g. a cloud VM's public IP); empty: none.
    #[serde(with = "empty_is_none")]
    pub public_address: Option<IpAddr>,
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
            addresses: vec![IpAddr::from([127, 0, 0, 1])],
            public_address: None,
            max_pending_per_network: 4,
            max_pending: 100,
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
    /// SRTP on calls placed through the trunk; none: the agent's, or `rtp.srtp`.
    pub srtp: Option<voxgate_calls::agent::SrtpMode>,
    /// A PEM file of the CAs the trunk's TLS certificate must chain to
    /// (`sips:` or `transport=tls` in its URIs); empty: the system's roots.
    pub tls_ca: String,
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
            srtp: None,
            tls_ca: String::new(),
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
