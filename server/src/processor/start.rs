//! Checking a deployment before anything changes, and starting its partition tasks.
//!
//! Every check that can fail runs before the old tasks stop: a deploy that answers 400 leaves the
//! running processor as it was, and one that answers 201 has nothing left to fail on but the
//! guest itself.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::runner::{self, PartitionGauges};
use super::spec::{OnError, ProcessorSpec, Stored};
use super::status::Status;
use super::{ProcessorError, Processors, files};
use crate::topic::{Topic, TopicConfig, TopicError};
use crate::wasm::CompiledModule;

/// A processor's running tasks.
pub(super) struct Running {
    pub stop: CancellationToken,
    pub tasks: Vec<JoinHandle<()>>,
    /// Kept so the tasks' receiver stays open (a closed one reads as a change).
    _paused: watch::Sender<bool>,
}

impl Running {
    /// Stops the tasks and waits until every one has ended: a guest call in flight is dropped
    /// at its next epoch tick, an append or commit in flight completes.
    pub async fn halt(self) {
        self.stop.cancel();
        futures::future::join_all(self.tasks).await;
    }
}

/// What readers of a processor see: replaced whole by each lifecycle operation.
#[derive(Clone)]
pub(super) struct Published {
    pub stored: Stored,
    pub status: Arc<Status>,
    pub gauges: Vec<Arc<PartitionGauges>>,
    pub input: Option<Arc<Topic>>,
}

fn invalid(message: String) -> ProcessorError {
    ProcessorError::InvalidSpec(message)
}

impl Processors {
    /// Everything a deploy of `spec` as `name` needs, checked against the broker as it is:
    /// the module, the topics, the dead-letter topic, the limits. Returns the compiled module.
    pub(super) async fn check_deploy(
        &self,
        name: &str,
        spec: &ProcessorSpec,
    ) -> Result<Option<CompiledModule>, ProcessorError> {
        let runtime = self.0.modules.runtime();
        let runtime_max = runtime.config().memory_bytes_max;
        if spec.limits.memory_bytes_max > runtime_max {
            return Err(invalid(format!(
                "limits.memory_bytes_max is {}; the broker allows at most {runtime_max} per instance",
                spec.limits.memory_bytes_max
            )));
        }
        if !runtime.pool().fits(spec.limits.memory_bytes_max) {
            let (live, reserved, budget) = runtime.pool().usage();
            return Err(invalid(format!(
                "limits.memory_bytes_max is {} but the guests' memory budget is {budget} bytes in all (limits.guest_memory_bytes_max); {reserved} are reserved now by {live} live instances, {} free",
                spec.limits.memory_bytes_max,
                budget.saturating_sub(reserved)
            )));
        }
        if let Some(m) = &spec.module {
            self.0.modules.info(m)?;
        }
        let topics = &self.0.topics;
        topics.get(&spec.input)?;
        for o in &spec.outputs {
            topics
                .get(o)
                .map_err(|_| invalid(format!("output topic '{o}' does not exist; create it first")))?;
        }
        if spec.on_error == OnError::DeadLetter {
            let dlq = spec.dead_letter_topic(name);
            if let Err(reason) = crate::topic::spec::validate_name(&dlq) {
                return Err(invalid(match &spec.dead_letter_topic {
                    Some(_) => format!("dead_letter_topic: {reason}"),
                    None => format!(
                        "the default dead-letter topic '{name}-dlq' is not a valid topic name ({reason}); name one with dead_letter_topic"
                    ),
                }));
            }
            if dlq == spec.input || spec.outputs.contains(&dlq) {
                return Err(invalid(format!(
                    "dead-letter topic '{dlq}' is also an {} of the processor: a failing record would be read again and fail forever",
                    if dlq == spec.input { "input" } else { "output" }
                )));
            }
            if crate::topic::spec::is_internal(&dlq) {
                return Err(invalid(format!(
                    "dead-letter topic '{dlq}': names starting with '__' belong to the broker"
                )));
            }
        }
        if let Some(o) = spec.outputs.iter().find(|o| crate::topic::spec::is_internal(o)) {
            return Err(invalid(format!(
                "output topic '{o}' belongs to the broker (names starting with '__'): a processor cannot write to it"
            )));
        }
        for t in spec.table_names() {
            let table = topics.get(&t).map_err(|_| {
                invalid(format!("table '{t}' does not exist; a table is a topic read as the latest value per key: create the topic first"))
            })?;
            let input = topics.get(&spec.input)?;
            if table.partitions.len() != input.partitions.len() {
                return Err(invalid(format!(
                    "table '{t}' has {} partitions and input '{}' has {}: a join reads the table partition of each input partition, so both need the same partition count (and the same keys)",
                    table.partitions.len(),
                    spec.input,
                    input.partitions.len()
                )));
            }
        }
        if let Some(t) = spec.late_topic()
            && crate::topic::spec::is_internal(t)
        {
            return Err(invalid(format!(
                "window.late.topic '{t}' belongs to the broker (names starting with '__')"
            )));
        }
        if spec.has_state() {
            let changelog = crate::state::changelog::topic_name(name);
            crate::topic::spec::validate_name(&changelog).map_err(|e| {
                invalid(format!(
                    "a processor with state keeps it in the topic '{changelog}', which is not a valid name ({e}); use a shorter processor name"
                ))
            })?;
        }
        let Some(id) = spec.module.clone() else { return Ok(None) };
        let modules = self.0.modules.clone();
        let module_id = id.clone();
        let module = tokio::task::spawn_blocking(move || modules.compiled(&id))
            .await
            .map_err(|_| ProcessorError::Topic(TopicError::ShuttingDown))??;
        if !spec.stores.is_empty() && module.contract == crate::wasm::Contract::V0_1 {
            return Err(invalid(format!(
                "the deployment declares stores, but module {} was built against contract 0.1, which has no state; rebuild it against wit/processor.wit 0.2 (weir processor build does)",
                module_id
            )));
        }
        Ok(Some(module))
    }

