//! `weir processor test`: runs real components built from examples/, with no server.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

use crate::harness::BIN;
use crate::wasm::example;

fn processor_test(wasm: &std::path::Path, config: &[&str], input: &str) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(["processor", "test"]).arg(wasm);
    for c in config {
        cmd.args(["--config", c]);
    }
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
