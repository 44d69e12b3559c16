//! The state and timer API of every SDK but Rust's (whose wordcount and test guests cover it):
//! the same command script (`tests/guests/state-api`) deployed in Python, JavaScript, C, Zig
//! and AssemblyScript over HTTP, with the same exact answers from each: get, get-many, set,
//! delete, increment, range scans, timers, the watermark, a failing record's writes undone,
//! and a state limit refused to the guest.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::Env;
use crate::processors::{deploy, upload, wait_for_records};
use crate::state::caught_up;
use crate::wasm::guest_project;

/// Each command, and what it answers (`None`: the record fails and is dead-lettered).
const SCRIPT: &[(&str, Option<&str>)] = &[
    ("set a 1", Some("ok")),
    ("set b 2", Some("ok")),
    ("get a", Some("1")),
    ("get zz", Some("none")),
    ("many a zz b", Some("1,none,2")),
    ("inc n 5", Some("5")),
    ("inc n -2", Some("3")),
    ("set c 3", Some("ok")),
    ("scan a c 10", Some("a=1,b=2")),
    ("scan a - 2", Some("a=1,b=2")),
    ("scan b - 10", Some("b=2,c=3,n=3")),
    ("del b", Some("ok")),
    ("get b", Some("none")),
    ("fail a 9", None),
    ("get a", Some("1")),
    ("big x 200", None),
    ("big y 10", Some("ok")),
    ("wm", Some("some")),
    ("timer t 1000", Some("ok")),
];

async fn run_script(lang: &str) {
    let env = Env::start();
    let api = &env.api;
    let id = upload(api, &guest_project(&format!("state-api/{lang}"))).await;
    for t in ["in", "out", "dlq"] {
        api.create_topic(t, 1).await;
    }
    let spec = json!({"module": id, "input": "in", "outputs": ["out"], "stores": ["s"],
        "on_error": "dead_letter", "dead_letter_topic": "dlq", "state_limits": {"value_bytes_max": 100}});
    let (status, body) = deploy(api, "api", spec).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let records: Vec<Value> = SCRIPT.iter().map(|(c, _)| json!({"value": c})).collect();
    api.produce("in", Value::Array(records)).await;
    let mut expected: Vec<String> = SCRIPT.iter().filter_map(|(_, a)| a.map(str::to_owned)).collect();
    // The timer's answer comes once its batch is done (event time is already past 1000).
    expected.push("fired t 1000".into());
    let out = wait_for_records(api, "out", expected.len()).await;
    let got: Vec<&str> = out.iter().map(|r| r["value"].as_str().unwrap()).collect();
    assert_eq!(got, expected, "{lang}: the answers, in order");
    assert!(out.iter().all(|r| r["key"].is_null()), "{out:?}");
    let dlq = wait_for_records(api, "dlq", 2).await;
    let failed: Vec<(&str, &str)> = dlq
        .iter()
        .map(|r| {
            (
                r["value"].as_str().unwrap(),
                r["headers"]["weir-error"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(failed[0].0, "fail a 9");
    assert!(failed[0].1.contains("failed on purpose"), "{failed:?}");
    assert_eq!(failed[1].0, "big x 200");
    assert!(
        failed[1].1.contains("value_bytes_max"),
        "{lang}: the host's refusal reaches the dead letter: {failed:?}"
    );
    // The state as the processor left it, over HTTP: the failed record's write undone, the
    // refused value absent.
    let view = caught_up(api, "api").await;
    // Counted per refused call: the failed batch call and its record-by-record replay.
    let refused = view["state_stores"][0]["refused"].as_u64().unwrap();
    assert!((1..=2).contains(&refused), "{lang}: the refusal is counted: {view}");
    // And logged: the last lines come first on the processor's log stream.
    let mut logs = crate::harness::SseStream::open(api, "/v1/processors/api/logs", None).await;
    let want = "state call refused: a value of 200 bytes is over state_limits.value_bytes_max (100)";
    let mut seen = Vec::new();
    while !seen.iter().any(|m: &String| m == want) {
        let ev = logs.next(std::time::Duration::from_secs(10)).await;
        let ev = ev.unwrap_or_else(|| panic!("{lang}: the refusal is logged: {seen:?}"));
        if ev.event == "log" {
            let line: Value = serde_json::from_str(&ev.data).unwrap();
            seen.push(line["message"].as_str().unwrap().to_owned());
        }
    }
    let (status, page) = api.get("/v1/processors/api/state/s").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let entries: Vec<(&str, &str)> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["key"].as_str().unwrap(), e["value"].as_str().unwrap()))
        .collect();
    assert_eq!(
        entries,
        [("a", "1"), ("c", "3"), ("n", "3"), ("y", "xxxxxxxxxx")],
        "{lang}"
    );
    assert_eq!(dlq.len(), 2, "{dlq:?}");
}

#[tokio::test]
async fn the_python_sdk_state_api_answers_the_script() {
    run_script("python").await;
}

#[tokio::test]
async fn the_javascript_sdk_state_api_answers_the_script() {
    run_script("js").await;
}

#[tokio::test]
async fn the_c_sdk_state_api_answers_the_script() {
    run_script("c").await;
}

#[tokio::test]
async fn the_zig_sdk_state_api_answers_the_script() {
    run_script("zig").await;
}

#[tokio::test]
async fn the_assemblyscript_sdk_state_api_answers_the_script() {
    run_script("assemblyscript").await;
}
