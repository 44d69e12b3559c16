//! Weir: a broker of durable, partitioned logs served over HTTP and Server-Sent Events.
//!
//! How this fits together, top to bottom (imports flow downward only):
//! - [`cli`]: the `weir` command line: `serve`, and client subcommands over the HTTP API.
//! - [`server`]: `run(config, listener, shutdown)` wires storage, the router and shutdown.
//! - [`http`]: `router(state)`, the accept loop, handlers, SSE, the one `ApiError`.
//! - [`auth`]: tokens, rights and SSE tickets; the front ends ask it who a request is.
//! - [`processor`]: module store, deployments, runners (read, call the guest, append, commit).
//! - [`group`]: committed offsets (the offset store); processors' tasks commit through it.
//! - [`table`]: topics materialized as the latest value per key, for joins and readers.
//! - [`state`]: processor tasks' keyed state: stores, staged writes, changelog, snapshots.
//! - [`topic`]: the `Topics` handle, partitions, the group-commit writers, metadata on disk.
//! - [`log`]: one partition's segments, batch codec, indexes, recovery, retention, transactions.
//! - [`record`]: the record types every layer shares.
//! - [`wasm`]: the WebAssembly runtime: engine, validation, compile cache, guest instances.
//! - [`window`]: event-time windows and built-in aggregates, as pure functions.
//! - [`config`] and [`metrics`]: settings and Prometheus counters, passed down explicitly.
/// jemalloc rather than the C library's allocator: a broker's hot paths (state writes, the
/// changelog and output records of each commit) allocate and free many small buffers from
/// several threads, where glibc's malloc spent over a quarter of a word count's time; and
/// unlike mimalloc it keeps memory low with thousands of idle processors ("State figures" in
/// `docs/design.md`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

pub mod auth;
pub mod cli;
pub mod config;
pub mod durable;
pub mod group;
pub mod http;
pub mod log;
pub mod metrics;
pub mod processor;
pub mod record;
pub mod server;
pub mod state;
pub mod table;
pub mod topic;
pub mod wasm;
pub mod window;
