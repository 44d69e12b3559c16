//! Calling the guest on a batch, with failure isolation: when a call fails as a whole (a
//! trap, or an error without a record), the batch is replayed one record at a time on a fresh
//! instance, so only the poison records meet the error policy and the good ones still go
//! through. Traps rebuild the instance.

use std::sync::Arc;
use std::time::Instant;

use super::aggregate::Aggregator;
use super::join::{self, JoinSpec, Joined};
use super::runner::Ctx;
use super::spec::OnError;
use super::status::{Status, level_name};
use crate::log::{NewRecord, RecordView};
use crate::state::TaskState;
use crate::state::timers::Fired;
use crate::table::Table;
use crate::topic::Chunk;
use crate::wasm::{CallError, Emitted, Guest, InputRef, TaskRef};

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
    /// Records a windowed aggregate took after their windows closed.
    pub late: Vec<Failed>,
    pub traps: u32,
}

fn owned(v: &RecordView<'_>) -> NewRecord {
    v.to_new()
}

impl Ctx {
    async fn build_guest(&self, partition: u32, task: Option<&TaskRef>) -> Result<Guest, CallError> {
        let status = Arc::clone(&self.status);
        let log: crate::wasm::LogSink =
            Arc::new(move |level, line| status.log(level_name(level), Some(partition), line.to_owned()));
        let Some(module) = &self.module else {
            return Err(CallError::Guest {
                message: "the processor has no module".into(),
                record: None,
            });
        };
        let mut guest = self
            .runtime
            .instantiate(
                module,
                self.spec.limits,
                &self.input.name,
                log,
                Some(Arc::clone(&self.share)),
                task.cloned(),
            )
            .await?;
        guest.set_tables(self.tables.clone());
        let config: Vec<(String, String)> = self.spec.config.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        guest.init(&config).await?;
        Ok(guest)
    }

