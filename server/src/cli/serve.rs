//! `weir serve`: configuration, logging, signals, then [`crate::server::run`].

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::topic::FsyncPolicy;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, env = "WEIR_ADDR")]
    addr: Option<SocketAddr>,
    /// Directory holding topics and their logs.
    #[arg(long, env = "WEIR_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// TOML configuration file (settings below override it).
    #[arg(long, env = "WEIR_CONFIG")]
    config: Option<PathBuf>,
    /// Partitions of a topic created without `partitions`.
    #[arg(long, env = "WEIR_DEFAULT_PARTITIONS")]
    default_partitions: Option<u32>,
    /// fsync policy of a topic created without `fsync`: always, interval or never.
    #[arg(long, env = "WEIR_DEFAULT_FSYNC", value_parser = parse_fsync)]
    default_fsync: Option<FsyncPolicy>,
    /// Largest request body in bytes.
    #[arg(long, env = "WEIR_BODY_BYTES_MAX")]
    body_bytes_max: Option<usize>,
    /// Largest record (key + value + headers) in bytes.
    #[arg(long, env = "WEIR_RECORD_BYTES_MAX")]
    record_bytes_max: Option<usize>,
    /// How often retention runs, in milliseconds.
    #[arg(long, env = "WEIR_RETENTION_CHECK_INTERVAL_MS")]
    retention_check_interval_ms: Option<u64>,
    /// Longest silence on an SSE stream before a heartbeat comment, in milliseconds.
    #[arg(long, env = "WEIR_SSE_HEARTBEAT_MS")]
    sse_heartbeat_ms: Option<u64>,
    /// The bootstrap admin token (16+ characters); turns authentication on. Prefer the
    /// environment variable to the flag, which other users can see in `ps`.
    #[arg(long, env = "WEIR_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Serve without authentication on an address other than loopback.
    #[arg(long, env = "WEIR_INSECURE")]
    insecure: bool,
    /// PEM certificate chain: serve HTTPS (with --tls-key).
    #[arg(long, env = "WEIR_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "WEIR_TLS_KEY")]
    tls_key: Option<PathBuf>,
}

fn parse_fsync(s: &str) -> Result<FsyncPolicy, String> {
    match s {
        "always" => Ok(FsyncPolicy::Always),
        "interval" => Ok(FsyncPolicy::Interval),
        "never" => Ok(FsyncPolicy::Never),
        other => Err(format!("'{other}' is not a policy; use always, interval or never")),
    }
}

fn set<T>(dst: &mut T, src: Option<T>) {
    if let Some(v) = src {
        *dst = v;
    }
}

impl ServeArgs {
    /// Defaults, then the file, then environment and flags; then validation.
    fn into_config(self) -> anyhow::Result<Config> {
        let mut c = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        set(&mut c.addr, self.addr);
        set(&mut c.data_dir, self.data_dir);
        set(&mut c.defaults.partitions, self.default_partitions);
        set(&mut c.defaults.fsync, self.default_fsync);
        set(&mut c.limits.body_bytes_max, self.body_bytes_max);
        set(&mut c.limits.record_bytes_max, self.record_bytes_max);
        set(&mut c.retention_check_interval_ms, self.retention_check_interval_ms);
        set(&mut c.sse_heartbeat_ms, self.sse_heartbeat_ms);
        if self.admin_token.is_some() {
            c.auth.admin_token = self.admin_token;
        }
        c.auth.insecure |= self.insecure;
        if self.tls_cert.is_some() {
            c.http.tls_cert = self.tls_cert;
        }
        if self.tls_key.is_some() {
            c.http.tls_key = self.tls_key;
        }
        c.validate()?;
        Ok(c)
    }
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG").unwrap_or_else(|_| "info,tower_http=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    // The allocator's own thread gives freed memory back to the system (after its 10 s decay)
    // also while the broker is idle, rather than at the next allocations.
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::debug!(error = %e, "the allocator's background thread is not available");
    }
    let config = args.into_config()?;
    raise_open_file_limit();
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("cannot listen on {}", config.addr))?;
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            wait_for_signal().await;
            shutdown.cancel();
            wait_for_signal().await;
            eprintln!("second signal: exiting without flushing");
            std::process::exit(130);
        }
    });
    crate::server::run(config, listener, shutdown).await
}

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}

/// Each SSE subscriber holds a socket, each segment a few files: lift the soft limit to the hard one.
pub fn raise_open_file_limit() {
    let Ok((soft, hard)) = rlimit::getrlimit(rlimit::Resource::NOFILE) else {
        return;
    };
    if soft < hard && rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard).is_err() {
        tracing::warn!(soft, hard, "could not raise the open-file limit");
    }
}