    /// Starts the tasks of `stored`. A deployment that cannot start (its module or a topic is
    /// gone) is published in state `failed`, with the reason, and nothing runs.
    /// `create_dead_letter`: make the dead-letter topic if it is missing (a deploy does; a
    /// restart, pause or resume does not bring back a topic someone deleted, it fails instead).
    pub(super) async fn start(
        &self,
        name: &str,
        stored: &Stored,
        status: Arc<Status>,
        create_dead_letter: bool,
    ) -> (Option<Running>, Published) {
        let mut published = Published {
            stored: stored.clone(),
            status: Arc::clone(&status),
            gauges: Vec::new(),
            input: None,
        };
        // A reset cut short (a crash, an error) is finished before any task runs.
        let finished = match self.0.topics.get(&stored.spec.input) {
            Ok(input) => self.finish_reset(name, &input).await,
            Err(_) => Ok(()),
        };
        if let Err(e) = finished {
            tracing::error!(processor = name, error = %e, "cannot finish the processor's reset");
            published
                .status
                .set_error(format!("a reset of the processor could not be finished: {e}"), true);
            return (None, published);
        }
        let stop = CancellationToken::new();
        let (paused_tx, paused) = watch::channel(stored.paused);
        let ctx = match self
            .prepare(name, &stored.spec, status, stop.clone(), paused, create_dead_letter)
            .await
        {
            Ok(ctx) => ctx,
            Err(e) => {
                tracing::error!(processor = name, error = %e, "processor cannot start");
                published.status.set_error(e.to_string(), true);
                return (None, published);
            }
        };
        published.input = Some(Arc::clone(&ctx.input));
        let runtime = self.0.modules.runtime().clone();
        let mut tasks = Vec::with_capacity(ctx.input.partitions.len());
        for p in &ctx.input.partitions {
            let gauges = Arc::new(PartitionGauges::default());
            // What the task will resume from, so the answer of a deploy, resume or reset shows
            // it before the task has started.
            if let Some(c) = self.0.offsets.get(&crate::group::offsets::task_key(name, p.id)) {
                gauges.committed.store(c.offset, std::sync::atomic::Ordering::Relaxed);
            }
            published.gauges.push(Arc::clone(&gauges));
            tasks.push(runtime.spawn(runner::run_partition(Arc::clone(&ctx), Arc::clone(p), gauges)));
        }
        tracing::info!(
            processor = name,
            partitions = tasks.len(),
            paused = stored.paused,
            "processor started"
        );
        let running = Running {
            stop,
            tasks,
            _paused: paused_tx,
        };
        (Some(running), published)
    }

