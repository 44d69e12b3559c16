//! End-to-end tests: each starts the real server (port 0, temporary data directory) and drives it
//! over HTTP and Server-Sent Events, as a user would.

// Test helpers panic on surprises by design: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod access;
mod cli;
mod compaction;
mod disk_full;
mod durability;
mod fetch;
mod harness;
mod hostile_http;
mod languages;
mod openapi_conformance;
mod ops;
mod pipelines;
mod processor_lifecycle;
mod processor_test;
mod processors;
mod produce;
mod projects;
mod reliability;
mod sse;
mod state;
mod state_api;
mod stateful;
mod tables;
mod topic_races;
mod topics;
mod wasm;
mod windows;
