//! `POST /v1/modules` (upload a component) and `GET /v1/modules`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Serialize;

use super::{ApiError, AppState};
use crate::auth::{Action, Principal, Resource};
use crate::processor::{ModuleInfo, ProcessorError};

pub async fn upload(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<ModuleInfo>), ApiError> {
    principal.require(Resource::Module, "*", Action::Upload)?;
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

pub async fn list(State(state): State<AppState>, principal: Principal) -> Result<Json<ModuleList>, ApiError> {
    if principal.require(Resource::Module, "*", Action::Read).is_err() {
        // Whoever may deploy a processor may see what there is to deploy.
        principal.require_any(Resource::Processor, Action::Deploy)?;
    }
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
