//! Weir: a broker of durable, partitioned logs served over HTTP and Server-Sent Events.
pub mod log;
