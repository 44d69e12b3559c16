//! A processor's deployment: what `PUT /v1/processors/{name}` takes and what is stored.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::join::JoinSpec;
use crate::state::StateLimits;
use crate::wasm::GuestLimits;
use crate::window::spec::{AggregateSpec, Late, LateWord, WindowSpec};

/// Records per guest call when the deployment names no `batch_records_max`.
pub const BATCH_RECORDS_DEFAULT: usize = 1000;
/// Largest `batch_records_max`: one call's input and output must fit the memory cap.
pub const BATCH_RECORDS_MAX: usize = 100_000;
/// Most outputs of one processor.
pub const OUTPUTS_MAX: usize = 64;

/// Where a processor starts reading a partition that has no committed offset yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Start {
    #[default]
    Earliest,
    Latest,
    Offset(u64),
}

impl Serialize for Start {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Earliest => s.serialize_str("earliest"),
            Self::Latest => s.serialize_str("latest"),
            Self::Offset(n) => s.serialize_u64(*n),
        }
    }
}

impl<'de> Deserialize<'de> for Start {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(Self::Offset(n)),
            Raw::S(s) => match s.as_str() {
                "earliest" => Ok(Self::Earliest),
                "latest" => Ok(Self::Latest),
                other => other.parse().map(Self::Offset).map_err(|_| {
                    serde::de::Error::custom(format!("start must be earliest, latest or an offset, got '{other}'"))
                }),
            },
        }
    }
}

/// `start` as the API documents it: `earliest`, `latest` or an offset.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
#[serde(untagged)]
pub enum StartSchema {
    Position(StartWord),
    Offset(u64),
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "snake_case")]
pub enum StartWord {
    Earliest,
    Latest,
}

/// What happens to a record the processor fails on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Write it to the dead-letter topic, with the error in its headers, and go on.
    #[default]
    DeadLetter,
    /// Count it and go on.
    Skip,
    /// Stop the processor (state `failed`) before the record; fix and redeploy to go on.
    Stop,
}

/// What a processor promises about its outputs when it crashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Guarantee {
    /// Outputs, dead letters, state and the input offset of a commit become visible together,
    /// or not at all: after a crash nothing repeats downstream (for readers of committed
    /// records, the default).
    #[default]
    ExactlyOnce,
    /// Outputs are appended as soon as each batch is done (visible sooner); after a crash the
    /// batches since the last offset checkpoint run again and their outputs repeat.
    AtLeastOnce,
}

/// Default `commit_interval_ms`: Kafka Streams' under exactly-once.
pub const COMMIT_INTERVAL_MS_DEFAULT: u64 = 100;
/// Largest `commit_interval_ms`.
pub const COMMIT_INTERVAL_MS_MAX: u64 = 60_000;

/// A deployment, as sent to `PUT /v1/processors/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcessorSpec {
    /// `sha256:...` from `POST /v1/modules`. None with a built-in `aggregate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    pub input: String,
    pub outputs: Vec<String>,
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// `earliest` (default), `latest`, or an offset.
    #[serde(default)]
    #[schema(value_type = StartSchema)]
    pub start: Start,
    #[serde(default)]
    pub on_error: OnError,
    /// Default for `dead_letter`: `NAME-dlq`, created if missing.
    #[serde(default)]
    pub dead_letter_topic: Option<String>,
    #[serde(default)]
    pub limits: GuestLimits,
    #[serde(default = "batch_default")]
    pub batch_records_max: usize,
    /// `exactly_once` (default) or `at_least_once`.
    #[serde(default)]
    pub guarantee: Guarantee,
    /// How long a task gathers outputs before it commits them (it commits at once when it has
    /// read everything there is). Longer: fewer, larger transactions; shorter: outputs visible
    /// sooner.
    #[serde(default = "commit_interval_default")]
    pub commit_interval_ms: u64,
    /// Keyed state stores the processor uses (`weir:processor/state` of contract 0.2), each
    /// kept per input partition and backed by the changelog topic `__weir_changelog-NAME`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stores: Vec<String>,
    /// Limits of each task's state.
    #[serde(default)]
    pub state_limits: StateLimits,
    /// A built-in aggregate per record key, run natively (no module): `{"op": "sum", "path":
    /// "/amount"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<AggregateSpec>,
    /// Event-time windows of the aggregate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowSpec>,
    /// A declarative stream-table join, run natively (no module): each JSON record gets the
    /// table's row for its key under a field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join: Option<JoinSpec>,
    /// Tables (topics read as the latest value per key) the module reads with
    /// `weir:processor/tables`; each co-partitioned with the input.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
}

