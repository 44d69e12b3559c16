//! What every request passes before its handler: connection admission, bounds on the URI and
//! headers, and reading the body under a size limit, a read timeout and the broker-wide
//! budget of memory held by requests in flight.
//!
//! The body is read here, whole, before the handler runs, so that its memory is accounted
//! for: a request reserves `BODY_MEMORY_FACTOR` times its body (the body, what the handler
//! parses from it, what it encodes) from the budget, and gives it back when its response is
//! ready. A request that does not fit the budget now gets 503 `overloaded` with `Retry-After`;
//! a body that stops arriving for `body_read_timeout` gets 408.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header;
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
/// A body without a length reserves as it arrives, this much at a time.
const CHUNK_BYTES: u64 = 1024 * 1024;
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

/// The middleware: see the module docs.
pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let had_body = has_body(&req);
    match admit(&state, req).await {
        Ok((req, permit)) => {
            let response = next.run(req).await;
            drop(permit);
            response
        }
        Err(e) => close_if(had_body, e.into_response()),
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

async fn admit(state: &AppState, req: Request) -> Result<(Request, Option<OwnedSemaphorePermit>), ApiError> {
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
    let limits = &state.config.limits;
    let (limit, setting) = if req.uri().path() == "/v1/modules" {
        (limits.module_bytes_max as u64, "limits.module_bytes_max")
    } else {
        (limits.body_bytes_max as u64, "limits.body_bytes_max")
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = ApiError::BodyTooLarge {
        limit: limit as usize,
        setting,
    };
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large);
    }
    let (parts, body) = req.into_parts();
    let mut permit = None;
    if declared.unwrap_or(1) == 0 {
        return Ok((Request::from_parts(parts, Body::empty()), None));
    }
    if let Some(n) = declared {
        state.budget.reserve(n, &mut permit)?;
    }
    let timeout = Duration::from_millis(state.config.http.body_read_timeout_ms);
    let budget = declared.is_none().then_some(&state.budget);
    let bytes = read_body(body, limit, timeout, budget, &mut permit)
        .await
        .map_err(|e| e.unwrap_or(too_large))?;
    Ok((Request::from_parts(parts, Body::from(bytes)), permit))
}

/// Reads the whole body: at most `limit` bytes, each frame within `timeout` of the last;
/// without a declared length, reserving from `budget` as it grows. `Err(None)`: over `limit`.
async fn read_body(
    mut body: Body,
    limit: u64,
    timeout: Duration,
    budget: Option<&RequestBudget>,
    permit: &mut Option<OwnedSemaphorePermit>,
) -> Result<Bytes, Option<ApiError>> {
    let mut buf: Vec<u8> = Vec::new();
    let mut reserved = 0u64;
    loop {
        let frame = match tokio::time::timeout(timeout, body.frame()).await {
            Err(_) => {
                return Err(Some(ApiError::RequestTimeout {
                    after_ms: timeout.as_millis() as u64,
                }));
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(Some(ApiError::InvalidRequest(format!(
                    "could not read the request body: {e}"
                ))));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else { continue };
        if buf.len() as u64 + data.len() as u64 > limit {
            return Err(None);
        }
        if let Some(budget) = budget {
            let need = buf.len() as u64 + data.len() as u64;
            if need > reserved {
                let more = (need - reserved).max(CHUNK_BYTES.min(limit - reserved));
                budget.reserve(more, permit).map_err(Some)?;
                reserved += more;
            }
        }
        if buf.is_empty() && body.is_end_stream() {
            return Ok(data);
        }
        buf.extend_from_slice(&data);
    }
    Ok(Bytes::from(buf))
}
