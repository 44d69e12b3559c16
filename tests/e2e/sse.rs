use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Env, SseStream};

fn by_partition(records: &[Value]) -> BTreeMap<u64, Vec<u64>> {
    let mut out: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for r in records {
        out.entry(r["partition"].as_u64().unwrap())
            .or_default()
            .push(r["offset"].as_u64().unwrap());
    }
    out
}

#[tokio::test]
async fn sse_across_several_partitions_delivers_every_record_once_in_order() {
    let env = Env::start();
    env.api.create_topic("t", 3).await;
    let first: Vec<_> = (0..30).map(|i| json!({"key": format!("k{i}"), "value": i})).collect();
    env.api.produce("t", json!(first)).await;
    let mut sse = SseStream::open(&env.api, "/v1/topics/t/events?from=earliest", None).await;
    let (got, _) = sse.records(30).await;
    // Records produced after subscribing arrive too.
    let more: Vec<_> = (30..60).map(|i| json!({"key": format!("k{i}"), "value": i})).collect();
    env.api.produce("t", json!(more)).await;
    let (later, _) = sse.records(30).await;
    let all: Vec<Value> = got.into_iter().chain(later).collect();
    assert_eq!(all.len(), 60);
    let parts = by_partition(&all);
    assert!(parts.len() > 1, "records came from several partitions");
    for (p, offsets) in &parts {
        let expected: Vec<u64> = (0..offsets.len() as u64).collect();
        assert_eq!(
            offsets, &expected,
            "partition {p} offsets are contiguous, without duplicates"
        );
    }
    let mut values: Vec<u64> = all
        .iter()
        .map(|r| r["value"].as_str().unwrap().parse().unwrap())
        .collect();
    values.sort_unstable();
    assert_eq!(values, (0..60).collect::<Vec<_>>());
}

#[tokio::test]
async fn sse_resumes_after_last_event_id_without_gap_or_duplicate() {
    let env = Env::start();
    env.api.create_topic("t", 2).await;
    let batch = |from: usize| -> Value {
        json!(
            (from..from + 20)
                .map(|i| json!({"key": format!("k{i}"), "value": i}))
                .collect::<Vec<_>>()
        )
    };
    env.api.produce("t", batch(0)).await;
    let mut sse = SseStream::open(&env.api, "/v1/topics/t/events?from=earliest", None).await;
    let (first, last_id) = sse.records(20).await;
    drop(sse);
    let last_id = last_id.expect("events carry an id");
    // Records produced while disconnected, then a reconnect by header and one by query.
    env.api.produce("t", batch(20)).await;
    let mut resumed = SseStream::open(&env.api, "/v1/topics/t/events?from=earliest", Some(&last_id)).await;
    let (second, _) = resumed.records(20).await;
    assert!(
        resumed.next(Duration::from_millis(300)).await.is_none(),
        "nothing beyond the 20 new records"
    );
    let query = format!("/v1/topics/t/events?last_event_id={}", urlencode(&last_id));
    let mut by_query = SseStream::open(&env.api, &query, None).await;
    let (third, _) = by_query.records(20).await;
    assert_eq!(values(&second), values(&third));

    let all: Vec<Value> = first.into_iter().chain(second).collect();
    let mut v = values(&all);
    v.sort_unstable();
    assert_eq!(v, (0..40).collect::<Vec<_>>(), "no gap, no duplicate");
}

fn values(records: &[Value]) -> Vec<u64> {
    records
        .iter()
        .map(|r| r["value"].as_str().unwrap().parse().unwrap())
        .collect()
}

fn urlencode(s: &str) -> String {
    s.replace(':', "%3A").replace(',', "%2C")
}

