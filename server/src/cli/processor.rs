//! `weir processor ...`: `new` and `build` work on a project (see [`super::project`]), `test`
//! runs a processor locally with no server, the others talk to the server.

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde_json::{Map, Value, json};

use reqwest::Method;

use super::{Client, project};
use crate::wasm::GuestLimits;

#[derive(Debug, clap::Subcommand)]
pub enum ProcessorCommand {
    /// Write a new processor project (rust, python, js, c, zig or assemblyscript) that passes
    /// records through unchanged.
    New(NewArgs),
    /// Build the project in DIR (default: here) into a component; prints the .wasm's path.
    Build(BuildArgs),
    /// Upload a component and deploy it (creates or redeploys; offsets are kept). Inside a
    /// project, builds it and takes defaults from processor.toml.
    Deploy(Box<DeployArgs>),
    /// List processors with their state and counters.
    List,
    /// Print a processor's full status as JSON.
    Status { name: String },
    /// Print a processor's log (recent lines, then new ones as they come).
    Logs { name: String },
    /// Stop processing until resumed.
    Pause { name: String },
    /// Continue a paused processor.
    Resume { name: String },
    /// Delete a processor (its input and output topics stay).
    Delete { name: String },
    /// Run a processor locally: NDJSON records (the produce API's shape) on stdin, one NDJSON
    /// line per emitted record on stdout, failures on stderr (exit status 1 if any record failed).
    Test(Box<super::processor_test::TestArgs>),
}

#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// The processor's name (also the built file's name).
    name: String,
    /// Language of the project.
    #[arg(long, value_enum)]
    lang: project::Language,
    /// Where to write it (default: ./NAME).
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// The project directory (holding processor.toml).
    #[arg(default_value = ".")]
    dir: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// The processor's name (default: the project's).
    name: Option<String>,
    /// Deploy every processor of a pipeline file (TOML or YAML) instead, making the topics
    /// between them; see `weir pipeline`.
    #[arg(long, conflicts_with_all = ["name", "wasm", "input", "outputs"])]
    pipeline: Option<PathBuf>,
    /// The component (.wasm) to upload (default: build the project).
    #[arg(long)]
    wasm: Option<PathBuf>,
    /// The project whose processor.toml gives defaults (and which is built without --wasm).
    #[arg(long, default_value = ".")]
    project: PathBuf,
    /// The input topic.
    #[arg(long)]
    input: Option<String>,
    /// An output topic (repeatable; the order gives the output indexes 0, 1, ...).
    #[arg(long = "output")]
    outputs: Vec<String>,
    /// A config parameter NAME=VALUE (repeatable; adds to processor.toml's [deploy.config]).
    #[arg(long = "config", short = 'c', value_parser = parse_pair)]
    config: Vec<(String, String)>,
    /// dead_letter (default), skip or stop.
    #[arg(long)]
    on_error: Option<String>,
    /// Where dead_letter writes failing records (default: NAME-dlq).
    #[arg(long)]
    dead_letter_topic: Option<String>,
    /// earliest (default), latest or an offset: where to start partitions with no committed offset.
    #[arg(long)]
    start: Option<String>,
    /// Longest one guest call may run, ms (default 1000).
    #[arg(long)]
    deadline_ms: Option<u64>,
    /// Memory cap of each instance, bytes (default 64 MiB).
    #[arg(long)]
    memory_bytes_max: Option<usize>,
    /// Records per guest call (default 1000).
    #[arg(long)]
    batch_records_max: Option<usize>,
    /// A keyed state store the processor uses (repeatable; adds to processor.toml's stores).
    #[arg(long = "store")]
    stores: Vec<String>,
    /// A table (a topic read as the latest value per key) the processor looks up (repeatable;
    /// adds to processor.toml's tables).
    #[arg(long = "table")]
    tables: Vec<String>,
    /// exactly_once (default) or at_least_once.
    #[arg(long)]
    guarantee: Option<String>,
    /// How long a task gathers outputs before it commits them, ms (default 100).
    #[arg(long)]
    commit_interval_ms: Option<u64>,
}

pub fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("'{s}' is not NAME=VALUE"))
}

