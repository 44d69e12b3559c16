//! Extractors whose failures are [`ApiError`]s (axum's own answer in plain text), and the one
//! JSON body parser of the admin endpoints.

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::ApiError;

/// `Path<T>` that answers a bad path parameter (not a number, not UTF-8) with the API's JSON.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(Self(v)),
            Err(e) => Err(ApiError::InvalidRequest(path_reason(&e))),
        }
    }
}

fn path_reason(e: &PathRejection) -> String {
    format!("{} in the path {}", e.body_text(), "(see docs/api.md)")
}

/// Parses a whole JSON body into `T`: the error names the field that is wrong, and anything
/// after the JSON value is refused. `example` shows the expected shape.
pub fn json_body<T: DeserializeOwned>(body: &[u8], example: &str) -> Result<T, String> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T =
        serde_path_to_error::deserialize(&mut de).map_err(|e| format!("{e}; expected a JSON object like {example}"))?;
    de.end()
        .map_err(|e| format!("more follows the JSON object ({e}); send one object"))?;
    Ok(value)
}
