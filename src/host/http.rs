//! Outbound HTTP for guests (`wasi:http/outgoing-handler`), allowed only to
//! the hosts an action is granted.
//!
//! Every request is checked when it is sent. wasi:http does not follow
//! redirects itself (the guest sends the next request), so a redirect to a
//! host off the list is refused like any other request.

use super::grants::{Denial, Denials};
use super::outbound::{self, Connection, Reach, Refused};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// wasi:http's outgoing handler in the list of capabilities: a request
/// goes only where an `http` rule allows.
pub(super) const CAPABILITY: super::HostCapability = super::HostCapability {
    interface: "wasi:http/outgoing-handler",
    link: |linker| wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker),
    lacks: lacks_http,
};

/// What an action with no `http` grant lacks to send a request (wasi:http
/// or `weir:agent/fetch`).
pub(super) fn lacks_http(grants: &super::Grants) -> Option<&'static str> {
    grants
        .http
        .is_empty()
        .then_some("HTTP destination (`http = [...]`)")
}

/// One allowed destination: `scheme://host:port`, where the scheme may be
/// `*`, the host `*` or `*.suffix`, and the port `*` (no port means the
/// scheme's default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRule {
    scheme: Option<String>,
    host: HostPattern,
    port: Option<u16>,
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    Exact(String),
    /// `*.example.com`: any subdomain, not `example.com` itself.
    Suffix(String),
}

impl HttpRule {
    /// Parses a rule such as `https://api.example.com`,
    /// `http://127.0.0.1:8080` or `https://*.example.com:*`.
    pub fn parse(text: &str) -> Result<HttpRule, String> {
        let bad = |why: &str| format!("`{text}` is not an HTTP grant: {why}");
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| bad("expected scheme://host[:port]"))?;
        let scheme = match scheme {
            "*" => None,
            "http" | "https" => Some(scheme.to_string()),
            _ => return Err(bad("the scheme must be http, https or *")),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#', '@']) {
            return Err(bad("grants name a host, not a path, query or user"));
        }
        let (host, port) = split_port(authority).map_err(|why| bad(&why))?;
        let port = match port {
            None => match scheme.as_deref() {
                Some("http") => Some(80),
                Some("https") => Some(443),
                _ => return Err(bad("with scheme `*`, give a port (or `*`)")),
            },
            Some("*") => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .map_err(|_| bad("the port must be 0-65535 or *"))?,
            ),
        };
        let host = host.to_ascii_lowercase();
        let host = if host == "*" {
            HostPattern::Any
        } else if let Some(suffix) = host.strip_prefix("*.") {
            HostPattern::Suffix(format!(".{suffix}"))
        } else if host.is_empty() || host.contains('*') {
            return Err(bad(
                "the host must be a name, an address, `*` or `*.domain`",
            ));
        } else {
            HostPattern::Exact(host)
        };
        Ok(HttpRule {
            scheme,
            host,
            port,
            text: text.to_string(),
        })
    }

    /// Whether the rule allows `scheme://host:port`, and how far: a rule
    /// naming the host reaches wherever it resolves, a wildcard only public
    /// addresses.
    fn reach(&self, scheme: &str, host: &str, port: u16) -> Option<Reach> {
        if self.scheme.as_deref().is_some_and(|s| s != scheme)
            || self.port.is_some_and(|p| p != port)
        {
            return None;
        }
        match &self.host {
            HostPattern::Any => Some(Reach::PublicOnly),
            HostPattern::Exact(h) => (h == host).then_some(Reach::Named),
            HostPattern::Suffix(suffix) => {
                host.ends_with(suffix.as_str()).then_some(Reach::PublicOnly)
            }
        }
    }
}

/// Splits `host[:port]`, where host may be a bracketed IPv6 address.
fn split_port(authority: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| "unclosed `[` in the host".to_string())?;
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err("unexpected text after `]`".into()),
            },
        };
    }
    Ok(match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    })
}