/// Most tables one processor reads.
pub const TABLES_MAX: usize = 16;

fn batch_default() -> usize {
    BATCH_RECORDS_DEFAULT
}

fn commit_interval_default() -> u64 {
    COMMIT_INTERVAL_MS_DEFAULT
}

impl ProcessorSpec {
    /// Every store of a task: the declared ones, then the broker's for a built-in aggregate.
    pub fn all_stores(&self) -> Vec<String> {
        let mut all = self.stores.clone();
        if let Ok(Some(a)) = self.aggregator() {
            all.extend(a.stores());
        }
        all
    }

    /// Whether the tasks keep state (and a changelog).
    pub fn has_state(&self) -> bool {
        !self.stores.is_empty() || self.aggregate.is_some()
    }

    /// The built-in aggregate, checked, if the deployment has one.
    pub fn aggregator(&self) -> Result<Option<crate::processor::aggregate::Aggregator>, String> {
        self.aggregate
            .as_ref()
            .map(|a| crate::processor::aggregate::Aggregator::new(a, self.window.as_ref()))
            .transpose()
    }

    /// Every table the processor reads: its join's, then those its module looks up.
    pub fn table_names(&self) -> Vec<String> {
        let mut all: Vec<String> = self.join.iter().map(|j| j.table.clone()).collect();
        all.extend(
            self.tables
                .iter()
                .filter(|t| !all.contains(t))
                .cloned()
                .collect::<Vec<_>>(),
        );
        all
    }

    /// Why state kept for `old` cannot be read as this deployment's, if it cannot: a built-in
    /// aggregate's function, path, window shape or time source changed.
    pub fn state_change(&self, old: &ProcessorSpec) -> Option<String> {
        let shape = |w: &Option<WindowSpec>| {
            w.as_ref()
                .map(|w| (w.kind, w.size_ms, w.advance_ms, w.gap_ms, w.time.clone()))
        };
        if old.aggregate.is_none() || (self.aggregate == old.aggregate && shape(&self.window) == shape(&old.window)) {
            return None;
        }
        Some("its aggregate or window changed (the function, path, window type, sizes or time source): the window state kept for the old one cannot be read by the new one; reset the state first (POST /v1/processors/NAME/reset with \"state\": true) or deploy under another name".into())
    }

    /// The side topic of late records, if the window names one.
    pub fn late_topic(&self) -> Option<&str> {
        match self.window.as_ref().map(|w| &w.late) {
            Some(Late::Topic { topic }) => Some(topic),
            _ => None,
        }
    }

