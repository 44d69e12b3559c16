//! Processors: WebAssembly components running between topics.
//!
//! [`Processors`] is the handle the HTTP layer holds. It stores modules ([`modules`]) and
//! deployments (`DATA/processors/NAME/processor.json`, with committed input offsets in
//! `offsets/P.offset`), and runs each deployment with a [`runner`]: one task per input
//! partition, one guest instance each.

pub mod files;
pub mod function_cache;
pub mod modules;
pub mod runner;
pub mod spec;
pub mod status;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::topic::{TopicError, Topics};
use crate::wasm::ModuleError;
pub use modules::{ModuleInfo, ModuleStore};
pub use spec::{OnError, ProcessorSpec, Start, Stored};
pub use status::{LogLine, State, Status};

/// Errors of processor operations.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProcessorError {
    #[error(transparent)]
    InvalidModule(#[from] ModuleError),
    #[error("module {0} is not stored; upload it with POST /v1/modules")]
    ModuleNotFound(String),
    #[error("invalid processor name: {0}")]
    InvalidName(String),
    #[error("invalid processor deployment: {0}")]
    InvalidSpec(String),
    #[error("processor '{0}' does not exist")]
    NotFound(String),
    #[error(transparent)]
    Topic(#[from] TopicError),
    #[error("I/O on {path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("corrupt processor data: {0}")]
    Corrupt(String),
}

impl ProcessorError {
    pub fn io(path: &Path, e: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            message: e.to_string(),
        }
    }
}

/// One deployed processor and its running tasks.
struct Deployed {
    stored: Stored,
    status: Arc<Status>,
    stop: CancellationToken,
    paused: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// Committed offset and instance memory, per input partition.
    gauges: Vec<Arc<runner::PartitionGauges>>,
    input: Option<Arc<crate::topic::Topic>>,
}

/// A processor as `GET /v1/processors/{name}` shows it.
#[derive(Debug, Serialize)]
pub struct ProcessorView {
    pub name: String,
    #[serde(flatten)]
    pub spec: ProcessorSpec,
    pub state: State,
    pub last_error: Option<String>,
    pub records_in: u64,
    pub records_out: u64,
    pub errors: u64,
    pub dead_lettered: u64,
    pub skipped: u64,
    pub traps: u64,
    pub lag: Vec<PartitionLag>,
    pub call_latency_ms: Latency,
    pub created_ms: i64,
    pub updated_ms: i64,
}

#[derive(Debug, Serialize)]
pub struct PartitionLag {
    pub partition: u32,
    pub committed_offset: u64,
    pub high_watermark: u64,
    pub lag: u64,
    /// Linear memory of the partition's instance (0 while none runs).
    pub memory_bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

struct Inner {
    dir: PathBuf,
    topics: Topics,
    modules: ModuleStore,
    deployed: Mutex<BTreeMap<String, Deployed>>,
}

/// The handle to every processor. Clone it freely.
#[derive(Clone)]
pub struct Processors(Arc<Inner>);

impl Processors {
    /// Loads every stored deployment and starts it.
    pub async fn open(data_dir: &Path, topics: Topics, modules: ModuleStore) -> Result<Self, ProcessorError> {
        let dir = data_dir.join("processors");
        std::fs::create_dir_all(&dir).map_err(|e| ProcessorError::io(&dir, e))?;
        let this = Self(Arc::new(Inner {
            dir: dir.clone(),
            topics,
            modules,
            deployed: Mutex::new(BTreeMap::new()),
        }));
        for entry in std::fs::read_dir(&dir)
            .map_err(|e| ProcessorError::io(&dir, e))?
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path().join("processor.json");
            let Ok(text) = std::fs::read(&path) else { continue };
            let stored: Stored = serde_json::from_slice(&text)
                .map_err(|e| ProcessorError::Corrupt(format!("{}: {e}", path.display())))?;
            this.start(&name, stored).await;
        }
        Ok(this)
    }