    async fn ensure_guest<'g>(
        &self,
        partition: u32,
        guest: &'g mut Option<Guest>,
        task: Option<&TaskRef>,
    ) -> Result<&'g mut Guest, String> {
        if guest.is_none() {
            match self.build_guest(partition, task).await {
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

    /// Calls the guest on the visible records of `chunk` (at most `batch_records_max`),
    /// isolating failures. With state (`task`), a call that fails, or fails a record after
    /// writing state, has its writes undone and runs again one record per call, so that only
    /// the failing records' writes are lost. An `Err` is fatal for the processor (its config
    /// was rejected, or no instance starts).
    pub(super) async fn process(
        &self,
        partition: u32,
        guest: &mut Option<Guest>,
        chunk: &Chunk,
        task: Option<&TaskRef>,
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
            late: Vec::new(),
            traps: 0,
        };
        if views.is_empty() {
            return Ok(out);
        }
        if let (Some(j), Some((_, table))) = (&self.join, self.tables.first()) {
            self.join_natively(j, table, &views, &mut out);
            return Ok(out);
        }
        if let (Some(agg), Some(task)) = (&self.aggregate, task) {
            self.process_natively(agg, task, &views, &mut out);
            return Ok(out);
        }
        with_state(task, |s| {
            s.watermark = s.watermark.max(out.max_timestamp);
            s.begin_batch();
        });
        let started = Instant::now();
        let result = self
            .ensure_guest(partition, guest, task)
            .await?
            .process(partition, &inputs)
            .await;
        self.status.observe_call(started.elapsed().as_micros() as u64);
        let wrote = with_state(task, |s| s.wrote_since(0)).unwrap_or(false);
        let outputs = self.spec.outputs.len() as u32;
        match result {
            // Failures without state writes are the error policy's alone (deliver); with state
            // written, only a run of one record per call tells whose writes to undo.
            Ok(result) if !wrote || (result.failed.is_empty() && bad_route(&result.emitted, outputs).is_none()) => {
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
            result => {
                with_state(task, TaskState::rollback_batch);
                if let Err(e) = &result
                    && e.is_trap()
                {
                    *guest = None;
                    out.traps += 1;
                    self.note_trap(partition, e);
                }
                // Replay one record at a time so only the bad ones fail.
                for (i, input) in inputs.iter().enumerate() {
                    let mark = with_state(task, |s| s.mark()).unwrap_or(0);
                    let one = self
                        .ensure_guest(partition, guest, task)
                        .await?
                        .process(partition, std::slice::from_ref(input))
                        .await;
                    let message = match one {
                        Ok(r) => match (r.failed.into_iter().next(), bad_route(&r.emitted, outputs)) {
                            (None, None) => {
                                out.emitted
                                    .extend(r.emitted.into_iter().map(|e| Emitted { input: i as u32, ..e }));
                                continue;
                            }
                            (Some((_, message)), _) | (None, Some(message)) => message,
                        },
                        Err(e) => {
                            if e.is_trap() {
                                *guest = None;
                                out.traps += 1;
                                self.note_trap(partition, &e);
                            }
                            e.to_string()
                        }
                    };
                    with_state(task, |s| s.rollback_to(mark));
                    out.failed.push(Failed {
                        index: i,
                        offset: input.offset,
                        record: owned(&views[i]),
                        message,
                    });
                    // The processor stops before this record: those after it must not run
                    // (their writes would be committed with an offset that runs them again).
                    if self.spec.on_error == OnError::Stop {
                        break;
                    }
                }
            }
        }
        with_state(task, TaskState::end_batch);
        out.failed.sort_by_key(|f| f.index);
        // An output keeps the timestamp of the record it came from, as in Kafka Streams.
        for e in &mut out.emitted {
            e.record.timestamp = views.get(e.input as usize).map(|v| v.timestamp);
        }
        Ok(out)
    }

    /// Calls the guest's `on-timers` with the timers that are due (at most a batch of them).
    /// The timers are taken out of the state whatever happens; a failing call loses its other
    /// writes and its outputs, is logged and counted as an error. `None`: nothing was due.
    pub(super) async fn fire_timers(
        &self,
        partition: u32,
        guest: &mut Option<Guest>,
        task: &TaskRef,
        next_offset: u64,
    ) -> Result<Option<Processed>, String> {
        let now = crate::topic::now_ms();
        let fired = {
            let mut s = lock(task);
            s.begin_batch();
            let fired = s.take_due_timers(now, self.spec.batch_records_max);
            s.end_batch();
            if !fired.is_empty() {
                s.begin_batch();
            }
            fired
        };
        if fired.is_empty() {
            return Ok(None);
        }
        if let Some(agg) = &self.aggregate {
            return Ok(Some(self.fire_natively(agg, partition, task, &fired, next_offset)));
        }
        let started = Instant::now();
        let result = self
            .ensure_guest(partition, guest, Some(task))
            .await?
            .on_timers(&fired)
            .await;
        self.status.observe_call(started.elapsed().as_micros() as u64);
        let mut out = Processed {
            count: 0,
            next_offset,
            // Outputs name an input record; a timer's stand for the offset the task is at.
            offsets: vec![next_offset],
            max_timestamp: None,
            emitted: Vec::new(),
            failed: Vec::new(),
            late: Vec::new(),
            traps: 0,
        };
        match result {
            Ok(r) if r.failed.is_empty() && bad_route(&r.emitted, self.spec.outputs.len() as u32).is_none() => {
                lock(task).end_batch();
                out.emitted = r.emitted;
                for e in &mut out.emitted {
                    e.record.timestamp = fired.get(e.input as usize).map(|f| f.at);
                    // Outputs are attributed to input records; timers have none.
                    e.input = 0;
                }
            }
            other => {
                lock(task).rollback_batch();
                let message = match other {
                    Ok(r) => r.failed.into_iter().next().map(|f| f.1).unwrap_or_default(),
                    Err(e) => {
                        if e.is_trap() {
                            *guest = None;
                            out.traps += 1;
                            self.note_trap(partition, &e);
                        }
                        e.to_string()
                    }
                };
                Status::add(&self.status.errors, 1);
                let msg = format!(
                    "on-timers failed for {} timer(s), which are dropped: {message}",
                    fired.len()
                );
                self.status.log("error", Some(partition), msg.clone());
                self.status.set_error(msg, false);
            }
        }
        Ok(Some(out))
    }
}

impl Ctx {
    /// Runs the built-in aggregate on a batch.
    fn process_natively(&self, agg: &Aggregator, task: &TaskRef, views: &[RecordView<'_>], out: &mut Processed) {
        let started = Instant::now();
        let mut s = lock(task);
        s.begin_batch();
        let result = agg.process(&mut s, views, self.spec.on_error == OnError::Stop);
        s.end_batch();
        // The persisted clock: the largest event time (with no window, the largest timestamp).
        if agg.window.is_some() {
            out.max_timestamp = s.watermark;
        }
        drop(s);
        self.status.observe_call(started.elapsed().as_micros() as u64);
        out.emitted = result.emitted;
        out.failed = result
            .failed
            .into_iter()
            .map(|(i, message)| Failed {
                index: i,
                offset: views[i].offset,
                record: owned(&views[i]),
                message,
            })
            .collect();
        out.late = result
            .late
            .into_iter()
            .map(|i| Failed {
                index: i,
                offset: views[i].offset,
                record: owned(&views[i]),
                message: "late: the record came after its windows closed (watermark past end + grace_ms)".into(),
            })
            .collect();
    }

    /// Runs the declarative join on a batch.
    fn join_natively(&self, spec: &JoinSpec, table: &Table, views: &[RecordView<'_>], out: &mut Processed) {
        let started = Instant::now();
        for (i, v) in views.iter().enumerate() {
            match join::join(spec, table, v) {
                Joined::Out(record) => out.emitted.push(Emitted {
                    input: i as u32,
                    output: None,
                    record,
                }),
                Joined::Dropped => {}
                Joined::Failed(message) => {
                    out.failed.push(Failed {
                        index: i,
                        offset: v.offset,
                        record: owned(v),
                        message,
                    });
                    if self.spec.on_error == OnError::Stop {
                        break;
                    }
                }
            }
        }
        self.status.observe_call(started.elapsed().as_micros() as u64);
    }

    /// Closes and expires the windows whose timers came due.
    fn fire_natively(&self, agg: &Aggregator, partition: u32, task: &TaskRef, fired: &[Fired], next: u64) -> Processed {
        let mut s = lock(task);
        let records = match agg.fire(&mut s, fired) {
            Ok(r) => {
                s.end_batch();
                r
            }
            Err(message) => {
                s.rollback_batch();
                drop(s);
                Status::add(&self.status.errors, 1);
                let msg = format!(
                    "closing {} window(s) failed; their results are lost: {message}",
                    fired.len()
                );
                self.status.log("error", Some(partition), msg.clone());
                self.status.set_error(msg, false);
                Vec::new()
            }
        };
        Processed {
            count: 0,
            next_offset: next,
            offsets: vec![next],
            max_timestamp: None,
            emitted: records
                .into_iter()
                .map(|record| Emitted {
                    input: 0,
                    output: None,
                    record,
                })
                .collect(),
            failed: Vec::new(),
            late: Vec::new(),
            traps: 0,
        }
    }
}

/// Why records of `emitted` went to an output the deployment does not have, if any did.
fn bad_route(emitted: &[Emitted], outputs: u32) -> Option<String> {
    emitted
        .iter()
        .find_map(|e| e.output.filter(|&o| o >= outputs))
        .map(|o| format!("emitted to output {o}, but the processor has {outputs} output(s)"))
}

fn lock(task: &TaskRef) -> std::sync::MutexGuard<'_, TaskState> {
    task.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` on the task's state, if there is one.
fn with_state<T>(task: Option<&TaskRef>, f: impl FnOnce(&mut TaskState) -> T) -> Option<T> {
    task.map(|t| f(&mut lock(t)))
}
