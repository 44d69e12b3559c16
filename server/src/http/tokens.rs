//! `/v1/tokens`: create, list and revoke API tokens (admin only). A token's secret is in the
//! create answer and nowhere else.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiPath, AppState};
use crate::auth::{Principal, Right, TokenInfo};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    name: String,
    rights: Vec<Right>,
}

#[derive(Debug, Serialize)]
pub struct CreatedToken {
    /// The secret: shown once, stored only as a hash.
    token: String,
    #[serde(flatten)]
    info: TokenInfo,
}

pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    principal.require_admin()?;
    let req: CreateToken = super::extract::json_body(&body, r#"{"name":"ci","rights":["topic:orders*:write"]}"#)
        .map_err(ApiError::InvalidRequest)?;
    let auth = state.auth.clone();
    let (token, info) = tokio::task::spawn_blocking(move || auth.create_token(&req.name, req.rights))
        .await
        .map_err(|_| ApiError::Topic(crate::topic::TopicError::ShuttingDown))??;
    Ok((StatusCode::CREATED, Json(CreatedToken { token, info })))
}

#[derive(Debug, Serialize)]
pub struct TokenList {
    tokens: Vec<TokenInfo>,
}

pub async fn list(State(state): State<AppState>, principal: Principal) -> Result<Json<TokenList>, ApiError> {
    principal.require_admin()?;
    Ok(Json(TokenList {
        tokens: state.auth.list_tokens(),
    }))
}

pub async fn revoke(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    principal.require_admin()?;
    let auth = state.auth.clone();
    tokio::task::spawn_blocking(move || auth.revoke_token(&id))
        .await
        .map_err(|_| ApiError::Topic(crate::topic::TopicError::ShuttingDown))??;
    Ok(StatusCode::NO_CONTENT)
}