    pub fn modules(&self) -> &ModuleStore {
        &self.0.modules
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Deployed>> {
        self.0.deployed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts runners for `stored` (replacing nothing: the caller stopped any old ones). A
    /// deployment that cannot start (module or topic gone) is kept, in state `failed`.
    async fn start(&self, name: &str, stored: Stored) {
        let status = Arc::new(Status::new(stored.paused));
        let stop = CancellationToken::new();
        let (paused, paused_rx) = watch::channel(stored.paused);
        let mut d = Deployed {
            stored: stored.clone(),
            status: Arc::clone(&status),
            stop: stop.clone(),
            paused,
            tasks: Vec::new(),
            gauges: Vec::new(),
            input: None,
        };
        match self.prepare(name, &stored.spec, status, stop, paused_rx).await {
            Ok(ctx) => {
                d.input = Some(Arc::clone(&ctx.input));
                for p in &ctx.input.partitions {
                    let gauges = Arc::new(runner::PartitionGauges::default());
                    d.gauges.push(Arc::clone(&gauges));
                    d.tasks.push(tokio::spawn(runner::run_partition(
                        Arc::clone(&ctx),
                        Arc::clone(p),
                        gauges,
                    )));
                }
                tracing::info!(processor = name, partitions = d.tasks.len(), "processor started");
            }
            Err(e) => {
                tracing::error!(processor = name, error = %e, "processor cannot start");
                d.status.set_error(e.to_string(), true);
            }
        }
        self.lock().insert(name.to_owned(), d);
    }

    async fn prepare(
        &self,
        name: &str,
        spec: &ProcessorSpec,
        status: Arc<Status>,
        stop: CancellationToken,
        paused: watch::Receiver<bool>,
    ) -> Result<Arc<runner::Ctx>, ProcessorError> {
        let topics = &self.0.topics;
        let input = topics.get(&spec.input)?;
        let outputs = spec
            .outputs
            .iter()
            .map(|o| topics.get(o))
            .collect::<Result<Vec<_>, _>>()?;
        let dead_letter = match spec.on_error {
            OnError::DeadLetter => {
                let dlq = spec.dead_letter_topic(name);
                Some(match topics.get(&dlq) {
                    Ok(t) => t,
                    Err(_) => {
                        let (topics, dlq2) = (topics.clone(), dlq.clone());
                        let config = crate::topic::TopicConfig {
                            partitions: 1,
                            ..input.config.clone()
                        };
                        match tokio::task::spawn_blocking(move || topics.create(&dlq2, config)).await {
                            Ok(Ok(t)) => t,
                            Ok(Err(TopicError::Exists(_))) => self.0.topics.get(&dlq)?,
                            Ok(Err(e)) => return Err(e.into()),
                            Err(_) => return Err(TopicError::ShuttingDown.into()),
                        }
                    }
                })
            }
            _ => None,
        };
        let modules = self.0.modules.clone();
        let id = spec.module.clone();
        let module = tokio::task::spawn_blocking(move || modules.compiled(&id))
            .await
            .map_err(|_| ProcessorError::Topic(TopicError::ShuttingDown))??;
        let offsets_dir = self.0.dir.join(name).join("offsets");
        std::fs::create_dir_all(&offsets_dir).map_err(|e| ProcessorError::io(&offsets_dir, e))?;
        Ok(Arc::new(runner::Ctx {
            name: name.to_owned(),
            spec: spec.clone(),
            status,
            runtime: self.0.modules.runtime().clone(),
            module,
            input,
            outputs,
            dead_letter,
            offsets_dir,
            stop,
            paused,
        }))
    }

    /// Stops a processor's tasks and waits for them (their in-flight batch finishes).
    async fn halt(&self, name: &str) -> Option<Deployed> {
        let d = self.lock().remove(name)?;
        d.stop.cancel();
        let mut d = d;
        for t in std::mem::take(&mut d.tasks) {
            let _ = t.await;
        }
        Some(d)
    }

    /// Creates or redeploys `name`. A redeploy keeps committed offsets unless the input topic
    /// changed. Returns whether it was created.
    pub async fn deploy(&self, name: &str, spec: ProcessorSpec) -> Result<bool, ProcessorError> {
        crate::topic::spec::validate_name(name).map_err(ProcessorError::InvalidName)?;
        spec.validate().map_err(ProcessorError::InvalidSpec)?;
        self.0.modules.info(&spec.module)?;
        let topics = &self.0.topics;
        topics.get(&spec.input)?;
        for o in &spec.outputs {
            topics.get(o).map_err(|_| {
                ProcessorError::InvalidSpec(format!("output topic '{o}' does not exist; create it first"))
            })?;
        }
        let dir = self.0.dir.join(name);
        std::fs::create_dir_all(&dir).map_err(|e| ProcessorError::io(&dir, e))?;
        let old = self.halt(name).await;
        let now = crate::topic::now_ms();
        let created = old.is_none();
        let (created_ms, paused) = old
            .as_ref()
            .map_or((now, false), |d| (d.stored.created_ms, d.stored.paused));
        if old.as_ref().is_some_and(|d| d.stored.spec.input != spec.input) {
            let _ = std::fs::remove_dir_all(dir.join("offsets"));
        }
        let stored = Stored {
            spec,
            paused,
            created_ms,
            updated_ms: now,
        };
        self.save(name, &stored)?;
        self.start(name, stored).await;
        Ok(created)
    }

    fn save(&self, name: &str, stored: &Stored) -> Result<(), ProcessorError> {
        let json = serde_json::to_vec_pretty(stored).expect("processor serializes");
        files::write_atomically(&self.0.dir.join(name).join("processor.json"), &json)
    }

    pub fn view(&self, name: &str) -> Result<ProcessorView, ProcessorError> {
        let map = self.lock();
        let d = map.get(name).ok_or_else(|| ProcessorError::NotFound(name.to_owned()))?;
        Ok(Self::view_of(name, d))
    }

    pub fn list(&self) -> Vec<ProcessorView> {
        self.lock().iter().map(|(n, d)| Self::view_of(n, d)).collect()
    }

    fn view_of(name: &str, d: &Deployed) -> ProcessorView {
        let (state, last_error) = d.status.state();
        let (p50, p99, max) = d.status.latency_ms();
        let lag = match &d.input {
            Some(input) => input
                .partitions
                .iter()
                .zip(&d.gauges)
                .map(|(p, g)| {
                    let (hw, committed) = (p.high_watermark(), g.committed.load(Ordering::Relaxed));
                    PartitionLag {
                        partition: p.id,
                        committed_offset: committed,
                        high_watermark: hw,
                        lag: hw.saturating_sub(committed),
                        memory_bytes: g.memory_bytes.load(Ordering::Relaxed),
                    }
                })
                .collect(),
            None => Vec::new(),
        };
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ProcessorView {
            name: name.to_owned(),
            spec: d.stored.spec.clone(),
            state,
            last_error,
            records_in: n(&d.status.records_in),
            records_out: n(&d.status.records_out),
            errors: n(&d.status.errors),
            dead_lettered: n(&d.status.dead_lettered),
            skipped: n(&d.status.skipped),
            traps: n(&d.status.traps),
            lag,
            call_latency_ms: Latency { p50, p99, max },
            created_ms: d.stored.created_ms,
            updated_ms: d.stored.updated_ms,
        }
    }

    /// Pauses or resumes; persisted so a restart keeps it.
    pub fn set_paused(&self, name: &str, paused: bool) -> Result<(), ProcessorError> {
        let mut map = self.lock();
        let d = map
            .get_mut(name)
            .ok_or_else(|| ProcessorError::NotFound(name.to_owned()))?;
        d.stored.paused = paused;
        d.stored.updated_ms = crate::topic::now_ms();
        let stored = d.stored.clone();
        let _ = d.paused.send(paused);
        if d.status.state().0 != State::Failed {
            d.status.set_state(if paused { State::Paused } else { State::Running });
        }
        drop(map);
        self.save(name, &stored)
    }

    pub async fn delete(&self, name: &str) -> Result<(), ProcessorError> {
        self.halt(name)
            .await
            .ok_or_else(|| ProcessorError::NotFound(name.to_owned()))?;
        let dir = self.0.dir.join(name);
        std::fs::remove_dir_all(&dir).map_err(|e| ProcessorError::io(&dir, e))
    }

    /// Kept log lines and a receiver for new ones.
    pub fn logs(
        &self,
        name: &str,
    ) -> Result<(Vec<LogLine>, tokio::sync::broadcast::Receiver<LogLine>), ProcessorError> {
        let map = self.lock();
        let d = map.get(name).ok_or_else(|| ProcessorError::NotFound(name.to_owned()))?;
        Ok(d.status.subscribe())
    }

    /// Stops every processor, letting in-flight batches finish and commit.
    pub async fn shutdown(&self) {
        let names: Vec<String> = self.lock().keys().cloned().collect();
        for name in names {
            self.halt(&name).await;
        }
    }
}
