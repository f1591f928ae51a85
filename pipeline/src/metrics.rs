//! Prometheus metrics of the conversation engine (turn latency, provider
//! failures, barge-ins, sessions, jitter buffers, media ticks), in one
//! process-wide registry. The server's own (calls, admission, post-call
//! work) are its crates'; `/metrics` encodes them all ([`encode_with`]).

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// A stage of the per-turn latency breakdown.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabel {
    /// `final_transcript`, `committed`, `llm_first_token`, `tts_first_audio`, `first_frame`.
    pub stage: &'static str,
}

/// A provider, by stage and name.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabel {
    /// `stt`, `llm`, `tts`, `tool`.
    pub stage: &'static str,
    /// The provider's name.
    pub provider: String,
}

/// What became of the caller's packets in a jitter buffer.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FateLabel {
    /// `received`, `late`, `lost`, `concealed`, `duplicate`.
    pub fate: &'static str,
}

/// The engine's metrics.
#[derive(Debug)]
pub struct PipelineMetrics {
    /// Seconds from the end of the caller's speech to each stage of the reply.
    pub turn_latency: Family<StageLabel, Histogram>,
    /// Provider failures that were retried.
    pub provider_retries: Family<ProviderLabel, Counter>,
    /// Provider failures that ended a turn.
    pub provider_failures: Family<ProviderLabel, Counter>,
    /// Barge-ins: the caller stopped the agent.
    pub interruptions: Counter,
    /// Sessions running now.
    pub active_sessions: Gauge,
    /// Caller packets through the jitter buffers (SIP, WebRTC), by fate.
    pub jitter_packets: Family<FateLabel, Counter>,
    /// Each call's jitter buffer delay target when it ended, in seconds.
    pub jitter_delay: Histogram,
    /// How late each 20 ms media tick of an RTP call ran, in seconds: an
    /// agent frame goes out on each, so this is the server's own share of
    /// the caller's jitter.
    pub media_tick_lateness: Histogram,
}

static METRICS: LazyLock<(Registry, PipelineMetrics)> = LazyLock::new(|| {
    let mut registry = Registry::with_prefix("voxgate");
    let metrics = PipelineMetrics {
        turn_latency: Family::new_with_constructor(|| {
            // 10 ms .. ~20 s.
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.01, 2.0, 12))
        }),
        provider_retries: Family::default(),
        provider_failures: Family::default(),
        interruptions: Counter::default(),
        active_sessions: Gauge::default(),
        jitter_packets: Family::default(),
        // 20 ms .. ~1.3 s.
        jitter_delay: Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
            0.02, 1.5, 12,
        )),
        // 250 µs .. 128 ms.
        media_tick_lateness: Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
            0.000_25, 2.0, 10,
        )),
    };
    registry.register(
        "turn_latency_seconds",
        "Time from the end of the caller's speech to each stage of the agent's reply",
        metrics.turn_latency.clone(),
    );
    registry.register(
        "provider_retries",
        "Provider failures that were retried",
        metrics.provider_retries.clone(),
    );
    registry.register(
        "provider_failures",
        "Provider failures that ended a turn",
        metrics.provider_failures.clone(),
    );
    registry.register("interruptions", "Times the caller barged in", metrics.interruptions.clone());
    registry.register("active_sessions", "Conversation sessions running", metrics.active_sessions.clone());
    registry.register(
        "jitter_packets",
        "Caller packets through the jitter buffers, by what became of them",
        metrics.jitter_packets.clone(),
    );
    registry.register(
        "jitter_delay_seconds",
        "Each call's jitter buffer delay target when it ended",
        metrics.jitter_delay.clone(),
    );
    registry.register(
        "media_tick_lateness_seconds",
        "How late each 20 ms media tick of an RTP call ran",
        metrics.media_tick_lateness.clone(),
    );
    (registry, metrics)
});

/// The process-wide metrics.
#[must_use]
pub fn metrics() -> &'static PipelineMetrics {
    &METRICS.1
}

/// The engine's metrics and those in `others` (the server's own), in the
/// Prometheus text format.
#[must_use]
pub fn encode_with(others: &[&Registry]) -> String {
    use prometheus_client::encoding::text::{encode_eof, encode_registry};
    let mut out = String::new();
    // Writing into a String cannot fail.
    for registry in std::iter::once(&METRICS.0).chain(others.iter().copied()) {
        let _ = encode_registry(&mut out, registry);
    }
    let _ = encode_eof(&mut out);
    out
}

/// The engine's metrics alone, in the Prometheus text format.
#[must_use]
pub fn encode() -> String {
    encode_with(&[])
}
