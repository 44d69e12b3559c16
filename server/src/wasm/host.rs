//! What the host provides to guests: logging (both contracts), and in contract 0.2 the task's
//! keyed state and time. Each state call locks the task's state for just that call (the task
//! and HTTP readers share it); a guest of a task without state gets errors that say so.

use super::bindings::{Level, v01, v02};
use super::guest::GuestState;
use crate::state::StateError;
use crate::state::timers::Domain;

use v02::typed::weir::processor as p2;

impl v01::typed::weir::processor::host::Host for GuestState {
    fn log(&mut self, level: Level, message: String) {
        (self.log)(level, &message);
    }
}

impl p2::host::Host for GuestState {
    fn log(&mut self, level: p2::host::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            p2::host::Level::Trace => Level::Trace,
            p2::host::Level::Debug => Level::Debug,
            p2::host::Level::Info => Level::Info,
            p2::host::Level::Warn => Level::Warn,
            p2::host::Level::Error => Level::Error,
        };
        (self.log)(level, &message);
        Ok(())
    }
}

/// Most bytes of keys and values one `scan` answers (at least one entry): a scan copies out
/// of the store, which may hold far more than a guest's memory.
const SCAN_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Without state: what a state call answers.
const NO_STATE: &str = "this processor has no state: declare stores in its deployment (\"stores\": [\"NAME\"])";

impl GuestState {
    /// Runs `f` on the task's state. A guest error comes back as `Ok(Err(message))`; a
    /// handle `open` never gave traps.
    fn with_state<T>(
        &mut self,
        f: impl FnOnce(&mut crate::state::TaskState) -> Result<T, StateError>,
    ) -> wasmtime::Result<Result<T, String>> {
        let Some(task) = &self.task else {
            return Ok(Err(NO_STATE.to_owned()));
        };
        let mut state = task.lock().unwrap_or_else(|e| e.into_inner());
        match f(&mut state) {
            Ok(v) => Ok(Ok(v)),
            Err(StateError::Refused(m)) => {
                drop(state);
                // In the processor's log (a bounded ring), whether or not the guest handles it.
                (self.log)(Level::Warn, &format!("state call refused: {m}"));
                Ok(Err(m))
            }
            Err(e @ StateError::UnknownStore(_)) => Err(wasmtime::Error::msg(e.to_string())),
        }
    }

    /// [`Self::with_state`] for calls that cannot fail but by trapping.
    fn reading<T>(
        &mut self,
        f: impl FnOnce(&mut crate::state::TaskState) -> Result<T, StateError>,
    ) -> wasmtime::Result<T> {
        match self.with_state(f)? {
            Ok(v) => Ok(v),
            Err(m) => Err(wasmtime::Error::msg(m)),
        }
    }
}

impl p2::state::Host for GuestState {
    fn open(&mut self, name: String) -> wasmtime::Result<Result<u32, String>> {
        self.with_state(|s| s.open(&name))
    }

    fn get(&mut self, store: u32, key: Vec<u8>) -> wasmtime::Result<Option<Vec<u8>>> {
        self.reading(|s| Ok(s.get(store, &key)?.map(<[u8]>::to_vec)))
    }

    fn get_many(&mut self, store: u32, keys: Vec<Vec<u8>>) -> wasmtime::Result<Vec<Option<Vec<u8>>>> {
        self.reading(|s| keys.iter().map(|k| Ok(s.get(store, k)?.map(<[u8]>::to_vec))).collect())
    }

    fn set(&mut self, store: u32, key: Vec<u8>, value: Vec<u8>) -> wasmtime::Result<Result<(), String>> {
        self.with_state(|s| s.set(store, &key, &value))
    }

    fn delete(&mut self, store: u32, key: Vec<u8>) -> wasmtime::Result<Result<(), String>> {
        self.with_state(|s| s.delete(store, &key))
    }

    fn increment(&mut self, store: u32, key: Vec<u8>, delta: i64) -> wasmtime::Result<Result<i64, String>> {
        self.with_state(|s| s.increment(store, &key, delta))
    }

    fn scan(
        &mut self,
        store: u32,
        start: Vec<u8>,
        end: Option<Vec<u8>>,
        limit: u32,
    ) -> wasmtime::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.reading(|s| Ok(s.scan(store, &start, end.as_deref(), limit as usize, SCAN_BYTES_MAX)?.0))
    }
}

impl p2::tables::Host for GuestState {
    fn open(&mut self, name: String) -> wasmtime::Result<Result<u32, String>> {
        Ok(match self.tables.iter().position(|(n, _)| *n == name) {
            Some(i) => Ok(i as u32),
            None if self.tables.is_empty() => Err(format!(
                "no table '{name}': the deployment declares no tables (add \"tables\": [\"{name}\"])"
            )),
            None => Err(format!(
                "no table '{name}': the deployment declares {}",
                self.tables
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        })
    }

    fn lookup(&mut self, table: u32, key: Vec<u8>) -> wasmtime::Result<Option<Vec<u8>>> {
        let (_, t) = self
            .tables
            .get(table as usize)
            .ok_or_else(|| wasmtime::Error::msg(format!("table handle {table} was not opened")))?;
        Ok(t.get(&key).map(|(_, r)| r.value.to_vec()))
    }

    fn lookup_many(&mut self, table: u32, keys: Vec<Vec<u8>>) -> wasmtime::Result<Vec<Option<Vec<u8>>>> {
        let (_, t) = self
            .tables
            .get(table as usize)
            .ok_or_else(|| wasmtime::Error::msg(format!("table handle {table} was not opened")))?;
        Ok(keys.iter().map(|k| t.get(k).map(|(_, r)| r.value.to_vec())).collect())
    }
}

fn domain(d: p2::time::Domain) -> Domain {
    match d {
        p2::time::Domain::EventTime => Domain::EventTime,
        p2::time::Domain::ProcessingTime => Domain::ProcessingTime,
    }
}

impl p2::time::Host for GuestState {
    fn watermark(&mut self) -> wasmtime::Result<Option<i64>> {
        Ok(self
            .task
            .as_ref()
            .and_then(|t| t.lock().unwrap_or_else(|e| e.into_inner()).watermark))
    }

    fn set_timer(&mut self, key: Vec<u8>, at: i64, d: p2::time::Domain) -> wasmtime::Result<Result<(), String>> {
        self.with_state(|s| s.set_timer(&key, at, domain(d)))
    }

    fn cancel_timer(&mut self, key: Vec<u8>, at: i64, d: p2::time::Domain) -> wasmtime::Result<()> {
        if let Some(t) = &self.task {
            t.lock()
                .unwrap_or_else(|e| e.into_inner())
                .cancel_timer(&key, at, domain(d));
        }
        Ok(())
    }
}
