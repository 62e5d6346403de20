//! Sends a guest's HTTP request to an address weir resolved and checked.
//!
//! A grant that names its host (`https://api.example.com`,
//! `http://10.0.0.7:8080`) reaches whatever that host resolves to. A
//! wildcard grant (`https://*`, `https://*.example.com`) reaches public
//! addresses only: a name under it that resolves to a loopback, private,
//! link-local (cloud metadata) or otherwise special address is refused, so a
//! skill granted "the web" cannot reach the machine's own services. The name
//! is resolved once, here, and the connection goes to the address checked,
//! so a second lookup cannot answer differently (DNS rebinding).

use bytes::Bytes;
use http_body_util::BodyExt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody};

/// What a request may reach: every address its host resolves to, or only
/// public ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// A grant names the host.
    Named,
    /// Only wildcard grants match: public addresses only.
    PublicOnly,
}

/// A connection's I/O, to be driven while the response body is read.
pub(crate) type Connection = Box<dyn Future<Output = Result<(), HttpError>> + Send>;

/// Why a request was not sent.
pub(crate) enum Refused {
    /// Its host resolves only to addresses a wildcard grant does not cover.
    NotPublic(IpAddr),
    Http(HttpError),
}

impl From<HttpError> for Refused {
    fn from(e: HttpError) -> Self {
        Refused::Http(e)
    }
}

/// The defaults wasi:http gives a request that sets no timeouts.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// Resolves the request's host, connects to the first of the addresses
/// `reach` allows that answers, and sends the request over HTTP/1.1 (TLS
/// for https, checked against the host name and webpki's roots).
pub(crate) async fn send(
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    reach: Reach,
) -> Result<(http::Response<WasiBody>, Connection), Refused> {
    let uri = request.uri();
    let tls = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
    let host = uri
        .host()
        .ok_or(HttpError::HttpRequestUriInvalid)?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let timeout = |pick: fn(&RequestOptions) -> Option<Duration>| {
        options.as_ref().and_then(pick).unwrap_or(DEFAULT_TIMEOUT)
    };
    let connect_timeout = timeout(|o| o.connect_timeout);
    let first_byte_timeout = timeout(|o| o.first_byte_timeout);
    let between_bytes_timeout = timeout(|o| o.between_bytes_timeout);

    let addresses = resolve(&host, port, reach, connect_timeout).await?;
    let stream = match tokio::time::timeout(connect_timeout, connect_any(&addresses)).await {
        Ok(stream) => stream.map_err(HttpError::Connect)?,
        Err(_) => return Err(HttpError::ConnectionTimeout.into()),
    };
    let io: Box<dyn Io> = if tls {
        let name = server_name(&host)?;
        let tls = tokio::time::timeout(connect_timeout, tls_connector().connect(name, stream))
            .await
            .map_err(|_| HttpError::ConnectionTimeout)?
            .map_err(HttpError::Tls)?;
        Box::new(tls)
    } else {
        Box::new(stream)
    };
    let (mut sender, connection) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::handshake(wasmtime_wasi_http::io::TokioIo::new(io)),
    )
    .await
    .map_err(|_| HttpError::ConnectionTimeout)?
    .map_err(HttpError::from)?;

    // The request line carries the path only (the authority is for proxies).
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    *request.uri_mut() = path.parse().map_err(|_| HttpError::HttpRequestUriInvalid)?;

    // The connection runs beside the request until the response head is in,
    // then goes back to the caller, who drives it while reading the body.
    let mut connection = Box::pin(connection);
    let mut connection_done = false;
    let response = {
        let send = tokio::time::timeout(first_byte_timeout, sender.send_request(request));
        tokio::pin!(send);
        loop {
            tokio::select! {
                response = &mut send => break response,
                ended = &mut connection, if !connection_done => {
                    connection_done = true;
                    ended.map_err(HttpError::from)?;
                }
            }
        }
    };
    let response = response
        .map_err(|_| HttpError::ConnectionReadTimeout)?
        .map_err(HttpError::from)?;
    let response = response.map(|body| {
        BetweenBytes {
            body,
            limit: between_bytes_timeout,
            timer: None,
        }
        .boxed_unsync()
    });
    let connection: Connection = Box::new(async move {
        if connection_done {
            return Ok(());
        }
        connection.await.map_err(|e| {
            if e.is_timeout() {
                HttpError::HttpResponseTimeout
            } else {
                HttpError::from(e)
            }
        })
    });
    Ok((response, connection))
}

