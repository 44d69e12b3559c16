//! Host bindings for the worlds of both versions of the contract: `wit/processor.wit`
//! (0.2.0: state and timers) and `wit/v0.1/processor.wit` (0.1.0, for components built
//! before). Within a version the packed worlds reuse the typed world's interfaces; 0.2.0 reuses
//! 0.1.0's record types (they are the same), so one set of conversions serves every world.
//! Exports are called `async`: a call yields to the executor at every epoch tick, so a long
//! call is time-sliced, never holding a thread, and can be dropped (stopped) between two
//! ticks. Imports are plain calls that may trap (a bad store handle).

#![allow(missing_docs, clippy::all)]

/// Version 0.1.0.
pub mod v01 {
    pub mod typed {
        wasmtime::component::bindgen!({
            path: "wit/v0.1",
            world: "processor",
            exports: { default: async },
        });
    }

    pub mod packed {
        wasmtime::component::bindgen!({
            path: "wit/v0.1",
            world: "packed-processor",
            exports: { default: async },
            with: {
                "weir:processor/host": super::typed::weir::processor::host,
                "weir:processor/types": super::typed::weir::processor::types,
            },
        });
    }

    pub mod latin1 {
        wasmtime::component::bindgen!({
            path: "wit/v0.1",
            world: "packed-latin1-processor",
            exports: { default: async },
            with: {
                "weir:processor/host": super::typed::weir::processor::host,
                "weir:processor/types": super::typed::weir::processor::types,
            },
        });
    }
}

/// Version 0.2.0.
pub mod v02 {
    pub mod typed {
        wasmtime::component::bindgen!({
            path: "wit",
            world: "processor",
            exports: { default: async },
            imports: { default: trappable },
            with: {
                "weir:processor/types": crate::wasm::bindings::v01::typed::weir::processor::types,
            },
        });
    }

    pub mod packed {
        wasmtime::component::bindgen!({
            path: "wit",
            world: "packed-processor",
            exports: { default: async },
            imports: { default: trappable },
            with: {
                "weir:processor/host": super::typed::weir::processor::host,
                "weir:processor/state": super::typed::weir::processor::state,
                "weir:processor/time": super::typed::weir::processor::time,
                "weir:processor/tables": super::typed::weir::processor::tables,
                "weir:processor/types": crate::wasm::bindings::v01::typed::weir::processor::types,
            },
        });
    }

    pub mod latin1 {
        wasmtime::component::bindgen!({
            path: "wit",
            world: "packed-latin1-processor",
            exports: { default: async },
            imports: { default: trappable },
            with: {
                "weir:processor/host": super::typed::weir::processor::host,
                "weir:processor/state": super::typed::weir::processor::state,
                "weir:processor/time": super::typed::weir::processor::time,
                "weir:processor/tables": super::typed::weir::processor::tables,
                "weir:processor/types": crate::wasm::bindings::v01::typed::weir::processor::types,
            },
        });
    }
}

pub use v01::typed::weir::processor::host::Level;
