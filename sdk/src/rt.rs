//! The per-batch loop behind [`crate::export_processor!`] and [`crate::testing::run`].

use crate::packed::BatchReader;
use crate::{Emitter, Processor};

/// A failure of a whole batch (the contract's `process-error`): only for a batch the SDK cannot
/// read. A record's own error is reported in the packed output instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchError {
    pub message: String,
    /// Index of the record that could not be read.
    pub record: Option<u32>,
}

/// Decodes a packed batch, calls `process` per record and returns the packed output. A record
/// whose `process` fails loses what it emitted and is listed as failed; the rest go on.
pub fn process<P: Processor>(processor: &mut P, batch: &[u8]) -> Result<Vec<u8>, BatchError> {
    process_with(batch, |record, out| processor.process(record, out))
}

/// Decodes a packed batch of fired timers (one record per timer: key, timestamp = its time,
/// value = one byte of domain) and calls `on_timer` for each.
pub fn on_timers<P: Processor>(processor: &mut P, batch: &[u8]) -> Result<Vec<u8>, BatchError> {
    process_with(batch, |record, out| {
        let domain = match record.value.first() {
            Some(1) => crate::time::Domain::ProcessingTime,
            _ => crate::time::Domain::EventTime,
        };
        let timer = crate::time::Timer {
            key: record.key.unwrap_or_default(),
            at: record.timestamp,
            domain,
        };
        processor.on_timer(&timer, out)
    })
}

/// [`process`] with any per-record function.
pub fn process_with(
    batch: &[u8],
    mut f: impl FnMut(&crate::Record<'_>, &mut Emitter) -> Result<(), crate::Error>,
) -> Result<Vec<u8>, BatchError> {
    let reader = BatchReader::new(batch).map_err(|e| BatchError {
        message: e.to_string(),
        record: None,
    })?;
    let mut out = Emitter::with_capacity(batch.len());
    for (index, record) in reader.enumerate() {
        let index = index as u32;
        let record = record.map_err(|e| BatchError {
            message: e.to_string(),
            record: Some(index),
        })?;
        let mark = out.writer().mark();
        #[cfg(not(all(target_arch = "wasm32", feature = "bindings")))]
        let saved = crate::testing::native::save();
        out.set_input(index);
        if let Err(e) = f(&record, &mut out) {
            out.writer().rollback(mark);
            out.writer().fail(index, e.message());
            // In a component the broker undoes the failing record's state writes.
            #[cfg(not(all(target_arch = "wasm32", feature = "bindings")))]
            crate::testing::native::restore(saved);
        }
    }
    Ok(out.finish())
}
