//! Built-in aggregates in event-time windows, deployed with one `curl`-sized body on the real
//! broker: exact results for each window type and emission mode against a brute force in
//! this file, late records to a side topic, `kill -9` in the middle of open windows, the
//! watermark moved on by `idle_ms`, and the deploy errors a user meets.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Api, Env};
use crate::processors::{deploy, wait_for_records};
use crate::state::caught_up;

const SIZE: i64 = 60_000;
const ADVANCE: i64 = 20_000;
const GAP: i64 = 15_000;
const GRACE: i64 = 10_000;
const KEYS: [&str; 4] = ["ann", "bob", "cy", "dee"];

/// One input record: key index, event time, amount.
#[derive(Debug, Clone, Copy)]
struct Ev {
    key: usize,
    t: i64,
    amount: i64,
}

/// Results: (key, start, end) to sum.
type Windows = BTreeMap<(String, i64, i64), i64>;

/// A minute-aligned base an hour back, so the broker's retention and timestamp checks pass.
fn base() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    (now - 3_600_000) / SIZE * SIZE
}

/// A deterministic stream: time moves on about 2 s a record, up to 25 s out of order, and
/// every 17th record is 100 s behind (late for every window type here).
fn stream(base: i64, n: usize) -> Vec<Ev> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|i| {
            let jitter = (next() % 25_000) as i64;
            let behind = if i % 17 == 16 { 100_000 } else { 0 };
            Ev {
                key: (next() % KEYS.len() as u64) as usize,
                t: base + i as i64 * 2_000 - jitter - behind,
                amount: (next() % 100) as i64 - 20,
            }
        })
        .collect()
}

/// The windows of `kind` and their sums, from the rules in docs/processors.md: a record goes
/// into each of its windows that is still open when it arrives (the watermark, the largest
/// event time so far, below the window's end plus grace); only windows closed by the last
/// watermark are final.
fn brute_force(kind: &str, evs: &[Ev], finals_only: bool) -> Windows {
    let mut clock = i64::MIN;
    let marks: Vec<i64> = evs
        .iter()
        .map(|e| {
            clock = clock.max(e.t);
            clock
        })
        .collect();
    let last = clock;
    let key = |e: &Ev| KEYS[e.key].to_owned();
    let mut out = Windows::new();
    match kind {
        "tumbling" | "hopping" => {
            let step = if kind == "tumbling" { SIZE } else { ADVANCE };
            for (e, &w) in evs.iter().zip(&marks) {
                let first = (e.t - SIZE).div_euclid(step) * step + step;
                for start in (first..=e.t).step_by(step as usize) {
                    if start + SIZE + GRACE > w {
                        *out.entry((key(e), start, start + SIZE)).or_default() += e.amount;
                    }
                }
            }
        }
        "sliding" => {
            // Late once the last window that could hold a record, [t, t + size), closed; a
            // window exists if it was open when made: the one ending at a record when it
            // arrives, the one after it when the first record after it (within size) is there.
            let taken: Vec<(usize, &Ev)> = evs
                .iter()
                .enumerate()
                .filter(|(i, e)| e.t + SIZE + GRACE > marks[*i])
                .collect();
            for &(i, e) in &taken {
                let after = taken
                    .iter()
                    .filter(|(_, y)| y.key == e.key && e.t < y.t && y.t <= e.t + SIZE)
                    .map(|(j, _)| (*j).max(i))
                    .min();
                for (start, made) in [(e.t - SIZE + 1, Some(i)), (e.t + 1, after)] {
                    let end = start + SIZE;
                    let Some(made) = made else { continue };
                    if end + GRACE <= marks[made] {
                        continue;
                    }
                    let members: Vec<i64> = taken
                        .iter()
                        .filter(|(j, x)| x.key == e.key && start <= x.t && x.t < end && end + GRACE > marks[*j])
                        .map(|(_, x)| x.amount)
                        .collect();
                    if !members.is_empty() {
                        out.insert((key(e), start, end), members.iter().sum());
                    }
                }
            }
        }
        "session" => {
            let mut open: Vec<(usize, i64, i64, i64)> = Vec::new();
            for (e, &w) in evs.iter().zip(&marks) {
                let alive = |last: i64| last + 1 + GAP + GRACE > w;
                let (near, far): (Vec<_>, Vec<_>) = open.drain(..).partition(|&(k, first, last, _)| {
                    k == e.key && alive(last) && first - GAP <= e.t && e.t <= last + GAP
                });
                open = far;
                let first = near.iter().map(|s| s.1).fold(e.t, i64::min);
                let last = near.iter().map(|s| s.2).fold(e.t, i64::max);
                if alive(last) {
                    let sum: i64 = near.iter().map(|s| s.3).sum::<i64>() + e.amount;
                    open.push((e.key, first, last, sum));
                } else {
                    open.extend(near);
                }
            }
            for (k, first, last, sum) in open {
                out.insert((KEYS[k].to_owned(), first, last + 1), sum);
            }
        }
        _ => unreachable!(),
    }
    if finals_only {
        let close = |start: i64, end: i64| match kind {
            "session" => end + GAP + GRACE,
            _ => {
                let _ = start;
                end + GRACE
            }
        };
        out.retain(|(_, s, e), _| close(*s, *e) <= last);
    }
    out
}

