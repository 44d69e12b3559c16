//! `POST /v1/topics/{topic}/records`: validate every record, then append per partition and
//! answer once the topic's fsync policy holds.

use std::borrow::Cow;
use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use super::{ApiError, AppState};
use crate::log::NewRecord;
use crate::topic::{Topic, partitioner};

/// One record as a producer sends it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordIn<'a> {
    #[serde(borrow, default)]
    key: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    key_b64: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "present")]
    value: Option<&'a RawValue>,
    #[serde(borrow, default)]
    value_b64: Option<Cow<'a, str>>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    headers_b64: BTreeMap<String, String>,
    #[serde(default)]
    partition: Option<u32>,
    #[serde(default)]
    timestamp: Option<i64>,
}

/// `Some` even for JSON `null`, so `"value": null` stores the text `null` like any JSON value.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
struct Body<'a> {
    #[serde(borrow)]
    records: Vec<RecordIn<'a>>,
}

#[derive(Deserialize)]
struct RawBody<'a> {
    #[serde(borrow)]
    records: Vec<&'a RawValue>,
}

#[derive(Debug, Serialize)]
pub struct OffsetOut {
    pub partition: u32,
    pub offset: u64,
}

#[derive(Debug, Serialize)]
pub struct ProduceResponse {
    pub offsets: Vec<OffsetOut>,
    /// The topic's fsync policy, which held for these records when the answer was sent.
    pub fsync: &'static str,
    /// Whether the records were on disk (fsynced) when the answer was sent.
    pub durable: bool,
}

pub async fn produce(
    State(state): State<AppState>,
    Path(topic): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ProduceResponse>), ApiError> {
    let topic = state.topics.get(&topic)?;
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::BodyTooLarge {
            limit: state.config.limits.body_bytes_max,
        },
        _ => ApiError::InvalidRequest(format!("could not read the request body: {e}")),
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let parsed = match mime.as_str() {
        // curl -d sends application/x-www-form-urlencoded unless told otherwise: read it as JSON.
        "application/json" | "" | "application/x-www-form-urlencoded" => parse_json(&body)?,
        "application/x-ndjson" | "application/ndjson" | "application/jsonl" => parse_ndjson(&body)?,
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
    let mut bytes = 0u64;
    for (index, rec) in parsed.into_iter().enumerate() {
        let (pinned, record) = convert(index, rec)?;
        check_partition(index, pinned, &topic)?;
        let size = record.payload_bytes();
        if size > limit {
            return Err(ApiError::RecordTooLarge {
                index,
                bytes: size,
                limit,
            });
        }
        bytes += size as u64;
        let partition = match (pinned, &record.key) {
            (Some(p), _) => p,
            (None, Some(key)) => partitioner::for_key(key, topic.partitions.len() as u32),
            (None, None) => spread,
        };
        let group = groups.entry(partition).or_default();
        group.0.push(index);
        group.1.push(record);
    }
    let count: usize = groups.values().map(|g| g.0.len()).sum();
    let appends = groups.into_iter().map(|(p, (indexes, records))| {
        let partition = std::sync::Arc::clone(&topic.partitions[p as usize]);
        async move { partition.append(records).await.map(|base| (p, indexes, base)) }
    });
    let mut offsets: Vec<OffsetOut> = (0..count)
        .map(|_| OffsetOut {
            partition: 0,
            offset: 0,
        })
        .collect();
    for result in futures::future::join_all(appends).await {
        let (partition, indexes, base) = result?;
        for (i, index) in indexes.into_iter().enumerate() {
            offsets[index] = OffsetOut {
                partition,
                offset: base + i as u64,
            };
        }
    }
    topic.counters.records_in.inc_by(count as u64);
    topic.counters.bytes_in.inc_by(bytes);
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

fn parse_json(body: &[u8]) -> Result<Vec<RecordIn<'_>>, ApiError> {
    if let Ok(parsed) = serde_json::from_slice::<Body>(body) {
        return Ok(parsed.records);
    }
    // Slow path, only for bad input: find which record is wrong and say so.
    let raw: RawBody = serde_json::from_slice(body).map_err(|e| {
        ApiError::InvalidRequest(format!(
            "the body is not a JSON object {{\"records\":[...]}}: {e}; for one record per line use Content-Type application/x-ndjson"
        ))
    })?;
    let mut out = Vec::with_capacity(raw.records.len());
    for (index, r) in raw.records.into_iter().enumerate() {
        let mut de = serde_json::Deserializer::from_str(r.get());
        out.push(
            serde_path_to_error::deserialize(&mut de).map_err(|e| ApiError::InvalidRecord {
                index,
                reason: record_parse_reason(&e),
            })?,
        );
    }
    Ok(out)
}

fn parse_ndjson(body: &[u8]) -> Result<Vec<RecordIn<'_>>, ApiError> {
    let mut out = Vec::new();
    for line in body.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let index = out.len();
        let mut de = serde_json::Deserializer::from_slice(line);
        out.push(
            serde_path_to_error::deserialize(&mut de).map_err(|e| ApiError::InvalidRecord {
                index,
                reason: record_parse_reason(&e),
            })?,
        );
    }
    Ok(out)
}

