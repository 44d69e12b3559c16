//! `/v1/processors`: deploy, inspect, pause, resume, delete, and follow logs.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::Serialize;

use super::{ApiError, ApiPath, AppState};
use crate::auth::{Action, Principal, Resource};
use crate::processor::{OnError, ProcessorError, ProcessorSpec, ProcessorView};

/// Deploys or redeploys a processor (needs `processor:NAME:deploy`, read on its input, write
/// on its outputs and dead-letter topic). Everything is checked before the running processor
/// is touched; a redeploy keeps committed offsets.
#[utoipa::path(put, path = "/v1/processors/{name}", tag = "processors", params(("name" = String, Path)),
    request_body = ProcessorSpec,
    responses((status = 201, description = "Created", body = ProcessorView),
        (status = 200, description = "Redeployed", body = ProcessorView), super::openapi::ProcessorErrors))]
pub async fn deploy(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
    body: Body,
) -> Result<(StatusCode, Json<ProcessorView>), ApiError> {
    principal.require(Resource::Processor, &name, Action::Deploy)?;
    let body = super::guard::read_body(&state, body, super::guard::BodyKind::Api).await?;
    let spec: ProcessorSpec = super::extract::json_body(
        &body.bytes,
        r#"{"module":"sha256:...","input":"orders","outputs":["enriched"]} (or "aggregate": {"op": "count"}, or "join": {"table": "customers"}, instead of "module")"#,
    )
    .map_err(ProcessorError::InvalidSpec)?;
    require_topics(&state, &principal, &name, &spec)?;
    let deployer = match &principal {
        Principal::Admin => "admin".to_owned(),
        Principal::Token { id, .. } => format!("token:{id}"),
        Principal::Ticket { .. } => "ticket".to_owned(),
    };
    let created = state.processors.deploy(&name, spec, Some(deployer)).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(state.processors.view(&name)?)))
}

/// A processor reads and writes topics on behalf of whoever deployed it: that principal must
/// hold those rights itself (and the right to create the dead-letter or late-records topic if
/// it is missing), read on the tables it joins against included.
fn require_topics(state: &AppState, p: &Principal, name: &str, spec: &ProcessorSpec) -> Result<(), ApiError> {
    p.require(Resource::Topic, &spec.input, Action::Read)?;
    for o in &spec.outputs {
        p.require(Resource::Topic, o, Action::Write)?;
    }
    if spec.on_error == OnError::DeadLetter {
        let dlq = spec.dead_letter_topic(name);
        let action = if state.topics.get(&dlq).is_ok() {
            Action::Write
        } else {
            Action::Admin
        };
        p.require(Resource::Topic, &dlq, action)?;
    }
    // A table is read for the processor like its input: a join would copy it to an output.
    for t in spec.table_names() {
        p.require(Resource::Topic, &t, Action::Read)?;
    }
    if let Some(late) = spec.late_topic() {
        let action = if state.topics.get(late).is_ok() {
            Action::Write
        } else {
            Action::Admin
        };
        p.require(Resource::Topic, late, action)?;
    }
    Ok(())
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ProcessorList {
    processors: Vec<ProcessorView>,
}

/// The processors the caller has any right on.
#[utoipa::path(get, path = "/v1/processors", tag = "processors",
    responses((status = 200, description = "Processors", body = ProcessorList), super::openapi::CommonErrors))]
pub async fn list(State(state): State<AppState>, principal: Principal) -> Result<Json<ProcessorList>, ApiError> {
    principal.require_any(Resource::Processor, Action::Any)?;
    let mut processors = state.processors.list();
    processors.retain(|p| principal.sees(Resource::Processor, &p.name));
    Ok(Json(ProcessorList { processors }))
}

/// A processor's deployment, state, counters, lag and call latency (needs
/// `processor:NAME:read`).
#[utoipa::path(get, path = "/v1/processors/{name}", tag = "processors", params(("name" = String, Path)),
    responses((status = 200, description = "The processor", body = ProcessorView), super::openapi::ProcessorErrors))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<ProcessorView>, ApiError> {
    principal.require(Resource::Processor, &name, Action::Read)?;
    Ok(Json(state.processors.view(&name)?))
}

/// Pauses a processor (needs `processor:NAME:operate`); a call in flight is interrupted and
/// runs again on resume.
#[utoipa::path(post, path = "/v1/processors/{name}/pause", tag = "processors", params(("name" = String, Path)),
    responses((status = 200, description = "Paused", body = ProcessorView), super::openapi::ProcessorErrors))]
pub async fn pause(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<ProcessorView>, ApiError> {
    principal.require(Resource::Processor, &name, Action::Operate)?;
    state.processors.set_paused(&name, true).await?;
    Ok(Json(state.processors.view(&name)?))
}

/// Resumes a paused or failed processor (needs `processor:NAME:operate`).
#[utoipa::path(post, path = "/v1/processors/{name}/resume", tag = "processors", params(("name" = String, Path)),
    responses((status = 200, description = "Running", body = ProcessorView), super::openapi::ProcessorErrors))]