/// Indexes of the records late for tumbling windows: their one window had closed.
fn late(evs: &[Ev]) -> Vec<usize> {
    let mut clock = i64::MIN;
    evs.iter()
        .enumerate()
        .filter_map(|(i, e)| {
            clock = clock.max(e.t);
            let end = e.t.div_euclid(SIZE) * SIZE + SIZE;
            (end + GRACE <= clock).then_some(i)
        })
        .collect()
}

fn window_body(kind: &str, emit: &str, time: Value) -> Value {
    let mut w = json!({"type": kind, "grace_ms": GRACE, "emit": emit, "time": time});
    match kind {
        "session" => w["gap_ms"] = GAP.into(),
        "hopping" => {
            w["size_ms"] = SIZE.into();
            w["advance_ms"] = ADVANCE.into();
        }
        _ => w["size_ms"] = SIZE.into(),
    }
    w
}

/// The records of `evs` as the produce API takes them: the event time as the timestamp, a
/// header and a JSON field alike, so every time source reads the same.
fn produce_body(evs: &[Ev]) -> Value {
    evs.iter()
        .map(|e| {
            json!({"key": KEYS[e.key], "timestamp": e.t, "headers": {"event-time": e.t.to_string()},
                "value": {"amount": e.amount, "at": e.t}})
        })
        .collect()
}

/// Output records as windows: (key, start, end) to sum; panics on a window emitted twice
/// when `once`, and checks the headers carry the bounds.
fn as_windows(records: &[Value], once: bool) -> Windows {
    let mut out = Windows::new();
    for r in records {
        let v: Value = serde_json::from_str(r["value"].as_str().unwrap()).unwrap();
        let k = (
            v["key"].as_str().unwrap().to_owned(),
            v["start"].as_i64().unwrap(),
            v["end"].as_i64().unwrap(),
        );
        assert_eq!(r["key"].as_str(), Some(k.0.as_str()));
        assert_eq!(r["headers"]["weir-window-start"], k.1.to_string(), "{r}");
        assert_eq!(r["headers"]["weir-window-end"], k.2.to_string(), "{r}");
        let prior = out.insert(k.clone(), v["sum"].as_i64().unwrap());
        assert!(!once || prior.is_none(), "window {k:?} emitted twice");
    }
    out
}

async fn all(api: &Api, topic: &str) -> Vec<Value> {
    api.fetch_all(topic, 0, 0).await
}

