//! Logging from a processor: lines go to the processor's log stream on the broker
//! (`GET /v1/processors/{name}/logs`), and to standard error in native tests.
//!
//! ```
//! weir_sdk::info!("processed {} records", 3);
//! weir_sdk::log::log(weir_sdk::log::Level::Warn, "careful");
//! ```

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Writes one log line.
///
/// ```
/// weir_sdk::log::log(weir_sdk::log::Level::Info, "hello");
/// ```
pub fn log(level: Level, message: &str) {
    #[cfg(all(feature = "bindings", target_arch = "wasm32"))]
    {
        use crate::bindings::weir::processor::host::{Level as L, log as host_log};
        let level = match level {
            Level::Trace => L::Trace,
            Level::Debug => L::Debug,
            Level::Info => L::Info,
            Level::Warn => L::Warn,
            Level::Error => L::Error,
        };
        host_log(level, message);
    }
    #[cfg(not(all(feature = "bindings", target_arch = "wasm32")))]
    eprintln!("[{level:?}] {message}");
}

/// Logs at info level, with `format!` arguments.
///
/// ```
/// weir_sdk::info!("x = {}", 1);
/// ```
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Info, &::std::format!($($arg)*)) };
}

/// Logs at debug level.
///
/// ```
/// weir_sdk::debug!("details");
/// ```
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Debug, &::std::format!($($arg)*)) };
}

/// Logs at warn level.
///
/// ```
/// weir_sdk::warn!("odd record at {}", 7);
/// ```
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Warn, &::std::format!($($arg)*)) };
}

/// Logs at error level.
///
/// ```
/// weir_sdk::error!("bad input");
/// ```
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Error, &::std::format!($($arg)*)) };
}
