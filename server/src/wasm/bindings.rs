//! Host bindings for the three worlds of `wit/processor.wit`. The packed worlds reuse the typed
//! world's `host` and `types` so one `Host` impl serves all.

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

pub mod latin1 {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "packed-latin1-processor",
        with: {
            "weir:processor/host": super::typed::weir::processor::host,
            "weir:processor/types": super::typed::weir::processor::types,
        },
    });
}