#[tokio::test]
async fn every_window_type_and_emission_gives_exactly_what_a_brute_force_gives() {
    let env = Env::start();
    let api = &env.api;
    api.create_topic("orders", 1).await;
    let kinds = ["tumbling", "hopping", "sliding", "session"];
    // Each type in each emission mode, reading event time from the timestamp, a header or a
    // JSON field; late records go to a side topic for one of them.
    let times = [
        json!("timestamp"),
        json!({"header": "event-time"}),
        json!({"path": "/at"}),
    ];
    let mut deployed = Vec::new();
    for (i, kind) in kinds.iter().enumerate() {
        for emit in ["final", "update"] {
            let name = format!("{kind}-{emit}");
            api.create_topic(&name, 1).await;
            let mut window = window_body(kind, emit, times[(i + deployed.len()) % 3].clone());
            if name == "tumbling-final" {
                window["late"] = json!({"topic": "late-orders"});
            }
            let spec = json!({"input": "orders", "outputs": [name],
                "aggregate": {"op": "sum", "path": "/amount"}, "window": window});
            let (status, body) = deploy(api, &format!("w-{name}"), spec).await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            deployed.push((kind.to_string(), emit, name));
        }
    }
    let evs = stream(base(), 400);
    for chunk in evs.chunks(37) {
        api.produce("orders", produce_body(chunk)).await;
    }
    for (_, _, name) in &deployed {
        caught_up(api, &format!("w-{name}")).await;
    }
    for (kind, emit, name) in &deployed {
        let got = all(api, name).await;
        if *emit == "final" {
            let want = brute_force(kind, &evs, true);
            assert!(
                want.len() > 20,
                "{kind}: a test with {} windows proves little",
                want.len()
            );
            assert_eq!(as_windows(&got, true), want, "{name}");
        } else {
            // The last update of each window is its result; no window the brute force does
            // not know is updated (merged sessions leave their last update behind).
            let want = brute_force(kind, &evs, false);
            let updates = as_windows(&got, false);
            for (k, sum) in &want {
                assert_eq!(updates.get(k), Some(sum), "{name}: last update of {k:?}");
            }
            if *kind != "session" {
                assert_eq!(updates.len(), want.len(), "{name}");
            }
        }
    }
    // The late ones, as they were read, on the side topic; counted in the status.
    let late_idx = late(&evs);
    assert!(late_idx.len() >= 20);
    let side = all(api, "late-orders").await;
    let side_times: Vec<i64> = side.iter().map(|r| r["timestamp"].as_i64().unwrap()).collect();
    let want_times: Vec<i64> = late_idx.iter().map(|&i| evs[i].t).collect();
    assert_eq!(side_times, want_times);
    let (_, view) = api.get("/v1/processors/w-tumbling-final").await;
    assert_eq!(view["late"], late_idx.len(), "{view}");
    assert_eq!(view["aggregate"]["op"], "sum");
    assert!(view.get("module").is_none(), "{view}");
    let stores = view["state_stores"].as_array().unwrap();
    assert_eq!(stores[0]["name"], "__windows");
    assert!(stores[0]["keys"].as_u64().unwrap() > 0, "open windows are kept: {view}");
}

#[tokio::test]
async fn open_windows_survive_kill_9_and_final_results_arrive_exactly_once() {
    let mut env = Env::start();
    env.api.create_topic("clicks", 3).await;
    env.api.create_topic("per-window", 3).await;
    let spec = json!({"input": "clicks", "outputs": ["per-window"], "commit_interval_ms": 20,
        "aggregate": {"op": "sum", "path": "/amount"}, "window": window_body("hopping", "final", json!("timestamp"))});
    let (status, body) = deploy(&env.api, "hop", spec).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let evs = stream(base(), 900);
    // Each partition is a task with its own watermark: the brute force runs per partition.
    let mut per_partition: BTreeMap<u64, Vec<Ev>> = BTreeMap::new();
    for (round, chunk) in evs.chunks(300).enumerate() {
        for part in chunk.chunks(30) {
            let placed = env.api.produce("clicks", produce_body(part)).await;
            for (e, (p, _)) in part.iter().zip(placed) {
                per_partition.entry(p).or_default().push(*e);
            }
        }
        if round < 2 {
            // Open windows in every partition, some of it committed, some not yet.
            tokio::time::sleep(Duration::from_millis(30 * round as u64)).await;
            env.server.kill();
            env.server.restart();
            env.api = env.server.client();
        }
    }
    caught_up(&env.api, "hop").await;
    let mut want = Windows::new();
    for evs in per_partition.values() {
        want.extend(brute_force("hopping", evs, true));
    }
    assert!(want.len() > 50);
    let got = wait_for_records(&env.api, "per-window", want.len()).await;
    assert_eq!(as_windows(&got, true), want);
    // Nothing more arrives later (a duplicate would).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = wait_for_records(&env.api, "per-window", want.len()).await;
    assert_eq!(again.len(), want.len());
}

