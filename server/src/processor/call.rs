//! Calling the guest on a batch, with failure isolation: when a call fails as a whole (a
//! trap, or an error without a record), the batch is replayed one record at a time on a fresh
//! instance, so only the poison records meet the error policy and the good ones still go
//! through. Traps rebuild the instance.

use std::sync::Arc;
use std::time::Instant;

use super::runner::Ctx;
use super::status::{Status, level_name};
use crate::log::{NewRecord, RecordView};
use crate::topic::Chunk;
use crate::wasm::{CallError, Emitted, Guest, InputRef};

/// A record the processor failed on, kept whole for the dead-letter topic.
pub struct Failed {
    pub index: usize,
    pub offset: u64,
    pub record: NewRecord,
    pub message: String,
}

/// What one batch produced, before delivery.
pub struct Processed {
    /// Input records taken from the log.
    pub count: usize,
    /// Offset after the last of them (or past markers and aborted batches read with them).
    pub next_offset: u64,
    /// Offset of each input record.
    pub offsets: Vec<u64>,
    /// Largest timestamp among them.
    pub max_timestamp: Option<i64>,
    pub emitted: Vec<Emitted>,
    pub failed: Vec<Failed>,
    pub traps: u32,
}

fn owned(v: &RecordView<'_>) -> NewRecord {
    v.to_new()
}

impl Ctx {
    async fn build_guest(&self, partition: u32) -> Result<Guest, CallError> {
        let status = Arc::clone(&self.status);
        let log: crate::wasm::LogSink =
            Arc::new(move |level, line| status.log(level_name(level), Some(partition), line.to_owned()));
        let mut guest = self
            .runtime
            .instantiate(
                &self.module,
                self.spec.limits,
                &self.input.name,
                log,
                Some(Arc::clone(&self.share)),
            )
            .await?;
        let config: Vec<(String, String)> = self.spec.config.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        guest.init(&config).await?;
        Ok(guest)
    }

    async fn ensure_guest<'g>(&self, partition: u32, guest: &'g mut Option<Guest>) -> Result<&'g mut Guest, String> {
        if guest.is_none() {
            match self.build_guest(partition).await {
                Ok(g) => *guest = Some(g),
                Err(CallError::Guest { message, .. }) => return Err(format!("init rejected the config: {message}")),
                Err(e) => return Err(format!("could not start an instance: {e}")),
            }
        }
        Ok(guest.as_mut().expect("just built"))
    }

    fn note_trap(&self, partition: u32, e: &CallError) {
        Status::add(&self.status.traps, 1);
        self.status
            .log("warn", Some(partition), format!("instance rebuilt after a trap: {e}"));
    }

    /// Decodes the batch from `from` on and calls the guest, isolating failures. An `Err` is
    /// fatal for the processor (its config was rejected, or no instance starts).
    pub(super) async fn process(
        &self,
        partition: u32,
        guest: &mut Option<Guest>,
        chunk: &Chunk,
    ) -> Result<Processed, String> {
        let mut visible = chunk.visible();
        let views: Vec<RecordView<'_>> = visible.by_ref().take(self.spec.batch_records_max).collect();
        let next_offset = visible.next_offset();
        let inputs: Vec<InputRef<'_>> = views
            .iter()
            .map(|v| InputRef {
                offset: v.offset,
                timestamp: v.timestamp,
                key: v.key,
                value: v.value_bytes(),
                headers: &v.headers,
            })
            .collect();
        let mut out = Processed {
            count: views.len(),
            next_offset,
            offsets: views.iter().map(|v| v.offset).collect(),
            max_timestamp: views.iter().map(|v| v.timestamp).max(),
            emitted: Vec::new(),
            failed: Vec::new(),
            traps: 0,
        };
        if views.is_empty() {
            return Ok(out);
        }
        let started = Instant::now();
        let result = self
            .ensure_guest(partition, guest)
            .await?
            .process(partition, &inputs)
            .await;
        self.status.observe_call(started.elapsed().as_micros() as u64);
        match result {
            Ok(result) => {
                out.emitted = result.emitted;
                for (i, message) in result.failed {
                    let i = i as usize;
                    if let Some(v) = views.get(i) {
                        out.failed.push(Failed {
                            index: i,
                            offset: v.offset,
                            record: owned(v),
                            message,
                        });
                    }
                }
            }
            Err(e) => {
                if e.is_trap() {
                    *guest = None;
                    out.traps += 1;
                    self.note_trap(partition, &e);
                }
                // Replay one record at a time so only the bad ones fail.
                for (i, input) in inputs.iter().enumerate() {
                    let one = self
                        .ensure_guest(partition, guest)
                        .await?
                        .process(partition, std::slice::from_ref(input))
                        .await;
                    match one {
                        Ok(r) => {
                            out.emitted
                                .extend(r.emitted.into_iter().map(|e| Emitted { input: i as u32, ..e }));
                            if let Some((_, message)) = r.failed.into_iter().next() {
                                out.failed.push(Failed {
                                    index: i,
                                    offset: input.offset,
                                    record: owned(&views[i]),
                                    message,
                                });
                            }
                        }
                        Err(e) => {
                            if e.is_trap() {
                                *guest = None;
                                out.traps += 1;
                                self.note_trap(partition, &e);
                            }
                            out.failed.push(Failed {
                                index: i,
                                offset: input.offset,
                                record: owned(&views[i]),
                                message: e.to_string(),
                            });
                        }
                    }
                }
            }
        }
        out.failed.sort_by_key(|f| f.index);
        // An output keeps the timestamp of the record it came from, as in Kafka Streams.
        for e in &mut out.emitted {
            e.record.timestamp = views.get(e.input as usize).map(|v| v.timestamp);
        }
        Ok(out)
    }
}
