//! `/v1/processors`: deploy, inspect, pause, resume, delete, and follow logs.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::Serialize;

use super::{ApiError, ApiPath, AppState};
use crate::auth::{Action, Principal, Resource};
use crate::processor::{OnError, ProcessorError, ProcessorSpec, ProcessorView};

pub async fn deploy(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<ProcessorView>), ApiError> {
    principal.require(Resource::Processor, &name, Action::Deploy)?;
    let spec: ProcessorSpec = super::extract::json_body(
        &body,
        r#"{"module":"sha256:...","input":"orders","outputs":["enriched"]}"#,
    )
    .map_err(ProcessorError::InvalidSpec)?;
    require_topics(&state, &principal, &name, &spec)?;
    let created = state.processors.deploy(&name, spec).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(state.processors.view(&name)?)))
}

/// A processor reads and writes topics on behalf of whoever deployed it: that principal must
/// hold those rights itself (and the right to create the dead-letter topic if it is missing).
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
    Ok(())
}

#[derive(Serialize)]
pub struct ProcessorList {
    processors: Vec<ProcessorView>,
}

/// The processors the caller has any right on.
pub async fn list(State(state): State<AppState>, principal: Principal) -> Result<Json<ProcessorList>, ApiError> {
    principal.require_any(Resource::Processor, Action::Any)?;
    let mut processors = state.processors.list();
    processors.retain(|p| principal.sees(Resource::Processor, &p.name));
    Ok(Json(ProcessorList { processors }))
}

pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<ProcessorView>, ApiError> {
    principal.require(Resource::Processor, &name, Action::Read)?;
    Ok(Json(state.processors.view(&name)?))
}

pub async fn pause(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<ProcessorView>, ApiError> {
    principal.require(Resource::Processor, &name, Action::Operate)?;
    state.processors.set_paused(&name, true).await?;
    Ok(Json(state.processors.view(&name)?))
}

pub async fn resume(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<ProcessorView>, ApiError> {
    principal.require(Resource::Processor, &name, Action::Operate)?;
    state.processors.set_paused(&name, false).await?;
    Ok(Json(state.processors.view(&name)?))
}

pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Resource::Processor, &name, Action::Deploy)?;
    state.processors.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The processor's log as SSE: the kept lines, then new ones as they come (`event: log`).
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
    let live = futures::stream::unfold((rx, stop), move |(mut rx, stop)| async move {
        tokio::select! {
            r = rx.recv() => match r {
                Ok(line) => Some((Ok(event(&line)), (rx, stop))),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    let skipped = Event::default().comment(format!("{n} log lines skipped: the reader was too slow"));
                    Some((Ok(skipped), (rx, stop)))
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => None,
            },
            () = stop.cancelled() => None,
        }
    });
    let heartbeat = Duration::from_millis(state.config.sse_heartbeat_ms);
    Ok(Sse::new(futures::StreamExt::chain(backlog, live))
        .keep_alive(KeepAlive::new().interval(heartbeat).text("heartbeat")))
}
