//! The settings both planes read: how an agent's widget looks, the voice
//! activity and turn settings its sessions get, and the limits on calls.
//! The media plane reads them in its sections (`[widget]`, `[vad]`,
//! `[limits]`); the control plane builds agents with them.

use serde::{Deserialize, Serialize};

/// A setting with a value out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting {setting}: {reason}")]
pub struct Invalid {
    /// `section.key`.
    pub setting: &'static str,
    pub reason: String,
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
    pub position: WidgetPosition,
    /// Origins (`https://www.example.com`) whose pages may show the widget; empty: any.
    pub allowed_origins: Vec<String>,
}

/// The corner of the page the widget's button sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum WidgetPosition {
    BottomRight,
    BottomLeft,
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
            position: WidgetPosition::BottomRight,
            allowed_origins: Vec::new(),
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
