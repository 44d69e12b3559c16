//! Host bindings for the three worlds of `wit/processor.wit`. The packed worlds reuse the typed
//! world's `host` and `types` so one `Host` impl serves all. Exports are called `async`: a call
//! yields to the executor at every epoch tick, so a long call is time-sliced, never holding a
//! thread, and can be dropped (stopped) between two ticks.

#![allow(missing_docs, clippy::all)]

pub mod typed {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "processor",
        exports: { default: async },
    });
}

pub mod packed {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "packed-processor",
        exports: { default: async },
        with: {
            "weir:processor/host": super::typed::weir::processor::host,
            "weir:processor/types": super::typed::weir::processor::types,
        },
    });
}

pub use typed::weir::processor::host::Level;

pub mod latin1 {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "packed-latin1-processor",
        exports: { default: async },
        with: {
            "weir:processor/host": super::typed::weir::processor::host,
            "weir:processor/types": super::typed::weir::processor::types,
        },
    });
}
