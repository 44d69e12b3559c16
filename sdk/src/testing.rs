//! Running a processor natively, for unit tests: `cargo test` with no WebAssembly involved.
//! The batch goes through the same packed encoding the broker uses.
//!
//! ```
//! use weir_sdk::testing::{TestRecord, run_fn};
//! let out = run_fn(&[TestRecord::value("a"), TestRecord::value("b")], |r, out| {
//!     out.emit(r.value);
//!     Ok(())
//! }).unwrap();
//! assert_eq!(out.len(), 2);
//! ```

use crate::packed::{BatchWriter, OutputReader};
use crate::{Config, Emitter, Error, Processor, Record};

/// The in-memory state behind [`crate::state`] and [`crate::time`] in a native build: one per
/// test thread, kept across batches until [`reset_state`].
#[doc(hidden)]
pub mod native {
    use std::cell::RefCell;
    use std::collections::{BTreeMap, BTreeSet};

    use crate::time::Domain;

    #[derive(Default, Clone)]
    pub struct NativeState {
        names: Vec<String>,
        stores: Vec<BTreeMap<Vec<u8>, Vec<u8>>>,
        pub watermark: Option<i64>,
        pub timers: BTreeSet<(Domain, i64, Vec<u8>)>,
    }

    impl NativeState {
        /// Any store opens in a test: a store is made on first use.
        pub fn open(&mut self, name: &str) -> u32 {
            match self.names.iter().position(|n| n == name) {
                Some(i) => i as u32,
                None => {
                    self.names.push(name.to_owned());
                    self.stores.push(BTreeMap::new());
                    (self.names.len() - 1) as u32
                }
            }
        }

        pub fn store(&mut self, handle: u32) -> &mut BTreeMap<Vec<u8>, Vec<u8>> {
            &mut self.stores[handle as usize]
        }

        pub fn named(&mut self, name: &str) -> &mut BTreeMap<Vec<u8>, Vec<u8>> {
            let h = self.open(name);
            self.store(h)
        }
    }

    thread_local! {
        static STATE: RefCell<NativeState> = RefCell::new(NativeState::default());
    }

    pub fn with<T>(f: impl FnOnce(&mut NativeState) -> T) -> T {
        STATE.with(|s| f(&mut s.borrow_mut()))
    }

    /// The state as it is, to put back with [`restore`] (a failing record's writes undone, as
    /// the broker undoes them).
    pub fn save() -> NativeState {
        with(|s| s.clone())
    }

    pub fn restore(saved: NativeState) {
        with(|s| *s = saved);
    }
}

#[doc(hidden)]
pub mod native_tables {
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    type Tables = Vec<(String, BTreeMap<Vec<u8>, Vec<u8>>)>;

    thread_local! {
        static TABLES: RefCell<Tables> = const { RefCell::new(Vec::new()) };
    }

    pub fn with<T>(f: impl FnOnce(&mut Tables) -> T) -> T {
        TABLES.with(|t| f(&mut t.borrow_mut()))
    }
}

/// Gives the test thread's processors table `name` with `rows` (replacing one of that name),
/// for [`crate::tables::Table`] lookups.
pub fn set_table(name: &str, rows: &[(&[u8], &[u8])]) {
    let rows = rows.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
    native_tables::with(|t| match t.iter_mut().find(|(n, _)| n == name) {
        Some(slot) => slot.1 = rows,
        None => t.push((name.to_owned(), rows)),
    });
}

/// Empties the test thread's state: every store, the watermark, the timers.
///
/// ```
/// weir_sdk::state::Store::open("s").unwrap().set(b"k", b"v").unwrap();
/// weir_sdk::testing::reset_state();
/// assert_eq!(weir_sdk::testing::stored("s", b"k"), None);
/// ```
pub fn reset_state() {
    native::with(|s| *s = native::NativeState::default());
}

/// What store `store` holds at `key` in the test thread's state.
pub fn stored(store: &str, key: &[u8]) -> Option<Vec<u8>> {
    native::with(|s| s.named(store).get(key).cloned())
}

/// Every `(key, value)` of store `store`, in key order.
pub fn stored_all(store: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    native::with(|s| s.named(store).iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// An input record for a test.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestRecord {
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub timestamp: i64,
}

impl TestRecord {
    /// A record with this value.
    ///
    /// ```
    /// assert_eq!(weir_sdk::testing::TestRecord::value("v").value, b"v");
    /// ```
    pub fn value(value: impl AsRef<[u8]>) -> Self {
        Self {
            value: value.as_ref().to_vec(),
            ..Self::default()
        }
    }

    /// Sets the key.
    ///
    /// ```
    /// let r = weir_sdk::testing::TestRecord::value("v").key("k");
    /// assert_eq!(r.key.as_deref(), Some(&b"k"[..]));
    /// ```
    pub fn key(mut self, key: impl AsRef<[u8]>) -> Self {
        self.key = Some(key.as_ref().to_vec());
        self
    }

    /// Adds a header.
    ///
    /// ```
    /// assert_eq!(weir_sdk::testing::TestRecord::value("v").header("h", "1").headers.len(), 1);
    /// ```
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers.push((name.to_owned(), value.as_ref().to_vec()));
        self
    }
}