#[tokio::test]
async fn idle_moves_a_quiet_partitions_watermark_so_its_last_window_closes() {
    let env = Env::start();
    let api = &env.api;
    api.create_topic("readings", 1).await;
    api.create_topic("per-second", 1).await;
    let spec = json!({"input": "readings", "outputs": ["per-second"], "aggregate": {"op": "max", "path": "/v"},
        "window": {"type": "tumbling", "size_ms": 1000, "grace_ms": 200, "idle_ms": 300, "emit": "final"}});
    let (status, body) = deploy(api, "quiet", spec).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let t = now / 1000 * 1000;
    api.produce(
        "readings",
        json!([{"key": "s", "timestamp": t + 10, "value": {"v": 3}}, {"key": "s", "timestamp": t + 20, "value": {"v": 7.5}}]),
    )
    .await;
    // No record comes after them, yet the window closes once the clock has moved on by the
    // wall clock: about a second here.
    let out = wait_for_records(api, "per-second", 1).await;
    let v: Value = serde_json::from_str(out[0]["value"].as_str().unwrap()).unwrap();
    assert_eq!(v, json!({"key": "s", "start": t, "end": t + 1000, "max": 7.5}));
    // A record after the quiet spell is judged against the clock the spell moved on: its
    // window [t+1000, t+2000) had closed by the time it came, so it is late.
    let wall = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    // The clock moves on from the last event time (t + 20), which the wall clock was up to a
    // second past when it came: by t + 3300 on the wall it is past t + 2200, where the window
    // closes.
    while wall() < t + 3300 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    api.produce(
        "readings",
        json!([{"key": "s", "timestamp": t + 1500, "value": {"v": 1}}]),
    )
    .await;
    let view = caught_up(api, "quiet").await;
    assert_eq!(view["late"], 1, "{view}");
}

#[tokio::test]
async fn windows_due_at_once_beyond_one_round_of_timers_all_close() {
    let env = Env::start();
    let api = &env.api;
    api.create_topic("clicks", 1).await;
    api.create_topic("per-window", 1).await;
    // One record per call, so a round of timers (16 calls) closes 16 windows at most.
    let spec = json!({"input": "clicks", "outputs": ["per-window"], "batch_records_max": 1,
        "aggregate": {"op": "count"}, "window": {"type": "tumbling", "size_ms": 1000, "grace_ms": 0, "emit": "final"}});
    assert_eq!(deploy(api, "many", spec).await.0, StatusCode::CREATED);
    let t0 = base();
    let records: Vec<Value> = (0..50)
        .map(|k| json!({"key": format!("k{k}"), "timestamp": t0, "value": 1}))
        .collect();
    api.produce("clicks", Value::Array(records)).await;
    caught_up(api, "many").await;
    api.produce(
        "clicks",
        json!([{"key": "late-comer", "timestamp": t0 + 5000, "value": 1}]),
    )
    .await;
    let out = wait_for_records(api, "per-window", 50).await;
    assert_eq!(out.len(), 50);
}

