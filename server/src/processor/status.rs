//! What a running processor reports: counters, state, call latency, and its log stream.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use tokio::sync::broadcast;

use super::latency::Latency;
use crate::wasm::Level;

/// Log lines kept for new subscribers of `GET /v1/processors/{name}/logs`, and their most
/// bytes: 10,000 chatty processors keep at most 640 MB of log, not unbounded.
const LOG_LINES_KEPT: usize = 1000;
const LOG_BYTES_KEPT: usize = 64 * 1024;
/// Longest log line kept: a guest may log a line as large as its memory.
const LOG_LINE_BYTES_MAX: usize = 8 * 1024;
/// Lines a live subscriber may fall behind before it is told it skipped some. The channel is
/// made only when someone follows the logs: its slots are allocated up front.
const LOG_LINES_IN_FLIGHT: usize = 256;

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
    /// The processor's name, for the broker's own log.
    name: String,
    pub records_in: AtomicU64,
    pub records_out: AtomicU64,
    pub errors: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub skipped: AtomicU64,
    /// Records that came after their windows closed (a windowed aggregate's).
    pub late: AtomicU64,
    pub traps: AtomicU64,
    state: Mutex<(State, Option<String>)>,
    latency: Mutex<Latency>,
    /// Kept lines, and the bytes of their messages.
    logs: Mutex<(VecDeque<LogLine>, usize)>,
    /// Made by the first follower, kept while anyone follows.
    log_tx: Mutex<Option<broadcast::Sender<LogLine>>>,
}

impl Status {
    pub fn new(name: &str, paused: bool) -> Self {
        Self {
            name: name.to_owned(),
            records_in: AtomicU64::new(0),
            records_out: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            late: AtomicU64::new(0),
            traps: AtomicU64::new(0),
            state: Mutex::new((if paused { State::Paused } else { State::Running }, None)),
            latency: Mutex::new(Latency::default()),
            logs: Mutex::new((VecDeque::new(), 0)),
            log_tx: Mutex::new(None),
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
            if s.0 != State::Failed {
                tracing::warn!(processor = %self.name, error = %message, "processor failed");
            }
            s.0 = State::Failed;
        }
        s.1 = Some(message);
    }

    pub fn observe_call(&self, micros: u64) {
        self.latency.lock().unwrap_or_else(|e| e.into_inner()).record(micros);
    }

    /// `(p50, p99, max)` call latency in ms (quantiles within 19%).
    pub fn latency_ms(&self) -> (f64, f64, f64) {
        let h = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        let round = |us: f64| (us / 10.0).round() / 100.0;
        (
            round(h.quantile_us(0.5)),
            round(h.quantile_us(0.99)),
            round(h.max_us() as f64),
        )
    }

    pub fn log(&self, level: &'static str, partition: Option<u32>, mut message: String) {
        if message.len() > LOG_LINE_BYTES_MAX {
            let cut = message.len() - LOG_LINE_BYTES_MAX;
            let mut end = LOG_LINE_BYTES_MAX;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push_str(&format!(" ... ({cut} more bytes cut)"));
        }
        let line = LogLine {
            timestamp: crate::topic::now_ms(),
            level,
            partition,
            message,
        };
        let mut logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        let (kept, bytes) = &mut *logs;
        *bytes += line.message.len();
        kept.push_back(line.clone());
        while kept.len() > LOG_LINES_KEPT || (*bytes > LOG_BYTES_KEPT && kept.len() > 1) {
            if let Some(old) = kept.pop_front() {
                *bytes -= old.message.len();
            }
        }
        let mut tx = self.log_tx.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sender) = tx.as_ref()
            && sender.send(line).is_err()
        {
            // Nobody follows any more: free the channel's slots.
            *tx = None;
        }
    }

    /// The kept lines and a receiver for the ones that follow.
    pub fn subscribe(&self) -> (Vec<LogLine>, broadcast::Receiver<LogLine>) {
        let logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        let mut tx = self.log_tx.lock().unwrap_or_else(|e| e.into_inner());
        let rx = tx
            .get_or_insert_with(|| broadcast::channel(LOG_LINES_IN_FLIGHT).0)
            .subscribe();
        (logs.0.iter().cloned().collect(), rx)
    }
}
