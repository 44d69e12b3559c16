//! One instance of a processor: a store with its limits, the instantiated bindings, and calls
//! that turn every way a guest can fail into a [`CallError`].

use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::bindings::{Level, v01, v02};
use super::logpipe::LogPipe;
use super::{LogSink, ModuleKind};
use crate::log::NewRecord;
use weir_sdk::packed::{BatchWriter, OutputReader};

/// Limits of one instance, each configurable per processor; a deployment may give any of them
/// and gets the defaults for the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct GuestLimits {
    /// Longest one call may run.
    pub deadline_ms: u64,
    /// Largest linear memory the instance may grow to.
    pub memory_bytes_max: usize,
    /// Largest output (bytes of keys, values and headers) of one call.
    pub output_bytes_max: usize,
}

impl Default for GuestLimits {
    fn default() -> Self {
        Self {
            deadline_ms: 1000,
            memory_bytes_max: 64 * 1024 * 1024,
            output_bytes_max: 64 * 1024 * 1024,
        }
    }
}

/// How a trap came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrapKind {
    /// The call ran past its deadline.
    Deadline,
    /// The guest asked for more memory than its cap.
    OutOfMemory,
    /// Anything else: a panic (Rust aborts with `unreachable`), a bad access, ...
    Crash,
}

/// Why a call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The guest returned an error for the batch, maybe naming the record.
    #[error("{message}")]
    Guest { message: String, record: Option<u32> },
    /// The guest trapped. The instance is unusable: build a new one.
    #[error("{message}")]
    Trap { kind: TrapKind, message: String },
    /// The guest's answer broke the contract (malformed or too large).
    #[error("{0}")]
    BadOutput(String),
}

impl CallError {
    /// Whether the instance must be rebuilt.
    pub fn is_trap(&self) -> bool {
        matches!(self, Self::Trap { .. })
    }
}

/// A record the guest emitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emitted {
    /// Index of the input record it was emitted for.
    pub input: u32,
    /// Index into the processor's outputs; `None` is the first.
    pub output: Option<u32>,
    pub record: NewRecord,
}

/// Everything one call produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutput {
    pub emitted: Vec<Emitted>,
    /// Input records the guest reported failed: `(index, message)`.
    pub failed: Vec<(u32, String)>,
}

/// A record handed to the guest.
#[derive(Debug, Clone, Copy)]
pub struct InputRef<'a> {
    pub offset: u64,
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: &'a [u8],
    pub headers: &'a [(&'a str, &'a [u8])],
}

/// The state of the task an instance runs for, shared with the task and with HTTP readers.
pub type TaskRef = Arc<Mutex<crate::state::TaskState>>;

/// Store data: WASI (deny-by-default), limits, the log, the task's state, and the current
/// call's time budget.
pub struct GuestState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: Limiter,
    pub(super) log: LogSink,
    /// The task's state (for the host's `state` and `time` imports), if it has one.
    pub(super) task: Option<TaskRef>,
    /// The tables the deployment declares (for the host's `tables` import).
    pub(super) tables: Vec<(String, Arc<crate::table::Table>)>,
    /// Epoch ticks the current call may still run before it is interrupted. Counted only
    /// while the guest runs (each tick it runs through ends in a yield), so time spent waiting
    /// for a thread while other guests run is not charged to it.
    ticks_left: u64,
    /// Epoch ticks the current call has run through.
    ticks_run: u64,
    /// When the current call must end whatever it ran: `WALL_FACTOR` times its deadline. A call
    /// throttled among many runaways would otherwise hold its instance (and pool slot) for
    /// many times its deadline.
    wall_deadline: std::time::Instant,
    /// Length of an epoch tick, to sleep one.
    tick: std::time::Duration,
    /// The broker's permits for long calls, and the one this call holds for its current tick.
    long_calls: Arc<Semaphore>,
    permit: Arc<Mutex<Option<OwnedSemaphorePermit>>>,
}

