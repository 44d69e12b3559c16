//! What every request passes before its handler (connection admission, bounds on the URI,
//! the headers and the declared body), and how handlers read a body: after they checked the
//! caller's rights, under a size limit, a read timeout, a minimum rate and the broker-wide
//! budget of memory held by requests in flight.
//!
//! A body is reserved from the budget as it arrives, `BODY_MEMORY_FACTOR` times its bytes (the
//! body, the records parsed from it, the batches encoded from those; the parsers bound the
//! rest, records and headers per request), and given back when the handler is done. A request
//! that does not fit the budget gets 503 `overloaded` with `Retry-After`; a body that stops
//! arriving for `body_read_timeout` gets 408, and so does one slower than `BODY_BYTES_PER_S_MIN`
//! on average, so a trickle cannot hold a connection and its reservation for long.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use hyper::body::Body as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::listener::Connection;
use super::{ApiError, AppState};

/// Longest request URI (path and query): our URLs are short; a huge one is an attack or a bug.
pub const URI_BYTES_MAX: usize = 8 * 1024;
/// Most bytes of request headers, names and values together.
pub const HEADER_BYTES_MAX: usize = 64 * 1024;
/// Memory a request holds per byte of body while it is handled: the body, the records parsed
/// from it, the batches encoded from those.
const BODY_MEMORY_FACTOR: u64 = 3;
/// The budget counts in KiB so that any body fits one semaphore acquisition.
const KIB: u64 = 1024;
/// A body is reserved as it arrives, this much at a time.
const CHUNK_BYTES: u64 = 1024 * 1024;
/// Slowest average a body may arrive at, after its first `body_read_timeout`: 64 MiB in
/// under 17 minutes.
const BODY_BYTES_PER_S_MIN: u64 = 64 * 1024;
/// Seconds a client told `overloaded` is asked to wait.
const RETRY_AFTER_S: u32 = 1;

/// The memory budget of requests in flight.
#[derive(Debug, Clone)]
pub struct RequestBudget {
    permits: Arc<Semaphore>,
    total_bytes: u64,
}

impl RequestBudget {
    pub fn new(total_bytes: u64) -> Self {
        let kib = (total_bytes / KIB).max(1) as usize;
        Self {
            permits: Arc::new(Semaphore::new(kib)),
            total_bytes,
        }
    }

    /// Bytes reserved by requests now.
    pub fn in_use_bytes(&self) -> u64 {
        self.total_bytes
            .saturating_sub(self.permits.available_permits() as u64 * KIB)
    }

    fn reserve(&self, body_bytes: u64, held: &mut Option<OwnedSemaphorePermit>) -> Result<(), ApiError> {
        let kib = (body_bytes * BODY_MEMORY_FACTOR).div_ceil(KIB).max(1);
        let Ok(kib) = u32::try_from(kib) else {
            return Err(self.overloaded());
        };
        match Arc::clone(&self.permits).try_acquire_many_owned(kib) {
            Ok(p) => {
                match held {
                    Some(h) => h.merge(p),
                    None => *held = Some(p),
                }
                Ok(())
            }
            Err(_) => Err(self.overloaded()),
        }
    }

    fn overloaded(&self) -> ApiError {
        ApiError::Overloaded {
            reason: format!(
                "requests in flight hold the memory budget ({} MiB, limits.requests_memory_bytes_max); retry shortly",
                self.total_bytes / (1024 * 1024)
            ),
            retry_after_s: RETRY_AFTER_S,
        }
    }
}

/// A body read by [`read_body`], with its share of the budget (given back on drop: keep it
/// until the request is handled).
pub struct ReadBody {
    pub bytes: Bytes,
    _permit: Option<OwnedSemaphorePermit>,
}

/// Which limit a body is under.
#[derive(Debug, Clone, Copy)]
pub enum BodyKind {
    /// `limits.body_bytes_max`.
    Api,
    /// `limits.module_bytes_max`.
    Module,
}

/// The middleware: admission and bounds; see the module docs.
pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let had_body = has_body(&req);
    match admit(&state, &req) {
        Ok(()) => {
            let response = next.run(req).await;
            // A handler that refused before reading its body (no right, say) left it unread.
            let failed = response.status().is_client_error() || response.status().is_server_error();
            close_if(had_body && failed, response)
        }
        Err(e) => {
            // A connection accepted past the limit serves health checks only for as long as
            // it lives: close it, so the client's next request comes on a new connection that
            // is admitted once the flood is over (a kept-alive one would get 503 forever).
            let overflow = matches!(e, ApiError::Overloaded { .. });
            close_if(had_body || overflow, e.into_response())
        }
    }
}

