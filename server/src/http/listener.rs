//! The accept loop: HTTP/1.1 connections (over TLS when configured) with the limits a public
//! port needs, which `axum::serve` does not set.
//!
//! - A client has `header_read_timeout` to send a request's headers, and the same to send the
//!   next request on a kept-alive connection: silent and half-sent connections are closed.
//! - At most `connections_max` connections are served. A few more (`CONNECTIONS_RESERVED`) are
//!   accepted for health checks only: on those, `/healthz` answers and everything else gets
//!   503 `overloaded`. Beyond that, new connections are closed at once, so sockets can never
//!   take the file descriptors the logs need.
//! - A TLS handshake must finish within `header_read_timeout` too.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Connections accepted past `connections_max` for health checks only.
pub const CONNECTIONS_RESERVED: usize = 32;
/// Largest request head hyper buffers. Our own limits (URI, headers) are far below and answer
/// with JSON; this only backs them up.
const HEAD_BYTES_MAX: usize = 1024 * 1024;
/// How long stopping waits for in-flight requests before closing their connections.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// What the listener enforces.
#[derive(Clone)]
pub struct ListenerSettings {
    pub header_read_timeout: Duration,
    pub connections_max: usize,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// What a request knows of its connection.
#[derive(Debug, Clone, Copy)]
pub struct Connection {
    pub peer: SocketAddr,
    /// Accepted beyond `connections_max`: serves `/healthz` only.
    pub overflow: bool,
}

/// Serves `router` on `listener` until `shutdown` fires, then stops accepting, fires
/// `stopping` (so streams end) and waits for open requests to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ListenerSettings,
    shutdown: CancellationToken,
    stopping: CancellationToken,
) {
    let mut h1 = hyper::server::conn::http1::Builder::new();
    h1.timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .keep_alive(true)
        .max_buf_size(HEAD_BYTES_MAX)
        // Past hyper's default of 100 headers it answers a bare 431; the guard answers in JSON
        // past 64 KiB of headers, which this leaves room for.
        .max_headers(1024);
    let open = Arc::new(AtomicUsize::new(0));
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = shutdown.cancelled() => break,
        };
        let (tcp, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors, most likely: wait for some to free up.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let count = open.fetch_add(1, Ordering::SeqCst) + 1;
        if count > settings.connections_max + CONNECTIONS_RESERVED {
            open.fetch_sub(1, Ordering::SeqCst);
            drop(tcp);
            continue;
        }
        let conn = Connection {
            peer,
            overflow: count > settings.connections_max,
        };
        let guard = OpenGuard(Arc::clone(&open));
        let (h1, router, watcher, tls) = (h1.clone(), router.clone(), graceful.watcher(), settings.tls.clone());
        let handshake = settings.header_read_timeout;
        tokio::spawn(async move {
            let _guard = guard;
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY");
            }
            let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(conn);
                router.clone().oneshot(req.map(axum::body::Body::new))
            });
            let result = match tls {
                None => watcher.watch(h1.serve_connection(TokioIo::new(tcp), service)).await,
                Some(acceptor) => match tokio::time::timeout(handshake, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => watcher.watch(h1.serve_connection(TokioIo::new(stream), service)).await,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                },
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("stopping: finishing in-flight requests");
    stopping.cancel();
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still open after {DRAIN_TIMEOUT:?}; closing them");
    }
}

/// Counts a connection as open until its task ends.
struct OpenGuard(Arc<AtomicUsize>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Loads the certificate chain and key (PEM files) into a TLS acceptor for HTTP/1.1.
pub fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    use anyhow::Context;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read the certificate {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} is not a PEM certificate chain", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| format!("cannot read the key {}", key.display()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the certificate and key do not make a TLS configuration")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
