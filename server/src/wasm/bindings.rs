//! Host bindings for the two worlds of `wit/processor.wit`. The packed world reuses the typed
//! world's `host` and `types` so one `Host` impl serves both.

#![allow(missing_docs, clippy::all)]

pub mod typed {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "processor",
    });
}

pub mod packed {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "packed-processor",
        with: {
            "weir:processor/host": super::typed::weir::processor::host,
            "weir:processor/types": super::typed::weir::processor::types,
        },
    });
}

pub use typed::weir::processor::host::Level;