/// Whether the request says it carries a body.
pub fn has_body(req: &Request) -> bool {
    let length = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok());
    length.is_some_and(|n| n.trim() != "0") || req.headers().contains_key(header::TRANSFER_ENCODING)
}

/// An answer sent before the request's body was read: the connection cannot carry another
/// request (the unread body is still on it), so say it will close.
pub fn close_if(had_body: bool, mut response: Response) -> Response {
    if had_body {
        response
            .headers_mut()
            .insert(header::CONNECTION, axum::http::HeaderValue::from_static("close"));
    }
    response
}

fn declared_length(req: &Request) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

fn limit_of(state: &AppState, kind: BodyKind) -> (u64, &'static str) {
    let limits = &state.config.limits;
    match kind {
        BodyKind::Module => (limits.module_bytes_max as u64, "limits.module_bytes_max"),
        BodyKind::Api => (limits.body_bytes_max as u64, "limits.body_bytes_max"),
    }
}

fn admit(state: &AppState, req: &Request) -> Result<(), ApiError> {
    if req
        .extensions()
        .get::<Connection>()
        .is_some_and(|c| c.overflow && req.uri().path() != "/healthz")
    {
        return Err(ApiError::Overloaded {
            reason: "the broker is at its connection limit (limits.connections_max); only /healthz is served on this connection".into(),
            retry_after_s: RETRY_AFTER_S,
        });
    }
    let uri_len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if uri_len > URI_BYTES_MAX {
        return Err(ApiError::UriTooLong {
            bytes: uri_len,
            limit: URI_BYTES_MAX,
        });
    }
    let header_bytes: usize = req.headers().iter().map(|(n, v)| n.as_str().len() + v.len()).sum();
    if header_bytes > HEADER_BYTES_MAX {
        return Err(ApiError::HeadersTooLarge {
            bytes: header_bytes,
            limit: HEADER_BYTES_MAX,
        });
    }
    // No route reads a body on these methods: one sent anyway would only sit on the connection.
    if matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS
    ) && has_body(req)
    {
        return Err(ApiError::InvalidRequest(format!(
            "{} requests take no body; send none",
            req.method()
        )));
    }
    let kind = if req.uri().path() == "/v1/modules" {
        BodyKind::Module
    } else {
        BodyKind::Api
    };
    let (limit, setting) = limit_of(state, kind);
    if declared_length(req).is_some_and(|n| n > limit) {
        return Err(ApiError::BodyTooLarge {
            limit: limit as usize,
            setting,
        });
    }
    Ok(())
}

/// Reads a handler's whole body (after the handler checked the caller's rights): at most its
/// limit, each frame within `http.body_read_timeout_ms` of the last, no slower on average than
/// `BODY_BYTES_PER_S_MIN` after that, reserving from the budget as it arrives.
pub async fn read_body(state: &AppState, mut body: Body, kind: BodyKind) -> Result<ReadBody, ApiError> {
    let (limit, setting) = limit_of(state, kind);
    let too_large = || ApiError::BodyTooLarge {
        limit: limit as usize,
        setting,
    };
    let timeout = Duration::from_millis(state.config.http.body_read_timeout_ms);
    let started = Instant::now();
    let mut permit = None;
    let (mut buf, mut reserved) = (Vec::new(), 0u64);
    loop {
        let frame = match tokio::time::timeout(timeout, body.frame()).await {
            Err(_) => {
                return Err(ApiError::RequestTimeout {
                    after_ms: timeout.as_millis() as u64,
                });
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(ApiError::InvalidRequest(format!(
                    "could not read the request body: {e}"
                )));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else { continue };
        let need = buf.len() as u64 + data.len() as u64;
        if need > limit {
            return Err(too_large());
        }
        if need > reserved {
            let more = (need - reserved).max(CHUNK_BYTES.min(limit - reserved));
            state.budget.reserve(more, &mut permit)?;
            reserved += more;
        }
        let allowed = timeout + Duration::from_secs(need / BODY_BYTES_PER_S_MIN);
        if started.elapsed() > allowed {
            return Err(ApiError::RequestTimeout {
                after_ms: started.elapsed().as_millis() as u64,
            });
        }
        if buf.is_empty() && body.is_end_stream() {
            return Ok(ReadBody {
                bytes: data,
                _permit: permit,
            });
        }
        buf.extend_from_slice(&data);
    }
    Ok(ReadBody {
        bytes: Bytes::from(buf),
        _permit: permit,
    })
}
