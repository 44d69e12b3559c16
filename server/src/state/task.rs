//! A task's state: its declared stores and its timers, the writes since its last commit (the
//! changelog's next records), and the undo log of the guest call in progress.
//!
//! Writes go into the stores at once (reads see them), and each records the value it replaced
//! in the current batch's undo log: a record that fails (rolled back to the mark taken before
//! it), or a batch dropped half-way (a pause, a stop), puts those values back, so neither a
//! dead-lettered record nor an abandoned batch leaves a trace. What the commit writes to the
//! changelog is the current value of every key touched since the last commit: one record per
//! key, however often it changed (Kafka Streams' record cache does the same).

use super::TIMERS_STORE;
use super::limits::StateLimits;
use super::store::{Replaced, Store};
use super::timers::{self, Domain, Fired};

fn size(key: &[u8], value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64
}

/// Why a state call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// A handle `open` never gave: a guest bug, a trap.
    #[error("store handle {0} was not opened")]
    UnknownStore(u32),
    /// The guest's error to handle: a limit, a store not declared, a value that is not an
    /// integer.
    #[error("{0}")]
    Refused(String),
}

/// Figures of one store of one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreFigures {
    pub name: String,
    pub keys: u64,
    pub bytes: u64,
    /// Writes refused for a limit.
    pub refused: u64,
}

/// One change for the changelog: a store's key and its value now (`None`: deleted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub store: String,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// A write to undo: the store, where its key is in [`TaskState::undo_keys`], and the value
/// it had (`None`: none).
#[derive(Debug)]
struct Undo {
    store: u16,
    key_at: usize,
    old: Option<Box<[u8]>>,
}

/// The state of one task.
#[derive(Debug)]
pub struct TaskState {
    /// The declared stores, in the deployment's order, then the timers.
    stores: Vec<Store>,
    limits: StateLimits,
    /// Keys written since the last commit, each listed when it became changed (a key deleted
    /// and written again may be listed twice; the commit writes it once).
    touched: Vec<(u16, Box<[u8]>)>,
    /// Values the current batch's writes replaced, in write order.
    undo: Vec<Undo>,
    /// The keys of `undo`, end to end (one buffer, not an allocation per write).
    undo_keys: Vec<u8>,
    /// Bytes of every store.
    bytes: u64,
    /// The task's clock: the largest record timestamp (a windowed processor's: event time)
    /// processed, in ms.
    pub watermark: Option<i64>,
    /// How far event-time timers lag the clock: a windowed deployment's `out_of_order_ms`.
    pub lag: i64,
}

impl TaskState {
    pub fn new(stores: &[String], limits: StateLimits) -> Self {
        let mut all: Vec<Store> = stores.iter().map(|n| Store::new(n)).collect();
        all.push(Store::new(TIMERS_STORE));
        Self {
            stores: all,
            limits,
            touched: Vec::new(),
            undo: Vec::new(),
            undo_keys: Vec::new(),
            bytes: 0,
            watermark: None,
            lag: 0,
        }
    }

    fn timers_index(&self) -> u16 {
        (self.stores.len() - 1) as u16
    }

