//! Prometheus metrics: HTTP requests and latency recorded by a middleware, and the
//! orchestrator's counters read at each scrape.

use std::sync::Arc;

use lancesync_orchestrator::Orchestrator;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of an HTTP request: the route template (not the raw path, so ids don't explode
/// the label space), the method and the status.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

/// The registry and the HTTP metrics.
pub struct Metrics {
    registry: Registry,
    pub(crate) requests: Family<RequestLabels, Counter>,
    pub(crate) latency: Family<RequestLabels, Histogram>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct OrchestratorCollector(Orchestrator);

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: impl Into<u64>,
) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(value.into());
    c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(value);
    g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
}

impl Collector for OrchestratorCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let c = self.0.counters();
        let runs = ConstCounter::new(0u64);
        let mut family = encoder.encode_descriptor(
            "lancesync_runs",
            "Sync runs by outcome (succeeded, failed, skipped_busy).",
            None,
            runs.metric_type(),
        )?;
        for (outcome, n) in [
            ("succeeded", c.runs_succeeded),
            ("failed", c.runs_failed),
            ("skipped_busy", c.runs_skipped_busy),
        ] {
            ConstCounter::new(n).encode(family.encode_family(&[("outcome", outcome)])?)?;
        }
        let mut family = encoder.encode_descriptor(
            "lancesync_documents",
            "Documents handled by runs, by outcome.",
            None,
            runs.metric_type(),
        )?;
        for (outcome, n) in &c.documents {
            ConstCounter::new(*n)
                .encode(family.encode_family(&[("outcome", outcome.as_str())])?)?;
        }
        counter(
            &mut encoder,
            "lancesync_chunks_written",
            "Chunk rows written.",
            c.chunks_written,
        )?;
        let seconds = ConstCounter::new(c.run_seconds_total);
        seconds.encode(encoder.encode_descriptor(
            "lancesync_run_seconds",
            "Time spent in sync runs.",
            None,
            seconds.metric_type(),
        )?)?;
        gauge(
            &mut encoder,
            "lancesync_runs_in_progress",
            "Runs in progress.",
            c.runs_in_progress as i64,
        )?;
        gauge(
            &mut encoder,
            "lancesync_queue_depth",
            "Runs waiting: scheduled ones held by a stopped pipeline or busy slots, and queued scans.",
            c.pending_runs as i64,
        )?;
        gauge(
            &mut encoder,
            "lancesync_sources",
            "Sources scheduled.",
            c.sources as i64,
        )?;
        gauge(
            &mut encoder,
            "lancesync_s3_backlog_users",
            "Users whose local changes wait to be copied to S3 (local-primary modes with S3).",
            self.0.engine().storage().backlog().len() as i64,
        )?;
        let memory = self.0.engine().search_memory();
        gauge(
            &mut encoder,
            "lancesync_search_memory_bytes",
            "Memory held by in-memory search indexes (SEARCH_MEMORY_MB).",
            memory.iter().map(|i| i.bytes as i64).sum(),
        )?;
        gauge(
            &mut encoder,
            "lancesync_search_memory_chunks",
            "Chunks held by in-memory search indexes.",
            memory.iter().map(|i| i.rows as i64).sum(),
        )?;
        gauge(
            &mut encoder,
            "lancesync_pipeline_running",
            "1 when the pipeline is started.",
            i64::from(self.0.is_running()),
        )?;
        if let Some(coordinator) = self.0.engine().coordinator() {
            let status = coordinator.status();
            let reachable = ConstGauge::new(i64::from(status.reachable));
            let mut family = encoder.encode_descriptor(
                "lancesync_coordinator_reachable",
                "1 while this instance's session to the coordinator (COORDINATOR_URL) answers.",
                None,
                reachable.metric_type(),
            )?;
            reachable
                .encode(family.encode_family(&[("instance", status.instance_id.as_str())])?)?;
            gauge(
                &mut encoder,
                "lancesync_coordinator_users_held",
                "Users this instance holds cluster-wide (writes in progress, or just ended).",
                status.users_held.len() as i64,
            )?;
            counter(
                &mut encoder,
                "lancesync_coordinator_statements",
                "Statements sent to the coordinator, heartbeats and preparations included.",
                status.statements,
            )?;
            gauge(
                &mut encoder,
                "lancesync_cluster_queue_depth",
                "Sources due cluster-wide at the last reading of the shared schedule.",
                self.0.cluster_queue_depth().unwrap_or(0) as i64,
            )?;
        }
        Ok(())
    }
}

impl Metrics {
    /// Metrics for a server over `orchestrator`.
    pub fn new(orchestrator: Orchestrator) -> Arc<Self> {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            // 0.5 ms to ~16 s.
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register(
            "lancesync_http_requests",
            "HTTP requests by route, method and status.",
            requests.clone(),
        );
        registry.register(
            "lancesync_http_request_duration_seconds",
            "HTTP request latency by route, method and status.",
            latency.clone(),
        );
        registry.register_collector(Box::new(OrchestratorCollector(orchestrator)));
        Arc::new(Self {
            registry,
            requests,
            latency,
        })
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String does not fail");
        out
    }
}
