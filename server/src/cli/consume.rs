//! `weir consume TOPIC`: print records as JSON lines. Without `--follow`, reads every partition
//! up to the end it saw at start and exits; with it, subscribes over SSE and keeps printing.

use std::io::Write;

use reqwest::Method;
use serde_json::Value;

use super::{Client, ServerArg};

#[derive(Debug, clap::Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    server: ServerArg,
    topic: String,
    /// earliest, latest or an offset (default: earliest, or latest with --follow).
    #[arg(long)]
    from: Option<String>,
    /// Only this partition (default: all).
    #[arg(long, short)]
    partition: Option<u32>,
    /// Keep waiting for new records (Server-Sent Events).
    #[arg(long, short)]
    follow: bool,
    /// Stop after this many records.
    #[arg(long, short = 'n')]
    max_records: Option<u64>,
    /// Print only each record's value.
    #[arg(long)]
    value_only: bool,
}

struct Printer {
    value_only: bool,
    printed: u64,
    max: u64,
    out: std::io::BufWriter<std::io::Stdout>,
}

impl Printer {
    /// Prints one record; false once the maximum is reached.
    fn print(&mut self, record: &Value) -> anyhow::Result<bool> {
        if self.printed >= self.max {
            return Ok(false);
        }
        let written = if self.value_only {
            match &record["value"] {
                Value::String(s) => writeln!(self.out, "{s}"),
                _ => writeln!(self.out, "{}", record["value_b64"].as_str().unwrap_or("")),
            }
        } else {
            writeln!(self.out, "{record}")
        };
        written.map_err(super::stdout_error)?;
        self.printed += 1;
        Ok(self.printed < self.max)
    }
}

pub async fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    let client = args.server.client()?;
    let mut printer = Printer {
        value_only: args.value_only,
        printed: 0,
        max: args.max_records.unwrap_or(u64::MAX),
        out: std::io::BufWriter::new(std::io::stdout()),
    };
    if args.follow {
        follow(&client, &args, &mut printer).await?;
    } else {
        let topic = client
            .json(client.request(Method::GET, &format!("/v1/topics/{}", args.topic)))
            .await?;
        let count = topic["partitions"].as_array().map_or(0, Vec::len) as u32;
        let partitions: Vec<u32> = match args.partition {
            Some(p) => vec![p],
            None => (0..count).collect(),
        };
        'parts: for p in partitions {
            let mut offset = args.from.clone().unwrap_or_else(|| "earliest".into());
            let mut end: Option<u64> = None;
            loop {
                let path = format!(
                    "/v1/topics/{}/partitions/{p}/records?offset={offset}&max_records=5000",
                    args.topic
                );
                let page = client.json(client.request(Method::GET, &path)).await?;
                // Committed records end at the last stable offset (an open transaction).
                let stable = page["last_stable_offset"].as_u64().or(page["high_watermark"].as_u64());
                let end = *end.get_or_insert(stable.unwrap_or(0));
                for r in page["records"].as_array().into_iter().flatten() {
                    if r["offset"].as_u64().unwrap_or(0) >= end {
                        break;
                    }
                    if !printer.print(r)? {
                        break 'parts;
                    }
                }
                let next = page["next_offset"].as_u64().unwrap_or(end);
                // A page of transaction markers only has no records but moves on.
                let stalled = page["records"].as_array().is_none_or(Vec::is_empty) && offset == next.to_string();
                if next >= end || stalled {
                    break;
                }
                offset = next.to_string();
            }
        }
    }
    printer.out.flush().map_err(super::stdout_error)?;
    Ok(())
}

/// Follows over SSE; when the connection drops (the broker restarted, say), reconnects with
/// the last event's id and goes on exactly after the last record printed.
async fn follow(client: &Client, args: &ConsumeArgs, printer: &mut Printer) -> anyhow::Result<()> {
    let from = args.from.as_deref().unwrap_or("latest");
    let mut path = format!("/v1/topics/{}/events?from={from}", args.topic);
    if let Some(p) = args.partition {
        path.push_str(&format!("&partition={p}"));
    }
    let mut last_id: Option<String> = None;
    let mut retry = std::time::Duration::from_millis(250);
    loop {
        let mut done = false;
        let mut got_any = false;
        let resume = last_id.clone();
        let ended = client
            .for_each_event(&path, resume.as_deref(), |kind, id, event| {
                got_any = true;
                if kind == "error" {
                    anyhow::bail!(
                        "the broker ended the stream: {}",
                        event["message"].as_str().unwrap_or("")
                    );
                }
                for r in event["records"].as_array().into_iter().flatten() {
                    if !printer.print(r)? {
                        done = true;
                        return Ok(false);
                    }
                }
                if let Some(id) = id {
                    last_id = Some(id.to_owned());
                }
                printer.out.flush().map_err(super::stdout_error)?;
                Ok(true)
            })
            .await;
        if done {
            return Ok(());
        }
        let reason = match ended {
            Ok(_) => "the broker closed the stream".to_owned(),
            // A refusal (topic gone, no right, bad token) is final; a lost connection is not.
            Err(e) if e.to_string().contains("cannot reach") || e.to_string().contains("stream broke") => e.to_string(),
            Err(e) => return Err(e),
        };
        if got_any {
            retry = std::time::Duration::from_millis(250);
        }
        eprintln!("{reason}; reconnecting in {:.1} s", retry.as_secs_f64());
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(std::time::Duration::from_secs(5));
    }
}
