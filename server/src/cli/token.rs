//! `weir token create|list|revoke`: API tokens, over `/v1/tokens` (needs the admin token).

use reqwest::Method;
use serde_json::json;

use super::Client;

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Create a token; prints its secret once (only a hash is kept).
    Create {
        /// A name to recognize it by.
        name: String,
        /// A right, repeatable: `topic:PATTERN:read|write|admin`,
        /// `processor:PATTERN:read|operate|deploy`, `module:*:read|upload`, `metrics:*:read`,
        /// or `admin`. Example: --allow 'topic:orders*:write'
        #[arg(long = "allow", required = true)]
        rights: Vec<String>,
    },
    /// List tokens (ids, names, rights; never secrets).
    List,
    /// Revoke a token by id: it stops working at once, with the tickets it issued.
    Revoke { id: String },
}

pub async fn run(client: &Client, command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create { name, rights } => {
            let body = json!({"name": name, "rights": rights});
            let t = client
                .json(client.request(Method::POST, "/v1/tokens").json(&body))
                .await?;
            eprintln!(
                "created token {} ({}); keep the secret below, it is not shown again",
                t["id"], t["name"]
            );
            println!("{}", t["token"].as_str().unwrap_or_default());
        }
        TokenCommand::List => {
            let list = client.json(client.request(Method::GET, "/v1/tokens")).await?;
            println!("{:<14} {:<24} RIGHTS", "ID", "NAME");
            for t in list["tokens"].as_array().into_iter().flatten() {
                let rights: Vec<&str> = t["rights"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r.as_str())
                    .collect();
                println!(
                    "{:<14} {:<24} {}",
                    t["id"].as_str().unwrap_or(""),
                    t["name"].as_str().unwrap_or(""),
                    rights.join(" ")
                );
            }
        }
        TokenCommand::Revoke { id } => {
            client
                .json(client.request(Method::DELETE, &format!("/v1/tokens/{id}")))
                .await?;
            eprintln!("revoked token {id}");
        }
    }
    Ok(())
}
