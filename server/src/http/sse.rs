//! `GET /v1/topics/{topic}/events`: records as Server-Sent Events.
//!
//! A subscriber is a set of cursors (next offset per partition) read at the subscriber's pace:
//! the stream produces the next event only when hyper asks for it, i.e. when the previous one has
//! gone out on the socket, so a slow subscriber costs a few integers, never a growing queue.
//! Each event's `id:` is a resume token: the topic's incarnation id, then every cursor after
//! that event (`TOPIC_ID/PARTITION:NEXT_OFFSET,...`); reconnecting with it as `Last-Event-ID`
//! continues exactly after the last delivered record, without gap or duplicate. A token of
//! another incarnation (the topic was deleted and created again) starts from the new topic's
//! beginning: every record in it is new to the subscriber. Tokens without an id (earlier
//! versions) are taken as they are.

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
use crate::auth::{Action, Auth, Principal, Resource};
use crate::metrics::Metrics;
use crate::topic::{Isolation, Partition, Topic, TopicError};

/// Records one event carries at most: big enough to amortize framing, small enough for a browser
/// to parse without a pause.
const EVENT_RECORDS_MAX: usize = 1000;
/// Batch bytes read for one event.
const EVENT_BYTES_MAX: usize = 256 * 1024;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Where to start without a resume token: `latest` (default), `earliest`, or an offset.
    from: Option<String>,
    /// Follow one partition only.
    partition: Option<u32>,
    /// A resume token (the last event's `id:`), for clients that cannot send `Last-Event-ID`.
    last_event_id: Option<String>,
    /// `auto` or `base64`.
    encoding: Option<String>,
    /// `read_committed` (default) or `read_uncommitted`.
    isolation: Option<String>,
    /// A ticket from `POST /v1/tickets` (checked by the authentication layer).
    #[allow(dead_code)]
    ticket: Option<String>,
}

/// A parsed resume token.
#[derive(Debug, PartialEq, Eq)]
pub struct Resume {
    /// The topic incarnation it was issued for, if it says.
    pub topic_id: Option<String>,
    /// Partition to next offset.
    pub cursors: BTreeMap<u32, u64>,
}

/// Parses a resume token.
pub fn parse_token(token: &str) -> Result<Resume, ApiError> {
    let (topic_id, pairs) = match token.split_once('/') {
        Some((id, rest)) => (Some(id.to_owned()), rest),
        None => (None, token),
    };
    let mut out = BTreeMap::new();
    for pair in pairs.split(',').filter(|s| !s.is_empty()) {
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
    Ok(Resume { topic_id, cursors: out })
}

impl Resume {
    /// The cursors, if the token belongs to incarnation `topic_id` (or does not say).
    fn cursors_for(self, topic_id: &str) -> Option<BTreeMap<u32, u64>> {
        match &self.topic_id {
            Some(id) if id != topic_id => None,
            _ => Some(self.cursors),
        }
    }
}

fn token(topic_id: &str, cursors: &[(Arc<Partition>, u64)]) -> String {
    let mut s = String::with_capacity(topic_id.len() + 1 + cursors.len() * 12);
    s.push_str(topic_id);
    s.push('/');
    for (i, (p, next)) in cursors.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!("{}:{next}", p.id));
    }
    s
}

