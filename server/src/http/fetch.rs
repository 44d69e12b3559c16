//! `GET /v1/topics/{topic}/partitions/{p}/records`: read from an offset, optionally waiting
//! (long-poll) until records arrive.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::records::{Encoding, write_records};
use super::{ApiError, ApiPath, AppState};
use crate::auth::{Action, Principal, Resource};
use crate::topic::{Isolation, Partition, Topic};

/// Records a fetch returns when it names no `max_records`.
const FETCH_RECORDS_DEFAULT: usize = 1000;
/// Bytes of batches a fetch reads when it names no `max_bytes`.
const FETCH_BYTES_DEFAULT: usize = 1024 * 1024;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FetchQuery {
    /// `earliest` (default), `latest`, or an offset.
    offset: Option<String>,
    /// Most records to return (default 1000).
    max_records: Option<usize>,
    /// About how many bytes of log to read (default 1 MiB).
    max_bytes: Option<usize>,
    /// Wait up to this long for records when there are none (long-poll).
    wait_ms: Option<u64>,
    /// `auto` (text when UTF-8, else `*_b64`) or `base64`.
    encoding: Option<String>,
    /// `read_committed` (default: records of committed transactions and records outside
    /// transactions) or `read_uncommitted` (also open and aborted transactions).
    isolation: Option<String>,
}

/// One stored record as fetch answers and SSE events carry it.
#[derive(utoipa::ToSchema)]
#[schema(as = StoredRecord)]
#[allow(dead_code)]
pub struct RecordOutDoc {
    partition: u32,
    offset: u64,
    timestamp: i64,
    /// Text, or `null` without a key (bytes that are not UTF-8 come as `key_b64`).
    key: Option<String>,
    key_b64: Option<String>,
    value: Option<String>,
    value_b64: Option<String>,
    headers: std::collections::BTreeMap<String, String>,
    headers_b64: Option<std::collections::BTreeMap<String, String>>,
}

/// A fetch answer.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct FetchAnswer {
    records: Vec<RecordOutDoc>,
    /// The offset to fetch next.
    next_offset: u64,
    high_watermark: u64,
    /// One past the last record of a committed transaction (or outside one) that may be read.
    last_stable_offset: u64,
    log_start_offset: u64,
}

/// Parses `earliest`, `latest` or a number into an offset of `partition`; `latest` is the end
/// a reader with `isolation` reads to.
pub fn resolve_start(spec: &str, partition: &Partition, isolation: Isolation) -> Result<u64, ApiError> {
    let (start, _) = partition.bounds();
    match spec {
        "earliest" => Ok(start),
        "latest" => Ok(partition.end(isolation)),
        n => n.parse().map_err(|_| {
            ApiError::InvalidRequest(format!(
                "offset must be earliest, latest or a non-negative integer, got '{n}'"
            ))
        }),
    }
}

pub fn parse_isolation(value: Option<&str>) -> Result<Isolation, ApiError> {
    match value {
        None | Some("read_committed") => Ok(Isolation::ReadCommitted),
        Some("read_uncommitted") => Ok(Isolation::ReadUncommitted),
        Some(other) => Err(ApiError::InvalidRequest(format!(
            "isolation must be read_committed or read_uncommitted, got '{other}'"
        ))),
    }
}

pub fn parse_encoding(value: Option<&str>) -> Result<Encoding, ApiError> {
    match value {
        None | Some("auto") => Ok(Encoding::Auto),
        Some("base64") => Ok(Encoding::Base64),
        Some(other) => Err(ApiError::InvalidRequest(format!(
            "encoding must be auto or base64, got '{other}'"
        ))),
    }
}

/// Reads a partition from an offset (needs `topic:NAME:read`), waiting up to `wait_ms` for
/// records when there are none.
#[utoipa::path(get, path = "/v1/topics/{topic}/partitions/{partition}/records", tag = "records",
    params(("topic" = String, Path), ("partition" = u32, Path), FetchQuery),
    responses((status = 200, description = "Records", body = FetchAnswer),
        (status = 416, description = "The offset is below the log start or past the end", body = super::openapi::ErrorBody),
        super::openapi::TopicErrors))]
