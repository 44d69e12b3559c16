//! `weir pipeline deploy|status FILE` (and `weir processor deploy --pipeline FILE`): several
//! processors and the topics between them, from one TOML or YAML file.
//!
//! ```toml
//! [[topics]]                      # made if missing, with these settings (POST /v1/topics)
//! name = "orders"
//! partitions = 2
//!
//! [[processors]]                  # in order; each is a PUT /v1/processors/{name} body,
//! name = "per-minute"             # plus `wasm` (a component to upload) or `project` (a
//! input = "orders"                # processor project to build), or a built-in.
//! outputs = ["orders-per-minute"]
//! aggregate = { op = "count" }
//! window = { type = "tumbling", size_ms = 60000, grace_ms = 5000 }
//! ```
//!
//! Every topic a stage names (input, outputs, tables, a late-records topic) that does not
//! exist is made: as `[[topics]]` declares it, else with the broker's defaults.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Client, project};

/// Most stages of one pipeline file.
const STAGES_MAX: usize = 64;

#[derive(Debug, clap::Subcommand)]
pub enum PipelineCommand {
    /// Make the file's topics (if missing) and deploy its processors, in order.
    Deploy { file: PathBuf },
    /// Each stage's state, lag in records and the age of its oldest unprocessed record.
    Status { file: PathBuf },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PipelineFile {
    /// A name for the output (optional).
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    topics: Vec<Map<String, Value>>,
    processors: Vec<Map<String, Value>>,
}

/// One stage: its name, where its component comes from, and the deploy body.
struct Stage {
    name: String,
    wasm: Option<PathBuf>,
    project: Option<PathBuf>,
    spec: Map<String, Value>,
}

fn parse(file: &Path) -> anyhow::Result<(PipelineFile, Vec<Stage>)> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let ext = file.extension().and_then(|e| e.to_str()).unwrap_or_default();
    let parsed: PipelineFile = match ext {
        "yaml" | "yml" => {
            serde_yaml_ng::from_str(&text).with_context(|| format!("{} is not a pipeline file", file.display()))?
        }
        "toml" => toml::from_str(&text).with_context(|| format!("{} is not a pipeline file", file.display()))?,
        other => bail!(
            "{}: a pipeline file ends in .toml, .yaml or .yml, not '.{other}'",
            file.display()
        ),
    };
    if parsed.processors.is_empty() || parsed.processors.len() > STAGES_MAX {
        bail!("{}: a pipeline has 1 to {STAGES_MAX} [[processors]]", file.display());
    }
    let base = file.parent().unwrap_or(Path::new("."));
    let mut stages: Vec<Stage> = Vec::new();
    for (i, p) in parsed.processors.iter().enumerate() {
        let mut spec = p.clone();
        let name = match spec.remove("name") {
            Some(Value::String(n)) => n,
            _ => bail!("{}: processor {} needs a name", file.display(), i + 1),
        };
        if stages.iter().any(|s| s.name == name) {
            bail!("{}: processor '{name}' is listed twice", file.display());
        }
        let path = |key: &str, spec: &mut Map<String, Value>| -> anyhow::Result<Option<PathBuf>> {
            match spec.remove(key) {
                None => Ok(None),
                Some(Value::String(p)) => Ok(Some(base.join(p))),
                Some(_) => bail!("{}: processor '{name}': {key} is a path", file.display()),
            }
        };
        let wasm = path("wasm", &mut spec)?;
        let project = path("project", &mut spec)?;
        if wasm.is_some() && project.is_some() {
            bail!(
                "{}: processor '{name}' names wasm and project; give one",
                file.display()
            );
        }
        stages.push(Stage {
            name,
            wasm,
            project,
            spec,
        });
    }
    for t in &parsed.topics {
        if !matches!(t.get("name"), Some(Value::String(_))) {
            bail!("{}: every [[topics]] entry needs a name", file.display());
        }
    }
    Ok((parsed, stages))
}

/// The topics a stage reads or writes.
fn topics_of(spec: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    let mut add = |v: Option<&Value>| {
        if let Some(Value::String(s)) = v
            && !out.contains(s)
        {
            out.push(s.clone());
        }
    };
    add(spec.get("input"));
    for list in ["outputs", "tables"] {
        if let Some(Value::Array(a)) = spec.get(list) {
            a.iter().for_each(|v| add(Some(v)));
        }
    }
    add(spec.get("join").and_then(|j| j.get("table")));
    add(spec
        .get("window")
        .and_then(|w| w.get("late"))
        .and_then(|l| l.get("topic")));
    out
}

