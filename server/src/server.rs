//! `run`: open storage, bind, serve until told to stop, then stop in order.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::http::{AppState, ListenerSettings, RequestBudget, router};
use crate::metrics::Metrics;
use crate::processor::function_cache::FunctionCache;
use crate::processor::{ModuleStore, Processors};
use crate::topic::{Topics, TopicsConfig};
use crate::wasm::{RuntimeConfig, WasmRuntime};

/// Runs the broker on `listener` until `shutdown` fires, then: stops SSE streams and long-polls,
/// lets in-flight requests finish, flushes every partition and marks the stop clean.
pub async fn run(config: Config, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::default());
    let topics_config = TopicsConfig {
        data_dir: config.data_dir.clone(),
        index_interval_bytes: config.index_interval_bytes,
        index_bytes_max: config.index_bytes_max,
    };
    let started = std::time::Instant::now();
    let m = Arc::clone(&metrics);
    let topics = tokio::task::spawn_blocking(move || Topics::open(topics_config, m)).await??;
    tracing::info!(
        topics = topics.list().len(),
        clean = topics.clean_start(),
        ms = started.elapsed().as_millis() as u64,
        data_dir = %config.data_dir.display(),
        "storage ready"
    );
    let function_cache = FunctionCache::open(&config.data_dir.join("modules").join("functions"))?;
    let runtime = WasmRuntime::new(RuntimeConfig {
        function_cache: Some(Arc::new(function_cache)),
        instances_max: config.limits.guest_instances_max,
        memory_budget_bytes: config.limits.guest_memory_bytes(),
        ..RuntimeConfig::default()
    })?;
    let modules = ModuleStore::open(&config.data_dir, runtime, config.limits.modules_bytes_max)?;
    let processors = Processors::open(&config.data_dir, topics.clone(), modules, config.limits.tables_bytes()).await?;
    let state = AppState {
        topics: topics.clone(),
        processors: processors.clone(),
        config: Arc::new(config.clone()),
        metrics,
        budget: RequestBudget::new(config.limits.requests_memory_bytes()),
        auth: crate::auth::Auth::open(&config.data_dir, config.auth.admin_token.as_deref())?,
    };
    if !state.auth.enabled() && !config.addr.ip().is_loopback() {
        tracing::warn!(addr = %config.addr, "authentication is off (--insecure): anyone who can reach the port can do anything");
    } else if !state.auth.enabled() {
        tracing::info!(addr = %config.addr, "authentication is off: loopback only, no admin token");
    }
    if !state.auth.enabled() && config.http.cors_origins.iter().any(|o| o == "*") {
        tracing::warn!(
            "http.cors_origins allows every origin and authentication is off: any web page a user of this machine opens can use the broker"
        );
    }
    let open_files = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft);
    let settings = ListenerSettings {
        header_read_timeout: Duration::from_millis(config.http.header_read_timeout_ms),
        connections_max: config.limits.connections(open_files),
        tls: match (&config.http.tls_cert, &config.http.tls_key) {
            (Some(cert), Some(key)) => Some(crate::http::listener::tls_acceptor(cert, key)?),
            _ => None,
        },
    };

    let retention = tokio::spawn({
        let topics = topics.clone();
        let stop = shutdown.clone();
        let every = Duration::from_millis(config.retention_check_interval_ms);
        async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(every) => topics.enforce_retention().await,
                    () = stop.cancelled() => break,
                }
            }
        }
    });

    let addr = listener.local_addr()?;
    let scheme = if settings.tls.is_some() { "https" } else { "http" };
    tracing::info!(connections_max = settings.connections_max, "serving");
    println!("listening on {scheme}://{addr}");
    crate::http::serve(
        listener,
        router(state),
        settings,
        shutdown.clone(),
        topics.stop_readers(),
    )
    .await;
    retention.abort();
    // Processors first: their last batches append to topics and commit offsets.
    processors.shutdown().await;
    topics.shutdown().await;
    tracing::info!("stopped cleanly");
    Ok(())
}
