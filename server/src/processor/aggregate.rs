//! The built-in aggregates (`"aggregate"` in a deployment), run natively against a task's
//! state: per record key, optionally per event-time window (`"window"`). No guest runs.
//!
//! Window state lives in the task's internal store `__windows` (and, for sliding windows, the
//! records they may still need in `__window_records`), so it commits with the outputs and the
//! input offset like any state and survives `kill -9`. Timers in the task's timer store close
//! windows when the watermark passes them, expire them after `retention_ms`, and forget
//! buffered records. The window arithmetic and the accumulators are [`crate::window`].

use std::collections::HashMap;

use crate::record::{NewRecord, RecordView};
use crate::state::timers::{Domain, Fired};
use crate::state::{StateError, TaskState};
use crate::wasm::Emitted;
use crate::window::agg::{self, Input, Num};
use crate::window::spec::{AggregateSpec, Emit, Late, Op, Shape, TimeSource, WindowSpec};
use crate::window::{self as w, TimerKind};

/// The store of window (or, without a window, per-key) accumulators.
pub const WINDOWS_STORE: &str = "__windows";
/// The store of records a sliding window may still need.
pub const RECORDS_STORE: &str = "__window_records";
/// Windows closed but kept for their `retention_ms`: out of `__windows`, so that a key's scan
/// of its sessions meets only open ones.
pub const CLOSED_STORE: &str = "__windows_closed";
/// Most open sessions of one key a record is checked against (closed ones kept for their
/// retention are in another store): a key past it has its latest ones ignored.
const SCAN_MAX: usize = 10_000;

/// The windowing of a deployment, checked.
#[derive(Debug, Clone)]
pub struct Windowing {
    pub shape: Shape,
    pub grace: i64,
    pub retention: i64,
    pub time: TimeSource,
    pub lag: i64,
    pub idle: Option<i64>,
    pub late: Late,
    pub emit: Emit,
}

impl Windowing {
    pub fn new(spec: &WindowSpec) -> Result<Self, String> {
        spec.validate()?;
        Ok(Self {
            shape: spec.shape()?,
            grace: spec.grace()?,
            retention: spec.retention()?,
            time: spec.time.clone(),
            lag: spec.out_of_order_ms,
            idle: spec.idle_ms,
            late: spec.late.clone(),
            emit: spec.emit,
        })
    }

    /// Whether closed windows are kept (`retention_ms` past the time they close).
    fn keeps_closed(&self) -> bool {
        self.retention > self.close_at(0)
    }

    /// The watermark at which a window ending at `end` closes.
    fn close_at(&self, end: i64) -> i64 {
        match self.shape {
            Shape::Session { gap } => end + gap + self.grace,
            Shape::Hopping { .. } | Shape::Sliding { .. } => end + self.grace,
        }
    }
}

/// A deployment's aggregate, ready to run.
#[derive(Debug, Clone)]
pub struct Aggregator {
    pub op: Op,
    pub path: Option<String>,
    pub window: Option<Windowing>,
}

/// What the operator did with a batch.
#[derive(Debug, Default)]
pub struct Out {
    pub emitted: Vec<Emitted>,
    /// Records that failed: their index and why.
    pub failed: Vec<(usize, String)>,
    /// Records after their windows closed: their index.
    pub late: Vec<usize>,
}

enum Fate {
    Added,
    Late,
}

/// Windows changed by a batch, in the order they first changed, with the last record that
/// changed each.
#[derive(Default)]
struct Changed {
    order: Vec<Vec<u8>>,
    /// Hashed with xxh3: SipHash took a tenth of a windowed count's time.
    last: HashMap<Vec<u8>, u32, xxhash_rust::xxh3::Xxh3DefaultBuilder>,
}

impl Changed {
    fn note(&mut self, key: &[u8], input: usize) {
        match self.last.get_mut(key) {
            Some(i) => *i = input as u32,
            None => {
                self.order.push(key.to_vec());
                self.last.insert(key.to_vec(), input as u32);
            }
        }
    }
}

fn refused(e: StateError) -> String {
    format!("state: {e}")
}

impl Aggregator {
    pub fn new(aggregate: &AggregateSpec, window: Option<&WindowSpec>) -> Result<Self, String> {
        aggregate.validate()?;
        Ok(Self {
            op: aggregate.op,
            path: aggregate.path.clone(),
            window: window.map(Windowing::new).transpose()?,
        })
    }

