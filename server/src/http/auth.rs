//! Who is asking, checked before anything else is read: the `Host` (DNS rebinding), the
//! `Origin` of state-changing requests (cross-site requests), the content type a browser could
//! send without a preflight, then the bearer token (or an SSE ticket) into a [`Principal`]
//! that handlers ask for the right they need.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use crate::auth::{AuthError, Principal};

/// Routes anyone may `GET`, from any host name: liveness for load balancers, and the API's
/// description. (Their principal only reaches these two handlers.)
const PUBLIC_PATHS: &[&str] = &["/healthz", "/v1/openapi.json"];

/// The middleware: see the module docs.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    match principal_of(&state, &req) {
        Ok(p) => {
            req.extensions_mut().insert(p);
            next.run(req).await
        }
        Err(e) => super::guard::close_if(super::guard::has_body(&req), e.into_response()),
    }
}

fn principal_of(state: &AppState, req: &Request) -> Result<Principal, ApiError> {
    if req.headers().get_all(header::HOST).iter().count() > 1 {
        return Err(ApiError::InvalidRequest(
            "the request has more than one Host header (RFC 9112 allows one)".into(),
        ));
    }
    if PUBLIC_PATHS.contains(&req.uri().path()) && req.method() == Method::GET {
        return Ok(Principal::Admin);
    }
    check_host(state, req)?;
    let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if changes_state {
        check_origin(state, req)?;
    }
    // The only state-changing method a browser sends cross-site without a preflight.
    if req.method() == Method::POST {
        check_content_type(req)?;
    }
    if !state.auth.enabled() {
        return Ok(Principal::Admin);
    }
    if let Some(value) = req.headers().get(header::AUTHORIZATION) {
        // The scheme is case-insensitive (RFC 9110), then whitespace, then the token.
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.split_once([' ', '\t']))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token)
            .ok_or_else(|| AuthError::Unauthenticated("the Authorization header must be `Bearer TOKEN`".into()))?;
        return Ok(state.auth.authenticate(token.trim())?);
    }
    if let Some((topic, ticket)) = events_ticket(req) {
        return Ok(state.auth.authenticate_ticket(&ticket, topic)?);
    }
    Err(AuthError::Unauthenticated(
        "this broker requires a token: send `Authorization: Bearer TOKEN` (weir: --token or WEIR_TOKEN)".into(),
    )
    .into())
}

/// The topic and ticket of `GET /v1/topics/{topic}/events?ticket=...` (or of a table's
/// `/v1/tables/{topic}/events`: a ticket lets its holder read one topic either way).
fn events_ticket(req: &Request) -> Option<(&str, String)> {
    if req.method() != Method::GET {
        return None;
    }
    let path = req.uri().path();
    let topic = path
        .strip_prefix("/v1/topics/")
        .or_else(|| path.strip_prefix("/v1/tables/"))?
        .strip_suffix("/events")
        .filter(|t| !t.contains('/'))?;
    let ticket = req
        .uri()
        .query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix("ticket="))?;
    let ticket = percent_decode(ticket);
    Some((topic, ticket))
}

/// Decodes `%XX` escapes (tickets are URL-safe base64, but a client may escape them anyway).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(hex) = std::str::from_utf8(&bytes[i + 1..i + 3])
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `Host` header must name this broker: a page on another site that rebinds its DNS name
/// to 127.0.0.1 sends its own name, and is refused.
fn check_host(state: &AppState, req: &Request) -> Result<(), ApiError> {
    let configured = &state.config.http.hosts;
    let loopback = state.config.addr.ip().is_loopback();
    if configured.is_empty() && !loopback && state.auth.enabled() {
        return Ok(());
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().host())
        .unwrap_or("");
    let refused = || ApiError::HostNotAllowed { host: host.to_owned() };
    let name = host_name(host).ok_or_else(refused)?;
    let allowed = if !configured.is_empty() {
        configured.iter().any(|h| h.eq_ignore_ascii_case(name))
    } else if loopback {
        name.eq_ignore_ascii_case("localhost") || name == "127.0.0.1" || name == "[::1]"
    } else {
        // `--insecure` on another address: IP literals only, which a rebinding page cannot
        // send as its own origin's name.
        name.parse::<std::net::Ipv4Addr>().is_ok()
            || name
                .strip_prefix('[')
                .and_then(|n| n.strip_suffix(']'))
                .is_some_and(|n| n.parse::<std::net::Ipv6Addr>().is_ok())
    };
    if allowed { Ok(()) } else { Err(refused()) }
}

/// The name part of a `Host` value (`name`, `name:port`, `[v6]`, `[v6]:port`); `None` when the
/// value is none of those.
fn host_name(host: &str) -> Option<&str> {
    let name = match host.strip_prefix('[') {
        Some(rest) => &host[..rest.find(']')? + 2],
        None => host.split(':').next().unwrap_or(""),
    };
    let port = &host[name.len()..];
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let inner = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')).unwrap_or(name);
    let name_ok = !inner.is_empty()
        && inner
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-') || (b == b':' && inner.len() < name.len()));
    (port_ok && name_ok).then_some(name)
}

/// A browser sends `Origin` on a cross-site request. A state-changing one is accepted only
/// from an origin the operator allowed (`http.cors_origins`) or from the broker's own pages.
fn check_origin(state: &AppState, req: &Request) -> Result<(), ApiError> {
    let Some(origin) = req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let allowed = &state.config.http.cors_origins;
    if allowed.iter().any(|o| o == "*" || o == origin) {
        return Ok(());
    }
    let host = req.headers().get(header::HOST).and_then(|v| v.to_str().ok());
    let same_site = host.is_some_and(|h| {
        origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            == Some(h)
    });
    if same_site {
        return Ok(());
    }
    Err(ApiError::OriginNotAllowed {
        origin: origin.to_owned(),
    })
}

/// A page on any site can make a browser send a POST with one of these content types (or
/// none) without asking the broker first; the API takes none of them with a body.
fn check_content_type(req: &Request) -> Result<(), ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    let simple = match content_type.as_deref() {
        Some("application/x-www-form-urlencoded" | "multipart/form-data" | "text/plain") => true,
        None => super::guard::has_body(req),
        Some(_) => false,
    };
    if simple {
        return Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type {} is refused on requests that change state: any web page can make a browser send it. \
             Send application/json (curl: --json '...' or -H 'Content-Type: application/json'), \
             application/x-ndjson, or application/wasm for modules",
            content_type.as_deref().unwrap_or("(none)")
        )));
    }
    Ok(())
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| AuthError::Unauthenticated("no credentials were checked".into()).into())
    }
}
