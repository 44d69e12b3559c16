//! What a processed batch becomes: outputs per output topic, and the error policy applied to
//! the records that failed (dead letters with the error in their headers, skipped, or a stop
//! before the first of them). Nothing here writes: the runner appends or commits the result.

use std::collections::BTreeMap;

use super::call::{Failed, Processed};
use super::runner::Ctx;
use super::spec::OnError;
use super::status::Status;
use crate::log::NewRecord;
use crate::window::spec::{Late, LateWord};

/// Counters a delivery adds to the processor's status once it is committed.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub records_in: u64,
    pub records_out: u64,
    pub errors: u64,
    pub dead_lettered: u64,
    pub skipped: u64,
    pub late: u64,
}

impl Counts {
    pub fn add(&mut self, o: &Counts) {
        self.records_in += o.records_in;
        self.records_out += o.records_out;
        self.errors += o.errors;
        self.dead_lettered += o.dead_lettered;
        self.skipped += o.skipped;
        self.late += o.late;
    }

    pub fn apply(&self, status: &Status) {
        Status::add(&status.records_in, self.records_in);
        Status::add(&status.records_out, self.records_out);
        Status::add(&status.errors, self.errors);
        Status::add(&status.dead_lettered, self.dead_lettered);
        Status::add(&status.skipped, self.skipped);
        Status::add(&status.late, self.late);
    }
}

/// A batch's records, ready to append.
pub struct Delivery {
    /// Per output topic, in the deployment's order.
    pub outputs: Vec<Vec<NewRecord>>,
    /// For the dead-letter topic.
    pub letters: Vec<NewRecord>,
    /// The input offset to commit with them.
    pub next_offset: u64,
    /// Set when `on_error: stop` stopped the processor before a record: why.
    pub stop: Option<String>,
    pub counts: Counts,
    /// The last record error, for the status.
    pub last_error: Option<String>,
}

impl Ctx {
    /// Applies the error policy to `p` and sorts its outputs by topic.
    pub(super) fn deliver(&self, partition: u32, mut p: Processed) -> Delivery {
        // An output index the deployment does not have is the guest's error for that record.
        let outputs = self.spec.outputs.len() as u32;
        let mut bad_route: BTreeMap<usize, String> = BTreeMap::new();
        for e in &p.emitted {
            if let Some(o) = e.output.filter(|&o| o >= outputs) {
                bad_route
                    .entry(e.input as usize)
                    .or_insert_with(|| format!("emitted to output {o}, but the processor has {outputs} output(s)"));
            }
        }
        if !bad_route.is_empty() {
            p.emitted.retain(|e| !bad_route.contains_key(&(e.input as usize)));
            for (index, message) in bad_route {
                let offset = p.offsets[index];
                if !p.failed.iter().any(|f| f.index == index) {
                    p.failed.push(Failed {
                        index,
                        offset,
                        record: NewRecord::with_value(Vec::new()),
                        message,
                    });
                }
            }
            p.failed.sort_by_key(|f| f.index);
        }
        let stop_at = match self.spec.on_error {
            OnError::Stop => p.failed.first().map(|f| f.index),
            _ => None,
        };
        let mut per_output: Vec<Vec<NewRecord>> = vec![Vec::new(); self.outputs.len()];
        for e in p.emitted {
            if stop_at.is_some_and(|s| e.input as usize >= s) {
                continue;
            }
            per_output[e.output.unwrap_or(0) as usize].push(e.record);
        }
        // Records after their windows closed, before any stop: the window's `late` policy.
        p.late.retain(|l| stop_at.is_none_or(|s| l.index < s));
        let late = p.late.len() as u64;
        let mut late_letters = Vec::new();
        match self.spec.window.as_ref().map(|w| &w.late) {
            Some(Late::Topic { .. }) => {
                per_output[self.spec.outputs.len()].extend(p.late.into_iter().map(|l| l.record));
            }
            Some(Late::Word(LateWord::DeadLetter)) if self.dead_letter.is_some() => {
                late_letters = p.late.into_iter().map(|l| self.dead_letter(partition, l)).collect();
            }
            _ => {}
        }
        let mut counts = Counts {
            records_out: per_output.iter().map(|o| o.len() as u64).sum(),
            late,
            dead_lettered: late_letters.len() as u64,
            ..Counts::default()
        };
        if let Some(s) = stop_at {
            let f = &p.failed[0];
            counts.records_in = s as u64;
            counts.errors = 1;
            let msg = format!("stopped at {}/{partition}@{}: {}", self.input.name, f.offset, f.message);
            return Delivery {
                outputs: per_output,
                letters: late_letters,
                next_offset: f.offset,
                stop: Some(msg),
                counts,
                last_error: None,
            };
        }
        counts.records_in = p.count as u64;
        counts.errors = p.failed.len() as u64;
        let last_error = p
            .failed
            .last()
            .map(|last| format!("{}/{partition}@{}: {}", self.input.name, last.offset, last.message));
        let letters = match (&self.spec.on_error, &self.dead_letter) {
            (OnError::DeadLetter, Some(_)) => {
                counts.dead_lettered += p.failed.len() as u64;
                late_letters.extend(p.failed.into_iter().map(|f| self.dead_letter(partition, f)));
                late_letters
            }
            _ => {
                counts.skipped = p.failed.len() as u64;
                late_letters
            }
        };
        Delivery {
            outputs: per_output,
            letters,
            next_offset: p.next_offset,
            stop: None,
            counts,
            last_error,
        }
    }

    fn dead_letter(&self, partition: u32, f: Failed) -> NewRecord {
        let mut r = f.record;
        let add = |r: &mut NewRecord, name: &str, value: String| r.headers.push((name.to_owned(), value.into_bytes()));
        add(&mut r, "weir-processor", self.name.clone());
        add(&mut r, "weir-error", f.message);
        add(&mut r, "weir-source-topic", self.input.name.clone());
        add(&mut r, "weir-source-partition", partition.to_string());
        add(&mut r, "weir-source-offset", f.offset.to_string());
        r
    }
}
