//! `POST /v1/modules` (upload a component) and `GET /v1/modules`.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Serialize;

use super::{ApiError, AppState};
use crate::auth::{Action, Principal, Resource};
use crate::processor::{ModuleInfo, ProcessorError};

/// Uploads a WebAssembly component (needs `module:*:upload`): validated, compiled and stored
/// by content hash; the same bytes again answer the same id.
#[utoipa::path(post, path = "/v1/modules", tag = "processors",
    request_body(content = Vec<u8>, content_type = "application/wasm"),
    responses((status = 200, description = "Stored", body = ModuleInfo), super::openapi::ProcessorErrors))]
pub async fn upload(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: Body,
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
    let body = super::guard::read_body(&state, body, super::guard::BodyKind::Module).await?;
    let modules = state.processors.modules().clone();
    let info = tokio::task::spawn_blocking(move || modules.upload(&body.bytes))
        .await
        .map_err(|_| ApiError::Topic(crate::topic::TopicError::ShuttingDown))??;
    Ok((StatusCode::OK, Json(info)))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ModuleList {
    modules: Vec<ModuleInfo>,
}

/// The stored modules (needs `module:*:read`, or the right to deploy a processor).
#[utoipa::path(get, path = "/v1/modules", tag = "processors",
    responses((status = 200, description = "Modules", body = ModuleList), super::openapi::CommonErrors))]
pub async fn list(State(state): State<AppState>, principal: Principal) -> Result<Json<ModuleList>, ApiError> {
    if principal.require(Resource::Module, "*", Action::Read).is_err() {
        // Whoever may deploy a processor may see what there is to deploy.
        principal.require_any(Resource::Processor, Action::Deploy)?;
    }
    let modules = state.processors.modules().list().map_err(ApiError::from)?;
    Ok(Json(ModuleList { modules }))
}

/// Deletes a module no processor uses (needs `module:*:upload`).
#[utoipa::path(delete, path = "/v1/modules/{id}", tag = "processors", params(("id" = String, Path, description = "sha256:HEX")),
    responses((status = 204, description = "Deleted"), super::openapi::ProcessorErrors))]
pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    super::ApiPath(id): super::ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Resource::Module, "*", Action::Upload)?;
    state.processors.delete_module(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

impl From<ProcessorError> for ApiError {
    fn from(e: ProcessorError) -> Self {
        match e {
            ProcessorError::Topic(t) => ApiError::Topic(t),
            other => ApiError::Processor(other),
        }
    }
}
