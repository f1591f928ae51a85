//! The media plane's Prometheus metrics: calls set up, ended and refused,
//! and media clients' bad messages, by channel. The engine's own (turn
//! latency, jitter buffers, media ticks) are `voxgate_pipeline::metrics`.

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use voxgate_domain::Channel;

/// A transport that carries calls.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelLabel {
    pub channel: &'static str,
}

impl From<Channel> for ChannelLabel {
    fn from(channel: Channel) -> Self {
        Self { channel: channel.as_str() }
    }
}

/// A finished call, by channel and how it ended.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub channel: &'static str,
    /// `caller_hung_up`, `agent_ended`, `no_media`, `transferred`, ...
    pub outcome: &'static str,
}

/// A call refused at an admission limit, by channel and which limit.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabel {
    pub channel: &'static str,
    /// `server`, `tenant` or `agent`.
    pub reason: &'static str,
}

/// The media plane's metrics.
#[derive(Debug)]
pub struct MediaMetrics {
    /// Time from a call's first message to its answer going out, by channel.
    pub call_setup: Family<ChannelLabel, Histogram>,
    /// Malformed or unexpected messages from media clients, by channel.
    pub bad_frames: Family<ChannelLabel, Counter>,
    /// Finished calls by channel and outcome.
    pub calls_ended: Family<OutcomeLabel, Counter>,
    /// Calls refused at an admission limit.
    pub calls_refused: Family<RefusalLabel, Counter>,
}

static METRICS: LazyLock<(Registry, MediaMetrics)> = LazyLock::new(|| {
    let mut registry = Registry::with_prefix("voxgate");
    let metrics = MediaMetrics {
        // 50 µs .. ~3 s.
        call_setup: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.000_05, 2.0, 16))),
        bad_frames: Family::default(),
        calls_ended: Family::default(),
        calls_refused: Family::default(),
    };
    registry.register(
        "call_setup_seconds",
        "Time from a call's first message to its answer going out",
        metrics.call_setup.clone(),
    );
    registry.register(
        "bad_frames",
        "Malformed or unexpected messages from media clients",
        metrics.bad_frames.clone(),
    );
    registry.register("calls_ended", "Finished calls by channel and outcome", metrics.calls_ended.clone());
    registry.register(
        "calls_refused",
        "Calls refused at an admission limit, by channel and limit",
        metrics.calls_refused.clone(),
    );
    (registry, metrics)
});

/// The process-wide metrics.
#[must_use]
pub fn metrics() -> &'static MediaMetrics {
    &METRICS.1
}

/// Their registry, for `/metrics` (`voxgate_pipeline::metrics::encode_with`).
#[must_use]
pub fn registry() -> &'static Registry {
    &METRICS.0
}
