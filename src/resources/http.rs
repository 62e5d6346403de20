//! JSON over HTTP to model servers: per-call deadline (the whole body
//! included), a bound on the answer's size, retries with exponential
//! backoff and full jitter on 429, 5xx and transport errors, honouring
//! `Retry-After`.

use super::api::ModelError;
use crate::util::{BodyError, BoundedBody};
use serde_json::Value;
use std::time::Duration;

/// How a connection talks to its server.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Deadline of one attempt, from sending the request to the end of the
    /// answer's body.
    pub timeout: Duration,
    /// Largest answer body, in bytes.
    pub max_response_bytes: u64,
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// First backoff; doubles per retry.
    pub backoff: Duration,
    /// Longest wait between attempts, `Retry-After` included.
    pub max_backoff: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            timeout: Duration::from_secs(60),
            max_response_bytes: 32 << 20,
            max_retries: 3,
            backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(20),
        }
    }
}

/// Statuses worth another attempt: rate limits, overload, server errors.
fn retryable(status: u16) -> bool {
    matches!(status, 408 | 409 | 425 | 429 | 500 | 502 | 503 | 504 | 529)
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?;
    let seconds: f64 = value.to_str().ok()?.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

fn backoff(settings: &HttpSettings, attempt: u32) -> Duration {
    let ceiling = settings
        .backoff
        .saturating_mul(1u32 << attempt.min(16))
        .min(settings.max_backoff);
    // Full jitter: spread retries of many keys over the whole window.
    ceiling.mul_f64(fastrand::f64())
}

/// Cuts a response body for error messages.
fn snippet(body: &str) -> String {
    const MAX: usize = 512;
    let head = crate::util::head(body, MAX);
    if head.len() == body.len() {
        return body.trim().to_string();
    }
    format!("{}…", head.trim())
}

/// POSTs `body` as JSON and returns the JSON answer.
pub async fn post_json(
    client: &reqwest::Client,
    provider: &'static str,
    url: &str,
    headers: &[(&str, String)],
    body: &Value,
    settings: &HttpSettings,
) -> Result<Value, ModelError> {
    let mut attempt = 0u32;
    loop {
        let mut request = client.post(url).timeout(settings.timeout).json(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        // The call's trace goes on with it (W3C trace context), when traced.
        let mut trace = reqwest::header::HeaderMap::new();
        crate::observe::telemetry::inject_current(&mut trace);
        if !trace.is_empty() {
            request = request.headers(trace);
        }
        let started = tokio::time::Instant::now();
        let (failure, wait) = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let success = response.status().is_success();
                let wait = retry_after(&response);
                let body = BoundedBody::new(
                    response,
                    "response",
                    settings.max_response_bytes,
                    started,
                    settings.timeout,
                );
                if success {
                    let bytes = match body {
                        Ok(body) => body.read_all().await,
                        Err(e) => Err(e),
                    }
                    .map_err(|e| match e {
                        BodyError::TooBig { .. } => ModelError::Malformed {
                            provider,
                            url: url.to_string(),
                            message: e.to_string(),
                        },
                        _ => ModelError::Unavailable {
                            provider,
                            url: url.to_string(),
                            message: e.to_string(),
                            attempts: attempt + 1,
                        },
                    })?;
                    return serde_json::from_slice(&bytes).map_err(|e| ModelError::Malformed {
                        provider,
                        url: url.to_string(),
                        message: format!(
                            "not JSON ({e}): {}",
                            snippet(&String::from_utf8_lossy(&bytes))
                        ),
                    });
                }
                // Only the start of an error body is shown, so only that is read.
                let text = match body {
                    Ok(body) => String::from_utf8_lossy(&body.read_head(4096).await).into_owned(),
                    Err(_) => String::new(),
                };
                if !retryable(status) {
                    return Err(ModelError::Rejected {
                        provider,
                        url: url.to_string(),
                        status,
                        body: snippet(&text),
                    });
                }
                (format!("HTTP {status}: {}", snippet(&text)), wait)
            }
            Err(e) if e.is_timeout() => (
                format!("no answer within {} ms", settings.timeout.as_millis()),
                None,
            ),
            Err(e) => (format!("{e}"), None),
        };
        if attempt >= settings.max_retries {
            return Err(ModelError::Unavailable {
                provider,
                url: url.to_string(),
                message: failure,
                attempts: attempt + 1,
            });
        }
        let wait = wait
            .map(|w| w.min(settings.max_backoff))
            .unwrap_or_else(|| backoff(settings, attempt));
        tracing::debug!(provider, url, attempt, wait_ms = wait.as_millis() as u64, %failure, "retrying a model call");
        crate::observe::telemetry::Retries::count();
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}
