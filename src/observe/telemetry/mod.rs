//! Traces and metrics on the OpenTelemetry standards, for the tools
//! operators already run: spans exported over OTLP (an `invoke_agent` span
//! per run, a span per action task, GenAI spans per model and tool call),
//! and metrics both scraped by Prometheus and exported over OTLP.
//!
//! [`Telemetry`] is the process's side (the SDK's providers and exporters,
//! configured by [`TelemetrySettings`] and the standard `OTEL_*`
//! variables); `AgentTelemetry` is one agent's (its tracer, its
//! instruments with their attributes made once), which a
//! [`crate::Runtime`] takes. Off, each costs nothing on the runtime's path:
//! the runtime holds `None`.

mod metrics;
mod otlp;
pub mod scrape;
mod trace;

pub(crate) use metrics::{AgentMetrics, EventKind, JournalMetrics};
pub use trace::TRACEPARENT;
pub(crate) use trace::{CallKind, CallSpan, RunTrace, end_task, inject, inject_current};

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// What telemetry to produce. Endpoints and headers come from the standard
/// `OTEL_EXPORTER_OTLP_*` variables (default `http://localhost:4318`).
#[derive(Debug, Clone, Default)]
pub struct TelemetrySettings {
    /// Export spans over OTLP/HTTP.
    pub traces: bool,
    /// The fraction of runs traced (a run that joins a caller's trace
    /// follows the caller's decision). `None`: the standard
    /// `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`, else every run.
    pub sample_ratio: Option<f64>,
    /// Put message contents (prompts, replies, tool arguments and results)
    /// on spans. Off by default: they may hold personal data.
    pub record_content: bool,
    /// Export metrics over OTLP/HTTP.
    pub otlp_metrics: bool,
    /// Keep metrics for a Prometheus scrape ([`Telemetry::prometheus_text`]).
    pub prometheus: bool,
    /// How often metrics are exported over OTLP (default 10 s, or the
    /// standard `OTEL_METRIC_EXPORT_INTERVAL`).
    pub export_interval: Option<std::time::Duration>,
    /// The OTLP/HTTP base URL (`http://host:4318`; `/v1/traces` and
    /// `/v1/metrics` are added). `None`: the `OTEL_EXPORTER_OTLP_*`
    /// variables, else `http://localhost:4318`.
    pub otlp_endpoint: Option<String>,
}

impl TelemetrySettings {
    /// Whether anything is produced at all.
    pub fn any(&self) -> bool {
        self.traces || self.otlp_metrics || self.prometheus
    }
}

/// The process's telemetry: the span and metric pipelines and their
/// exporters. [`Telemetry::shutdown`] sends what is pending.
pub struct Telemetry {
    tracer_provider: Option<SdkTracerProvider>,
    meter_provider: Option<SdkMeterProvider>,
    registry: Option<prometheus::Registry>,
    record_content: bool,
    faults: Arc<Faults>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("traces", &self.tracer_provider.is_some())
            .field("metrics", &self.meter_provider.is_some())
            .finish_non_exhaustive()
    }
}

/// What went wrong producing telemetry. Each kind of fault is reported
/// once (a warning) and counted; none stops a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TelemetryStats {
    /// OTLP exports (span or metric batches) that failed.
    pub export_failures: u64,
    /// Input events whose `traceparent` attribute was malformed (the run
    /// started a trace of its own).
    pub bad_traceparents: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Faults {
    export_failures: AtomicU64,
    export_reported: AtomicBool,
    bad_traceparents: AtomicU64,
    traceparent_reported: AtomicBool,
}

impl Faults {
    pub(crate) fn export_failed(&self, what: &str, error: &dyn std::fmt::Display) {
        self.export_failures.fetch_add(1, Relaxed);
        if !self.export_reported.swap(true, Relaxed) {
            tracing::warn!(
                "cannot export telemetry over OTLP ({what}): {error}; the run goes on, and \
                 failed exports are counted (is a collector listening at \
                 OTEL_EXPORTER_OTLP_ENDPOINT, default http://localhost:4318?)"
            );
        }
    }