/// Ticks a call runs at full speed (yielding to the executor between ticks). A streaming call
/// that runs longer is unusual (a loop, a runaway batch). From then on each tick it runs needs
/// one of the broker's few long-call permits (see [`super::RuntimeConfig::long_calls_max`]),
/// handed out in turn, and after each tick it sleeps one: all long calls together take at most
/// half of `long_calls_max` cores, however many there are, and the rest of the machine stays
/// with the healthy guests and the broker.
const FULL_SPEED_TICKS: u64 = 5;
/// A call's wall-clock limit, in multiples of its `deadline_ms` of running time.
const WALL_FACTOR: u32 = 4;

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Caps linear memory and remembers that it said no, so that a trap that follows is reported
/// as out-of-memory rather than a crash.
///
/// A refused growth is an ordinary `memory.grow` failure (-1) for the guest, not a trap:
/// language runtimes probe with large growths and fall back to smaller ones (CPython's
/// allocator asks for more than the cap and recovers), and a guest that cannot recover traps on
/// its own right after.
struct Limiter {
    memory_bytes_max: usize,
    /// Linear memory of the instance, all memories together (they only ever grow).
    memory_bytes: usize,
    /// The refused request of the current call, as a message.
    denied: Option<String>,
}

/// Table elements an instance may have: big enough for Python and JavaScript runtimes.
const TABLE_ELEMENTS_MAX: usize = 1_000_000;

impl ResourceLimiter for Limiter {
    /// The cap is on all of the instance's memories together: a component with several
    /// memories must not get the cap once per memory.
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.memory_bytes + desired.saturating_sub(current);
        if total > self.memory_bytes_max {
            self.denied = Some(format!(
                "memory cap reached: the guest asked for {total} bytes in all, the cap is {} (memory_bytes_max)",
                self.memory_bytes_max
            ));
            return Ok(false);
        }
        self.memory_bytes = total;
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= TABLE_ELEMENTS_MAX)
    }
}

enum Bindings {
    Packed(v01::packed::PackedProcessor),
    Typed(v01::typed::Processor),
    Latin1(v01::latin1::PackedLatin1Processor),
    Packed2(v02::packed::PackedProcessor),
    Typed2(v02::typed::Processor),
    Latin12(v02::latin1::PackedLatin1Processor),
}

/// A live processor instance.
pub struct Guest {
    store: Store<GuestState>,
    bindings: Bindings,
    limits: GuestLimits,
    epoch_tick_ms: u64,
    topic: String,
    /// Its place in the pool, given back when it is dropped: last, after the store (fields
    /// drop in order), so the pooling allocator's slot is free before another instance may
    /// take the permit (else wasmtime refuses that one: "maximum concurrent limit").
    _permit: super::pool::InstancePermit,
}

