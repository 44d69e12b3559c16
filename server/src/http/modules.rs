//! `POST /v1/modules` (upload a component) and `GET /v1/modules`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Serialize;

use super::{ApiError, AppState};
use crate::processor::{ModuleInfo, ProcessorError};

pub async fn upload(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<ModuleInfo>), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/wasm");
    if !matches!(content_type, "application/wasm" | "application/octet-stream") {
        return Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type {content_type} is not supported; send the component bytes as application/wasm"
        )));
    }
    let modules = state.processors.modules().clone();
    let info = tokio::task::spawn_blocking(move || modules.upload(&body))
        .await
        .map_err(|_| ApiError::Topic(crate::topic::TopicError::ShuttingDown))??;
    Ok((StatusCode::OK, Json(info)))
}

#[derive(Serialize)]
pub struct ModuleList {
    modules: Vec<ModuleInfo>,
}

pub async fn list(State(state): State<AppState>) -> Result<Json<ModuleList>, ApiError> {
    let modules = state.processors.modules().list().map_err(ApiError::from)?;
    Ok(Json(ModuleList { modules }))
}

impl From<ProcessorError> for ApiError {
    fn from(e: ProcessorError) -> Self {
        match e {
            ProcessorError::Topic(t) => ApiError::Topic(t),
            other => ApiError::Processor(other),
        }
    }
}