pub async fn run(client: &Client, command: PipelineCommand) -> anyhow::Result<()> {
    match command {
        PipelineCommand::Deploy { file } => deploy(client, &file).await,
        PipelineCommand::Status { file } => status(client, &file).await,
    }
}

/// The partition count of `topic` if it exists.
async fn partitions_of(client: &Client, topic: &str) -> anyhow::Result<Option<u64>> {
    let resp = client
        .request(Method::GET, &format!("/v1/topics/{topic}"))
        .send()
        .await
        .context("cannot reach the Weir server")?;
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let t = client
        .json(client.request(Method::GET, &format!("/v1/topics/{topic}")))
        .await?;
    Ok(Some(t["partitions"].as_array().map_or(0, |p| p.len() as u64)))
}

/// Checks every stage before anything is made: its body as the broker would check it, and
/// the partition counts a join or lookup needs against the topics as they are or will be.
fn check_stages(
    file: &Path,
    stages: &[Stage],
    partitions: &std::collections::BTreeMap<String, Option<u64>>,
) -> anyhow::Result<()> {
    for s in stages {
        let mut body = s.spec.clone();
        if s.wasm.is_some() || s.project.is_some() {
            body.insert("module".into(), json!("sha256:to-be-uploaded"));
        }
        let spec: crate::processor::spec::ProcessorSpec = serde_json::from_value(Value::Object(body))
            .with_context(|| format!("{}: processor '{}'", file.display(), s.name))?;
        spec.validate()
            .map_err(|e| anyhow::anyhow!("{}: processor '{}': {e}", file.display(), s.name))?;
        let input = partitions.get(&spec.input).copied().flatten();
        for t in spec.table_names() {
            if let (Some(i), Some(Some(n))) = (input, partitions.get(&t))
                && i != *n
            {
                bail!(
                    "{}: processor '{}': table '{t}' has {n} partitions and input '{}' has {i}; give them the same count",
                    file.display(),
                    s.name,
                    spec.input
                );
            }
        }
    }
    Ok(())
}

async fn exists(client: &Client, topic: &str) -> anyhow::Result<bool> {
    Ok(partitions_of(client, topic).await?.is_some())
}