pub async fn fetch(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((topic, partition)): ApiPath<(String, u32)>,
    query: Result<Query<FetchQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    principal.require(Resource::Topic, &topic, Action::Read)?;
    let Query(q) = query.map_err(|e| ApiError::InvalidRequest(e.body_text()))?;
    let topic = state.topics.get(&topic)?;
    let partition = Arc::clone(topic.partition(partition)?);
    let limits = &state.config.limits;
    let max_records = q.max_records.unwrap_or(FETCH_RECORDS_DEFAULT);
    let max_bytes = q.max_bytes.unwrap_or(FETCH_BYTES_DEFAULT);
    let wait = q.wait_ms.unwrap_or(0);
    if max_records == 0 || max_records > limits.fetch_records_max {
        return Err(ApiError::InvalidRequest(format!(
            "max_records must be 1 to {}",
            limits.fetch_records_max
        )));
    }
    if max_bytes == 0 || max_bytes > limits.fetch_bytes_max {
        return Err(ApiError::InvalidRequest(format!(
            "max_bytes must be 1 to {}",
            limits.fetch_bytes_max
        )));
    }
    if wait > limits.wait_ms_max {
        return Err(ApiError::InvalidRequest(format!(
            "wait_ms must be at most {}",
            limits.wait_ms_max
        )));
    }
    let encoding = parse_encoding(q.encoding.as_deref())?;
    let isolation = parse_isolation(q.isolation.as_deref())?;
    let offset = resolve_start(q.offset.as_deref().unwrap_or("earliest"), &partition, isolation)?;
    let read = Read {
        max_records,
        max_bytes,
        encoding,
        isolation,
    };

    let mut hw_changes = partition.watch();
    hw_changes.borrow_and_update();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(wait);
    let mut access = (wait > 0).then(|| super::sse::Access::new(&state.auth, principal));
    loop {
        let (body, count, next) = read_range(&topic, &partition, offset, &read).await?;
        // Records, or markers walked past (the answer's `next_offset` moved): answer now.
        if count > 0 || next > offset || tokio::time::Instant::now() >= deadline {
            return Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response());
        }
        let credentials = async {
            match access.as_mut() {
                Some(a) => a.changed().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = hw_changes.changed() => { if changed.is_err() { break } }
            () = tokio::time::sleep_until(deadline) => {}
            () = topic.stop.cancelled() => {
                if state.topics.get(&topic.name).map(|t| t.id != topic.id).unwrap_or(true) {
                    return Err(crate::topic::TopicError::Deleted(topic.name.clone()).into());
                }
                break;
            }
            () = credentials => {}
        }
        if access.as_ref().is_some_and(|a| !a.valid()) {
            return Err(crate::auth::AuthError::Unauthenticated(
                "the token was revoked while the request waited".into(),
            )
            .into());
        }
    }
    let (body, _, _) = read_range(&topic, &partition, offset, &read).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// What one fetch reads.
struct Read {
    max_records: usize,
    max_bytes: usize,
    encoding: Encoding,
    isolation: Isolation,
}

/// Reads up to `max_records` / about `max_bytes` from `offset` and encodes the fetch answer.
async fn read_range(
    topic: &Topic,
    partition: &Arc<Partition>,
    offset: u64,
    read: &Read,
) -> Result<(Vec<u8>, usize, u64), ApiError> {
    let (max_records, max_bytes) = (read.max_records, read.max_bytes);
    let mut out = Vec::with_capacity(max_bytes.min(1 << 20) + 256);
    out.extend_from_slice(b"{\"records\":[");
    let (mut next, mut count, mut bytes_read, mut payload) = (offset, 0usize, 0usize, 0u64);
    loop {
        let chunk = partition.read(next, max_bytes - bytes_read, read.isolation).await?;
        if chunk.bytes.is_empty() {
            break;
        }
        bytes_read += chunk.bytes.len();
        // The answer stays near `max_bytes` too, however big a stored batch or its escaping.
        let written = out.len();
        let room = max_bytes.saturating_sub(written).max(1);
        let (n, b, after) = write_records(&mut out, partition.id, &chunk, max_records - count, room, read.encoding);
        count += n;
        payload += b;
        // Markers and aborted batches move `next` on without a record.
        let moved = after > next;
        next = after;
        if !moved
            || chunk.reached_limit(next)
            || count >= max_records
            || bytes_read >= max_bytes
            || out.len() >= max_bytes
        {
            break;
        }
    }
    let s = partition.stats();
    out.extend_from_slice(
        format!(
            "],\"next_offset\":{next},\"high_watermark\":{},\"last_stable_offset\":{},\"log_start_offset\":{}}}",
            s.high_watermark, s.last_stable_offset, s.log_start_offset
        )
        .as_bytes(),
    );
    topic.counters.records_out.inc_by(count as u64);
    topic.counters.bytes_out.inc_by(payload);
    Ok((out, count, next))
}
