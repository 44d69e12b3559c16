//! The one error type of the HTTP API. Every failure becomes
//! `{"error":{"code":"snake_case","message":"..."}}` with a fitting status, in one match.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::auth::AuthError;
use crate::processor::ProcessorError;
use crate::table::TableError;
use crate::topic::TopicError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Topic(#[from] TopicError),
    #[error(transparent)]
    Processor(ProcessorError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(
        "Host '{host}' is not a name of this broker (http.hosts); a page that rebinds its DNS name to the broker is refused"
    )]
    HostNotAllowed { host: String },
    #[error("requests from the web page at {origin} may not change anything here (http.cors_origins)")]
    OriginNotAllowed { origin: String },
    #[error("record {index}: {reason}")]
    InvalidRecord { index: usize, reason: String },
    #[error("record {index} is {bytes} bytes (key, value and headers); the limit is {limit} (limits.record_bytes_max)")]
    RecordTooLarge { index: usize, bytes: usize, limit: usize },
    #[error("the request body is larger than the limit of {limit} bytes ({setting})")]
    BodyTooLarge { limit: usize, setting: &'static str },
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("no key {key} in store '{store}' of processor '{processor}'")]
    KeyNotFound {
        processor: String,
        store: String,
        key: String,
    },
    #[error("no row for key {key} in table '{topic}'")]
    RowNotFound { topic: String, key: String },
    #[error("invalid resume token: {0}")]
    InvalidResumeToken(String),
    #[error("no route for {method} {path}; see docs/api.md for the endpoints")]
    NoRoute { method: String, path: String },
    #[error("{path} does not take {method}; it takes {allowed}")]
    MethodNotAllowed {
        method: String,
        path: String,
        allowed: String,
    },
    #[error("{reason}")]
    Overloaded { reason: String, retry_after_s: u32 },
    /// An error the framework answered by itself, given the API's shape.
    #[error("{message}")]
    Framework { status: StatusCode, message: String },
    #[error("the request URI is {bytes} bytes; the limit is {limit}")]
    UriTooLong { bytes: usize, limit: usize },
    #[error("the request headers are {bytes} bytes; the limit is {limit}")]
    HeadersTooLarge { bytes: usize, limit: usize },
    #[error("the request body stopped arriving for {after_ms} ms (http.body_read_timeout_ms); send it without pauses")]
    RequestTimeout { after_ms: u64 },
    #[error(
        "the request has more than {limit} records, or more than {limit} headers in all (limits.records_per_request_max); split it into several requests"
    )]
    TooManyRecords { limit: usize },
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Topic(e) => topic_status(e),
            Self::Processor(e) => match e {
                ProcessorError::InvalidModule(_) => (StatusCode::BAD_REQUEST, "invalid_module"),
                ProcessorError::ModuleNotFound(_) => (StatusCode::NOT_FOUND, "module_not_found"),
                ProcessorError::InvalidName(_) => (StatusCode::BAD_REQUEST, "invalid_processor_name"),
                ProcessorError::InvalidSpec(_) => (StatusCode::BAD_REQUEST, "invalid_processor"),
                ProcessorError::NotFound(_) => (StatusCode::NOT_FOUND, "processor_not_found"),
                ProcessorError::StoreNotFound { .. } => (StatusCode::NOT_FOUND, "store_not_found"),
                ProcessorError::ModuleInUse { .. } => (StatusCode::CONFLICT, "module_in_use"),
                ProcessorError::QuotaExceeded { .. } => (StatusCode::INSUFFICIENT_STORAGE, "module_quota_exceeded"),
                ProcessorError::Topic(t) | ProcessorError::Table(TableError::Topic(t)) => topic_status(t),
                ProcessorError::Table(TableError::TooLarge { .. }) => {
                    (StatusCode::INSUFFICIENT_STORAGE, "table_too_large")
                }
                ProcessorError::Io { .. } | ProcessorError::Corrupt(_) => {
                    (StatusCode::INTERNAL_SERVER_ERROR, "storage_error")
                }
            },
            Self::Auth(e) => match e {
                AuthError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
                AuthError::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden"),
                AuthError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_token_request"),
                AuthError::TokenNotFound(_) => (StatusCode::NOT_FOUND, "token_not_found"),
                AuthError::Io { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "storage_error"),
            },
            Self::HostNotAllowed { .. } => (StatusCode::FORBIDDEN, "host_not_allowed"),
            Self::OriginNotAllowed { .. } => (StatusCode::FORBIDDEN, "origin_not_allowed"),
            Self::InvalidRecord { .. } => (StatusCode::BAD_REQUEST, "invalid_record"),
            Self::RecordTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "record_too_large"),
            Self::BodyTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            Self::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            Self::UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            Self::InvalidResumeToken(_) => (StatusCode::BAD_REQUEST, "invalid_resume_token"),
            Self::KeyNotFound { .. } | Self::RowNotFound { .. } => (StatusCode::NOT_FOUND, "key_not_found"),
            Self::NoRoute { .. } => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed { .. } => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::Overloaded { .. } => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            Self::Framework { status, .. } => (*status, "http_error"),
            Self::UriTooLong { .. } => (StatusCode::URI_TOO_LONG, "uri_too_long"),
            Self::HeadersTooLarge { .. } => (StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "headers_too_large"),
            Self::RequestTimeout { .. } => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            Self::TooManyRecords { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_many_records"),
        }
    }

    /// The message with its causes, so a storage error says which file and why.
    fn message(&self) -> String {
        let mut msg = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(s) = source {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            source = s.source();
        }
        msg
    }
}