    /// The handle of declared store `name` (not one of the broker's, named `__...`).
    pub fn open(&self, name: &str) -> Result<u32, StateError> {
        let declared = &self.stores[..self.stores.len() - 1];
        let declared: Vec<&Store> = declared.iter().filter(|s| !s.name.starts_with("__")).collect();
        declared
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| self.index_of(&s.name))
            .map(u32::from)
            .ok_or_else(|| {
                let names: Vec<&str> = declared.iter().map(|s| s.name.as_str()).collect();
                StateError::Refused(if names.is_empty() {
                    format!("no store '{name}': the deployment declares no stores (add \"stores\": [\"{name}\"])")
                } else {
                    format!("no store '{name}': the deployment declares {}", names.join(", "))
                })
            })
    }

    fn declared(&self, store: u32) -> Result<usize, StateError> {
        if (store as usize) < self.stores.len() - 1 {
            Ok(store as usize)
        } else {
            Err(StateError::UnknownStore(store))
        }
    }

    /// The index of a store by name, timers included (for restoring from the changelog).
    pub fn index_of(&self, name: &str) -> Option<u16> {
        self.stores.iter().position(|s| s.name == name).map(|i| i as u16)
    }

    pub fn get(&self, store: u32, key: &[u8]) -> Result<Option<&[u8]>, StateError> {
        Ok(self.stores[self.declared(store)?].get(key))
    }

    pub fn scan(
        &self,
        store: u32,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        bytes_max: usize,
    ) -> Result<(super::store::Entries, bool), StateError> {
        Ok(self.stores[self.declared(store)?].scan_bytes(start, end, limit, bytes_max))
    }

    /// Bytes of every store.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Writes `key` of `store` to what `next` makes of its current value, within the limits,
    /// keeping what it replaced for an undo and listing the key for the changelog.
    fn write(
        &mut self,
        store: u16,
        key: &[u8],
        next: impl FnOnce(Option<&[u8]>) -> Result<Box<[u8]>, StateError>,
    ) -> Result<(), StateError> {
        let written = self.write_within_limits(store, key, next);
        if written.is_err() {
            self.stores[store as usize].refused += 1;
        }
        written
    }

    fn write_within_limits(
        &mut self,
        store: u16,
        key: &[u8],
        next: impl FnOnce(Option<&[u8]>) -> Result<Box<[u8]>, StateError>,
    ) -> Result<(), StateError> {
        let l = self.limits;
        if key.len() > l.key_bytes_max {
            return Err(StateError::Refused(format!(
                "a key of {} bytes is over state_limits.key_bytes_max ({})",
                key.len(),
                l.key_bytes_max
            )));
        }
        let total = self.bytes;
        let s = &mut self.stores[store as usize];
        // Only a full store needs to know whether the key is new before the write.
        let full = s.len() >= l.keys_max && s.get(key).is_none();
        let name = full.then(|| s.name.clone());
        let before = s.bytes();
        let replaced = s.update(key, |old| {
            let v = next(old)?;
            if v.len() > l.value_bytes_max {
                return Err(StateError::Refused(format!(
                    "a value of {} bytes is over state_limits.value_bytes_max ({})",
                    v.len(),
                    l.value_bytes_max
                )));
            }
            if let Some(name) = name {
                return Err(StateError::Refused(format!(
                    "store '{name}' holds state_limits.keys_max keys ({}); delete some first",
                    l.keys_max
                )));
            }
            let grows = (key.len() + v.len()) as u64;
            let frees = old.map_or(0, |o| (key.len() + o.len()) as u64);
            let after = total - frees + grows;
            if grows > frees && after > l.bytes_max {
                return Err(StateError::Refused(format!(
                    "the task's state would hold {after} bytes, over state_limits.bytes_max ({})",
                    l.bytes_max
                )));
            }
            Ok(v)
        })?;
        self.bytes = self.bytes - before + s.bytes();
        self.wrote(store, key, replaced);
        Ok(())
    }

    /// Keeps what a write replaced for an undo, and lists a newly changed key.
    fn wrote(&mut self, store: u16, key: &[u8], replaced: Replaced) {
        self.undo.push(Undo {
            store,
            key_at: self.undo_keys.len(),
            old: replaced.old,
        });
        self.undo_keys.extend_from_slice(key);
        if replaced.newly_dirty {
            self.touched.push((store, key.into()));
        }
    }

    /// Deletes `key` of `store` (nothing when it is absent).
    fn remove(&mut self, store: u16, key: &[u8]) {
        let s = &mut self.stores[store as usize];
        if let Some(replaced) = s.delete(key) {
            self.bytes -= size(key, replaced.old.as_deref().unwrap_or_default());
            self.wrote(store, key, replaced);
        }
    }

    /// Sets `key` to what `next` makes of its current value (`None`: absent), within the limits.
    pub fn update(
        &mut self,
        store: u32,
        key: &[u8],
        next: impl FnOnce(Option<&[u8]>) -> Box<[u8]>,
    ) -> Result<(), StateError> {
        let i = self.declared(store)? as u16;
        self.write(i, key, |old| Ok(next(old)))
    }

    pub fn set(&mut self, store: u32, key: &[u8], value: &[u8]) -> Result<(), StateError> {
        let i = self.declared(store)? as u16;
        self.write(i, key, |_| Ok(value.into()))
    }

    pub fn delete(&mut self, store: u32, key: &[u8]) -> Result<(), StateError> {
        let i = self.declared(store)? as u16;
        self.remove(i, key);
        Ok(())
    }

    /// Adds `delta` to the decimal integer at `key` (absent: 0).
    pub fn increment(&mut self, store: u32, key: &[u8], delta: i64) -> Result<i64, StateError> {
        let i = self.declared(store)? as u16;
        let mut next = 0;
        self.write(i, key, |old| {
            let current = match old {
                None => 0,
                Some(v) => std::str::from_utf8(v)
                    .ok()
                    .and_then(|t| t.parse::<i64>().ok())
                    .ok_or_else(|| StateError::Refused("increment: the value there is not a decimal integer".into()))?,
            };
            next = current.checked_add(delta).ok_or_else(|| {
                StateError::Refused(format!("increment: {current} + {delta} overflows a 64-bit integer"))
            })?;
            Ok(itoa::Buffer::new().format(next).as_bytes().into())
        })?;
        Ok(next)
    }

    /// Sets a timer (one per key, time and domain).
    pub fn set_timer(&mut self, key: &[u8], at: i64, domain: Domain) -> Result<(), StateError> {
        let k = timers::encode(domain, at, key);
        let t = self.timers_index();
        if self.stores[t as usize].get(&k).is_some() {
            return Ok(());
        }
        self.write(t, &k, |_| Ok(Box::default()))
    }

    pub fn cancel_timer(&mut self, key: &[u8], at: i64, domain: Domain) {
        let k = timers::encode(domain, at, key);
        let t = self.timers_index();
        self.remove(t, &k);
    }

    /// Takes up to `max` timers that are due (event time at or before the watermark,
    /// processing time at or before `now_ms`) out of the store, as writes of the current call.
    pub fn take_due_timers(&mut self, now_ms: i64, max: usize) -> Vec<Fired> {
        let t = self.timers_index() as usize;
        let mut due = Vec::new();
        for (domain, until) in [
            (Domain::EventTime, self.event_watermark()),
            (Domain::ProcessingTime, Some(now_ms)),
        ] {
            let Some(until) = until else { continue };
            let start = timers::domain_start(domain);
            let end = timers::after(domain, until);
            for (k, _) in self.stores[t].scan(&start, Some(&end), max - due.len()) {
                if let Some(f) = timers::decode(&k) {
                    due.push((k, f));
                }
            }
        }
        for (k, _) in &due {
            self.remove(t as u16, k);
        }
        due.into_iter().map(|(_, f)| f).collect()
    }

    /// The clock less the lag: event-time timers at or before it are due.
    pub fn event_watermark(&self) -> Option<i64> {
        self.watermark.map(|w| w.saturating_sub(self.lag))
    }

    /// The time of the first event-time timer, if one is set.
    pub fn next_event_timer(&self) -> Option<i64> {
        let t = self.timers_index() as usize;
        let start = timers::domain_start(Domain::EventTime);
        let end = timers::domain_start(Domain::ProcessingTime);
        self.stores[t]
            .scan(&start, Some(&end), 1)
            .first()
            .and_then(|(k, _)| timers::decode(k))
            .map(|f| f.at)
    }

    /// When the next processing-time timer is due, if one is set.
    pub fn next_processing_timer(&self) -> Option<i64> {
        let t = self.timers_index() as usize;
        let start = timers::domain_start(Domain::ProcessingTime);
        let end = timers::domain_start(Domain::ProcessingTime)
            .iter()
            .map(|b| b + 1)
            .collect::<Vec<_>>();
        self.stores[t]
            .scan(&start, Some(&end), 1)
            .first()
            .and_then(|(k, _)| timers::decode(k))
            .map(|f| f.at)
    }

    /// Starts a batch: its writes can be undone until [`Self::end_batch`]. What an earlier
    /// batch left unfinished is undone first.
    pub fn begin_batch(&mut self) {
        self.rollback_to(0);
    }

    /// Keeps the current batch's writes.
    pub fn end_batch(&mut self) {
        self.undo.clear();
        self.undo_keys.clear();
    }

    /// Undoes everything the current batch wrote (it was dropped half-way).
    pub fn rollback_batch(&mut self) {
        self.rollback_to(0);
    }

    /// A point of the current batch to roll back to (before a record).
    pub fn mark(&self) -> usize {
        self.undo.len()
    }

    /// Whether the current batch wrote anything since `mark`.
    pub fn wrote_since(&self, mark: usize) -> bool {
        self.undo.len() > mark
    }

    /// Undoes the current batch's writes since `mark`, newest first.
    pub fn rollback_to(&mut self, mark: usize) {
        while self.undo.len() > mark {
            let Some(u) = self.undo.pop() else {
                break;
            };
            let s = &mut self.stores[u.store as usize];
            let before = s.bytes();
            let key = &self.undo_keys[u.key_at..];
            if s.put_back(key, u.old) {
                self.touched.push((u.store, key.into()));
            }
            self.bytes = self.bytes - before + s.bytes();
            self.undo_keys.truncate(u.key_at);
        }
    }

    /// The current value of every key written since the last call to this: the changelog's
    /// next records. Call between guest calls only.
    pub fn take_changes(&mut self) -> Vec<Change> {
        let mut changes = Vec::with_capacity(self.touched.len());
        for (store, key) in std::mem::take(&mut self.touched) {
            let s = &mut self.stores[store as usize];
            if let Some(value) = s.take_change(&key).map(|v| v.map(<[u8]>::to_vec)) {
                changes.push(Change {
                    store: s.name.clone(),
                    value,
                    key: key.into_vec(),
                });
            }
        }
        changes
    }

    /// Whether anything was written since the last [`Self::take_changes`].
    pub fn has_changes(&self) -> bool {
        !self.touched.is_empty()
    }

    /// Applies a change read back from the changelog or a snapshot (no limits, no undo).
    pub fn restore(&mut self, store: u16, key: &[u8], value: Option<&[u8]>) {
        let s = &mut self.stores[store as usize];
        let before = s.bytes();
        s.restore(key, value);
        self.bytes = self.bytes - before + s.bytes();
    }

    /// Replaces a whole store (from a snapshot).
    pub fn replace_store(&mut self, store: u16, with: Store) {
        self.bytes = self.bytes - self.stores[store as usize].bytes() + with.bytes();
        self.stores[store as usize] = with;
    }

    /// The stores, timers last.
    pub fn stores(&self) -> &[Store] {
        &self.stores
    }

    /// Keys and bytes of each declared store.
    pub fn figures(&self) -> Vec<StoreFigures> {
        self.stores[..self.stores.len() - 1]
            .iter()
            .map(|s| StoreFigures {
                name: s.name.clone(),
                keys: s.len(),
                bytes: s.bytes(),
                refused: s.refused,
            })
            .collect()
    }

    /// Empties every store (a reset of the state).
    pub fn clear(&mut self) {
        for s in &mut self.stores {
            s.clear();
        }
        self.touched.clear();
        self.undo.clear();
        self.undo_keys.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> TaskState {
        TaskState::new(&["counts".into(), "seen".into()], StateLimits::default())
    }

    #[test]
    fn a_failed_call_is_undone_and_only_kept_writes_reach_the_changelog() {
        let mut s = state();
        let c = s.open("counts").unwrap();
        s.begin_batch();
        assert_eq!(s.increment(c, b"apple", 1).unwrap(), 1);
        assert_eq!(s.increment(c, b"apple", 2).unwrap(), 3);
        assert!(s.wrote_since(0));
        s.end_batch();
        s.begin_batch();
        let before = s.mark();
        s.increment(c, b"apple", 10).unwrap();
        s.set(c, b"pear", b"x").unwrap();
        s.delete(c, b"apple").unwrap();
        s.rollback_to(before);
        assert_eq!(s.get(c, b"apple").unwrap(), Some(&b"3"[..]));
        assert_eq!(s.get(c, b"pear").unwrap(), None);
        let changes = s.take_changes();
        assert_eq!(
            changes,
            [
                Change {
                    store: "counts".into(),
                    key: b"apple".to_vec(),
                    value: Some(b"3".to_vec())
                },
                Change {
                    store: "counts".into(),
                    key: b"pear".to_vec(),
                    value: None
                },
            ],
            "one record per key touched, with its value now"
        );
        assert!(!s.has_changes());
        // A batch dropped half-way (a pause) loses every write it made, kept records' too.
        s.begin_batch();
        s.increment(c, b"apple", 1).unwrap();
        let m = s.mark();
        s.increment(c, b"kiwi", 1).unwrap();
        s.rollback_to(m);
        s.rollback_batch();
        assert_eq!(s.get(c, b"apple").unwrap(), Some(&b"3"[..]));
        assert_eq!(s.get(c, b"kiwi").unwrap(), None);
    }

    #[test]
    fn limits_and_bad_input_are_errors_that_write_nothing() {
        let limits = StateLimits {
            value_bytes_max: 4,
            keys_max: 2,
            bytes_max: 100,
            key_bytes_max: 8,
        };
        let mut s = TaskState::new(&["a".into()], limits);
        let a = s.open("a").unwrap();
        assert!(matches!(s.open("nope"), Err(StateError::Refused(m)) if m.contains("declares a")));
        assert_eq!(s.get(7, b"k"), Err(StateError::UnknownStore(7)));
        assert_eq!(
            s.get(1, b"k"),
            Err(StateError::UnknownStore(1)),
            "the timers are not a handle"
        );
        assert!(s.set(a, b"k", b"12345").is_err());
        assert!(s.set(a, b"123456789", b"1").is_err());
        s.set(a, b"k1", b"1").unwrap();
        s.set(a, b"k2", b"1").unwrap();
        assert!(matches!(s.set(a, b"k3", b"1"), Err(StateError::Refused(m)) if m.contains("keys_max")));
        s.set(a, b"k2", b"2").unwrap();
        s.set(a, b"k1", b"text").unwrap();
        assert!(s.increment(a, b"k1", 1).is_err());
        s.set(a, b"k2", i64::MAX.to_string().as_bytes()).unwrap_err();
        assert_eq!(s.figures()[0].keys, 2);
        assert_eq!(s.figures()[0].refused, 5, "each refused write counted");
    }

    #[test]
    fn due_timers_are_taken_once_in_time_order_and_the_watermark_drives_event_time() {
        let mut s = state();
        s.set_timer(b"x", 100, Domain::EventTime).unwrap();
        s.set_timer(b"x", 100, Domain::EventTime).unwrap();
        s.set_timer(b"y", 50, Domain::EventTime).unwrap();
        s.set_timer(b"z", 1_000, Domain::ProcessingTime).unwrap();
        s.cancel_timer(b"nothing", 5, Domain::EventTime);
        assert!(s.take_due_timers(0, 10).is_empty(), "no watermark yet, clock before");
        s.watermark = Some(99);
        let due = s.take_due_timers(0, 10);
        assert_eq!(due.iter().map(|f| f.key.clone()).collect::<Vec<_>>(), [b"y".to_vec()]);
        s.watermark = Some(100);
        assert_eq!(s.take_due_timers(0, 10)[0].key, b"x");
        assert_eq!(s.next_processing_timer(), Some(1_000));
        assert_eq!(s.take_due_timers(1_000, 10)[0].domain, Domain::ProcessingTime);
        assert!(s.take_due_timers(i64::MAX, 10).is_empty());
        assert_eq!(s.next_processing_timer(), None);
    }

    /// One step of [`the_changelog_always_replays_to_the_state`].
    #[derive(Debug, Clone)]
    enum Op {
        Set(u8, u8),
        Delete(u8),
        Increment(u8),
        Mark,
        Rollback,
        EndBatch,
        Commit,
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0u8..6, any::<u8>()).prop_map(|(k, v)| Op::Set(k, v)),
            (0u8..6).prop_map(Op::Delete),
            (0u8..6).prop_map(Op::Increment),
            Just(Op::Mark),
            Just(Op::Rollback),
            Just(Op::EndBatch),
            Just(Op::Commit),
        ]
    }

    proptest::proptest! {
        /// Whatever the writes, undos and commits, the changelog (every commit's changes,
        /// applied in order) holds exactly the state, and the byte count is exact.
        #[test]
        fn the_changelog_always_replays_to_the_state(ops in proptest::collection::vec(op(), 0..200)) {
            let mut s = TaskState::new(&["a".into()], StateLimits::default());
            let a = s.open("a").unwrap();
            let mut changelog = std::collections::BTreeMap::new();
            let mut marks = vec![0];
            s.begin_batch();
            for op in ops {
                match op {
                    Op::Set(k, v) => s.set(a, &[k], v.to_string().as_bytes()).unwrap(),
                    Op::Delete(k) => s.delete(a, &[k]).unwrap(),
                    Op::Increment(k) => {
                        let _ = s.increment(a, &[k], 1);
                    }
                    Op::Mark => marks.push(s.mark()),
                    Op::Rollback => {
                        let m = marks.pop().unwrap_or(0).min(s.mark());
                        s.rollback_to(m);
                    }
                    Op::EndBatch => {
                        s.end_batch();
                        marks = vec![0];
                        s.begin_batch();
                    }
                    Op::Commit => {
                        for c in s.take_changes() {
                            match c.value {
                                Some(v) => changelog.insert(c.key, v),
                                None => changelog.remove(&c.key),
                            };
                        }
                    }
                }
                marks.retain(|&m| m <= s.mark());
            }
            for c in s.take_changes() {
                match c.value {
                    Some(v) => changelog.insert(c.key, v),
                    None => changelog.remove(&c.key),
                };
            }
            let now: std::collections::BTreeMap<Vec<u8>, Vec<u8>> =
                s.stores()[0].iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
            proptest::prop_assert_eq!(&changelog, &now);
            let bytes: u64 = now.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
            proptest::prop_assert_eq!(s.bytes(), bytes);
        }
    }
}
