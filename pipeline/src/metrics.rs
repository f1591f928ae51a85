//! Prometheus metrics of the conversation engine, in one process-wide
//! registry that the server's `/metrics` endpoint encodes.

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

/// A transport that carries calls.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelLabel {
    /// `sip`, `webrtc`, `websocket`.
    pub channel: &'static str,
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

/// A post-call job's try, by kind and outcome.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabel {
    /// `post_call`, `webhook`, `email`, `crm`.
    pub kind: String,
    /// `done`, `retry` (failed, tried again later), `failed` (given up).
    pub outcome: &'static str,
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
    /// Seconds from a call's first message (an INVITE, an offer) to its
    /// answer going out, by channel; includes any configured ringing.
    pub call_setup: Family<ChannelLabel, Histogram>,
    /// Malformed or unexpected messages from media clients, by channel.
    pub bad_frames: Family<ChannelLabel, Counter>,
    /// Finished calls by channel and outcome.
    pub calls_ended: Family<OutcomeLabel, Counter>,
    /// Calls refused at an admission limit.
    pub calls_refused: Family<RefusalLabel, Counter>,
    /// Caller packets through the jitter buffers (SIP, WebRTC), by fate.
    pub jitter_packets: Family<FateLabel, Counter>,
    /// Each call's jitter buffer delay target when it ended, in seconds.
    pub jitter_delay: Histogram,
    /// Tries of the work after calls (analytics, webhooks, email, CRM), by kind and outcome.
    pub post_call_jobs: Family<JobLabel, Counter>,
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
        call_setup: Family::new_with_constructor(|| {
            // 50 µs .. ~3 s.
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.000_05, 2.0, 16))
        }),
        bad_frames: Family::default(),
        calls_ended: Family::default(),
        calls_refused: Family::default(),
        jitter_packets: Family::default(),
        // 20 ms .. ~1.3 s.
        jitter_delay: Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
            0.02, 1.5, 12,
        )),
        post_call_jobs: Family::default(),
        // 250 µs .. 128 ms.
        media_tick_lateness: Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
            0.000_25, 2.0, 10,
        )),
    };
    registry.register(
        "post_call_jobs",
        "Tries of the work after calls, by kind and outcome",
        metrics.post_call_jobs.clone(),
    );
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

/// All metrics in the Prometheus text format.
#[must_use]
pub fn encode() -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &METRICS.0);
    out
}