    pub(crate) fn bad_traceparent(&self, key: &str, value: &str) {
        self.bad_traceparents.fetch_add(1, Relaxed);
        if !self.traceparent_reported.swap(true, Relaxed) {
            tracing::warn!(
                key,
                traceparent = %crate::util::head(value, 80),
                "an input event's `traceparent` attribute is not W3C trace context \
                 (00-<32 hex>-<16 hex>-<2 hex>); its run starts a trace of its own \
                 (reported once, counted)"
            );
        }
    }
}

/// How spans are batched for export, where the standard `OTEL_BSP_*`
/// variables do not say: the SDK's defaults (2,048 spans queued, sent
/// every 5 s) drop spans of a busy agent (two per run and one per call, at
/// tens of thousands of runs a second); these keep up to 32,768 (some
/// 16 MB) and send every second.
fn span_batches() -> opentelemetry_sdk::trace::BatchConfig {
    let unset = |name: &str| std::env::var_os(name).is_none();
    let mut batches = opentelemetry_sdk::trace::BatchConfigBuilder::default();
    if unset("OTEL_BSP_MAX_QUEUE_SIZE") {
        batches = batches.with_max_queue_size(32_768);
    }
    if unset("OTEL_BSP_SCHEDULE_DELAY") {
        batches = batches.with_scheduled_delay(std::time::Duration::from_secs(1));
    }
    if unset("OTEL_BSP_MAX_EXPORT_BATCH_SIZE") {
        batches = batches.with_max_export_batch_size(2_048);
    }
    batches.build()
}

impl Telemetry {
    /// Sets up what `settings` asks for. Must be called within a tokio
    /// runtime (exports are sent on it). Fails only on settings that cannot
    /// work (an OTLP endpoint that is not a URL); an unreachable collector
    /// is a fault reported when exports fail.
    pub fn new(settings: &TelemetrySettings) -> anyhow::Result<Telemetry> {
        let faults = Arc::new(Faults::default());
        let resource = Resource::builder()
            .with_service_name("weir")
            .with_attribute(opentelemetry::KeyValue::new(
                "service.version",
                env!("CARGO_PKG_VERSION"),
            ))
            .build();
        let tracer_provider = if settings.traces {
            let mut exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_http_client(otlp::Client::new("spans", faults.clone())?);
            if let Some(base) = &settings.otlp_endpoint {
                exporter =
                    exporter.with_endpoint(format!("{}/v1/traces", base.trim_end_matches('/')));
            }
            let exporter = exporter.build()?;
            let processor = opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter)
                .with_batch_config(span_batches())
                .build();
            let mut builder = SdkTracerProvider::builder()
                .with_span_processor(processor)
                .with_resource(resource.clone());
            if let Some(ratio) = settings.sample_ratio {
                builder = builder.with_sampler(Sampler::ParentBased(Box::new(
                    Sampler::TraceIdRatioBased(ratio.clamp(0.0, 1.0)),
                )));
            }
            Some(builder.build())
        } else {
            None
        };
        let mut registry = None;
        let meter_provider = if settings.otlp_metrics || settings.prometheus {
            let mut builder = SdkMeterProvider::builder().with_resource(resource);
            if settings.prometheus {
                let scraped = prometheus::Registry::new();
                let exporter = opentelemetry_prometheus::exporter()
                    .with_registry(scraped.clone())
                    .scope_info_enabled(false)
                    .build()?;
                builder = builder.with_reader(exporter);
                registry = Some(scraped);
            }
            if settings.otlp_metrics {
                let mut exporter = opentelemetry_otlp::MetricExporter::builder()
                    .with_http()
                    .with_http_client(otlp::Client::new("metrics", faults.clone())?);
                if let Some(base) = &settings.otlp_endpoint {
                    exporter = exporter
                        .with_endpoint(format!("{}/v1/metrics", base.trim_end_matches('/')));
                }
                let exporter = exporter.build()?;
                let mut reader = opentelemetry_sdk::metrics::PeriodicReader::builder(exporter);
                if let Some(interval) = settings.export_interval {
                    reader = reader.with_interval(interval);
                }
                builder = builder.with_reader(reader.build());
            }
            Some(builder.build())
        } else {
            None
        };
        Ok(Telemetry {
            tracer_provider,
            meter_provider,
            registry,
            record_content: settings.record_content,
            faults,
        })
    }

    /// Telemetry that produces nothing.
    pub fn off() -> Telemetry {
        Telemetry {
            tracer_provider: None,
            meter_provider: None,
            registry: None,
            record_content: false,
            faults: Arc::default(),
        }
    }

    /// Whether spans or metrics are produced.
    pub fn is_on(&self) -> bool {
        self.tracer_provider.is_some() || self.meter_provider.is_some()
    }

    /// Agent `agent`'s telemetry (see [`crate::Runtime::with_telemetry`]):
    /// `None` when nothing is produced. Metrics are labelled with its
    /// `actions` and the event types it `routes`; any other type counts as
    /// `other`, so a guest cannot make series without bound.
    pub(crate) fn agent<'a>(
        &self,
        agent: &str,
        actions: impl Iterator<Item = &'a str>,
        routes: impl Iterator<Item = &'a str>,
    ) -> Option<Arc<AgentTelemetry>> {
        if !self.is_on() {
            return None;
        }
        let tracer: Option<SdkTracer> = self
            .tracer_provider
            .as_ref()
            .map(|provider| provider.tracer("weir"));
        let metrics = self.meter_provider.as_ref().map(|provider| {
            Arc::new(AgentMetrics::new(
                &provider.meter("weir"),
                agent,
                actions,
                routes,
            ))
        });
        Some(Arc::new(AgentTelemetry {
            agent: Arc::from(agent),
            tracer,
            metrics,
            record_content: self.record_content,
            faults: self.faults.clone(),
        }))
    }

    /// The metrics in the Prometheus text exposition format (version
    /// 0.0.4), or `None` without [`TelemetrySettings::prometheus`].
    pub fn prometheus_text(&self) -> Option<String> {
        use prometheus::Encoder as _;
        let registry = self.registry.as_ref()?;
        let mut out = Vec::new();
        if let Err(e) = prometheus::TextEncoder::new().encode(&registry.gather(), &mut out) {
            tracing::warn!(error = %e, "cannot encode the metrics for Prometheus");
        }
        Some(String::from_utf8_lossy(&out).into_owned())
    }

    /// What went wrong so far.
    pub fn stats(&self) -> TelemetryStats {
        TelemetryStats {
            export_failures: self.faults.export_failures.load(Relaxed),
            bad_traceparents: self.faults.bad_traceparents.load(Relaxed),
        }
    }

    /// Sends what is pending (spans, a last metric export) and stops the
    /// exporters. Blocks: call it off the async runtime's workers (for
    /// example in `tokio::task::spawn_blocking`).
    pub fn shutdown(&self) {
        if let Some(provider) = &self.tracer_provider
            && let Err(e) = provider.shutdown()
        {
            tracing::debug!(error = %e, "span exporter shutdown");
        }
        if let Some(provider) = &self.meter_provider
            && let Err(e) = provider.shutdown()
        {
            tracing::debug!(error = %e, "metric exporter shutdown");
        }
    }
}