/// A record a processor emitted in a test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emitted {
    /// Index of the input record it was emitted for.
    pub input: u32,
    /// Index into the processor's outputs; `None` is the first.
    pub output: Option<u32>,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Emitted {
    /// The value as text (lossy).
    ///
    /// ```
    /// # use weir_sdk::testing::*;
    /// let out = run_fn(&[TestRecord::value("hi")], |r, o| { o.forward(r); Ok(()) }).unwrap();
    /// assert_eq!(out[0].value_str(), "hi");
    /// ```
    pub fn value_str(&self) -> String {
        String::from_utf8_lossy(&self.value).into_owned()
    }
}

/// Everything one batch produced: emitted records and failed input records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub emitted: Vec<Emitted>,
    /// `(input index, message)` of every record whose processing failed.
    pub failed: Vec<(u32, String)>,
}

fn encode(records: &[TestRecord]) -> Vec<u8> {
    let mut w = BatchWriter::new("test", 0, 0);
    for (i, r) in records.iter().enumerate() {
        w.push(
            i as u64,
            r.timestamp,
            r.key.as_deref(),
            &r.value,
            r.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())),
        );
    }
    w.finish()
}

fn decode(bytes: &[u8]) -> Outcome {
    let mut reader = OutputReader::new(bytes).expect("the SDK writes valid output");
    let emitted = reader
        .by_ref()
        .map(|r| {
            let r = r.expect("the SDK writes valid output");
            Emitted {
                input: r.input,
                output: r.output,
                key: r.key.map(<[u8]>::to_vec),
                value: r.value.to_vec(),
                headers: r.headers.iter().map(|(n, v)| (n.to_owned(), v.to_vec())).collect(),
            }
        })
        .collect();
    let failed = reader.failures().expect("the SDK writes valid output");
    Outcome {
        emitted,
        failed: failed.into_iter().map(|(i, m)| (i, m.to_owned())).collect(),
    }
}

/// Initializes `P` with `config` and runs one batch, reporting failed records too. Fails only if
/// `init` does.
///
/// ```
/// # use weir_sdk::{Config, Emitter, Error, Processor, Record, testing::*};
/// struct Picky;
/// impl Processor for Picky {
///     fn init(_: &Config) -> Result<Self, String> { Ok(Picky) }
///     fn process(&mut self, r: &Record<'_>, out: &mut Emitter) -> Result<(), Error> {
///         if r.value == b"bad" { return Err(Error::new("no")); }
///         out.forward(r);
///         Ok(())
///     }
/// }
/// let o = run_batch::<Picky>(&[], &[TestRecord::value("ok"), TestRecord::value("bad")]).unwrap();
/// assert_eq!((o.emitted.len(), o.failed[0].0), (1, 1));
/// ```
pub fn run_batch<P: Processor>(config: &[(&str, &str)], records: &[TestRecord]) -> Result<Outcome, String> {
    let mut processor = P::init(&Config::new(config.iter().copied()))?;
    // The broker moves the watermark before it hands a batch over.
    if let Some(ts) = records.iter().map(|r| r.timestamp).max() {
        native::with(|s| s.watermark = s.watermark.max(Some(ts)));
    }
    let out = crate::rt::process(&mut processor, &encode(records)).map_err(|e| e.message)?;
    Ok(decode(&out))
}

