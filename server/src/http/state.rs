//! `GET /v1/processors/{name}/state/{store}`: a processor's keyed state over HTTP, one key or
//! a range in key order with paging, so a dashboard reads "orders per customer" from the
//! processor itself (Kafka Streams' interactive queries, which it leaves to the user to serve).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{ApiError, ApiPath, AppState};
use crate::auth::{Action, Principal, Resource};
use crate::processor::query::Entry;

/// Entries a scan returns when it names no `limit`, and at most.
const SCAN_DEFAULT: usize = 100;
const SCAN_MAX: usize = 1000;
/// Most bytes of keys and values in one page (at least one entry): values may be up to a MiB.
const PAGE_BYTES_MAX: usize = 4 * 1024 * 1024;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StateQuery {
    /// One key, as text (or `key_b64`): the answer is that entry, or 404 `key_not_found`.
    key: Option<String>,
    /// One key, as base64 bytes.
    key_b64: Option<String>,
    /// Without a key: the entries whose key starts with this text (or `prefix_b64`); none
    /// means every entry.
    prefix: Option<String>,
    prefix_b64: Option<String>,
    /// Paging: only keys after this one (the previous page's `next_after`), as text or base64.
    after: Option<String>,
    after_b64: Option<String>,
    /// Most entries of a page (default 100, at most 1000).
    limit: Option<usize>,
}

/// One entry of a store.
#[derive(Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct StateEntry {
    /// The input partition whose task holds it.
    partition: u32,
    /// Text, or `key_b64` when the bytes are not UTF-8.
    key: Option<String>,
    key_b64: Option<String>,
    value: Option<String>,
    value_b64: Option<String>,
}

/// A page of a store.
#[derive(Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct StatePage {
    entries: Vec<StateEntry>,
    /// Pass as `after` (or `after_b64`) for the next page; null on the last one.
    next_after: Option<String>,
    next_after_b64: Option<String>,
}

fn bytes_arg(name: &str, text: Option<String>, b64: Option<String>) -> Result<Option<Vec<u8>>, ApiError> {
    match (text, b64) {
        (Some(_), Some(_)) => Err(ApiError::InvalidRequest(format!("give {name} or {name}_b64, not both"))),
        (Some(t), None) => Ok(Some(t.into_bytes())),
        (None, Some(b)) => B64
            .decode(b)
            .map(Some)
            .map_err(|e| ApiError::InvalidRequest(format!("{name}_b64 is not valid base64: {e}"))),
        (None, None) => Ok(None),
    }
}

fn put_bytes(out: &mut serde_json::Map<String, Value>, name: &str, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(t) => out.insert(name.to_owned(), json!(t)),
        Err(_) => out.insert(format!("{name}_b64"), json!(B64.encode(bytes))),
    };
}

fn entry_json(e: &Entry) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("partition".into(), json!(e.partition));
    put_bytes(&mut m, "key", &e.key);
    put_bytes(&mut m, "value", &e.value);
    Value::Object(m)
}

/// The first key after every key that starts with `prefix` (none: no such key).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Reads a processor's state (needs `processor:NAME:read`): one key (`?key=`), or a page of
/// entries in key order (`?prefix=`, `?after=`, `?limit=`). The state is read live: it may
/// include the writes of a batch whose commit is in progress.
#[utoipa::path(get, path = "/v1/processors/{name}/state/{store}", tag = "processors",
    params(("name" = String, Path), ("store" = String, Path), StateQuery),
    responses((status = 200, description = "One entry (with `key`), else a page of entries", body = StatePage),
        super::openapi::ProcessorErrors))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((name, store)): ApiPath<(String, String)>,
    query: Result<Query<StateQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Resource::Processor, &name, Action::Read)?;
    let Query(q) = query.map_err(|e| ApiError::InvalidRequest(e.body_text()))?;
    let processors = &state.processors;
    if let Some(key) = bytes_arg("key", q.key, q.key_b64)? {
        return match processors.state_get(&name, &store, &key)? {
            Some(e) => Ok(Json(entry_json(&e))),
            None => Err(ApiError::KeyNotFound {
                processor: name,
                store,
                key: String::from_utf8(key.clone()).unwrap_or_else(|_| B64.encode(&key)),
            }),
        };
    }
    let limit = q.limit.unwrap_or(SCAN_DEFAULT);
    if limit == 0 || limit > SCAN_MAX {
        return Err(ApiError::InvalidRequest(format!("limit must be 1 to {SCAN_MAX}")));
    }
    let prefix = bytes_arg("prefix", q.prefix, q.prefix_b64)?.unwrap_or_default();
    let mut start = prefix.clone();
    if let Some(mut after) = bytes_arg("after", q.after, q.after_b64)? {
        // The smallest key past `after`.
        after.push(0);
        start = start.max(after);
    }
    let end = prefix_end(&prefix);
    let (entries, more) = processors.state_scan(&name, &store, &start, end.as_deref(), limit, PAGE_BYTES_MAX)?;
    let mut page = serde_json::Map::new();
    page.insert("entries".into(), Value::Array(entries.iter().map(entry_json).collect()));
    match entries.last().filter(|_| more) {
        Some(last) => put_bytes(&mut page, "next_after", &last.key),
        None => {
            page.insert("next_after".into(), Value::Null);
        }
    }
    Ok(Json(Value::Object(page)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_ends_at_the_next_key_that_does_not_start_with_it() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }
}