pub async fn deploy(client: &Client, file: &Path) -> anyhow::Result<()> {
    let (parsed, stages) = parse(file)?;
    // Every topic the stages name, in order of first mention, declared ones first.
    let mut wanted: Vec<(String, Map<String, Value>)> = parsed
        .topics
        .iter()
        .map(|t| (t["name"].as_str().unwrap_or_default().to_owned(), t.clone()))
        .collect();
    for s in &stages {
        for t in topics_of(&s.spec) {
            if !wanted.iter().any(|(n, _)| *n == t) {
                wanted.push((t.clone(), Map::from_iter([("name".to_owned(), json!(t))])));
            }
        }
    }
    // What each topic has, or will have: as it is, else as declared (None: the defaults).
    let mut partitions = std::collections::BTreeMap::new();
    for (name, body) in &wanted {
        let now = partitions_of(client, name).await?;
        let declared = body.get("partitions").and_then(Value::as_u64);
        if let (Some(n), Some(d)) = (now, declared)
            && n != d
        {
            bail!(
                "{}: topic '{name}' exists with {n} partitions, and the file declares {d}; a topic keeps its partitions: change the file, or delete the topic first",
                file.display()
            );
        }
        partitions.insert(name.clone(), now.or(declared));
    }
    check_stages(file, &stages, &partitions)?;
    for (name, body) in &wanted {
        if !exists(client, name).await? {
            client
                .json(client.request(Method::POST, "/v1/topics").json(body))
                .await
                .with_context(|| format!("cannot create topic '{name}'"))?;
            println!("topic {name}: created");
        }
    }
    for s in stages {
        let mut spec = s.spec.clone();
        let built = match (&s.wasm, &s.project) {
            (Some(w), _) => Some(w.clone()),
            (None, Some(dir)) => {
                let p = project::Project::open(dir).with_context(|| format!("processor '{}'", s.name))?;
                Some(tokio::task::spawn_blocking(move || p.build()).await??)
            }
            (None, None) => None,
        };
        if let Some(wasm) = built {
            spec.insert("module".into(), client.upload_module(&wasm).await?["id"].clone());
        }
        let answer = client
            .json(
                client
                    .request(Method::PUT, &format!("/v1/processors/{}", s.name))
                    .json(&Value::Object(spec)),
            )
            .await
            .with_context(|| format!("cannot deploy processor '{}'", s.name))?;
        println!(
            "processor {}: {} -> {} ({})",
            s.name,
            answer["input"].as_str().unwrap_or("?"),
            answer["outputs"]
                .as_array()
                .map(|o| o.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
                .unwrap_or_default(),
            answer["state"].as_str().unwrap_or("?")
        );
    }
    if let Some(n) = parsed.name {
        println!("pipeline {n} deployed");
    }
    Ok(())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// How old the oldest record `view`'s tasks have not processed is (ms), if any waits.
async fn oldest_waiting_ms(client: &Client, view: &Value) -> anyhow::Result<Option<i64>> {
    let input = view["input"].as_str().unwrap_or_default();
    let mut oldest = None;
    for p in view["lag"].as_array().into_iter().flatten() {
        if p["lag"].as_u64().unwrap_or(0) == 0 {
            continue;
        }
        let path = format!(
            "/v1/topics/{input}/partitions/{}/records?offset={}&max_records=1",
            p["partition"], p["committed_offset"]
        );
        let page = client.json(client.request(Method::GET, &path)).await?;
        if let Some(ts) = page["records"][0]["timestamp"].as_i64() {
            let age = (now_ms() - ts).max(0);
            oldest = Some(oldest.map_or(age, |o: i64| o.max(age)));
        }
    }
    Ok(oldest)
}

pub async fn status(client: &Client, file: &Path) -> anyhow::Result<()> {
    let (parsed, stages) = parse(file)?;
    let mut rows: Vec<[String; 9]> = vec![[
        "STAGE".to_owned(),
        "STATE".into(),
        "INPUT".into(),
        "LAG".into(),
        "LAG_MS".into(),
        "IN".into(),
        "OUT".into(),
        "ERRORS".into(),
        "LATE".into(),
    ]];
    let mut total_ms = 0i64;
    let mut astray = Vec::new();
    for s in &stages {
        let resp = client
            .request(Method::GET, &format!("/v1/processors/{}", s.name))
            .send()
            .await
            .context("cannot reach the Weir server")?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            let mut row: [String; 9] = Default::default();
            row[0] = s.name.clone();
            row[1] = "missing".into();
            row[2] = s.spec.get("input").and_then(Value::as_str).unwrap_or("?").to_owned();
            rows.push(row);
            astray.push(format!("'{}' is not deployed", s.name));
            continue;
        }
        let view = client
            .json(client.request(Method::GET, &format!("/v1/processors/{}", s.name)))
            .await
            .with_context(|| format!("stage '{}'", s.name))?;
        let wanted_input = s.spec.get("input").and_then(Value::as_str);
        let differs = wanted_input.is_some_and(|i| view["input"].as_str() != Some(i));
        if differs {
            astray.push(format!(
                "'{}' reads '{}', the file says '{}'",
                s.name,
                view["input"].as_str().unwrap_or("?"),
                wanted_input.unwrap_or("?")
            ));
        }
        let lag: u64 = view["lag"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| p["lag"].as_u64().unwrap_or(0))
            .sum();
        let age = oldest_waiting_ms(client, &view).await?.unwrap_or(0);
        total_ms += age;
        let n = |k: &str| view[k].as_u64().unwrap_or(0).to_string();
        rows.push([
            s.name.clone(),
            if differs {
                "differs".to_owned()
            } else {
                view["state"].as_str().unwrap_or("?").to_owned()
            },
            view["input"].as_str().unwrap_or("?").to_owned(),
            lag.to_string(),
            age.to_string(),
            n("records_in"),
            n("records_out"),
            n("errors"),
            n("late"),
        ]);
    }
    super::processor::print_table(&rows, 3);
    println!(
        "{}end to end: {total_ms} ms (the oldest unprocessed record of each stage, added up)",
        parsed.name.map(|n| format!("{n}: ")).unwrap_or_default()
    );
    if !astray.is_empty() {
        bail!(
            "the pipeline is not deployed as {} says: {} (weir pipeline deploy deploys it)",
            file.display(),
            astray.join("; ")
        );
    }
    Ok(())
}