    /// The internal stores the aggregate keeps its state in.
    pub fn stores(&self) -> Vec<String> {
        let mut s = vec![WINDOWS_STORE.to_owned()];
        if self.window.as_ref().is_some_and(Windowing::keeps_closed) {
            s.push(CLOSED_STORE.to_owned());
        }
        if matches!(self.window.as_ref().map(|w| w.shape), Some(Shape::Sliding { .. })) {
            s.push(RECORDS_STORE.to_owned());
        }
        s
    }

    fn store(s: &TaskState, name: &str) -> u32 {
        s.index_of(name).map_or(u32::MAX, u32::from)
    }

    /// Folds a batch into the state; with `emit: update` (or no window), emits the new result
    /// of every window (key) it changed. With `stop_on_error`, stops at the first failure.
    pub fn process(&self, s: &mut TaskState, views: &[RecordView<'_>], stop_on_error: bool) -> Out {
        let mut out = Out::default();
        let mut changed = Changed::default();
        for (i, v) in views.iter().enumerate() {
            let (mark, clock) = (s.mark(), s.watermark);
            match self.one(s, i, v, &mut changed) {
                Ok(Fate::Added) => {}
                Ok(Fate::Late) => out.late.push(i),
                Err(message) => {
                    // A failing record leaves no trace: not in the state, not in the clock.
                    s.rollback_to(mark);
                    s.watermark = clock;
                    out.failed.push((i, message));
                    if stop_on_error {
                        break;
                    }
                }
            }
        }
        let emits = self.window.as_ref().is_none_or(|w| w.emit == Emit::Update);
        if emits {
            let ws = Self::store(s, WINDOWS_STORE);
            for k in changed.order {
                let input = changed.last[&k];
                let Ok(Some(acc)) = s.get(ws, &k) else { continue };
                let timestamp = views[input as usize].timestamp;
                if let Some(record) = self.result(&k, acc, Some(timestamp)) {
                    out.emitted.push(Emitted {
                        input,
                        output: None,
                        record,
                    });
                }
            }
        }
        out
    }

    /// The output record for window (or key) state `k` holding `value`. `timestamp` is for
    /// results without a window (a window's is its last ms).
    fn result(&self, k: &[u8], value: &[u8], timestamp: Option<i64>) -> Option<NewRecord> {
        let mut fields = Vec::with_capacity(32);
        match &self.window {
            None => {
                let (key, _) = w::split_group(k)?;
                agg::finish(self.op, value, &mut fields);
                Some(w::result_record(key, None, &fields, timestamp.unwrap_or(0)))
            }
            Some(win) => {
                let (key, start) = w::split_window_key(k)?;
                let (end, acc) = self.bounds(win, start, value)?;
                agg::finish(self.op, acc, &mut fields);
                Some(w::result_record(key, Some((start, end)), &fields, end - 1))
            }
        }
    }

    /// A window's end and accumulator, from its start and stored value.
    fn bounds<'v>(&self, win: &Windowing, start: i64, value: &'v [u8]) -> Option<(i64, &'v [u8])> {
        match win.shape {
            Shape::Hopping { size, .. } | Shape::Sliding { size } => Some((start + size, value)),
            Shape::Session { .. } => {
                let end = i64::from_le_bytes(value.get(..8)?.try_into().ok()?);
                Some((end, &value[8..]))
            }
        }
    }

