//! The WebAssembly runtime: one wasmtime `Engine` (pooling allocator, epoch interruption), the
//! linker with the host imports and a deny-by-default WASI, upload validation, compilation
//! with an on-disk cache, and [`Guest`] instances that always run under a deadline and a
//! memory cap.
//!
//! Nothing here knows about topics or files of the log: the processor layer drives it.

mod bindings;
mod executor;
mod guest;
mod host;
mod logpipe;
mod module;
pub mod pool;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

pub use bindings::Level;
use guest::GuestState;
pub use guest::{BatchOutput, CallError, Emitted, Guest, GuestLimits, InputRef, TaskRef, TrapKind, decode_packed};
pub use module::{Contract, ModuleError, ModuleKind, sniff};

/// Where a guest's log lines go.
pub type LogSink = Arc<dyn Fn(Level, &str) + Send + Sync>;

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where compiled functions are kept across compilations (Cranelift's incremental cache),
    /// if anywhere.
    pub function_cache: Option<Arc<dyn wasmtime::CacheStore>>,
    /// Instances that may exist at once (each input partition of each processor is one).
    pub instances_max: u32,
    /// The largest memory cap any processor may ask for.
    pub memory_bytes_max: usize,
    /// What the memory caps of all live instances may add up to.
    pub memory_budget_bytes: u64,
    /// Granularity of deadlines: the epoch advances this often.
    pub epoch_tick_ms: u64,
    /// Guest calls that may run past their first few ticks at once (see `guest.rs`): bounds
    /// what runaway guests take from the machine, together, to half this many cores.
    pub long_calls_max: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            function_cache: None,
            instances_max: 256,
            memory_bytes_max: 1024 * 1024 * 1024,
            memory_budget_bytes: crate::config::machine_memory_bytes() / 2,
            epoch_tick_ms: 10,
            long_calls_max: (std::thread::available_parallelism().map_or(2, |n| n.get()) / 2).max(1),
        }
    }
}

/// A compiled, validated component ready to instantiate.
#[derive(Clone)]
pub struct CompiledModule {
    pub kind: ModuleKind,
    pub contract: Contract,
    pre: Pre,
    component: Component,
}

#[derive(Clone)]
enum Pre {
    Packed(bindings::v01::packed::PackedProcessorPre<GuestState>),
    Typed(bindings::v01::typed::ProcessorPre<GuestState>),
    Latin1(bindings::v01::latin1::PackedLatin1ProcessorPre<GuestState>),
    Packed2(bindings::v02::packed::PackedProcessorPre<GuestState>),
    Typed2(bindings::v02::typed::ProcessorPre<GuestState>),
    Latin12(bindings::v02::latin1::PackedLatin1ProcessorPre<GuestState>),
}

impl CompiledModule {
    /// The compiled code, to cache on disk.
    pub fn serialize(&self) -> Result<Vec<u8>, ModuleError> {
        self.component
            .serialize()
            .map_err(|e| ModuleError::Invalid(format!("{e:#}")))
    }
}

/// The one engine of the process, cheap to clone.
#[derive(Clone)]
pub struct WasmRuntime {
    engine: Engine,
    linker: Arc<Linker<GuestState>>,
    config: RuntimeConfig,
    executor: Arc<executor::Executor>,
    long_calls: Arc<tokio::sync::Semaphore>,
    pool: Arc<pool::InstancePool>,
}

impl WasmRuntime {
    pub fn new(config: RuntimeConfig) -> anyhow::Result<Self> {
        let mut pool = PoolingAllocationConfig::default();
        // Every live instance holds one slot (the pool in `pool.rs` hands them out), and a
        // component may need at most one slot's share of each resource (checked at upload):
        // so wasmtime's totals are never reached, whatever the components.
        let n = config.instances_max;
        pool.total_component_instances(n)
            .total_core_instances(n * module::CORE_INSTANCES_PER_INSTANCE)
            .total_memories(n * module::MEMORIES_PER_INSTANCE)
            .total_tables(n * module::TABLES_PER_INSTANCE)
            .max_core_instances_per_component(module::CORE_INSTANCES_PER_INSTANCE)
            .max_memories_per_component(module::MEMORIES_PER_INSTANCE)
            .max_tables_per_component(module::TABLES_PER_INSTANCE)
            .max_memory_size(config.memory_bytes_max)
            .table_elements(1_000_000)
            .max_core_instance_size(8 * 1024 * 1024)
            .max_component_instance_size(8 * 1024 * 1024);
        let mut c = Config::new();
        c.epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        if let Some(store) = &config.function_cache {
            c.enable_incremental_compilation(Arc::clone(store))?;
        }
        let engine = Engine::new(&c)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        bindings::v01::typed::weir::processor::host::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        {
            use bindings::v02::typed::weir::processor as v02;
            v02::host::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
            v02::state::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
            v02::time::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
            v02::tables::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        }
        spawn_epoch_ticker(&engine, Duration::from_millis(config.epoch_tick_ms));
        Ok(Self {
            engine,
            linker: Arc::new(linker),
            long_calls: Arc::new(tokio::sync::Semaphore::new(config.long_calls_max.max(1))),
            pool: Arc::new(pool::InstancePool::new(
                config.instances_max as usize,
                config.memory_budget_bytes,
            )),
            config,
            executor: Arc::default(),
        })
    }

