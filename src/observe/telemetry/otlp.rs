//! The HTTP client OTLP exports go through: weir's reqwest (rustls, no
//! second HTTP stack), run on the tokio runtime that made it, since the
//! SDK's exporters send from threads of their own. A failed export (no
//! collector, a refusal) is counted and reported once, never retried into
//! the run's way.

use super::Faults;
use opentelemetry_http::{Bytes, HttpError, Request, Response};
use std::sync::Arc;
use std::time::Duration;

/// Longest a collector may take to answer one export.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The most of a collector's answer read (OTLP answers are tiny).
const MAX_ANSWER_BYTES: usize = 1 << 20;

#[derive(Debug)]
pub(super) struct Client {
    /// What is exported (`spans`, `metrics`), for the fault report.
    signal: &'static str,
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
    faults: Arc<Faults>,
}

impl Client {
    pub(super) fn new(signal: &'static str, faults: Arc<Faults>) -> anyhow::Result<Client> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            anyhow::anyhow!("telemetry must be set up within a tokio runtime (exports run on it)")
        })?;
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| anyhow::anyhow!("cannot make the OTLP HTTP client: {e}"))?;
        Ok(Client {
            signal,
            http,
            runtime,
            faults,
        })
    }

    async fn send(
        http: reqwest::Client,
        request: Request<Bytes>,
    ) -> Result<Response<Bytes>, String> {
        let request = reqwest::Request::try_from(request).map_err(|e| e.to_string())?;
        let url = request.url().to_string();
        let mut response = http
            .execute(request)
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| format!("{url}: {e}"))? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(format!(
                    "{url}: the answer is over {MAX_ANSWER_BYTES} bytes"
                ));
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            return Err(format!(
                "{url}: HTTP {status}: {}",
                crate::util::head(text.trim(), 200)
            ));
        }
        let mut answer = Response::builder().status(status);
        if let Some(headers) = answer.headers_mut() {
            *headers = response.headers().clone();
        }
        answer.body(Bytes::from(body)).map_err(|e| e.to_string())
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Client {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let sent = self.runtime.spawn(Self::send(self.http.clone(), request));
        let result = match sent.await {
            Ok(result) => result,
            Err(e) => Err(format!("the export was cut short: {e}")),
        };
        result.map_err(|message| {
            self.faults.export_failed(self.signal, &message);
            HttpError::from(message)
        })
    }
}