fn topic_status(e: &TopicError) -> (StatusCode, &'static str) {
    match e {
        TopicError::InvalidName(_) => (StatusCode::BAD_REQUEST, "invalid_topic_name"),
        TopicError::InvalidConfig(_) => (StatusCode::BAD_REQUEST, "invalid_topic_config"),
        TopicError::Exists(_) => (StatusCode::CONFLICT, "topic_exists"),
        TopicError::Internal(_) => (StatusCode::FORBIDDEN, "internal_topic"),
        TopicError::NotFound(_) | TopicError::Deleted(_) => (StatusCode::NOT_FOUND, "topic_not_found"),
        TopicError::Busy { .. } => (StatusCode::CONFLICT, "topic_busy"),
        TopicError::DiskFull { .. } => (StatusCode::INSUFFICIENT_STORAGE, "insufficient_storage"),
        TopicError::PartitionNotFound { .. } => (StatusCode::NOT_FOUND, "partition_not_found"),
        TopicError::OffsetOutOfRange { .. } => (StatusCode::RANGE_NOT_SATISFIABLE, "offset_out_of_range"),
        TopicError::Log(e) if e.is_disk_full() => (StatusCode::INSUFFICIENT_STORAGE, "insufficient_storage"),
        TopicError::StorageFailed { .. } | TopicError::Log(_) => (StatusCode::INTERNAL_SERVER_ERROR, "storage_error"),
        TopicError::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
        TopicError::Fenced { .. } => (StatusCode::CONFLICT, "producer_fenced"),
        TopicError::Exhausted(_) => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = self.message();
        // A broker fault is an error; a full disk or an overload is the operator's to see
        // but says nothing is broken.
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(code, %message, "request failed");
        } else if status.is_server_error() {
            tracing::warn!(code, %message, "request refused");
        }
        let mut body = json!({ "error": { "code": code, "message": message } });
        if let Self::Topic(TopicError::OffsetOutOfRange {
            log_start_offset,
            high_watermark,
            ..
        }) = &self
        {
            body["error"]["log_start_offset"] = json!(log_start_offset);
            body["error"]["high_watermark"] = json!(high_watermark);
        }
        let mut response = (status, Json(body)).into_response();
        if let Self::Overloaded { retry_after_s, .. } = &self {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, (*retry_after_s).into());
        }
        if let Self::Auth(AuthError::Unauthenticated(_)) = &self {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"weir\""),
            );
        }
        if let Self::MethodNotAllowed { allowed, .. } = &self
            && let Ok(v) = axum::http::HeaderValue::from_str(allowed)
        {
            response.headers_mut().insert(axum::http::header::ALLOW, v);
        }
        response
    }
}
