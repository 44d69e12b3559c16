//! Tables: topics the deployment declares (`"tables": ["customers"]`) read as the latest value
//! of each key, found wherever the key's records went. Read-only lookups, for stream-table
//! joins.
//!
//! ```
//! use weir_sdk::tables::Table;
//! weir_sdk::testing::set_table("customers", &[(b"c1", br#"{"name":"Ada"}"#)]);
//! let customers = Table::open("customers").unwrap();
//! assert_eq!(customers.lookup(b"c1").as_deref(), Some(&br#"{"name":"Ada"}"#[..]));
//! assert_eq!(customers.lookup(b"c9"), None);
//! ```
//!
//! In a native build (`cargo test`) the tables are those [`crate::testing::set_table`] gave
//! the test thread.

use crate::Error;

/// A table of the deployment, by handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    handle: u32,
}

impl Table {
    /// The declared table `name`. An error if the deployment declares no such table (open it
    /// once, in `init`).
    pub fn open(name: &str) -> Result<Table, Error> {
        backend::open(name).map(|handle| Table { handle }).map_err(Error::new)
    }

    /// The latest value of `key`, if the table has one.
    pub fn lookup(&self, key: &[u8]) -> Option<Vec<u8>> {
        backend::lookup(self.handle, key)
    }

    /// The values of `keys`, in order, in one call.
    pub fn lookup_many(&self, keys: &[&[u8]]) -> Vec<Option<Vec<u8>>> {
        backend::lookup_many(self.handle, keys)
    }
}

#[cfg(all(target_arch = "wasm32", feature = "bindings"))]
mod backend {
    use crate::bindings::weir::processor::tables as host;

    pub fn open(name: &str) -> Result<u32, String> {
        host::open(name)
    }
    pub fn lookup(table: u32, key: &[u8]) -> Option<Vec<u8>> {
        host::lookup(table, key)
    }
    pub fn lookup_many(table: u32, keys: &[&[u8]]) -> Vec<Option<Vec<u8>>> {
        let owned: Vec<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
        host::lookup_many(table, &owned)
    }
}

#[cfg(not(all(target_arch = "wasm32", feature = "bindings")))]
mod backend {
    use crate::testing::native_tables as native;

    pub fn open(name: &str) -> Result<u32, String> {
        native::with(|t| {
            t.iter()
                .position(|(n, _)| n == name)
                .map(|i| i as u32)
                .ok_or_else(|| format!("no table '{name}': give it to the test with weir_sdk::testing::set_table"))
        })
    }
    pub fn lookup(table: u32, key: &[u8]) -> Option<Vec<u8>> {
        native::with(|t| t.get(table as usize).and_then(|(_, rows)| rows.get(key).cloned()))
    }
    pub fn lookup_many(table: u32, keys: &[&[u8]]) -> Vec<Option<Vec<u8>>> {
        keys.iter().map(|k| lookup(table, k)).collect()
    }
}