/// One agent's telemetry: its tracer and instruments. Made by
/// [`Telemetry::agent`].
pub(crate) struct AgentTelemetry {
    pub(crate) agent: Arc<str>,
    pub(crate) tracer: Option<SdkTracer>,
    pub(crate) metrics: Option<Arc<AgentMetrics>>,
    pub(crate) record_content: bool,
    pub(crate) faults: Arc<Faults>,
}

impl std::fmt::Debug for AgentTelemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentTelemetry")
            .field("agent", &self.agent)
            .field("traces", &self.tracer.is_some())
            .field("metrics", &self.metrics.is_some())
            .finish_non_exhaustive()
    }
}

/// A task's telemetry: its agent's, and the context it runs in (its span's,
/// when its run is traced).
#[derive(Clone)]
pub(crate) struct TaskTelemetry {
    pub agent: Arc<AgentTelemetry>,
    pub cx: opentelemetry::Context,
}

/// Model requests sent again in the current call (see
/// [`opentelemetry::context::FutureExt`]): the model client counts its
/// retries here, the host-call path reads them.
#[derive(Debug, Default)]
pub(crate) struct Retries(pub AtomicU64);

impl Retries {
    /// Counts a retry of the call running now, if it is observed.
    pub(crate) fn count() {
        opentelemetry::Context::map_current(|cx| {
            if let Some(retries) = cx.get::<Arc<Retries>>() {
                retries.0.fetch_add(1, Relaxed);
            }
        });
    }
}
