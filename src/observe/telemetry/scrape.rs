//! The Prometheus scrape endpoint (`--metrics-addr`): `GET /metrics` in
//! the text exposition format, served on the runtime's tokio runtime.

use super::Telemetry;
use std::net::SocketAddr;
use std::sync::Arc;

/// The text exposition format's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `telemetry`'s metrics as a scrape's answer, or `None` when it keeps
/// none for Prometheus (each endpoint says so in its own way).
pub fn exposition(telemetry: &Telemetry) -> Option<axum::response::Response> {
    use axum::response::IntoResponse as _;
    let text = telemetry.prometheus_text()?;
    Some(([(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}

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
                    exposition(&telemetry).unwrap_or_else(|| {
                        use axum::response::IntoResponse as _;
                        let why = "metrics are not kept for Prometheus\n";
                        (axum::http::StatusCode::NOT_FOUND, why).into_response()
                    })
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