    async fn prepare(
        &self,
        name: &str,
        spec: &ProcessorSpec,
        status: Arc<Status>,
        stop: CancellationToken,
        paused: watch::Receiver<bool>,
        create_dead_letter: bool,
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
                Some(match self.0.topics.get(&dlq) {
                    Ok(t) => t,
                    Err(_) if create_dead_letter => self.dead_letter_topic(&dlq, &input).await?,
                    Err(_) => {
                        return Err(ProcessorError::InvalidSpec(format!(
                            "its dead-letter topic '{dlq}' was deleted; create it again, or redeploy to have it created"
                        )));
                    }
                })
            }
            _ => None,
        };
        let changelog = match spec.has_state() {
            false => None,
            true => Some(self.changelog_topic(name, &input).await?),
        };
        let mut outputs = outputs;
        if let Some(late) = spec.late_topic() {
            outputs.push(self.side_topic(late, &input).await?);
        }
        let module = match spec.module.clone() {
            None => None,
            Some(id) => {
                let modules = self.0.modules.clone();
                Some(
                    tokio::task::spawn_blocking(move || modules.compiled(&id))
                        .await
                        .map_err(|_| ProcessorError::Topic(TopicError::ShuttingDown))??,
                )
            }
        };
        let aggregate = spec.aggregator().map_err(ProcessorError::InvalidSpec)?;
        let mut tables = Vec::new();
        for t in spec.table_names() {
            let table = self.0.tables.open(&t).await?;
            if table.topic.partitions.len() != input.partitions.len() {
                return Err(ProcessorError::InvalidSpec(format!(
                    "table '{t}' now has {} partitions and input '{}' has {}; they must match",
                    table.topic.partitions.len(),
                    input.name,
                    input.partitions.len()
                )));
            }
            tables.push((t, table));
        }
        // Committed offsets belong to one incarnation of the input topic: a topic deleted and
        // created again under the same name starts from the deployment's `start` position.
        let offsets = self.0.dir.join(name).join("offsets");
        let legacy_offsets_dir = offsets.join(&input.id);
        let keep = input.id.clone();
        let made = tokio::task::spawn_blocking(move || prepare_offsets(&offsets, &keep))
            .await
            .map_err(|_| ProcessorError::Topic(TopicError::ShuttingDown))?;
        made?;
        let share = input
            .partitions
            .len()
            .min(self.0.modules.runtime().pool().share(spec.limits.memory_bytes_max));
        Ok(Arc::new(runner::Ctx {
            share: Arc::new(tokio::sync::Semaphore::new(share)),
            name: name.to_owned(),
            spec: spec.clone(),
            status,
            runtime: self.0.modules.runtime().clone(),
            module,
            aggregate,
            join: spec.join.clone(),
            tables,
            input,
            outputs,
            dead_letter,
            topics: self.0.topics.clone(),
            offsets: self.0.offsets.clone(),
            legacy_offsets_dir,
            changelog,
            state_dir: self.0.dir.join(name).join("state"),
            stop,
            paused,
        }))
    }

    /// The processor's changelog topic: one partition per input partition, compacted; made on
    /// first use. Its partitions belong to the input's: a count that no longer matches (the
    /// input was made again with other partitions) cannot be mapped.
    async fn changelog_topic(&self, name: &str, input: &Topic) -> Result<Arc<Topic>, ProcessorError> {
        let changelog = crate::state::changelog::topic_name(name);
        let topic = match self.0.topics.get(&changelog) {
            Ok(t) => t,
            Err(_) => {
                let (topics, topic_name) = (self.0.topics.clone(), changelog.clone());
                let config = TopicConfig {
                    partitions: input.partitions.len() as u32,
                    retention_ms: None,
                    retention_bytes: None,
                    segment_bytes: 64 * 1024 * 1024,
                    fsync: crate::topic::FsyncPolicy::Always,
                    cleanup_policy: crate::topic::CleanupPolicy::Compact,
                    ..TopicConfig::default()
                };
                match tokio::task::spawn_blocking(move || topics.create_internal(&topic_name, config)).await {
                    Ok(Ok(t)) => t,
                    Ok(Err(TopicError::Exists(_) | TopicError::Busy { .. })) => self.0.topics.get(&changelog)?,
                    Ok(Err(e)) => return Err(e.into()),
                    Err(_) => return Err(TopicError::ShuttingDown.into()),
                }
            }
        };
        if topic.partitions.len() != input.partitions.len() {
            return Err(ProcessorError::InvalidSpec(format!(
                "its state is kept in {} partitions, but input topic '{}' now has {}: reset the state (POST /v1/processors/{name}/reset with \"state\": true) to start it over",
                topic.partitions.len(),
                input.name,
                input.partitions.len()
            )));
        }
        Ok(topic)
    }

    /// The side topic of late records, created (the input's settings) if missing.
    async fn side_topic(&self, name: &str, input: &Topic) -> Result<Arc<Topic>, ProcessorError> {
        if let Ok(t) = self.0.topics.get(name) {
            return Ok(t);
        }
        let (topics, topic) = (self.0.topics.clone(), name.to_owned());
        let config = input.config.clone();
        match tokio::task::spawn_blocking(move || topics.create(&topic, config)).await {
            Ok(Ok(t)) => Ok(t),
            Ok(Err(TopicError::Exists(_) | TopicError::Busy { .. })) => Ok(self.0.topics.get(name)?),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(TopicError::ShuttingDown.into()),
        }
    }

    /// The dead-letter topic, created (one partition, the input's settings) if missing.
    async fn dead_letter_topic(&self, dlq: &str, input: &Topic) -> Result<Arc<Topic>, ProcessorError> {
        if let Ok(t) = self.0.topics.get(dlq) {
            return Ok(t);
        }
        let (topics, name) = (self.0.topics.clone(), dlq.to_owned());
        let config = TopicConfig {
            partitions: 1,
            ..input.config.clone()
        };
        match tokio::task::spawn_blocking(move || topics.create(&name, config)).await {
            Ok(Ok(t)) => Ok(t),
            Ok(Err(TopicError::Exists(_) | TopicError::Busy { .. })) => Ok(self.0.topics.get(dlq)?),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(TopicError::ShuttingDown.into()),
        }
    }
}

/// Offsets of versions before the offset store, if the deployment has them: makes
/// `offsets/KEEP/` (durably) and removes the offsets of other incarnations. Offsets of the
/// layout before incarnations (`offsets/P.offset`) move into `KEEP/`: they were committed
/// against the topic that has that name now. The tasks move what is left into the offset store.
fn prepare_offsets(offsets: &Path, keep: &str) -> Result<(), ProcessorError> {
    if !offsets.exists() {
        // Deployed since offsets moved to the offset store.
        return Ok(());
    }
    let current = offsets.join(keep);
    files::create_dir_durable(&current)?;
    let entries = std::fs::read_dir(offsets).map_err(|e| ProcessorError::io(offsets, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let path = entry.path();
        if path.is_file() && name.to_string_lossy().ends_with(".offset") && !current.join(&name).exists() {
            std::fs::rename(&path, current.join(&name)).map_err(|e| ProcessorError::io(&path, e))?;
            files::sync_dir(&current)?;
            files::sync_dir(offsets)?;
            continue;
        }
        if name != keep {
            // Files of the layout before incarnations (`P.offset`) and stale incarnations.
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            if let Err(e) = removed {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove stale offsets");
            }
        }
    }
    Ok(())
}