    /// Slots and memory of live instances.
    pub fn pool(&self) -> &pool::InstancePool {
        &self.pool
    }

    /// The permits of long guest calls.
    pub(crate) fn long_calls(&self) -> Arc<tokio::sync::Semaphore> {
        Arc::clone(&self.long_calls)
    }

    /// Runs `fut` (a processor's partition task) on the guests' own threads.
    pub fn spawn<F>(&self, fut: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.executor.spawn(fut)
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn epoch_tick_ms(&self) -> u64 {
        self.config.epoch_tick_ms
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// Validates and compiles component bytes (seconds for a large guest: call it off the
    /// async threads).
    pub fn compile(&self, bytes: &[u8]) -> Result<CompiledModule, ModuleError> {
        sniff(bytes)?;
        let component = Component::new(&self.engine, bytes).map_err(|e| ModuleError::Invalid(format!("{e:#}")))?;
        module::check_size(bytes, &component)?;
        self.prepare(component)
    }

    /// Loads code written by [`CompiledModule::serialize`] with this engine's settings.
    /// `None` when the cache is missing, stale or from another wasmtime: compile instead.
    pub fn load_cached(&self, path: &Path) -> Option<CompiledModule> {
        // SAFETY: callers pass only files written by `Component::serialize` into a directory
        // they own: the broker's module cache (`DATA/modules`), or the user's own compile cache
        // of `weir processor test` (`~/.cache/weir/compiled`), as trusted as the user's binary.
        // wasmtime checks that a file matches this engine's version and settings.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize_file(&self.engine, path) }.ok()?;
        self.prepare(component).ok()
    }

    fn prepare(&self, component: Component) -> Result<CompiledModule, ModuleError> {
        let (kind, contract) = module::kind(&self.engine, &component)?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| ModuleError::UnsupportedImport(format!("{e:#}")))?;
        let wrong_world = |e: wasmtime::Error| ModuleError::WrongWorld {
            exports: format!("{e:#}"),
        };
        use bindings::{v01, v02};
        let pre = match (kind, contract) {
            (ModuleKind::Packed, Contract::V0_1) => {
                Pre::Packed(v01::packed::PackedProcessorPre::new(instance_pre).map_err(wrong_world)?)
            }
            (ModuleKind::Typed, Contract::V0_1) => {
                Pre::Typed(v01::typed::ProcessorPre::new(instance_pre).map_err(wrong_world)?)
            }
            (ModuleKind::PackedLatin1, Contract::V0_1) => {
                Pre::Latin1(v01::latin1::PackedLatin1ProcessorPre::new(instance_pre).map_err(wrong_world)?)
            }
            (ModuleKind::Packed, Contract::V0_2) => {
                Pre::Packed2(v02::packed::PackedProcessorPre::new(instance_pre).map_err(wrong_world)?)
            }
            (ModuleKind::Typed, Contract::V0_2) => {
                Pre::Typed2(v02::typed::ProcessorPre::new(instance_pre).map_err(wrong_world)?)
            }
            (ModuleKind::PackedLatin1, Contract::V0_2) => {
                Pre::Latin12(v02::latin1::PackedLatin1ProcessorPre::new(instance_pre).map_err(wrong_world)?)
            }
        };
        Ok(CompiledModule {
            kind,
            contract,
            pre,
            component,
        })
    }

    /// A fresh instance with `limits`, its log lines sent to `log`. Traps while starting
    /// (for example a start function over the memory cap) come back as [`CallError::Trap`].
    /// Waits, in turn, for room in the pool (a slot, and `limits.memory_bytes_max` of the
    /// memory budget; first a permit of `share`, the processor's own limit, if given): the
    /// instance holds them until it is dropped.
    pub async fn instantiate(
        &self,
        module: &CompiledModule,
        limits: GuestLimits,
        topic: &str,
        log: LogSink,
        share: Option<Arc<tokio::sync::Semaphore>>,
        task: Option<guest::TaskRef>,
    ) -> Result<Guest, CallError> {
        if limits.memory_bytes_max > self.config.memory_bytes_max || !self.pool.fits(limits.memory_bytes_max) {
            return Err(CallError::BadOutput(format!(
                "memory_bytes_max {} is above the broker's limit ({} per instance, {} for all)",
                limits.memory_bytes_max, self.config.memory_bytes_max, self.config.memory_budget_bytes
            )));
        }
        let permit = self.pool.acquire(limits.memory_bytes_max, share).await;
        Guest::new(self, module, limits, topic, log, permit, task).await
    }
}

/// Advances the engine's epoch every `tick` so deadlines fire; stops when the engine is gone.
fn spawn_epoch_ticker(engine: &Engine, tick: Duration) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("weir-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(tick);
            }
        })
        .expect("the epoch thread starts");
}