#[tokio::test]
async fn a_redeploy_that_changes_the_aggregate_is_refused_until_the_state_is_reset() {
    let env = Env::start();
    let api = &env.api;
    api.create_topic("in", 1).await;
    api.create_topic("out", 1).await;
    let count = json!({"input": "in", "outputs": ["out"], "aggregate": {"op": "count"}});
    assert_eq!(deploy(api, "agg", count.clone()).await.0, StatusCode::CREATED);
    api.produce("in", json!([{"key": "k", "value": {"v": 1}}])).await;
    caught_up(api, "agg").await;
    let distinct = json!({"input": "in", "outputs": ["out"], "aggregate": {"op": "count_distinct", "path": "/v"}});
    let (status, body) = deploy(api, "agg", distinct.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("POST /v1/processors/agg/reset"),
        "{body}"
    );
    // What does not touch the state may change: the emission, a window's lateness policy.
    let (status, body) = deploy(api, "agg", count).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = api
        .post("/v1/processors/agg/reset", json!({"to": "latest", "state": true}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = deploy(api, "agg", distinct).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    api.produce(
        "in",
        json!([{"key": "k", "value": {"v": 1}}, {"key": "k", "value": {"v": 2}}]),
    )
    .await;
    caught_up(api, "agg").await;
    let last = all(api, "out").await;
    let v: Value = serde_json::from_str(last.last().unwrap()["value"].as_str().unwrap()).unwrap();
    assert_eq!(v, json!({"key": "k", "count_distinct": 2}));
}

#[tokio::test]
async fn a_deploy_with_a_bad_window_or_aggregate_says_what_to_fix() {
    let env = Env::start();
    let api = &env.api;
    api.create_topic("in", 1).await;
    api.create_topic("out", 1).await;
    let cases = [
        (
            json!({"aggregate": {"op": "count"}, "window": {"type": "tumbling", "size_ms": 60000}}),
            "grace_ms is required",
        ),
        (
            json!({"aggregate": {"op": "sum"}}),
            "aggregate.path is required for sum",
        ),
        (json!({"aggregate": {"op": "avg", "path": "amount"}}), "\"/amount\""),
        (json!({"aggregate": {"op": "median", "path": "/a"}}), "median"),
        (json!({}), "needs a module"),
        (
            json!({"module": "sha256:00", "aggregate": {"op": "count"}}),
            "not several",
        ),
        (
            json!({"aggregate": {"op": "count"}, "window": {"type": "session", "size_ms": 5, "grace_ms": 0}}),
            "size_ms does not apply",
        ),
        (
            json!({"aggregate": {"op": "count"}, "window": {"type": "hopping", "size_ms": 60000, "advance_ms": 1, "grace_ms": 0}}),
            "more than 100 windows",
        ),
        (
            json!({"aggregate": {"op": "count"}, "window": {"type": "tumbling", "size_ms": 60000, "grace_ms": -1}}),
            "grace_ms must be",
        ),
        (
            json!({"aggregate": {"op": "count"}, "on_error": "skip",
            "window": {"type": "tumbling", "size_ms": 60000, "grace_ms": 0, "late": "dead_letter"}}),
            "needs the dead-letter topic",
        ),
        (
            json!({"aggregate": {"op": "count"}, "window": {"type": "tumbling", "size_ms": 60000, "grace_ms": 0, "late": {"topic": "out"}}}),
            "name a topic of its own",
        ),
        (
            json!({"aggregate": {"op": "count"}, "config": {"a": "b"}}),
            "takes none",
        ),
    ];
    for (extra, message) in cases {
        let mut spec = json!({"input": "in", "outputs": ["out"]});
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        let (status, body) = deploy(api, "bad", spec.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{spec}: {body}");
        let got = body["error"]["message"].as_str().unwrap_or_default();
        assert!(got.contains(message), "{spec}: wanted '{message}' in '{got}'");
    }
    let (status, _) = api.get("/v1/processors/bad").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was deployed");
}

#[tokio::test]
async fn a_record_without_the_field_goes_to_the_dead_letter_topic_and_the_rest_count() {
    let env = Env::start();
    let api = &env.api;
    api.create_topic("orders", 1).await;
    api.create_topic("totals", 1).await;
    let spec = json!({"input": "orders", "outputs": ["totals"], "aggregate": {"op": "sum", "path": "/amount"}});
    let (status, body) = deploy(api, "totals", spec).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    api.produce(
        "orders",
        json!([{"key": "a", "value": {"amount": 5}}, {"key": "a", "value": {"amount": "x"}},
            {"key": "b", "value": "not json"}, {"key": "a", "value": {"amount": 2.5}}]),
    )
    .await;
    let dlq = wait_for_records(api, "totals-dlq", 2).await;
    let errors: Vec<&str> = dlq
        .iter()
        .map(|r| r["headers"]["weir-error"].as_str().unwrap())
        .collect();
    assert!(errors[0].contains("a string, not a number"), "{errors:?}");
    assert!(errors[1].contains("not JSON"), "{errors:?}");
    caught_up(api, "totals").await;
    let out = all(api, "totals").await;
    let last: Value = serde_json::from_str(out.last().unwrap()["value"].as_str().unwrap()).unwrap();
    assert_eq!(last, json!({"key": "a", "sum": 7.5}));
}

/// The last value of each key on `topic`, as JSON.
async fn last_per_key(api: &Api, topic: &str) -> BTreeMap<String, Value> {
    let (_, t) = api.get(&format!("/v1/topics/{topic}")).await;
    let mut out = BTreeMap::new();
    for p in 0..t["partitions"].as_array().unwrap().len() as u32 {
        for r in api.fetch_all(topic, p, 0).await {
            let v: Value = serde_json::from_str(r["value"].as_str().unwrap()).unwrap();
            out.insert(r["key"].as_str().unwrap().to_owned(), v);
        }
    }
    out
}

#[tokio::test]
async fn built_in_aggregates_give_the_wasm_examples_answers_on_the_same_input() {
    let env = Env::start();
    let api = &env.api;
    for t in [
        "words",
        "wasm-counts",
        "builtin-counts",
        "readings",
        "wasm-averages",
        "builtin-averages",
    ] {
        api.create_topic(t, 2).await;
    }
    let wc = crate::processors::upload(api, &crate::wasm::example("wordcount")).await;
    let spec = json!({"module": wc, "input": "words", "outputs": ["wasm-counts"], "stores": ["counts"]});
    assert_eq!(deploy(api, "wasm-wc", spec).await.0, StatusCode::CREATED);
    let spec = json!({"input": "words", "outputs": ["builtin-counts"], "aggregate": {"op": "count"}});
    assert_eq!(deploy(api, "builtin-wc", spec).await.0, StatusCode::CREATED);
    let avg = crate::processors::upload(api, &crate::wasm::example_project("python", "running-average")).await;
    let spec = json!({"module": avg, "input": "readings", "outputs": ["wasm-averages"], "stores": ["sums"],
        "config": {"field": "temp"}});
    assert_eq!(deploy(api, "wasm-avg", spec).await.0, StatusCode::CREATED);
    let spec =
        json!({"input": "readings", "outputs": ["builtin-averages"], "aggregate": {"op": "avg", "path": "/temp"}});
    assert_eq!(deploy(api, "builtin-avg", spec).await.0, StatusCode::CREATED);
    let evs = stream(base(), 600);
    let words: Vec<Value> = evs
        .iter()
        .map(|e| {
            let w = format!("w{}", e.amount.rem_euclid(37));
            json!({"key": w, "value": w})
        })
        .collect();
    let readings: Vec<Value> = evs
        .iter()
        .map(|e| json!({"key": KEYS[e.key], "value": {"temp": e.amount}}))
        .collect();
    for (w, r) in words.chunks(100).zip(readings.chunks(100)) {
        api.produce("words", Value::Array(w.to_vec())).await;
        api.produce("readings", Value::Array(r.to_vec())).await;
    }
    for p in ["wasm-wc", "builtin-wc", "wasm-avg", "builtin-avg"] {
        caught_up(api, p).await;
    }
    let wasm = last_per_key(api, "wasm-counts").await;
    let builtin = last_per_key(api, "builtin-counts").await;
    assert_eq!(wasm.len(), 37);
    for (k, n) in &wasm {
        assert_eq!(builtin[k]["count"], *n, "{k}");
    }
    let wasm = last_per_key(api, "wasm-averages").await;
    let builtin = last_per_key(api, "builtin-averages").await;
    assert_eq!(wasm.len(), KEYS.len());
    for (k, v) in &wasm {
        assert_eq!(builtin[k]["count"], v["count"], "{k}");
        let (a, b) = (builtin[k]["avg"].as_f64().unwrap(), v["average"].as_f64().unwrap());
        assert!((a - b).abs() < 1e-9, "{k}: {a} vs {b}");
    }
}
