//! `/v1/tokens`: create, list and revoke API tokens (admin only). A token's secret is in the
//! create answer and nowhere else.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiPath, AppState};
use crate::auth::{Principal, Right, TokenInfo};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    name: String,
    /// `RESOURCE:PATTERN:ACTION` or `admin` (docs/security.md).
    #[schema(value_type = Vec<String>)]
    rights: Vec<Right>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    /// The secret: shown once, stored only as a hash.
    token: String,
    #[serde(flatten)]
    info: TokenInfo,
}

/// Creates a token (admin); the answer holds its secret, which is stored only as a hash.
#[utoipa::path(post, path = "/v1/tokens", tag = "access", request_body = CreateToken,
    responses((status = 201, description = "Created", body = CreatedToken), super::openapi::CommonErrors))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    body: Body,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    principal.require_admin()?;
    let body = super::guard::read_body(&state, body, super::guard::BodyKind::Api).await?;
    let req: CreateToken = super::extract::json_body(&body.bytes, r#"{"name":"ci","rights":["topic:orders*:write"]}"#)
        .map_err(|e| ApiError::Auth(crate::auth::AuthError::Invalid(e)))?;
    let auth = state.auth.clone();
    let (token, info) = tokio::task::spawn_blocking(move || auth.create_token(&req.name, req.rights))
        .await
        .map_err(|_| ApiError::Topic(crate::topic::TopicError::ShuttingDown))??;
    Ok((StatusCode::CREATED, Json(CreatedToken { token, info })))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenList {
    tokens: Vec<TokenInfo>,
}

/// The tokens, without secrets (admin).
#[utoipa::path(get, path = "/v1/tokens", tag = "access",
    responses((status = 200, description = "Tokens", body = TokenList), super::openapi::CommonErrors))]
pub async fn list(State(state): State<AppState>, principal: Principal) -> Result<Json<TokenList>, ApiError> {
    principal.require_admin()?;
    Ok(Json(TokenList {
        tokens: state.auth.list_tokens(),
    }))
}

/// Revokes a token (admin): it and the tickets it issued stop working at once.
#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "access", params(("id" = String, Path)),
    responses((status = 204, description = "Revoked"), (status = 404, description = "No such token", body = super::openapi::ErrorBody),
        super::openapi::CommonErrors))]
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
