//! Time as a task sees it, and per-key timers: a timer set for a key comes back to the
//! processor's [`crate::Processor::on_timer`] once it is due, after restarts too.
//!
//! ```
//! use weir_sdk::time::{self, Domain};
//! time::set_timer(b"session-42", 1_000, Domain::EventTime).unwrap();
//! # weir_sdk::testing::reset_state();
//! ```

use crate::Error;

/// Which clock a timer follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Domain {
    /// Due once the task's watermark (the largest record timestamp it has seen) reaches it.
    EventTime,
    /// Due on the broker's wall clock.
    ProcessingTime,
}

/// A timer that came due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timer<'a> {
    pub key: &'a [u8],
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    pub domain: Domain,
}

/// The task's watermark: the largest record timestamp it has processed (ms); `None` before
/// the first record.
pub fn watermark() -> Option<i64> {
    backend::watermark()
}

/// Sets a timer for `key` at `at` (ms since the epoch). One timer per key, time and domain.
pub fn set_timer(key: &[u8], at: i64, domain: Domain) -> Result<(), Error> {
    backend::set_timer(key, at, domain).map_err(Error::new)
}

/// Cancels that timer, if it is set.
pub fn cancel_timer(key: &[u8], at: i64, domain: Domain) {
    backend::cancel_timer(key, at, domain)
}

#[cfg(all(target_arch = "wasm32", feature = "bindings"))]
mod backend {
    use super::Domain;
    use crate::bindings::weir::processor::time as host;

    fn d(domain: Domain) -> host::Domain {
        match domain {
            Domain::EventTime => host::Domain::EventTime,
            Domain::ProcessingTime => host::Domain::ProcessingTime,
        }
    }
    pub fn watermark() -> Option<i64> {
        host::watermark()
    }
    pub fn set_timer(key: &[u8], at: i64, domain: Domain) -> Result<(), String> {
        host::set_timer(key, at, d(domain))
    }
    pub fn cancel_timer(key: &[u8], at: i64, domain: Domain) {
        host::cancel_timer(key, at, d(domain))
    }
}

#[cfg(not(all(target_arch = "wasm32", feature = "bindings")))]
mod backend {
    use super::Domain;
    use crate::testing::native::with;

    pub fn watermark() -> Option<i64> {
        with(|s| s.watermark)
    }
    pub fn set_timer(key: &[u8], at: i64, domain: Domain) -> Result<(), String> {
        with(|s| s.timers.insert((domain, at, key.to_vec())));
        Ok(())
    }
    pub fn cancel_timer(key: &[u8], at: i64, domain: Domain) {
        with(|s| s.timers.remove(&(domain, at, key.to_vec())));
    }
}
