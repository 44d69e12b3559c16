//! `GET /v1/topics/{topic}/events`: records as Server-Sent Events.
//!
//! A subscriber is a set of cursors (next offset per partition) read at the subscriber's pace:
//! the stream produces the next event only when hyper asks for it, i.e. when the previous one has
//! gone out on the socket, so a slow subscriber costs a few integers, never a growing queue.
//! Each event's `id:` is a resume token listing every cursor after that event
//! (`PARTITION:NEXT_OFFSET` pairs joined by `,`); reconnecting with it as `Last-Event-ID`
//! continues exactly after the last delivered record, without gap or duplicate.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;
use tokio::sync::watch;

use super::fetch::resolve_start;
use super::records::{Encoding, write_records};
use super::{ApiError, ApiPath, AppState};
use crate::auth::{Action, Principal, Resource};
use crate::metrics::Metrics;
use crate::topic::{Partition, Topic, TopicError};

/// Records one event carries at most: big enough to amortize framing, small enough for a browser
/// to parse without a pause.
const EVENT_RECORDS_MAX: usize = 1000;
/// Batch bytes read for one event.
const EVENT_BYTES_MAX: usize = 256 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    from: Option<String>,
    partition: Option<u32>,
    last_event_id: Option<String>,
    encoding: Option<String>,
    /// A ticket from `POST /v1/tickets` (checked by the authentication layer).
    #[allow(dead_code)]
    ticket: Option<String>,
}

/// Parses a resume token into `partition -> next offset`.
pub fn parse_token(token: &str) -> Result<BTreeMap<u32, u64>, ApiError> {
    let mut out = BTreeMap::new();
    for pair in token.split(',').filter(|s| !s.is_empty()) {
        let parsed = pair
            .split_once(':')
            .and_then(|(p, o)| Some((p.parse().ok()?, o.parse().ok()?)));
        let Some((p, o)) = parsed else {
            return Err(ApiError::InvalidResumeToken(format!(
                "'{token}' is not a token this server issued; reconnect without Last-Event-ID and choose `from`"
            )));
        };
        out.insert(p, o);
    }
    Ok(out)
}

fn token(cursors: &[(Arc<Partition>, u64)]) -> String {
    let mut s = String::with_capacity(cursors.len() * 12);
    for (i, (p, next)) in cursors.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!("{}:{next}", p.id));
    }
    s
}

pub async fn events(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(topic): ApiPath<String>,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    principal.require(Resource::Topic, &topic, Action::Read)?;
    let Query(q) = query.map_err(|e| ApiError::InvalidRequest(e.body_text()))?;
    let topic = state.topics.get(&topic)?;
    let encoding = super::fetch::parse_encoding(q.encoding.as_deref())?;
    let partitions: Vec<Arc<Partition>> = match q.partition {
        Some(p) => vec![Arc::clone(topic.partition(p)?)],
        None => topic.partitions.clone(),
    };
    let header_token = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let resume = match header_token.or(q.last_event_id) {
        Some(t) => parse_token(&t)?,
        None => BTreeMap::new(),
    };
    let from = q.from.as_deref().unwrap_or("latest");
    let mut cursors = Vec::with_capacity(partitions.len());
    for p in partitions {
        let next = match resume.get(&p.id) {
            Some(&o) => o,
            None => resolve_start(from, &p).map_err(|_| {
                ApiError::InvalidRequest(format!("from must be earliest, latest or an offset, got '{from}'"))
            })?,
        };
        cursors.push((p, next));
    }
    let changes = match q.partition {
        Some(_) => cursors[0].0.watch(),
        None => topic.watch(),
    };
    state.metrics.sse_subscribers.inc();
    let subscriber = Subscriber {
        topic,
        cursors,
        changes,
        pending: VecDeque::new(),
        turn: 0,
        encoding,
        _guard: SubscriberGuard(Arc::clone(&state.metrics)),
    };
    let stream = futures::stream::unfold(
        subscriber,
        |mut s| async move { s.next_event().await.map(|e| (Ok(e), s)) },
    );
    let heartbeat = Duration::from_millis(state.config.sse_heartbeat_ms);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(heartbeat).text("heartbeat")))
}

struct SubscriberGuard(Arc<Metrics>);

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        self.0.sse_subscribers.dec();
    }
}

struct Subscriber {
    topic: Arc<Topic>,
    cursors: Vec<(Arc<Partition>, u64)>,
    changes: watch::Receiver<u64>,
    pending: VecDeque<Event>,
    /// Partition to serve first next round, so a busy partition cannot starve the others.
    turn: usize,
    encoding: Encoding,
    _guard: SubscriberGuard,
}

impl Subscriber {
    /// The next event, waiting for new records if there are none; `None` ends the stream
    /// (topic deleted or broker stopping).
    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            // Mark the current version seen *before* looking, so no append slips between.
            self.changes.borrow_and_update();
            let n = self.cursors.len();
            for k in 0..n {
                let i = (self.turn + k) % n;
                if let Some(e) = self.read_one(i).await {
                    self.pending.push_back(e);
                }
            }
            self.turn = (self.turn + 1) % n.max(1);
            if !self.pending.is_empty() {
                continue;
            }
            tokio::select! {
                changed = self.changes.changed() => { changed.ok()?; }
                () = self.topic.stop.cancelled() => return None,
            }
        }
    }

    /// One event of records from cursor `i`, or a `gap` event if its offset is gone.
    async fn read_one(&mut self, i: usize) -> Option<Event> {
        let (partition, next) = (Arc::clone(&self.cursors[i].0), self.cursors[i].1);
        if next == partition.high_watermark() {
            return None;
        }
        let batches = match partition.read(next, EVENT_BYTES_MAX).await {
            Ok(b) => b,
            Err(TopicError::OffsetOutOfRange {
                log_start_offset,
                high_watermark,
                ..
            }) => {
                let to = if next < log_start_offset {
                    log_start_offset
                } else {
                    high_watermark
                };
                self.cursors[i].1 = to;
                let data = format!(
                    "{{\"partition\":{},\"from\":{next},\"to\":{to},\"message\":\"offset {next} is no longer (or not yet) in the log; continuing at {to}\"}}",
                    partition.id
                );
                return Some(Event::default().event("gap").id(token(&self.cursors)).data(data));
            }
            Err(e) => {
                tracing::error!(topic = %self.topic.name, partition = partition.id, error = %e, "SSE read failed");
                return None;
            }
        };
        let mut out = Vec::with_capacity(batches.len() + batches.len() / 2 + 64);
        out.extend_from_slice(b"{\"records\":[");
        let (count, bytes, after) =
            write_records(&mut out, partition.id, &batches, next, EVENT_RECORDS_MAX, self.encoding);
        if count == 0 {
            return None;
        }
        out.extend_from_slice(b"]}");
        self.cursors[i].1 = after;
        self.topic.counters.records_out.inc_by(count as u64);
        self.topic.counters.bytes_out.inc_by(bytes);
        // The encoder writes only valid UTF-8 (strings via serde_json, the rest ASCII).
        let data = String::from_utf8(out).unwrap_or_default();
        Some(Event::default().event("records").id(token(&self.cursors)).data(data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_tokens_parse_and_garbage_is_refused() {
        let t = parse_token("0:15,2:7").unwrap();
        assert_eq!(t.get(&0), Some(&15));
        assert_eq!(t.get(&2), Some(&7));
        assert!(parse_token("0:x").is_err());
        assert!(parse_token("hello").is_err());
    }
}
