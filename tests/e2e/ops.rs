use reqwest::StatusCode;
use serde_json::json;

use crate::harness::Env;

#[tokio::test]
async fn healthz_answers_ok() {
    let env = Env::start();
    let (status, body) = env.api.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn metrics_count_records_bytes_latency_and_fsyncs() {
    let env = Env::start();
    env.api.create_topic("m", 1).await;
    env.api
        .produce("m", json!([{"value": "abcd"}, {"value": "efgh"}]))
        .await;
    env.api.fetch_all("m", 0, 0).await;
    let text = env
        .api
        .http
        .get(format!("{}/metrics", env.api.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing in\n{text}"))
            .to_owned()
    };
    assert!(line("weir_records_in_total{topic=\"m\"}").ends_with(" 2"));
    assert!(line("weir_bytes_in_total{topic=\"m\"}").ends_with(" 8"));
    assert!(line("weir_records_out_total{topic=\"m\"}").ends_with(" 2"));
    assert!(
        line("weir_fsync_duration_seconds_count")
            .split_whitespace()
            .last()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert!(text.contains("weir_http_request_duration_seconds_bucket{"));
    assert!(text.contains("route=\"/v1/topics/{topic}/records\""));
    line("weir_sse_subscribers");
}

#[tokio::test]
async fn unknown_routes_are_404_with_a_json_error() {
    let env = Env::start();
    let (status, body) = env.api.get("/v2/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
}