/// Runs a processor subcommand; `test` needs no server, the others talk to `client`.
pub async fn run(client: &Client, command: ProcessorCommand) -> anyhow::Result<()> {
    let path = |name: &str, tail: &str| format!("/v1/processors/{name}{tail}");
    match command {
        ProcessorCommand::Test(args) => tokio::task::spawn_blocking(move || super::processor_test::run(*args)).await?,
        ProcessorCommand::New(a) => {
            let dir = a.dir.unwrap_or_else(|| PathBuf::from(&a.name));
            project::new(&a.name, a.lang, &dir)?;
            println!(
                "created {} ({}) in {}: cd there, then `weir processor build`",
                a.name,
                a.lang.name(),
                dir.display()
            );
            Ok(())
        }
        ProcessorCommand::Build(a) => {
            let built = tokio::task::spawn_blocking(move || project::Project::open(&a.dir)?.build()).await??;
            println!("{}", built.display());
            Ok(())
        }
        ProcessorCommand::Deploy(a) => deploy(client, *a).await,
        ProcessorCommand::List => {
            let v = client.json(client.request(Method::GET, "/v1/processors")).await?;
            let mut rows = vec![["NAME", "STATE", "INPUT", "IN", "OUT", "ERRORS", "LAG"].map(String::from)];
            for p in v["processors"].as_array().into_iter().flatten() {
                let lag: u64 = p["lag"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|l| l["lag"].as_u64().unwrap_or(0))
                    .sum();
                let n = |k: &str| p[k].as_u64().unwrap_or(0).to_string();
                let s = |k: &str| p[k].as_str().unwrap_or("").to_owned();
                rows.push([
                    s("name"),
                    s("state"),
                    s("input"),
                    n("records_in"),
                    n("records_out"),
                    n("errors"),
                    lag.to_string(),
                ]);
            }
            print_table(&rows, 3);
            Ok(())
        }
        ProcessorCommand::Status { name } => {
            let v = client.json(client.request(Method::GET, &path(&name, ""))).await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(())
        }
        ProcessorCommand::Logs { name } => logs(client, &path(&name, "/logs")).await,
        ProcessorCommand::Pause { name } => {
            client
                .json(client.request(Method::POST, &path(&name, "/pause")))
                .await?;
            println!("paused {name}");
            Ok(())
        }
        ProcessorCommand::Resume { name } => {
            client
                .json(client.request(Method::POST, &path(&name, "/resume")))
                .await?;
            println!("resumed {name}");
            Ok(())
        }
        ProcessorCommand::Delete { name } => {
            client.json(client.request(Method::DELETE, &path(&name, ""))).await?;
            println!("deleted {name}");
            Ok(())
        }
    }
}

/// Prints rows as columns as wide as their widest cell: text left-aligned, the columns from
/// `numbers_from` on right-aligned.
pub(super) fn print_table<const N: usize>(rows: &[[String; N]], numbers_from: usize) {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (cell, w))| {
                if i >= numbers_from {
                    format!("{cell:>w$}")
                } else {
                    format!("{cell:<w$}")
                }
            })
            .collect();
        println!("{}", cells.join("  ").trim_end());
    }
}

/// Whether `a` needs the project: for the component or for a setting the flags leave out.
fn needs_project(a: &DeployArgs) -> bool {
    a.wasm.is_none() || a.name.is_none() || a.input.is_none() || a.outputs.is_empty()
}