    /// Checks what can be checked without the topics, naming the field that is wrong.
    pub fn validate(&self) -> Result<(), String> {
        let kinds = [self.module.is_some(), self.aggregate.is_some(), self.join.is_some()];
        match kinds.iter().filter(|k| **k).count() {
            0 => {
                return Err(
                    "a processor needs a module (\"module\": \"sha256:...\" from POST /v1/modules), a built-in aggregate (\"aggregate\": {\"op\": \"count\"}) or a join (\"join\": {\"table\": \"customers\"})".into(),
                );
            }
            1 => {}
            _ => return Err("a processor has one of module, aggregate and join, not several".into()),
        }
        if self.module.is_none() && !self.stores.is_empty() {
            return Err("stores are a module's; a built-in aggregate keeps its own state, and a join has none".into());
        }
        if self.module.is_none() && self.outputs.len() > 1 {
            return Err("a built-in aggregate or join writes one output topic; list one in outputs".into());
        }
        if self
            .join
            .as_ref()
            .is_some_and(|j| j.missing == super::join::Missing::DeadLetter)
            && self.on_error != OnError::DeadLetter
        {
            return Err(
                "join.missing \"dead_letter\" needs the dead-letter topic of on_error \"dead_letter\" (the default)"
                    .into(),
            );
        }
        if self.window.is_some() && self.aggregate.is_none() {
            return Err("window: windows are declared with a built-in aggregate (\"aggregate\")".into());
        }
        if !self.tables.is_empty() && self.module.is_none() {
            return Err(
                "tables are for a module's lookups (weir:processor/tables); a join names its table in join.table"
                    .into(),
            );
        }
        if self.tables.len() > TABLES_MAX {
            return Err(format!("tables lists at most {TABLES_MAX} tables"));
        }
        if let Some(j) = &self.join {
            j.validate()?;
            if !self.config.is_empty() {
                return Err("config is for a module's init; a join takes none".into());
            }
        }
        if let Some(t) = self
            .table_names()
            .iter()
            .find(|t| **t == self.input || self.outputs.contains(t))
        {
            return Err(format!(
                "table '{t}' is also the processor's input or an output; a table is another topic, read as the latest value per key"
            ));
        }
        if self.aggregate.is_some() {
            if !self.config.is_empty() {
                return Err("config is for a module's init; a built-in aggregate takes none".into());
            }
            self.aggregator()?;
        }
        if matches!(
            self.window.as_ref().map(|w| &w.late),
            Some(Late::Word(LateWord::DeadLetter))
        ) && self.on_error != OnError::DeadLetter
        {
            return Err(
                "window.late \"dead_letter\" needs the dead-letter topic of on_error \"dead_letter\" (the default)"
                    .into(),
            );
        }
        if let Some(t) = self.late_topic()
            && (*t == self.input || self.outputs.iter().any(|o| o == t))
        {
            return Err(format!(
                "window.late.topic '{t}' is also the processor's input or an output; name a topic of its own"
            ));
        }
        if self.outputs.is_empty() || self.outputs.len() > OUTPUTS_MAX {
            return Err(format!("outputs must list 1 to {OUTPUTS_MAX} topics"));
        }
        if self.outputs.contains(&self.input) {
            return Err(format!(
                "topic '{}' is both input and output; a processor would read its own output",
                self.input
            ));
        }
        if !(1..=BATCH_RECORDS_MAX).contains(&self.batch_records_max) {
            return Err(format!("batch_records_max must be 1 to {BATCH_RECORDS_MAX}"));
        }
        let l = &self.limits;
        if l.deadline_ms == 0 || l.deadline_ms > 60_000 {
            return Err("limits.deadline_ms must be 1 to 60000".into());
        }
        if l.memory_bytes_max < 1024 * 1024 || l.output_bytes_max == 0 {
            return Err("limits.memory_bytes_max must be at least 1 MiB and limits.output_bytes_max positive".into());
        }
        if !(1..=COMMIT_INTERVAL_MS_MAX).contains(&self.commit_interval_ms) {
            return Err(format!("commit_interval_ms must be 1 to {COMMIT_INTERVAL_MS_MAX}"));
        }
        if self.stores.len() > crate::state::STORES_MAX {
            return Err(format!("stores lists at most {} stores", crate::state::STORES_MAX));
        }
        for (i, s) in self.stores.iter().enumerate() {
            crate::state::validate_store_name(s).map_err(|e| format!("stores: {e}"))?;
            if self.stores[..i].contains(s) {
                return Err(format!("stores: '{s}' is listed twice"));
            }
        }
        self.state_limits.validate()?;
        if self.on_error != OnError::DeadLetter && self.dead_letter_topic.is_some() {
            return Err("dead_letter_topic is only used with on_error \"dead_letter\"".into());
        }
        Ok(())
    }

    /// The dead-letter topic of processor `name`.
    pub fn dead_letter_topic(&self, name: &str) -> String {
        self.dead_letter_topic.clone().unwrap_or_else(|| format!("{name}-dlq"))
    }
}

/// What is stored for a processor: its spec and whether it is paused.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stored {
    pub spec: ProcessorSpec,
    pub paused: bool,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// Who deployed it last (`admin` or `token:ID`): the rights it was checked against. A
    /// processor keeps running when that token is revoked; delete it to stop it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed_by: Option<String>,
}