    fn one(&self, s: &mut TaskState, i: usize, v: &RecordView<'_>, changed: &mut Changed) -> Result<Fate, String> {
        let needs_doc =
            self.path.is_some() || matches!(self.window.as_ref().map(|w| &w.time), Some(TimeSource::Path { .. }));
        let doc = match needs_doc {
            true => Some(w::parse(v.value_bytes())?),
            false => None,
        };
        let input = agg::input_from(self.op, self.path.as_deref(), doc.as_ref())?;
        let ws = Self::store(s, WINDOWS_STORE);
        let Some(win) = &self.window else {
            let k = w::group_prefix(v.key);
            s.update(ws, &k, |old| agg::add(self.op, old, input).into())
                .map_err(refused)?;
            changed.note(&k, i);
            return Ok(Fate::Added);
        };
        let t = w::event_time(&win.time, v, doc.as_ref())?;
        s.watermark = Some(s.watermark.map_or(t, |c| c.max(t)));
        let wm = s.event_watermark().unwrap_or(t);
        match win.shape {
            Shape::Hopping { size, advance } => {
                let mut any = false;
                for start in w::hopping_starts(t, size, advance) {
                    let end = start + size;
                    if win.close_at(end) <= wm {
                        continue;
                    }
                    any = true;
                    let k = w::window_key(v.key, start);
                    let mut new = false;
                    s.update(ws, &k, |old| {
                        new = old.is_none();
                        agg::add(self.op, old, input).into()
                    })
                    .map_err(refused)?;
                    if new {
                        arm_close(s, win, &k, end)?;
                    }
                    changed.note(&k, i);
                }
                Ok(if any { Fate::Added } else { Fate::Late })
            }
            Shape::Session { gap } => self.session(s, win, gap, i, v.key, t, wm, input, changed),
            Shape::Sliding { size } => self.sliding(s, win, size, i, v, t, wm, input, changed),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn session(
        &self,
        s: &mut TaskState,
        win: &Windowing,
        gap: i64,
        i: usize,
        key: Option<&[u8]>,
        t: i64,
        wm: i64,
        input: Input,
        changed: &mut Changed,
    ) -> Result<Fate, String> {
        let ws = Self::store(s, WINDOWS_STORE);
        let prefix = w::group_prefix(key);
        let (sessions, _) = s
            .scan(ws, &prefix, Some(&prefix_end(&prefix)), SCAN_MAX, usize::MAX)
            .map_err(refused)?;
        let (mut start, mut end) = (t, t + 1);
        let mut acc: Option<Vec<u8>> = None;
        let mut merged = Vec::new();
        for (k, value) in sessions {
            let Some((_, s_start)) = w::split_window_key(&k) else {
                continue;
            };
            let Some((s_end, s_acc)) = self.bounds(win, s_start, &value) else {
                continue;
            };
            let open = win.close_at(s_end) > wm;
            // Within `gap` of [first, last] (inclusive), as Kafka Streams joins sessions.
            let near = s_start - gap <= t && t <= s_end - 1 + gap;
            if open && near {
                start = start.min(s_start);
                end = end.max(s_end);
                acc = Some(match acc {
                    None => s_acc.to_vec(),
                    Some(a) => agg::merge(self.op, &a, s_acc),
                });
                merged.push((k, s_end));
            }
        }
        if win.close_at(end) <= wm {
            return Ok(Fate::Late);
        }
        for (k, s_end) in &merged {
            s.delete(ws, k).map_err(refused)?;
            s.cancel_timer(
                &w::timer_key(TimerKind::Close, k),
                win.close_at(*s_end),
                Domain::EventTime,
            );
        }
        let acc = agg::add(self.op, acc.as_deref(), input);
        let k = w::session_key(key, start, end);
        let mut value = Vec::with_capacity(8 + acc.len());
        value.extend_from_slice(&end.to_le_bytes());
        value.extend_from_slice(&acc);
        s.set(ws, &k, &value).map_err(refused)?;
        arm_close(s, win, &k, end)?;
        changed.note(&k, i);
        Ok(Fate::Added)
    }

    #[allow(clippy::too_many_arguments)]
    fn sliding(
        &self,
        s: &mut TaskState,
        win: &Windowing,
        size: i64,
        i: usize,
        v: &RecordView<'_>,
        t: i64,
        wm: i64,
        input: Input,
        changed: &mut Changed,
    ) -> Result<Fate, String> {
        // Late once the last window that could hold it, [t, t + size), is closed; windows of
        // it that closed before are left as they are (below).
        if win.close_at(t + size) <= wm {
            return Ok(Fate::Late);
        }
        let (ws, rs) = (Self::store(s, WINDOWS_STORE), Self::store(s, RECORDS_STORE));
        let rk = w::record_key(v.key, t, v.offset);
        s.set(rs, &rk, &encode_input(input)).map_err(refused)?;
        s.set_timer(
            &w::timer_key(TimerKind::Forget, &rk),
            t + size + 1 + win.grace,
            Domain::EventTime,
        )
        .map_err(refused)?;
        // The key's records that share a window with this one: [t - size, t + size].
        let from = w::record_key(v.key, t - size, 0);
        let to = w::record_key(v.key, t + size + 1, 0);
        let (buffered, _) = s.scan(rs, &from, Some(&to), usize::MAX, usize::MAX).map_err(refused)?;
        let records: Vec<(i64, Input)> = buffered
            .iter()
            .filter_map(|(k, val)| Some((w::record_time(k)?, decode_input(val)?)))
            .collect();
        // The windows this record changes or makes: its own, the one just after it (when a
        // record follows within size), those after earlier records and those ending at later
        // ones (when this one falls in them).
        let mut starts = vec![t - size + 1];
        if records.iter().any(|&(x, _)| t < x && x <= t + size) {
            starts.push(t + 1);
        }
        for &(x, _) in &records {
            if t - size <= x && x < t {
                starts.push(x + 1);
            }
            if t < x && x < t + size {
                starts.push(x - size + 1);
            }
        }
        starts.sort_unstable();
        starts.dedup();
        for start in starts {
            let end = start + size;
            if win.close_at(end) <= wm {
                continue;
            }
            let k = w::window_key(v.key, start);
            // A window there already has every record of its range that came while it was
            // open: this one is added if it falls in it. A new one folds its range's records
            // (this one among them). So a record costs a fold of one or two new windows, not
            // of every window it touches.
            let (acc, new) = match s.get(ws, &k).map_err(refused)? {
                Some(_) if !(start <= t && t < end) => continue,
                Some(old) => (agg::add(self.op, Some(old), input), false),
                None => {
                    let acc = records
                        .iter()
                        .filter(|&&(x, _)| start <= x && x < end)
                        .fold(None::<Vec<u8>>, |acc, &(_, inp)| {
                            Some(agg::add(self.op, acc.as_deref(), inp))
                        });
                    let Some(acc) = acc else { continue };
                    (acc, true)
                }
            };
            s.set(ws, &k, &acc).map_err(refused)?;
            if new {
                arm_close(s, win, &k, end)?;
            }
            changed.note(&k, i);
        }
        Ok(Fate::Added)
    }

    /// Acts on timers that came due: closes windows (emitting them under `emit: final`),
    /// expires them, forgets buffered records. Returns the outputs.
    pub fn fire(&self, s: &mut TaskState, fired: &[Fired]) -> Result<Vec<NewRecord>, String> {
        let Some(win) = &self.window else { return Ok(Vec::new()) };
        let ws = Self::store(s, WINDOWS_STORE);
        let mut out = Vec::new();
        for f in fired {
            let Some((kind, k)) = w::split_timer_key(&f.key) else {
                continue;
            };
            match kind {
                TimerKind::Close => {
                    let Ok(Some(value)) = s.get(ws, k) else { continue };
                    let Some((_, start)) = w::split_window_key(k) else {
                        continue;
                    };
                    let Some((end, _)) = self.bounds(win, start, value) else {
                        continue;
                    };
                    if win.emit == Emit::Final
                        && let Some(r) = self.result(k, value, None)
                    {
                        out.push(r);
                    }
                    let value = value.to_vec();
                    s.delete(ws, k).map_err(refused)?;
                    if win.keeps_closed() {
                        s.set(Self::store(s, CLOSED_STORE), k, &value).map_err(refused)?;
                        s.set_timer(
                            &w::timer_key(TimerKind::Expire, k),
                            end + win.retention,
                            Domain::EventTime,
                        )
                        .map_err(refused)?;
                    }
                }
                TimerKind::Expire => s.delete(Self::store(s, CLOSED_STORE), k).map_err(refused)?,
                TimerKind::Forget => s.delete(Self::store(s, RECORDS_STORE), k).map_err(refused)?,
            }
        }
        Ok(out)
    }
}

/// Sets the timer that closes window `k`, ending at `end`.
fn arm_close(s: &mut TaskState, win: &Windowing, k: &[u8], end: i64) -> Result<(), String> {
    s.set_timer(&w::timer_key(TimerKind::Close, k), win.close_at(end), Domain::EventTime)
        .map_err(refused)
}

/// The first key past every key starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return end;
        }
    }
    vec![u8::MAX; prefix.len() + 1]
}

/// A buffered record's input: `0` (one), `1` NUM, or `2` and a hash (u64 LE).
fn encode_input(i: Input) -> Vec<u8> {
    let mut out = Vec::with_capacity(10);
    match i {
        Input::One => out.push(0),
        Input::Num(Num::Int(n)) => {
            out.extend_from_slice(&[1, 0]);
            out.extend_from_slice(&n.to_le_bytes());
        }
        Input::Num(Num::Float(f)) => {
            out.extend_from_slice(&[1, 1]);
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Input::Hash(h) => {
            out.push(2);
            out.extend_from_slice(&h.to_le_bytes());
        }
    }
    out
}

fn decode_input(b: &[u8]) -> Option<Input> {
    match *b.first()? {
        0 => Some(Input::One),
        1 => {
            let raw = u64::from_le_bytes(b.get(2..10)?.try_into().ok()?);
            Some(Input::Num(match b[1] {
                0 => Num::Int(raw as i64),
                _ => Num::Float(f64::from_bits(raw)),
            }))
        }
        2 => Some(Input::Hash(u64::from_le_bytes(b.get(1..9)?.try_into().ok()?))),
        _ => None,
    }
}

#[cfg(test)]
#[path = "aggregate_tests.rs"]
mod tests;
