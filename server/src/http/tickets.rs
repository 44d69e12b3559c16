//! `POST /v1/tickets`: a short-lived ticket to follow one topic's events from a browser, whose
//! `EventSource` cannot send an `Authorization` header: `.../events?ticket=...`.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use super::{ApiError, AppState};
use crate::auth::{Action, Principal, Resource, Ticket};

/// Life of a ticket that names none: long enough to open a stream and reconnect a few times.
const TICKET_TTL_MS_DEFAULT: u64 = 5 * 60 * 1000;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueTicket {
    topic: String,
    #[serde(default)]
    ttl_ms: Option<u64>,
}

/// A ticket to follow one topic's events from a browser: `GET /v1/topics/{topic}/events?ticket=...`
/// (needs `topic:NAME:read`; default life 5 minutes, at most 24 hours).
#[utoipa::path(post, path = "/v1/tickets", tag = "access", request_body = IssueTicket,
    responses((status = 201, description = "Issued", body = Ticket), super::openapi::CommonErrors))]
pub async fn issue(
    State(state): State<AppState>,
    principal: Principal,
    body: Body,
) -> Result<(StatusCode, Json<Ticket>), ApiError> {
    principal.require_any(Resource::Topic, Action::Read)?;
    let body = super::guard::read_body(&state, body, super::guard::BodyKind::Api).await?;
    let req: IssueTicket = super::extract::json_body(&body.bytes, r#"{"topic":"orders","ttl_ms":300000}"#)
        .map_err(ApiError::InvalidRequest)?;
    let ticket = state
        .auth
        .issue_ticket(&principal, &req.topic, req.ttl_ms.unwrap_or(TICKET_TTL_MS_DEFAULT))?;
    Ok((StatusCode::CREATED, Json(ticket)))
}
