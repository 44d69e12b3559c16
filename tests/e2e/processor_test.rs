//! `weir processor test`: runs real components built from examples/, with no server.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

use crate::harness::BIN;
use crate::wasm::{example, guest_project};

fn processor_test(wasm: &std::path::Path, config: &[&str], input: &str) -> Output {
    let args: Vec<String> = config
        .iter()
        .flat_map(|c| ["--config".to_owned(), c.to_string()])
        .collect();
    processor_test_with(wasm, &args, input)
}

fn processor_test_with(wasm: &std::path::Path, args: &[String], input: &str) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(["processor", "test"]).arg(wasm).args(args);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn uppercase_uppercases_values_and_keeps_keys_and_headers() {
    let out = processor_test(
        &example("uppercase"),
        &[],
        "{\"key\":\"k\",\"value\":\"hello weir\",\"headers\":{\"h\":\"v\"}}\n{\"value\":\"x\"}\n",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        lines(&out),
        vec![
            json!({"key": "k", "value": "HELLO WEIR", "headers": {"h": "v"}, "output": null, "input_offset": 0}),
            json!({"key": null, "value": "X", "headers": {}, "output": null, "input_offset": 1}),
        ]
    );
}

#[test]
fn filter_keeps_records_at_or_above_min_and_reports_bad_ones() {
    let input = "{\"value\":{\"amount\":50}}\n{\"value\":{\"amount\":150}}\n{\"value\":\"oops\"}\n{\"value\":{\"amount\":100}}\n";
    let out = processor_test(&example("filter"), &["field=amount", "min=100"], input);
    let values: Vec<_> = lines(&out).iter().map(|l| l["value"].clone()).collect();
    assert_eq!(values, vec![json!("{\"amount\":150}"), json!("{\"amount\":100}")]);
    assert!(!out.status.success(), "a failed record makes the run fail");
    assert!(String::from_utf8_lossy(&out.stderr).contains("record at offset 2 failed"));
}

#[test]
fn router_sends_each_record_to_its_output() {
    let input = "{\"value\":{\"region\":\"us\"}}\n{\"value\":{\"region\":\"eu\"}}\n{\"value\":{\"region\":\"mars\"}}\n";
    let out = processor_test(
        &example("router"),
        &["field=region", "routes=eu:0,us:1", "default=2"],
        input,
    );
    assert!(out.status.success());
    let outputs: Vec<_> = lines(&out).iter().map(|l| l["output"].clone()).collect();
    assert_eq!(outputs, vec![json!(1), json!(0), json!(2)]);
}

