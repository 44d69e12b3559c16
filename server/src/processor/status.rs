//! What a running processor reports: counters, state, call latency, and its log stream.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use tokio::sync::broadcast;

use crate::wasm::Level;

/// Log lines kept for new subscribers of `GET /v1/processors/{name}/logs`.
const LOG_LINES_KEPT: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Running,
    Paused,
    Failed,
}

/// One line of a processor's log.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LogLine {
    pub timestamp: i64,
    pub level: &'static str,
    pub partition: Option<u32>,
    pub message: String,
}

pub fn level_name(level: Level) -> &'static str {
    match level {
        Level::Trace => "trace",
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    }
}

/// Live counters of one processor, shared by its partition runners.
pub struct Status {
    pub records_in: AtomicU64,
    pub records_out: AtomicU64,
    pub errors: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub skipped: AtomicU64,
    pub traps: AtomicU64,
    state: Mutex<(State, Option<String>)>,
    latency_us: Mutex<hdrhistogram::Histogram<u64>>,
    logs: Mutex<VecDeque<LogLine>>,
    log_tx: broadcast::Sender<LogLine>,
}

impl Status {
    pub fn new(paused: bool) -> Self {
        Self {
            records_in: AtomicU64::new(0),
            records_out: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            traps: AtomicU64::new(0),
            state: Mutex::new((if paused { State::Paused } else { State::Running }, None)),
            latency_us: Mutex::new(
                hdrhistogram::Histogram::new_with_bounds(1, 120_000_000, 2).expect("static histogram bounds are valid"),
            ),
            logs: Mutex::new(VecDeque::new()),
            log_tx: broadcast::channel(LOG_LINES_KEPT).0,
        }
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn state(&self) -> (State, Option<String>) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_state(&self, state: State) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).0 = state;
    }

    /// A fresh start of the same deployment (pause, resume): the state follows `paused` and a
    /// failure is cleared; counters and logs go on.
    pub fn restart(&self, paused: bool) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) =
            (if paused { State::Paused } else { State::Running }, None);
    }

    /// Records the latest error; `fail` also moves the processor to `failed`.
    pub fn set_error(&self, message: String, fail: bool) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if fail {
            s.0 = State::Failed;
        }
        s.1 = Some(message);
    }

    pub fn observe_call(&self, micros: u64) {
        let _ = self
            .latency_us
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(micros.max(1));
    }

    /// `(p50, p99, max)` call latency in ms.
    pub fn latency_ms(&self) -> (f64, f64, f64) {
        let h = self.latency_us.lock().unwrap_or_else(|e| e.into_inner());
        let ms = |us: u64| us as f64 / 1000.0;
        (ms(h.value_at_quantile(0.5)), ms(h.value_at_quantile(0.99)), ms(h.max()))
    }

    pub fn log(&self, level: &'static str, partition: Option<u32>, message: String) {
        let line = LogLine {
            timestamp: crate::topic::now_ms(),
            level,
            partition,
            message,
        };
        let mut logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        if logs.len() >= LOG_LINES_KEPT {
            logs.pop_front();
        }
        logs.push_back(line.clone());
        let _ = self.log_tx.send(line);
    }

    /// The kept lines and a receiver for the ones that follow.
    pub fn subscribe(&self) -> (Vec<LogLine>, broadcast::Receiver<LogLine>) {
        let logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        (logs.iter().cloned().collect(), self.log_tx.subscribe())
    }
}