fn record_parse_reason(e: &serde_path_to_error::Error<serde_json::Error>) -> String {
    format!("{e}; a record is {{\"key\":..., \"value\":..., \"headers\":{{...}}, \"partition\":N, \"timestamp\":MS}}")
}

fn decode_b64(index: usize, field: &str, text: &str) -> Result<Vec<u8>, ApiError> {
    B64.decode(text).map_err(|e| ApiError::InvalidRecord {
        index,
        reason: format!("{field} is not valid base64: {e}"),
    })
}

/// Parses one record object in the produce shape (as `weir processor test` reads them) into
/// what the log stores and the partition it asks for. The error says what is wrong.
pub fn parse_record(line: &[u8]) -> Result<(Option<u32>, NewRecord), String> {
    let mut de = serde_json::Deserializer::from_slice(line);
    let rec: RecordIn<'_> = serde_path_to_error::deserialize(&mut de).map_err(|e| record_parse_reason(&e))?;
    convert(0, rec).map_err(|e| match e {
        ApiError::InvalidRecord { reason, .. } => reason,
        other => other.to_string(),
    })
}

/// Turns a parsed record into what the log stores, checking everything the parser cannot.
fn convert(index: usize, r: RecordIn<'_>) -> Result<(Option<u32>, NewRecord), ApiError> {
    let bad = |reason: String| ApiError::InvalidRecord { index, reason };
    let key = match (r.key, r.key_b64) {
        (Some(_), Some(_)) => return Err(bad("give key or key_b64, not both".into())),
        (Some(k), None) => Some(k.into_owned().into_bytes()),
        (None, Some(k)) => Some(decode_b64(index, "key_b64", &k)?),
        (None, None) => None,
    };
    let value = match (r.value, r.value_b64) {
        (Some(_), Some(_)) => return Err(bad("give value or value_b64, not both".into())),
        (Some(raw), None) => json_value_bytes(raw),
        (None, Some(v)) => decode_b64(index, "value_b64", &v)?,
        (None, None) => {
            return Err(bad(
                "the record has no value; give value (JSON) or value_b64 (bytes)".into()
            ));
        }
    };
    if let Some(ts) = r.timestamp
        && ts < 0
    {
        return Err(bad(format!(
            "timestamp must be milliseconds since the Unix epoch (>= 0), got {ts}"
        )));
    }
    let mut headers: Vec<(String, Vec<u8>)> = r.headers.into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
    for (name, v) in r.headers_b64 {
        headers.push((name.clone(), decode_b64(index, &format!("headers_b64.{name}"), &v)?));
    }
    Ok((
        r.partition,
        NewRecord {
            key,
            value,
            headers,
            timestamp: r.timestamp,
        },
    ))
}

/// A JSON string is stored as its text; any other JSON value as its compact JSON text.
fn json_value_bytes(raw: &RawValue) -> Vec<u8> {
    let text = raw.get();
    if text.starts_with('"')
        && let Ok(s) = serde_json::from_str::<Cow<'_, str>>(text)
    {
        return s.into_owned().into_bytes();
    }
    if text.bytes().any(|b| matches!(b, b' ' | b'\n' | b'\t' | b'\r'))
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(text)
    {
        return v.to_string().into_bytes();
    }
    text.as_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_values_store_strings_as_text_and_the_rest_compact() {
        let raw = |s: &str| json_value_bytes(serde_json::from_str::<&RawValue>(s).unwrap());
        assert_eq!(raw(r#""héllo \"x\"""#), "héllo \"x\"".as_bytes());
        assert_eq!(raw(r#"{ "a" : [1, 2] }"#), br#"{"a":[1,2]}"#);
        assert_eq!(raw("42"), b"42");
        assert_eq!(raw("null"), b"null");
        assert_eq!(raw(r#"{"s":"a b"}"#), br#"{"s":"a b"}"#);
    }
}
