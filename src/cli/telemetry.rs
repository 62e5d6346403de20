//! `weir run`'s telemetry options: OpenTelemetry traces and metrics over
//! OTLP, and a Prometheus scrape endpoint, set up before the run and sent
//! off after it.

use std::net::SocketAddr;
use std::sync::Arc;
use weir::observe::telemetry::{Telemetry, TelemetrySettings, scrape};

#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct TelemetryArgs {
    /// Serve Prometheus metrics at http://HOST:PORT/metrics while the agent runs.
    #[arg(long, value_name = "HOST:PORT")]
    metrics_addr: Option<SocketAddr>,
    /// Export spans over OTLP/HTTP (endpoint and headers from OTEL_EXPORTER_OTLP_*;
    /// default http://localhost:4318).
    #[arg(long, env = "WEIR_TRACES")]
    traces: bool,
    /// Export metrics over OTLP/HTTP (as --traces; every OTEL_METRIC_EXPORT_INTERVAL ms,
    /// default 10 s, and once at the end).
    #[arg(long, env = "WEIR_OTLP_METRICS")]
    otlp_metrics: bool,
    /// The fraction of runs traced, 0 to 1 (default: OTEL_TRACES_SAMPLER and
    /// OTEL_TRACES_SAMPLER_ARG, else all); a run joining a caller's trace
    /// follows the caller's decision.
    #[arg(long, value_name = "RATIO", value_parser = ratio, requires = "traces")]
    trace_sample: Option<f64>,
    /// Put message contents (prompts, replies, tool results) on spans; off
    /// by default, as they may hold personal data.
    #[arg(long, requires = "traces")]
    trace_content: bool,
}

fn ratio(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("`{text}` is not a ratio between 0 and 1")),
    }
}

/// The run's telemetry while it runs.
pub(crate) struct Running {
    pub telemetry: Arc<Telemetry>,
    scrape: Option<tokio::task::JoinHandle<()>>,
}

impl TelemetryArgs {
    fn settings(&self, prometheus: bool) -> TelemetrySettings {
        TelemetrySettings {
            traces: self.traces,
            sample_ratio: self.trace_sample,
            record_content: self.trace_content,
            otlp_metrics: self.otlp_metrics,
            prometheus,
            export_interval: None,
            otlp_endpoint: None,
        }
    }

    /// Telemetry whose metrics are kept for a Prometheus scrape served by
    /// the caller (`weir serve`'s `/metrics`), with the other options.
    pub(crate) async fn start_with_prometheus(&self) -> anyhow::Result<Running> {
        self.start_with(self.settings(true)).await
    }

    /// Sets up what the options ask for (`None`: nothing).
    pub(crate) async fn start(&self) -> anyhow::Result<Option<Running>> {
        let settings = self.settings(self.metrics_addr.is_some());
        if !settings.any() {
            return Ok(None);
        }
        Ok(Some(self.start_with(settings).await?))
    }

    async fn start_with(&self, settings: TelemetrySettings) -> anyhow::Result<Running> {
        let telemetry = Arc::new(Telemetry::new(&settings)?);
        let scrape = match self.metrics_addr {
            Some(addr) => {
                let (bound, server) = scrape::serve(telemetry.clone(), addr).await?;
                eprintln!("weir: metrics at http://{bound}/metrics");
                Some(server)
            }
            None => None,
        };
        Ok(Running { telemetry, scrape })
    }
}

impl Running {
    /// Sends what is pending, stops the endpoint, and reports faults.
    pub(crate) async fn finish(self) {
        if let Some(scrape) = self.scrape {
            scrape.abort();
        }
        let telemetry = self.telemetry.clone();
        let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
        let stats = self.telemetry.stats();
        if stats.export_failures > 0 {
            eprintln!(
                "weir: telemetry: {} OTLP exports failed (see the warning above)",
                stats.export_failures
            );
        }
        if stats.bad_traceparents > 0 {
            eprintln!(
                "weir: telemetry: {} input events had a malformed traceparent",
                stats.bad_traceparents
            );
        }
    }
}
