//! The Weir Rust SDK for writing stream processors as WebAssembly components.
//!
//! Placeholder: the processor contract (`wit/`) and the SDK that owns its bindings arrive with
//! the processor runtime. Nothing here is stable yet.
