//! `GET /v1/tables/{topic}` and `GET /v1/tables/{topic}/events`: a topic read as a table, the
//! latest value of each key (see [`crate::table`]). The first request materializes the table
//! from the topic; it then follows the topic for every reader and join.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use futures::Stream;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::sse::{Access, revoked_event};
use super::{ApiError, ApiPath, AppState};
use crate::auth::{Action, Principal, Resource};
use crate::table::{Change, Table};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TableQuery {
    /// A key, as text: the answer is its row, or 404 `key_not_found`. Without a key: the
    /// table's figures.
    key: Option<String>,
    /// A key, as base64 bytes.
    key_b64: Option<String>,
}

/// A row of a table.
#[derive(Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct TableRow {
    topic: String,
    partition: u32,
    /// Offset of the record that set it.
    offset: u64,
    /// Text, or `key_b64` when the bytes are not UTF-8; the same for the value.
    key: Option<String>,
    key_b64: Option<String>,
    value: Option<String>,
    value_b64: Option<String>,
}

/// What `GET /v1/tables/{topic}` answers: a row (with `key`), else the table's figures.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum TableAnswer {
    Row(TableRow),
    Figures(TableFigures),
}

/// A table's figures.
#[derive(Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct TableFigures {
    topic: String,
    keys: u64,
    bytes: u64,
    partitions: Vec<TablePartition>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct TablePartition {
    partition: u32,
    keys: u64,
    /// Bytes of keys and values held.
    bytes: u64,
    /// The offset the table has read the partition to.
    offset: u64,
}

fn put_bytes(out: &mut serde_json::Map<String, Value>, name: &str, bytes: Option<&[u8]>) {
    match bytes.map(std::str::from_utf8) {
        None => out.insert(name.to_owned(), Value::Null),
        Some(Ok(t)) => out.insert(name.to_owned(), json!(t)),
        Some(Err(_)) => out.insert(format!("{name}_b64"), json!(B64.encode(bytes.unwrap_or_default()))),
    };
}

fn change_json(topic: &str, c: &Change) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("topic".into(), json!(topic));
    m.insert("partition".into(), json!(c.partition));
    m.insert("offset".into(), json!(c.offset));
    put_bytes(&mut m, "key", Some(&c.key));
    put_bytes(&mut m, "value", c.value.as_deref());
    Value::Object(m)
}

fn key_arg(text: Option<String>, b64: Option<String>) -> Result<Option<Vec<u8>>, ApiError> {
    match (text, b64) {
        (Some(_), Some(_)) => Err(ApiError::InvalidRequest("give key or key_b64, not both".into())),
        (Some(t), None) => Ok(Some(t.into_bytes())),
        (None, Some(b)) => B64
            .decode(b)
            .map(Some)
            .map_err(|e| ApiError::InvalidRequest(format!("key_b64 is not valid base64: {e}"))),
        (None, None) => Ok(None),
    }
}

/// The table of `topic`, materialized.
async fn open(state: &AppState, topic: &str) -> Result<Arc<Table>, ApiError> {
    Ok(state
        .processors
        .tables()
        .open(topic)
        .await
        .map_err(crate::processor::ProcessorError::from)?)
}

/// Reads a table (needs `topic:NAME:read`): the row of `?key=` (the latest value of that key
/// in the topic), or without a key the table's figures.
#[utoipa::path(get, path = "/v1/tables/{topic}", tag = "tables",
    params(("topic" = String, Path), TableQuery),
    responses((status = 200, description = "The row (with `key`), else the table's figures", body = TableAnswer),
        super::openapi::TableErrors))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(topic): ApiPath<String>,
    query: Result<Query<TableQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Resource::Topic, &topic, Action::Read)?;
    let Query(q) = query.map_err(|e| ApiError::InvalidRequest(e.body_text()))?;
    let key = key_arg(q.key, q.key_b64)?;
    let table = open(&state, &topic).await?;
    let Some(key) = key else {
        let parts = table.figures();
        return Ok(Json(json!({
            "topic": topic,
            "keys": parts.iter().map(|p| p.keys).sum::<u64>(),
            "bytes": parts.iter().map(|p| p.bytes).sum::<u64>(),
            "partitions": parts.iter().map(|p| json!({"partition": p.partition, "keys": p.keys, "bytes": p.bytes, "offset": p.offset})).collect::<Vec<_>>(),
        })));
    };
    match table.get(&key) {
        Some((partition, row)) => Ok(Json(change_json(
            &topic,
            &Change {
                partition,
                offset: row.offset,
                key: key.into(),
                value: Some(row.value),
            },
        ))),
        None => Err(ApiError::RowNotFound {
            topic,
            key: String::from_utf8(key.clone()).unwrap_or_else(|_| B64.encode(&key)),
        }),
    }
}

