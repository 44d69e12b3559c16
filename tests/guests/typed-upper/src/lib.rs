//! Uppercases values through the typed `processor` world; a value `fail` is an error naming
//! its record, so the host's isolation of typed errors is exercised too. Built against
//! contract 0.1 (`wit/v0.1`): it is also the test that components built before state and
//! timers keep working.
#![allow(unsafe_code)]

wit_bindgen::generate!({ path: "../../../wit/v0.1", world: "processor" });

use exports::weir::processor::batch_processor::Guest;
use weir::processor::types::{InputRecord, OutputRecord, ProcessError};

struct TypedUpper;

impl Guest for TypedUpper {
    fn init(_config: Vec<(String, String)>) -> Result<(), String> {
        Ok(())
    }

    fn process(batch: Vec<InputRecord>) -> Result<Vec<OutputRecord>, ProcessError> {
        let mut out = Vec::with_capacity(batch.len());
        for (i, r) in batch.into_iter().enumerate() {
            if r.value == b"fail" {
                return Err(ProcessError {
                    message: format!("typed guest refused offset {}", r.offset),
                    record: Some(i as u32),
                });
            }
            out.push(OutputRecord {
                key: r.key,
                value: r.value.to_ascii_uppercase(),
                headers: r.headers,
                output: None,
            });
        }
        Ok(out)
    }
}

// Exported only in the component: a native build of the workspace cannot link export names
// like `weir:processor/batch-processor@0.1.0#init`.
#[cfg(target_arch = "wasm32")]
export!(TypedUpper);
