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

#[test]
fn consume_follow_starts_at_the_end_and_reconnects_when_the_broker_restarts() {
    let mut env = Env::start();
    let url = env.server.url.clone();
    ok(&weir(&url, &["topic", "create", "f"], None));
    ok(&weir(&url, &["produce", "f", "before"], None));
    let child = Command::new(BIN)
        .args(["consume", "f", "--follow", "--value-only", "-n", "2"])
        .env("WEIR_URL", &url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    ok(&weir(&url, &["produce", "f", "one"], None));
    std::thread::sleep(std::time::Duration::from_millis(300));
    env.server.kill();
    env.server.restart_same_port();
    assert_eq!(env.server.url, url);
    ok(&weir(&url, &["produce", "f", "two"], None));
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "one\ntwo\n",
        "from the end, across the restart, no gap"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("reconnecting"));
}

#[test]
fn consume_into_a_closed_pipe_exits_quietly() {
    let env = Env::start();
    let url = env.server.url.clone();
    ok(&weir(&url, &["topic", "create", "p"], None));
    let lines: String = (0..20_000).map(|i| format!("v{i}\n")).collect();
    ok(&weir(&url, &["produce", "p"], Some(&lines)));
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("'{BIN}' consume p --value-only | head -3"))
        .env("WEIR_URL", &url)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "v0\nv1\nv2\n");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("Broken pipe"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn produce_records_keeps_the_json_as_written() {
    let env = Env::start();
    let url = env.server.url.clone();
    ok(&weir(&url, &["topic", "create", "j"], None));
    ok(&weir(
        &url,
        &["produce", "j", "--records"],
        Some("{\"value\": {\"b\": 1.50, \"a\": [1, 2]}}\n"),
    ));
    let out = ok(&weir(&url, &["consume", "j", "--value-only"], None));
    assert_eq!(out, "{\"b\":1.50,\"a\":[1,2]}\n");
}

#[test]
fn processor_commands_say_replaced_align_their_list_and_print_readable_times() {
    let env = Env::start();
    let url = env.server.url.clone();
    for t in ["in", "out"] {
        ok(&weir(&url, &["topic", "create", t], None));
    }
    let wasm = crate::wasm::chaos();
    let wasm = wasm.to_str().unwrap();
    let deploy = [
        "processor",
        "deploy",
        "a-rather-long-processor-name",
        "--wasm",
        wasm,
        "--input",
        "in",
        "--output",
        "out",
    ];
    let first = ok(&weir(&url, &deploy, None));
    assert!(first.starts_with("deployed"), "{first}");
    let again = weir(&url, &deploy, None);
    assert!(ok(&again).starts_with("replaced the running processor"));
    assert!(String::from_utf8_lossy(&again.stderr).contains("was running"));
    ok(&weir(&url, &["produce", "in", "log:hello"], None));
    std::thread::sleep(std::time::Duration::from_millis(500));
    let list = ok(&weir(&url, &["processor", "list"], None));
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    // Right-aligned numbers end in the same column as their headings.
    let end_of = |line: &str, col: usize| {
        let mut ends = Vec::new();
        let bytes = line.as_bytes();
        for i in 0..bytes.len() {
            if bytes[i] != b' ' && (i + 1 == bytes.len() || bytes[i + 1] == b' ') {
                ends.push(i);
            }
        }
        ends[col]
    };
    for col in 3..7 {
        assert_eq!(end_of(lines[0], col), end_of(lines[1], col), "column {col}:\n{list}");
    }
    let mut child = Command::new(BIN)
        .args(["processor", "logs", "a-rather-long-processor-name"])
        .env("WEIR_URL", &url)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let logs = String::from_utf8_lossy(&out.stdout);
    let line = logs
        .lines()
        .find(|l| l.contains("hello"))
        .unwrap_or_else(|| panic!("{logs}"));
    assert!(
        line.starts_with("20") && line.as_bytes()[10] == b' ' && line.contains('Z'),
        "{line}"
    );
}
