use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::harness::{BIN, Env};

pub fn weir(url: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env("WEIR_URL", url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weir runs");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn cli_creates_a_topic_produces_from_stdin_and_consumes_it_back() {
    let env = Env::start();
    let url = env.server.url.clone();
    ok(&weir(&url, &["topic", "create", "events", "--partitions", "2"], None));
    assert!(ok(&weir(&url, &["topic", "list"], None)).contains("events"));
    let described: Value = serde_json::from_str(&ok(&weir(&url, &["topic", "describe", "events"], None))).unwrap();
    assert_eq!(described["partitions"].as_array().unwrap().len(), 2);

    let out = ok(&weir(&url, &["produce", "events", "--key", "k", "single"], None));
    assert!(out.contains("offset 0"), "{out}");
    ok(&weir(
        &url,
        &["produce", "events", "--partition", "1"],
        Some("one\ntwo\nthree\n"),
    ));
    ok(&weir(
        &url,
        &["produce", "events", "--records"],
        Some("{\"value\":\"rec\",\"partition\":1}\n"),
    ));

    let lines = ok(&weir(
        &url,
        &["consume", "events", "--partition", "1", "--value-only"],
        None,
    ));
    assert_eq!(lines.lines().collect::<Vec<_>>(), vec!["one", "two", "three", "rec"]);
    let all = ok(&weir(&url, &["consume", "events"], None));
    let records: Vec<Value> = all.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 5);
    let followed = ok(&weir(
        &url,
        &[
            "consume",
            "events",
            "--follow",
            "--from",
            "earliest",
            "-n",
            "5",
            "--value-only",
        ],
        None,
    ));
    assert_eq!(followed.lines().count(), 5);

    ok(&weir(&url, &["topic", "delete", "events"], None));
    assert!(!ok(&weir(&url, &["topic", "list"], None)).contains("events"));
}

#[test]
fn cli_errors_carry_the_server_code_and_exit_non_zero() {
    let env = Env::start();
    let out = weir(&env.server.url, &["topic", "create", "bad/name"], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid_topic_name"), "{err}");
    let out = weir("http://127.0.0.1:1", &["topic", "list"], None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach"));
}

#[test]
fn cli_deploys_inspects_pauses_and_deletes_a_processor() {
    let env = Env::start();
    let url = env.server.url.clone();
    ok(&weir(&url, &["topic", "create", "in"], None));
    ok(&weir(&url, &["topic", "create", "out"], None));
    let wasm = crate::wasm::example("filter");
    let out = ok(&weir(
        &url,
        &[
            "processor",
            "deploy",
            "big",
            "--wasm",
            wasm.to_str().unwrap(),
            "--input",
            "in",
            "--output",
            "out",
            "-c",
            "field=n",
            "-c",
            "min=10",
        ],
        None,
    ));
    assert!(out.contains("deployed big"), "{out}");
    ok(&weir(
        &url,
        &["produce", "in", "--records"],
        Some("{\"value\":{\"n\":5}}\n{\"value\":{\"n\":50}}\n"),
    ));
    let mut consumed = String::new();
    for _ in 0..100 {
        consumed = ok(&weir(&url, &["consume", "out", "--value-only"], None));
        if !consumed.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(consumed.trim(), "{\"n\":50}");
    assert!(ok(&weir(&url, &["processor", "list"], None)).contains("big"));
    let status: Value = serde_json::from_str(&ok(&weir(&url, &["processor", "status", "big"], None))).unwrap();
    assert_eq!(status["config"]["min"], "10");
    ok(&weir(&url, &["processor", "pause", "big"], None));
    let status: Value = serde_json::from_str(&ok(&weir(&url, &["processor", "status", "big"], None))).unwrap();
    assert_eq!(status["state"], "paused");
    ok(&weir(&url, &["processor", "resume", "big"], None));
    ok(&weir(&url, &["processor", "delete", "big"], None));
    let out = weir(&url, &["processor", "status", "big"], None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("processor_not_found"));
}