async fn deploy(client: &Client, a: DeployArgs) -> anyhow::Result<()> {
    if let Some(file) = &a.pipeline {
        return super::pipeline::deploy(client, file).await;
    }
    let project = if needs_project(&a) {
        let dir = a.project.clone();
        let opened = project::Project::open(&dir)
            .context("outside a processor project, deploy needs NAME, --wasm, --input and --output")?;
        Some(opened)
    } else {
        None
    };
    let defaults = project.as_ref().map(|p| p.manifest.deploy.clone()).unwrap_or_default();
    let wasm = match (&a.wasm, &project) {
        (Some(w), _) => w.clone(),
        (None, Some(p)) => {
            let p = p.clone();
            tokio::task::spawn_blocking(move || p.build()).await??
        }
        (None, None) => unreachable!("a project is opened when --wasm is missing"),
    };
    let name = a
        .name
        .clone()
        .or_else(|| project.as_ref().map(|p| p.manifest.name.clone()))
        .context("name the processor")?;
    let input = a
        .input
        .clone()
        .or(defaults.input.clone())
        .context("name the input topic: --input, or input in processor.toml's [deploy]")?;
    let outputs = if a.outputs.is_empty() {
        defaults.outputs.clone()
    } else {
        a.outputs.clone()
    };
    if outputs.is_empty() {
        bail!("name an output topic: --output, or outputs in processor.toml's [deploy]");
    }
    let module = client.upload_module(&wasm).await?;
    let id = module["id"]
        .as_str()
        .context("the server answered no module id")?
        .to_owned();
    let mut spec = json!({ "module": id, "input": input, "outputs": outputs });
    let mut config: Map<String, Value> = defaults.config.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    config.extend(a.config.into_iter().map(|(k, v)| (k, json!(v))));
    spec["config"] = Value::Object(config);
    if let Some(p) = a.on_error.or(defaults.on_error) {
        spec["on_error"] = json!(p);
    }
    if let Some(t) = a.dead_letter_topic.or(defaults.dead_letter_topic) {
        spec["dead_letter_topic"] = json!(t);
    }
    if let Some(s) = a.start.or(defaults.start) {
        spec["start"] = s.parse::<u64>().map_or(json!(s), |n| json!(n));
    }
    if let Some(n) = a.batch_records_max.or(defaults.batch_records_max) {
        spec["batch_records_max"] = json!(n);
    }
    let mut stores = defaults.stores.clone();
    stores.extend(a.stores.iter().filter(|s| !defaults.stores.contains(s)).cloned());
    if !stores.is_empty() {
        spec["stores"] = json!(stores);
    }
    let mut tables = defaults.tables.clone();
    tables.extend(a.tables.iter().filter(|t| !defaults.tables.contains(t)).cloned());
    if !tables.is_empty() {
        spec["tables"] = json!(tables);
    }
    if let Some(g) = a.guarantee.or(defaults.guarantee.clone()) {
        spec["guarantee"] = json!(g);
    }
    if let Some(ms) = a.commit_interval_ms.or(defaults.commit_interval_ms) {
        spec["commit_interval_ms"] = json!(ms);
    }
    let (deadline_ms, memory_bytes_max) = (
        a.deadline_ms.or(defaults.deadline_ms),
        a.memory_bytes_max.or(defaults.memory_bytes_max),
    );
    if deadline_ms.is_some() || memory_bytes_max.is_some() {
        let d = GuestLimits::default();
        spec["limits"] = json!({
            "deadline_ms": deadline_ms.unwrap_or(d.deadline_ms),
            "memory_bytes_max": memory_bytes_max.unwrap_or(d.memory_bytes_max),
            "output_bytes_max": d.output_bytes_max,
        });
    }
    let answer = client
        .send(
            client
                .request(Method::PUT, &format!("/v1/processors/{name}"))
                .json(&spec),
        )
        .await?;
    let replaced = answer.status() == reqwest::StatusCode::OK;
    let v: Value = answer.json().await.context("the server's answer is not JSON")?;
    println!(
        "{} {} ({}) from {} to {}: {}",
        if replaced {
            "replaced the running processor"
        } else {
            "deployed"
        },
        name,
        id,
        v["input"].as_str().unwrap_or(""),
        v["outputs"],
        v["state"].as_str().unwrap_or("")
    );
    if replaced {
        eprintln!("(a processor named {name} was running: it now runs this module, with its committed offsets)");
    }
    Ok(())
}

async fn logs(client: &Client, path: &str) -> anyhow::Result<()> {
    client
        .for_each_event(path, None, |kind, _, v| {
            if kind == "error" {
                anyhow::bail!("the broker ended the stream: {}", v["message"].as_str().unwrap_or(""));
            }
            let partition = v["partition"].as_u64().map_or(String::new(), |p| format!(" p{p}"));
            let (level, message) = (v["level"].as_str().unwrap_or(""), v["message"].as_str().unwrap_or(""));
            let when = super::time::utc(v["timestamp"].as_i64().unwrap_or(0));
            println!("{when} {level:<5}{partition} {message}");
            Ok(true)
        })
        .await
        .map(drop)
}