/// The addresses to try, in order: `host` itself if it is one, else those
/// it resolves to that `reach` allows (never none).
async fn resolve(
    host: &str,
    port: u16,
    reach: Reach,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, Refused> {
    let candidates: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::time::timeout(timeout, tokio::net::lookup_host((host, port)))
            .await
            .map_err(|_| HttpError::DnsTimeout)?
            .map_err(|e| HttpError::DnsError {
                rcode: Some(e.to_string()),
                info_code: None,
            })?
            .collect(),
    };
    let first = *candidates.first().ok_or(HttpError::DestinationNotFound)?;
    let allowed: Vec<SocketAddr> = match reach {
        Reach::Named => candidates,
        Reach::PublicOnly => candidates
            .into_iter()
            .filter(|a| is_public(a.ip()))
            .collect(),
    };
    if allowed.is_empty() {
        return Err(Refused::NotPublic(first.ip()));
    }
    Ok(allowed)
}

/// Connects to the first of `addresses` that answers (as a name's
/// addresses are tried: `localhost` may be `::1` first, with the server on
/// `127.0.0.1`).
async fn connect_any(addresses: &[SocketAddr]) -> std::io::Result<TcpStream> {
    let mut last = None;
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::ErrorKind::NotFound.into()))
}

/// True for an address on the public internet: not loopback, private,
/// link-local, shared (CGNAT), documentation, benchmarking, multicast,
/// broadcast, unspecified or reserved, in IPv4 or IPv6 (IPv4-mapped
/// addresses are judged as IPv4).
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_unspecified()
                || v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
                || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
                || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
                || (a == 198 && (b == 18 || b == 19)) // benchmarking
                || a >= 240) // reserved
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            // An allow-list, not a deny-list: only global unicast
            // (2000::/3) is public. That leaves out IPv4-compatible
            // (`::a.b.c.d`), NAT64, discard (100::/64), unique local,
            // link-local, site-local (fec0::/10) and multicast space, and
            // whatever else IANA has not made global unicast.
            let [first, second, ..] = v6.segments();
            (first & 0xe000) == 0x2000
                && !(first == 0x2001 && second < 0x0200) // 2001::/23: IETF protocol assignments (Teredo, benchmarking, ORCHID)
                && !(first == 0x2001 && second == 0x0db8) // documentation
                && first != 0x2002 // 6to4: an IPv4 address inside
                && !(first == 0x3fff && second < 0x1000) // 3fff::/20: documentation
        }
    }
}

fn server_name(host: &str) -> Result<rustls::pki_types::ServerName<'static>, HttpError> {
    use rustls::pki_types::ServerName;
    match host.parse::<IpAddr>() {
        Ok(ip) => Ok(ServerName::from(ip)),
        Err(_) => Ok(ServerName::try_from(host.to_string())?),
    }
}

/// One TLS client configuration (webpki's roots) for every request.
fn tls_connector() -> tokio_rustls::TlsConnector {
    static CONFIG: std::sync::OnceLock<std::sync::Arc<rustls::ClientConfig>> =
        std::sync::OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        };
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        std::sync::Arc::new(config)
    });
    tokio_rustls::TlsConnector::from(config.clone())
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Io for T {}

/// A response body that fails if the server goes quiet for longer than
/// `limit` between frames.
struct BetweenBytes {
    body: hyper::body::Incoming,
    limit: Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl http_body::Body for BetweenBytes {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, HttpError>>> {
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                self.timer = None;
                Poll::Ready(frame.map(|f| {
                    f.map_err(|e| {
                        if e.is_timeout() {
                            HttpError::HttpResponseTimeout
                        } else {
                            HttpError::from(e)
                        }
                    })
                }))
            }
            Poll::Pending => {
                let limit = self.limit;
                let timer = self
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_address_that_answers_is_used() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap();
        // A port nothing listens on: bound, then let go.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let stream = connect_any(&[closed, open]).await.unwrap();
        assert_eq!(stream.peer_addr().unwrap(), open);
        assert!(connect_any(&[closed]).await.is_err());
    }

    #[test]
    fn public_addresses_are_told_from_the_rest() {
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "198.18.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2001:db8::1",
            // IPv4-compatible, 6to4, site-local, discard, Teredo, 6to4 relay.
            "::7f00:1",
            "::a00:1",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::1",
            "fec0::1",
            "100::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:2::1",
            "3fff::1",
            "192.88.99.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
    }
}
