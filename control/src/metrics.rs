//! The control plane's Prometheus metrics: the tries of the work after
//! calls.

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// A post-call job's try, by kind and outcome.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabel {
    /// `post_call`, `webhook`, `email`, `crm`.
    pub kind: String,
    /// `done`, `retry` (failed, tried again later), `failed` (given up).
    pub outcome: &'static str,
}

/// The control plane's metrics.
#[derive(Debug)]
pub struct ControlMetrics {
    /// Tries of the work after calls, by kind and outcome.
    pub post_call_jobs: Family<JobLabel, Counter>,
}

static METRICS: LazyLock<(Registry, ControlMetrics)> = LazyLock::new(|| {
    let mut registry = Registry::with_prefix("voxgate");
    let metrics = ControlMetrics { post_call_jobs: Family::default() };
    registry.register(
        "post_call_jobs",
        "Tries of the work after calls, by kind and outcome",
        metrics.post_call_jobs.clone(),
    );
    (registry, metrics)
});

/// The process-wide metrics.
#[must_use]
pub fn metrics() -> &'static ControlMetrics {
    &METRICS.1
}

/// Their registry, for `/metrics` (`voxgate_pipeline::metrics::encode_with`).
#[must_use]
pub fn registry() -> &'static Registry {
    &METRICS.0
}