impl Guest {
    pub(super) async fn new(
        runtime: &super::WasmRuntime,
        module: &super::CompiledModule,
        limits: GuestLimits,
        topic: &str,
        log: LogSink,
        permit: super::pool::InstancePermit,
        task: Option<TaskRef>,
    ) -> Result<Self, CallError> {
        let wasi = WasiCtxBuilder::new()
            .stdout(LogPipe::new(Level::Info, log.clone()))
            .stderr(LogPipe::new(Level::Warn, log.clone()))
            .build();
        let state = GuestState {
            wasi,
            table: ResourceTable::new(),
            limiter: Limiter {
                memory_bytes_max: limits.memory_bytes_max,
                memory_bytes: 0,
                denied: None,
            },
            log,
            task,
            tables: Vec::new(),
            ticks_left: 0,
            ticks_run: 0,
            wall_deadline: std::time::Instant::now(),
            tick: std::time::Duration::from_millis(runtime.epoch_tick_ms()),
            long_calls: runtime.long_calls(),
            permit: Arc::default(),
        };
        let mut store = Store::new(runtime.engine(), state);
        store.limiter(|s| &mut s.limiter);
        // Every tick the guest runs through: out of budget, interrupt (a deadline trap); else
        // yield to the executor so other guests and tasks get the thread, and go on.
        store.epoch_deadline_callback(|mut cx| {
            let s = cx.data_mut();
            if s.ticks_left == 0 || std::time::Instant::now() >= s.wall_deadline {
                return Ok(UpdateDeadline::Interrupt);
            }
            s.ticks_left -= 1;
            s.ticks_run += 1;
            if s.ticks_run > FULL_SPEED_TICKS {
                // Rest a tick still holding the permit of the tick just run (so a permit is
                // busy half the time at most), give it back, then queue for the next one.
                let slot = Arc::clone(&s.permit);
                let held = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
                let (permits, tick) = (Arc::clone(&s.long_calls), s.tick);
                return Ok(UpdateDeadline::YieldCustom(
                    1,
                    Box::pin(async move {
                        tokio::time::sleep(tick).await;
                        drop(held);
                        if let Ok(p) = permits.acquire_owned().await {
                            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
                        }
                    }),
                ));
            }
            Ok(UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now())))
        });
        arm(&mut store, limits.deadline_ms, runtime.epoch_tick_ms());
        let bindings = match &module.pre {
            super::Pre::Packed(pre) => pre.instantiate_async(&mut store).await.map(Bindings::Packed),
            super::Pre::Typed(pre) => pre.instantiate_async(&mut store).await.map(Bindings::Typed),
            super::Pre::Latin1(pre) => pre.instantiate_async(&mut store).await.map(Bindings::Latin1),
            super::Pre::Packed2(pre) => pre.instantiate_async(&mut store).await.map(Bindings::Packed2),
            super::Pre::Typed2(pre) => pre.instantiate_async(&mut store).await.map(Bindings::Typed2),
            super::Pre::Latin12(pre) => pre.instantiate_async(&mut store).await.map(Bindings::Latin12),
        };
        let bindings = bindings.map_err(|e| classify(&store, &e))?;
        Ok(Self {
            _permit: permit,
            store,
            bindings,
            limits,
            epoch_tick_ms: runtime.epoch_tick_ms(),
            topic: topic.to_owned(),
        })
    }

    pub fn kind(&self) -> ModuleKind {
        match self.bindings {
            Bindings::Packed(_) | Bindings::Packed2(_) => ModuleKind::Packed,
            Bindings::Typed(_) | Bindings::Typed2(_) => ModuleKind::Typed,
            Bindings::Latin1(_) | Bindings::Latin12(_) => ModuleKind::PackedLatin1,
        }
    }

    /// Gives the guest the tables it may look up (`weir:processor/tables`).
    pub fn set_tables(&mut self, tables: Vec<(String, Arc<crate::table::Table>)>) {
        self.store.data_mut().tables = tables;
    }

    /// Bytes of linear memory the instance holds now.
    pub fn memory_bytes(&self) -> usize {
        self.store.data().limiter.memory_bytes
    }

    fn arm_deadline(&mut self) {
        arm(&mut self.store, self.limits.deadline_ms, self.epoch_tick_ms);
    }

    /// Calls the guest's `init`. `Guest` errors carry the guest's rejection message.
    #[allow(clippy::ptr_arg)] // the generated binding takes &Vec
    pub async fn init(&mut self, config: &Vec<(String, String)>) -> Result<(), CallError> {
        self.arm_deadline();
        let s = &mut self.store;
        let result = match &self.bindings {
            Bindings::Packed(b) => b.weir_processor_packed_batch_processor().call_init(s, config).await,
            Bindings::Typed(b) => b.weir_processor_batch_processor().call_init(s, config).await,
            Bindings::Latin1(b) => {
                b.weir_processor_packed_latin1_batch_processor()
                    .call_init(s, config)
                    .await
            }
            Bindings::Packed2(b) => b.weir_processor_packed_batch_processor().call_init(s, config).await,
            Bindings::Typed2(b) => b.weir_processor_batch_processor().call_init(s, config).await,
            Bindings::Latin12(b) => {
                b.weir_processor_packed_latin1_batch_processor()
                    .call_init(s, config)
                    .await
            }
        };
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(CallError::Guest { message, record: None }),
            Err(e) => Err(classify(&self.store, &e)),
        }
    }

    /// Processes one batch of records of `partition`. Dropping the future mid-call stops the
    /// guest at its next tick; the instance is then unusable (drop it).
    pub async fn process(&mut self, partition: u32, records: &[InputRef<'_>]) -> Result<BatchOutput, CallError> {
        self.arm_deadline();
        let n = records.len();
        match &self.bindings {
            Bindings::Packed(b) => {
                let batch = self.pack(partition, records);
                let r = b
                    .weir_processor_packed_batch_processor()
                    .call_process_packed(&mut self.store, &batch)
                    .await;
                self.finish_packed(r, n, Ok)
            }
            Bindings::Packed2(b) => {
                let batch = self.pack(partition, records);
                let r = b
                    .weir_processor_packed_batch_processor()
                    .call_process_packed(&mut self.store, &batch)
                    .await;
                self.finish_packed(r, n, Ok)
            }
            Bindings::Latin1(b) => {
                let batch = self.pack(partition, records);
                let r = b
                    .weir_processor_packed_latin1_batch_processor()
                    .call_process_packed(&mut self.store, &batch)
                    .await;
                self.finish_packed(r, n, latin1_bytes)
            }
            Bindings::Latin12(b) => {
                let batch = self.pack(partition, records);
                let r = b
                    .weir_processor_packed_latin1_batch_processor()
                    .call_process_packed(&mut self.store, &batch)
                    .await;
                self.finish_packed(r, n, latin1_bytes)
            }
            Bindings::Typed(b) => {
                let batch = self.typed_batch(partition, records);
                let r = b
                    .weir_processor_batch_processor()
                    .call_process(&mut self.store, &batch)
                    .await;
                self.finish_typed(r)
            }
            Bindings::Typed2(b) => {
                let batch = self.typed_batch(partition, records);
                let r = b
                    .weir_processor_batch_processor()
                    .call_process(&mut self.store, &batch)
                    .await;
                self.finish_typed(r)
            }
        }
    }

    /// Calls the guest's `on-timers` with `fired` (contract 0.2; a 0.1 component has no
    /// timers and gives nothing). Outputs name the index of their timer as `input`.
    pub async fn on_timers(&mut self, fired: &[crate::state::timers::Fired]) -> Result<BatchOutput, CallError> {
        use crate::state::timers::Domain as D;
        self.arm_deadline();
        let n = fired.len();
        let domain_byte = |d: D| [d as u8];
        let bytes: Vec<[u8; 1]> = fired.iter().map(|f| domain_byte(f.domain)).collect();
        let packed = || {
            let mut w = BatchWriter::new(&self.topic, 0, fired.iter().map(|f| f.key.len() + 40).sum());
            for (f, b) in fired.iter().zip(&bytes) {
                w.push(0, f.at, Some(&f.key), b, std::iter::empty());
            }
            w.finish()
        };
        match &self.bindings {
            Bindings::Packed(_) | Bindings::Typed(_) | Bindings::Latin1(_) => Ok(BatchOutput::default()),
            Bindings::Packed2(b) => {
                let batch = packed();
                let r = b
                    .weir_processor_packed_batch_processor()
                    .call_on_timers_packed(&mut self.store, &batch)
                    .await;
                self.finish_packed(r, n, Ok)
            }
            Bindings::Latin12(b) => {
                let batch = packed();
                let r = b
                    .weir_processor_packed_latin1_batch_processor()
                    .call_on_timers_packed(&mut self.store, &batch)
                    .await;
                self.finish_packed(r, n, latin1_bytes)
            }
            Bindings::Typed2(b) => {
                use v02::typed::weir::processor::time::{Domain, Fired};
                let list: Vec<Fired> = fired
                    .iter()
                    .map(|f| Fired {
                        key: f.key.clone(),
                        at: f.at,
                        domain: match f.domain {
                            D::EventTime => Domain::EventTime,
                            D::ProcessingTime => Domain::ProcessingTime,
                        },
                    })
                    .collect();
                let r = b
                    .weir_processor_batch_processor()
                    .call_on_timers(&mut self.store, &list)
                    .await;
                self.finish_typed(r)
            }
        }
    }

    fn typed_batch(
        &self,
        partition: u32,
        records: &[InputRef<'_>],
    ) -> Vec<v01::typed::weir::processor::types::InputRecord> {
        use v01::typed::weir::processor::types::{Header, InputRecord};
        records
            .iter()
            .map(|r| InputRecord {
                topic: self.topic.clone(),
                partition,
                offset: r.offset,
                timestamp: r.timestamp,
                key: r.key.map(<[u8]>::to_vec),
                value: r.value.to_vec(),
                headers: r
                    .headers
                    .iter()
                    .map(|(n, v)| Header {
                        name: (*n).to_owned(),
                        value: v.to_vec(),
                    })
                    .collect(),
            })
            .collect()
    }

    fn finish_typed(
        &self,
        result: wasmtime::Result<
            Result<
                Vec<v01::typed::weir::processor::types::OutputRecord>,
                v01::typed::weir::processor::types::ProcessError,
            >,
        >,
    ) -> Result<BatchOutput, CallError> {
        match result {
            Ok(Ok(out)) => from_typed(out, self.limits.output_bytes_max),
            Ok(Err(e)) => Err(CallError::Guest {
                message: e.message,
                record: e.record,
            }),
            Err(e) => Err(classify(&self.store, &e)),
        }
    }
}

/// Gives the next call `deadline_ms` of running time, in epoch ticks (at least one).
fn arm(store: &mut Store<GuestState>, deadline_ms: u64, tick_ms: u64) {
    let s = store.data_mut();
    s.ticks_left = deadline_ms.div_ceil(tick_ms).max(1);
    s.ticks_run = 0;
    s.wall_deadline = std::time::Instant::now() + std::time::Duration::from_millis(deadline_ms.max(250)) * WALL_FACTOR;
    // A permit left by the previous call (it ended mid-tick) goes back.
    drop(s.permit.lock().unwrap_or_else(|e| e.into_inner()).take());
    s.limiter.denied = None;
    store.set_epoch_deadline(1);
}

impl Guest {
    /// Encodes `records` as one packed input batch.
    fn pack(&self, partition: u32, records: &[InputRef<'_>]) -> Vec<u8> {
        let bytes: usize = records
            .iter()
            .map(|r| r.value.len() + r.key.map_or(0, <[u8]>::len) + 32)
            .sum();
        let mut w = BatchWriter::new(&self.topic, partition, bytes);
        for r in records {
            w.push(r.offset, r.timestamp, r.key, r.value, r.headers.iter().copied());
        }
        w.finish()
    }

    /// Turns a packed call's result into a [`BatchOutput`]; `to_bytes` recovers the packed
    /// bytes from however the world carries them.
    fn finish_packed<T>(
        &self,
        result: wasmtime::Result<Result<T, v01::typed::weir::processor::types::ProcessError>>,
        inputs: usize,
        to_bytes: impl FnOnce(T) -> Result<Vec<u8>, CallError>,
    ) -> Result<BatchOutput, CallError> {
        match result {
            Ok(Ok(out)) => decode_packed(&to_bytes(out)?, inputs, self.limits.output_bytes_max),
            Ok(Err(e)) => Err(CallError::Guest {
                message: e.message,
                record: e.record,
            }),
            Err(e) => Err(classify(&self.store, &e)),
        }
    }
}

/// The packed output of a `packed-latin1` guest: each char is one byte.
fn latin1_bytes(text: String) -> Result<Vec<u8>, CallError> {
    text.chars()
        .map(u8::try_from)
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| {
            CallError::BadOutput(
                "the guest's output holds a char above U+00FF: a packed-latin1 output carries one byte per char".into(),
            )
        })
}

fn too_large(bytes: usize, max: usize) -> CallError {
    CallError::BadOutput(format!(
        "the output of one call is {bytes} bytes; the cap is {max} (output_bytes_max)"
    ))
}

/// Reads a packed output buffer into owned records, checking it against the contract.
pub fn decode_packed(out: &[u8], inputs: usize, output_bytes_max: usize) -> Result<BatchOutput, CallError> {
    if out.len() > output_bytes_max {
        return Err(too_large(out.len(), output_bytes_max));
    }
    let bad = |e: weir_sdk::packed::PackError| CallError::BadOutput(format!("the guest's output is malformed: {e}"));
    let mut reader = OutputReader::new(out).map_err(bad)?;
    let mut emitted = Vec::with_capacity(reader.remaining().min(1 << 20));
    for r in reader.by_ref() {
        let r = r.map_err(bad)?;
        if r.input as usize >= inputs {
            return Err(CallError::BadOutput(format!(
                "output names input record {} of a batch of {inputs}",
                r.input
            )));
        }
        emitted.push(Emitted {
            input: r.input,
            output: r.output,
            record: NewRecord {
                key: r.key.map(<[u8]>::to_vec),
                value: Some(r.value.to_vec()),
                headers: r.headers.iter().map(|(n, v)| (n.to_owned(), v.to_vec())).collect(),
                timestamp: None,
            },
        });
    }
    let failed = reader
        .failures()
        .map_err(bad)?
        .into_iter()
        .map(|(i, m)| (i, m.to_owned()))
        .collect();
    Ok(BatchOutput { emitted, failed })
}

fn from_typed(
    out: Vec<v01::typed::weir::processor::types::OutputRecord>,
    output_bytes_max: usize,
) -> Result<BatchOutput, CallError> {
    let bytes: usize = out
        .iter()
        .map(|r| {
            r.value.len()
                + r.key.as_ref().map_or(0, Vec::len)
                + r.headers.iter().map(|h| h.name.len() + h.value.len()).sum::<usize>()
        })
        .sum();
    if bytes > output_bytes_max {
        return Err(too_large(bytes, output_bytes_max));
    }
    // The typed world has no per-record attribution: every output belongs to the batch.
    let emitted = out
        .into_iter()
        .map(|r| Emitted {
            input: 0,
            output: r.output,
            record: NewRecord {
                key: r.key,
                value: Some(r.value),
                headers: r.headers.into_iter().map(|h| (h.name, h.value)).collect(),
                timestamp: None,
            },
        })
        .collect();
    Ok(BatchOutput {
        emitted,
        failed: Vec::new(),
    })
}

/// Turns a wasmtime error from a call into a [`CallError::Trap`], saying which kind.
fn classify(store: &Store<GuestState>, e: &wasmtime::Error) -> CallError {
    let trap = e.downcast_ref::<Trap>();
    let denied = store.data().limiter.denied.as_ref();
    let kind = if denied.is_some() {
        TrapKind::OutOfMemory
    } else if matches!(trap, Some(Trap::Interrupt)) {
        TrapKind::Deadline
    } else {
        TrapKind::Crash
    };
    // One line: the trap, or the root cause (the guest's own panic message reaches its log
    // through stderr). Wasm backtraces stay out of headers and status.
    let message = match (kind, trap) {
        (TrapKind::Deadline, _) => "the call ran past its deadline (deadline_ms)".to_owned(),
        (TrapKind::OutOfMemory, _) => denied.cloned().unwrap_or_default(),
        (TrapKind::Crash, Some(Trap::UnreachableCodeReached)) => {
            "the guest crashed (panic or abort: wasm `unreachable` executed)".to_owned()
        }
        (TrapKind::Crash, Some(t)) => format!("the guest crashed: {t}"),
        (TrapKind::Crash, None) => e.root_cause().to_string().lines().next().unwrap_or_default().to_owned(),
    };
    CallError::Trap { kind, message }
}
