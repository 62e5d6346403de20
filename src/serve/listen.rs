//! Serving a [`Service`] on a listener, with the limits a service facing
//! clients it does not control needs: a request's headers must arrive
//! within the header timeout (which also closes a keep-alive connection
//! idle that long), at most `max_connections` connections are served at
//! once (more wait in the kernel's backlog), and a graceful stop lets
//! requests in progress finish. `axum::serve` has neither limit. With TLS,
//! each connection's handshake runs in its own task, within the header
//! timeout.

use super::Service;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How connections are served.
#[derive(Debug, Clone)]
pub struct ListenSettings {
    /// The longest a client may take to send a request's headers, and the
    /// longest a keep-alive connection may stay idle (default 30 s).
    pub header_timeout: std::time::Duration,
    /// Connections served at once (default 1,000); more wait to be
    /// accepted.
    pub max_connections: usize,
    /// Serve HTTPS with this configuration (see
    /// [`TlsFiles::server_config`](super::TlsFiles::server_config)); none:
    /// plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for ListenSettings {
    fn default() -> Self {
        ListenSettings {
            header_timeout: std::time::Duration::from_secs(30),
            max_connections: 1000,
            tls: None,
        }
    }
}

impl Service {
    /// Serves the service's [`router`](Service::router) on `listener` until
    /// `stop` resolves, then stops accepting and waits for the requests in
    /// progress (an output stream ends once its agent has finished: have
    /// `stop` call [`Service::finish`] first).
    pub async fn serve(
        self: &Arc<Self>,
        listener: TcpListener,
        settings: ListenSettings,
        stop: impl Future<Output = ()>,
    ) {
        let router = self.router();
        let graceful = GracefulShutdown::new();
        let slots = Arc::new(Semaphore::new(settings.max_connections.max(1)));
        let tls = settings.tls.clone().map(tokio_rustls::TlsAcceptor::from);
        tokio::pin!(stop);
        loop {
            let slot = tokio::select! {
                slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
                () = &mut stop => break,
            };
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of descriptors, or a connection reset before
                        // it was taken: wait a moment, go on.
                        tracing::warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut stop => break,
            };
            let _ = stream.set_nodelay(true);
            let (router, watcher, timeout) =
                (router.clone(), graceful.watcher(), settings.header_timeout);
            let tls = tls.clone();
            tokio::spawn(async move {
                let served = match tls {
                    None => serve_connection(stream, router, watcher, timeout).await,
                    Some(tls) => match tokio::time::timeout(timeout, tls.accept(stream)).await {
                        Ok(Ok(stream)) => serve_connection(stream, router, watcher, timeout).await,
                        Ok(Err(e)) => Err(format!("TLS handshake: {e}")),
                        Err(_) => Err("TLS handshake: timed out".into()),
                    },
                };
                if let Err(e) = served {
                    tracing::debug!(error = %e, "connection ended");
                }
                drop(slot);
            });
        }
        drop(listener);
        graceful.shutdown().await;
    }
}

/// Serves HTTP/1.1 requests on one connection (plain or TLS) until it
/// ends, or the graceful stop closes it.
async fn serve_connection<I>(
    io: I,
    router: axum::Router,
    watcher: hyper_util::server::graceful::Watcher,
    header_timeout: std::time::Duration,
) -> Result<(), String>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(router));
    watcher.watch(connection).await.map_err(|e| e.to_string())
}
