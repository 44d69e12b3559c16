//! Errors the framework answers by itself (405 from the router, say) come without a body or
//! as plain text: this layer gives them the API's JSON shape, keeping their status and headers
//! (`Allow` on a 405).

use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;

pub async fn to_json(req: Request, next: Next) -> Response {
    let (method, path) = (req.method().to_string(), req.uri().path().to_owned());
    let response = next.run(req).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let error = match status {
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed {
            allowed: super::openapi::methods_of(&path).join(", "),
            method,
            path,
        },
        other => ApiError::Framework {
            status: other,
            message: format!(
                "{method} {path} failed: {}",
                other.canonical_reason().unwrap_or("error")
            ),
        },
    };
    error.into_response()
}
