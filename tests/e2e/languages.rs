//! The examples in Python, JavaScript, C, Zig and AssemblyScript, built from source with
//! `weir processor build`, deployed over HTTP on the real broker, checked record by record,
//! including a guest error in each language reaching the dead-letter topic with its message.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Api, Env};
use crate::processors::{deploy, upload, wait_for_lag_zero, wait_for_records};
use crate::wasm::example_project;

/// `(key, value)` of records, in offset order.
pub fn keyed(records: &[Value]) -> Vec<(String, String)> {
    records
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap_or("").to_owned(),
                r["value"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// Deploys `lang/name` from `input` to `outputs` with dead-lettering into `dlq`.
async fn deploy_example(api: &Api, lang: &str, name: &str, outputs: &[&str], config: Value) {
    let id = upload(api, &example_project(lang, name)).await;
    api.create_topic("in", 1).await;
    for o in outputs {
        api.create_topic(o, 1).await;
    }
    let spec = json!({"module": id, "input": "in", "outputs": outputs, "config": config,
        "on_error": "dead_letter", "dead_letter_topic": "dlq"});
    let (status, body) = deploy(api, name, spec).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// The `weir-error` header of each dead-lettered record, by key.
fn errors(dlq: &[Value]) -> Vec<(String, String)> {
    dlq.iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap().to_owned(),
                r["headers"]["weir-error"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn python_redact_masks_emails_and_cards_and_dead_letters_what_is_not_a_json_object() {
    let env = Env::start();
    deploy_example(&env.api, "python", "redact", &["out"], json!({})).await;
    env.api
        .produce(
            "in",
            json!([
                {"key": "o-1", "value": {"customer": "alice@example.com", "card": "4111 1111 1111 1111", "order": "1234567890123", "amount": 42}},
                {"key": "o-2", "value": {"note": "call bob.smith@mail.example.org or pay with 5500-0000-0000-0004", "nested": {"emails": ["x@y.io"]}}},
                {"key": "o-3", "value": "not json at all"},
                {"key": "o-4", "value": [1, 2, 3]},
            ]),
        )
        .await;
    let out = wait_for_records(&env.api, "out", 2).await;
    // The produce API stores JSON values compactly with sorted keys; the order number fails
    // the Luhn check and stays.
    assert_eq!(
        keyed(&out),
        [
            ("o-1".into(), r#"{"amount":42,"card":"**** **** **** 1111","customer":"a***@example.com","order":"1234567890123"}"#.into()),
            ("o-2".into(), r#"{"nested":{"emails":["x***@y.io"]},"note":"call b***@mail.example.org or pay with ****-****-****-0004"}"#.into()),
        ]
    );
    let dlq = wait_for_records(&env.api, "dlq", 2).await;
    let errors = errors(&dlq);
    assert_eq!(errors[0].0, "o-3");
    assert!(
        errors[0].1.starts_with("JSONDecodeError: Expecting value"),
        "{errors:?}"
    );
    assert_eq!(
        errors[1],
        ("o-4".into(), "ValueError: expected a JSON object, got list".into())
    );
    assert_eq!(dlq[0]["value"], "not json at all");
    assert_eq!(dlq[1]["headers"]["weir-processor"], "redact");
}

#[tokio::test]
async fn js_enrich_adds_totals_and_routes_each_order_to_its_tier() {
    let env = Env::start();
    deploy_example(
        &env.api,
        "js",
        "enrich",
        &["priority", "standard"],
        json!({"threshold": "100"}),
    )
    .await;
    env.api
        .produce(
            "in",
            json!([
                {"key": "c-1", "timestamp": 1700000000000u64, "headers": {"source": "web"},
                 "value": {"id": 1, "items": [{"sku": "a", "price": 19.99, "qty": 3}, {"sku": "b", "price": 50, "qty": 1}]}},
                {"key": "c-2", "timestamp": 1700000001000u64, "value": {"id": 2, "items": [{"sku": "c", "price": 5.5, "qty": 2}]}},
                {"key": "c-3", "value": {"id": 3}},
                {"key": "c-4", "value": "nope"},
                {"key": "c-5", "value": {"id": 5, "items": [{"sku": "d", "price": "9"}]}},
            ]),
        )
        .await;
    let priority = wait_for_records(&env.api, "priority", 1).await;
    assert_eq!(
        keyed(&priority),
        [("c-1".into(), r#"{"id":1,"items":[{"price":19.99,"qty":3,"sku":"a"},{"price":50,"qty":1,"sku":"b"}],"total":109.97,"item_count":4,"received_at":"2023-11-14T22:13:20.000Z","tier":"priority"}"#.into())]
    );
    assert_eq!(priority[0]["headers"], json!({"source": "web", "tier": "priority"}));
    let standard = wait_for_records(&env.api, "standard", 1).await;
    assert_eq!(
        keyed(&standard),
        [("c-2".into(), r#"{"id":2,"items":[{"price":5.5,"qty":2,"sku":"c"}],"total":11,"item_count":2,"received_at":"2023-11-14T22:13:21.000Z","tier":"standard"}"#.into())]
    );
    let dlq = wait_for_records(&env.api, "dlq", 3).await;
    let errors = errors(&dlq);
    assert_eq!(errors[0], ("c-3".into(), "Error: an order needs an items list".into()));
    assert_eq!(errors[1].0, "c-4");
    assert!(errors[1].1.starts_with("SyntaxError"), "{errors:?}");
    assert_eq!(
        errors[2],
        ("c-5".into(), "Error: item 0 needs a numeric price and qty".into())
    );
}

/// Log lines: one of them with an invalid UTF-8 byte.
fn log_lines() -> Value {
    json!([
        {"key": "a", "value": "12:00 ERROR disk full", "headers": {"host": "db1"}},
        {"key": "b", "value": "12:01 INFO all good"},
        {"key": "c", "value_b64": "RVJST1Ig/w=="},
        {"key": "d", "value": "12:02 error: lowercase"},
    ])
}

async fn check_filter(lang: &str, message: &str) {
    let env = Env::start();
    deploy_example(&env.api, lang, "filter", &["out"], json!({"contains": "ERROR"})).await;
    env.api.produce("in", log_lines()).await;
    let dlq = wait_for_records(&env.api, "dlq", 1).await;
    assert_eq!(errors(&dlq), [("c".into(), message.into())]);
    wait_for_lag_zero(&env.api, "filter").await;
    let out = env.api.fetch_all("out", 0, 0).await;
    assert_eq!(keyed(&out), [("a".into(), "12:00 ERROR disk full".into())]);
    assert_eq!(out[0]["headers"], json!({"host": "db1"}));
    let (_, view) = env.api.get("/v1/processors/filter").await;
    assert_eq!(
        (view["records_in"].as_u64(), view["dead_lettered"].as_u64()),
        (Some(4), Some(1))
    );

    // Without `contains`, init rejects the config and the processor says why.
    let id = upload(&env.api, &example_project(lang, "filter")).await;
    let (status, _) = deploy(
        &env.api,
        "unset",
        json!({"module": id, "input": "in", "outputs": ["out"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    for _ in 0..200 {
        let (_, v) = env.api.get("/v1/processors/unset").await;
        if v["state"] == "failed" {
            let error = v["last_error"].as_str().unwrap();
            assert!(error.contains("config parameter 'contains' is required"), "{error}");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("a processor whose init rejects its config never failed");
}

#[tokio::test]
async fn c_filter_keeps_matching_values_and_dead_letters_text_that_is_not_utf8() {
    check_filter("c", "value is not UTF-8 text (bad byte at 6)").await;
}

#[tokio::test]
async fn zig_filter_keeps_matching_values_and_dead_letters_text_that_is_not_utf8() {
    check_filter("zig", "value is not UTF-8 text").await;
}

#[tokio::test]
async fn assemblyscript_uppercase_uppercases_unicode_and_dead_letters_text_that_is_not_utf8() {
    let env = Env::start();
    deploy_example(&env.api, "assemblyscript", "uppercase", &["out"], json!({})).await;
    env.api
        .produce(
            "in",
            json!([
                {"key": "k", "value": "hello weir", "headers": {"h": "v"}},
                {"value": "straße ünïcödé"},
                {"key": "bad", "value_b64": "aGkg/w=="},
            ]),
        )
        .await;
    let out = wait_for_records(&env.api, "out", 2).await;
    assert_eq!(
        keyed(&out),
        [("k".into(), "HELLO WEIR".into()), ("".into(), "STRASSE ÜNÏCÖDÉ".into())]
    );
    assert_eq!(out[0]["headers"], json!({"h": "v"}));
    assert_eq!(out[1]["key"], Value::Null);
    let dlq = wait_for_records(&env.api, "dlq", 1).await;
    assert_eq!(
        errors(&dlq),
        [("bad".into(), "value is not UTF-8 text (bad byte at 3)".into())]
    );
}
