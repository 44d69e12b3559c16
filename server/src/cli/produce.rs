//! `weir produce TOPIC [VALUE]`: one record from the argument, or one per line of stdin, sent
//! in batches, with a progress bar when stderr is a terminal.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::{Client, ServerArg};

#[derive(Debug, clap::Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    server: ServerArg,
    topic: String,
    /// The value to send; without it, each line of standard input is one record.
    value: Option<String>,
    /// Key of every record (records with one key share a partition).
    #[arg(long, short)]
    key: Option<String>,
    /// Send to this partition.
    #[arg(long, short)]
    partition: Option<u32>,
    /// A header NAME=VALUE (repeatable).
    #[arg(long = "header", short = 'H', value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// Treat each stdin line as a whole record object ({"key":..,"value":..}), not a value.
    #[arg(long)]
    records: bool,
    /// Records per request when reading stdin.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("'{s}' is not NAME=VALUE"))
}

impl ProduceArgs {
    /// The record object of one value or stdin line, as JSON text. With `--records` the line
    /// is sent exactly as written (key order, number spelling), once checked to be an object.
    fn record(&self, line: &str) -> anyhow::Result<String> {
        if self.records {
            let raw: &serde_json::value::RawValue =
                serde_json::from_str(line).with_context(|| format!("not a JSON record object: {line}"))?;
            if !raw.get().starts_with('{') {
                bail!("with --records each line is a JSON object like {{\"key\":\"k\",\"value\":\"v\"}}: {line}");
            }
            return Ok(raw.get().to_owned());
        }
        let mut r = Map::new();
        r.insert("value".into(), json!(line));
        if let Some(k) = &self.key {
            r.insert("key".into(), json!(k));
        }
        if let Some(p) = self.partition {
            r.insert("partition".into(), json!(p));
        }
        if !self.headers.is_empty() {
            let h: Map<String, Value> = self.headers.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            r.insert("headers".into(), Value::Object(h));
        }
        Ok(Value::Object(r).to_string())
    }
}

/// Sends record objects (JSON text) as one NDJSON request.
async fn send(client: &Client, topic: &str, records: Vec<String>) -> anyhow::Result<Value> {
    client
        .json(
            client
                .request(Method::POST, &format!("/v1/topics/{topic}/records"))
                .header("content-type", "application/x-ndjson")
                .body(records.join("\n")),
        )
        .await
}

pub async fn run(args: ProduceArgs) -> anyhow::Result<()> {
    let client = args.server.client()?;
    if let Some(value) = &args.value {
        let answer = send(&client, &args.topic, vec![args.record(value)?]).await?;
        let o = &answer["offsets"][0];
        println!("partition {} offset {}", o["partition"], o["offset"]);
        return Ok(());
    }
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {human_pos} records sent ({per_sec}) {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar
    });
    let (tx, mut rx) = tokio::sync::mpsc::channel::<anyhow::Result<String>>(args.batch.max(1) * 4);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if tx.blocking_send(line.map_err(Into::into)).is_err() {
                break;
            }
        }
    });
    let mut batch = Vec::with_capacity(args.batch);
    let (mut sent, mut line_no) = (0u64, 0u64);
    loop {
        let line = rx.recv().await;
        let done = line.is_none();
        if let Some(line) = line {
            let line = line.context("cannot read standard input")?;
            line_no += 1;
            if !line.is_empty() {
                batch.push(
                    args.record(&line)
                        .with_context(|| format!("line {line_no} of standard input"))?,
                );
            }
        }
        if (done && !batch.is_empty()) || batch.len() >= args.batch.max(1) || (rx.is_empty() && !batch.is_empty()) {
            let n = batch.len() as u64;
            send(&client, &args.topic, std::mem::take(&mut batch)).await?;
            sent += n;
            if let Some(bar) = &bar {
                bar.set_position(sent);
            }
        }
        if done {
            break;
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    eprintln!("produced {sent} records to {}", args.topic);
    Ok(())
}