/// Fires the test thread's timers that are due (event time at or before the watermark,
/// processing time at or before `now_ms`) on a `P` made with `config`, as the broker would.
///
/// ```
/// # use weir_sdk::{Config, Emitter, Error, Processor, Record, testing::*, time::{self, Domain, Timer}};
/// struct Later;
/// impl Processor for Later {
///     fn init(_: &Config) -> Result<Self, String> { Ok(Later) }
///     fn process(&mut self, r: &Record<'_>, _: &mut Emitter) -> Result<(), Error> {
///         time::set_timer(r.value, r.timestamp + 10, Domain::EventTime)
///     }
///     fn on_timer(&mut self, t: &Timer<'_>, out: &mut Emitter) -> Result<(), Error> {
///         out.emit(t.key);
///         Ok(())
///     }
/// }
/// let mut r = TestRecord::value("x");
/// r.timestamp = 100;
/// run::<Later>(&[], &[r.clone()]).unwrap();
/// assert!(fire_timers::<Later>(&[], 0).unwrap().is_empty());
/// r.timestamp = 110;
/// run::<Later>(&[], &[r]).unwrap();
/// assert_eq!(fire_timers::<Later>(&[], 0).unwrap()[0].value, b"x");
/// # reset_state();
/// ```
pub fn fire_timers<P: Processor>(config: &[(&str, &str)], now_ms: i64) -> Result<Vec<Emitted>, String> {
    use crate::time::Domain;
    let due: Vec<(Domain, i64, Vec<u8>)> = native::with(|s| {
        let wm = s.watermark;
        let due: Vec<_> = s
            .timers
            .iter()
            .filter(|(d, at, _)| match d {
                Domain::EventTime => wm.is_some_and(|w| *at <= w),
                Domain::ProcessingTime => *at <= now_ms,
            })
            .cloned()
            .collect();
        for t in &due {
            s.timers.remove(t);
        }
        due
    });
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let mut processor = P::init(&Config::new(config.iter().copied()))?;
    let mut w = BatchWriter::new("test", 0, 0);
    for (d, at, key) in &due {
        let domain = [*d as u8];
        w.push(0, *at, Some(key), &domain, std::iter::empty());
    }
    let out = crate::rt::on_timers(&mut processor, &w.finish()).map_err(|e| e.message)?;
    let outcome = decode(&out);
    match outcome.failed.first() {
        Some((i, m)) => Err(format!("timer {i}: {m}")),
        None => Ok(outcome.emitted),
    }
}

/// Initializes `P` with `config`, runs one batch and returns what it emitted; an error if `init`
/// or any record failed.
///
/// ```
/// # use weir_sdk::{Config, Emitter, Error, Processor, Record, testing::*};
/// struct Echo;
/// impl Processor for Echo {
///     fn init(_: &Config) -> Result<Self, String> { Ok(Echo) }
///     fn process(&mut self, r: &Record<'_>, out: &mut Emitter) -> Result<(), Error> { out.forward(r); Ok(()) }
/// }
/// assert_eq!(run::<Echo>(&[], &[TestRecord::value("x")]).unwrap().len(), 1);
/// ```
pub fn run<P: Processor>(config: &[(&str, &str)], records: &[TestRecord]) -> Result<Vec<Emitted>, String> {
    let outcome = run_batch::<P>(config, records)?;
    match outcome.failed.first() {
        Some((i, m)) => Err(format!("record {i}: {m}")),
        None => Ok(outcome.emitted),
    }
}

/// Runs a per-record function over one batch, as a processor would.
///
/// ```
/// # use weir_sdk::testing::*;
/// let out = run_fn(&[TestRecord::value("x")], |_, o| { o.emit("y"); Ok(()) }).unwrap();
/// assert_eq!(out[0].value, b"y");
/// ```
pub fn run_fn(
    records: &[TestRecord],
    f: impl FnMut(&Record<'_>, &mut Emitter) -> Result<(), Error>,
) -> Result<Vec<Emitted>, String> {
    let out = crate::rt::process_with(&encode(records), f).map_err(|e| e.message)?;
    let outcome = decode(&out);
    match outcome.failed.first() {
        Some((i, m)) => Err(format!("record {i}: {m}")),
        None => Ok(outcome.emitted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Store;
    use crate::{Config, Emitter, Error, Processor, Record};

    /// Writes the record's value as a key, then fails on `bad`.
    struct WritesThenFails(Store);

    impl Processor for WritesThenFails {
        fn init(_: &Config) -> Result<Self, String> {
            Ok(Self(Store::open("s").map_err(|e| e.message().to_owned())?))
        }

        fn process(&mut self, r: &Record<'_>, _: &mut Emitter) -> Result<(), Error> {
            self.0.set(r.value, b"written")?;
            if r.value == b"bad" {
                return Err(Error::new("bad"));
            }
            Ok(())
        }
    }

    #[test]
    fn a_failing_records_state_writes_are_undone_as_the_broker_does() {
        reset_state();
        let o = run_batch::<WritesThenFails>(
            &[],
            &[TestRecord::value("a"), TestRecord::value("bad"), TestRecord::value("b")],
        )
        .unwrap();
        assert_eq!(o.failed.len(), 1);
        assert_eq!(
            stored_all("s"),
            [
                (b"a".to_vec(), b"written".to_vec()),
                (b"b".to_vec(), b"written".to_vec())
            ]
        );
    }
}