#[test]
fn split_emits_one_record_per_word() {
    let out = processor_test(
        &example("split"),
        &[],
        "{\"key\":\"s\",\"value\":\"the quick brown fox\"}\n",
    );
    let words: Vec<_> = lines(&out)
        .iter()
        .map(|l| l["value"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(words, ["the", "quick", "brown", "fox"]);
}

#[test]
fn init_rejection_and_non_components_are_clear_errors() {
    let out = processor_test(&example("filter"), &["field=amount"], "");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing config parameter 'min'"));

    let dir = tempfile::tempdir().unwrap();
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let err = String::from_utf8_lossy(&processor_test(&core, &[], "").stderr).into_owned();
    assert!(
        err.contains("core WebAssembly module") && err.contains("wasm32-wasip2"),
        "{err}"
    );
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not wasm at all").unwrap();
    assert!(String::from_utf8_lossy(&processor_test(&junk, &[], "").stderr).contains("not WebAssembly"));
}

/// `(key, value)` of each output line.
fn outputs(out: &Output) -> Vec<(String, String)> {
    lines(out)
        .iter()
        .map(|l| {
            (
                l["key"].as_str().unwrap_or("").to_owned(),
                l["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn a_stateful_processor_keeps_state_for_the_run_and_dumps_and_loads_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state.json");
    let f = file.to_str().unwrap().to_owned();
    let words = "{\"value\":\"apple\"}\n{\"value\":\"pear\"}\n{\"value\":\"apple\"}\n";
    let args = |more: &[&str]| -> Vec<String> {
        let mut a = vec!["--store".to_owned(), "counts".to_owned()];
        a.extend(more.iter().map(|s| s.to_string()));
        a
    };
    let out = processor_test_with(&example("wordcount"), &args(&["--dump-state", &f]), words);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(outputs(&out), pairs(&[("apple", "1"), ("pear", "1"), ("apple", "2")]));
    let dumped: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(
        dumped["stores"]["counts"],
        json!([{"key": "apple", "value": "2"}, {"key": "pear", "value": "1"}])
    );
    assert_eq!(dumped["timers"], json!([]));

    // Loaded again (and dumped over the same file), counting goes on.
    let out = processor_test_with(
        &example("wordcount"),
        &args(&["--load-state", &f, "--dump-state", &f]),
        "{\"value\":\"apple\"}\n{\"value\":\"kiwi\"}\n",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(outputs(&out), pairs(&[("apple", "3"), ("kiwi", "1")]));
    let dumped: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(dumped["stores"]["counts"].as_array().unwrap().len(), 3, "{dumped}");

    // Without --store the processor has no store, and says so through its dead letter.
    let out = processor_test_with(&example("wordcount"), &[], words);
    assert!(!out.status.success());
    assert!(lines(&out).is_empty());
}

#[test]
fn a_bad_state_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    for (content, says) in [
        ("not json", "state.json"),
        ("{\"stores\": {\"counts\": [{\"key\": \"a\"}]}}", "value"),
        (
            "{\"stores\": {\"counts\": [{\"key_b64\": \"%%\", \"value\": \"1\"}]}}",
            "base64",
        ),
        (
            "{\"stores\": {}, \"timers\": [{\"key\": \"t\", \"at\": 5, \"domain\": \"someday\"}]}",
            "domain",
        ),
        (
            r#"{"stores": {"counts": [{"key": "a", "value": "1"}, {"key": "a", "value": "2"}]}}"#,
            "twice",
        ),
        (
            r#"{"stores": {"counts": [{"key": "a", "key_b64": "YQ==", "value": "1"}]}}"#,
            "not both",
        ),
    ] {
        let file = dir.path().join("state.json");
        std::fs::write(&file, content).unwrap();
        let args = vec![
            "--store".into(),
            "counts".into(),
            "--load-state".into(),
            file.to_str().unwrap().to_owned(),
        ];
        let out = processor_test_with(&example("wordcount"), &args, "{\"value\":\"a\"}\n");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{content}");
        assert!(err.contains(says), "{content}: {err}");
        assert!(lines(&out).is_empty(), "{content}: nothing ran");
    }
    let args = vec![
        "--load-state".into(),
        dir.path().join("missing.json").to_str().unwrap().to_owned(),
    ];
    let out = processor_test_with(&example("wordcount"), &args, "");
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.json"));
}

#[test]
fn timers_fire_after_each_batch_and_a_failing_records_writes_are_undone() {
    let c = guest_project("state-api/c");
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s.json").to_str().unwrap().to_owned();
    let args: Vec<String> = ["--store", "s", "--dump-state", &f]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let input = ["set a 1", "fail a 9", "get a", "timer t 1000"]
        .iter()
        .map(|c| format!("{{\"value\":\"{c}\",\"timestamp\":5000}}\n"))
        .collect::<String>();
    let out = processor_test_with(&c, &args, &input);
    let got = lines(&out);
    let values: Vec<&str> = got.iter().map(|l| l["value"].as_str().unwrap()).collect();
    assert_eq!(values, ["ok", "1", "ok", "fired t 1000"]);
    let fired = got.last().unwrap();
    assert_eq!(fired["input_offset"], Value::Null, "{fired}");
    assert_eq!(fired["timer"]["at"], 1000, "{fired}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("record at offset 1 failed"));
    let dumped: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
    assert_eq!(dumped["stores"]["s"], json!([{"key": "a", "value": "1"}]));
    assert_eq!(dumped["watermark"], 5000);
    assert_eq!(dumped["timers"], json!([]), "the fired timer is gone");
}
