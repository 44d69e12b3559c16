//! Processors: WebAssembly components running between topics.
//!
//! [`Processors`] is the handle the HTTP layer holds. It stores modules ([`modules`]) and
//! deployments (`DATA/processors/NAME/processor.json`, with committed input offsets in
//! `offsets/TOPIC_ID/P.offset`), and runs each deployment with a [`runner`]: one task per input
//! partition, one guest instance each, on the guests' own threads.
//!
//! Lifecycle: each processor name has one owner, its slot. Deploy, pause, resume and delete
//! hold the slot's lock for their whole run, so they happen one at a time per name; each checks
//! everything before it changes anything ([`start`]), and stops the running tasks, waiting for
//! them, before it starts their successors. Readers (status, list, logs) never wait for an
//! operation: they read what the last one published.

pub mod aggregate;
mod appender;
mod call;
mod deliver;
pub mod files;
pub mod function_cache;
pub mod join;
mod latency;
pub mod modules;
pub mod query;
pub mod reset;
pub mod runner;
pub mod spec;
mod start;
pub mod status;
pub mod txn;
#[cfg(test)]
mod txn_tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use start::{Published, Running};

use crate::group::OffsetStore;
use crate::table::Tables;
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
    #[error("processor '{processor}' has no store '{store}' (it declares: {})", if declared.is_empty() { "none".to_owned() } else { declared.join(", ") })]
    StoreNotFound {
        processor: String,
        store: String,
        declared: Vec<String>,
    },
    #[error("module {id} is deployed by {}; delete or redeploy those first", processors.join(", "))]
    ModuleInUse { id: String, processors: Vec<String> },
    #[error(
        "the modules' storage quota is full: {used} of {limit} bytes used, this module needs {need} (upload and compiled code; limits.modules_bytes_max). Delete unused modules with DELETE /v1/modules/ID"
    )]
    QuotaExceeded { used: u64, need: u64, limit: u64 },
    #[error(transparent)]
    Topic(#[from] TopicError),
    #[error(transparent)]
    Table(#[from] crate::table::TableError),
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

/// A processor as `GET /v1/processors/{name}` shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
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
    /// Records a windowed aggregate took after their windows closed (whatever `late` did
    /// with them).
    pub late: u64,
    pub traps: u64,
    pub lag: Vec<PartitionLag>,
    pub call_latency_ms: Latency,
    /// Each declared store: keys and bytes over all partitions (`stores` itself is the
    /// deployment's list of names).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub state_stores: Vec<StoreView>,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// Who deployed it last: `admin` or `token:ID`.
    pub deployed_by: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PartitionLag {
    pub partition: u32,
    pub committed_offset: u64,
    pub high_watermark: u64,
    pub lag: u64,
    /// Linear memory of the partition's instance (0 while none runs).
    pub memory_bytes: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StoreView {
    pub name: String,
    pub keys: u64,
    pub bytes: u64,
    /// State calls the store refused to the guest (a state limit, or an increment of a value
    /// that is not an integer), since the processor started; a batch call that ran again
    /// record by record counts its refusals again.
    pub refused: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

/// The owner of one processor name.
#[derive(Default)]
struct Slot {
    /// Held for a whole lifecycle operation; holds the running tasks.
    running: Arc<tokio::sync::Mutex<Option<Running>>>,
    /// What readers see; `None` until the first deploy succeeds.
    published: Mutex<Option<Published>>,
    /// Set once a delete (or a failed first deploy) took the slot out of the map: whoever
    /// waited for its lock looks the name up again.
    removed: AtomicBool,
}

impl Slot {
    fn published(&self) -> Option<Published> {
        self.published.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn publish(&self, p: Option<Published>) {
        *self.published.lock().unwrap_or_else(|e| e.into_inner()) = p;
    }
}

type Owned = tokio::sync::OwnedMutexGuard<Option<Running>>;

struct Inner {
    dir: PathBuf,
    topics: Topics,
    offsets: OffsetStore,
    modules: ModuleStore,
    /// Topics read as tables, by the processors that join against them and by HTTP readers.
    tables: Tables,
    slots: Mutex<BTreeMap<String, Arc<Slot>>>,
    /// Deploys hold it shared, a module delete exclusively: a module is never deleted between
    /// a deploy's check and its start.
    modules_gate: tokio::sync::RwLock<()>,
}

/// The handle to every processor. Clone it freely.
#[derive(Clone)]
pub struct Processors(Arc<Inner>);

impl Processors {
    /// Loads every stored deployment and starts it.
    pub async fn open(
        data_dir: &Path,
        topics: Topics,
        modules: ModuleStore,
        tables_bytes_max: u64,
    ) -> Result<Self, ProcessorError> {
        let dir = data_dir.join("processors");
        files::create_dir_durable(&dir)?;
        let offsets = OffsetStore::open(&topics).await?;
        // Before anything reads: settle every transaction a crash left open, so that no
        // reader of committed records (a processor downstream, HTTP) takes their records.
        for key in offsets.keys_with_prefix("processor/") {
            if let Some(last) = offsets.get(&key) {
                let next = crate::log::batch::Producer {
                    id: last.producer_id,
                    epoch: last.producer_epoch.saturating_add(1),
                };
                // One that cannot be settled now keeps its partitions' last stable offset
                // where it is (readers wait; nothing wrong is shown); its task says why.
                if let Err(e) = txn::recover(&offsets, &topics, &key, next).await {
                    tracing::error!(task = %key, error = %e, "cannot settle a transaction a crash left open");
                }
            }
        }
        let this = Self(Arc::new(Inner {
            dir: dir.clone(),
            tables: Tables::new(topics.clone(), tables_bytes_max),
            topics,
            offsets,
            modules,
            slots: Mutex::new(BTreeMap::new()),
            modules_gate: tokio::sync::RwLock::new(()),
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
            let (slot, mut running) = this.owner(&name, true).await?;
            let status = Arc::new(Status::new(&name, stored.paused));
            let (r, p) = this.start(&name, &stored, status, false).await;
            *running = r;
            slot.publish(Some(p));
        }
        Ok(this)
    }

    pub fn modules(&self) -> &ModuleStore {
        &self.0.modules
    }

    pub fn tables(&self) -> &Tables {
        &self.0.tables
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<Slot>>> {
        self.0.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Becomes the owner of `name` for one operation: its slot (made if `create`) and the
    /// slot's lock, waiting for any operation in flight on that name (and only that name).
    async fn owner(&self, name: &str, create: bool) -> Result<(Arc<Slot>, Owned), ProcessorError> {
        loop {
            let slot = {
                let mut slots = self.slots();
                match slots.get(name) {
                    Some(s) => Arc::clone(s),
                    None if create => Arc::clone(slots.entry(name.to_owned()).or_default()),
                    None => return Err(ProcessorError::NotFound(name.to_owned())),
                }
            };
            let guard = Arc::clone(&slot.running).lock_owned().await;
            if !slot.removed.load(Ordering::SeqCst) {
                return Ok((slot, guard));
            }
        }
    }

    /// Takes `slot` out of the map (its owner calls this, holding its lock).
    fn forget(&self, name: &str, slot: &Arc<Slot>) {
        slot.removed.store(true, Ordering::SeqCst);
        let mut slots = self.slots();
        if slots.get(name).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            slots.remove(name);
        }
    }

    /// Creates or redeploys `name`. A redeploy keeps committed offsets (for the same input
    /// topic incarnation). Returns whether it was created. Every check runs before the running
    /// processor is touched: an error leaves it as it was.
    pub async fn deploy(
        &self,
        name: &str,
        spec: ProcessorSpec,
        deployed_by: Option<String>,
    ) -> Result<bool, ProcessorError> {
        crate::topic::spec::validate_name(name).map_err(ProcessorError::InvalidName)?;
        spec.validate().map_err(ProcessorError::InvalidSpec)?;
        let _gate = self.0.modules_gate.read().await;
        let (slot, mut running) = self.owner(name, true).await?;
        let old = slot.published();
        let kept_state = self
            .0
            .topics
            .get(&crate::state::changelog::topic_name(name))
            .is_ok_and(|t| t.partitions.iter().any(|p| p.high_watermark() > 0));
        let changed = old.as_ref().and_then(|o| spec.state_change(&o.stored.spec));
        if let (true, Some(why)) = (kept_state, changed) {
            return Err(ProcessorError::InvalidSpec(why.replace("NAME", name)));
        }
        if let Err(e) = self.check_deploy(name, &spec).await {
            if old.is_none() {
                self.forget(name, &slot);
            }
            return Err(e);
        }
        if let Some(r) = running.take() {
            r.halt().await;
        }
        let now = crate::topic::now_ms();
        let stored = Stored {
            spec,
            paused: old.as_ref().is_some_and(|p| p.stored.paused),
            created_ms: old.as_ref().map_or(now, |p| p.stored.created_ms),
            updated_ms: now,
            deployed_by,
        };
        if let Err(e) = self.save(name, &stored).await {
            // Nothing was written: the old deployment (if any) runs again as it was.
            if let Some(old) = &old {
                let (r, p) = self.start(name, &old.stored, Arc::clone(&old.status), false).await;
                *running = r;
                slot.publish(Some(p));
            } else {
                self.forget(name, &slot);
            }
            return Err(e);
        }
        let status = Arc::new(Status::new(name, stored.paused));
        let (r, p) = self.start(name, &stored, status, true).await;
        *running = r;
        slot.publish(Some(p));
        Ok(old.is_none())
    }

    async fn save(&self, name: &str, stored: &Stored) -> Result<(), ProcessorError> {
        let json = serde_json::to_vec_pretty(stored).expect("processor serializes");
        let dir = self.0.dir.join(name);
        tokio::task::spawn_blocking(move || {
            files::create_dir_durable(&dir)?;
            files::write_atomically(&dir.join("processor.json"), &json)
        })
        .await
        .map_err(|_| ProcessorError::Topic(TopicError::ShuttingDown))?
    }

    pub fn view(&self, name: &str) -> Result<ProcessorView, ProcessorError> {
        let slot = self.slots().get(name).cloned();
        let p = slot
            .and_then(|s| s.published())
            .ok_or_else(|| ProcessorError::NotFound(name.to_owned()))?;
        Ok(Self::view_of(name, &p))
    }

    pub fn list(&self) -> Vec<ProcessorView> {
        let slots: Vec<(String, Arc<Slot>)> = self.slots().iter().map(|(n, s)| (n.clone(), Arc::clone(s))).collect();
        slots
            .iter()
            .filter_map(|(n, s)| s.published().map(|p| Self::view_of(n, &p)))
            .collect()
    }

    fn view_of(name: &str, d: &Published) -> ProcessorView {
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
        let mut stores: Vec<StoreView> = d
            .stored
            .spec
            .all_stores()
            .iter()
            .map(|name| StoreView {
                name: name.clone(),
                keys: 0,
                bytes: 0,
                refused: 0,
            })
            .collect();
        for g in &d.gauges {
            if let Some(task) = g.state() {
                let figures = task.lock().unwrap_or_else(|e| e.into_inner()).figures();
                for (view, f) in stores.iter_mut().zip(figures) {
                    view.keys += f.keys;
                    view.bytes += f.bytes;
                    view.refused += f.refused;
                }
            }
        }
        ProcessorView {
            state_stores: stores,
            name: name.to_owned(),
            spec: d.stored.spec.clone(),
            state,
            last_error,
            records_in: n(&d.status.records_in),
            records_out: n(&d.status.records_out),
            errors: n(&d.status.errors),
            dead_lettered: n(&d.status.dead_lettered),
            skipped: n(&d.status.skipped),
            late: n(&d.status.late),
            traps: n(&d.status.traps),
            lag,
            call_latency_ms: Latency { p50, p99, max },
            created_ms: d.stored.created_ms,
            updated_ms: d.stored.updated_ms,
            deployed_by: d.stored.deployed_by.clone(),
        }
    }

    /// Pauses or resumes; persisted so a restart keeps it. The tasks stop (a call in flight is
    /// dropped and runs again later) and start again from the stored deployment, so a resume
    /// also retries a processor that had failed (after its topics were fixed, say).
    pub async fn set_paused(&self, name: &str, paused: bool) -> Result<(), ProcessorError> {
        let (slot, mut running) = self.owner(name, false).await?;
        let Some(mut p) = slot.published() else {
            return Err(ProcessorError::NotFound(name.to_owned()));
        };
        p.stored.paused = paused;
        p.stored.updated_ms = crate::topic::now_ms();
        self.save(name, &p.stored).await?;
        if let Some(r) = running.take() {
            r.halt().await;
        }
        p.status.restart(paused);
        let (r, p) = self.start(name, &p.stored, Arc::clone(&p.status), false).await;
        *running = r;
        slot.publish(Some(p));
        Ok(())
    }

    /// Stops the processor (a call in flight is interrupted) and removes it with its offsets.
    pub async fn delete(&self, name: &str) -> Result<(), ProcessorError> {
        let (slot, mut running) = self.owner(name, false).await?;
        let p = slot
            .published()
            .ok_or_else(|| ProcessorError::NotFound(name.to_owned()))?;
        if let Some(r) = running.take() {
            r.halt().await;
        }
        // What a failed task left open goes first: once its offsets are gone nothing would
        // find it, and its partitions' last stable offset would never move again.
        let keys = self.0.offsets.keys_with_prefix(&format!("processor/{name}/"));
        for key in &keys {
            if let Err(e) = txn::settle(&self.0.offsets, &self.0.topics, key).await {
                let (r, published) = self.start(name, &p.stored, Arc::clone(&p.status), false).await;
                *running = r;
                slot.publish(Some(published));
                return Err(e.into());
            }
        }
        let dir = self.0.dir.join(name);
        let parent = self.0.dir.clone();
        let removed = tokio::task::spawn_blocking(move || {
            std::fs::remove_dir_all(&dir).map_err(|e| ProcessorError::io(&dir, e))?;
            files::sync_dir(&parent)
        })
        .await
        .map_err(|_| ProcessorError::Topic(TopicError::ShuttingDown))?;
        // Its state's changelog, then its committed offsets: a crash before this leaves data of
        // no deployment (harmless), never a deployment without its offsets or state. All of it
        // before the name is free: a deploy of the same name waits, then starts from nothing.
        let cleaned = match removed {
            Ok(()) => self.remove_data(name, &keys).await,
            Err(e) => Err(e),
        };
        slot.publish(None);
        self.forget(name, &slot);
        cleaned
    }

    async fn remove_data(&self, name: &str, keys: &[String]) -> Result<(), ProcessorError> {
        match self
            .0
            .topics
            .delete_internal(&crate::state::changelog::topic_name(name))
            .await
        {
            Ok(()) | Err(TopicError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        for key in keys {
            self.0.offsets.remove(key).await?;
        }
        Ok(())
    }

    /// Deletes a module that no deployment uses.
    pub async fn delete_module(&self, id: &str) -> Result<(), ProcessorError> {
        let _gate = self.0.modules_gate.write().await;
        let users: Vec<String> = self
            .list()
            .into_iter()
            .filter(|p| p.spec.module.as_deref() == Some(id))
            .map(|p| p.name)
            .collect();
        if !users.is_empty() {
            return Err(ProcessorError::ModuleInUse {
                id: id.to_owned(),
                processors: users,
            });
        }
        let modules = self.0.modules.clone();
        let id = id.to_owned();
        tokio::task::spawn_blocking(move || modules.delete(&id))
            .await
            .map_err(|_| ProcessorError::Topic(TopicError::ShuttingDown))?
    }

    /// Kept log lines and a receiver for new ones.
    pub fn logs(
        &self,
        name: &str,
    ) -> Result<(Vec<LogLine>, tokio::sync::broadcast::Receiver<LogLine>), ProcessorError> {
        let slot = self.slots().get(name).cloned();
        let p = slot
            .and_then(|s| s.published())
            .ok_or_else(|| ProcessorError::NotFound(name.to_owned()))?;
        Ok(p.status.subscribe())
    }

    /// Stops every processor, letting in-flight appends and commits finish.
    pub async fn shutdown(&self) {
        let names: Vec<String> = self.slots().keys().cloned().collect();
        for name in names {
            if let Ok((_, mut running)) = self.owner(&name, false).await
                && let Some(r) = running.take()
            {
                r.halt().await;
            }
        }
    }
}
