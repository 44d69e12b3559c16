//! The HTTP API: `router(state)` builds every route and layer in one place, so tests and `main`
//! share it. Handlers live one concern per file; they speak DTOs, never storage internals.

mod auth;
mod error;
mod extract;
mod fetch;
mod guard;
pub mod listener;
mod modules;
pub mod openapi;
mod plain_errors;
mod processor_metrics;
mod processors;
pub mod produce;
mod records;
pub mod records_in;
mod sse;
mod state;
mod tables;
mod tickets;
mod tokens;
mod topics;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{Method, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use tower_http::cors::CorsLayer;

pub use error::ApiError;
use extract::ApiPath;
pub use guard::RequestBudget;
pub use listener::{CONNECTIONS_RESERVED, ListenerSettings, serve};

use crate::auth::{Action, Auth, Principal, Resource};
use crate::config::Config;
use crate::metrics::{Metrics, RouteLabels};
use crate::processor::Processors;
use crate::topic::Topics;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub topics: Topics,
    pub processors: Processors,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    pub budget: RequestBudget,
    pub auth: Auth,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(openapi_json))
        .route("/v1/topics", post(topics::create).get(topics::list))
        .route("/v1/topics/{topic}", get(topics::describe).delete(topics::delete))
        .route("/v1/topics/{topic}/records", post(produce::produce))
        .route("/v1/topics/{topic}/partitions/{partition}/records", get(fetch::fetch))
        .route("/v1/topics/{topic}/events", get(sse::events))
        .route("/v1/modules", post(modules::upload).get(modules::list))
        .route("/v1/modules/{id}", axum::routing::delete(modules::delete))
        .route("/v1/processors", get(processors::list))
        .route(
            "/v1/processors/{name}",
            put(processors::deploy).get(processors::get).delete(processors::delete),
        )
        .route("/v1/processors/{name}/pause", post(processors::pause))
        .route("/v1/processors/{name}/resume", post(processors::resume))
        .route("/v1/processors/{name}/logs", get(processors::logs))
        .route("/v1/processors/{name}/state/{store}", get(state::get))
        .route("/v1/processors/{name}/reset", post(processors::reset))
        .route("/v1/tables/{topic}", get(tables::get))
        .route("/v1/tables/{topic}/events", get(tables::events))
        .route("/v1/tokens", post(tokens::create).get(tokens::list))
        .route("/v1/tokens/{id}", axum::routing::delete(tokens::revoke))
        .route("/v1/tickets", post(tickets::issue))
        .fallback(no_route)
        // The guard reads and bounds every body itself (see `guard.rs`).
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(state.clone(), guard::guard))
        // Who is asking is known before any body is read.
        .layer(middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .layer(middleware::from_fn(plain_errors::to_json))
        .layer(middleware::from_fn_with_state(state.clone(), record_latency))
        .layer(cors(&state.config))
        .with_state(state)
}

/// Liveness: answers while the broker serves, whoever asks.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, description = "Serving", body = openapi::Health)))]
async fn healthz() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], "{\"status\":\"ok\"}")
}

/// Prometheus metrics (needs `metrics:*:read`).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
        openapi::CommonErrors))]
async fn metrics(State(state): State<AppState>, principal: Principal) -> Result<impl IntoResponse, ApiError> {
    principal.require(Resource::Metrics, "*", Action::Read)?;
    let pool = state.processors.modules().runtime().pool();
    let processors = processor_metrics::render(&state.processors.list(), pool);
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.encode_with(&processors),
    ))
}

/// This document: every route, its parameters, bodies and answers.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "operations", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)))]
async fn openapi_json() -> impl IntoResponse {
    openapi::serve().await
}

/// CORS for the origins of `http.cors_origins` (none by default: browsers then refuse to give
/// a page on another origin what the broker answered).
fn cors(config: &Config) -> CorsLayer {
    use axum::http::{HeaderName, HeaderValue};
    use tower_http::cors::{AllowOrigin, Any};
    let origins = &config.http.cors_origins;
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("last-event-id"),
        ])
        .max_age(std::time::Duration::from_secs(600));
    if origins.iter().any(|o| o == "*") {
        return layer.allow_origin(Any);
    }
    let list: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    layer.allow_origin(AllowOrigin::list(list))
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::NoRoute {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}

/// Observes every request's latency (time to response headers) by route template.
async fn record_latency(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_owned();
    // A label per method the API knows; anything else is one label, or a client could make a
    // label (and memory) per made-up method.
    let method = match *req.method() {
        Method::GET | Method::POST | Method::PUT | Method::DELETE | Method::HEAD | Method::OPTIONS => {
            req.method().as_str().to_owned()
        }
        _ => "other".to_owned(),
    };
    let response = next.run(req).await;
    let labels = RouteLabels {
        method,
        route,
        status: response.status().as_u16(),
    };
    state
        .metrics
        .request_seconds
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    response
}