pub async fn resume(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<ProcessorView>, ApiError> {
    principal.require(Resource::Processor, &name, Action::Operate)?;
    state.processors.set_paused(&name, false).await?;
    Ok(Json(state.processors.view(&name)?))
}

/// Stops and removes a processor with its offsets (needs `processor:NAME:deploy`).
#[utoipa::path(delete, path = "/v1/processors/{name}", tag = "processors", params(("name" = String, Path)),
    responses((status = 204, description = "Deleted"), super::openapi::ProcessorErrors))]
pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Resource::Processor, &name, Action::Deploy)?;
    state.processors.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The processor's log as SSE: the kept lines, then new ones as they come (`event: log`; needs
/// `processor:NAME:read`).
#[utoipa::path(get, path = "/v1/processors/{name}/logs", tag = "processors", params(("name" = String, Path)),
    responses((status = 200, description = "An event stream of log lines", content_type = "text/event-stream", body = String),
        super::openapi::ProcessorErrors))]
pub async fn logs(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    principal.require(Resource::Processor, &name, Action::Read)?;
    let (backlog, rx) = state.processors.logs(&name)?;
    let stop = state.topics.stop_readers();
    let event = |line: &crate::processor::LogLine| {
        Event::default()
            .event("log")
            .data(serde_json::to_string(line).unwrap_or_default())
    };
    let backlog = futures::stream::iter(backlog.iter().map(event).map(Ok).collect::<Vec<_>>());
    let access = super::sse::Access::new(&state.auth, principal);
    let live = futures::stream::unfold(
        (rx, stop, access, false),
        move |(mut rx, stop, mut access, ended)| async move {
            loop {
                if ended {
                    return None;
                }
                if !access.valid() {
                    return Some((Ok(super::sse::revoked_event()), (rx, stop, access, true)));
                }
                tokio::select! {
                    r = rx.recv() => return match r {
                        Ok(line) => Some((Ok(event(&line)), (rx, stop, access, false))),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            let skipped = Event::default().comment(format!("{n} log lines skipped: the reader was too slow"));
                            Some((Ok(skipped), (rx, stop, access, false)))
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => None,
                    },
                    () = stop.cancelled() => return None,
                    () = access.changed() => {}
                }
            }
        },
    );
    let heartbeat = Duration::from_millis(state.config.sse_heartbeat_ms);
    Ok(Sse::new(futures::StreamExt::chain(backlog, live))
        .keep_alive(KeepAlive::new().interval(heartbeat).text("heartbeat")))
}

/// Moves a processor's committed offsets (needs `processor:NAME:deploy`: skipping or
/// repeating input changes what the outputs hold, as a deploy does): to `earliest`, `latest`,
/// an offset, or `{"timestamp": MS}`; with `"state": true` its state is cleared too. The
/// processor stops while it happens and runs again after.
#[utoipa::path(post, path = "/v1/processors/{name}/reset", tag = "processors", params(("name" = String, Path)),
    request_body = crate::processor::reset::ResetRequest,
    responses((status = 200, description = "Reset and running again", body = ProcessorView), super::openapi::ProcessorErrors))]
pub async fn reset(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
    body: Body,
) -> Result<Json<ProcessorView>, ApiError> {
    principal.require(Resource::Processor, &name, Action::Deploy)?;
    let body = super::guard::read_body(&state, body, super::guard::BodyKind::Api).await?;
    check_reset_to(&body.bytes)?;
    let req: crate::processor::reset::ResetRequest =
        super::extract::json_body(&body.bytes, r#"{"to":"earliest","state":true}"#)
            .map_err(ApiError::InvalidRequest)?;
    state.processors.reset(&name, &req).await?;
    Ok(Json(state.processors.view(&name)?))
}

/// A reset's `to`, checked with a message that says what it may be (serde's for the untagged
/// enum names only the type).
fn check_reset_to(body: &[u8]) -> Result<(), ApiError> {
    let Ok(serde_json::Value::Object(m)) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Ok(()); // json_body says what is wrong with the body itself.
    };
    let ok = match m.get("to") {
        None => return Ok(()),
        Some(serde_json::Value::String(s)) => s == "earliest" || s == "latest",
        Some(serde_json::Value::Number(n)) => n.is_u64(),
        Some(serde_json::Value::Object(t)) => t.len() == 1 && t.get("timestamp").is_some_and(|v| v.is_i64()),
        Some(_) => false,
    };
    if ok {
        return Ok(());
    }
    Err(ApiError::InvalidRequest(format!(
        "\"to\" must be \"earliest\", \"latest\", an offset (a number 0 or more) or {{\"timestamp\": MS}}, not {}",
        m["to"]
    )))
}
