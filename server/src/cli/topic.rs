//! `weir topic create|list|describe|delete`.

use reqwest::Method;
use serde_json::{Map, Value, json};

use super::Client;

#[derive(Debug, clap::Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        name: String,
        #[arg(long, short)]
        partitions: Option<u32>,
        /// Keep records this long (ms); -1 forever.
        #[arg(long, allow_negative_numbers = true)]
        retention_ms: Option<i64>,
        /// Keep at most this many bytes per partition; -1 for no limit.
        #[arg(long, allow_negative_numbers = true)]
        retention_bytes: Option<i64>,
        #[arg(long)]
        segment_bytes: Option<u64>,
        #[arg(long)]
        segment_ms: Option<i64>,
        /// always (default), interval or never.
        #[arg(long)]
        fsync: Option<String>,
        #[arg(long)]
        fsync_interval_ms: Option<u64>,
    },
    /// List topics with their partitions and record counts.
    List,
    /// Print a topic's settings and partitions as JSON.
    Describe { name: String },
    /// Delete a topic and all its records.
    Delete { name: String },
}

pub async fn run(client: &Client, command: TopicCommand) -> anyhow::Result<()> {
    match command {
        TopicCommand::Create {
            name,
            partitions,
            retention_ms,
            retention_bytes,
            segment_bytes,
            segment_ms,
            fsync,
            fsync_interval_ms,
        } => {
            let mut body = Map::new();
            body.insert("name".into(), json!(name));
            let fields = [
                ("partitions", partitions.map(|v| json!(v))),
                ("retention_ms", retention_ms.map(|v| json!(v))),
                ("retention_bytes", retention_bytes.map(|v| json!(v))),
                ("segment_bytes", segment_bytes.map(|v| json!(v))),
                ("segment_ms", segment_ms.map(|v| json!(v))),
                ("fsync", fsync.map(|v| json!(v))),
                ("fsync_interval_ms", fsync_interval_ms.map(|v| json!(v))),
            ];
            for (k, v) in fields {
                if let Some(v) = v {
                    body.insert(k.into(), v);
                }
            }
            let t = client
                .json(client.request(Method::POST, "/v1/topics").json(&Value::Object(body)))
                .await?;
            println!(
                "created topic {} with {} partitions",
                name,
                t["partitions"].as_array().map_or(0, Vec::len)
            );
        }
        TopicCommand::List => {
            let v = client.json(client.request(Method::GET, "/v1/topics")).await?;
            println!("{:<40} {:>10} {:>14} {:>8}", "TOPIC", "PARTITIONS", "RECORDS", "FSYNC");
            for t in v["topics"].as_array().into_iter().flatten() {
                let parts = t["partitions"].as_array().map_or(&[][..], Vec::as_slice);
                let records: u64 = parts
                    .iter()
                    .map(|p| p["high_watermark"].as_u64().unwrap_or(0) - p["log_start_offset"].as_u64().unwrap_or(0))
                    .sum();
                println!(
                    "{:<40} {:>10} {:>14} {:>8}",
                    t["name"].as_str().unwrap_or(""),
                    parts.len(),
                    records,
                    t["config"]["fsync"].as_str().unwrap_or("")
                );
            }
        }
        TopicCommand::Describe { name } => {
            let v = client
                .json(client.request(Method::GET, &format!("/v1/topics/{name}")))
                .await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        TopicCommand::Delete { name } => {
            client
                .json(client.request(Method::DELETE, &format!("/v1/topics/{name}")))
                .await?;
            println!("deleted topic {name}");
        }
    }
    Ok(())
}