impl fmt::Display for HttpRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl serde::Serialize for HttpRule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// How far the rules let a request to `scheme://host:port` reach (a rule
/// naming the host wins over wildcards), or `None` if no rule allows it.
pub(crate) fn reach(rules: &[HttpRule], scheme: &str, host: &str, port: u16) -> Option<Reach> {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    rules
        .iter()
        .filter_map(|rule| rule.reach(scheme, &host, port))
        .min_by_key(|reach| *reach != Reach::Named)
}

/// True if some rule allows `scheme://host:port`.
#[cfg(test)]
fn allowed(rules: &[HttpRule], scheme: &str, host: &str, port: u16) -> bool {
    reach(rules, scheme, host, port).is_some()
}

/// The wasi:http hooks of one task: the allow-list, and the requests it
/// refused.
pub(crate) struct HttpPolicy {
    pub rules: Arc<[HttpRule]>,
    /// The task's idempotency-key stem (from its event and action; set on
    /// its first wasi:http call), and the requests it has sent: request n carries `Idempotency-Key:
    /// {stem}-{n}` unless the guest set one, so a re-run task (durable
    /// execution) sends the same keys and servers can deduplicate.
    pub idempotency: String,
    pub sent: u64,
    /// The requests refused by the allow-list.
    pub denials: Denials,
    /// Under durable execution: where the task's responses are recorded.
    pub journal: Option<HttpJournal>,
    /// Requests refused once their host was resolved (after the hook had
    /// returned), taken over with the others when the task ends.
    pub refused_late: Arc<std::sync::Mutex<Denials>>,
    /// The task's trace context, which requests carry on (W3C
    /// `traceparent`) unless the guest set their own.
    pub trace: Option<opentelemetry::Context>,
}

impl HttpPolicy {
    /// A task's hooks: its grants' allow-list, nothing sent or refused yet.
    pub(crate) fn prepare(grants: &super::Grants) -> HttpPolicy {
        HttpPolicy {
            rules: grants.http.clone(),
            idempotency: String::new(),
            sent: 0,
            denials: Denials::default(),
            journal: None,
            refused_late: Arc::default(),
            trace: None,
        }
    }

