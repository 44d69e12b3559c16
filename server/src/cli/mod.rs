//! The `weir` command line: `serve` runs the broker; every other subcommand is a client of its
//! HTTP API (`--server`, env `WEIR_URL`).

mod bench;
mod client;
mod consume;
mod pipeline;
mod processor;
mod processor_test;
mod produce;
mod project;
mod serve;
mod time;
mod token;
mod topic;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use client::Client;

#[derive(Debug, Parser)]
#[command(
    name = "weir",
    version,
    about = "Weir: durable streams over HTTP and Server-Sent Events, programmable with WebAssembly"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
pub struct ServerArg {
    /// Base URL of the Weir server.
    #[arg(long, global = true, env = "WEIR_URL", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// API token (`weir token create`), sent as `Authorization: Bearer`.
    #[arg(long, global = true, env = "WEIR_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl ServerArg {
    pub fn client(&self) -> anyhow::Result<Client> {
        Client::new(&self.server, self.token.as_deref())
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the broker.
    Serve(serve::ServeArgs),
    /// Create, list, describe and delete topics.
    Topic {
        #[command(flatten)]
        server: ServerArg,
        #[command(subcommand)]
        command: topic::TopicCommand,
    },
    /// Append records: a value argument, or one record per line of standard input.
    Produce(produce::ProduceArgs),
    /// Print records as JSON lines, from an offset to the end or following new ones.
    Consume(consume::ConsumeArgs),
    /// Work with WebAssembly processors.
    Processor {
        #[command(flatten)]
        server: ServerArg,
        #[command(subcommand)]
        command: processor::ProcessorCommand,
    },
    /// Deploy several processors and the topics between them from one file; show their lag.
    Pipeline {
        #[command(flatten)]
        server: ServerArg,
        #[command(subcommand)]
        command: pipeline::PipelineCommand,
    },
    /// Create, list and revoke API tokens (admin).
    Token {
        #[command(flatten)]
        server: ServerArg,
        #[command(subcommand)]
        command: token::TokenCommand,
    },
    /// Measure throughput and latency against a running server.
    Bench {
        #[command(flatten)]
        server: ServerArg,
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
}

/// Standard output was closed by its reader (a pipe into `head`): the command ends quietly.
/// Only writes to stdout become this; a server closing a connection is a real error.
#[derive(Debug, thiserror::Error)]
#[error("standard output was closed")]
pub struct OutputClosed;

/// `Err(OutputClosed)` for a broken pipe on stdout, else the error as it is.
pub fn stdout_error(e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        OutputClosed.into()
    } else {
        e.into()
    }
}

/// Entry point of the `weir` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Topic { server, command } => topic::run(&server.client()?, command).await,
            Command::Token { server, command } => token::run(&server.client()?, command).await,
            Command::Produce(args) => produce::run(args).await,
            Command::Consume(args) => consume::run(args).await,
            Command::Bench { server, command } => bench::run(&server.client()?, command).await,
            Command::Processor { server, command } => processor::run(&server.client()?, command).await,
            Command::Pipeline { server, command } => pipeline::run(&server.client()?, command).await,
        }
    });
    // Everything that had to finish did (a server flushed and marked its stop clean): don't
    // wait for blocking work still queued, such as a guest stuck in a long call.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output went away (`weir consume ... | head -3`): nothing to say.
        Err(e) if e.downcast_ref::<OutputClosed>().is_some() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
