//! `POST /v1/topics/{topic}/records`: validate every record, then append per partition and
//! answer once the topic's fsync policy holds.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Serialize;

use super::guard::{BodyKind, read_body};
use super::records_in::{Parsed, parse_json, parse_ndjson};
use super::{ApiError, ApiPath, AppState};
use crate::auth::{Action, Principal, Resource};
use crate::log::NewRecord;
use crate::topic::{AppendMode, Topic};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OffsetOut {
    pub partition: u32,
    pub offset: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProduceResponse {
    pub offsets: Vec<OffsetOut>,
    /// The topic's fsync policy, which held for these records when the answer was sent.
    pub fsync: &'static str,
    /// Whether the records were on disk (fsynced) when the answer was sent.
    pub durable: bool,
}

/// Appends records (needs `topic:NAME:write`): a JSON object `{"records":[...]}`, or one
/// record per line as `application/x-ndjson`. Answered once the topic's fsync policy holds.
#[utoipa::path(post, path = "/v1/topics/{topic}/records", tag = "records", params(("topic" = String, Path)),
    request_body(content(
        (super::records_in::ProduceBody = "application/json"),
        (super::records_in::RecordDoc = "application/x-ndjson"))),
    responses((status = 200, description = "Appended", body = ProduceResponse), super::openapi::TopicErrors))]
pub async fn produce(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(topic): ApiPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<ProduceResponse>), ApiError> {
    principal.require(Resource::Topic, &topic, Action::Write)?;
    if crate::topic::spec::is_internal(&topic) {
        return Err(crate::topic::TopicError::Internal(topic).into());
    }
    let topic = state.topics.get(&topic)?;
    let read = read_body(&state, body, BodyKind::Api).await?;
    let body = &read.bytes;
    let max = state.config.limits.records_per_request_max;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let parsed = match mime.as_str() {
        "application/json" | "" => parse_json(body, max)?,
        "application/x-ndjson" | "application/ndjson" | "application/jsonl" => parse_ndjson(body, max)?,
        other => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "Content-Type {other} is not supported; send application/json ({{\"records\":[...]}}) or application/x-ndjson (one record per line)"
            )));
        }
    };
    if parsed.is_empty() {
        return Err(ApiError::InvalidRequest(
            "the request has no records; send at least one".into(),
        ));
    }
    let limit = state.config.limits.record_bytes_max;
    let mut groups: BTreeMap<u32, (Vec<usize>, Vec<NewRecord>)> = BTreeMap::new();
    let spread = topic.next_spread_partition();
    for (
        index,
        Parsed {
            partition: pinned,
            record,
        },
    ) in parsed.into_iter().enumerate()
    {
        check_partition(index, pinned, &topic)?;
        let size = record.payload_bytes();
        if size > limit {
            return Err(ApiError::RecordTooLarge {
                index,
                bytes: size,
                limit,
            });
        }
        let partition = topic.route(pinned, record.key.as_deref(), spread);
        let group = groups.entry(partition).or_default();
        group.0.push(index);
        group.1.push(record);
    }
    let count: usize = groups.values().map(|g| g.0.len()).sum();
    let mut indexes: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    let mut batches = Vec::with_capacity(groups.len());
    for (p, (idx, records)) in groups {
        indexes.insert(p, idx);
        batches.push((p, records));
    }
    let placed = topic.append_to(batches, AppendMode::Plain).await?;
    let mut offsets: Vec<OffsetOut> = (0..count)
        .map(|_| OffsetOut {
            partition: 0,
            offset: 0,
        })
        .collect();
    for p in placed {
        for (i, &index) in indexes[&p.partition].iter().enumerate() {
            offsets[index] = OffsetOut {
                partition: p.partition,
                offset: p.base_offset + i as u64,
            };
        }
    }
    let fsync = topic.config.fsync;
    Ok((
        StatusCode::OK,
        Json(ProduceResponse {
            offsets,
            fsync: fsync.as_str(),
            durable: fsync == crate::topic::FsyncPolicy::Always,
        }),
    ))
}

fn check_partition(index: usize, partition: Option<u32>, topic: &Topic) -> Result<(), ApiError> {
    match partition {
        Some(p) if p as usize >= topic.partitions.len() => Err(ApiError::InvalidRecord {
            index,
            reason: format!(
                "partition {p} does not exist; topic '{}' has partitions 0 to {}",
                topic.name,
                topic.partitions.len() - 1
            ),
        }),
        _ => Ok(()),
    }
}
