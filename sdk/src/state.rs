//! Keyed state: the stores a deployment declares (`"stores": ["counts"]`), kept by the broker
//! per input partition. Writes become durable together with the outputs of the records that
//! made them (exactly once); a record that fails loses its writes too (also in a native
//! `cargo test`, where the harness undoes them the same way).
//!
//! ```
//! use weir_sdk::state::Store;
//! let counts = Store::open("counts").unwrap();
//! assert_eq!(counts.increment(b"apple", 1).unwrap(), 1);
//! assert_eq!(counts.increment(b"apple", 2).unwrap(), 3);
//! assert_eq!(counts.get(b"apple").as_deref(), Some(&b"3"[..]));
//! # weir_sdk::testing::reset_state();
//! ```
//!
//! In a component the calls go to the broker; in a native build (`cargo test`) to an
//! in-memory store of the test thread ([`crate::testing`]), so processors with state are
//! unit-tested with plain `cargo test`.

use crate::Error;

/// A store of the deployment, by handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Store {
    handle: u32,
}

impl Store {
    /// The declared store `name`. An error if the deployment declares no such store (open it
    /// once, in `init`).
    pub fn open(name: &str) -> Result<Store, Error> {
        backend::open(name).map(|handle| Store { handle }).map_err(Error::new)
    }

    /// The value of `key`, if any.
    pub fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        backend::get(self.handle, key)
    }

    /// The value of `key` as text (lossy), if any.
    ///
    /// ```
    /// let s = weir_sdk::state::Store::open("s").unwrap();
    /// s.set(b"k", "v".as_bytes()).unwrap();
    /// assert_eq!(s.get_str(b"k").as_deref(), Some("v"));
    /// # weir_sdk::testing::reset_state();
    /// ```
    pub fn get_str(&self, key: &[u8]) -> Option<String> {
        self.get(key).map(|v| String::from_utf8_lossy(&v).into_owned())
    }

    /// The values of `keys`, in order, in one call.
    pub fn get_many(&self, keys: &[&[u8]]) -> Vec<Option<Vec<u8>>> {
        backend::get_many(self.handle, keys)
    }

    /// Sets `key` to `value`. An error past the deployment's state limits.
    pub fn set(&self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        backend::set(self.handle, key, value).map_err(Error::new)
    }

    /// Removes `key`.
    pub fn delete(&self, key: &[u8]) -> Result<(), Error> {
        backend::delete(self.handle, key).map_err(Error::new)
    }

    /// Adds `delta` to the integer at `key` (absent: 0), kept as decimal text, and returns it.
    pub fn increment(&self, key: &[u8], delta: i64) -> Result<i64, Error> {
        backend::increment(self.handle, key, delta).map_err(Error::new)
    }

    /// Entries with `start <= key < end` (no end: to the last key), in key order, at most
    /// `limit`.
    ///
    /// ```
    /// let s = weir_sdk::state::Store::open("s").unwrap();
    /// for k in ["a1", "a2", "b1"] { s.set(k.as_bytes(), b"").unwrap(); }
    /// assert_eq!(s.scan(b"a", Some(b"b"), 10).len(), 2);
    /// # weir_sdk::testing::reset_state();
    /// ```
    pub fn scan(&self, start: &[u8], end: Option<&[u8]>, limit: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
        backend::scan(self.handle, start, end, limit)
    }
}

#[cfg(all(target_arch = "wasm32", feature = "bindings"))]
mod backend {
    use crate::bindings::weir::processor::state as host;

    pub fn open(name: &str) -> Result<u32, String> {
        host::open(name)
    }
    pub fn get(store: u32, key: &[u8]) -> Option<Vec<u8>> {
        host::get(store, key)
    }
    pub fn get_many(store: u32, keys: &[&[u8]]) -> Vec<Option<Vec<u8>>> {
        let owned: Vec<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
        host::get_many(store, &owned)
    }
    pub fn set(store: u32, key: &[u8], value: &[u8]) -> Result<(), String> {
        host::set(store, key, value)
    }
    pub fn delete(store: u32, key: &[u8]) -> Result<(), String> {
        host::delete(store, key)
    }
    pub fn increment(store: u32, key: &[u8], delta: i64) -> Result<i64, String> {
        host::increment(store, key, delta)
    }
    pub fn scan(store: u32, start: &[u8], end: Option<&[u8]>, limit: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
        host::scan(store, start, end, limit)
    }
}

#[cfg(not(all(target_arch = "wasm32", feature = "bindings")))]
mod backend {
    use crate::testing::native::with;

    pub fn open(name: &str) -> Result<u32, String> {
        Ok(with(|s| s.open(name)))
    }
    pub fn get(store: u32, key: &[u8]) -> Option<Vec<u8>> {
        with(|s| s.store(store).get(key).cloned())
    }
    pub fn get_many(store: u32, keys: &[&[u8]]) -> Vec<Option<Vec<u8>>> {
        keys.iter().map(|k| get(store, k)).collect()
    }
    pub fn set(store: u32, key: &[u8], value: &[u8]) -> Result<(), String> {
        with(|s| s.store(store).insert(key.to_vec(), value.to_vec()));
        Ok(())
    }
    pub fn delete(store: u32, key: &[u8]) -> Result<(), String> {
        with(|s| s.store(store).remove(key));
        Ok(())
    }
    pub fn increment(store: u32, key: &[u8], delta: i64) -> Result<i64, String> {
        with(|s| {
            let map = s.store(store);
            let current = match map.get(key) {
                None => 0,
                Some(v) => std::str::from_utf8(v)
                    .ok()
                    .and_then(|t| t.parse::<i64>().ok())
                    .ok_or("increment: the value there is not a decimal integer")?,
            };
            let next = current
                .checked_add(delta)
                .ok_or("increment overflows a 64-bit integer")?;
            map.insert(key.to_vec(), next.to_string().into_bytes());
            Ok(next)
        })
    }
    pub fn scan(store: u32, start: &[u8], end: Option<&[u8]>, limit: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
        with(|s| {
            s.store(store)
                .range(start.to_vec()..)
                .take_while(|(k, _)| end.is_none_or(|e| k.as_slice() < e))
                .take(limit as usize)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
    }
}
