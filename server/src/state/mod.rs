//! Keyed state of processor tasks (a processor on one input partition): named stores of byte
//! keys and values, ordered, held in memory ([`store`]); every write staged until its commit,
//! and undone if the record that made it fails ([`TaskState`]); made durable as records of a
//! compacted changelog topic committed in the task's transaction ([`changelog`]); and a local
//! snapshot so that a restart replays only the changelog's tail ([`snapshot`]).
//!
//! Timers live here too, as entries of an internal store (see [`timers`]).

pub mod changelog;
pub mod limits;
pub mod snapshot;
mod store;
mod task;
pub mod timers;

pub use limits::StateLimits;
pub use store::{Entries, Store};
pub use task::{StateError, StoreFigures, TaskState};

/// Most stores a deployment may declare.
pub const STORES_MAX: usize = 16;
/// Longest store name.
pub const STORE_NAME_CHARS_MAX: usize = 64;
/// The store that holds a task's timers (not one a deployment may declare).
pub const TIMERS_STORE: &str = "__timers";

/// Checks a store name: 1 to 64 of `a-z`, `0-9`, `_` and `-`, not starting with `__`.
pub fn validate_store_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > STORE_NAME_CHARS_MAX {
        return Err(format!(
            "a store name has 1 to {STORE_NAME_CHARS_MAX} characters; '{name}' has {}",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-')))
    {
        return Err(format!(
            "store names use only a-z, 0-9, '_' and '-'; '{name}' has {c:?}"
        ));
    }
    if name.starts_with("__") {
        return Err(format!("store names starting with '__' are the broker's ('{name}')"));
    }
    Ok(())
}