    /// The requests refused: by the allow-list, and once resolved.
    pub(crate) fn into_denials(self) -> (Denials, Denials) {
        let late = std::mem::take(
            &mut *self
                .refused_late
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        (self.denials, late)
    }
}

/// The error a guest gets for a request that was not sent; a host that
/// resolved to a non-public address under a wildcard grant is a denial.
fn refusal(refused: Refused, late: &std::sync::Mutex<Denials>, target: &str) -> HttpError {
    match refused {
        Refused::Http(e) => e,
        Refused::NotPublic(ip) => {
            let target = format!(
                "{target} (resolves to {ip}, not a public address: a wildcard grant reaches public addresses only; grant the host by name to reach it)"
            );
            tracing::debug!(%target, "outbound HTTP request denied");
            late.lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .record(Denial::new("http", target));
            HttpError::HttpRequestDenied
        }
    }
}

/// Where a task records the responses to its HTTP requests, so that a
/// re-run of the task gets them again instead of asking once more.
#[derive(Clone)]
pub(crate) struct HttpJournal {
    pub store: Arc<crate::journal::Journal>,
    pub run: Arc<str>,
    /// `{run}/{event}/{action}`: request n's record is `{prefix}/http{n}`.
    pub prefix: String,
    /// The task's clock and random readings, saved ahead of a record.
    pub readings: Option<super::readings::SharedReadings>,
}

/// The op name of a recorded response.
const RECORDED: &str = "wasi.http";

/// Largest response body recorded; a larger one fails the request under
/// durable execution (`HttpResponseBodySize`).
const MAX_RECORDED_BODY: usize = 8 << 20;

/// A response as the journal keeps it.
#[derive(serde::Serialize, serde::Deserialize)]
struct RecordedResponse {
    status: u16,
    headers: Vec<(String, String)>,
    /// The body, hex.
    body: String,
}

/// A response's head and its whole body, at most `max` bytes (a longer one
/// is `HttpResponseBodySize`).
pub(super) async fn read_whole(
    response: http::Response<WasiBody>,
    max: usize,
) -> Result<(http::response::Parts, bytes::Bytes), HttpError> {
    use http_body_util::BodyExt;
    let (parts, body) = response.into_parts();
    let bytes = http_body_util::Limited::new(body, max)
        .collect()
        .await
        .map_err(|e| match e.downcast::<HttpError>() {
            Ok(e) => *e,
            Err(_) => HttpError::HttpResponseBodySize(Some(max as u64)),
        })?
        .to_bytes();
    Ok((parts, bytes))
}

/// Header names and values, values as lossy UTF-8.
pub(super) fn header_pairs(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            (
                name.to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect()
}

pub(super) fn full_body(bytes: bytes::Bytes) -> WasiBody {
    use http_body_util::BodyExt;
    http_body_util::Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn done() -> Connection {
    Box::new(async { Ok(()) })
}

impl HttpJournal {
    /// The recorded response to request `id` with `digest`, if there is one.
    fn replay(&self, id: &str, digest: &str) -> Option<http::Response<WasiBody>> {
        let record = self.store.call(id)?;
        if record.op != RECORDED || record.request != digest {
            tracing::warn!(call = %id, "replay diverged: the guest sent another HTTP request than the one recorded; sending it");
            return None;
        }
        let crate::journal::Outcome::Ok(value) = record.outcome else {
            return None;
        };
        let recorded: RecordedResponse = serde_json::from_value(value).ok()?;
        let mut response = http::Response::builder().status(recorded.status);
        for (name, value) in &recorded.headers {
            response = response.header(name, value);
        }
        let body = hex::decode(&recorded.body).ok()?;
        response.body(full_body(body.into())).ok()
    }

    /// Sends the request, reads the whole response and records it.
    async fn send_and_record(
        self,
        id: String,
        digest: String,
        sent: impl Future<Output = Sent>,
    ) -> Sent {
        let (response, io) = sent.await?;
        // The connection must run while the body is read here.
        let io = tokio::spawn(Box::into_pin(io));
        let (parts, bytes) = read_whole(response, MAX_RECORDED_BODY).await?;
        let recorded = RecordedResponse {
            status: parts.status.as_u16(),
            headers: header_pairs(&parts.headers),
            body: hex::encode(&bytes),
        };
        if let Some(readings) = &self.readings {
            readings
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .save();
        }
        let record = crate::journal::CallRecord {
            op: RECORDED.to_string(),
            request: digest,
            outcome: crate::journal::Outcome::Ok(
                serde_json::to_value(&recorded).expect("responses serialise"),
            ),
        };
        self.store.record_call(&self.run, id, &record);
        let io: Connection = Box::new(async move { io.await.unwrap_or(Ok(())) });
        Ok((http::Response::from_parts(parts, full_body(bytes)), io))
    }
}

/// Sends a request the rules allow, to an address `reach` allows; a
/// refusal after resolving is recorded in `late`.
async fn send(
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    reach: Reach,
    late: Arc<std::sync::Mutex<Denials>>,
    target: String,
) -> Sent {
    outbound::send(request, options, reach)
        .await
        .map_err(|refused| refusal(refused, &late, &target))
}

/// A sent request's response head and the connection to drive while its
/// body is read.
type Sent = Result<(http::Response<WasiBody>, Connection), HttpError>;

type ResponseFuture = Box<dyn Future<Output = Sent> + Send>;

impl WasiHttpHooks for HttpPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Connection,
    ) -> ResponseFuture {
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("https");
        let host = uri.host().unwrap_or("");
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "http" { 80 } else { 443 });
        // A user part (`user@host`) would make the host checked and the host
        // connected to different strings: refused.
        let userinfo = uri.authority().is_some_and(|a| a.as_str().contains('@'));
        let target = crate::util::head(&format!("{scheme}://{host}:{port}"), 256).to_string();
        let reach = match reach(&self.rules, scheme, host, port) {
            Some(reach) if !userinfo => reach,
            _ => {
                tracing::debug!(%target, "outbound HTTP request denied");
                self.denials.record(Denial::new("http", target));
                return Box::new(async { Err(HttpError::HttpRequestDenied) });
            }
        };
        let _ = fut;
        let mut request = request;
        self.sent += 1;
        if !request.headers().contains_key("idempotency-key")
            && let Ok(value) =
                http::HeaderValue::from_str(&format!("{}-{}", self.idempotency, self.sent))
        {
            request.headers_mut().insert("idempotency-key", value);
        }
        if let Some(cx) = &self.trace
            && !request
                .headers()
                .contains_key(crate::observe::telemetry::TRACEPARENT)
        {
            crate::observe::telemetry::inject(cx, request.headers_mut());
        }
        if let Some(journal) = self.journal.clone() {
            let id = format!("{}/http{}", journal.prefix, self.sent);
            let key = request
                .headers()
                .get("idempotency-key")
                .map(|v| v.as_bytes().to_vec());
            let digest = super::durable::request_digest(
                RECORDED,
                &(request.method().as_str(), request.uri().to_string(), key),
            );
            if let Some(response) = journal.replay(&id, &digest) {
                return Box::new(async move { Ok((response, done())) });
            }
            let sent = send(request, options, reach, self.refused_late.clone(), target);
            return Box::new(journal.send_and_record(id, digest, sent));
        }
        Box::new(send(
            request,
            options,
            reach,
            self.refused_late.clone(),
            target,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(list: &[&str]) -> Vec<HttpRule> {
        list.iter().map(|r| HttpRule::parse(r).unwrap()).collect()
    }

    #[test]
    fn rules_match_scheme_host_and_port() {
        let r = rules(&[
            "https://api.example.com",
            "http://127.0.0.1:8080",
            "https://*.corp.test:*",
            "*://[::1]:9000",
        ]);
        assert!(allowed(&r, "https", "api.example.com", 443));
        assert!(allowed(&r, "https", "API.example.com", 443));
        assert!(!allowed(&r, "http", "api.example.com", 80));
        assert!(!allowed(&r, "https", "api.example.com", 8443));
        assert!(!allowed(&r, "https", "api.example.com.evil.test", 443));
        assert!(allowed(&r, "http", "127.0.0.1", 8080));
        assert!(!allowed(&r, "http", "127.0.0.1", 8081));
        assert!(allowed(&r, "https", "a.b.corp.test", 1234));
        assert!(!allowed(&r, "https", "corp.test", 443));
        assert!(allowed(&r, "http", "[::1]", 9000));
        assert!(!allowed(&[], "https", "api.example.com", 443));
    }

    #[test]
    fn wildcards_reach_public_addresses_and_names_reach_their_host() {
        let r = rules(&[
            "https://*",
            "http://*.corp.test:*",
            "https://api.example.com",
        ]);
        let public = Some(Reach::PublicOnly);
        assert_eq!(reach(&r, "https", "anything.test", 443), public);
        assert_eq!(reach(&r, "http", "a.corp.test", 8080), public);
        // A rule naming the host wins over a wildcard that also matches.
        assert_eq!(
            reach(&r, "https", "api.example.com", 443),
            Some(Reach::Named)
        );
        assert_eq!(reach(&r, "http", "corp.test", 80), None);
    }

    #[test]
    fn bad_rules_say_why() {
        for (rule, why) in [
            ("api.example.com", "scheme://"),
            ("ftp://x", "scheme must be"),
            ("https://x/path", "not a path"),
            ("https://x:99999", "port"),
            ("*://x", "give a port"),
            ("https://a*b", "host must be"),
        ] {
            let err = HttpRule::parse(rule).unwrap_err();
            assert!(err.contains(why), "{rule}: {err}");
        }
    }
}