#[tokio::test]
async fn sse_from_latest_sees_only_new_records_and_one_partition_when_asked() {
    let env = Env::start();
    env.api.create_topic("t", 2).await;
    env.api.produce("t", json!([{"value": "old", "partition": 1}])).await;
    let mut sse = SseStream::open(&env.api, "/v1/topics/t/events?partition=1", None).await;
    env.api
        .produce(
            "t",
            json!([{"value": "p0", "partition": 0}, {"value": "new", "partition": 1}]),
        )
        .await;
    let (got, id) = sse.records(1).await;
    assert_eq!(got[0]["value"], "new");
    assert_eq!(got[0]["offset"], 1);
    let (_, t) = env.api.get("/v1/topics/t").await;
    assert!(t["id"].is_string(), "a topic shows its incarnation id: {t}");
    assert_eq!(id, Some(format!("{}/1:2", t["id"].as_str().unwrap())));
}

#[tokio::test]
async fn idle_sse_streams_get_comment_heartbeats() {
    let env = Env::with_args(&["--sse-heartbeat-ms", "200"]);
    env.api.create_topic("t", 1).await;
    let mut sse = SseStream::open(&env.api, "/v1/topics/t/events", None).await;
    let ev = sse.next(Duration::from_secs(5)).await.expect("a heartbeat arrives");
    assert!(ev.comment, "{ev:?}");
}

#[tokio::test]
async fn a_garbage_resume_token_is_400() {
    let env = Env::start();
    env.api.create_topic("t", 1).await;
    let (status, code) = env
        .api
        .error_code(Method::GET, "/v1/topics/t/events?last_event_id=banana", None)
        .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_resume_token")
    );
}

#[tokio::test]
async fn sse_reports_a_gap_when_retention_removed_the_resume_point() {
    let env = Env::with_args(&["--retention-check-interval-ms", "100"]);
    let (status, _) = env
        .api
        .post(
            "/v1/topics",
            json!({"name": "t", "segment_bytes": 4096, "retention_bytes": 4096}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    for _ in 0..10 {
        let records: Vec<_> = (0..20).map(|_| json!({"value": "x".repeat(100)})).collect();
        env.api.produce("t", json!(records)).await;
    }
    let start = wait_for_log_start(&env, "t").await;
    let mut sse = SseStream::open(&env.api, "/v1/topics/t/events", Some("0:0")).await;
    let ev = sse.next(Duration::from_secs(5)).await.expect("an event");
    assert_eq!(ev.event, "gap");
    let gap: Value = serde_json::from_str(&ev.data).unwrap();
    // Retention may have moved on since `start` was read; the event says where it continues.
    let to = gap["to"].as_u64().unwrap();
    assert_eq!(gap["from"].as_u64(), Some(0));
    assert!(to >= start, "{gap}");
    let (records, _) = sse.records(1).await;
    assert_eq!(records[0]["offset"].as_u64(), Some(to));
}

pub async fn wait_for_log_start(env: &Env, topic: &str) -> u64 {
    for _ in 0..100 {
        let (_, t) = env.api.get(&format!("/v1/topics/{topic}")).await;
        let start = t["partitions"][0]["log_start_offset"].as_u64().unwrap();
        if start > 0 {
            return start;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("retention never moved the log start");
}

#[tokio::test]
async fn a_resume_token_of_a_deleted_topic_reads_the_recreated_one_from_its_start() {
    let env = Env::start();
    env.api.create_topic("t", 1).await;
    let first: Vec<_> = (0..100).map(|i| json!({"value": format!("old-{i}")})).collect();
    env.api.produce("t", json!(first)).await;
    let mut sse = SseStream::open(&env.api, "/v1/topics/t/events?from=earliest", None).await;
    let (_, token) = sse.records(100).await;
    drop(sse);
    assert_eq!(
        env.api.call(Method::DELETE, "/v1/topics/t", None).await.0,
        StatusCode::NO_CONTENT
    );
    env.api.create_topic("t", 1).await;
    let second: Vec<_> = (0..50).map(|i| json!({"value": format!("new-{i}")})).collect();
    env.api.produce("t", json!(second)).await;
    let mut sse = SseStream::open(&env.api, "/v1/topics/t/events", token.as_deref()).await;
    let (got, _) = sse.records(50).await;
    let values: Vec<&str> = got.iter().map(|r| r["value"].as_str().unwrap()).collect();
    let want: Vec<String> = (0..50).map(|i| format!("new-{i}")).collect();
    assert_eq!(values, want, "every record of the new topic, from offset 0, no gap");
}
