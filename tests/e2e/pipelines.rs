//! Pipeline files: several processors and the topics between them deployed from one TOML or
//! YAML file with `weir pipeline deploy` (or `weir processor deploy --pipeline`), and
//! `weir pipeline status` showing each stage's lag.

use serde_json::{Value, json};

use crate::cli::{ok, weir};
use crate::harness::Env;
use crate::processors::wait_for_records;
use crate::state::caught_up;
use crate::wasm::example;

fn pipeline_toml(wasm: &str) -> String {
    format!(
        r#"
name = "shop"

[[topics]]
name = "customers"
partitions = 2

[[topics]]
name = "orders"
partitions = 2

[[processors]]
name = "enrich"
input = "orders"
outputs = ["orders-enriched"]
join = {{ table = "customers", key = "/customer_id", as = "customer" }}

[[processors]]
name = "per-customer"
input = "orders-enriched"
outputs = ["orders-per-customer"]
aggregate = {{ op = "sum", path = "/amount" }}

[[processors]]
name = "shout"
input = "orders"
outputs = ["orders-loud"]
wasm = "{wasm}"
"#
    )
}

#[test]
fn a_toml_pipeline_makes_its_topics_deploys_its_stages_and_shows_their_lag() {
    let env = Env::start();
    let url = env.server.url.clone();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shop.toml");
    let wasm = example("uppercase");
    std::fs::write(&file, pipeline_toml(wasm.to_str().unwrap())).unwrap();
    let out = ok(&weir(&url, &["pipeline", "deploy", file.to_str().unwrap()], None));
    for line in [
        "topic orders-enriched: created",
        "processor enrich: orders -> orders-enriched (running)",
        "processor shout:",
    ] {
        assert!(out.contains(line), "{line} in {out}");
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let api = &env.api;
        let (_, t) = api.get("/v1/topics/orders").await;
        assert_eq!(
            t["partitions"].as_array().unwrap().len(),
            2,
            "as [[topics]] declares it"
        );
        api.produce("customers", json!([{"key": "c1", "value": {"name": "Ada"}}]))
            .await;
        api.produce(
            "orders",
            json!([{"key": "c1", "value": {"customer_id": "c1", "amount": 5}},
                   {"key": "c1", "value": {"customer_id": "c1", "amount": 7}}]),
        )
        .await;
        for stage in ["enrich", "per-customer", "shout"] {
            caught_up(api, stage).await;
        }
        let totals = wait_for_records(api, "orders-per-customer", 1).await;
        let last: Value = serde_json::from_str(totals.last().unwrap()["value"].as_str().unwrap()).unwrap();
        assert_eq!(last, json!({"key": "c1", "sum": 12}));
        let loud = wait_for_records(api, "orders-loud", 2).await;
        assert!(loud[0]["value"].as_str().unwrap().contains("CUSTOMER_ID"));
    });
    let status = ok(&weir(&url, &["pipeline", "status", file.to_str().unwrap()], None));
    let lines: Vec<&str> = status.lines().collect();
    assert!(lines[0].starts_with("STAGE") && lines[0].contains("LAG_MS"), "{status}");
    for stage in ["enrich", "per-customer", "shout"] {
        let row = lines
            .iter()
            .find(|l| l.starts_with(stage))
            .unwrap_or_else(|| panic!("{stage} in {status}"));
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!((cells[1], cells[3], cells[4]), ("running", "0", "0"), "{row}");
    }
    assert!(status.contains("shop: end to end: 0 ms"), "{status}");
    // Deploying it again changes nothing but redeploys (offsets are kept).
    let again = ok(&weir(
        &url,
        &["processor", "deploy", "--pipeline", file.to_str().unwrap()],
        None,
    ));
    assert!(!again.contains("created"), "{again}");
}

#[test]
fn a_yaml_pipeline_deploys_the_same_and_a_bad_file_says_what_to_fix() {
    let env = Env::start();
    let url = env.server.url.clone();
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("p.yaml");
    std::fs::write(
        &yaml,
        "processors:\n  - name: counts\n    input: clicks\n    outputs: [clicks-per-key]\n    aggregate: {op: count}\n",
    )
    .unwrap();
    let out = ok(&weir(&url, &["pipeline", "deploy", yaml.to_str().unwrap()], None));
    assert!(
        out.contains("topic clicks: created") && out.contains("processor counts: clicks -> clicks-per-key"),
        "{out}"
    );
    // Nothing is made when a stage is wrong: the file is checked first.
    let half = dir.path().join("half.toml");
    std::fs::write(
        &half,
        "[[processors]]\nname = \"h1\"\ninput = \"h-in\"\noutputs = [\"h-out\"]\naggregate = { op = \"count\" }\n\n[[processors]]\nname = \"h2\"\ninput = \"h-out\"\noutputs = [\"h-sum\"]\naggregate = { op = \"sum\", path = \"amount\" }\n",
    )
    .unwrap();
    let out = weir(&url, &["pipeline", "deploy", half.to_str().unwrap()], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("processor 'h2'") && err.contains("\"/amount\""),
        "{err}"
    );
    let topics = ok(&weir(&url, &["topic", "list"], None));
    assert!(!topics.contains("h-in"), "nothing was made: {topics}");
    let out = weir(&url, &["pipeline", "status", half.to_str().unwrap()], None);
    let (stdout, err) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        !out.status.success() && stdout.contains("h1     missing") && err.contains("'h1' is not deployed"),
        "{stdout}{err}"
    );
    // A topic keeps its partitions: a file that declares others is refused.
    let clash = dir.path().join("clash.yaml");
    std::fs::write(
        &clash,
        "topics:\n  - {name: clicks, partitions: 3}\nprocessors:\n  - {name: c2, input: clicks, outputs: [c2-out], aggregate: {op: count}}\n",
    )
    .unwrap();
    let out = weir(&url, &["pipeline", "deploy", clash.to_str().unwrap()], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("topic 'clicks' exists with 1 partitions, and the file declares 3"),
        "{err}"
    );
    let bad = [
        ("a.json", "{}", "ends in .toml, .yaml or .yml"),
        ("b.toml", "[[processors]]\ninput = \"x\"\n", "needs a name"),
        ("c.toml", "colour = 1\n", "unknown field `colour`"),
        (
            "d.toml",
            "[[processors]]\nname = \"x\"\ninput = \"clicks\"\noutputs = [\"o\"]\n",
            "needs a module",
        ),
        ("e.yaml", "processors: []\n", "1 to 64"),
    ];
    for (name, text, message) in bad {
        let f = dir.path().join(name);
        std::fs::write(&f, text).unwrap();
        let out = weir(&url, &["pipeline", "deploy", f.to_str().unwrap()], None);
        assert!(!out.status.success(), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(message), "{name}: wanted '{message}' in {err}");
    }
}
