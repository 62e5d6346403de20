//! `weir:agent/fetch`: outbound HTTP as one call, for guests whose toolchain
//! cannot import wasi:http (componentize-qjs pre-initialises JavaScript in a
//! wasmtime without it).
//!
//! The request goes through the task's [`HttpPolicy`], the same hook
//! wasi:http's requests take: the `http` grants, the idempotency key, the
//! journal's record and replay and the refusals are the same code, so the
//! two ways out cannot disagree.

use super::bindings::weir::agent::fetch::{Host, Request, Response};
use super::http::{HttpPolicy, full_body, header_pairs, read_whole};
use super::{CallError, HostError, InstanceState};
use std::time::Duration;
use wasmtime::component::HasSelf;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiHttpHooks};

/// `weir:agent/fetch` in the list of capabilities: granted by the same
/// `http` rules as wasi:http.
pub(super) const CAPABILITY: super::HostCapability = super::HostCapability {
    interface: "weir:agent/fetch",
    link: |linker| {
        super::bindings::weir::agent::fetch::add_to_linker::<_, HasSelf<_>>(linker, |state| state)
    },
    lacks: super::http::lacks_http,
};

/// Longest method name; HTTP's own are at most 7 characters.
const MAX_METHOD_CHARS: usize = 32;
/// Longest URL (what browsers and servers commonly accept).
const MAX_URL_BYTES: usize = 8 << 10;
/// Most request headers.
const MAX_HEADERS: usize = 100;
/// Largest header name and value, each.
const MAX_HEADER_BYTES: usize = 8 << 10;

fn invalid(why: impl Into<String>) -> CallError {
    HostError::Invalid(why.into()).into()
}

/// Checks the guest's request and makes it an `http` request.
fn to_http(request: Request) -> Result<http::Request<wasmtime_wasi_http::WasiBody>, CallError> {
    if request.method.is_empty() || request.method.len() > MAX_METHOD_CHARS {
        return Err(invalid(format!(
            "the method must be 1-{MAX_METHOD_CHARS} characters"
        )));
    }
    let method = http::Method::from_bytes(request.method.as_bytes())
        .map_err(|_| invalid(format!("`{}` is not an HTTP method", request.method)))?;
    if request.url.len() > MAX_URL_BYTES {
        return Err(invalid(format!(
            "the URL is {} bytes, over {MAX_URL_BYTES}",
            request.url.len()
        )));
    }
    let uri: http::Uri = request
        .url
        .parse()
        .map_err(|e| invalid(format!("`{}` is not a URL: {e}", request.url)))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(invalid(format!(
            "`{}` is not an absolute http:// or https:// URL",
            request.url
        )));
    }
    if request.headers.len() > MAX_HEADERS {
        return Err(invalid(format!(
            "{} headers, over {MAX_HEADERS}",
            request.headers.len()
        )));
    }
    let mut builder = http::Request::builder().method(method).uri(uri);
    for (name, value) in &request.headers {
        if name.len() > MAX_HEADER_BYTES || value.len() > MAX_HEADER_BYTES {
            return Err(invalid(format!(
                "header `{}` is over {MAX_HEADER_BYTES} bytes",
                crate::util::head(name, 64)
            )));
        }
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid(format!("`{name}` is not a header name")))?;
        let value = http::HeaderValue::from_str(value)
            .map_err(|_| invalid(format!("header `{name}` has a value HTTP cannot carry")))?;
        builder = builder.header(name, value);
    }
    builder
        .body(full_body(request.body.into()))
        .map_err(|e| invalid(format!("bad request: {e}")))
}

/// The error a guest gets for a request that failed.
fn failed(error: HttpError, url: &str) -> CallError {
    let url = crate::util::head(url, 256);
    match error {
        HttpError::HttpRequestDenied => HostError::Denied(format!(
            "no `http` grant of the agent allows {url} (add its scheme://host[:port] to the action's `http = [...]`)"
        )),
        HttpError::HttpResponseBodySize(limit) => HostError::Limit(format!(
            "the response from {url} is over {} bytes",
            limit.unwrap_or_default()
        )),
        other => HostError::Failed(format!("HTTP request to {url} failed: {other}")),
    }
    .into()
}

impl Host for InstanceState {
    async fn send(&mut self, request: Request) -> Result<Response, CallError> {
        let url = request.url.clone();
        let options = request.timeout_ms.map(|ms| {
            let timeout = Some(Duration::from_millis(u64::from(ms)));
            RequestOptions {
                connect_timeout: timeout,
                first_byte_timeout: timeout,
                between_bytes_timeout: timeout,
            }
        });
        let request = to_http(request)?;
        let max_body = self.task.input.limits.max_payload_bytes;
        // The hook wasi:http's requests take.
        let policy: &mut HttpPolicy = self.http_policy();
        let sent = policy.send_request(request, options, Box::new(async { Ok(()) }));
        let (response, io) = Box::into_pin(sent).await.map_err(|e| failed(e, &url))?;
        // The connection runs while the body is read, and is dropped after.
        let io = tokio::spawn(Box::into_pin(io));
        let read = read_whole(response, max_body).await;
        io.abort();
        let (parts, body) = read.map_err(|e| failed(e, &url))?;
        Ok(Response {
            status: parts.status.as_u16(),
            headers: header_pairs(&parts.headers),
            body: body.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, url: &str, headers: &[(&str, &str)]) -> Request {
        Request {
            method: method.into(),
            url: url.into(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: Vec::new(),
            timeout_ms: None,
        }
    }

    fn why(request: Request) -> String {
        match to_http(request) {
            Err(CallError(HostError::Invalid(why))) => why,
            Err(other) => panic!("not invalid: {other:?}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn a_request_is_checked_before_it_is_sent() {
        let ok = to_http(request(
            "POST",
            "https://api.example.com/x?y=1",
            &[("a", "b")],
        ))
        .unwrap();
        assert_eq!(ok.method(), http::Method::POST);
        assert_eq!(ok.headers()["a"], "b");
        assert!(why(request("", "https://x", &[])).contains("method"));
        assert!(why(request("GE T", "https://x", &[])).contains("not an HTTP method"));
        assert!(why(request("GET", "/relative", &[])).contains("absolute"));
        assert!(why(request("GET", "ftp://x/y", &[])).contains("absolute"));
        assert!(
            why(request(
                "GET",
                &format!("https://x/{}", "a".repeat(9000)),
                &[]
            ))
            .contains("URL")
        );
        assert!(why(request("GET", "https://x", &[("bad name", "v")])).contains("header name"));
        assert!(why(request("GET", "https://x", &[("a", "line\nbreak")])).contains("cannot carry"));
        let many: Vec<(&str, &str)> = (0..=MAX_HEADERS).map(|_| ("a", "b")).collect();
        assert!(why(request("GET", "https://x", &many)).contains("headers"));
    }
}
