//! Outbound HTTP through `wasi:http`. The host sends a request only if the
//! action (or the tool's component) is granted its destination, for example
//! `http = ["https://api.example.com"]`; otherwise it fails with
//! [`HttpError::Denied`]. Redirects are not followed.
//!
//! ```no_run
//! let reply = weir_sdk::http::get("https://api.example.com/v1/items")?;
//! assert_eq!(reply.status, 200);
//! let items: weir_sdk::Value = reply.json()?;
//! # Ok::<(), weir_sdk::ActionError>(())
//! ```

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use wasip2::io::streams::StreamError;

/// An HTTP response, its body read whole.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as UTF-8 text (invalid bytes replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, crate::ActionError> {
        Ok(serde_json::from_slice(&self.body)?)
    }
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The URL could not be parsed.
    BadUrl(String),
    /// The host refused the request: its destination is not granted.
    Denied,
    /// The request failed on the way (DNS, connection, protocol, ...).
    Failed(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::BadUrl(why) => write!(f, "bad URL: {why}"),
            HttpError::Denied => f.write_str("HTTP request denied: destination not granted"),
            HttpError::Failed(why) => write!(f, "HTTP request failed: {why}"),
        }
    }
}

impl std::error::Error for HttpError {}

impl From<HttpError> for crate::ActionError {
    fn from(e: HttpError) -> Self {
        let code = match e {
            HttpError::Denied => "denied",
            _ => "http",
        };
        crate::ActionError::new(code, e.to_string())
    }
}

fn failed(code: ErrorCode) -> HttpError {
    match code {
        ErrorCode::HttpRequestDenied => HttpError::Denied,
        other => HttpError::Failed(format!("{other:?}")),
    }
}

/// `GET url`.
pub fn get(url: &str) -> Result<Response, HttpError> {
    request("GET", url, &[], None)
}

/// Sends a request and reads the whole response.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Response, HttpError> {
    let (scheme, authority, path) = split_url(url)?;
    let fields = Fields::new();
    for (name, value) in headers {
        fields
            .append(name, value.as_bytes())
            .map_err(|e| HttpError::BadUrl(format!("header `{name}`: {e:?}")))?;
    }
    let request = OutgoingRequest::new(fields);
    let method = match method.to_ascii_uppercase().as_str() {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "PATCH" => Method::Patch,
        "HEAD" => Method::Head,
        other => Method::Other(other.to_string()),
    };
    let bad = |what: &str| HttpError::BadUrl(format!("{what} rejected in `{url}`"));
    request.set_method(&method).map_err(|()| bad("method"))?;
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| bad("scheme"))?;
    request
        .set_authority(Some(authority))
        .map_err(|()| bad("host"))?;
    request
        .set_path_with_query(Some(&path))
        .map_err(|()| bad("path"))?;
    let outgoing = request
        .body()
        .map_err(|()| HttpError::Failed("request body taken".into()))?;
    // Send first, then stream the body: the host buffers little of it, so
    // writing a large body before sending would wait forever.
    let pending = outgoing_handler::handle(request, None).map_err(failed)?;
    if let Some(bytes) = body {
        let stream = outgoing
            .write()
            .map_err(|()| HttpError::Failed("request body stream".into()))?;
        // Writes go in chunks the host accepts (4 KiB at a time is always allowed).
        for chunk in bytes.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(stream_failed)?;
        }
        drop(stream);
    }
    OutgoingBody::finish(outgoing, None).map_err(failed)?;
    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(failed(code)),
        _ => return Err(HttpError::Failed("no response".into())),
    };
    let status = response.status();
    let headers = response.headers().entries().into_iter().collect();
    let incoming = response
        .consume()
        .map_err(|()| HttpError::Failed("response body taken".into()))?;
    let body = read_all(&incoming)?;
    let _ = IncomingBody::finish(incoming);
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn read_all(incoming: &IncomingBody) -> Result<Vec<u8>, HttpError> {
    let stream = incoming
        .stream()
        .map_err(|()| HttpError::Failed("response body stream".into()))?;
    let mut body = Vec::new();
    loop {
        match stream.blocking_read(64 << 10) {
            Ok(chunk) => body.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(e) => return Err(stream_failed(e)),
        }
    }
    Ok(body)
}

fn stream_failed(e: StreamError) -> HttpError {
    match e {
        StreamError::Closed => HttpError::Failed("stream closed".into()),
        StreamError::LastOperationFailed(error) => HttpError::Failed(error.to_debug_string()),
    }
}

/// Splits `scheme://authority/path?query`.
fn split_url(url: &str) -> Result<(Scheme, &str, String), HttpError> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| HttpError::BadUrl(format!("`{url}` has no scheme")))?;
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => return Err(HttpError::BadUrl(format!("unsupported scheme `{other}`"))),
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(at) if rest.as_bytes()[at] == b'/' => (&rest[..at], rest[at..].to_string()),
        Some(at) => (&rest[..at], format!("/{}", &rest[at..])),
        None => (rest, "/".to_string()),
    };
    if authority.is_empty() {
        return Err(HttpError::BadUrl(format!("`{url}` has no host")));
    }
    Ok((scheme, authority, path))
}