/// One event of a table's stream: `row` (its data a row, as `GET /v1/tables/{topic}?key=`
/// answers it; `"value": null` for a deleted key), `ready` (every row sent), `reset` (the
/// rows follow again) or `error` (the stream ends).
#[derive(Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct TableEvent {
    event: String,
    /// JSON text.
    data: String,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TableEventsQuery {
    /// A ticket from `POST /v1/tickets` (checked by the authentication layer).
    #[allow(dead_code)]
    ticket: Option<String>,
}

/// Follows a table as Server-Sent Events (needs `topic:NAME:read`, or a ticket): a `row`
/// event for every row it holds, a `ready` event, then a `row` event for each change (a
/// deleted key has `"value": null`). A reader too slow for the changes gets `reset` and the
/// rows again. No row is missed or repeated between the rows and the changes.
#[utoipa::path(get, path = "/v1/tables/{topic}/events", tag = "tables",
    params(("topic" = String, Path), TableEventsQuery),
    responses((status = 200, description = "An event stream", content_type = "text/event-stream", body = TableEvent),
        super::openapi::TableErrors))]
pub async fn events(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(topic): ApiPath<String>,
    query: Result<Query<TableEventsQuery>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    principal.require(Resource::Topic, &topic, Action::Read)?;
    query.map_err(|e| ApiError::InvalidRequest(e.body_text()))?;
    let table = open(&state, &topic).await?;
    let (rows, changes) = table.snapshot_and_follow();
    let follower = Follower {
        topic,
        table,
        rows: rows.into(),
        changes,
        access: Access::new(&state.auth, principal),
        ready_due: true,
        ended: false,
    };
    let stream = futures::stream::unfold(
        follower,
        |mut f| async move { f.next_event().await.map(|e| (Ok(e), f)) },
    );
    let heartbeat = Duration::from_millis(state.config.sse_heartbeat_ms);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(heartbeat).text("heartbeat")))
}

struct Follower {
    topic: String,
    table: Arc<Table>,
    /// Rows of the snapshot still to send; then `ready`.
    rows: VecDeque<Change>,
    changes: broadcast::Receiver<Arc<Change>>,
    access: Access,
    /// The `ready` event is to be sent once the rows are out.
    ready_due: bool,
    ended: bool,
}

impl Follower {
    fn row(&self, c: &Change) -> Event {
        Event::default()
            .event("row")
            .data(change_json(&self.topic, c).to_string())
    }

    async fn next_event(&mut self) -> Option<Event> {
        if self.ended {
            return None;
        }
        if !self.access.valid() {
            self.ended = true;
            return Some(revoked_event());
        }
        if let Some(c) = self.rows.pop_front() {
            return Some(self.row(&c));
        }
        if self.ready_due {
            self.ready_due = false;
            self.rows = VecDeque::new();
            return Some(Event::default().event("ready").data("{}"));
        }
        loop {
            tokio::select! {
                r = self.changes.recv() => match r {
                    Ok(c) => return Some(self.row(&c)),
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let (rows, changes) = self.table.snapshot_and_follow();
                        self.rows = rows.into();
                        self.changes = changes;
                        self.ready_due = true;
                        return Some(Event::default().event("reset").data("{\"reason\":\"the reader fell behind the changes; the rows follow again\"}"));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                () = self.access.changed() => {
                    if !self.access.valid() {
                        self.ended = true;
                        return Some(revoked_event());
                    }
                }
                () = self.table.topic.stop.cancelled() => {
                    self.ended = true;
                    return Some(Event::default().event("error").data("{\"code\":\"topic_not_found\",\"message\":\"the table's topic was deleted\"}"));
                }
            }
        }
    }
}