/// Follows a topic as Server-Sent Events (needs `topic:NAME:read`, or a ticket): `records`
/// events whose `id:` resumes exactly after them (`Last-Event-ID`), `gap` events when records
/// were deleted before they were read, and heartbeat comments.
#[utoipa::path(get, path = "/v1/topics/{topic}/events", tag = "records",
    params(("topic" = String, Path), EventsQuery),
    responses((status = 200, description = "An event stream", content_type = "text/event-stream", body = String),
        super::openapi::TopicErrors))]
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
    let isolation = super::fetch::parse_isolation(q.isolation.as_deref())?;
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
        None => Resume {
            topic_id: None,
            cursors: BTreeMap::new(),
        },
    };
    let mut from = q.from.as_deref().unwrap_or("latest");
    let mut resume = resume.cursors_for(&topic.id);
    if resume.is_none() {
        // Issued for a topic that was deleted: the new one is all news to this subscriber.
        from = "earliest";
        resume = Some(BTreeMap::new());
    }
    let resume = resume.unwrap_or_default();
    let mut cursors = Vec::with_capacity(partitions.len());
    for p in partitions {
        let next = match resume.get(&p.id) {
            Some(&o) => o,
            None => resolve_start(from, &p, isolation).map_err(|_| {
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
        isolation,
        access: Access::new(&state.auth, principal),
        ended: false,
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

/// Whether a stream's credentials still hold: checked when a token is revoked anywhere, and
/// when a ticket's time is up.
pub struct Access {
    auth: Auth,
    principal: Principal,
    revocations: watch::Receiver<u64>,
    expires: Option<tokio::time::Instant>,
}

impl Access {
    pub fn new(auth: &Auth, principal: Principal) -> Self {
        let expires = match &principal {
            Principal::Ticket { expires_ms, .. } => {
                let left = (*expires_ms - crate::topic::now_ms()).max(0) as u64;
                Some(tokio::time::Instant::now() + Duration::from_millis(left))
            }
            _ => None,
        };
        Self {
            auth: auth.clone(),
            principal,
            revocations: auth.revocations(),
            expires,
        }
    }

    pub fn valid(&self) -> bool {
        self.auth.still_valid(&self.principal)
    }

    /// Resolves when the credentials may have changed: a revocation, or the ticket's end.
    pub async fn changed(&mut self) {
        let expiry = async {
            match self.expires {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.revocations.changed() => {}
            () = expiry => {}
        }
    }
}

/// The last event of a stream whose token was revoked or whose ticket expired.
pub fn revoked_event() -> Event {
    Event::default().event("error").data(
        "{\"code\":\"unauthorized\",\"message\":\"the token was revoked or the ticket expired; reconnect with valid credentials\"}",
    )
}

struct Subscriber {
    topic: Arc<Topic>,
    cursors: Vec<(Arc<Partition>, u64)>,
    changes: watch::Receiver<u64>,
    pending: VecDeque<Event>,
    /// Partition to serve first next round, so a busy partition cannot starve the others.
    turn: usize,
    encoding: Encoding,
    isolation: Isolation,
    access: Access,
    /// Set after the last event (credentials gone): the stream ends.
    ended: bool,
    _guard: SubscriberGuard,
}

impl Subscriber {
    /// The next event, waiting for new records if there are none; `None` ends the stream
    /// (topic deleted or broker stopping).
    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if self.ended {
                return None;
            }
            if !self.access.valid() {
                self.ended = true;
                return Some(revoked_event());
            }
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            // Mark the current version seen *before* looking, so no append slips between.
            self.changes.borrow_and_update();
            let n = self.cursors.len();
            let mut moved = false;
            for k in 0..n {
                let i = (self.turn + k) % n;
                let before = self.cursors[i].1;
                if let Some(e) = self.read_one(i).await {
                    self.pending.push_back(e);
                }
                moved |= self.cursors[i].1 != before;
            }
            self.turn = (self.turn + 1) % n.max(1);
            // Markers walked past move a cursor without an event: look again at once.
            if !self.pending.is_empty() || moved {
                continue;
            }
            tokio::select! {
                changed = self.changes.changed() => { changed.ok()?; }
                () = self.topic.stop.cancelled() => return None,
                () = self.access.changed() => {}
            }
        }
    }

    /// One event of records from cursor `i`, or a `gap` event if its offset is gone.
    async fn read_one(&mut self, i: usize) -> Option<Event> {
        let (partition, next) = (Arc::clone(&self.cursors[i].0), self.cursors[i].1);
        if next >= partition.end(self.isolation) {
            return None;
        }
        let chunk = match partition.read(next, EVENT_BYTES_MAX, self.isolation).await {
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
                return Some(
                    Event::default()
                        .event("gap")
                        .id(token(&self.topic.id, &self.cursors))
                        .data(data),
                );
            }
            Err(e) => {
                tracing::error!(topic = %self.topic.name, partition = partition.id, error = %e, "SSE read failed");
                return None;
            }
        };
        let mut out = Vec::with_capacity(chunk.bytes.len() + chunk.bytes.len() / 2 + 64);
        out.extend_from_slice(b"{\"records\":[");
        let (count, bytes, after) = write_records(
            &mut out,
            partition.id,
            &chunk,
            EVENT_RECORDS_MAX,
            EVENT_BYTES_MAX,
            self.encoding,
        );
        if count == 0 {
            // Only markers or aborted batches: the cursor goes past them, no event.
            self.cursors[i].1 = after;
            return None;
        }
        out.extend_from_slice(b"]}");
        self.cursors[i].1 = after;
        self.topic.counters.records_out.inc_by(count as u64);
        self.topic.counters.bytes_out.inc_by(bytes);
        // The encoder writes only valid UTF-8 (strings via serde_json, the rest ASCII).
        let data = String::from_utf8(out).unwrap_or_default();
        Some(
            Event::default()
                .event("records")
                .id(token(&self.topic.id, &self.cursors))
                .data(data),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_tokens_parse_and_garbage_is_refused() {
        let t = parse_token("0:15,2:7").unwrap();
        assert_eq!(t.topic_id, None);
        assert_eq!(t.cursors.get(&0), Some(&15));
        assert_eq!(t.cursors.get(&2), Some(&7));
        let t = parse_token("00ab/1:3").unwrap();
        assert_eq!(t.topic_id.as_deref(), Some("00ab"));
        assert!(
            t.cursors_for("ffff").is_none(),
            "another incarnation's cursors are not used"
        );
        assert!(parse_token("0:x").is_err());
        assert!(parse_token("hello").is_err());
    }
}
