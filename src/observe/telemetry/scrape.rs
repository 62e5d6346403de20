//! The Prometheus scrape endpoint (`--metrics-addr`): `GET /metrics` in
//! the text exposition format, served on the runtime's tokio runtime.

use super::Telemetry;
use std::net::SocketAddr;
use std::sync::Arc;

/// The text exposition format's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves `telemetry`'s metrics at `http://ADDR/metrics` until the returned
/// task is aborted. Fails if `addr` cannot be bound (the error names it).
pub async fn serve(
    telemetry: Arc<Telemetry>,
    addr: SocketAddr,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot serve metrics at {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let telemetry = telemetry.clone();
                async move {
                    match telemetry.prometheus_text() {
                        Some(text) => (
                            axum::http::StatusCode::OK,
                            [(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)],
                            text,
                        ),
                        None => (
                            axum::http::StatusCode::NOT_FOUND,
                            [(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)],
                            "metrics are not kept for Prometheus\n".to_string(),
                        ),
                    }
                }
            }),
        )
        .route("/", get(|| async { "weir: metrics at /metrics\n" }));
    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "the metrics endpoint stopped");
        }
    });
    Ok((bound, server))
}
