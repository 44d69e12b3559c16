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
use crate::processor::{ProcessorError, ProcessorSpec, ProcessorView};

pub async fn deploy(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<ProcessorView>), ApiError> {
    let spec: ProcessorSpec = super::extract::json_body(
        &body,
        r#"{"module":"sha256:...","input":"orders","outputs":["enriched"]}"#,
    )
    .map_err(ProcessorError::InvalidSpec)?;
    let created = state.processors.deploy(&name, spec).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(state.processors.view(&name)?)))
}

#[derive(Serialize)]
pub struct ProcessorList {
    processors: Vec<ProcessorView>,
}

pub async fn list(State(state): State<AppState>) -> Json<ProcessorList> {
    Json(ProcessorList {
        processors: state.processors.list(),
    })
}

pub async fn get(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<ProcessorView>, ApiError> {
    Ok(Json(state.processors.view(&name)?))
}

pub async fn pause(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<ProcessorView>, ApiError> {
    state.processors.set_paused(&name, true).await?;
    Ok(Json(state.processors.view(&name)?))
}

pub async fn resume(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<ProcessorView>, ApiError> {
    state.processors.set_paused(&name, false).await?;
    Ok(Json(state.processors.view(&name)?))
}

pub async fn delete(State(state): State<AppState>, ApiPath(name): ApiPath<String>) -> Result<StatusCode, ApiError> {
    state.processors.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The processor's log as SSE: the kept lines, then new ones as they come (`event: log`).
pub async fn logs(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
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
